package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"testing"
	"time"
)

var streamMiB = flag.Int("stream-mib", 1024, "size in MiB of the bounded-memory stream test")

func sealStream(t testing.TB, key []byte, ctx Context, pt []byte, writeSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, rand.Reader, key, ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(writeSize, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStreamRoundTrip(t *testing.T) {
	key := testKey(t)
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 5} {
		for _, ws := range []int{1 << 30, 1000, ChunkSize} {
			if n > 2*ChunkSize && ws == 1 {
				continue
			}
			pt := make([]byte, n)
			rand.Read(pt)
			ct := sealStream(t, key, testCtx, pt, ws)
			chunks := max(1, (n+ChunkSize-1)/ChunkSize)
			if want := StreamHeaderSize + n + chunks*ChunkOverhead; len(ct) != want {
				t.Fatalf("%d bytes: stream of %d bytes, want %d", n, len(ct), want)
			}
			r, err := NewReader(bytes.NewReader(ct), key, testCtx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%d bytes, writes of %d: %v", n, ws, err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes: round trip differs", n)
			}
			// The chunk API opens the same chunks.
			o, err := NewStreamOpener(key, testCtx, ct[:StreamHeaderSize])
			if err != nil {
				t.Fatal(err)
			}
			body := ct[StreamHeaderSize:]
			var again []byte
			for i := 0; i < chunks; i++ {
				size := min(MaxChunkCiphertext, len(body))
				p, err := o.OpenChunk(uint64(i), i == chunks-1, body[:size])
				if err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				again = append(again, p...)
				body = body[size:]
			}
			if !bytes.Equal(again, pt) {
				t.Fatal("chunk API plaintext differs")
			}
		}
	}
}

func TestWriterMatchesChunkAPI(t *testing.T) {
	key := testKey(t)
	salt := bytes.Repeat([]byte{9}, 32)
	pt := make([]byte, 2*ChunkSize+77)
	rand.Read(pt)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, bytes.NewReader(salt), key, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pt)
	w.Close()

	s, header, err := NewStreamSealer(bytes.NewReader(salt), key, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(header)
	for i := 0; i < 3; i++ {
		end := min(len(pt), (i+1)*ChunkSize)
		ct, err := s.SealChunk(uint64(i), i == 2, pt[i*ChunkSize:end])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ct...)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("Writer output differs from the chunk API")
	}
}

func TestSealChunkRules(t *testing.T) {
	key := testKey(t)
	s, _, err := NewStreamSealer(rand.Reader, key, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	full := make([]byte, ChunkSize)
	if _, err := s.SealChunk(1, false, full); !errors.Is(err, ErrChunkOrder) {
		t.Fatalf("skipping chunk 0: %v", err)
	}
	if _, err := s.SealChunk(0, false, full[:10]); !errors.Is(err, ErrChunkSize) {
		t.Fatalf("short non-final chunk: %v", err)
	}
	if _, err := s.SealChunk(0, true, make([]byte, ChunkSize+1)); !errors.Is(err, ErrChunkSize) {
		t.Fatalf("oversized final chunk: %v", err)
	}
	if _, err := s.SealChunk(0, false, full); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SealChunk(0, false, full); !errors.Is(err, ErrChunkOrder) {
		t.Fatalf("re-sealing chunk 0 (nonce reuse): %v", err)
	}
	if _, err := s.SealChunk(1, true, nil); !errors.Is(err, ErrChunkSize) {
		t.Fatalf("empty final chunk after chunk 0: %v", err)
	}
	if _, err := s.SealChunk(1, true, []byte("end")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SealChunk(2, true, []byte("more")); !errors.Is(err, ErrChunkOrder) {
		t.Fatalf("chunk after final: %v", err)
	}
}

func TestWriterClosed(t *testing.T) {
	w, err := NewWriter(io.Discard, rand.Reader, testKey(t), testCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestReaderTruncationEverywhere(t *testing.T) {
	key := testKey(t)
	pt := make([]byte, ChunkSize+100)
	rand.Read(pt)
	ct := sealStream(t, key, testCtx, pt, 1<<30)
	cuts := []int{0, 3, 10, StreamHeaderSize - 1, StreamHeaderSize, StreamHeaderSize + 1,
		StreamHeaderSize + 31, StreamHeaderSize + MaxChunkCiphertext - 1, StreamHeaderSize + MaxChunkCiphertext,
		StreamHeaderSize + MaxChunkCiphertext + 1, len(ct) - 1}
	for _, n := range cuts {
		r, err := NewReader(bytes.NewReader(ct[:n]), key, testCtx)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if err == nil {
			t.Fatalf("stream cut to %d of %d bytes read without error", n, len(ct))
		}
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut to %d: unexpected error %v", n, err)
		}
	}
}

// chachaReader is a fast deterministic source for the large stream test.
type chachaReader struct{ c *mrand.ChaCha8 }

func (r chachaReader) Read(p []byte) (int, error) { return r.c.Read(p) }

func TestStreamBoundedMemory(t *testing.T) {
	size := int64(*streamMiB) << 20
	if testing.Short() {
		size = 32 << 20
	}
	key := testKey(t)
	src := io.LimitReader(chachaReader{mrand.NewChaCha8([32]byte{1})}, size)
	pr, pw := io.Pipe()

	inHash := sha256.New()
	go func() {
		w, err := NewWriter(pw, rand.Reader, key, testCtx)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		if _, err := io.CopyBuffer(w, io.TeeReader(src, inHash), make([]byte, 32<<10)); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(w.Close())
	}()

	r, err := NewReader(pr, key, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64

	outHash := sha256.New()
	buf := make([]byte, 32<<10)
	var n int64
	start := time.Now()
	for {
		k, err := r.Read(buf)
		outHash.Write(buf[:k])
		n += int64(k)
		if n%(32<<20) < int64(k) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if !bytes.Equal(inHash.Sum(nil), outHash.Sum(nil)) {
		t.Fatal("plaintext differs after the stream")
	}
	growth := int64(peak) - int64(base)
	t.Logf("%d MiB in %v; heap in use grew by at most %d KiB", size>>20, time.Since(start).Round(time.Millisecond), growth>>10)
	// The runtime keeps up to its 4 MiB minimum heap target of garbage
	// before collecting; anything proportional to the stream would be
	// hundreds of MiB.
	if growth > 8<<20 {
		t.Fatalf("heap in use grew by %d bytes while streaming", growth)
	}
}
