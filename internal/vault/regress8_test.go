package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/vlog"
)

// Review of issue 4 (organisations and shared vaults): regressions for
// what a malicious server or member can do. See /work/notes-issue4.md,
// "review findings".

// evilRemote is a malicious server at the API level: it wraps a real
// client and may rewrite or refuse any organisation or vault call.
type evilRemote struct {
	*httpremote.Client
	orgs      func(list []api.Org) []api.Org
	pullOrg   func(org string, since uint64) (api.OrgLogPage, bool)
	pushOrg   func(org string, entries []api.OrgEntry) error
	orgVaults func(list []api.Vault)
	pull      func(vault string, p *api.LogPage)
	putVault  func(org, vault string) // before PutOrgVault is forwarded
	pulls     atomic.Int64
}

func (e *evilRemote) PutOrgVault(ctx context.Context, id, vault string) error {
	if e.putVault != nil {
		e.putVault(id, vault)
	}
	return e.Client.PutOrgVault(ctx, id, vault)
}

func evil(t testing.TB, m member) *evilRemote {
	t.Helper()
	c, ok := m.r.(*httpremote.Client)
	if !ok {
		t.Fatalf("remote is %T", m.r)
	}
	return &evilRemote{Client: c}
}

func (e *evilRemote) Orgs(ctx context.Context) ([]api.Org, error) {
	list, err := e.Client.Orgs(ctx)
	if err == nil && e.orgs != nil {
		list = e.orgs(list)
	}
	return list, err
}

func (e *evilRemote) PullOrg(ctx context.Context, id string, since uint64) (api.OrgLogPage, error) {
	e.pulls.Add(1)
	if e.pullOrg != nil {
		if p, ok := e.pullOrg(id, since); ok {
			return p, nil
		}
	}
	return e.Client.PullOrg(ctx, id, since)
}

func (e *evilRemote) PushOrg(ctx context.Context, id string, base uint64, entries []api.OrgEntry) (uint64, error) {
	if e.pushOrg != nil {
		if err := e.pushOrg(id, entries); err != nil {
			return 0, err
		}
	}
	return e.Client.PushOrg(ctx, id, base, entries)
}

func (e *evilRemote) OrgVaults(ctx context.Context, id string) ([]api.Vault, error) {
	list, err := e.Client.OrgVaults(ctx, id)
	if err == nil && e.orgVaults != nil {
		e.orgVaults(list)
	}
	return list, err
}

func (e *evilRemote) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	p, err := e.Client.Pull(ctx, vault, since)
	if err == nil && e.pull != nil {
		e.pull(vault, &p)
	}
	return p, err
}

var (
	_ remote.Remote = (*evilRemote)(nil)
	_ remote.Orgs   = (*evilRemote)(nil)
)

// forgeVaultEntry makes the log entry a device of m would write to put a
// new item into vault s after the head `after` of viewer's copy: the
// payload sealed under m's newest key of the vault, signed with m's device
// key. It is what a removed member (or a stolen device) hands a colluding
// server.
func forgeVaultEntry(t *testing.T, m *Vault, viewer *vaultState, title string) api.Entry {
	t.Helper()
	s := m.vaults[viewer.id]
	id := fakeID(t)
	pt, err := encodeItem(item.Item{ID: id, Type: item.Login, Title: title, Password: "injected"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := envelope.Seal(m.opts.Rand, s.key, itemContext(s.acct, s.id, id, 1), pt)
	if err != nil {
		t.Fatal(err)
	}
	e := &vlog.Entry{Op: vlog.OpPut, Seq: viewer.seq + 1, Time: 1, Prev: viewer.head, Revision: 1, Vault: s.id, Item: id, Device: m.device.ID}
	copy(e.Digest[:], digest(payload))
	body, err := e.Sign(m.signer)
	if err != nil {
		t.Fatal(err)
	}
	return api.Entry{Body: body, Sig: e.Sig, Payload: payload}
}

// F1. The heads of a removal come from the server (orgHeads ←
// OrgVaults), unverified. A server that inflates them makes the signed
// removal record RemovedAt = a huge position, and MayWrite then accepts
// the removed member's entries for ever: the removed member keeps writing
// into the vault, and every client accepts it.
func TestReviewRemovalHeadsFromServerLetRemovedMemberWrite(t *testing.T) {
	w, team := sharedWorld(t)
	a, b := w.alice, w.bob
	orgID := a.v.vaults[team].org
	ev := evil(t, a)
	ev.orgVaults = func(list []api.Vault) {
		for i := range list {
			list[i].Head = 1 << 40
		}
	}
	if err := a.v.OrgRemove(ctx, ev, "Acme", b.email, nil); err != nil {
		t.Fatal(err)
	}
	bob := b.v.Account()
	if at := a.v.orgs[orgID].Members[bob].RemovedAt[team]; at > a.v.vaults[team].seq {
		t.Errorf("the signed removal records bob's last allowed position as %d, but the vault's verified head is %d: the server chose it", at, a.v.vaults[team].seq)
	}
	// Bob (removed) and the server collude: the server serves Alice an
	// entry Bob's device signed after his removal.
	inj := forgeVaultEntry(t, b.v, a.v.vaults[team], "written after removal")
	ev.pull = func(vault string, p *api.LogPage) {
		if vault == team {
			p.Entries = append(p.Entries, inj)
			p.Head++
		}
	}
	_, err := a.v.Sync(ctx, ev)
	if err == nil {
		if slices.Contains(titlesIn(t, a.v, team), "written after removal") {
			t.Fatal("alice accepted an item the removed member wrote after his removal")
		}
		t.Fatal("sync accepted the removed member's entry")
	}
	if !errors.Is(err, ErrRemoteTampered) {
		t.Fatalf("sync: %v", err)
	}
}

// F1 control (passes): with honest heads the same injected entry is
// refused.
func TestReviewRemovedMemberEntryRefusedWithHonestHeads(t *testing.T) {
	w, team := sharedWorld(t)
	a, b := w.alice, w.bob
	if err := a.v.OrgRemove(ctx, a.r, "Acme", b.email, nil); err != nil {
		t.Fatal(err)
	}
	ev := evil(t, a)
	inj := forgeVaultEntry(t, b.v, a.v.vaults[team], "written after removal")
	ev.pull = func(vault string, p *api.LogPage) {
		if vault == team {
			p.Entries = append(p.Entries, inj)
			p.Head++
		}
	}
	if _, err := a.v.Sync(ctx, ev); !errors.Is(err, ErrRemoteTampered) {
		t.Fatalf("sync: %v, want ErrRemoteTampered", err)
	}
}

// F2. A removal marks the vault to rotate, but nothing stops writers from
// sealing new items under the old generation until a manager has rotated.
// A server that refuses the manager's rotation push (refusing service is
// within its powers) keeps the old key in use: Bob's new secret is sealed
// under generation 1, which Carol (removed) holds.
func TestReviewWriteBeforePendingRotationUsesRemovedMembersKey(t *testing.T) {
	w, team := sharedWorld(t)
	a, b, c := w.alice, w.bob, w.carol
	ev := evil(t, a)
	ev.pushOrg = func(id string, entries []api.OrgEntry) error {
		for _, e := range entries {
			if st, err := org.Decode(org.Entry{Body: e.Body, Sig: e.Sig}); err == nil && st.Type == org.TypeKey && st.Gen >= 2 {
				return fmt.Errorf("%w: the server refuses the rotation", remote.ErrStale)
			}
		}
		return nil
	}
	err := a.v.OrgRemove(ctx, ev, "Acme", c.email, nil)
	if err == nil {
		t.Fatal("the rotation went through")
	}
	orgID := a.v.vaults[team].org
	mustSync(t, b.v, b.r)
	if info := b.v.orgs[orgID].Vaults[team]; !info.Rotate || info.Gen != 1 {
		t.Fatalf("setup: rotate %v gen %d", info.Rotate, info.Gen)
	}
	if m := b.v.orgs[orgID].Members[c.v.Account()]; m.State != org.StateRemoved {
		t.Fatalf("setup: carol is %s", m.State)
	}
	// Bob has seen Carol's removal and writes a new secret.
	_, err = b.v.AddTo(ctx, team, []item.Item{{Type: item.Login, Title: "after carol left", Password: "new-secret"}})
	if err != nil {
		return // refused until the key rotates: fixed
	}
	mustSync(t, b.v, b.r)
	page, err := a.r.Pull(ctx, team, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := page.Entries[len(page.Entries)-1]
	e, _ := decodeEntryBody(last.Body)
	if _, err := c.v.vaults[team].openPayloadFor(e.Item, e.Revision, last.Payload); err == nil {
		t.Fatal("bob wrote a new secret after carol's removal under a key carol holds (rotation pending; nothing refused the write)")
	}
}

// F3. Dissolving an organisation (safe org rm by its creator) deletes its
// log and shared vaults on the server; every other member's next sync
// then fails on the 404 for ever (pullOrg and syncLog only tolerate 403),
// so one owner's legitimate action, or a server that answers 404, breaks
// sync of every personal vault of every member.
func TestReviewDissolvedOrgBreaksMembersSync(t *testing.T) {
	w, _ := sharedWorld(t)
	a, b := w.alice, w.bob
	addLogin(t, b.v, "BobPersonal", "pw")
	if err := a.v.OrgDelete(ctx, a.r, "Acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.v.Sync(ctx, b.r); err != nil {
		t.Fatalf("bob's sync after the organisation was dissolved: %v", err)
	}
}

// F4. invitation() (run by every sync through adoptOrgs, and by Orgs and
// OrgAccept) downloads an unpinned organisation's whole log into memory
// before verifying even its genesis: a server that lists one fake
// organisation and claims a head of 2^20 is read page after page of
// garbage (up to 2^20 statements of up to 32 MiB pages, tens of GiB) on
// every sync. It should stop at the first statement that does not verify.
func TestReviewInvitationReadsUnverifiedLogWithoutBound(t *testing.T) {
	w := newOrgWorld(t)
	b := w.bob
	ev := evil(t, b)
	fakeOrg := fakeID(t)
	ev.orgs = func(list []api.Org) []api.Org {
		return append(list, api.Org{Org: fakeOrg, Head: org.MaxEntries, State: org.StateActive})
	}
	junk := api.OrgEntry{Body: []byte("not a statement"), Sig: []byte("x")}
	page := make([]api.OrgEntry, api.MaxPageLimit)
	for i := range page {
		page[i] = junk
	}
	ev.pullOrg = func(id string, since uint64) (api.OrgLogPage, bool) {
		if id != fakeOrg {
			return api.OrgLogPage{}, false
		}
		return api.OrgLogPage{Head: org.MaxEntries, Entries: page}, true
	}
	// Refusing the organisation or skipping it are both fine; pinning
	// it is not.
	b.v.Sync(ctx, ev)
	if _, ok := b.v.orgs[fakeOrg]; ok {
		t.Fatal("sync pinned a garbage organisation")
	}
	if n := ev.pulls.Load(); n > 2 {
		t.Fatalf("the client pulled %d pages (%d statements held unverified) of an organisation whose first statement does not decode", n, n*api.MaxPageLimit)
	}
}

// F5. A vault statement may name any id, also one that is already another
// organisation's shared vault (or someone's personal vault): neither the
// org rules nor the server refuse it. The administrator of any other
// organisation Bob belongs to can so break Bob's sync for good
// (ensureSharedVaults: "vault ... is also claimed by organisation ...").
func TestReviewVaultIDClaimedByAnotherOrgBreaksSync(t *testing.T) {
	w, team := sharedWorld(t)
	b, c := w.bob, w.carol
	// Carol runs her own organisation and invites Bob.
	evilOrg, err := c.v.CreateOrg(ctx, c.r, "Evil")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.v.OrgInvite(ctx, c.r, evilOrg.ID, b.email); err != nil {
		t.Fatal(err)
	}
	acc, err := b.v.OrgAccept(ctx, b.r, evilOrg.ID, evilOrg.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.v.OrgConfirm(ctx, c.r, evilOrg.ID, b.email, acc.Fingerprint); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b.v, b.r)
	// Carol names Acme's vault id in Evil's log, signed properly.
	key, err := randomKey(c.v.opts.Rand)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := envelope.Seal(c.v.opts.Rand, key, envelope.Context{Purpose: purposeVaultName, Account: evilOrg.ID, Vault: team}, []byte("Team"))
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := orgsRemote(c.r)
	err = c.v.orgChange(ctx, ro, evilOrg.ID, func(bld *orgBuilder) error {
		if err := bld.add(org.Statement{Type: org.TypeVault, Vault: team, SealedName: sealed}); err != nil {
			return err
		}
		if err := bld.add(org.Statement{Type: org.TypeGrant, Vault: team, Subject: b.v.Account(), Access: org.Read}); err != nil {
			return err
		}
		return c.v.addWrap(bld, team, b.v.Account(), 1, key)
	})
	if err != nil {
		t.Logf("refused (fixed on the server): %v", err)
		return
	}
	if _, err := b.v.Sync(ctx, b.r); err != nil {
		t.Fatalf("another organisation's admin broke bob's sync: %v", err)
	}
}

// F6. A member with write access cannot leave: OrgDelete signs a remove
// of itself without heads, which the rules refuse whenever the leaver
// loses write access somewhere (settle: "heads must give that vault's log
// head").
func TestReviewWriterCannotLeaveOrg(t *testing.T) {
	w, _ := sharedWorld(t)
	b := w.bob
	if err := b.v.OrgDelete(ctx, b.r, "Acme"); err != nil {
		t.Fatalf("bob (write on Team) leaves Acme: %v", err)
	}
}

// F7. Device ids are unique across an organisation, first come first
// served, and any member may certify a device of its own under any id: a
// member who copies another account's device id (visible in every org log
// and vault log it shares with that account, and to the server) blocks
// that device from every organisation it has not joined yet: OrgAccept
// (and publishDevice on sync) are refused for good. In a vault log, that
// id's entries are then attributed to the squatter.
func TestReviewDeviceIDSquatBlocksJoin(t *testing.T) {
	w := newOrgWorld(t)
	a, b, c := w.alice, w.bob, w.carol
	sum, err := a.v.CreateOrg(ctx, a.r, "Beta")
	if err != nil {
		t.Fatal(err)
	}
	w.enrol(t, sum.ID, c)
	// Carol certifies, as her own, a device with Bob's device id.
	idk, err := c.v.identityKey()
	if err != nil {
		t.Fatal(err)
	}
	defer idk.Wipe()
	sk, _ := serverKeys(t)
	pub := sk.Public().Bytes()
	cert, err := idk.Sign(deviceCertContext, deviceCertMessage(c.v.Account(), b.v.device.ID, pub))
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := orgsRemote(c.r)
	if err := c.v.orgChange(ctx, ro, sum.ID, func(bld *orgBuilder) error {
		return bld.add(org.Statement{Type: org.TypeDevice, Account: c.v.Account(), Device: b.v.device.ID, Public: pub, Cert: cert})
	}); err != nil {
		t.Logf("squat refused (fixed): %v", err)
		return
	}
	if err := a.v.OrgInvite(ctx, a.r, sum.ID, b.email); err != nil {
		t.Fatal(err)
	}
	if _, err := b.v.OrgAccept(ctx, b.r, sum.ID, sum.Fingerprint); err != nil {
		t.Fatalf("bob cannot join: %v", err)
	}
}

// F8. OrgAccept pins the organisation before its acceptance is pushed; if
// the push fails (network, a stale head seven times, a refusing server),
// the organisation stays pinned without an acceptance and a retry says
// "you already belong to organisation": the invitee can never accept.
func TestReviewFailedAcceptCannotBeRetried(t *testing.T) {
	w := newOrgWorld(t)
	a, b := w.alice, w.bob
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.v.OrgInvite(ctx, a.r, sum.ID, b.email); err != nil {
		t.Fatal(err)
	}
	ev := evil(t, b)
	ev.pushOrg = func(string, []api.OrgEntry) error { return errors.New("connection reset") }
	if _, err := b.v.OrgAccept(ctx, ev, sum.ID, sum.Fingerprint); err == nil {
		t.Fatal("setup: the accept went through")
	}
	if _, err := b.v.OrgAccept(ctx, b.r, sum.ID, sum.Fingerprint); err != nil {
		t.Fatalf("retrying the acceptance: %v", err)
	}
	mustSync(t, b.v, b.r)
	if m := b.v.orgs[sum.ID].Members[b.v.Account()]; m == nil || m.State != org.StateAccepted {
		t.Fatalf("bob is %+v after accepting", m)
	}
}

// F9. Between the push of a vault statement and PUT /orgs/{org}/vaults/
// {vault}, the new id is public to every member (and the server), and
// PUT /v1/vaults/{vault} lets any account claim it as a personal vault
// first. The shared vault can then never be created (409), its log is
// another account's personal vault (404 to the members), and the
// organisation's log names it for ever.
func TestReviewSharedVaultIDSquattedAsPersonalVault(t *testing.T) {
	w := newOrgWorld(t)
	a, b, c := w.alice, w.bob, w.carol
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	w.enrol(t, sum.ID, b)
	w.enrol(t, sum.ID, c)
	ev := evil(t, a)
	ev.putVault = func(orgID, vault string) {
		// The vault statement is in the log now: Carol (or the server)
		// reads it and claims the id first.
		mustSync(t, c.v, c.r)
		if c.v.orgs[orgID].Vaults[vault] == nil {
			t.Fatal("setup: carol does not see the vault statement")
		}
		if err := c.r.PutVault(ctx, vault, []byte("squat")); err != nil {
			t.Logf("squat refused (fixed): %v", err)
		}
	}
	_, err = a.v.CreateVault(ctx, ev, "Team", sum.ID)
	if err != nil {
		t.Fatalf("creating a shared vault whose id a member claimed first: %v", err)
	}
}
