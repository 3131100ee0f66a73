package sign

import (
	"crypto/rand"
	"testing"
)

func BenchmarkGenerateKey(b *testing.B) {
	for b.Loop() {
		if _, err := GenerateKey(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := newTestKey(b)
	msg := make([]byte, 256)
	for b.Loop() {
		if _, err := k.Sign("bench", msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := newTestKey(b)
	msg := make([]byte, 256)
	sig, _ := k.Sign("bench", msg)
	pub := k.Public()
	for b.Loop() {
		if err := pub.Verify("bench", msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}
