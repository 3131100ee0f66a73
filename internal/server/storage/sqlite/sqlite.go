// Package sqlite is the server's embedded storage.Store, the default: one
// SQLite file (pure Go, modernc.org/sqlite) that `safe serve` creates on
// first start.
//
// The file is created 0600 in a 0700 directory, carries an application id,
// runs in WAL mode with synchronous=FULL so that an acknowledged write
// survives a crash or a power cut, and migrates itself with numbered,
// embedded SQL files tracked by PRAGMA user_version.
//
// Reads go through a pool of read-only connections and run concurrently
// under WAL, with statements prepared once per connection. Writes go
// through a single connection owned by one writer goroutine, so that
// writers in this process queue in Go rather than spin on SQLite's busy
// handler; the writer commits the writes waiting at the same time
// together, each in its own savepoint, so that they share one sync to
// disk (group commit). Every write transaction starts with BEGIN
// IMMEDIATE, so that another process on the same file (`safe admin`) is
// serialised by SQLite's own lock.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/safehold/safehold/internal/server/storage"
)

// ApplicationID marks a SQLite file as a Safehold server database ("SHSV").
// It differs from the client vault file's, so neither opens the other.
const ApplicationID = 0x53485356

// Errors callers match with errors.Is.
var (
	ErrNotServerDB = errors.New("not a safehold server database")
	ErrTooNew      = errors.New("server database was written by a newer safehold")
	ErrPermission  = errors.New("unsafe permissions")
)

//go:embed migrations/*.sql
var migrations embed.FS

// abandonAfter is how long an upload may stay unfinished without writing a
// batch of chunks before Open deletes it as abandoned.
const abandonAfter = time.Hour

// Store is an open server database. It implements storage.Store.
type Store struct {
	w    *sql.DB // one connection, BEGIN IMMEDIATE, used by the writer
	r    *sql.DB // read-only connections
	path string

	stmts sync.Map             // query → *sql.Stmt on r, prepared on first use
	wst   map[string]*sql.Stmt // writeStatements on w, prepared by Open

	writes     chan *writeReq
	quit       chan struct{} // closed by Close
	writerDone chan struct{}
	closeOnce  sync.Once
}

var _ storage.Store = (*Store)(nil)

// Open opens the server database at path, creating it (0600, in a 0700
// directory made if missing) when it does not exist, and applies pending
// migrations.
func Open(path string) (*Store, error) {
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open server database: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("open server database: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is mode %04o, open to others; run chmod 600 on it", ErrPermission, path, fi.Mode().Perm())
	}

	name := "file:" + escapePath(path)
	w, err := sql.Open("sqlite", name+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"+
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=secure_delete(ON)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open server database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, path: path, writes: make(chan *writeReq), quit: make(chan struct{}), writerDone: make(chan struct{})}
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrNotServerDB, path, err)
	}
	if err := s.migrate(); err != nil {
		w.Close()
		return nil, err
	}
	// The writer's one connection is busy inside every write transaction,
	// so its statements are prepared now, while it is free; a transaction
	// then reuses them (sql.Tx.StmtContext).
	s.wst = make(map[string]*sql.Stmt)
	for _, q := range writeStatements {
		st, err := w.Prepare(q)
		if err != nil {
			s.closeWriteStatements()
			w.Close()
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
		s.wst[q] = st
	}
	go s.writer()
	// Readers are opened after the writer has put the file in WAL mode.
	// query_only makes a stray write through them fail loudly.
	r, err := sql.Open("sqlite", name+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=query_only(1)")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open server database: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	if err := r.Ping(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server database: %w", err)
	}
	if err := s.dropAbandoned(context.Background(), time.Now().Add(-abandonAfter)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// escapePath makes path safe inside a SQLite URI, which decodes %HH and
// stops at '?' and '#'.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	// A directory others may write lets them swap the file.
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: directory %s is mode %04o, writable by others; run chmod 700 on it", ErrPermission, dir, fi.Mode().Perm())
	}
	return nil
}

// Path is the database file's location.
func (s *Store) Path() string { return s.path }

// Close stops the writer, after the writes already handed to it, and
// closes the database. Writes after Close fail.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.writerDone
		if s.r != nil {
			s.stmts.Range(func(_, st any) bool {
				st.(*sql.Stmt).Close()
				return true
			})
			err = s.r.Close()
		}
		s.closeWriteStatements()
		err = errors.Join(err, s.w.Close())
	})
	return err
}

// migrate applies the embedded migrations above PRAGMA user_version, each
// in its own write transaction that re-reads the version, so that two
// processes opening the file at once apply each migration once.
//
// Foreign keys are off while migrating, as SQLite's procedure for changing
// a table's definition requires (a migration rebuilds the table under a
// new name, drops the old one and renames the new; with foreign keys on,
// the drop would delete every row referring to the old table). Each
// migration checks, before it commits, that it left every reference whole.
// The pragma cannot change inside a transaction, so it is set on the
// writer's one connection around them.
func (s *Store) migrate() (err error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for i, name := range names {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if err != nil || n != i+1 {
			return fmt.Errorf("migration %s is misnumbered", name)
		}
	}
	if _, err := s.w.Exec("PRAGMA foreign_keys = OFF"); err != nil {
		return fmt.Errorf("prepare migration: %w", err)
	}
	defer func() {
		if _, ferr := s.w.Exec("PRAGMA foreign_keys = ON"); ferr != nil {
			err = errors.Join(err, fmt.Errorf("end migration: %w", ferr))
		}
	}()
	for i, name := range names {
		n := i + 1
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		err = s.writeTx(context.Background(), func(tx *sql.Tx) error {
			current, err := s.checkFile(tx, len(names))
			if err != nil || current >= n {
				return err
			}
			if n == 1 {
				if _, err := tx.Exec(fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
					return fmt.Errorf("mark server database: %w", err)
				}
			}
			if _, err := tx.Exec(string(body)); err != nil {
				return fmt.Errorf("apply migration %s: %w", name, err)
			}
			if err := foreignKeyCheck(tx); err != nil {
				return fmt.Errorf("apply migration %s: %w", name, err)
			}
			if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
				return fmt.Errorf("apply migration %s: %w", name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// foreignKeyCheck fails if any row refers to a row that does not exist.
func foreignKeyCheck(tx *sql.Tx) error {
	rows, err := tx.Query("PRAGMA foreign_key_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		var (
			table, parent string
			rowid         sql.NullInt64
			fk            int64
		)
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return err
		}
		return fmt.Errorf("a row of %s refers to a missing row of %s", table, parent)
	}
	return rows.Err()
}

// checkFile returns the file's schema version after checking that it is
// a server database (or an empty file) no newer than this build.
func (s *Store) checkFile(tx *sql.Tx, known int) (int, error) {
	var app, version, objects int64
	if err := tx.QueryRow("PRAGMA application_id").Scan(&app); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrNotServerDB, s.path, err)
	}
	if err := tx.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if err := tx.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrNotServerDB, s.path, err)
	}
	switch {
	case app == 0 && version == 0 && objects == 0:
		return 0, nil // a new, empty file
	case app != ApplicationID:
		return 0, fmt.Errorf("%w: %s (application id %#x)", ErrNotServerDB, s.path, app)
	case version > int64(known):
		return 0, fmt.Errorf("%w: schema %d, this build knows %d; upgrade safe", ErrTooNew, version, known)
	}
	return int(version), nil
}

// writeTx runs fn in one write transaction (BEGIN IMMEDIATE) and commits
// it if fn returns nil. Only migrate calls it directly, before the writer
// starts; everything else goes through write.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Group commit. With synchronous=FULL each commit waits for the disk, and
// that wait, not SQLite, bounds how many writes a second one connection
// can make. So write hands its work to one writer goroutine, which runs
// whatever writes are waiting in one transaction, each inside its own
// savepoint (a failed write is rolled back to its savepoint and the
// others go on), and commits them with one sync. Every caller learns its
// own outcome only after the commit, so an acknowledged write is durable.

// maxGroup bounds the writes committed together.
const maxGroup = 64

var errClosed = errors.New("server database is closed")

type writeReq struct {
	ctx  context.Context
	fn   func(context.Context, *sql.Tx) error
	done chan writeResult
}

type writeResult struct {
	err   error
	panic any // re-raised in the caller's goroutine
}

// write runs fn in a write transaction, possibly shared with other
// writes, and returns once that transaction has committed or fn's work
// has been rolled back. fn must run its statements with the context it is
// given, never a caller's: cancelling a statement inside a shared
// transaction would roll back the others' work too. A cancelled ctx is
// honoured before fn starts.
func (s *Store) write(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errClosed
	}
	res := <-req.done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// writer runs until Close, committing groups of waiting writes.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var group []*writeReq
		select {
		case req := <-s.writes:
			group = append(group, req)
		case <-s.quit:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case req := <-s.writes:
				group = append(group, req)
			default:
				break more
			}
		}
		s.commitGroup(group)
	}
}

func (s *Store) commitGroup(group []*writeReq) {
	results := make([]writeResult, len(group))
	finish := func() {
		for i, req := range group {
			req.done <- results[i]
		}
	}
	defer finish()
	failAll := func(err error) {
		for i := range results {
			if results[i].err == nil && results[i].panic == nil {
				results[i].err = err
			}
		}
	}
	// Statements run without cancellation (see write); the transaction
	// is begun without it too, or a cancelled first caller would end it.
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		failAll(fmt.Errorf("begin write: %w", err))
		return
	}
	shared := len(group) > 1
	for i, req := range group {
		if err := req.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		if shared {
			if _, err := tx.Exec("SAVEPOINT w"); err != nil {
				tx.Rollback()
				failAll(fmt.Errorf("begin write: %w", err))
				return
			}
		}
		results[i] = run(context.WithoutCancel(req.ctx), tx, req.fn)
		if !shared {
			break
		}
		if results[i].err != nil || results[i].panic != nil {
			// If the failure ended the whole transaction, the savepoint
			// is gone with it and so is the others' work: fail them all.
			if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
				tx.Rollback()
				failAll(fmt.Errorf("roll back failed write: %w", err))
				return
			}
		}
		if _, err := tx.Exec("RELEASE w"); err != nil {
			tx.Rollback()
			failAll(fmt.Errorf("end write: %w", err))
			return
		}
	}
	if !shared && (results[0].err != nil || results[0].panic != nil) {
		tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		failAll(fmt.Errorf("commit: %w", err))
	}
}

// run calls fn, turning a panic into a result for the caller to re-raise.
func run(ctx context.Context, tx *sql.Tx, fn func(context.Context, *sql.Tx) error) (res writeResult) {
	defer func() {
		if p := recover(); p != nil {
			res.panic = p
		}
	}()
	res.err = fn(ctx, tx)
	return res
}

// stmt returns query prepared on the read pool. Reads run the same few
// statements thousands of times a second; preparing each once per
// connection saves parsing and planning it every time.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a one-row read with a prepared statement.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return s.r.QueryRowContext(ctx, query, args...) // fails alike, with the error
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read with a prepared statement.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// writeStatements are the statements of the busiest writes, prepared once
// on the writer's connection.
var writeStatements = []string{qMoveHead, qInsertEntry, qItemState}

func (s *Store) closeWriteStatements() {
	for _, st := range s.wst {
		st.Close()
	}
}

// exec runs a statement in a write transaction, prepared once if it is
// one of writeStatements.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.wst[query]; st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// read runs fn in one read transaction, a consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// constraint turns a constraint violation into the store's errors: a
// duplicate key into storage.ErrExists, a missing parent row into
// storage.ErrNotFound.
func constraint(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return storage.ErrExists
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return storage.ErrNotFound
	}
	return err
}

// noRows turns sql.ErrNoRows into storage.ErrNotFound.
func noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Times are stored as microseconds since the Unix epoch; the zero time of
// an optional column as NULL.
func micro(t time.Time) int64 { return t.UnixMicro() }

func fromMicro(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicro(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromNullMicro(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicro(v.Int64)
}

// blob returns b, or an empty slice for nil, for NOT NULL columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
