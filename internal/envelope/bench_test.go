package envelope

import (
	"crypto/rand"
	"fmt"
	"io"
	"testing"
)

var benchSizes = []int{1 << 10, 64 << 10, 16 << 20}

func BenchmarkSeal(b *testing.B) {
	key := testKey(b)
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := Seal(rand.Reader, key, testCtx, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	key := testKey(b)
	for _, n := range benchSizes {
		sealed, _ := Seal(rand.Reader, key, testCtx, make([]byte, n))
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := Open(key, testCtx, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStreamWrite(b *testing.B) {
	key := testKey(b)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	w, err := NewWriter(io.Discard, rand.Reader, key, testCtx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
}

// BenchmarkStreamRead decrypts a 16 MiB stream held in memory, so it
// measures decryption, not I/O.
func BenchmarkStreamRead(b *testing.B) {
	key := testKey(b)
	const size = 16 << 20
	pt := make([]byte, size)
	ct := sealStream(b, key, testCtx, pt, size)
	b.SetBytes(size)
	buf := make([]byte, 1<<20)
	for b.Loop() {
		r, err := NewReader(bytesReader(ct), key, testCtx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

type sliceReader struct{ b []byte }

func bytesReader(b []byte) *sliceReader { return &sliceReader{b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
