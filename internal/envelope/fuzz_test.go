package envelope

import (
	"bytes"
	"io"
	"testing"
)

var fuzzKey = bytes.Repeat([]byte{0x42}, KeySize)

func FuzzOpen(f *testing.F) {
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 100)} {
		sealed, err := Seal(bytes.NewReader(make([]byte, 36)), fuzzKey, testCtx, pt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
		f.Add(sealed[:len(sealed)-1])
	}
	f.Add([]byte{})
	f.Add([]byte("SHEN\x02\x01"))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		pt, err := Open(fuzzKey, testCtx, sealed)
		if err != nil {
			return
		}
		// One canonical encoding: re-sealing with the same nonces gives
		// the same bytes.
		again, err := Seal(bytes.NewReader(sealed[6:HeaderSize]), fuzzKey, testCtx, pt)
		if err != nil || !bytes.Equal(again, sealed) {
			t.Fatalf("re-seal differs (err %v)", err)
		}
	})
}

func FuzzStreamReader(f *testing.F) {
	for _, n := range []int{0, 10, ChunkSize} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, bytes.NewReader(make([]byte, 32)), fuzzKey, testCtx)
		w.Write(make([]byte, n))
		w.Close()
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()-1])
	}
	f.Add([]byte("SHST\x01\x01\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r, err := NewReader(bytes.NewReader(stream), fuzzKey, testCtx)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r)
	})
}

func FuzzOpenChunk(f *testing.F) {
	s, header, _ := NewStreamSealer(bytes.NewReader(make([]byte, 32)), fuzzKey, testCtx)
	ct, _ := s.SealChunk(0, true, []byte("chunk"))
	f.Add(header, uint64(0), true, ct)
	f.Add(header, uint64(1), false, ct)
	f.Add(header[:20], uint64(0), true, ct)
	f.Fuzz(func(t *testing.T, header []byte, index uint64, final bool, ct []byte) {
		o, err := NewStreamOpener(fuzzKey, testCtx, header)
		if err != nil {
			if ParseStreamHeader(header) == nil {
				t.Fatalf("valid header refused: %v", err)
			}
			return
		}
		if _, err := o.OpenChunk(index, final, ct); err != nil {
			return
		}
		if len(ct) > MaxChunkCiphertext {
			t.Fatal("oversized chunk opened")
		}
	})
}
