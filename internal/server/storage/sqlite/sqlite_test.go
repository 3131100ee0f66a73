package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/storagetest"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "server.db"))
	})
}

// Two stores on one file stand for `safe serve` and `safe admin` (or two
// servers on one host): SQLite's locking must keep every guarantee.
func TestShared(t *testing.T) {
	storagetest.RunShared(t, func(t *testing.T) (storage.Store, storage.Store) {
		path := filepath.Join(t.TempDir(), "server.db")
		return open(t, path), open(t, path)
	})
}

func TestCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "server.db")
	open(t, path)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.Secret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	again, err := s.Secret(t.Context())
	if err != nil || string(again) != string(secret) {
		t.Fatalf("secret changed across reopen (err %v)", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	s := open(t, path)
	if _, err := s.w.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrTooNew", err)
	}
}

func TestRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "other.db")
	s := open(t, path)
	if _, err := s.w.Exec("PRAGMA application_id = 1234"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrNotServerDB) {
		t.Fatalf("Open of another application's file: %v, want ErrNotServerDB", err)
	}

	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(loose); !errors.Is(err, ErrPermission) {
		t.Fatalf("Open of a world-readable file: %v, want ErrPermission", err)
	}
}

func TestReadersAreReadOnly(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "server.db"))
	if _, err := s.r.Exec("DELETE FROM meta"); err == nil {
		t.Fatal("a read connection wrote")
	}
}

// Writes committed together stay independent: a failed or panicking
// write is rolled back alone, and the others land.
func TestGroupCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "server.db"))
	ctx := t.Context()
	const n = 60
	refused := errors.New("refused")
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			<-start
			errs[i] = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, x'00')`, fmt.Sprint(i)); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return refused
				case 2:
					panic(fmt.Sprint("boom ", i))
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		var count int
		if err := s.r.QueryRow(`SELECT count(*) FROM meta WHERE key = ?`, fmt.Sprint(i)).Scan(&count); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			if errs[i] != nil || panics[i] != nil || count != 1 {
				t.Errorf("write %d: err %v, panic %v, %d rows; want it stored", i, errs[i], panics[i], count)
			}
		case 1:
			if !errors.Is(errs[i], refused) || count != 0 {
				t.Errorf("write %d: err %v, %d rows; want its error and nothing stored", i, errs[i], count)
			}
		case 2:
			if panics[i] != fmt.Sprint("boom ", i) || count != 0 {
				t.Errorf("write %d: panic %v, %d rows; want its panic and nothing stored", i, panics[i], count)
			}
		}
	}
	// A write after Close fails instead of hanging.
	s.Close()
	if err := s.ClearThrottle(ctx, "x"); !errors.Is(err, errClosed) {
		t.Fatalf("write after Close: %v, want errClosed", err)
	}
}

// An upload a crash left unfinished is deleted by a later Open once it is
// old; a recent one (perhaps another process's, in progress) is kept.
func TestDropsAbandonedUploads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a := storage.Account{ID: "a", Email: "a@example.com", KDF: make([]byte, 80), Verifier: make([]byte, 32), Document: []byte("d")}
	if err := s.CreateAccount(ctx, a, storage.Device{Account: "a", ID: "d"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVault(ctx, "a", "v", []byte("r"), make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO blob_uploads (id, vault, item, touched) VALUES (100, 'v', 'i', 0)`,
		`INSERT INTO blob_chunks (upload, idx, chunk) VALUES (100, 0, x'0102')`,
		fmt.Sprintf(`INSERT INTO blob_uploads (id, vault, item, touched) VALUES (101, 'v', 'i', %d)`, micro(time.Now())),
	} {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, path)
	var ids []int64
	rows, err := s.r.Query(`SELECT id FROM blob_uploads ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	var chunks int
	s.r.QueryRow(`SELECT count(*) FROM blob_chunks`).Scan(&chunks)
	if len(ids) != 1 || ids[0] != 101 || chunks != 0 {
		t.Fatalf("after reopen: uploads %v and %d chunks; want only the recent upload", ids, chunks)
	}
}

// A file of schema 1 with data migrates forward: vaults is rebuilt with
// its rows, and the tables that refer to it refer to the new table (a
// deleted account still takes its entries and blobs with it).
func TestMigratesSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	schema1, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA application_id = %d", ApplicationID),
		string(schema1),
		"PRAGMA user_version = 1",
		`INSERT INTO accounts (id, email, kdf, verifier, epoch, document, created) VALUES ('a', 'a@example.com', x'00', x'00', 1, x'00', 0)`,
		`INSERT INTO vaults (vault, account, record, head, head_hash) VALUES ('v', 'a', x'0102', 1, x'0304')`,
		`INSERT INTO entries (vault, seq, op, item, revision, body, sig, payload) VALUES ('v', 1, 1, 'i', 1, x'05', x'06', x'07')`,
		`INSERT INTO items (vault, item, revision, purged) VALUES ('v', 'i', 1, 0)`,
		`INSERT INTO blob_uploads (id, vault, item, touched) VALUES (1, 'v', 'i', 0)`,
		`INSERT INTO blob_chunks (upload, idx, chunk) VALUES (1, 0, x'08')`,
		`INSERT INTO blobs (vault, item, blob, upload, chunks, bytes) VALUES ('v', 'i', 'b', 1, 1, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, path)
	ctx := t.Context()
	v, err := s.Vault(ctx, "v")
	if err != nil || v.Account != "a" || v.Org != "" || string(v.Record) != "\x01\x02" || v.Head != 1 || string(v.HeadHash) != "\x03\x04" {
		t.Fatalf("Vault after migration = %+v, %v", v, err)
	}
	var n int
	if err := s.Entries(ctx, "v", 0, 10, func(e storage.Entry) error {
		n++
		if string(e.Payload) != "\x07" {
			t.Errorf("entry payload %x after migration", e.Payload)
		}
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("Entries after migration: %d, %v", n, err)
	}
	if err := s.Blob(ctx, "v", "i", "b", func(int, []byte) error { return nil }); err != nil {
		t.Fatalf("Blob after migration: %v", err)
	}
	var fk int
	if err := s.w.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign keys after migration: %d, %v; want on", fk, err)
	}
	var stale int
	if err := s.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%vaults_new%'`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d schema objects still name vaults_new (%v)", stale, err)
	}
	if err := s.DeleteAccount(ctx, "a"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	for _, table := range []string{"vaults", "entries", "items", "blob_uploads", "blob_chunks", "blobs"} {
		if err := s.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s after DeleteAccount: %d rows, %v; want none", table, n, err)
		}
	}
}
