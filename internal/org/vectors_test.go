package org

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/sign"
)

var update = flag.Bool("update", false, "rewrite testdata/org-v1.json and the FuzzDecode seed corpus")

const vectorFile = "testdata/org-v1.json"

// vectorFileV1 is testdata/org-v1.json: one small organisation's log, the
// state it replays to, and cases built from it by hand, each with the
// outcome Replay must give.
type vectorFileV1 struct {
	Comment     string          `json:"comment"`
	Org         string          `json:"org"`
	Root        []byte          `json:"root"`
	Fingerprint string          `json:"fingerprint"`
	Accounts    []vectorAccount `json:"accounts"`
	Log         []Entry         `json:"log"`
	Seq         uint64          `json:"seq"`
	Head        string          `json:"head"`
	Cases       []vectorCase    `json:"cases"`
}

type vectorAccount struct {
	Name        string `json:"name"`
	Account     string `json:"account"`
	State       string `json:"state"`
	Role        Role   `json:"role,omitempty"`
	Fingerprint string `json:"fingerprint"` // MemberFingerprint
}

// vectorCase replays Log[:Prefix] followed by Entries, pinned to Root (or
// to another key with OtherPin), and expects "ok", "malformed" or
// "refused" with an error message containing Error.
type vectorCase struct {
	Name     string  `json:"name"`
	Prefix   int     `json:"prefix"`
	Entries  []Entry `json:"entries,omitempty"`
	OtherPin bool    `json:"other_pin,omitempty"`
	Expect   string  `json:"expect"`
	Error    string  `json:"error,omitempty"` // part of the error message
}

func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFileV1
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	root, err := sign.ParsePublicKey(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Replay(v.Org, root, v.Log)
	if err != nil {
		t.Fatal(err)
	}
	if s.Seq != v.Seq || s.Head.String() != v.Head {
		t.Errorf("head %d %s, want %d %s", s.Seq, s.Head, v.Seq, v.Head)
	}
	if got := Fingerprint(s.Root); got != v.Fingerprint {
		t.Errorf("fingerprint %s, want %s", got, v.Fingerprint)
	}
	for _, a := range v.Accounts {
		m := s.Members[a.Account]
		if m == nil || m.State != a.State || m.Role != a.Role {
			t.Errorf("%s: %+v", a.Name, m)
			continue
		}
		if got := MemberFingerprint(m.Account, m.Identity, m.Encryption); got != a.Fingerprint {
			t.Errorf("%s: fingerprint %s, want %s", a.Name, got, a.Fingerprint)
		}
	}
	other := newAcct(t, "other root").sk.Public()
	for _, c := range v.Cases {
		pin := root
		if c.OtherPin {
			pin = other
		}
		_, err := Replay(v.Org, pin, append(slices.Clone(v.Log[:c.Prefix]), c.Entries...))
		var got string
		switch {
		case err == nil:
			got = "ok"
		case errors.Is(err, ErrMalformed):
			got = "malformed"
		case errors.Is(err, ErrRefused):
			got = "refused"
		default:
			got = err.Error()
		}
		if got != c.Expect || err != nil && !strings.Contains(err.Error(), c.Error) {
			t.Errorf("%s: %s (%v), want %s naming %q", c.Name, got, err, c.Expect, c.Error)
		}
	}
}

// writeVectors makes the vector file and the fuzz seeds. Keys come from
// fixed seeds; the sealing randomness from a fixed reader and, for the
// KEM inside crypto/hpke, from cryptotest.SetGlobalRandom. The good log is
// made by this package; every bad case is built by hand.
func writeVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	rnd := random.NewDeterministic([]byte("safehold org-v1 vectors"))
	alice, bob, mallory := newAcct(t, "alice"), newAcct(t, "bob"), newAcct(t, "mallory")
	now := int64(1_767_225_600_000) // 2026-01-01
	log, s, root, err := NewOrg(rnd, "Vector Org", alice.id, alice.email, alice.sk.Public(), alice.ek.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	vault := testID("vector vault")
	wrap := func(a *acct, gen uint32) Statement {
		w, err := pke.Seal(rnd, a.ek.Public(), WrapContext(s.Org, vault, a.id, gen), bytes.Repeat([]byte{byte(gen)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		return Statement{Type: TypeKey, Vault: vault, Account: a.id, Gen: gen, Wrapped: w}
	}
	add := func(by Signer, st Statement) {
		now += 1000
		e, err := s.Next(by, st, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
		log = append(log, e)
	}
	add(alice.signer(), Statement{Type: TypeInvite, Email: bob.email}) // 3
	add(bob.signer(), bob.acceptance())                                // 4
	add(alice.signer(), bob.cert(Member))                              // 5
	add(alice.signer(), Statement{Type: TypeVault, Vault: vault, SealedName: []byte("sealed under generation 1")})
	add(alice.signer(), Statement{Type: TypeGrant, Vault: vault, Subject: bob.id, Access: Write})
	add(alice.signer(), wrap(alice, 1)) // 8
	add(alice.signer(), wrap(bob, 1))
	add(alice.signer(), Statement{Type: TypeRemove, Account: bob.id, Heads: map[string]uint64{vault: 3}})
	add(alice.signer(), wrap(alice, 2)) // 11

	// Bad cases, by hand: each is a statement signed as an attacker or a
	// broken client would, or a good entry moved or damaged.
	at := func(n int) *State {
		st, err := Replay(s.Org, nil, log[:n])
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	signed := func(n int, key *sign.PrivateKey, by string, st Statement) Entry {
		h := at(n).Head
		st.V, st.Org, st.Seq, st.Prev, st.By = Version, s.Org, uint64(n+1), h[:], by
		if st.Time == 0 {
			st.Time = now
		}
		return forge(t, key, st)
	}
	flipped := func(e Entry) Entry {
		e.Sig = bytes.Clone(e.Sig)
		e.Sig[100] ^= 1
		return e
	}
	spaced := func(key *sign.PrivateKey, e Entry) Entry {
		body := bytes.Replace(e.Body, []byte(`"v":1`), []byte(`"v": 1`), 1)
		sig, _ := key.Sign(SignContext, body)
		return Entry{Body: body, Sig: sig}
	}
	substituted := bob.cert(Member)
	substituted.Identity = mallory.sk.Public().Bytes()
	otherLog, _, otherRoot, err := NewOrg(rnd, "Other", alice.id, alice.email, alice.sk.Public(), alice.ek.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	swapped := *mustDecode(t, otherLog[0])
	swapped.Org, swapped.Prev = s.Org, genesisBytes(s.Org)
	secondGenesis := *mustDecode(t, log[0])
	escrow := wrap(mallory, 1)
	cases := []vectorCase{
		{Name: "valid", Prefix: len(log), Expect: "ok"},
		{Name: "valid prefix", Prefix: 5, Expect: "ok"},
		{Name: "bad signature", Prefix: 3, Entries: []Entry{flipped(log[3])}, Expect: "refused", Error: "signature does not verify"},
		{Name: "unsigned", Prefix: 3, Entries: []Entry{{Body: log[3].Body}}, Expect: "refused", Error: "signature does not verify"},
		{Name: "reordered", Prefix: 3, Entries: []Entry{log[4], log[3]}, Expect: "refused", Error: "does not follow"},
		{Name: "dropped", Prefix: 3, Entries: []Entry{log[4]}, Expect: "refused", Error: "does not follow"},
		{Name: "replayed", Prefix: 4, Entries: []Entry{log[3]}, Expect: "refused", Error: "does not follow"},
		{Name: "non-canonical body", Prefix: 2, Entries: []Entry{spaced(alice.sk, log[2])}, Expect: "malformed", Error: "canonical"},
		{Name: "pinned root differs", Prefix: len(log), OtherPin: true, Expect: "refused", Error: "not derived from the pinned root"},
		{Name: "swapped root", Prefix: 0, Entries: []Entry{forge(t, otherRoot, swapped)}, Expect: "refused", Error: "not derived from the genesis root key"},
		{Name: "second genesis", Prefix: 5, Entries: []Entry{signed(5, root, ByRoot, secondGenesis)}, Expect: "refused", Error: "a genesis may only be the first statement"},
		{Name: "not a member", Prefix: 5, Entries: []Entry{signed(5, mallory.sk, mallory.id, Statement{Type: TypeInvite, Email: "m@example.com"})}, Expect: "refused", Error: "is not a member"},
		{Name: "member certifies", Prefix: 5, Entries: []Entry{signed(5, bob.sk, bob.id, Statement{Type: TypeInvite, Email: "m@example.com"})}, Expect: "refused", Error: "is not an owner or administrator"},
		{Name: "owner certifies an admin", Prefix: 4, Entries: []Entry{signed(4, alice.sk, alice.id, bob.cert(Admin))}, Expect: "refused", Error: "only the root key certifies an admin"},
		{Name: "key substitution", Prefix: 4, Entries: []Entry{signed(4, root, ByRoot, substituted)}, Expect: "refused", Error: "key substitution"},
		{Name: "certificate without acceptance", Prefix: 3, Entries: []Entry{signed(3, alice.sk, alice.id, bob.cert(Member))}, Expect: "refused", Error: "has not accepted"},
		{Name: "escrow wrap", Prefix: 8, Entries: []Entry{signed(8, alice.sk, alice.id, escrow)}, Expect: "refused", Error: "is not an active member with access"},
		{Name: "wrap without manage", Prefix: 8, Entries: []Entry{signed(8, bob.sk, bob.id, wrap(bob, 2))}, Expect: "refused", Error: "has no manage access"},
		{Name: "removed member re-certified", Prefix: 10, Entries: []Entry{signed(10, root, ByRoot, bob.cert(Member))}, Expect: "refused", Error: "cannot come back"},
		{Name: "removal without heads", Prefix: 9, Entries: []Entry{signed(9, alice.sk, alice.id, Statement{Type: TypeRemove, Account: bob.id})}, Expect: "refused", Error: "loses write access"},
	}
	out := vectorFileV1{
		Comment:     "Organisation log vectors (docs/design.md §14), written by TestVectors -update. Cases replay log[:prefix] + entries pinned to root.",
		Org:         s.Org,
		Root:        s.Root.Bytes(),
		Fingerprint: Fingerprint(s.Root),
		Log:         log,
		Seq:         s.Seq,
		Head:        s.Head.String(),
		Cases:       cases,
	}
	for _, a := range []*acct{alice, bob} {
		m := s.Members[a.id]
		out.Accounts = append(out.Accounts, vectorAccount{Name: a.name, Account: a.id, State: m.State, Role: m.Role,
			Fingerprint: MemberFingerprint(a.id, m.Identity, m.Encryption)})
	}
	b, err := json.MarshalIndent(out, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	// Seeds for FuzzDecode: one statement of each type in the log.
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range log {
		st := mustDecode(t, e)
		if seen[st.Type] {
			continue
		}
		seen[st.Type] = true
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", e.Body)
		if err := os.WriteFile(filepath.Join(dir, "statement-"+st.Type), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
