package postgres

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/postgres/pgtest"
	"github.com/safehold/safehold/internal/server/storage/storagetest"
)

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, pgtest.FreshSchema(t))
	})
}

// Two stores with their own pools on one schema stand for two `safe serve`
// processes on one database. They open at once, so they also race to
// migrate.
func TestShared(t *testing.T) {
	storagetest.RunShared(t, func(t *testing.T) (storage.Store, storage.Store) {
		dsn := pgtest.FreshSchema(t)
		var (
			stores [2]*Store
			errs   [2]error
			wg     sync.WaitGroup
		)
		for i := range stores {
			wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
		}
		wg.Wait()
		for i, s := range stores {
			if s != nil {
				t.Cleanup(func() { s.Close() })
			}
			if errs[i] != nil {
				t.Fatalf("Open #%d: %v", i, errs[i])
			}
		}
		return stores[0], stores[1]
	})
}

func TestConcurrentMigrate(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s := open(t, dsn)
	names, _ := migrationNames()
	var n, max int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(names) || max != len(names) {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d", n, max, len(names))
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	s := open(t, dsn)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), dsn); !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrTooNew", err)
	}
}

func TestErrorsHidePassword(t *testing.T) {
	_, err := Open(t.Context(), "postgres://someone:hunter2secret@127.0.0.1:1/nodb?connect_timeout=2")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("error shows the password: %v", err)
	}
}

// An upload a crash left unfinished is deleted by a later Open once it is
// old; a recent one (perhaps another process's, in progress) is kept.
func TestDropsAbandonedUploads(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	s := open(t, dsn)
	ctx := t.Context()
	a := storage.Account{ID: "a", Email: "a@example.com", KDF: make([]byte, 80), Verifier: make([]byte, 32), Document: []byte("d")}
	if err := s.CreateAccount(ctx, a, storage.Device{Account: "a", ID: "d"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVault(ctx, "a", "v", []byte("r"), make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	var old, recent int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO blob_uploads (vault, item, touched)
		VALUES ('v', 'i', now() - interval '2 hours') RETURNING id`).Scan(&old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO blob_chunks (upload, idx, chunk) VALUES ($1, 0, '\x0102')`, old); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `INSERT INTO blob_uploads (vault, item, touched) VALUES ('v', 'i', now()) RETURNING id`).Scan(&recent); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dsn)
	var ids []int64
	rows, err := s2.pool.Query(ctx, `SELECT id FROM blob_uploads ORDER BY id`)
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
	s2.pool.QueryRow(ctx, `SELECT count(*) FROM blob_chunks`).Scan(&chunks)
	if len(ids) != 1 || ids[0] != recent || chunks != 0 {
		t.Fatalf("after Open: uploads %v and %d chunks; want only the recent upload %d", ids, chunks, recent)
	}
}

// A database of schema 1 with data migrates forward: existing vaults keep
// their account, and deleting the account still deletes them and their
// entries and blobs.
func TestMigratesSchema1(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema1, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`,
		string(schema1),
		`INSERT INTO schema_migrations (version) VALUES (1)`,
		`INSERT INTO accounts (id, email, kdf, verifier, epoch, document, created) VALUES ('a', 'a@example.com', '\x00', '\x00', 1, '\x00', now())`,
		`INSERT INTO vaults (vault, account, record, head, head_hash) VALUES ('v', 'a', '\x0102', 1, '\x0304')`,
		`INSERT INTO entries (vault, seq, op, item, revision, body, sig, payload) VALUES ('v', 1, 1, 'i', 1, '\x05', '\x06', '\x07')`,
		`INSERT INTO items (vault, item, revision, purged) VALUES ('v', 'i', 1, false)`,
		`INSERT INTO blob_uploads (id, vault, item, touched) OVERRIDING SYSTEM VALUE VALUES (1, 'v', 'i', now())`,
		`INSERT INTO blob_chunks (upload, idx, chunk) VALUES (1, 0, '\x08')`,
		`INSERT INTO blobs (vault, item, blob, upload, chunks, bytes) VALUES ('v', 'i', 'b', 1, 1, 1)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			conn.Close(ctx)
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)

	s := open(t, dsn)
	v, err := s.Vault(ctx, "v")
	if err != nil || v.Account != "a" || v.Org != "" || string(v.Record) != "\x01\x02" || v.Head != 1 || string(v.HeadHash) != "\x03\x04" {
		t.Fatalf("Vault after migration = %+v, %v", v, err)
	}
	if err := s.Blob(ctx, "v", "i", "b", func(int, []byte) error { return nil }); err != nil {
		t.Fatalf("Blob after migration: %v", err)
	}
	if err := s.DeleteAccount(ctx, "a"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	for _, table := range []string{"vaults", "entries", "items", "blob_uploads", "blob_chunks", "blobs"} {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s after DeleteAccount: %d rows, %v; want none", table, n, err)
		}
	}
	// A vault is an account's or an organisation's, never neither.
	if _, err := s.pool.Exec(ctx, `INSERT INTO vaults (vault, record, head, head_hash) VALUES ('w', '', 0, '')`); err == nil {
		t.Fatal("a vault of no account and no organisation was stored")
	}
}
