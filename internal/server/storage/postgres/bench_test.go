package postgres

import (
	"testing"

	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/storagetest"
)

func BenchmarkSync(b *testing.B) {
	storagetest.Benchmark(b, func(b *testing.B) storage.Store {
		s, err := Open(b.Context(), freshSchema(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
