package peer

import (
	"context"
	"iter"
	"testing"

	"github.com/safehold/safehold/internal/remote"
)

// BenchmarkBlobThroughput uploads and downloads a 64 MiB blob (1024 chunks
// of 64 KiB of plaintext, sealed) through a Client over the in-memory pipe.
// One op is one PutBlob and one GetBlob; MB/s counts the blob once.
// "folder" stores it in a folder remote in a temporary directory (set
// TMPDIR to choose the disk); "memory" has a backing that drops uploads and
// serves one chunk repeatedly, to measure the protocol alone.
func BenchmarkBlobThroughput(b *testing.B) {
	b.Run("folder", func(b *testing.B) {
		f, vault := registered(b)
		benchBlob(b, f, vault)
	})
	b.Run("memory", func(b *testing.B) {
		benchBlob(b, memBlob{chunk: benchChunk()}, "v")
	})
}

const (
	benchChunks    = 1024
	benchChunkSize = 65536 + 32
)

func benchChunk() []byte {
	chunk := make([]byte, benchChunkSize)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	return chunk
}

func benchBlob(b *testing.B, backing remote.Remote, vault string) {
	c, _ := connect(b, backing, 4)
	chunk := benchChunk()
	ctx := b.Context()
	b.SetBytes(benchChunks * benchChunkSize)
	b.ReportAllocs()
	for b.Loop() {
		err := c.PutBlob(ctx, vault, "item", "blob", func(yield func([]byte, error) bool) {
			for range benchChunks {
				if !yield(chunk, nil) {
					return
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = c.GetBlob(ctx, vault, "item", "blob", func(int, []byte) error { n++; return nil })
		if err != nil || n != benchChunks {
			b.Fatalf("GetBlob: %d chunks, %v", n, err)
		}
	}
}

// memBlob reads uploads and drops them; every blob is benchChunks copies
// of chunk.
type memBlob struct {
	failing
	chunk []byte
}

func (memBlob) PutBlob(_ context.Context, _, _, _ string, chunks iter.Seq2[[]byte, error]) error {
	for _, err := range chunks {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m memBlob) GetBlob(_ context.Context, _, _, _ string, fn func(int, []byte) error) error {
	for i := range benchChunks {
		if err := fn(i, m.chunk); err != nil {
			return err
		}
	}
	return nil
}
