package vault

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// patternReader yields n pseudo-random bytes without holding them.
type patternReader struct {
	r *rand.ChaCha8
	n int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	p.r.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

// TestAttachmentStreamsInBoundedMemory stores and reads back a large
// attachment and checks the Go heap does not grow with its size.
func TestAttachmentStreamsInBoundedMemory(t *testing.T) {
	size := int64(128 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	v, _, _ := newVault(t)
	addLogin(t, v, "Files", "pw")
	src := &patternReader{r: rand.NewChaCha8([32]byte{1}), n: size}
	want := sha256.New()
	runtime.GC()
	var before, peak runtime.MemStats
	runtime.ReadMemStats(&before)
	it, err := v.Attach(ctx, "Files", "big.bin", io.TeeReader(src, want))
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&peak)
	if a := it.Attachments[0]; a.Size != size || a.Chunks != (size+ChunkSize-1)/ChunkSize {
		t.Fatalf("attachment %+v", a)
	}
	got := sha256.New()
	if n, err := v.ReadAttachment(ctx, "Files", "big.bin", got); err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("attachment changed on the way")
	}
	// TotalAlloc grows with garbage too; HeapInuse after the write says
	// what stayed. A whole-file buffer would be >= size.
	if grew := int64(peak.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Fatalf("heap grew by %d MiB storing a %d MiB attachment", grew>>20, size>>20)
	}
	t.Logf("%d MiB attachment: heap in use grew %d KiB", size>>20, (int64(peak.HeapInuse)-int64(before.HeapInuse))>>10)
}

func TestAttachmentTamperAndPurge(t *testing.T) {
	v, path, _ := newVault(t)
	addLogin(t, v, "Files", "pw")
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes: 3 chunks
	if _, err := v.Attach(ctx, "Files", "a.txt", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Attach(ctx, "Files", "a.txt", bytes.NewReader(data)); err == nil {
		t.Fatal("a second attachment with the same name was accepted")
	}
	f := &rawFile{db: rawDB(t, path)}
	// Swap two chunks: each is bound to its index.
	var c0, c1 []byte
	f.query(t, "SELECT data FROM chunks WHERE idx = 0", &c0)
	f.query(t, "SELECT data FROM chunks WHERE idx = 1", &c1)
	f.exec(t, "UPDATE chunks SET data = ? WHERE idx = 0", c1)
	f.exec(t, "UPDATE chunks SET data = ? WHERE idx = 1", c0)
	if _, err := v.ReadAttachment(ctx, "Files", "a.txt", io.Discard); !errors.Is(err, ErrTampered) {
		t.Fatalf("swapped chunks: %v", err)
	}
	f.exec(t, "UPDATE chunks SET data = ? WHERE idx = 0", c0)
	f.exec(t, "UPDATE chunks SET data = ? WHERE idx = 1", c1)
	// Drop the final chunk: truncation is refused.
	f.exec(t, "DELETE FROM chunks WHERE idx = 2")
	if _, err := v.ReadAttachment(ctx, "Files", "a.txt", io.Discard); !errors.Is(err, ErrTampered) {
		t.Fatalf("truncated attachment: %v", err)
	}
	if _, err := v.Verify(ctx); !errors.Is(err, ErrTampered) {
		t.Fatalf("verify after truncation: %v", err)
	}
	// Detach, then purge: the chunks only history referred to go too.
	if _, err := v.Detach(ctx, "Files", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Trash(ctx, "Files"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Purge(ctx, "Files"); err != nil {
		t.Fatal(err)
	}
	var n int
	f.query(t, "SELECT count(*) FROM chunks", &n)
	if n != 0 {
		t.Fatalf("%d chunks left after purge", n)
	}
}

// Chunks left by a crash between an attachment's two transactions are
// marked pending; the next unlock drops them and nothing else.
func TestUnfinishedAttachmentDropped(t *testing.T) {
	v, path, _ := newVault(t)
	addLogin(t, v, "Files", "pw")
	if _, err := v.Attach(ctx, "Files", "kept.txt", bytes.NewReader([]byte("keep me"))); err != nil {
		t.Fatal(err)
	}
	f := &rawFile{db: rawDB(t, path)}
	f.exec(t, "INSERT INTO chunks (vault_id, blob_id, idx, data) SELECT vault_id, 'orphan', 0, x'00' FROM vaults")
	f.exec(t, "INSERT INTO pending_blobs (vault_id, blob_id) SELECT vault_id, 'orphan' FROM vaults")
	v.Lock()
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	var orphans, pending int
	f.query(t, "SELECT count(*) FROM chunks WHERE blob_id = 'orphan'", &orphans)
	f.query(t, "SELECT count(*) FROM pending_blobs", &pending)
	if orphans != 0 || pending != 0 {
		t.Fatalf("after unlock: %d orphan chunks, %d pending marks", orphans, pending)
	}
	var out bytes.Buffer
	if _, err := v.ReadAttachment(ctx, "Files", "kept.txt", &out); err != nil || out.String() != "keep me" {
		t.Fatalf("finished attachment: %q %v", out.String(), err)
	}
}

// Removing an attachment can be undone by restoring a revision that had it.
func TestRestoreRevisionBringsBackAttachments(t *testing.T) {
	v, _, _ := newVault(t)
	addLogin(t, v, "Files", "pw")
	if _, err := v.Attach(ctx, "Files", "a.txt", bytes.NewReader([]byte("first"))); err != nil {
		t.Fatal(err)
	}
	withA, _ := v.Get(ctx, "Files")
	if _, err := v.Detach(ctx, "Files", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Attach(ctx, "Files", "b.txt", bytes.NewReader([]byte("second"))); err != nil {
		t.Fatal(err)
	}
	it, err := v.RestoreRevision(ctx, "Files", withA.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Attachments) != 2 {
		t.Fatalf("attachments after restore: %+v", it.Attachments)
	}
	for name, want := range map[string]string{"a.txt": "first", "b.txt": "second"} {
		var out bytes.Buffer
		if _, err := v.ReadAttachment(ctx, "Files", name, &out); err != nil || out.String() != want {
			t.Fatalf("%s: %q %v", name, out.String(), err)
		}
	}
	if _, err := v.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
