package vlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/sign"
)

func testKey(t testing.TB) *sign.PrivateKey {
	t.Helper()
	k, err := sign.NewKeyFromSeed(bytes.Repeat([]byte{7}, 64))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sample() *Entry {
	e := &Entry{Op: OpPut, Seq: 3, Time: 1700000000000, Revision: 2, Vault: "vault1", Item: "item1", Device: "dev1"}
	e.Prev = chain.Genesis("test", []byte("x"))
	copy(e.Digest[:], bytes.Repeat([]byte{0xab}, DigestLen))
	return e
}

func TestSignDecodeVerify(t *testing.T) {
	k := testKey(t)
	e := sample()
	body, err := e.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, body) {
		t.Fatal("encoding does not start with the body")
	}
	d, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	if d.Seq != 3 || d.Item != "item1" || d.Revision != 2 || d.Prev != e.Prev {
		t.Fatalf("decoded %+v", d)
	}
	// Every field is covered by the signature.
	for i := 0; i < len(body); i++ {
		bad := bytes.Clone(body)
		bad[i] ^= 1
		be, err := DecodeBody(bad)
		if err != nil {
			continue // the flip broke the structure: refused anyway
		}
		be.Sig = e.Sig
		if be.Verify(k.Public()) == nil {
			t.Fatalf("flipping body byte %d still verifies", i)
		}
	}
	other, err := sign.NewKeyFromSeed(bytes.Repeat([]byte{8}, 64))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(other.Public()); !errors.Is(err, ErrSignature) {
		t.Fatalf("verify with another key: %v", err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	k := testKey(t)
	e := sample()
	if _, err := e.Sign(k); err != nil {
		t.Fatal(err)
	}
	enc, _ := e.Encode()
	cases := map[string][]byte{
		"empty":         nil,
		"truncated":     enc[:100],
		"bad magic":     append([]byte("XXXX"), enc[4:]...),
		"version 2":     append(append([]byte(Magic), 2), enc[5:]...),
		"trailing byte": append(bytes.Clone(enc), 0),
		"short sig":     enc[:len(enc)-1],
	}
	op := bytes.Clone(enc)
	op[5] = 9
	cases["unknown op"] = op
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	for _, bad := range []*Entry{
		{Op: OpPut, Seq: 0, Vault: "v", Item: "i", Device: "d"},
		{Op: OpPut, Seq: 1, Vault: "", Item: "i", Device: "d"},
		{Op: OpPut, Seq: 1, Vault: string(bytes.Repeat([]byte("v"), MaxID+1)), Item: "i", Device: "d"},
	} {
		if _, err := bad.Body(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v encoded: %v", bad, err)
		}
	}
}

// FuzzDecode: nothing panics, and whatever decodes re-encodes to the same
// bytes (one canonical encoding per entry).
func FuzzDecode(f *testing.F) {
	k := testKey(f)
	e := sample()
	if _, err := e.Sign(k); err != nil {
		f.Fatal(err)
	}
	enc, _ := e.Encode()
	f.Add(enc)
	f.Add(enc[:fixedLen+3])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data)
		if err != nil {
			return
		}
		again, err := d.Encode()
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	body, _ := sample().Body()
	f.Add(body)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeBody(data)
		if err != nil {
			return
		}
		again, err := d.Body()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
