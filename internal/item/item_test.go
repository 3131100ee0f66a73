package item

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeInput(t *testing.T) {
	one, err := DecodeInput([]byte(`{"type":"login","title":"A","password":"p"}`))
	if err != nil || len(one) != 1 || one[0].Password != "p" {
		t.Fatalf("%v %+v", err, one)
	}
	many, err := DecodeInput([]byte(` [{"title":"A"},{"type":"note","title":"B"}]`))
	if err != nil || len(many) != 2 || many[1].Type != Note {
		t.Fatalf("%v %+v", err, many)
	}
	for in, want := range map[string]string{
		`{"title":"A","pasword":"x"}`:   `unknown field "pasword"`,
		`[{"title":"A"},{"titel":"B"}]`: "item 2 of 2",
		``:                              "no JSON",
		`{"title":"A"} {}`:              "trailing",
	} {
		_, err := DecodeInput([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Item{Type: Login, Title: "T", Fields: []Field{{Name: "d", Kind: KindDate, Value: "2024-02-29"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, it := range map[string]Item{
		"no title":   {Type: Login},
		"bad type":   {Type: "Login", Title: "T"},
		"bad kind":   {Type: Login, Title: "T", Fields: []Field{{Name: "x", Kind: "secret"}}},
		"bad date":   {Type: Login, Title: "T", Fields: []Field{{Name: "x", Kind: KindDate, Value: "31/12/2024"}}},
		"title NL":   {Type: Login, Title: "a\nb"},
		"tag comma":  {Type: Login, Title: "T", Tags: []string{"a,b"}},
		"huge notes": {Type: Note, Title: "T", Notes: strings.Repeat("x", MaxNotes+1)},
	} {
		if err := it.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFieldsAndMask(t *testing.T) {
	it := Item{Type: Card, Title: "Visa", Card: &CardData{Number: "4111", CVV: "123", Holder: "A B"},
		Fields: []Field{{Name: "PIN", Kind: KindHidden, Value: "9999"}, {Name: "Note", Kind: KindText, Value: "hi"}}}
	if v, secret, err := it.Get("card.number"); err != nil || v != "4111" || !secret {
		t.Fatalf("card.number: %q %v %v", v, secret, err)
	}
	if v, secret, _ := it.Get("pin"); v != "9999" || !secret {
		t.Fatalf("custom hidden: %q %v", v, secret)
	}
	if _, _, err := it.Get("nope"); !errors.Is(err, ErrNoField) {
		t.Fatal(err)
	}
	m := it.Masked()
	b, _ := json.Marshal(m)
	for _, s := range []string{"4111", "123", "9999"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("masked item shows %q: %s", s, b)
		}
	}
	if !bytes.Contains(b, []byte("A B")) || !bytes.Contains(b, []byte(`"hi"`)) {
		t.Errorf("masked item hides non-secrets: %s", b)
	}
	if it.Card.Number != "4111" {
		t.Fatal("Masked changed the original")
	}
	it.Set("username", "u")
	it.Set("Colour", "blue")
	if it.Username != "u" || it.Fields[2].Name != "Colour" {
		t.Fatalf("set: %+v", it)
	}
}

// FuzzDecode: nothing panics, and a decoded item survives a JSON round trip
// unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"login","title":"A","urls":["https://a"],"fields":[{"name":"x","kind":"text","value":"y"}]}`))
	f.Add([]byte(`[{"title":"A"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := DecodeInput(data)
		if err != nil {
			return
		}
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Decode(b)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			b2, _ := json.Marshal(again)
			if !bytes.Equal(b, b2) {
				t.Fatalf("round trip changed the item:\n%s\n%s", b, b2)
			}
		}
	})
}
