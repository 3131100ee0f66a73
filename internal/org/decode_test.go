package org

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// rawBody encodes st with encoding/json directly, without Encode's checks.
func rawBody(t *testing.T, st Statement) []byte {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRoundTrip(t *testing.T) {
	f := newFixture(t)
	for i, e := range f.log {
		st, err := Decode(e)
		if err != nil {
			t.Fatalf("entry %d: %v", i+1, err)
		}
		b, err := Encode(st)
		if err != nil || !bytes.Equal(b, e.Body) {
			t.Fatalf("entry %d does not re-encode: %v", i+1, err)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	f := newFixture(t)
	a := f.alice
	base := f.fill(f.bob.id, Statement{Type: TypeInvite, Email: "x@example.com"})
	good := rawBody(t, base)
	if _, err := Decode(Entry{Body: good}); err != nil {
		t.Fatal(err)
	}
	with := func(change func(*Statement)) []byte {
		st := base
		change(&st)
		return rawBody(t, st)
	}
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("%q not in %s", old, good)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	long := strings.Repeat("a", MaxName+1)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "does not parse"},
		{"not json", []byte("hello"), "does not parse"},
		{"array", []byte("[]"), "does not parse"},
		{"too large", append(good, bytes.Repeat([]byte(" "), MaxStatement)...), "more than"},
		{"trailing value", append(bytes.Clone(good), []byte(` {}`)...), "trailing data"},
		{"trailing newline", append(bytes.Clone(good), '\n'), "canonical"},
		{"leading space", append([]byte(" "), good...), "canonical"},
		{"space after colon", edit(`"v":1`, `"v": 1`), "canonical"},
		{"keys reordered", append(edit(`"v":1,`, ``)[:len(good)-len(`"v":1,`)-1], []byte(`,"v":1}`)...), "canonical"},
		{"escaped letter", edit(`"invite"`, `"invit\u0065"`), "canonical"},
		{"upper-case key", edit(`"email"`, `"EMAIL"`), "canonical"},
		{"duplicate key", edit(`"v":1,`, `"v":1,"v":1,`), "canonical"},
		{"unknown field", edit(`"v":1,`, `"v":1,"x":1,`), "unknown field"},
		{"null prev", edit(`"prev":"`, `"prev":null,"p":"`), "unknown field"},
		{"float seq", edit(`"v":1`, `"v":1.0`), "does not parse"},
		{"version", with(func(s *Statement) { s.V = 2 }), "version 2"},
		{"unknown type", with(func(s *Statement) { s.Type = "promote" }), "unknown type"},
		{"org not an id", with(func(s *Statement) { s.Org = "ORG" }), "organisation id"},
		{"org upper-case", with(func(s *Statement) { s.Org = strings.ToUpper(s.Org) }), "organisation id"},
		{"org non-canonical", with(func(s *Statement) { s.Org = s.Org[:25] + "z" }), "organisation id"},
		{"org with u", with(func(s *Statement) { s.Org = "u" + s.Org[1:] }), "organisation id"},
		{"seq 0", with(func(s *Statement) { s.Seq = 0 }), "seq 0"},
		{"short prev", with(func(s *Statement) { s.Prev = s.Prev[:63] }), "prev is 63 bytes"},
		{"negative time", with(func(s *Statement) { s.Time = -1 }), "negative time"},
		{"signer", with(func(s *Statement) { s.By = "admin" }), `signer "admin"`},
		{"unused field", with(func(s *Statement) { s.Name = "n" }), `field "name" is not used by this type`},
		{"unused heads", with(func(s *Statement) { s.Heads = map[string]uint64{f.vault: 1} }), `field "heads" is not used`},
		{"missing field", with(func(s *Statement) { s.Email = "" }), `field "email" is missing`},
		{"upper-case e-mail", with(func(s *Statement) { s.Email = "X@example.com" }), "e-mail address"},
		{"e-mail without @", with(func(s *Statement) { s.Email = "example.com" }), "e-mail address"},
		{"e-mail with two @", with(func(s *Statement) { s.Email = "a@b@c" }), "e-mail address"},
		{"e-mail with space", with(func(s *Statement) { s.Email = "a b@c" }), "e-mail address"},
		{"e-mail with control", with(func(s *Statement) { s.Email = "a\x01@c" }), "e-mail address"},
		{"e-mail too long", with(func(s *Statement) { s.Email = strings.Repeat("a", 250) + "@b.cd" }), "e-mail address"},
		{"genesis name", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 1, Prev: s.Prev, Type: TypeGenesis, By: ByRoot, Name: long,
				Root: a.sk.Public().Bytes(), RootSealed: []byte{1}, Account: a.id}
		}), "name must be"},
		{"genesis root", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 1, Prev: s.Prev, Type: TypeGenesis, By: ByRoot, Name: "n",
				Root: a.ek.Public().Bytes(), RootSealed: []byte{1}, Account: a.id}
		}), "root key"},
		{"group name with colon", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGroup, By: s.By, Name: "a:b"}
		}), "group name"},
		{"group members unsorted", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGroup, By: s.By, Name: "g", Members: []string{f.dave.id, f.carol.id}}
			if s.Members[0] < s.Members[1] {
				s.Members[0], s.Members[1] = s.Members[1], s.Members[0]
			}
		}), "not sorted and unique"},
		{"group members duplicate", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGroup, By: s.By, Name: "g", Members: []string{a.id, a.id}}
		}), "not sorted and unique"},
		{"group member not an id", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGroup, By: s.By, Name: "g", Members: []string{"alice"}}
		}), "not an account id"},
		{"member role", with(func(s *Statement) {
			c := a.cert("boss")
			c.V, c.Org, c.Seq, c.Prev, c.By = 1, s.Org, 9, s.Prev, s.By
			*s = c
		}), "unknown role"},
		{"member identity", with(func(s *Statement) {
			c := a.cert(Member)
			c.V, c.Org, c.Seq, c.Prev, c.By = 1, s.Org, 9, s.Prev, s.By
			c.Identity = c.Identity[1:]
			*s = c
		}), "identity key"},
		{"member encryption", with(func(s *Statement) {
			c := a.cert(Member)
			c.V, c.Org, c.Seq, c.Prev, c.By = 1, s.Org, 9, s.Prev, s.By
			c.Encryption = c.Identity
			*s = c
		}), "encryption key"},
		{"grant subject", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGrant, By: s.By, Vault: f.vault, Subject: "group:", Access: Read}
		}), "does not name a group"},
		{"grant subject 2", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGrant, By: s.By, Vault: f.vault, Subject: "carol", Access: Read}
		}), "neither an account id"},
		{"grant access", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGrant, By: s.By, Vault: f.vault, Subject: a.id, Access: "admin"}
		}), "unknown access"},
		{"grant heads", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeGrant, By: s.By, Vault: f.vault, Subject: a.id, Heads: map[string]uint64{"v": 1}}
		}), "not a vault id"},
		{"key vault", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeKey, By: s.By, Vault: "V", Account: a.id, Gen: 1, Wrapped: []byte{1}}
		}), "vault \"V\" is not an id"},
		{"key without gen", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeKey, By: s.By, Vault: f.vault, Account: a.id, Wrapped: []byte{1}}
		}), `field "gen" is missing`},
		{"device key", with(func(s *Statement) {
			*s = Statement{V: 1, Org: s.Org, Seq: 9, Prev: s.Prev, Type: TypeDevice, By: s.By, Account: s.By, Device: a.id, Public: []byte{1}, Cert: []byte{1}}
		}), "device key"},
	} {
		_, err := Decode(Entry{Body: c.body})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want malformed naming %q", c.name, err, c.want)
		}
	}
	// Invalid UTF-8 cannot survive re-encoding.
	bad := edit(`"x@example.com"`, "\"x\xff@example.com\"")
	if _, err := Decode(Entry{Body: bad}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	// Encode refuses what Decode refuses.
	st := base
	st.Name = "n"
	if _, err := Encode(&st); !errors.Is(err, ErrMalformed) {
		t.Errorf("Encode of an unused field: %v", err)
	}
	// A statement that names its seq is named in the error.
	if _, err := Decode(Entry{Body: with(func(s *Statement) { s.Seq = 77; s.Email = "" })}); err == nil || !strings.Contains(err.Error(), "statement 77 (invite): ") {
		t.Errorf("error does not name the statement: %v", err)
	}
}
