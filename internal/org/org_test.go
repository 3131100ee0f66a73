package org

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/sign"
)

func TestFixture(t *testing.T) {
	f := newFixture(t)
	s := f.s
	if s.Org != ID(f.root.Public()) || !validID(s.Org) || s.Name != "Example Org" || s.Creator != f.alice.id {
		t.Fatalf("org %q name %q creator %q", s.Org, s.Name, s.Creator)
	}
	if s.Seq != uint64(len(f.log)) || !s.Head.Equal(replayHead(t, f)) {
		t.Fatalf("seq %d head %s", s.Seq, s.Head)
	}
	for _, c := range []struct {
		a     *acct
		role  Role
		state string
		acc   Access
	}{
		{f.alice, Owner, StateActive, Manage},
		{f.bob, Admin, StateActive, Manage},
		{f.carol, Member, StateActive, Read},
		{f.dave, Member, StateActive, Write},
		{f.erin, "", StateAccepted, None},
	} {
		m := s.Members[c.a.id]
		if m == nil || m.State != c.state || s.Role(c.a.id) != c.role || s.Access(f.vault, c.a.id) != c.acc {
			t.Errorf("%s: %+v role %q access %q", c.a.name, m, s.Role(c.a.id), s.Access(f.vault, c.a.id))
		}
		if m != nil && (!bytes.Equal(m.Identity, c.a.sk.Public().Bytes()) || m.Email != c.a.email) {
			t.Errorf("%s: keys or e-mail differ", c.a.name)
		}
	}
	want := []string{f.alice.id, f.bob.id, f.carol.id, f.dave.id}
	slices.Sort(want)
	if got := s.Recipients(f.vault); !slices.Equal(got, want) {
		t.Errorf("Recipients = %v, want %v", got, want)
	}
	v := s.Vaults[f.vault]
	if v.Gen != 1 || v.Rotate || len(v.Keys) != 4 || v.KeyBy[f.carol.id][1] != f.bob.id || v.Created == 0 {
		t.Errorf("vault %+v", v)
	}
	if len(s.Invites) != 0 {
		t.Errorf("invites left: %v", s.Invites)
	}
	if s.Access("nosuchvault", f.alice.id) != None || s.Access(f.vault, testID("stranger")) != None {
		t.Error("access to an unknown vault or for a stranger")
	}
}

func replayHead(t *testing.T, f *fixture) (h [64]byte) {
	s, err := Replay(f.s.Org, f.root.Public(), f.log)
	if err != nil {
		t.Fatal(err)
	}
	return s.Head
}

func TestNewOrgAndOpenRoot(t *testing.T) {
	f := newFixture(t)
	if len(f.log) < 2 {
		t.Fatal("no log")
	}
	s, err := Replay(f.s.Org, nil, f.log[:2])
	if err != nil {
		t.Fatal(err)
	}
	if s.Role(f.alice.id) != Owner || s.Seq != 2 {
		t.Fatalf("after NewOrg: role %q seq %d", s.Role(f.alice.id), s.Seq)
	}
	k, err := s.OpenRoot(f.alice.ek)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().Equal(f.root.Public()) {
		t.Fatal("OpenRoot opened another key")
	}
	if _, err := s.OpenRoot(f.bob.ek); !errors.Is(err, pke.ErrAuth) {
		t.Errorf("OpenRoot with another member's key: %v", err)
	}
	// A sealed key that opens but is not the root (the context binds the
	// org, so this needs a hand-built state).
	other, _ := sign.GenerateKey(random.NewDeterministic([]byte("other")))
	sealed, err := pke.Seal(random.NewDeterministic(nil), f.alice.ek.Public(), rootContext(s.Org), other.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	c.RootSealed = sealed
	if _, err := c.OpenRoot(f.alice.ek); err == nil || !strings.Contains(err.Error(), "not the organisation's root") {
		t.Errorf("OpenRoot of another key: %v", err)
	}
	if _, _, _, err := NewOrg(random.NewDeterministic(nil), "", f.alice.id, f.alice.email, f.alice.sk.Public(), f.alice.ek.Public(), 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewOrg without a name: %v", err)
	}
}

func TestSignatures(t *testing.T) {
	f := newFixture(t)
	st := f.fill(f.bob.id, Statement{Type: TypeInvite, Email: "x@example.com"})
	good := forge(t, f.bob.sk, st)
	f.refuseEntry(Entry{Body: good.Body}, ErrRefused, "signature does not verify")
	f.refuseEntry(forge(t, f.carol.sk, st), ErrRefused, "signature does not verify under "+f.bob.id)
	bad := bytes.Clone(good.Sig)
	bad[len(bad)-1] ^= 1
	f.refuseEntry(Entry{Body: good.Body, Sig: bad}, ErrRefused, "signature does not verify")
	// A signature for another context.
	sig, _ := f.bob.sk.Sign("safehold/v1 vault-log-entry", good.Body)
	f.refuseEntry(Entry{Body: good.Body, Sig: sig}, ErrRefused, "signature does not verify")
	// Root statements verify under the root key only.
	f.refuse(Signer{By: ByRoot, Key: f.alice.sk}, Statement{Type: TypeInvite, Email: "x@example.com"}, "signature does not verify under root")
	f.refuseEntry(Entry{Body: good.Body, Sig: make([]byte, MaxSig+1)}, ErrMalformed, "signature is")
}

func TestSignerNotMember(t *testing.T) {
	f := newFixture(t)
	mallory := newAcct(t, "mallory")
	f.refuse(mallory.signer(), Statement{Type: TypeInvite, Email: "x@example.com"}, "the signer "+mallory.id+" is not a member")
	f.refuse(mallory.signer(), Statement{Type: TypeVault, Vault: testID("v2"), SealedName: []byte("n")}, "is not a member")
	// An accepted but uncertified account signs nothing for others.
	f.refuse(f.erin.signer(), Statement{Type: TypeInvite, Email: "x@example.com"}, "not a certified member yet")
}

func TestMemberCannotCertify(t *testing.T) {
	f := newFixture(t)
	f.refuse(f.carol.signer(), f.erin.cert(Member), "the signer "+f.carol.id+" is not an owner or administrator")
	f.refuse(f.carol.signer(), Statement{Type: TypeInvite, Email: "x@example.com"}, "not an owner or administrator")
	f.refuse(f.carol.signer(), Statement{Type: TypeGroup, Name: "g"}, "not an owner or administrator")
	f.refuse(f.carol.signer(), Statement{Type: TypeVault, Vault: testID("v2"), SealedName: []byte("n")}, "not an owner or administrator")
	f.refuse(f.carol.signer(), Statement{Type: TypeRemove, Account: f.dave.id}, "not an owner or administrator")
}

func TestOnlyRootCertifiesOwnersAndAdmins(t *testing.T) {
	f := newFixture(t)
	for _, r := range []Role{Owner, Admin} {
		// An administrator, an owner and the member itself may not.
		f.refuse(f.bob.signer(), f.erin.cert(r), "only the root key certifies an "+string(r))
		f.refuse(f.alice.signer(), f.carol.cert(r), "only the root key certifies")
		f.refuse(f.carol.signer(), f.carol.cert(r), "only the root key certifies")
	}
	// Nor demote one, nor remove one.
	f.refuse(f.alice.signer(), f.bob.cert(Member), "only the root key demotes an admin")
	f.refuse(f.alice.signer(), Statement{Type: TypeRemove, Account: f.bob.id}, "only the root key removes an admin")
	f.refuse(f.bob.signer(), Statement{Type: TypeRemove, Account: f.alice.id}, "only the root key removes an owner")
	// The root may.
	f.add(f.rootS, f.erin.cert(Admin))
	if f.s.Role(f.erin.id) != Admin || f.s.Access(f.vault, f.erin.id) != Manage {
		t.Fatalf("erin: role %q", f.s.Role(f.erin.id))
	}
	f.add(f.rootS, f.carol.cert(Owner))
	if f.s.Role(f.carol.id) != Owner {
		t.Fatal("promotion by root")
	}
}

func TestSecondGenesis(t *testing.T) {
	f := newFixture(t)
	g, err := Decode(f.log[0])
	if err != nil {
		t.Fatal(err)
	}
	st := *g
	f.refuseEntry(forge(t, f.root, f.fill(ByRoot, st)), ErrRefused, "a genesis may only be the first statement")
	// And a log that does not start with one.
	inv := forge(t, f.root, Statement{V: 1, Org: f.s.Org, Seq: 1, Prev: genesisBytes(f.s.Org), Type: TypeInvite, By: ByRoot, Email: "x@example.com"})
	if _, err := Replay(f.s.Org, nil, []Entry{inv}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "must be the genesis") {
		t.Errorf("log without genesis: %v", err)
	}
	if _, err := Replay(f.s.Org, nil, nil); !errors.Is(err, ErrRefused) {
		t.Errorf("empty log: %v", err)
	}
}

func genesisBytes(org string) []byte { h := Genesis(org); return h[:] }

// otherOrg makes a second organisation's log with the same creator.
func otherOrg(t *testing.T, f *fixture, seed string) ([]Entry, *sign.PrivateKey) {
	t.Helper()
	log, _, root, err := NewOrg(random.NewDeterministic([]byte(seed)), "Other", f.alice.id, f.alice.email, f.alice.sk.Public(), f.alice.ek.Public(), 5)
	if err != nil {
		t.Fatal(err)
	}
	return log, root
}

func TestSwappedRoot(t *testing.T) {
	f := newFixture(t)
	org, pinned := f.s.Org, f.root.Public()
	log2, root2 := otherOrg(t, f, "swap")
	org2 := ID(root2.Public())

	// The server (no pin) takes the other log as what it is.
	if _, err := Replay(org2, nil, log2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		org  string
		pin  *sign.PublicKey
		log  []Entry
		want string
	}{
		{"other log under our id", org, pinned, log2, "names organisation"},
		{"other log under our id, no pin", org, nil, log2, "names organisation"},
		{"other id with our pin", org2, pinned, log2, "not derived from the pinned root"},
		{"our log with another pin", org, root2.Public(), f.log, "not derived from the pinned root"},
	} {
		if _, err := Replay(c.org, c.pin, c.log); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A genesis naming another root under our org id, signed by that root.
	g, _ := Decode(log2[0])
	st := *g
	st.Org, st.Prev = org, genesisBytes(org)
	for _, pin := range []*sign.PublicKey{pinned, nil} {
		if _, err := Replay(org, pin, []Entry{forge(t, root2, st)}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not derived from the genesis root key") {
			t.Errorf("swapped genesis root: %v", err)
		}
	}
	// A genesis that is right except for a root key other than the pinned
	// one: the pin is checked even where the id would match.
	s := newState(org2, pinned)
	if err := s.Apply(log2[0]); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "other than the pinned one") {
		t.Errorf("pinned root: %v", err)
	}
}

func TestKeySubstitution(t *testing.T) {
	f := newFixture(t)
	mallory := newAcct(t, "mallory")
	// The admin certifies erin with keys other than those she accepted with.
	sub := f.erin.cert(Member)
	sub.Identity = mallory.sk.Public().Bytes()
	f.refuse(f.bob.signer(), sub, "key substitution")
	sub = f.erin.cert(Member)
	sub.Encryption = mallory.ek.Public().Bytes()
	f.refuse(f.bob.signer(), sub, "key substitution")
	f.refuse(f.rootS, sub, "key substitution")
	// Re-certifying an active member with other keys, even by the root.
	sub = f.carol.cert(Member)
	sub.Encryption = mallory.ek.Public().Bytes()
	f.refuse(f.bob.signer(), sub, "key substitution")
	f.refuse(f.rootS, sub, "key substitution")
	sub = f.carol.cert(Member)
	sub.Email = "carol2@example.com"
	f.refuse(f.bob.signer(), sub, "e-mail address differs")
	// Same keys: a role change (here none) is fine.
	f.add(f.bob.signer(), f.carol.cert(Member))
	f.add(f.bob.signer(), f.erin.cert(Member))
	if f.s.Members[f.erin.id].State != StateActive {
		t.Fatal("erin not certified")
	}
}

func TestEscrowInjection(t *testing.T) {
	f := newFixture(t)
	mallory := newAcct(t, "mallory")
	// Wraps to an accepted (not certified) account, to a member without
	// access, to a stranger.
	f.refuse(f.bob.signer(), f.wrap(f.erin, 1), "the recipient "+f.erin.id+" is not an active member with access")
	f.add(f.bob.signer(), f.erin.cert(Member))
	f.refuse(f.bob.signer(), f.wrap(f.erin, 1), "is not an active member with access")
	f.refuse(f.bob.signer(), f.wrap(mallory, 1), "is not an active member with access")
	// A member certificate for an account that never accepted, by an
	// administrator.
	f.refuse(f.bob.signer(), mallory.cert(Member), "has not accepted an invitation")
	f.refuse(f.alice.signer(), mallory.cert(Member), "has not accepted an invitation")
	// A second wrap of the same generation to the same member.
	f.refuse(f.bob.signer(), f.wrap(f.carol, 1), "generation 1 is already wrapped to "+f.carol.id)
	// A generation past the next one.
	f.refuse(f.bob.signer(), f.wrap(f.carol, 3), "generation 3 skips past 2")
}

func TestManageRights(t *testing.T) {
	f := newFixture(t)
	f.add(f.bob.signer(), f.erin.cert(Member))
	// Read and write members sign no key wraps and no grants.
	for _, a := range []*acct{f.carol, f.dave} {
		f.refuse(a.signer(), f.wrap(f.dave, 2), "the signer "+a.id+" has no manage access to vault "+f.vault)
		f.refuse(a.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.erin.id, Access: Read}, "has no manage access")
		f.refuse(a.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: a.id, Access: Manage}, "has no manage access")
	}
	// A manager does, for that vault only.
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.carol.id, Access: Manage})
	f.add(f.carol.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.erin.id, Access: Read})
	e := f.add(f.carol.signer(), f.wrap(f.erin, 1))
	if f.s.Vaults[f.vault].KeyBy[f.erin.id][1] != f.carol.id || !bytes.Equal(f.s.Vaults[f.vault].Keys[f.erin.id][1], mustDecode(t, e).Wrapped) {
		t.Error("KeyBy/Keys not recorded")
	}
	v2 := testID("vault two")
	f.add(f.alice.signer(), Statement{Type: TypeVault, Vault: v2, SealedName: []byte("n2")})
	f.refuse(f.carol.signer(), Statement{Type: TypeGrant, Vault: v2, Subject: f.dave.id, Access: Read}, "no manage access to vault "+v2)
	// Nor may a manager create vaults.
	f.refuse(f.carol.signer(), Statement{Type: TypeVault, Vault: testID("v3"), SealedName: []byte("n")}, "not an owner or administrator")
	// Grants name existing vaults and subjects.
	f.refuse(f.bob.signer(), Statement{Type: TypeGrant, Vault: testID("none"), Subject: f.dave.id, Access: Read}, "does not exist")
	f.refuse(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: newAcct(t, "x").id, Access: Read}, "is not an active member")
	f.refuse(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: "group:nope", Access: Read}, `there is no group "nope"`)
	f.refuse(f.bob.signer(), Statement{Type: TypeVault, Vault: f.vault, SealedName: []byte("n")}, "already exists")
}

func mustDecode(t *testing.T, e Entry) *Statement {
	t.Helper()
	st, err := Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAccept(t *testing.T) {
	f := newFixture(t)
	frank := newAcct(t, "frank")
	f.refuse(frank.signer(), frank.acceptance(), `no pending invitation for "frank@example.com"`)
	f.add(f.bob.signer(), Statement{Type: TypeInvite, Email: frank.email})
	if f.s.Invites[frank.email] != f.bob.id {
		t.Fatalf("invites: %v", f.s.Invites)
	}
	f.refuse(f.bob.signer(), Statement{Type: TypeInvite, Email: frank.email}, "already invited")
	f.refuse(f.bob.signer(), Statement{Type: TypeInvite, Email: f.carol.email}, "is already member "+f.carol.id)
	f.refuse(f.bob.signer(), Statement{Type: TypeInvite, Email: f.erin.email}, "is already member "+f.erin.id)
	// Signed by a key other than the one it presents.
	f.refuseEntry(forge(t, newAcct(t, "mallory").sk, f.fill(frank.id, frank.acceptance())), ErrRefused, "signature does not verify under "+frank.id)
	// By someone else than the accepting account.
	f.refuse(f.bob.signer(), frank.acceptance(), "an acceptance is signed by its own account")
	// Members do not accept again.
	acc := f.carol.acceptance()
	acc.Email = frank.email
	f.refuse(f.carol.signer(), acc, "is already a member")
	acc = f.erin.acceptance()
	acc.Email = frank.email
	f.refuse(f.erin.signer(), acc, "has already accepted")
	f.add(frank.signer(), frank.acceptance())
	if m := f.s.Members[frank.id]; m == nil || m.State != StateAccepted || len(f.s.Invites) != 0 {
		t.Fatalf("after accept: %+v, invites %v", m, f.s.Invites)
	}
	// The invitation is used up.
	f.refuse(newAcct(t, "gina").signer(), Statement{Type: TypeAccept, Account: newAcct(t, "gina").id, Email: frank.email,
		Identity: newAcct(t, "gina").sk.Public().Bytes(), Encryption: newAcct(t, "gina").ek.Public().Bytes()}, "no pending invitation")
}

func TestRemovedCannotComeBack(t *testing.T) {
	f := newFixture(t)
	f.add(f.bob.signer(), Statement{Type: TypeRemove, Account: f.dave.id, Heads: map[string]uint64{f.vault: 4}})
	f.refuse(f.rootS, f.dave.cert(Member), "was removed and cannot come back")
	f.refuse(f.bob.signer(), f.dave.cert(Member), "was removed and cannot come back")
	f.refuse(f.dave.signer(), Statement{Type: TypeInvite, Email: "x@example.com"}, "the signer "+f.dave.id+" was removed")
	f.refuse(f.bob.signer(), Statement{Type: TypeRemove, Account: f.dave.id}, "already removed")
	// His address may be invited again, but not his account.
	f.add(f.bob.signer(), Statement{Type: TypeInvite, Email: f.dave.email})
	f.refuse(f.dave.signer(), f.dave.acceptance(), "was removed and cannot come back")
	// A removed accepted account is gone too.
	f.add(f.bob.signer(), Statement{Type: TypeRemove, Account: f.erin.id})
	f.refuse(f.bob.signer(), f.erin.cert(Member), "was removed")
}

func TestChain(t *testing.T) {
	f := newFixture(t)
	st := f.fill(f.bob.id, Statement{Type: TypeInvite, Email: "x@example.com"})

	wrongPrev := st
	wrongPrev.Prev = bytes.Clone(wrongPrev.Prev)
	wrongPrev.Prev[0] ^= 1
	f.refuseEntry(forge(t, f.bob.sk, wrongPrev), ErrRefused, "prev is not the hash of the log before it")

	for _, seq := range []uint64{st.Seq - 1, st.Seq + 1, 1} {
		bad := st
		bad.Seq = seq
		f.refuseEntry(forge(t, f.bob.sk, bad), ErrRefused, "does not follow")
	}
	other := st
	other.Org = testID("another org")
	f.refuseEntry(forge(t, f.bob.sk, other), ErrRefused, "names organisation")

	// Replaying an entry already applied.
	f.refuseEntry(f.log[len(f.log)-1], ErrRefused, "does not follow")
	// A fork: an entry valid on its own that chains to an older head.
	old, err := Replay(f.s.Org, nil, f.log[:len(f.log)-1])
	if err != nil {
		t.Fatal(err)
	}
	fork, err := old.Next(f.bob.signer(), Statement{Type: TypeInvite, Email: "y@example.com"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.refuseEntry(fork, ErrRefused, "does not follow")
	if _, err := Replay(f.s.Org, nil, append(slices.Clone(f.log[:len(f.log)-1]), fork)); err != nil {
		t.Errorf("the fork is valid on its own branch: %v", err)
	}
	if _, err := Replay(f.s.Org, nil, append(slices.Clone(f.log), fork)); !errors.Is(err, ErrRefused) {
		t.Errorf("fork appended: %v", err)
	}
	// Dropping an entry from the middle.
	if _, err := Replay(f.s.Org, nil, slices.Delete(slices.Clone(f.log), 3, 4)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "statement 5") {
		t.Errorf("dropped entry: %v", err)
	}
}

func TestReorder(t *testing.T) {
	f := newFixture(t)
	for i := 1; i+1 < len(f.log); i++ {
		log := slices.Clone(f.log)
		log[i], log[i+1] = log[i+1], log[i]
		_, err := Replay(f.s.Org, f.root.Public(), log)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("entries %d and %d swapped: %v", i+1, i+2, err)
		}
	}
	// Re-signed with the new positions, the order still matters: the
	// acceptance cannot come before the invitation.
	s, err := Replay(f.s.Org, nil, f.log[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(f.bob.signer(), f.bob.acceptance(), 1); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no pending invitation") {
		t.Errorf("accept before invite: %v", err)
	}
}

func TestRemoval(t *testing.T) {
	f := newFixture(t)
	grp := "eng"
	f.add(f.bob.signer(), Statement{Type: TypeGroup, Name: grp, Members: sorted(f.carol.id, f.dave.id)})
	// Dave could write: his removal must say where the vault's log was.
	f.refuse(f.bob.signer(), Statement{Type: TypeRemove, Account: f.dave.id}, f.dave.id+" loses write access to vault "+f.vault+", so heads must give")
	f.refuse(f.bob.signer(), Statement{Type: TypeRemove, Account: f.dave.id, Heads: map[string]uint64{testID("no vault"): 1}}, "heads name vault")
	f.add(f.bob.signer(), Statement{Type: TypeRemove, Account: f.dave.id, Heads: map[string]uint64{f.vault: 7}})
	m, v := f.s.Members[f.dave.id], f.s.Vaults[f.vault]
	if m.State != StateRemoved || m.RemovedAt[f.vault] != 7 || !v.Rotate {
		t.Fatalf("after removal: state %q removedAt %v rotate %v", m.State, m.RemovedAt, v.Rotate)
	}
	if slices.Contains(f.s.Groups[grp], f.dave.id) || !slices.Contains(f.s.Groups[grp], f.carol.id) {
		t.Errorf("groups after removal: %v", f.s.Groups)
	}
	if f.s.Access(f.vault, f.dave.id) != None || slices.Contains(f.s.Recipients(f.vault), f.dave.id) || f.s.Role(f.dave.id) != "" {
		t.Error("a removed member keeps access")
	}
	// His grant is inert; no key goes to him.
	f.refuse(f.bob.signer(), f.wrap(f.dave, 2), "not an active member with access")
	// A read-only member's removal needs no heads, and sets Rotate too.
	f.add(f.bob.signer(), f.wrap(f.alice, 2))
	if f.s.Vaults[f.vault].Rotate {
		t.Fatal("rotation did not clear Rotate")
	}
	f.add(f.carol.signer(), Statement{Type: TypeRemove, Account: f.carol.id}) // carol leaves
	if !f.s.Vaults[f.vault].Rotate || len(f.s.Members[f.carol.id].RemovedAt) != 0 {
		t.Error("a reader leaving")
	}
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

func TestLastOwner(t *testing.T) {
	f := newFixture(t)
	f.refuse(f.alice.signer(), Statement{Type: TypeRemove, Account: f.alice.id}, "the last owner cannot leave")
	// An admin or member may leave; a second owner lets the first go.
	heads := map[string]uint64{f.vault: 2}
	f.add(f.bob.signer(), Statement{Type: TypeRemove, Account: f.bob.id, Heads: heads})
	f.add(f.rootS, f.carol.cert(Owner))
	f.add(f.alice.signer(), Statement{Type: TypeRemove, Account: f.alice.id, Heads: heads})
	if f.s.Members[f.alice.id].State != StateRemoved || f.s.Role(f.carol.id) != Owner {
		t.Fatal("owner left")
	}
}

func TestRotation(t *testing.T) {
	f := newFixture(t)
	v := f.s.Vaults[f.vault]
	if v.Gen != 1 || v.Rotate {
		t.Fatal(v)
	}
	// Lowering carol to nothing: she loses read.
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.carol.id})
	if !f.s.Vaults[f.vault].Rotate || f.s.Access(f.vault, f.carol.id) != None {
		t.Fatal("revoking a grant does not ask for rotation")
	}
	if _, ok := f.s.Vaults[f.vault].Grants[f.carol.id]; ok {
		t.Error("a revoked grant is kept")
	}
	// Re-wrapping the current generation does not rotate.
	f.add(f.bob.signer(), f.erin.cert(Member))
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.erin.id, Access: Read})
	f.add(f.bob.signer(), f.wrap(f.erin, 1))
	if v := f.s.Vaults[f.vault]; v.Gen != 1 || !v.Rotate {
		t.Fatalf("re-wrap: gen %d rotate %v", v.Gen, v.Rotate)
	}
	f.add(f.bob.signer(), f.wrap(f.bob, 2))
	if v := f.s.Vaults[f.vault]; v.Gen != 2 || v.Rotate {
		t.Fatalf("rotation: gen %d rotate %v", v.Gen, v.Rotate)
	}
	// Older generations still go to new recipients; the next one is 3.
	f.add(f.bob.signer(), f.wrap(f.dave, 2))
	f.refuse(f.bob.signer(), f.wrap(f.dave, 4), "skips past 3")
	// Downgrading dave from write to read needs heads, sets RemovedAt but
	// not Rotate (he can still read).
	f.refuse(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.dave.id, Access: Read}, "loses write access")
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.dave.id, Access: Read, Heads: map[string]uint64{f.vault: 12}})
	if v, m := f.s.Vaults[f.vault], f.s.Members[f.dave.id]; v.Rotate || m.RemovedAt[f.vault] != 12 {
		t.Fatalf("downgrade: rotate %v removedAt %v", v.Rotate, m.RemovedAt)
	}
}

func TestMayWrite(t *testing.T) {
	f := newFixture(t)
	d, c, a := f.dave.id, f.carol.id, f.alice.id
	for _, seq := range []uint64{1, 100} {
		if !f.s.MayWrite(f.vault, d, seq) || f.s.MayWrite(f.vault, c, seq) || !f.s.MayWrite(f.vault, a, seq) {
			t.Fatalf("before: seq %d", seq)
		}
	}
	if f.s.MayWrite(testID("no vault"), d, 1) || f.s.MayWrite(f.vault, testID("nobody"), 1) {
		t.Error("MayWrite for an unknown vault or account")
	}
	f.add(f.bob.signer(), Statement{Type: TypeRemove, Account: d, Heads: map[string]uint64{f.vault: 10}})
	for seq, want := range map[uint64]bool{1: true, 10: true, 11: false, 1000: false} {
		if got := f.s.MayWrite(f.vault, d, seq); got != want {
			t.Errorf("removed writer at %d: %v, want %v", seq, got, want)
		}
	}
	// Carol never wrote: she may not, before or after.
	if f.s.MayWrite(f.vault, c, 1) {
		t.Error("reader may write")
	}
	// A demoted administrator keeps what he wrote before the demotion.
	f.refuse(f.rootS, f.bob.cert(Member), "loses write access")
	f.add(f.rootS, Statement{Type: TypeMember, Account: f.bob.id, Email: f.bob.email, Identity: f.bob.sk.Public().Bytes(),
		Encryption: f.bob.ek.Public().Bytes(), Role: Member, Heads: map[string]uint64{f.vault: 20}})
	if f.s.Access(f.vault, f.bob.id) != None || !f.s.MayWrite(f.vault, f.bob.id, 20) || f.s.MayWrite(f.vault, f.bob.id, 21) {
		t.Error("demoted admin")
	}
	if !f.s.Vaults[f.vault].Rotate {
		t.Error("demotion to no access does not ask for rotation")
	}
}

func TestGroups(t *testing.T) {
	f := newFixture(t)
	f.add(f.bob.signer(), f.erin.cert(Member))
	e := f.erin.id
	f.refuse(f.bob.signer(), Statement{Type: TypeGroup, Name: "eng", Members: sorted(e, newAcct(t, "x").id)}, "is not an active member")
	f.add(f.bob.signer(), Statement{Type: TypeGroup, Name: "eng", Members: []string{e}})
	if f.s.Access(f.vault, e) != None {
		t.Fatal("group without grant gives access")
	}
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: "group:eng", Access: Write})
	if f.s.Access(f.vault, e) != Write || !slices.Contains(f.s.Recipients(f.vault), e) {
		t.Fatal("access via group")
	}
	// The highest of direct and group grants counts.
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: e, Access: Read})
	f.add(f.bob.signer(), Statement{Type: TypeGroup, Name: "ops", Members: []string{e}})
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: "group:ops", Access: Manage})
	if f.s.Access(f.vault, e) != Manage {
		t.Fatal("max over groups")
	}
	// Erin manages through the group.
	f.add(f.erin.signer(), f.wrap(f.erin, 1))
	f.add(f.bob.signer(), Statement{Type: TypeGroup, Name: "ops"})
	if f.s.Access(f.vault, e) != Write || f.s.Vaults[f.vault].Rotate {
		t.Fatal("dropped from one group")
	}
	// Dropped from the last group giving write: heads, RemovedAt; still
	// reads through her direct grant.
	f.refuse(f.bob.signer(), Statement{Type: TypeGroup, Name: "eng"}, "loses write access")
	f.add(f.bob.signer(), Statement{Type: TypeGroup, Name: "eng", Heads: map[string]uint64{f.vault: 3}})
	if f.s.Access(f.vault, e) != Read || f.s.Members[e].RemovedAt[f.vault] != 3 || f.s.Vaults[f.vault].Rotate {
		t.Fatal("dropped from the write group")
	}
	// Losing the direct grant too: no access, rotation.
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: e})
	if f.s.Access(f.vault, e) != None || !f.s.Vaults[f.vault].Rotate {
		t.Fatal("no access left")
	}
	if _, ok := f.s.Groups["eng"]; !ok {
		t.Error("an empty group is dropped")
	}
}

func TestDevices(t *testing.T) {
	f := newFixture(t)
	dk, _ := sign.GenerateKey(random.NewDeterministic([]byte("device")))
	dev := testID("device carol")
	cert := func(a *acct, id string, pub []byte) []byte {
		sig, err := a.sk.Sign(deviceCertContext, deviceCertMessage(a.id, id, pub))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	st := Statement{Type: TypeDevice, Account: f.carol.id, Device: dev, Public: dk.Public().Bytes(), Cert: cert(f.carol, dev, dk.Public().Bytes())}
	f.refuse(f.bob.signer(), st, "certifies only its own devices")
	bad := st
	bad.Cert = cert(f.dave, dev, dk.Public().Bytes())
	f.refuse(f.carol.signer(), bad, "device certificate does not verify under "+f.carol.id)
	f.add(f.carol.signer(), st)
	if pub, revoked, ok := f.s.DeviceKey(f.carol.id, dev); !ok || revoked || !pub.Equal(dk.Public()) || !slices.Equal(f.s.DeviceOwners(dev), []string{f.carol.id}) {
		t.Fatal("device key")
	}
	if _, _, ok := f.s.DeviceKey(f.carol.id, testID("other")); ok || len(f.s.DeviceOwners(testID("other"))) != 0 {
		t.Fatal("unknown device")
	}
	// The same device id for another member.
	other := Statement{Type: TypeDevice, Account: f.dave.id, Device: dev, Public: dk.Public().Bytes(), Cert: cert(f.dave, dev, dk.Public().Bytes())}
	// Ids are unique per account only: Dave may certify the same id for
	// himself (copying an id gains nothing; signatures decide), but not
	// twice.
	f.add(f.dave.signer(), other)
	if got := f.s.DeviceOwners(dev); len(got) != 2 {
		t.Fatalf("owners of a shared device id: %v", got)
	}
	f.refuse(f.dave.signer(), other, "already certified for "+f.dave.id)
	// An accepted, uncertified account certifies its own devices.
	edev := testID("device erin")
	f.add(f.erin.signer(), Statement{Type: TypeDevice, Account: f.erin.id, Device: edev, Public: dk.Public().Bytes(), Cert: cert(f.erin, edev, dk.Public().Bytes())})

	rv := Statement{Type: TypeDeviceRevoke, Account: f.carol.id, Device: dev}
	f.refuse(f.dave.signer(), rv, "is neither "+f.carol.id+" nor an owner or administrator")
	f.refuse(f.carol.signer(), Statement{Type: TypeDeviceRevoke, Account: f.carol.id, Device: edev}, "has no device")
	f.add(f.carol.signer(), rv)
	if _, revoked, ok := f.s.DeviceKey(f.carol.id, dev); !ok || !revoked || !f.s.Vaults[f.vault].Rotate {
		t.Fatal("revocation")
	}
	f.refuse(f.bob.signer(), rv, "already revoked")
	f.add(f.bob.signer(), Statement{Type: TypeDeviceRevoke, Account: f.erin.id, Device: edev})
	if m := f.s.Members[f.carol.id]; len(m.RevokedAt[dev]) != 0 {
		t.Errorf("a reader's device has heads: %v", m.RevokedAt)
	}

	// A writer's device: the revocation says up to where its entries stand.
	ddev := testID("device dave")
	f.add(f.dave.signer(), Statement{Type: TypeDevice, Account: f.dave.id, Device: ddev, Public: dk.Public().Bytes(), Cert: cert(f.dave, ddev, dk.Public().Bytes())})
	drv := Statement{Type: TypeDeviceRevoke, Account: f.dave.id, Device: ddev}
	f.refuse(f.dave.signer(), drv, "device "+ddev+" could write to vault "+f.vault+", so heads must give")
	drv.Heads = map[string]uint64{f.vault: 9}
	f.add(f.dave.signer(), drv)
	if m := f.s.Members[f.dave.id]; !m.Revoked[ddev] || m.RevokedAt[ddev][f.vault] != 9 || len(m.RevokedAt) != 1 {
		t.Errorf("writer's device revoked: %v %v", m.Revoked, m.RevokedAt)
	}
	// Dave himself still writes (other devices).
	if !f.s.MayWrite(f.vault, f.dave.id, 100) {
		t.Error("revoking a device took the member's write access")
	}
}

func TestNextLeavesStateAlone(t *testing.T) {
	f := newFixture(t)
	before := f.s.Clone()
	e, err := f.s.Next(f.bob.signer(), Statement{Type: TypeRemove, Account: f.carol.id}, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !sameState(before, f.s) {
		t.Fatal("Next changed the state")
	}
	st := mustDecode(t, e)
	if st.Time != 42 || st.By != f.bob.id || st.Seq != f.s.Seq+1 || st.Org != f.s.Org {
		t.Errorf("filled: %+v", st)
	}
	if _, err := f.s.Next(Signer{By: f.bob.id}, Statement{Type: TypeInvite, Email: "x@example.com"}, 1); err == nil {
		t.Error("Next without a key")
	}
	if _, err := f.s.Next(f.bob.signer(), Statement{Type: TypeInvite, Email: "X@example.com"}, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("Next with an upper-case address: %v", err)
	}
	f.add(f.bob.signer(), *st)
}

func TestClone(t *testing.T) {
	f := newFixture(t)
	c := f.s.Clone()
	if !sameState(c, f.s) {
		t.Fatal("clone differs")
	}
	c.Members[f.carol.id].Identity[5] ^= 1
	c.Members[f.carol.id].RemovedAt["x"] = 1
	c.Vaults[f.vault].Keys[f.carol.id][1][0] ^= 1
	c.Vaults[f.vault].Grants[f.carol.id] = Manage
	c.Groups["g"] = []string{"x"}
	c.Invites["x"] = "y"
	c.RootSealed[0] ^= 1
	if sameState(c, f.s) {
		t.Fatal("changing the clone changed nothing?")
	}
	s2, err := Replay(f.s.Org, nil, f.log)
	if err != nil {
		t.Fatal(err)
	}
	if !sameState(s2, f.s) {
		t.Fatal("changing the clone changed the original")
	}
}

func TestFingerprints(t *testing.T) {
	f := newFixture(t)
	fp := Fingerprint(f.root.Public())
	if !regexp.MustCompile(`^[0-9]{5}(-[0-9]{5}){5}$`).MatchString(fp) || fp != Fingerprint(f.root.Public()) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if fp != strings.ReplaceAll(f.root.Public().FingerprintString(), " ", "-") {
		t.Error("Fingerprint is not the root key's fingerprint")
	}
	a := f.alice
	mfp := MemberFingerprint(a.id, a.sk.Public().Bytes(), a.ek.Public().Bytes())
	if !regexp.MustCompile(`^[0-9]{5}(-[0-9]{5}){5}$`).MatchString(mfp) {
		t.Fatalf("MemberFingerprint = %q", mfp)
	}
	for _, other := range []string{
		MemberFingerprint(f.bob.id, a.sk.Public().Bytes(), a.ek.Public().Bytes()),
		MemberFingerprint(a.id, f.bob.sk.Public().Bytes(), a.ek.Public().Bytes()),
		MemberFingerprint(a.id, a.sk.Public().Bytes(), f.bob.ek.Public().Bytes()),
		fp,
	} {
		if other == mfp {
			t.Error("member fingerprints collide")
		}
	}
	// Stable: fixed keys give fixed codes (testdata/org-v1.json pins more).
	if want := "95245-77963-91969-45435-85839-58637"; mfp != want {
		t.Errorf("MemberFingerprint = %s, want %s", mfp, want)
	}
	if got, want := Fingerprint(a.sk.Public()), "99205-55588-14178-68814-63505-11327"; got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
	spaced := strings.ReplaceAll(mfp, "-", " ")
	for _, typed := range []string{mfp, spaced, strings.ReplaceAll(mfp, "-", ""), " " + spaced + " ", strings.ReplaceAll(mfp, "-", "--"), "\t" + mfp} {
		if !SameFingerprint(typed, mfp) {
			t.Errorf("SameFingerprint(%q) = false", typed)
		}
	}
	if !SameFingerprint("ab-CD", "abcd") || !SameFingerprint("ABCD", "ab cd") {
		t.Error("SameFingerprint is case-sensitive")
	}
	wrong := []byte(mfp)
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	for _, typed := range []string{string(wrong), mfp[:len(mfp)-1], mfp + "0", "", fp} {
		if SameFingerprint(typed, mfp) {
			t.Errorf("SameFingerprint(%q) = true", typed)
		}
	}
	if SameFingerprint("", "") || SameFingerprint("--", " ") {
		t.Error("empty codes match")
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t)
	c := f.s.Clone()
	c.Seq = MaxEntries
	err := c.Apply(forge(t, f.bob.sk, Statement{V: 1, Org: c.Org, Seq: MaxEntries + 1, Prev: c.Head[:], Time: 1, Type: TypeInvite, By: f.bob.id, Email: "x@example.com"}))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already has") {
		t.Errorf("past MaxEntries: %v", err)
	}
	if _, err := Replay(f.s.Org, nil, make([]Entry, MaxEntries+1)); !errors.Is(err, ErrRefused) {
		t.Errorf("Replay of too many entries: %v", err)
	}
}
