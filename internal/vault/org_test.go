package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"crypto/rand"
	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

// Organisations end to end against a real server, through a TLS proxy
// that can rewrite what the server says about organisations (the
// malicious server of the attack list).

var orgLogPath = regexp.MustCompile(`^/v1/orgs/([0-9a-z]+)/log$`)

// orgLiar holds the proxy's organisation hooks; nil hooks pass through.
type orgLiar struct {
	mu   sync.Mutex
	pull func(org string, p *api.OrgLogPage)
	list func(o *api.Orgs)
}

func (l *orgLiar) rewrite(t testing.TB, r *http.Request, out []byte) []byte {
	l.mu.Lock()
	pull, list := l.pull, l.list
	l.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && orgLogPath.MatchString(r.URL.Path) && pull != nil:
		var p api.OrgLogPage
		if err := json.Unmarshal(out, &p); err != nil {
			t.Errorf("proxy: %v", err)
			return out
		}
		pull(orgLogPath.FindStringSubmatch(r.URL.Path)[1], &p)
		b, _ := json.Marshal(p)
		return b
	case r.Method == http.MethodGet && r.URL.Path == api.PathOrgs && list != nil:
		var o api.Orgs
		if err := json.Unmarshal(out, &o); err != nil {
			t.Errorf("proxy: %v", err)
			return out
		}
		list(&o)
		b, _ := json.Marshal(o)
		return b
	}
	return out
}

func (l *orgLiar) set(pull func(string, *api.OrgLogPage), list func(*api.Orgs)) {
	l.mu.Lock()
	l.pull, l.list = pull, list
	l.mu.Unlock()
}

type member struct {
	v     *Vault
	r     remote.Remote
	email string
}

type orgWorld struct {
	alice, bob, carol member
	liar              *orgLiar
}

// newOrgWorld registers three accounts on one server behind the proxy.
func newOrgWorld(t testing.TB) *orgWorld {
	t.Helper()
	target := startServer(t)
	l := &liar{}
	ol := &orgLiar{}
	l.org = ol
	u, fp := lyingProxy(t, target, l)
	w := &orgWorld{liar: ol}
	mk := func(email string) member {
		v, _, _ := newVault(t)
		c, err := httpremote.New(u, fp, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := v.Register(ctx, c, RemoteTarget{Name: "origin", Kind: RemoteServer, URL: u, Fingerprint: fp, Email: email}, []byte(syncPassword)); err != nil {
			t.Fatal(err)
		}
		mustSync(t, v, c)
		return member{v: v, r: c, email: email}
	}
	w.alice, w.bob, w.carol = mk("alice@example.com"), mk("bob@example.com"), mk("carol@example.com")
	return w
}

// enrol invites m into the organisation and runs both fingerprint checks.
func (w *orgWorld) enrol(t testing.TB, orgRef string, m member) {
	t.Helper()
	a := w.alice
	if err := a.v.OrgInvite(ctx, a.r, orgRef, m.email); err != nil {
		t.Fatal(err)
	}
	d, err := a.v.OrgShow(ctx, a.r, orgRef)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := m.v.OrgAccept(ctx, m.r, d.Name, d.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.v.OrgConfirm(ctx, a.r, orgRef, m.email, acc.Fingerprint); err != nil {
		t.Fatal(err)
	}
}

func addTo(t testing.TB, v *Vault, vault, title string) item.Item {
	t.Helper()
	out, err := v.AddTo(ctx, vault, []item.Item{{Type: item.Login, Title: title, Password: "pw-" + title}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func titlesIn(t testing.TB, v *Vault, vault string) []string {
	t.Helper()
	list, err := v.List(ctx, Filter{Vault: vault})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list {
		out = append(out, o.Title)
	}
	slices.Sort(out)
	return out
}

// sharedWorld: Acme with bob (write) and carol (read) on vault Team.
func sharedWorld(t testing.TB) (*orgWorld, string) {
	t.Helper()
	w := newOrgWorld(t)
	a := w.alice
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	w.enrol(t, sum.ID, w.bob)
	w.enrol(t, sum.ID, w.carol)
	vi, err := a.v.CreateVault(ctx, a.r, "Team", sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	addTo(t, a.v, vi.ID, "Deploy key")
	if err := a.v.ShareVault(ctx, a.r, "Team", w.bob.email, "write"); err != nil {
		t.Fatal(err)
	}
	if err := a.v.ShareVault(ctx, a.r, "Team", w.carol.email, "read"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a.v, a.r)
	mustSync(t, w.bob.v, w.bob.r)
	mustSync(t, w.carol.v, w.carol.r)
	return w, vi.ID
}

func TestOrgSharingEndToEnd(t *testing.T) {
	w, team := sharedWorld(t)
	a, b, c := w.alice, w.bob, w.carol
	if got := titlesIn(t, b.v, team); !slices.Equal(got, []string{"Deploy key"}) {
		t.Fatalf("bob sees %v", got)
	}
	// Bob writes, everyone reads.
	addTo(t, b.v, team, "Bob's note")
	mustSync(t, b.v, b.r)
	mustSync(t, a.v, a.r)
	mustSync(t, c.v, c.r)
	for _, m := range []member{a, c} {
		if got := titlesIn(t, m.v, team); !slices.Equal(got, []string{"Bob's note", "Deploy key"}) {
			t.Fatalf("%s sees %v", m.email, got)
		}
	}
	// Carol reads only.
	if _, err := c.v.AddTo(ctx, team, []item.Item{{Type: item.Login, Title: "nope"}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("read-only write: %v", err)
	}
	// A group gives Carol write access.
	if err := a.v.GroupCreate(ctx, a.r, "Acme", "ops"); err != nil {
		t.Fatal(err)
	}
	if err := a.v.GroupAdd(ctx, a.r, "Acme", "ops", c.email); err != nil {
		t.Fatal(err)
	}
	if err := a.v.ShareVault(ctx, a.r, team, "group:ops", "write"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, c.v, c.r)
	addTo(t, c.v, team, "Carol's")
	mustSync(t, c.v, c.r)

	// Removing Bob rotates Team's key and re-encrypts its items.
	var progress [][2]int
	if err := a.v.OrgRemove(ctx, a.r, "Acme", b.email, func(d, n int) { progress = append(progress, [2]int{d, n}) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 || progress[len(progress)-1][0] != progress[len(progress)-1][1] {
		t.Fatalf("progress %v", progress)
	}
	if s := a.v.vaults[team]; s.gen != 2 {
		t.Fatalf("generation after removal: %d", s.gen)
	}
	addTo(t, a.v, team, "After removal")
	mustSync(t, a.v, a.r)

	// Bob gets nothing new: the server refuses him, and the new key was
	// never wrapped to him.
	if _, err := b.v.Sync(ctx, b.r); err != nil {
		t.Fatalf("bob's sync after removal: %v", err)
	}
	if got := titlesIn(t, b.v, team); slices.Contains(got, "After removal") {
		t.Fatalf("removed member reads %v", got)
	}
	if s := b.v.vaults[team]; s == nil || s.gen != 1 {
		t.Fatalf("removed member holds generation %v", s)
	}
	if _, err := b.r.Pull(ctx, team, 0); !errors.Is(err, remote.ErrForbidden) {
		t.Fatalf("removed member pulls the vault: %v", err)
	}
	// Even with the ciphertext (a stolen server database), Bob's keys do
	// not open what was written after his removal.
	page, err := a.r.Pull(ctx, team, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := page.Entries[len(page.Entries)-1]
	e, _ := decodeEntryBody(last.Body)
	if _, err := b.v.vaults[team].openPayloadFor(e.Item, e.Revision, last.Payload); err == nil {
		t.Fatal("the removed member's key opens an item written after removal")
	}

	// Carol sees everything, old and new.
	mustSync(t, c.v, c.r)
	if got := titlesIn(t, c.v, team); !slices.Equal(got, []string{"After removal", "Bob's note", "Carol's", "Deploy key"}) {
		t.Fatalf("carol sees %v", got)
	}
	// Members' verify passes over the shared vault.
	if rep, err := c.v.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestOrgSecondDeviceAdoptsOrganisation(t *testing.T) {
	w, team := sharedWorld(t)
	b := w.bob
	sk, err := b.v.SecretKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := b.v.readSync()
	b2 := join(t, b.r, RemoteTarget{Name: "origin", Kind: RemoteServer, URL: rec.URL, Fingerprint: rec.Fingerprint, Email: b.email}, sk)
	if got := titlesIn(t, b2, team); !slices.Equal(got, []string{"Deploy key"}) {
		t.Fatalf("bob's second device sees %v", got)
	}
}

// forge signs a statement on top of st without any check, as a malicious
// server (or member) would.
func forge(t *testing.T, st *org.State, by string, key *sign.PrivateKey, s org.Statement) api.OrgEntry {
	t.Helper()
	s.V, s.Org, s.Seq, s.Prev, s.By = org.Version, st.Org, st.Seq+1, bytes.Clone(st.Head[:]), by
	if s.Time == 0 {
		s.Time = 1
	}
	body, err := org.Encode(&s)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.Sign(org.SignContext, body)
	if err != nil {
		t.Fatal(err)
	}
	return api.OrgEntry{Body: body, Sig: sig}
}

func serverKeys(t *testing.T) (*sign.PrivateKey, *pke.PrivateKey) {
	t.Helper()
	sk, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := pke.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sk, ek
}

// orgRefused syncs m and wants ErrRemoteTampered naming words, with its
// pinned organisation state and vaults unchanged.
func orgRefused(t *testing.T, m member, words string) {
	t.Helper()
	before := map[string]uint64{}
	for id, st := range m.v.orgs {
		before[id] = st.Seq
	}
	_, err := m.v.Sync(ctx, m.r)
	if !errors.Is(err, ErrRemoteTampered) {
		t.Fatalf("sync: got %v, want ErrRemoteTampered", err)
	}
	if !strings.Contains(err.Error(), words) {
		t.Fatalf("error %q does not say %q", err, words)
	}
	for id, st := range m.v.orgs {
		if st.Seq != before[id] {
			t.Fatalf("organisation %s moved from %d to %d", id, before[id], st.Seq)
		}
	}
}

// appendForged arms the proxy to add entries made by make on top of the
// real log, for every pull of the organisation.
func (w *orgWorld) appendForged(t *testing.T, orgID string, viewer member, make func(st *org.State) []api.OrgEntry) {
	t.Helper()
	st := viewer.v.orgs[orgID].Clone()
	extra := make(st)
	w.liar.set(func(id string, p *api.OrgLogPage) {
		if id != orgID {
			return
		}
		p.Entries = append(p.Entries, extra...)
		p.Head += uint64(len(extra))
	}, nil)
}

func TestOrgAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server per attack")
	}
	type attack struct {
		name  string
		run   func(t *testing.T, w *orgWorld, orgID, team string)
		words string
	}
	attacks := []attack{
		{"member added that nobody signed", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, ek := serverKeys(t)
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				return []api.OrgEntry{forge(t, st, w.alice.v.Account(), sk, org.Statement{Type: org.TypeMember, Account: fakeID(t), Email: "mallory@example.com", Identity: sk.Public().Bytes(), Encryption: ek.Public().Bytes(), Role: org.Member})}
			})
		}, "statement"},
		{"member's key substituted", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, ek := serverKeys(t)
			bob := w.bob.v
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				return []api.OrgEntry{forge(t, st, w.alice.v.Account(), sk, org.Statement{Type: org.TypeMember, Account: bob.Account(), Email: w.bob.email, Identity: sk.Public().Bytes(), Encryption: ek.Public().Bytes(), Role: org.Member})}
			})
		}, "statement"},
		{"escrow key injected", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, ek := serverKeys(t)
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				wrapped, _ := pke.Seal(rand.Reader, ek.Public(), org.WrapContext(orgID, team, fakeID(t), 1), make([]byte, 32))
				return []api.OrgEntry{forge(t, st, w.alice.v.Account(), sk, org.Statement{Type: org.TypeKey, Vault: team, Account: fakeID(t), Gen: 1, Wrapped: wrapped})}
			})
		}, "statement"},
		{"vault key the server wrapped itself", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, _ := serverKeys(t)
			carol := w.carol.v
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				pub, _ := pke.ParsePublicKey(carol.acct.EncryptPublic)
				gen := st.Vaults[team].Gen + 1
				wrapped, _ := pke.Seal(rand.Reader, pub, org.WrapContext(orgID, team, carol.Account(), gen), make([]byte, 32))
				return []api.OrgEntry{forge(t, st, w.alice.v.Account(), sk, org.Statement{Type: org.TypeKey, Vault: team, Account: carol.Account(), Gen: gen, Wrapped: wrapped})}
			})
		}, "statement"},
		{"role nobody signed", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, _ := serverKeys(t)
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				return []api.OrgEntry{forge(t, st, w.alice.v.Account(), sk, org.Statement{Type: org.TypeGrant, Vault: team, Subject: w.carol.v.Account(), Access: org.Manage})}
			})
		}, "statement"},
		{"role granted by a member who may not", func(t *testing.T, w *orgWorld, orgID, team string) {
			// Carol (read) signs with her real identity key: a
			// malicious member, not only a malicious server.
			carol := w.carol.v
			idk, err := carol.identityKey()
			if err != nil {
				t.Fatal(err)
			}
			w.appendForged(t, orgID, w.carol, func(st *org.State) []api.OrgEntry {
				return []api.OrgEntry{forge(t, st, carol.Account(), idk, org.Statement{Type: org.TypeGrant, Vault: team, Subject: carol.Account(), Access: org.Manage})}
			})
		}, "statement"},
		{"keys swapped during rotation", func(t *testing.T, w *orgWorld, orgID, team string) {
			// Alice rotates (removing Bob); the proxy flips a byte of
			// the new wrap Carol receives.
			w.liar.set(func(id string, p *api.OrgLogPage) {
				for i := range p.Entries {
					st, err := org.Decode(org.Entry{Body: p.Entries[i].Body, Sig: p.Entries[i].Sig})
					if err == nil && st.Type == org.TypeKey && st.Gen == 2 && st.Account == w.carol.v.Account() {
						p.Entries[i].Sig = bytes.Clone(p.Entries[i].Sig)
						p.Entries[i].Sig[10] ^= 1
					}
				}
			}, nil)
			// Alice's own pulls come before her rotation statements
			// exist, so only Carol sees the tampered wrap.
			if err := w.alice.v.OrgRemove(ctx, w.alice.r, orgID, w.bob.email, nil); err != nil {
				t.Fatal(err)
			}
		}, "statement"},
		{"membership rolled back (removal hidden)", func(t *testing.T, w *orgWorld, orgID, team string) {
			if err := w.alice.v.OrgRemove(ctx, w.alice.r, orgID, w.bob.email, nil); err != nil {
				t.Fatal(err)
			}
			mustSync(t, w.carol.v, w.carol.r)
			pinned := w.carol.v.orgs[orgID].Seq
			w.liar.set(func(id string, p *api.OrgLogPage) {
				p.Head = pinned - 3
				p.Entries = nil
			}, nil)
		}, "rolled the membership back"},
		{"forked log", func(t *testing.T, w *orgWorld, orgID, team string) {
			sk, _ := serverKeys(t)
			w.liar.set(func(id string, p *api.OrgLogPage) {
				if id != orgID {
					return
				}
				// A different statement at the next position,
				// not linking to what Carol pinned.
				st := w.carol.v.orgs[orgID].Clone()
				st.Head[0] ^= 1
				p.Entries = []api.OrgEntry{forge(t, st, org.ByRoot, sk, org.Statement{Type: org.TypeInvite, Email: "x@example.com"})}
				p.Head = st.Seq + 1
			}, nil)
		}, "statement"},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			w, team := sharedWorld(t)
			orgID := w.alice.v.vaults[team].org
			at.run(t, w, orgID, team)
			orgRefused(t, w.carol, at.words)
		})
	}
}

// TestOrgAcceptRefusesWrongRoot: the server shows the invitee an
// organisation whose root is not the one the inviter sees (its own, or a
// swapped key): accepting with the inviter's fingerprint fails and nothing
// is pinned.
func TestOrgAcceptRefusesWrongRoot(t *testing.T) {
	w := newOrgWorld(t)
	a, b := w.alice, w.bob
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.v.OrgInvite(ctx, a.r, sum.ID, b.email); err != nil {
		t.Fatal(err)
	}
	// The server's own organisation, also "Acme", also inviting Bob.
	sk, ek := serverKeys(t)
	mallory := fakeID(t)
	entries, st, root, err := org.NewOrg(rand.Reader, "Acme", mallory, "mallory@example.com", sk.Public(), ek.Public(), 1)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := st.Next(org.Signer{By: mallory, Key: sk}, org.Statement{Type: org.TypeInvite, Email: b.email}, 2)
	if err != nil {
		t.Fatal(err)
	}
	root.Wipe()
	fake := append(toAPIEntries(entries), api.OrgEntry{Body: inv.Body, Sig: inv.Sig})
	w.liar.set(func(id string, p *api.OrgLogPage) {
		if id == sum.ID {
			p.Entries, p.Head = fake, uint64(len(fake))
		}
	}, nil)
	_, err = b.v.OrgAccept(ctx, b.r, sum.ID, sum.Fingerprint)
	if err == nil {
		t.Fatal("accepted an organisation whose root the inviter does not see")
	}
	if len(b.v.orgs) != 0 {
		t.Fatal("something was pinned")
	}
	// With the proxy honest again and the right code, it works.
	w.liar.set(nil, nil)
	if _, err := b.v.OrgAccept(ctx, b.r, "Acme", sum.Fingerprint); err != nil {
		t.Fatal(err)
	}
	// A typed code that does not match is refused.
	if err := a.v.OrgConfirm(ctx, a.r, "Acme", b.email, "00000-00000-00000-00000-00000-00000"); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
}

// TestOrgConfirmRefusesSubstitutedMemberKey: the server replaces Bob's
// acceptance with one carrying its own keys: the administrator, checking
// Bob's code, refuses to certify.
func TestOrgConfirmRefusesSubstitutedMemberKey(t *testing.T) {
	w := newOrgWorld(t)
	a, b := w.alice, w.bob
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.v.OrgInvite(ctx, a.r, sum.ID, b.email); err != nil {
		t.Fatal(err)
	}
	acc, err := b.v.OrgAccept(ctx, b.r, "Acme", sum.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy serves Alice a log where Bob's accept carries the
	// server's keys (self-signed with them, so it verifies).
	sk, ek := serverKeys(t)
	w.liar.set(func(id string, p *api.OrgLogPage) {
		var out []api.OrgEntry
		st := a.v.orgs[id].Clone()
		for _, e := range p.Entries {
			s, err := org.Decode(org.Entry{Body: e.Body, Sig: e.Sig})
			if err == nil && s.Type == org.TypeAccept {
				e = forge(t, st, s.Account, sk, org.Statement{Type: org.TypeAccept, Account: s.Account, Email: s.Email, Identity: sk.Public().Bytes(), Encryption: ek.Public().Bytes()})
			} else if err == nil && s.Type == org.TypeDevice && s.Account == b.v.Account() {
				continue
			}
			if err := st.Apply(org.Entry{Body: e.Body, Sig: e.Sig}); err != nil {
				t.Logf("forged log does not apply: %v", err)
			}
			out = append(out, e)
		}
		p.Entries, p.Head = out, st.Seq
	}, nil)
	err = a.v.OrgConfirm(ctx, a.r, "Acme", b.email, acc.Fingerprint)
	if !errors.Is(err, ErrFingerprint) {
		t.Fatalf("confirm of substituted keys: %v", err)
	}
}

func decodeEntryBody(b []byte) (*vlog.Entry, error) { return vlog.DecodeBody(b) }

// openPayloadFor tries every key generation s holds on a payload.
func (s *vaultState) openPayloadFor(id string, rev uint64, payload []byte) ([]byte, error) {
	c := itemContext(s.acct, s.id, id, rev)
	pt, err := envelope.Open(s.key, c, payload)
	for _, k := range s.old {
		if err == nil {
			break
		}
		pt, err = envelope.Open(k, c, payload)
	}
	return pt, err
}

func fakeID(t testing.TB) string {
	t.Helper()
	id, err := newID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMoveAndCopyBetweenVaults(t *testing.T) {
	v, _, _ := newVault(t)
	work, err := v.CreateVault(ctx, nil, "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	it := addLogin(t, v, "Mail", "pw-one")
	if _, err := v.Attach(ctx, it.ID, "note.txt", strings.NewReader("attached words")); err != nil {
		t.Fatal(err)
	}
	cp, err := v.CopyItem(ctx, "Mail", "Work")
	if err != nil {
		t.Fatal(err)
	}
	if cp.ID == it.ID || cp.Password != "pw-one" || len(cp.Attachments) != 1 {
		t.Fatalf("copy: %+v", cp)
	}
	var buf bytes.Buffer
	if _, err := v.ReadAttachment(ctx, cp.ID, "note.txt", &buf); err != nil || buf.String() != "attached words" {
		t.Fatalf("copied attachment: %q %v", buf.String(), err)
	}
	mv, err := v.MoveItem(ctx, it.ID, work.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := titlesIn(t, v, "Personal"); len(got) != 0 {
		t.Fatalf("personal still holds %v", got)
	}
	if got := titlesIn(t, v, "Work"); !slices.Equal(got, []string{"Mail", "Mail"}) {
		t.Fatalf("work holds %v", got)
	}
	if _, err := v.Get(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CopyItem(ctx, mv.ID, "Work"); err == nil {
		t.Fatal("copied an item into its own vault")
	}
	if rep, err := v.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// racingRemote runs hook once, just before the first organisation push.
type racingRemote struct {
	remote.Remote
	once sync.Once
	hook func()
}

func (r *racingRemote) Orgs(ctx context.Context) ([]api.Org, error) {
	return r.Remote.(remote.Orgs).Orgs(ctx)
}
func (r *racingRemote) CreateOrg(ctx context.Context, id string, e []api.OrgEntry) (uint64, error) {
	return r.Remote.(remote.Orgs).CreateOrg(ctx, id, e)
}
func (r *racingRemote) PullOrg(ctx context.Context, id string, since uint64) (api.OrgLogPage, error) {
	return r.Remote.(remote.Orgs).PullOrg(ctx, id, since)
}
func (r *racingRemote) PushOrg(ctx context.Context, id string, base uint64, e []api.OrgEntry) (uint64, error) {
	r.once.Do(r.hook)
	return r.Remote.(remote.Orgs).PushOrg(ctx, id, base, e)
}
func (r *racingRemote) OrgVaults(ctx context.Context, id string) ([]api.Vault, error) {
	return r.Remote.(remote.Orgs).OrgVaults(ctx, id)
}
func (r *racingRemote) PutOrgVault(ctx context.Context, id, vault string) error {
	return r.Remote.(remote.Orgs).PutOrgVault(ctx, id, vault)
}
func (r *racingRemote) DeleteOrg(ctx context.Context, id string) error {
	return r.Remote.(remote.Orgs).DeleteOrg(ctx, id)
}

// TestOrgRemovalRacingAWrite: the member being removed writes between the
// moment the remover reads the vault's head and its push. The server
// refuses heads that are not current, the remover syncs and signs again,
// and the entry written before the removal stays valid for everyone.
func TestOrgRemovalRacingAWrite(t *testing.T) {
	w, team := sharedWorld(t)
	a, b, c := w.alice, w.bob, w.carol
	rr := &racingRemote{Remote: a.r, hook: func() {
		addTo(t, b.v, team, "just before removal")
		mustSync(t, b.v, b.r)
	}}
	if err := a.v.OrgRemove(ctx, rr, "Acme", b.email, nil); err != nil {
		t.Fatal(err)
	}
	mustSync(t, c.v, c.r)
	if got := titlesIn(t, c.v, team); !slices.Contains(got, "just before removal") {
		t.Fatalf("carol sees %v", got)
	}
	mustSync(t, a.v, a.r)
}
