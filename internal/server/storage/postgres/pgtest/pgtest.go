// Package pgtest finds the PostgreSQL server tests use and gives each test
// a schema of its own.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The tests need a PostgreSQL server. By default they use the database
// "test" on 127.0.0.1:5432 with trust authentication, as user postgres or
// the current user; SAFE_TEST_POSTGRES=dsn names another. Each test works
// in a fresh schema of its own, dropped at the end, so test binaries may
// run side by side on one database. Without a server the tests skip, but
// in CI (CI=true) they fail instead: CI must run them.

var (
	serverOnce sync.Once
	serverDSN  string
	serverErr  error
)

// Server returns the DSN of a reachable test server, or skips (fails in
// CI) if there is none.
func Server(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		var candidates []string
		if dsn := os.Getenv("SAFE_TEST_POSTGRES"); dsn != "" {
			candidates = []string{dsn}
		} else {
			users := []string{"postgres"}
			if u, err := user.Current(); err == nil && u.Username != "postgres" {
				users = append(users, u.Username)
			}
			for _, u := range users {
				candidates = append(candidates, "host=127.0.0.1 port=5432 dbname=test sslmode=disable connect_timeout=5 user="+u)
			}
		}
		var errs []error
		for _, dsn := range candidates {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := pgx.Connect(ctx, dsn)
			if err == nil {
				err = conn.Ping(ctx)
				conn.Close(ctx)
			}
			cancel()
			if err == nil {
				serverDSN = dsn
				return
			}
			errs = append(errs, err)
		}
		serverErr = errors.Join(errs...)
	})
	if serverErr != nil {
		msg := "no PostgreSQL for the storage tests (want database \"test\" on 127.0.0.1:5432 with trust auth, or SAFE_TEST_POSTGRES=dsn): %v"
		if os.Getenv("CI") == "true" {
			t.Fatalf(msg, serverErr)
		}
		t.Skipf(msg, serverErr)
	}
	return serverDSN
}

// FreshSchema creates an empty schema, dropped when the test ends, and
// returns a DSN whose search_path is that schema. Its commits do not wait
// for the disk (a test database need not survive a crash; this halves the
// suite's time).
func FreshSchema(t testing.TB) string {
	t.Helper()
	return NewSchema(t, map[string]string{"synchronous_commit": "off"})
}

// NewSchema is FreshSchema with the given run-time parameters.
func NewSchema(t testing.TB, params map[string]string) string {
	t.Helper()
	dsn := Server(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "safe_test_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	params["search_path"] = schema
	return WithParams(t, dsn, params)
}

// WithParams adds run-time parameters to dsn.
func WithParams(t testing.TB, dsn string, params map[string]string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse SAFE_TEST_POSTGRES: %v", err)
		}
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		dsn += " " + k + "=" + v
	}
	return dsn
}
