package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/storagetest"
)

func BenchmarkSync(b *testing.B) {
	storagetest.Benchmark(b, func(b *testing.B) storage.Store {
		s, err := Open(filepath.Join(b.TempDir(), "server.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
