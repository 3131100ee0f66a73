package kdbx

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// manyEntries makes n realistic entries: 20 folders two levels deep, a
// custom text and hidden field, notes, tags, one history version each,
// and a TOTP seed on every tenth.
func manyEntries(n int) []importer.Entry {
	out := make([]importer.Entry, n)
	for i := range out {
		it := item.Item{
			Type:     item.Login,
			Title:    fmt.Sprintf("Site %05d", i),
			Username: fmt.Sprintf("user%d@example.com", i),
			Password: fmt.Sprintf("pw-%08x-%08x", i*2654435761, i*40503),
			URLs:     []string{fmt.Sprintf("https://site%d.example.com/login", i)},
			Notes:    fmt.Sprintf("Account %d.\nSecurity questions in the notebook.", i),
			Tags:     []string{"imported", fmt.Sprintf("t%d", i%7)},
			Folder:   fmt.Sprintf("Group %d/Sub %d", i%20, i%3),
			Fields: []item.Field{
				{Name: "Customer number", Kind: item.KindText, Value: fmt.Sprint(1000000 + i)},
				{Name: "PIN", Kind: item.KindHidden, Value: fmt.Sprintf("%04d", i%10000)},
			},
			Created:  time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour),
			Modified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		}
		if i%10 == 0 {
			it.TOTP = "JBSWY3DPEHPK3PXP"
		}
		old := it
		old.Password = "old-" + it.Password
		old.Fields = nil
		old.Modified = it.Created
		out[i] = importer.Entry{Item: it, History: []item.Item{old}}
	}
	return out
}

// BenchmarkRead10k reads a 10,000-entry KDBX 4 file (each entry with one
// history version, so 20,000 items). The KDF is AES-KDF with one round so
// that the time is the import itself: decryption, HMAC checks,
// decompression, XML and mapping.
func BenchmarkRead10k(b *testing.B) {
	for _, c := range []struct {
		name string
		c    Cipher
	}{{"aes", AES256}, {"chacha20", ChaCha20}} {
		b.Run(c.name, func(b *testing.B) {
			o := tiny(AESKDF, c.c, 1)
			o.AESRounds = 1
			var buf bytes.Buffer
			if err := Write(&buf, manyEntries(10_000), []byte("pw"), o); err != nil {
				b.Fatal(err)
			}
			data := buf.Bytes()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := Read(bytes.NewReader(data), []byte("pw"), nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Entries) != 10_000 {
					b.Fatalf("%d entries", len(res.Entries))
				}
			}
		})
	}
}

// BenchmarkWrite10k writes the same 10,000 entries (KDF excluded as above).
func BenchmarkWrite10k(b *testing.B) {
	entries := manyEntries(10_000)
	o := tiny(AESKDF, AES256, 1)
	o.AESRounds = 1
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		if err := Write(&buf, entries, []byte("pw"), o); err != nil {
			b.Fatal(err)
		}
	}
}
