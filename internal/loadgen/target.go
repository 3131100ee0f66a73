package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/postgres"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
)

// ErrNotLoopback is returned for a --url whose host is not a loopback
// address: the load generator never sends load to another machine.
var ErrNotLoopback = errors.New("the load generator only targets a server on this machine (loopback)")

// CheckLoopback accepts https://HOST:PORT where HOST is a loopback IP
// literal or "localhost" (which must resolve to loopback addresses only).
func CheckLoopback(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("invalid server address %q: want https://127.0.0.1:PORT", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s is not a loopback address", ErrNotLoopback, host)
		}
		return nil
	}
	if !strings.EqualFold(host, "localhost") {
		return fmt.Errorf("%w: use an IP literal such as 127.0.0.1 instead of %q", ErrNotLoopback, host)
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%w: localhost resolves to %s here", ErrNotLoopback, a.IP)
		}
	}
	return nil
}

// target is the server under load.
type target struct {
	url, fingerprint string
	desc             string
	inProcess        bool
	stop             func() error // shuts down what start made; nil for an external server
}

// startServer starts `safe serve` in this process on 127.0.0.1:0 with the
// store the config names: PostgreSQL in a fresh schema (dropped on stop),
// or SQLite in cfg.DataDir or a temporary directory (removed on stop).
// Request logs are formatted as `safe serve` formats them and discarded.
func startServer(ctx context.Context, cfg *Config) (_ *target, err error) {
	var cleanups []func() error
	cleanup := func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()

	dir := cfg.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "safe-bench-")
		if err != nil {
			return nil, fmt.Errorf("create a temporary data directory: %w", err)
		}
		cleanups = append(cleanups, func() error { return os.RemoveAll(tmp) })
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the data directory: %w", err)
	}

	var (
		st   storage.Store
		desc string
	)
	if cfg.DB != "" {
		dsn, drop, err := freshSchema(ctx, cfg.DB)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, drop)
		pg, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		st, desc = pg, "in-process, postgresql"
	} else {
		lite, err := sqlite.Open(filepath.Join(dir, "server.db"))
		if err != nil {
			return nil, err
		}
		st, desc = lite, "in-process, sqlite"
	}
	cleanups = append(cleanups, st.Close)

	srv, err := server.New(server.Config{
		DataDir: dir,
		Store:   st,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	cleanups = append(cleanups, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("the in-process server did not shut down in 30 s")
		}
	})
	return &target{
		url:         "https://" + ln.Addr().String(),
		fingerprint: srv.Fingerprint(),
		desc:        desc,
		inProcess:   true,
		stop:        cleanup,
	}, nil
}

// freshSchema creates an empty schema safe_bench_<random> in the database
// dsn names and returns a DSN whose search_path is that schema, and a
// function that drops it. The store's tables then live there, apart from
// anything else in the database.
func freshSchema(ctx context.Context, dsn string) (string, func() error, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", nil, errors.New("the PostgreSQL address must be a URL: postgres://user@host:5432/db")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// url's errors repeat the input, which may hold a password.
		return "", nil, errors.New("the PostgreSQL URL does not parse")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "safe_bench_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, sql string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return fmt.Errorf("connect to postgres at %s: %w", u.Host, err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s for the benchmark: %w", schema, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() error {
		if err := exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("drop the benchmark's schema %s: %w", schema, err)
		}
		return nil
	}
	return u.String(), drop, nil
}
