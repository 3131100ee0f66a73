package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"
)

// Scripts that need PostgreSQL start with `[!postgres] skip`: the
// condition is true when the test server is reachable (SAFE_TEST_POSTGRES,
// else database "test" on 127.0.0.1:5432 as user postgres), and with
// CI=true an unreachable server fails the script instead of skipping it.
//
//	pgschema VAR    create an empty schema, dropped when the script ends,
//	                and set VAR to a postgres:// URL whose search_path is it

var (
	pgOnce sync.Once
	pgErr  error
)

func pgBaseURL() string {
	if dsn := os.Getenv("SAFE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&connect_timeout=5"
}

func pgExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, pgBaseURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// condition answers the scripts' custom conditions.
func condition(cond string) (bool, error) {
	if cond != "postgres" {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pgErr = pgExec(ctx, "SELECT 1")
	})
	if pgErr != nil && os.Getenv("CI") == "true" {
		return false, fmt.Errorf("PostgreSQL is unreachable, and CI must run the scripts that need it: %v", pgErr)
	}
	return pgErr == nil, nil
}

func cmdPGSchema(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pgschema VAR")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "safe_script_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts.Check(pgExec(ctx, "CREATE SCHEMA "+schema))
	ts.Defer(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			ts.Logf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if base := pgBaseURL(); len(base) > 0 && containsQuery(base) {
		sep = "&"
	}
	ts.Setenv(args[0], pgBaseURL()+sep+"search_path="+schema)
}

func containsQuery(s string) bool {
	for _, c := range s {
		if c == '?' {
			return true
		}
	}
	return false
}
