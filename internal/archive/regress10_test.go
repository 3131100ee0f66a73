package archive

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// The vault keeps every revision of an item (ARCHITECTURE: "history keeps
// every revision"; nothing in internal/item or internal/vault bounds it),
// but Write refuses an entry with more than MaxHistory = 1000 earlier
// versions, and fails the whole export. An item edited 1,001 times (or a
// Bitwarden import with a long passwordHistory) makes `safe export
// archive`, the only full backup, impossible.
func TestRegress10ArchiveRefusesLongHistory(t *testing.T) {
	cur := item.Item{Type: item.Login, Title: "rotated by a script", Username: "svc", Password: "now"}
	var hist []item.Item
	// 1,001: one more than the old bound. (Not MaxHistory+1, which no
	// finite bound can accept while Write and Read agree on it.)
	for i := range 1001 {
		h := cur.Clone()
		h.Password = fmt.Sprintf("pw-%d", i)
		hist = append(hist, h)
	}
	var buf bytes.Buffer
	if err := Write(&buf, []importer.Entry{{Item: cur, History: hist}}, testPassword, testOpts("long history")); err != nil {
		t.Fatalf("export of an item with %d earlier versions failed: %v", len(hist), err)
	}
	res, err := Read(bytes.NewReader(buf.Bytes()), testPassword, readOpts)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Entries[0].History); got != len(hist) {
		t.Fatalf("read back %d earlier versions, wrote %d", got, len(hist))
	}
}
