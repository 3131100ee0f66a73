// Package store keeps a Safehold vault file: a SQLite database (pure Go,
// modernc.org/sqlite) of sealed rows. It knows tables and transactions, not
// cryptography: every blob it stores is opaque to it, and the vault package
// authenticates whatever it reads back.
//
// The file is created 0600 inside a 0700 directory, carries an application
// id, runs in WAL mode with synchronous=FULL so that an acknowledged write
// survives a crash, and migrates itself with numbered, embedded SQL files.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ApplicationID marks a SQLite file as a Safehold vault ("SHLD").
const ApplicationID = 0x53484C44

//go:embed migrations/*.sql
var migrations embed.FS

// Errors callers match with errors.Is.
var (
	ErrNotExist   = errors.New("no vault file")
	ErrExist      = errors.New("vault file already exists")
	ErrNotVault   = errors.New("not a safehold vault file")
	ErrTooNew     = errors.New("vault file was written by a newer safehold")
	ErrNotFound   = errors.New("row not found")
	ErrPermission = errors.New("unsafe permissions")
)

// Store is an open vault file.
type Store struct {
	db   *sql.DB
	path string
}

// Create makes a new vault file at path (0600, in a 0700 directory that it
// creates if missing). It fails if the file exists.
func Create(path string) (*Store, error) {
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrExist, path)
	}
	if err != nil {
		return nil, fmt.Errorf("create vault file: %w", err)
	}
	f.Close()
	s, err := open(path)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	if _, err := s.db.Exec(fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
		s.Close()
		os.Remove(path)
		return nil, fmt.Errorf("mark vault file: %w", err)
	}
	if err := s.migrate(); err != nil {
		s.Close()
		os.Remove(path)
		return nil, err
	}
	return s, nil
}

// Build creates a new vault file at path holding what fill writes, so that
// the file appears complete or not at all: it is built under a temporary
// name in the same directory, checkpointed and closed, then linked into
// place (link fails if path exists) and the directory is synced. A crash
// leaves at most a stray temporary file, never a half-made vault.
func Build(ctx context.Context, path string, fill func(*Tx) error) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%w: %s", ErrExist, path)
	}
	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return err
	}
	tmpf, err := os.CreateTemp(dir, "."+filepath.Base(path)+".creating-*")
	if err != nil {
		return fmt.Errorf("create vault file: %w", err)
	}
	tmp := tmpf.Name()
	tmpf.Close()
	os.Remove(tmp) // Create wants to make it itself (O_EXCL, 0600)
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(tmp + suffix)
		}
	}()
	st, err := Create(tmp)
	if err != nil {
		return err
	}
	if err := st.Update(ctx, fill); err != nil {
		st.Close()
		return err
	}
	if err := st.Checkpoint(); err != nil {
		st.Close()
		return fmt.Errorf("checkpoint new vault file: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close new vault file: %w", err)
	}
	if fi, err := os.Stat(tmp + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("new vault file kept a write-ahead log after checkpoint; not moving it into place")
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExist, path)
		}
		return fmt.Errorf("move new vault file into place: %w", err)
	}
	return syncFile(dir)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// Open opens an existing vault file, checks it is one, and applies pending
// migrations.
func Open(path string) (*Store, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNotExist, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open vault file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is mode %04o, readable by others; run chmod 600 on it", ErrPermission, path, fi.Mode().Perm())
	}
	s, err := open(path)
	if err != nil {
		return nil, err
	}
	var app int64
	if err := s.db.QueryRow("PRAGMA application_id").Scan(&app); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrNotVault, path, err)
	}
	if app != ApplicationID {
		s.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotVault, path)
	}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func open(path string) (*Store, error) {
	q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_pragma=secure_delete(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", "file:"+path+q)
	if err != nil {
		return nil, fmt.Errorf("open vault file: %w", err)
	}
	// One connection: the vault has one writer, and a single connection
	// makes PRAGMA data_version meaningful for spotting outside changes.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrNotVault, path, err)
	}
	return &Store{db: db, path: path}, nil
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	// The vault file itself is 0600; a directory others may read only
	// shows its name, but one others may write lets them swap the file.
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: directory %s is mode %04o, writable by others; run chmod 700 on it", ErrPermission, dir, fi.Mode().Perm())
	}
	return nil
}

// Path is the file's location.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// DataVersion changes whenever another connection commits to the file. The
// vault uses it to notice changes it did not make.
func (s *Store) DataVersion() (int64, error) {
	var v int64
	err := s.db.QueryRow("PRAGMA data_version").Scan(&v)
	return v, err
}

func (s *Store) migrate() error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var current int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(names) {
		return fmt.Errorf("%w: schema %d, this build knows %d; upgrade safe", ErrTooNew, current, len(names))
	}
	for i, name := range names {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if err != nil || n != i+1 {
			return fmt.Errorf("migration %s is misnumbered", name)
		}
		if n <= current {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := s.db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
	}
	return nil
}

// Tx is a write transaction. Everything done through one Tx lands together
// or not at all.
type Tx struct{ tx *sql.Tx }

// Update runs fn in one write transaction and commits it if fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(&Tx{tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit write: %w", err)
	}
	return nil
}

// Checkpoint copies the write-ahead log into the main file.
func (s *Store) Checkpoint() error {
	_, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}
