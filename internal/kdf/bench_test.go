package kdf

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

// go test -run '^$' -bench . -benchtime 10x ./internal/kdf/

// BenchmarkArgon2id uses the inputs of the C reference CLI comparison:
//
//	echo -n pw | argon2 somesalt -id -t 2 -m 16 -p 1 -l 32
//
// (-m 16 means 2^16 KiB = 64 MiB.)
func BenchmarkArgon2id(b *testing.B) {
	for _, p := range []uint8{1, 2} {
		b.Run(fmt.Sprintf("m=64MiB,t=2,p=%d", p), func(b *testing.B) {
			for b.Loop() {
				argon2.IDKey([]byte("pw"), []byte("somesalt"), 2, 64*1024, p, 32)
			}
		})
	}
}

func BenchmarkPBKDF2(b *testing.B) {
	salt := make([]byte, SaltSize)
	for b.Loop() {
		if _, err := pbkdf2.Key(sha512.New, "pw", salt, 100_000, 64); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDerive(b *testing.B) {
	s := testSalts(b)
	for _, c := range []struct {
		name string
		p    Params
	}{{"defaults", Defaults()}, {"floor", Params{MinArgon2MemoryKiB, MinArgon2Time, 1, MinPBKDF2Iterations, false}}, {"test", TestParams()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				k, err := DeriveWith([]byte("correct horse battery staple"), make([]byte, 16), c.p, s, true)
				if err != nil {
					b.Fatal(err)
				}
				k.Wipe()
			}
		})
	}
}
