package genpass

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzGenerate drives both generators with arbitrary random streams and
// options and checks their invariants: the output has the requested shape or
// a documented error is returned.
func FuzzGenerate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, 8, uint8(0), uint8(3))
	f.Add(bytes.Repeat([]byte{0xAB}, 600), 4, uint8(0x30), uint8(0x17))
	f.Fuzz(func(t *testing.T, stream []byte, n int, flags, pflags uint8) {
		o := PasswordOptions{
			Length:           n % 64,
			NoLower:          flags&1 != 0,
			NoUpper:          flags&2 != 0,
			NoDigits:         flags&4 != 0,
			NoSymbols:        flags&8 != 0,
			ExcludeAmbiguous: flags&16 != 0,
			RequireEachClass: flags&32 != 0,
		}
		pw, bits, err := Password(bytes.NewReader(stream), o)
		if err == nil {
			want, _ := PasswordEntropy(o)
			if bits != want || (o.Length != 0 && len(pw) != o.Length) {
				t.Fatalf("bad password: len %d, bits %v", len(pw), bits)
			}
			if o.RequireEachClass && !hasEachClass(pw, o.classes()) {
				t.Fatal("class missing")
			}
		} else if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrExhausted) &&
			!errors.Is(err, ErrLength) && !errors.Is(err, ErrNoClasses) && !errors.Is(err, ErrTooShortForClasses) {
			t.Fatalf("unexpected error %v", err)
		}
		po := PassphraseOptions{Words: n % 70, Capitalization: Capitalization(pflags & 3), AppendDigit: pflags&4 != 0}
		if pflags&8 != 0 {
			po.Separator = " "
		}
		if _, _, err := Passphrase(bytes.NewReader(stream), po); err != nil &&
			!errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrWords) {
			t.Fatalf("unexpected passphrase error %v", err)
		}
	})
}
