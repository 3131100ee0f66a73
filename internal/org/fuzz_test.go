package org

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode checks that whatever Decode accepts re-encodes byte for byte,
// and that everything else is ErrMalformed. The seeds in
// testdata/fuzz/FuzzDecode are real statements (written by TestVectors
// -update).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := Decode(Entry{Body: body})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error is not ErrMalformed: %v", err)
			}
			return
		}
		b, err := Encode(st)
		if err != nil {
			t.Fatalf("Encode of a decoded statement: %v", err)
		}
		if !bytes.Equal(b, body) {
			t.Fatalf("decode then encode is not byte-identical:\n%s\n%s", body, b)
		}
	})
}
