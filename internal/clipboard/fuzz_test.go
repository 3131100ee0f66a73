package clipboard

import (
	"bytes"
	"testing"
)

// FuzzParseToken checks that whatever parses re-encodes byte for byte.
func FuzzParseToken(f *testing.F) {
	good := append([]byte("SHCB\x01\x00\x00\xaf\xc8"), bytes.Repeat([]byte{7}, 64)...)
	f.Add(good)
	f.Add(good[:10])
	f.Add(append([]byte("SHCB\x01\xff\xff\xff\xff"), make([]byte, 64)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseToken(data)
		if err != nil {
			return
		}
		out, err := tok.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, out)
		}
	})
}
