package org

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/sign"
)

// acct is a test account: an id, an address and its two key pairs, all
// derived from its name.
type acct struct {
	name, id, email string
	sk              *sign.PrivateKey
	ek              *pke.PrivateKey
}

func newAcct(t testing.TB, name string) *acct {
	t.Helper()
	ss := sha512.Sum512([]byte("sign " + name))
	sk, err := sign.NewKeyFromSeed(ss[:])
	if err != nil {
		t.Fatal(err)
	}
	es := sha256.Sum256([]byte("pke " + name))
	ek, err := pke.NewKeyFromSeed(es[:])
	if err != nil {
		t.Fatal(err)
	}
	return &acct{name: name, id: testID("account " + name), email: name + "@example.com", sk: sk, ek: ek}
}

func testID(s string) string {
	h := sha256.Sum256([]byte(s))
	return idEncoding.EncodeToString(h[:16])
}

func (a *acct) signer() Signer { return Signer{By: a.id, Key: a.sk} }

// acceptance is a's own accept statement.
func (a *acct) acceptance() Statement {
	return Statement{Type: TypeAccept, Account: a.id, Email: a.email, Identity: a.sk.Public().Bytes(), Encryption: a.ek.Public().Bytes()}
}

// cert is a member certificate for a with role r.
func (a *acct) cert(r Role) Statement {
	return Statement{Type: TypeMember, Account: a.id, Email: a.email, Identity: a.sk.Public().Bytes(), Encryption: a.ek.Public().Bytes(), Role: r}
}

// fixture is an organisation built statement by statement:
//
//	alice  owner (creator)          bob    admin
//	carol  member, read on vault    dave   member, write on vault
//	erin   accepted, not certified
//
// The vault has key generation 1 wrapped to alice, bob, carol and dave.
type fixture struct {
	t                             testing.TB
	s                             *State
	root                          *sign.PrivateKey
	rootS                         Signer
	log                           []Entry
	rand                          io.Reader
	alice, bob, carol, dave, erin *acct
	vault                         string
	now                           int64
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, rand: random.NewDeterministic([]byte("org fixture")), now: 1_700_000_000_000}
	f.alice, f.bob, f.carol, f.dave, f.erin = newAcct(t, "alice"), newAcct(t, "bob"), newAcct(t, "carol"), newAcct(t, "dave"), newAcct(t, "erin")
	entries, s, root, err := NewOrg(f.rand, "Example Org", f.alice.id, f.alice.email, f.alice.sk.Public(), f.alice.ek.Public(), f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.s, f.root, f.log = s, root, entries
	f.rootS = Signer{By: ByRoot, Key: root}
	t.Cleanup(f.checkReplay)

	f.join(f.bob, f.alice, f.rootS, Admin)
	f.join(f.carol, f.bob, f.bob.signer(), Member)
	f.join(f.dave, f.bob, f.bob.signer(), Member)
	f.add(f.bob.signer(), Statement{Type: TypeInvite, Email: f.erin.email})
	f.add(f.erin.signer(), f.erin.acceptance())

	f.vault = testID("vault shared")
	f.add(f.bob.signer(), Statement{Type: TypeVault, Vault: f.vault, SealedName: []byte("sealed name")})
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.carol.id, Access: Read})
	f.add(f.bob.signer(), Statement{Type: TypeGrant, Vault: f.vault, Subject: f.dave.id, Access: Write})
	for _, a := range []*acct{f.bob, f.alice, f.carol, f.dave} {
		f.add(f.bob.signer(), f.wrap(a, 1))
	}
	return f
}

// join invites a (by inviter), accepts, and certifies a with role r.
func (f *fixture) join(a, inviter *acct, certifier Signer, r Role) {
	f.t.Helper()
	f.add(inviter.signer(), Statement{Type: TypeInvite, Email: a.email})
	f.add(a.signer(), a.acceptance())
	f.add(certifier, a.cert(r))
}

// wrap is a key statement wrapping a random key of generation gen to a.
func (f *fixture) wrap(a *acct, gen uint32) Statement {
	f.t.Helper()
	w, err := pke.Seal(f.rand, a.ek.Public(), WrapContext(f.s.Org, f.vault, a.id, gen), make([]byte, 32))
	if err != nil {
		f.t.Fatal(err)
	}
	return Statement{Type: TypeKey, Vault: f.vault, Account: a.id, Gen: gen, Wrapped: w}
}

// add signs st as Next does, applies it and logs it.
func (f *fixture) add(by Signer, st Statement) Entry {
	f.t.Helper()
	f.now++
	e, err := f.s.Next(by, st, f.now)
	if err != nil {
		f.t.Fatalf("Next(%s by %s): %v", st.Type, by.By, err)
	}
	if err := f.s.Apply(e); err != nil {
		f.t.Fatalf("Apply(%s): %v", st.Type, err)
	}
	f.log = append(f.log, e)
	return e
}

// fill sets what Next would set, without any check.
func (f *fixture) fill(by string, st Statement) Statement {
	st.V, st.Org, st.Seq, st.By = Version, f.s.Org, f.s.Seq+1, by
	st.Prev = append([]byte(nil), f.s.Head[:]...)
	if st.Time == 0 {
		st.Time = f.now + 1
	}
	return st
}

// forge encodes and signs st exactly as given: no field is filled and
// nothing is checked against the state.
func forge(t testing.TB, key *sign.PrivateKey, st Statement) Entry {
	t.Helper()
	body, err := Encode(&st)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	sig, err := key.Sign(SignContext, body)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Body: body, Sig: sig}
}

// refuse checks that st, signed by by, is refused both by Next and (as a
// forged entry) by Apply, with an error naming want, and that neither
// changes the state.
func (f *fixture) refuse(by Signer, st Statement, want string) {
	f.t.Helper()
	if _, err := f.s.Next(by, st, f.now+1); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
		f.t.Errorf("Next(%s by %s) = %v, want refusal naming %q", st.Type, by.By, err, want)
	}
	f.refuseEntry(forge(f.t, by.Key, f.fill(by.By, st)), ErrRefused, want)
}

// refuseEntry checks that Apply refuses e with kind and an error naming
// want, and leaves the state unchanged.
func (f *fixture) refuseEntry(e Entry, kind error, want string) {
	f.t.Helper()
	before := f.s.Clone()
	err := f.s.Apply(e)
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), want) {
		f.t.Errorf("Apply = %v, want %v naming %q", err, kind, want)
	}
	if !sameState(before, f.s) {
		f.t.Errorf("a refused statement changed the state")
	}
}

// checkReplay checks that replaying the whole log from the pinned root
// gives the state built statement by statement.
func (f *fixture) checkReplay() {
	s, err := Replay(f.s.Org, f.root.Public(), f.log)
	if err != nil {
		f.t.Errorf("Replay: %v", err)
		return
	}
	if !sameState(s, f.s) {
		f.t.Errorf("Replay gives another state than Apply")
	}
}

// sameState compares two states deeply (the root keys with Equal).
func sameState(a, b *State) bool {
	a, b = a.Clone(), b.Clone()
	if (a.Root == nil) != (b.Root == nil) || a.Root != nil && !a.Root.Equal(b.Root) {
		return false
	}
	a.Root, b.Root = nil, nil
	return reflect.DeepEqual(a, b)
}
