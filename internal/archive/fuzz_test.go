package archive

import (
	"bytes"
	"errors"
	"testing"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
)

// FuzzOpen feeds arbitrary files to Read: it must never panic, and what it
// accepts must write back and read again to the same entries.
func FuzzOpen(f *testing.F) {
	f.Add(writeArchive(f, nil, "fuzz empty"))
	f.Add(writeArchive(f, []importer.Entry{{Item: item.Item{Type: item.Note, Title: "n"}, Attachments: []importer.File{{Name: "a", Data: []byte("x")}}}}, "fuzz one"))
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, h, err := ReadPreamble(bytes.NewReader(data)); err == nil && costly(h.Params) {
			// Valid but slow KDF parameters (any within the ceilings are
			// accepted): seconds per input, and the fuzzer counts an input
			// over 10 s as a hang. The KDF is not what this target tests.
			return
		}
		res, err := Read(bytes.NewReader(data), testPassword, ReadOptions{AllowInsecure: true, MaxTotal: 8 << 20})
		if err != nil {
			return
		}
		roundTrip(t, res)
	})
}

// costly reports KDF parameters far above the test profile's: PBKDF2 over
// 100,000 iterations or Argon2id over 64 MiB·passes (found by FuzzOpen:
// 16,777,472 PBKDF2 iterations took 31 s, input b2745cb9ab612f01).
func costly(p kdf.Params) bool {
	return p.PBKDF2Iterations > 100_000 || uint64(p.Argon2Memory)*uint64(p.Argon2Time) > 64<<10
}

// FuzzRecords fuzzes the record decoder behind authentication: the
// plaintext is sealed with the right key, so every input reaches it.
func FuzzRecords(f *testing.F) {
	itm := rec(kindItem, []byte(`{"type":"login","title":"a"}`))
	f.Add(cat(itm, rec(kindHistory, []byte(`{"type":"note","title":"b"}`)), fileRec(3, "f"), rec(kindData, []byte("abc")), end(1, 1)))
	f.Add(end(0, 0))
	f.Add(cat(itm, fileRec(1<<40, "f"), end(1, 1)))
	f.Add(cat(itm, []byte{kindData, 0xff, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, plain []byte) {
		res, err := Read(bytes.NewReader(sealPlain(t, plain)), testPassword, ReadOptions{AllowInsecure: true, MaxTotal: 8 << 20})
		if err != nil {
			if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		roundTrip(t, res)
	})
}

func roundTrip(t *testing.T, res *importer.Result) {
	var buf bytes.Buffer
	if err := Write(&buf, res.Entries, testPassword, testOpts("again")); err != nil {
		t.Fatalf("accepted archive does not write back: %v", err)
	}
	again, err := Read(&buf, testPassword, readOpts)
	if err != nil {
		t.Fatalf("rewritten archive does not read: %v", err)
	}
	if len(again.Entries) != len(res.Entries) {
		t.Fatalf("%d entries, then %d", len(res.Entries), len(again.Entries))
	}
	for i := range res.Entries {
		a, b := res.Entries[i], again.Entries[i]
		if a.Item.Title != b.Item.Title || len(a.History) != len(b.History) || len(a.Attachments) != len(b.Attachments) {
			t.Fatalf("entry %d changed in the round trip", i)
		}
		for j := range a.Attachments {
			if a.Attachments[j].Name != b.Attachments[j].Name || !bytes.Equal(a.Attachments[j].Data, b.Attachments[j].Data) {
				t.Fatalf("entry %d attachment %d changed", i, j)
			}
		}
	}
}
