package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestGenesisAndLink(t *testing.T) {
	g := Genesis("vault-log", []byte("v1"))
	if g.IsZero() {
		t.Fatal("zero genesis")
	}
	if g.Equal(Genesis("vault-log", []byte("v2"))) || g.Equal(Genesis("vault-lo", []byte("gv1"))) {
		t.Fatal("different genesis inputs collide")
	}
	a := Link(g, []byte("e1"))
	if a.Equal(g) || !a.Equal(Link(g, []byte("e1"))) {
		t.Fatal("Link is not a deterministic move")
	}
	// Order matters, and the chain commits to every entry.
	ab := Link(Link(g, []byte("a")), []byte("b"))
	ba := Link(Link(g, []byte("b")), []byte("a"))
	if ab.Equal(ba) || ab.Equal(Link(g, []byte("ab"))) {
		t.Fatal("reordered or merged entries collide")
	}
	// Genesis and Link inputs are domain separated: a Link from the zero
	// hash never equals a genesis.
	if Link(Hash{}, nil).Equal(Genesis("", nil)) {
		t.Fatal("link and genesis collide")
	}
}

func TestEncoding(t *testing.T) {
	h := Link(Genesis("d", nil), []byte("x"))
	b, _ := h.MarshalBinary()
	p, err := Parse(b)
	if err != nil || !p.Equal(h) {
		t.Fatalf("binary round trip: %v", err)
	}
	q, err := ParseString(h.String())
	if err != nil || q != h {
		t.Fatalf("string round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, b[:63], append(b, 0)} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%d bytes): %v", len(bad), err)
		}
	}
	for _, bad := range []string{"", h.String()[:127], strings.ToUpper(h.String()), h.String()[:126] + "zz", h.String() + "00"} {
		if _, err := ParseString(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseString(%q): %v", bad, err)
		}
	}
}

func TestVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Comment string `json:"comment"`
		Chains  []struct {
			Name    string `json:"name"`
			Domain  string `json:"domain"`
			ID      []byte `json:"id"`
			Genesis string `json:"genesis"`
			Steps   []struct {
				Entry []byte `json:"entry"`
				Hash  string `json:"hash"`
			} `json:"steps"`
		} `json:"chains"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Chains) == 0 {
		t.Fatal("no vectors")
	}
	seen := map[Hash]string{}
	for _, c := range f.Chains {
		cur := Genesis(c.Domain, c.ID)
		if cur.String() != c.Genesis {
			t.Fatalf("%s: genesis %s, want %s", c.Name, cur, c.Genesis)
		}
		if other, ok := seen[cur]; ok {
			t.Fatalf("%s and %s share a genesis", c.Name, other)
		}
		seen[cur] = c.Name
		for i, s := range c.Steps {
			cur = Link(cur, s.Entry)
			if cur.String() != s.Hash {
				t.Fatalf("%s: step %d is %s, want %s", c.Name, i, cur, s.Hash)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	h := Genesis("d", []byte("id"))
	f.Add(h[:])
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if out, _ := h.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatal("parse then marshal differs")
		}
	})
}

func FuzzParseString(f *testing.F) {
	f.Add(Genesis("d", nil).String())
	f.Add("00")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseString(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatal("parse then format differs")
		}
	})
}

func BenchmarkLink(b *testing.B) {
	for _, n := range []int{256, 4096} {
		entry := make([]byte, n)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			h := Genesis("bench", nil)
			for b.Loop() {
				h = Link(h, entry)
			}
		})
	}
}
