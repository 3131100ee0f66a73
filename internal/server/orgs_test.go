package server

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

// member is a test account with the identity and encryption keys it
// presents to organisations.
type member struct {
	*user
	identity *sign.PrivateKey
	enc      *pke.PrivateKey
}

func (e *env) member(email string) *member {
	e.t.Helper()
	id, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	enc, err := pke.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	return &member{user: e.register(email), identity: id, enc: enc}
}

// on returns the member as a client of another server (sharing the store,
// so the session is valid there too).
func (m *member) on(e *env) *member {
	u := *m.user
	u.e = e
	return &member{user: &u, identity: m.identity, enc: m.enc}
}

// testOrg follows an organisation's log as its honest members see it:
// st is the state after every statement the server accepted.
type testOrg struct {
	t    *testing.T
	id   string
	st   *org.State
	root *sign.PrivateKey
}

// newOrg makes an organisation owned by m (not yet on the server) and
// returns its first statements.
func newOrg(t *testing.T, m *member) (*testOrg, []api.OrgEntry) {
	t.Helper()
	entries, st, root, err := org.NewOrg(rand.Reader, "Acme", m.id, m.email, m.identity.Public(), m.enc.Public(), time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(root.Wipe)
	return &testOrg{t: t, id: st.Org, st: st, root: root}, apiEntries(entries)
}

func apiEntries(in []org.Entry) []api.OrgEntry {
	out := make([]api.OrgEntry, len(in))
	for i, e := range in {
		out[i] = api.OrgEntry{Body: e.Body, Sig: e.Sig}
	}
	return out
}

// create posts the organisation's first statements as m.
func (o *testOrg) create(m *member, entries []api.OrgEntry) resp {
	o.t.Helper()
	var out api.OrgAppended
	r := m.do("POST", api.PathOrgs, api.OrgCreate{Org: o.id, Entries: entries}, &out)
	if r.status == 200 && out.Head != uint64(len(entries)) {
		o.t.Fatalf("create: head %d, want %d", out.Head, len(entries))
	}
	return r
}

// next signs the next statement as by (nil: the root key), checked
// against the current state.
func (o *testOrg) next(by *member, st org.Statement) org.Entry {
	o.t.Helper()
	signer := org.Signer{By: org.ByRoot, Key: o.root}
	if by != nil {
		signer = org.Signer{By: by.id, Key: by.identity}
	}
	e, err := o.st.Next(signer, st, time.Now().UnixMilli())
	if err != nil {
		o.t.Fatalf("next %s statement: %v", st.Type, err)
	}
	return e
}

// forge signs the next statement as by without checking it: what a
// misbehaving client would send.
func (o *testOrg) forge(by string, key *sign.PrivateKey, st org.Statement) org.Entry {
	o.t.Helper()
	st.V, st.Org, st.Seq, st.Prev, st.Time, st.By = org.Version, o.id, o.st.Seq+1, o.st.Head[:], time.Now().UnixMilli(), by
	body, err := org.Encode(&st)
	if err != nil {
		o.t.Fatal(err)
	}
	sig, err := key.Sign(org.SignContext, body)
	if err != nil {
		o.t.Fatal(err)
	}
	return org.Entry{Body: body, Sig: sig}
}

// push appends entries as m at the current head; on success the test's
// state follows.
func (o *testOrg) push(m *member, entries ...org.Entry) resp {
	o.t.Helper()
	return o.pushAt(m, o.st.Seq, entries...)
}

func (o *testOrg) pushAt(m *member, base uint64, entries ...org.Entry) resp {
	o.t.Helper()
	var out api.OrgAppended
	r := m.do("POST", api.PathOrgs+"/"+o.id+"/log", api.OrgAppend{Base: base, Entries: apiEntries(entries)}, &out)
	if r.status == 200 {
		for _, e := range entries {
			if err := o.st.Apply(e); err != nil {
				o.t.Fatalf("the server accepted a statement the test's replay refuses: %v", err)
			}
		}
		if out.Head != o.st.Seq {
			o.t.Fatalf("append: head %d, want %d", out.Head, o.st.Seq)
		}
	}
	return r
}

// log reads the whole log as m.
func (o *testOrg) log(m *member) (api.OrgLogPage, resp) {
	o.t.Helper()
	var p api.OrgLogPage
	r := m.do("GET", api.PathOrgs+"/"+o.id+"/log", nil, &p)
	return p, r
}

// join invites, accepts and certifies m as a member.
func (o *testOrg) join(admin, m *member) {
	o.t.Helper()
	want(o.t, o.push(admin, o.next(admin, org.Statement{Type: org.TypeInvite, Email: strings.ToLower(m.email)})), 200, "")
	want(o.t, o.push(m, o.accept(m)), 200, "")
	want(o.t, o.push(admin, o.certify(admin, m, org.Member)), 200, "")
}

func (o *testOrg) accept(m *member) org.Entry {
	return o.next(m, org.Statement{Type: org.TypeAccept, Account: m.id, Email: strings.ToLower(m.email),
		Identity: m.identity.Public().Bytes(), Encryption: m.enc.Public().Bytes()})
}

func (o *testOrg) certify(by, m *member, role org.Role) org.Entry {
	return o.next(by, org.Statement{Type: org.TypeMember, Account: m.id, Email: strings.ToLower(m.email),
		Identity: m.identity.Public().Bytes(), Encryption: m.enc.Public().Bytes(), Role: role})
}

// wantRefused fails unless r is a 422 invalid_entry of rule org at seq.
func wantRefused(t *testing.T, r resp, seq uint64) {
	t.Helper()
	want(t, r, http.StatusUnprocessableEntity, api.CodeInvalidEntry)
	if r.err.Rule != api.RuleOrg || r.err.Seq != seq {
		t.Fatalf("refusal %+v, want rule %q at seq %d", r.err, api.RuleOrg, seq)
	}
}

// wantNoAccess fails unless r is a 403 forbidden of rule access.
func wantNoAccess(t *testing.T, r resp) {
	t.Helper()
	want(t, r, http.StatusForbidden, api.CodeForbidden)
	if r.err.Rule != api.RuleAccess {
		t.Fatalf("403 with rule %q, want %q", r.err.Rule, api.RuleAccess)
	}
}

func orgsOf(t *testing.T, m *member) []api.Org {
	t.Helper()
	var out api.Orgs
	want(t, m.do("GET", api.PathOrgs, nil, &out), 200, "")
	return out.Orgs
}

func TestOrgCreate(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ann, dan := e.member("ann@example.org"), e.member("dan@example.org")
		o, first := newOrg(t, ann)

		// Only the genesis: the creator would not be an owner.
		wantRefused(t, o.create(ann, first[:1]), 1)
		// Someone else's genesis.
		wantRefused(t, o.create(dan, first), 1)
		// Statements that do not replay: the owner certificate before
		// the genesis, a broken signature.
		wantRefused(t, o.create(ann, []api.OrgEntry{first[1], first[0]}), 1)
		bad := []api.OrgEntry{first[0], {Body: first[1].Body, Sig: bytes.Clone(first[1].Sig)}}
		bad[1].Sig[10] ^= 1
		wantRefused(t, o.create(ann, bad), 2)
		// An id that is not the root key's.
		other, _ := newOrg(t, ann)
		var out api.OrgAppended
		r := ann.do("POST", api.PathOrgs, api.OrgCreate{Org: other.id, Entries: first}, &out)
		wantRefused(t, r, 1)
		want(t, ann.do("POST", api.PathOrgs, api.OrgCreate{Org: "NOTANID", Entries: first}, nil), 400, api.CodeBadRequest)
		want(t, ann.do("POST", api.PathOrgs, api.OrgCreate{Org: o.id}, nil), 400, api.CodeBadRequest)

		want(t, o.create(ann, first), 200, "")
		want(t, o.create(ann, first), 409, api.CodeExists)
		if got := orgsOf(t, ann); len(got) != 1 || got[0] != (api.Org{Org: o.id, Head: 2, State: org.StateActive}) {
			t.Fatalf("ann's organisations %+v", got)
		}
		if got := orgsOf(t, dan); len(got) != 0 {
			t.Fatalf("dan's organisations %+v", got)
		}
		p, r := o.log(ann)
		want(t, r, 200, "")
		if p.Head != 2 || len(p.Entries) != 2 || !bytes.Equal(p.Entries[1].Body, first[1].Body) || !bytes.Equal(p.Entries[1].Sig, first[1].Sig) {
			t.Fatalf("log page: head %d, %d statements", p.Head, len(p.Entries))
		}
		var page api.OrgLogPage
		want(t, ann.do("GET", api.PathOrgs+"/"+o.id+"/log?since=1&limit=5", nil, &page), 200, "")
		if page.Head != 2 || len(page.Entries) != 1 || !bytes.Equal(page.Entries[0].Body, first[1].Body) {
			t.Fatalf("page since 1: %+v", page)
		}
		want(t, ann.do("GET", api.PathOrgs+"/"+o.id+"/log?since=2", nil, &page), 200, "")
		if page.Head != 2 || page.Entries == nil || len(page.Entries) != 0 {
			t.Fatalf("page at the head: %+v", page)
		}
		want(t, ann.do("GET", api.PathOrgs+"/"+o.id+"/log?limit=0", nil, nil), 400, api.CodeBadRequest)

		// A non-member reads nothing; an unknown organisation is 404.
		_, r = o.log(dan)
		wantNoAccess(t, r)
		want(t, dan.do("GET", api.PathOrgs+"/"+newID(t)+"/log", nil, nil), 404, api.CodeNotFound)
		want(t, dan.do("GET", api.PathOrgs+"/NOTANID/log", nil, nil), 400, api.CodeBadRequest)
		wantNoAccess(t, o.push(dan, o.forge(dan.id, dan.identity, org.Statement{Type: org.TypeInvite, Email: dan.email})))
		wantNoAccess(t, dan.do("GET", api.PathOrgs+"/"+o.id+"/vaults", nil, nil))
		wantNoAccess(t, dan.do("DELETE", api.PathOrgs+"/"+o.id, nil, nil))
	})
}

// TestOrgAppendRules: the server's replay refuses what the log's rules
// refuse, and statements signed by anyone but the session's account.
func TestOrgAppendRules(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ann, bob, eve := e.member("ann@example.org"), e.member("bob@example.org"), e.member("Eve@Example.org")
		o, first := newOrg(t, ann)
		want(t, o.create(ann, first), 200, "")

		// The invitee (by address, in any case) sees the organisation,
		// reads its log and pushes its own acceptance.
		want(t, o.push(ann, o.next(ann, org.Statement{Type: org.TypeInvite, Email: bob.email})), 200, "")
		want(t, o.push(ann, o.next(ann, org.Statement{Type: org.TypeInvite, Email: strings.ToLower(eve.email)})), 200, "")
		if got := orgsOf(t, eve); len(got) != 1 || got[0] != (api.Org{Org: o.id, Head: 4, State: org.StateInvited}) {
			t.Fatalf("the invitee's organisations %+v", got)
		}
		p, r := o.log(eve)
		want(t, r, 200, "")
		if p.Head != 4 || len(p.Entries) != 4 {
			t.Fatalf("the invitee's page: head %d, %d statements", p.Head, len(p.Entries))
		}
		// Nobody accepts another address's invitation.
		wantRefused(t, o.push(bob, o.next(bob, org.Statement{Type: org.TypeAccept, Account: bob.id, Email: strings.ToLower(eve.email),
			Identity: bob.identity.Public().Bytes(), Encryption: bob.enc.Public().Bytes()})), o.st.Seq+1)
		want(t, o.push(bob, o.accept(bob)), 200, "")
		if got := orgsOf(t, bob); len(got) != 1 || got[0].State != org.StateAccepted {
			t.Fatalf("bob's organisations after accepting %+v", got)
		}
		want(t, o.push(ann, o.certify(ann, bob, org.Member)), 200, "")
		if got := orgsOf(t, bob); len(got) != 1 || got[0].State != org.StateActive || got[0].Head != o.st.Seq {
			t.Fatalf("bob's organisations after confirmation %+v", got)
		}

		// A statement signed by another account than the session's.
		byAnn := o.next(ann, org.Statement{Type: org.TypeInvite, Email: "fay@example.org"})
		wantRefused(t, o.push(bob, byAnn), o.st.Seq+1)
		// ... also second in a batch.
		byBob := o.next(bob, org.Statement{Type: org.TypeDevice, Account: bob.id, Device: bob.device,
			Public: bob.signer().Public().Bytes(), Cert: deviceCert(t, bob)})
		r = o.push(ann, byAnn, o.forgeAfter(byAnn, bob.id, bob.identity, org.Statement{Type: org.TypeInvite, Email: "gil@example.org"}))
		wantRefused(t, r, o.st.Seq+2)
		want(t, o.push(bob, byBob), 200, "")

		// A root statement pushed by a member who is not an owner; the
		// owner may push it.
		promote := o.certify(nil, bob, org.Admin)
		wantRefused(t, o.push(bob, promote), o.st.Seq+1)
		want(t, o.push(ann, promote), 200, "")
		if o.st.Role(bob.id) != org.Admin {
			t.Fatal("bob is not an admin")
		}
		want(t, o.push(ann, o.certify(nil, bob, org.Member)), 200, "")

		// A statement that does not apply: a member certifying an
		// invitee who accepted.
		want(t, o.push(eve, o.accept(eve)), 200, "")
		certByBob := o.forge(bob.id, bob.identity, org.Statement{Type: org.TypeMember, Account: eve.id, Email: strings.ToLower(eve.email),
			Identity: eve.identity.Public().Bytes(), Encryption: eve.enc.Public().Bytes(), Role: org.Member})
		r = o.push(bob, certByBob)
		wantRefused(t, r, o.st.Seq+1)
		if !strings.Contains(r.err.Message, "org") {
			t.Errorf("refusal message %q", r.err.Message)
		}
		// Garbage.
		wantRefused(t, o.push(bob, org.Entry{Body: []byte("{}"), Sig: []byte{1}}), o.st.Seq+1)
		want(t, bob.do("POST", api.PathOrgs+"/"+o.id+"/log", api.OrgAppend{Base: o.st.Seq}, nil), 400, api.CodeBadRequest)

		// Stale: the head moved.
		head := o.st.Seq
		inv := o.next(ann, org.Statement{Type: org.TypeInvite, Email: "hal@example.org"})
		r = o.pushAt(ann, head-1, inv)
		want(t, r, 409, api.CodeStale)
		if r.err.Head != head {
			t.Fatalf("stale answer head %d, want %d", r.err.Head, head)
		}
		want(t, o.pushAt(ann, head+1, inv), 409, api.CodeStale)
		want(t, o.push(ann, inv), 200, "")
		p, _ = o.log(ann)
		if p.Head != o.st.Seq || len(p.Entries) != int(o.st.Seq) {
			t.Fatalf("log after the refusals: head %d, %d statements, want %d", p.Head, len(p.Entries), o.st.Seq)
		}
		// The server's state matches the members' replay.
		var all []org.Entry
		for _, e := range p.Entries {
			all = append(all, org.Entry{Body: e.Body, Sig: e.Sig})
		}
		st, err := org.Replay(o.id, o.st.Root, all)
		if err != nil || !st.Head.Equal(o.st.Head) {
			t.Fatalf("replay of the served log: %v", err)
		}
	})
}

// forgeAfter forges a statement that follows prev (not yet applied).
func (o *testOrg) forgeAfter(prev org.Entry, by string, key *sign.PrivateKey, st org.Statement) org.Entry {
	o.t.Helper()
	next := o.st.Clone()
	if err := next.Apply(prev); err != nil {
		o.t.Fatal(err)
	}
	saved := o.st
	o.st = next
	defer func() { o.st = saved }()
	return o.forge(by, key, st)
}

// deviceCert is m's certificate of its device key (design §2.3).
func deviceCert(t *testing.T, m *member) []byte {
	t.Helper()
	msg := []byte(m.id + "\x00" + m.device + "\x00")
	msg = append(msg, m.signer().Public().Bytes()...)
	sig, err := m.identity.Sign("safehold/v1 device-cert", msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestSharedVaults: access to shared vault logs and blobs follows the
// organisation's log: read to pull and download, write to push and
// upload; removal ends both.
func TestSharedVaults(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ann, bob, cat, dan := e.member("ann@example.org"), e.member("bob@example.org"), e.member("cat@example.org"), e.member("dan@example.org")
		o, first := newOrg(t, ann)
		want(t, o.create(ann, first), 200, "")
		o.join(ann, bob)
		o.join(ann, cat)

		v := newID(t)
		want(t, o.push(ann, o.next(ann, org.Statement{Type: org.TypeVault, Vault: v, SealedName: randomBytes(80)})), 200, "")
		want(t, o.push(ann,
			o.next(ann, org.Statement{Type: org.TypeGrant, Vault: v, Subject: bob.id, Access: org.Write}),
		), 200, "")
		want(t, o.push(ann,
			o.next(ann, org.Statement{Type: org.TypeGrant, Vault: v, Subject: cat.id, Access: org.Read}),
		), 200, "")
		vaultPath := api.PathOrgs + "/" + o.id + "/vaults/"

		// Creating the vault's log: the log must name it, the caller
		// must manage it.
		want(t, ann.do("PUT", vaultPath+newID(t), nil, nil), 404, api.CodeNotFound)
		wantNoAccess(t, bob.do("PUT", vaultPath+v, nil, nil))
		wantNoAccess(t, dan.do("PUT", vaultPath+v, nil, nil))
		want(t, ann.do("PUT", vaultPath+v, nil, nil), 204, "")
		want(t, ann.do("PUT", vaultPath+v, nil, nil), 204, "")
		// A personal vault's id cannot be named by an organisation: the
		// statement is refused, and the log stays as it was.
		own := ann.newVault()
		head := o.st.Seq
		want(t, o.push(ann, o.next(ann, org.Statement{Type: org.TypeVault, Vault: own, SealedName: randomBytes(80)})), 422, api.CodeInvalidEntry)
		var page api.OrgLogPage
		want(t, ann.do("GET", api.PathOrgs+"/"+o.id+"/log?since=0", nil, &page), 200, "")
		if page.Head != head {
			t.Fatalf("head %d after a refused vault statement, want %d", page.Head, head)
		}

		for _, m := range []*member{ann, bob, cat} {
			var vs api.Vaults
			want(t, m.do("GET", api.PathOrgs+"/"+o.id+"/vaults", nil, &vs), 200, "")
			if len(vs.Vaults) != 1 || vs.Vaults[0].Vault != v || vs.Vaults[0].Head != 0 || len(vs.Vaults[0].Record) != 0 {
				t.Fatalf("%s's shared vaults %+v", m.email, vs)
			}
		}
		// Shared vaults are not in the personal list.
		var vs api.Vaults
		want(t, bob.do("GET", api.PathVaults, nil, &vs), 200, "")
		if len(vs.Vaults) != 0 {
			t.Fatalf("bob's personal vaults %+v", vs)
		}

		// A writer pushes; the log is chained from the vault's genesis
		// and written by the session's device as always.
		bw := bob.writer(v)
		item := newID(t)
		want(t, bw.append(0, bw.entry(vlog.OpPut, item, 1, []byte("shared payload"))), 200, "")
		want(t, bw.append(1, bw.custom(func(x *vlog.Entry) { x.Device = cat.device }, []byte("x"))), 422, api.CodeInvalidEntry)
		// A reader pulls but cannot push.
		p, r := cat.logPage(v, "")
		want(t, r, 200, "")
		if p.Head != 1 || len(p.Entries) != 1 || string(p.Entries[0].Payload) != "shared payload" {
			t.Fatalf("cat's page %+v", p)
		}
		cw := cat.writer(v)
		cw.seq, cw.head = bw.seq, bw.head
		r = cw.append(1, cw.entry(vlog.OpPut, item, 2, []byte("cat was here")))
		wantNoAccess(t, r)
		// Someone outside reads and writes nothing.
		_, r = dan.logPage(v, "")
		wantNoAccess(t, r)
		dw := dan.writer(v)
		dw.seq, dw.head = bw.seq, bw.head
		wantNoAccess(t, dw.append(1, dw.entry(vlog.OpPut, item, 2, []byte("dan"))))

		// Blobs: write to upload, read to download.
		blob := newID(t)
		blobURL := api.PathVaults + "/" + v + "/blobs/" + item + "/" + blob
		frame := func() []byte {
			var b bytes.Buffer
			binary.Write(&b, binary.BigEndian, uint32(40))
			b.Write(randomBytes(40))
			return b.Bytes()
		}
		want(t, bob.e.raw("PUT", blobURL, bob.sess.AccessToken, "application/octet-stream", bytes.NewReader(frame()), nil), 204, "")
		wantNoAccess(t, cat.e.raw("PUT", blobURL, cat.sess.AccessToken, "application/octet-stream", bytes.NewReader(frame()), nil))
		want(t, cat.e.raw("GET", blobURL, cat.sess.AccessToken, "", nil, nil), 200, "")
		wantNoAccess(t, dan.e.raw("GET", blobURL, dan.sess.AccessToken, "", nil, nil))

		// A second server process on the same store, its cache warm.
		e2 := startEnv(t, e.store, t.TempDir())
		cat2 := cat.on(e2)
		if _, r := cat2.logPage(v, ""); r.status != 200 {
			t.Fatalf("cat on the second server: %d", r.status)
		}
		if _, r := o.log(cat2); r.status != 200 {
			t.Fatalf("cat reads the log on the second server: %d", r.status)
		}

		// Removal through the first server ends access on both.
		want(t, o.push(ann, o.next(ann, org.Statement{Type: org.TypeRemove, Account: cat.id})), 200, "")
		for _, c := range []*member{cat, cat2} {
			_, r := o.log(c)
			wantNoAccess(t, r)
			_, r = c.logPage(v, "")
			wantNoAccess(t, r)
			wantNoAccess(t, c.e.raw("GET", blobURL, c.sess.AccessToken, "", nil, nil))
			wantNoAccess(t, c.do("GET", api.PathOrgs+"/"+o.id+"/vaults", nil, nil))
		}
		cw = cat.writer(v)
		cw.seq, cw.head = bw.seq, bw.head
		wantNoAccess(t, cw.append(1, cw.entry(vlog.OpPut, item, 2, []byte("cat, removed"))))
		wantNoAccess(t, o.push(cat, o.forge(cat.id, cat.identity, org.Statement{Type: org.TypeInvite, Email: "x@example.org"})))
		if got := orgsOf(t, cat); len(got) != 0 {
			t.Fatalf("a removed member's organisations %+v", got)
		}
		// The writer still writes.
		want(t, bw.append(1, bw.entry(vlog.OpPut, item, 2, []byte("bob again"))), 200, "")

		// Only an owner dissolves the organisation.
		wantNoAccess(t, bob.do("DELETE", api.PathOrgs+"/"+o.id, nil, nil))
		want(t, ann.do("DELETE", api.PathOrgs+"/"+o.id, nil, nil), 204, "")
		_, r = o.log(ann)
		want(t, r, 404, api.CodeNotFound)
		_, r = bob.logPage(v, "")
		want(t, r, 404, api.CodeNotFound)
		_, r = o.log(bob.on(e2))
		want(t, r, 404, api.CodeNotFound)
		if got := orgsOf(t, bob); len(got) != 0 {
			t.Fatalf("organisations after dissolution %+v", got)
		}
	})
}

// TestOrgConcurrentAppend: of appends racing on one base, exactly one
// wins; the others are stale, and the log is the winner's.
func TestOrgConcurrentAppend(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ann := e.member("ann@example.org")
		o, first := newOrg(t, ann)
		want(t, o.create(ann, first), 200, "")
		const n = 6
		entries := make([]org.Entry, n)
		for i := range entries {
			entries[i] = o.next(ann, org.Statement{Type: org.TypeInvite, Email: "racer" + string(rune('a'+i)) + "@example.org"})
		}
		statuses := make([]int, n)
		heads := make([]uint64, n)
		done := make(chan struct{})
		for i := range n {
			go func() {
				defer func() { done <- struct{}{} }()
				r := ann.do("POST", api.PathOrgs+"/"+o.id+"/log", api.OrgAppend{Base: 2, Entries: apiEntries(entries[i : i+1])}, nil)
				statuses[i], heads[i] = r.status, r.err.Head
			}()
		}
		for range n {
			<-done
		}
		winner := -1
		for i, s := range statuses {
			switch {
			case s == 200 && winner < 0:
				winner = i
			case s == 409 && heads[i] == 3:
			default:
				t.Fatalf("append %d: status %d head %d (statuses %v)", i, s, heads[i], statuses)
			}
		}
		if winner < 0 {
			t.Fatalf("no append won: %v", statuses)
		}
		p, r := o.log(ann)
		want(t, r, 200, "")
		if p.Head != 3 || !bytes.Equal(p.Entries[2].Body, entries[winner].Body) {
			t.Fatalf("log after the race: head %d", p.Head)
		}
	})
}
