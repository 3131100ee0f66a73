package vault

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden-v1.db (run once per format version)")

// goldenPassword and goldenRecovery open testdata/golden-v1.db, a vault
// written by format version 1 with the test KDF profile. The test pins the
// on-disk format: a change that cannot read it back is a format change and
// needs a new version, a migration and a new golden file.
const (
	goldenPassword = "golden password v1"
	goldenRecovery = "R1-74SM-PG3Q-W7R3-HC1J-0SRJ-WEBQ-QE6H-B4B1"
)

func goldenItems() []item.Item {
	return []item.Item{
		{Type: item.Login, Title: "GitHub", Username: "alice", Password: "hunter2-golden", URLs: []string{"https://github.com"}, Tags: []string{"dev"}, Folder: "Work"},
		{Type: item.Note, Title: "Wi-Fi", Notes: "guest: correct horse"},
		{Type: item.Card, Title: "Visa", Card: &item.CardData{Number: "4111111111111111", CVV: "123", Expiry: "12/2030"}},
	}
}

// writeGolden makes the golden vault with a deterministic random source and
// clock. It runs only with -update-golden.
func writeGolden(t *testing.T, path string) {
	os.Remove(path)
	clock := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	opts := Options{Rand: random.NewDeterministic([]byte("safehold golden vault v1")), AllowInsecureKDF: true, Now: func() time.Time { return clock }}
	c, err := Create(ctx, path, []byte(goldenPassword), kdf.TestParams(), opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Unlock(ctx, []byte(goldenPassword)); err != nil {
		t.Fatal(err)
	}
	items, err := v.Add(ctx, goldenItems())
	if err != nil {
		t.Fatal(err)
	}
	items[0].Password = "hunter3-golden"
	if _, err := v.Update(ctx, items[0].ID, 0, items[0]); err != nil {
		t.Fatal(err)
	}
	v.st.Checkpoint()
	v.Close()
	t.Logf("wrote %s; recovery key %s", path, c.RecoveryKey)
}

func TestGoldenVault(t *testing.T) {
	src := filepath.Join("testdata", "golden-v1.db")
	if *updateGolden {
		writeGolden(t, src)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// Work on a copy: opening may write a snapshot.
	path := filepath.Join(t.TempDir(), "golden.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte(goldenPassword)); err != nil {
		t.Fatalf("the golden vault no longer opens: %v", err)
	}
	if _, err := v.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "GitHub")
	if err != nil || got.Password != "hunter3-golden" || got.Revision != 2 || got.Folder != "Work" {
		t.Fatalf("GitHub: %v %+v", err, got)
	}
	revs, err := v.History(ctx, "GitHub")
	if err != nil || len(revs) != 2 || revs[0].Password != "hunter2-golden" {
		t.Fatalf("history: %v %+v", err, revs)
	}
	if c, err := v.Get(ctx, "Visa"); err != nil || c.Card == nil || c.Card.CVV != "123" {
		t.Fatalf("Visa: %v %+v", err, c)
	}
	v.Lock()
	if err := v.Recover(ctx, goldenRecovery, []byte("another password"), kdf.Params{}); err != nil {
		t.Fatalf("the golden recovery key no longer opens: %v", err)
	}
}
