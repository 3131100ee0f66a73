package sign

import (
	"bytes"
	"testing"
)

func FuzzParsePublicKey(f *testing.F) {
	k, _ := NewKeyFromSeed(make([]byte, SeedSize))
	f.Add(k.Public().Bytes())
	f.Add(k.Public().Bytes()[:100])
	f.Add([]byte{AlgHybridV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicKey(b)
		if err != nil {
			return
		}
		out, _ := p.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("parse then marshal is not byte-identical")
		}
		_ = p.Verify("fuzz", b, make([]byte, SignatureSize))
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	k, _ := NewKeyFromSeed(make([]byte, SeedSize))
	f.Add([]byte(k.Bytes()))
	f.Add([]byte{AlgHybridV1, 1, 2})
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

func FuzzVerify(f *testing.F) {
	k, _ := NewKeyFromSeed(make([]byte, SeedSize))
	sig, _ := k.Sign("ctx", []byte("msg"))
	f.Add("ctx", []byte("msg"), sig)
	f.Add("ctx", []byte("msg"), sig[:70])
	f.Add("", []byte{}, []byte{})
	pub := k.Public()
	f.Fuzz(func(t *testing.T, context string, msg, sig []byte) {
		if pub.Verify(context, msg, sig) == nil {
			want, err := k.Sign(context, msg)
			if err != nil || !bytes.Equal(want, sig) {
				t.Fatal("a signature other than the deterministic one verified")
			}
		}
	})
}
