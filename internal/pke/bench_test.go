package pke

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

func BenchmarkSeal(b *testing.B) {
	k := newTestKey(b)
	pt := make([]byte, 32)
	for b.Loop() {
		if _, err := Seal(rand.Reader, k.Public(), testCtx, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := newTestKey(b)
	ct, _ := Seal(rand.Reader, k.Public(), testCtx, make([]byte, 32))
	for b.Loop() {
		if _, err := Open(k, testCtx, ct); err != nil {
			b.Fatal(err)
		}
	}
}
