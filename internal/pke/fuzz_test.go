package pke

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func FuzzOpen(f *testing.F) {
	k, err := NewKeyFromSeed(make([]byte, SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	ct, _ := Seal(rand.Reader, k.Public(), testCtx, []byte("seed"))
	f.Add(ct)
	f.Add(ct[:HeaderSize+EncSize])
	f.Add([]byte("SHPK\x01\x01"))
	f.Fuzz(func(t *testing.T, ct []byte) {
		_, _ = Open(k, testCtx, ct)
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := NewKeyFromSeed(make([]byte, SeedSize))
	f.Add(k.Public().Bytes())
	f.Add([]byte{AlgXWingV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicKey(b)
		if err != nil {
			return
		}
		if out, _ := p.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatal("parse then marshal is not byte-identical")
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	k, _ := NewKeyFromSeed(make([]byte, SeedSize))
	f.Add([]byte(k.Bytes()))
	f.Add([]byte{AlgXWingV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePrivateKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(k.Bytes(), b) {
			t.Fatal("parse then encode is not byte-identical")
		}
	})
}
