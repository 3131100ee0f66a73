package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var ctx = context.Background()

func TestBuildOpenAndRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	path := filepath.Join(dir, "vault.db")
	err := Build(ctx, path, func(tx *Tx) error { return tx.PutAccount([]byte("record")) })
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %04o", p, fi.Mode().Perm(), err, want)
		}
	}
	if err := Build(ctx, path, func(*Tx) error { return nil }); !errors.Is(err, ErrExist) {
		t.Fatalf("building over an existing vault: %v", err)
	}
	// A fill that fails leaves nothing behind.
	other := filepath.Join(dir, "other.db")
	boom := errors.New("boom")
	if err := Build(ctx, other, func(*Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing fill: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "vault.db" {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Account()
	if err != nil || string(rec) != "record" {
		t.Fatalf("account: %q %v", rec, err)
	}
	s.Close()

	if _, err := Open(filepath.Join(dir, "missing.db")); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := Open(path); !errors.Is(err, ErrPermission) {
		t.Fatalf("world-readable file: %v", err)
	}
	os.Chmod(path, 0o600)

	// A SQLite file that is not a vault, and a file that is not SQLite.
	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	os.Chmod(foreign, 0o600)
	if _, err := Open(foreign); !errors.Is(err, ErrNotVault) {
		t.Fatalf("foreign SQLite file: %v", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("this is not a database, just text that is long enough to look like one"), 0o600)
	if _, err := Open(junk); !errors.Is(err, ErrNotVault) {
		t.Fatalf("junk file: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	if err := Build(ctx, path, func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); !errors.Is(err, ErrTooNew) {
		t.Fatalf("schema 99: %v", err)
	}
}

func TestWriteIsAllOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	if err := Build(ctx, path, func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItem(ItemRow{Vault: "v", Item: "i", Revision: 1, Payload: []byte("p")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.Item("v", "i"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed transaction left a row: %v", err)
	}
	// Pending attachment chunks are dropped together with their mark.
	err = s.Update(ctx, func(tx *Tx) error {
		if err := tx.MarkPending("v", "b"); err != nil {
			return err
		}
		return tx.PutChunk("v", "b", 0, []byte("c"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.DropPending(ctx); err != nil || n != 1 {
		t.Fatalf("drop pending: %d %v", n, err)
	}
	if n, _ := s.ChunkCount("v", "b"); n != 0 {
		t.Fatalf("%d chunks left", n)
	}
}
