package postgres

import (
	"github.com/safehold/safehold/internal/server/storage/postgres/pgtest"
	"testing"

	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/storagetest"
)

// BenchmarkSync runs with durable commits, as a server would.
func BenchmarkSync(b *testing.B) {
	storagetest.Benchmark(b, func(b *testing.B) storage.Store {
		s, err := Open(b.Context(), pgtest.NewSchema(b, map[string]string{}))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
