// Package postgres is the server's storage.Store on PostgreSQL, through
// pgx. Several `safe serve` processes may share one database: every rule
// the contract states under concurrency is enforced by the database (a
// compare-and-swap UPDATE for appends and document updates, unique keys,
// single-statement upserts and deletes), never by a lock in this process.
//
// Tables live in the first schema of the connection's search_path, so
// that one database can hold several independent stores (the tests use
// one schema each). Migrations are numbered, embedded SQL files, each
// applied in its own transaction under an advisory lock and recorded in
// schema_migrations, so that processes starting at once migrate once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/safehold/safehold/internal/server/storage"
)

// ErrTooNew is returned by Open for a database migrated by a newer build.
var ErrTooNew = errors.New("server database was written by a newer safehold")

//go:embed migrations/*.sql
var migrations embed.FS

// lockKey is the first half of the advisory lock taken while migrating
// ("SHSV"); the second is a hash of the schema's name.
const lockKey = 0x53485356

// defaultMaxConns is the pool size unless the DSN sets pool_max_conns.
const defaultMaxConns = 16

// abandonAfter is how long an upload may stay unfinished without writing a
// batch of chunks before Open deletes it as abandoned.
const abandonAfter = time.Hour

// Store is a server database on PostgreSQL. It implements storage.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn (a URL,
// postgres://user@host:5432/db?sslmode=verify-full, or key=value pairs,
// as libpq and pgx accept; pool_max_conns sets the pool size, and
// search_path the schema to use) and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors do not repeat the password.
		return nil, fmt.Errorf("parse postgres connection string: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.dropAbandoned(ctx, abandonAfter); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every connection.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for i, name := range names {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if err != nil || n != i+1 {
			return nil, fmt.Errorf("migration %s is misnumbered", name)
		}
	}
	return names, nil
}

// migrate applies pending migrations one transaction at a time. Each
// transaction takes the advisory lock, reads the version, and applies the
// next migration, so concurrent processes take turns and skip what the
// other did.
func (s *Store) migrate(ctx context.Context) error {
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for done := false; !done; {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, lockKey); err != nil {
				return fmt.Errorf("lock for migration: %w", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version integer PRIMARY KEY,
				applied timestamptz NOT NULL DEFAULT now())`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var current int
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if current > len(names) {
				return fmt.Errorf("%w: schema %d, this build knows %d; upgrade safe", ErrTooNew, current, len(names))
			}
			if current == len(names) {
				done = true
				return nil
			}
			name := names[current]
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("read migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("apply migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, current+1); err != nil {
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

// write runs fn in a read-committed transaction and commits it if fn
// returns nil.
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// snapshot runs fn in a read-only transaction that sees one snapshot.
func (s *Store) snapshot(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// constraint turns a constraint violation into the store's errors: a
// duplicate key into storage.ErrExists, a missing parent row into
// storage.ErrNotFound.
func constraint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return storage.ErrExists
		case "23503": // foreign_key_violation
			return storage.ErrNotFound
		}
	}
	return err
}

// noRows turns pgx.ErrNoRows into storage.ErrNotFound.
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
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

// Times are timestamptz, kept to the microsecond; the zero time of an
// optional column is NULL. Times read back are in UTC.
func stamp(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromNull(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// blob returns b, or an empty slice for nil, for NOT NULL columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// exists reports (as nil or storage.ErrNotFound) whether query finds a row.
func exists(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, query string, args ...any) error {
	var one int
	return noRows(q.QueryRow(ctx, query, args...).Scan(&one))
}
