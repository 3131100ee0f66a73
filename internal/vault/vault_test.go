package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
)

var ctx = context.Background()

func testOptions() Options { return Options{Rand: rand.Reader, AllowInsecureKDF: true} }

// newVault creates and unlocks a vault with the test KDF profile.
func newVault(t testing.TB) (*Vault, string, *Created) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "home", "vault.db")
	c, err := Create(ctx, path, []byte("correct horse battery"), kdf.TestParams(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	return v, path, c
}

func addLogin(t testing.TB, v *Vault, title, pw string) item.Item {
	t.Helper()
	out, err := v.Add(ctx, []item.Item{{Type: item.Login, Title: title, Username: "alice", Password: pw, URLs: []string{"https://" + strings.ToLower(title) + ".example"}}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// rawDB opens the vault file behind the engine's back, as an attacker would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestCreateUnlockWrongPassword(t *testing.T) {
	_, path, _ := newVault(t)
	v, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte("wrong password!")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("unlock with wrong password: got %v, want ErrWrongPassword", err)
	}
	if v.Unlocked() {
		t.Fatal("unlocked after a wrong password")
	}
	if _, err := v.List(ctx, Filter{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("list while locked: %v", err)
	}
}

func TestInsecureProfileNeedsSwitch(t *testing.T) {
	_, path, _ := newVault(t)
	v, err := Open(path, Options{Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte("correct horse battery")); !errors.Is(err, ErrInsecureKDF) {
		t.Fatalf("got %v, want ErrInsecureKDF", err)
	}
	if _, err := Create(ctx, filepath.Join(t.TempDir(), "v.db"), []byte("pw pw pw pw"), kdf.TestParams(), Options{Rand: rand.Reader}); !errors.Is(err, ErrInsecureKDF) {
		t.Fatalf("create with test profile and no switch: %v", err)
	}
}

func TestItemLifecycle(t *testing.T) {
	v, path, _ := newVault(t)
	a := addLogin(t, v, "GitHub", "s3cret-one")
	addLogin(t, v, "GitLab", "s3cret-two")

	got, err := v.Get(ctx, "github")
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != "s3cret-one" || got.Revision != 1 || got.ID != a.ID {
		t.Fatalf("got %+v", got)
	}
	if _, err := v.Get(ctx, "git"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("ambiguous name: %v", err)
	} else if !strings.Contains(err.Error(), "GitHub") || !strings.Contains(err.Error(), "GitLab") {
		t.Fatalf("ambiguity error does not list both: %v", err)
	}
	if _, err := v.Get(ctx, "nothing-like-this"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}

	next := got.Clone()
	next.Password = "s3cret-new"
	if _, err := v.Update(ctx, a.ID, 1, next); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Update(ctx, a.ID, 1, next); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	revs, err := v.History(ctx, "GitHub")
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].Password != "s3cret-one" || revs[1].Password != "s3cret-new" || !revs[1].Current {
		t.Fatalf("history: %+v", revs)
	}
	restored, err := v.RestoreRevision(ctx, "GitHub", 1)
	if err != nil {
		t.Fatal(err)
	}
	if restored.Password != "s3cret-one" || restored.Revision != 3 {
		t.Fatalf("restore revision: %+v", restored)
	}

	if _, err := v.Purge(ctx, "GitHub"); !errors.Is(err, ErrNotInTrash) {
		t.Fatalf("purge outside trash: %v", err)
	}
	if _, err := v.Trash(ctx, "GitHub"); err != nil {
		t.Fatal(err)
	}
	if l, _ := v.List(ctx, Filter{}); len(l) != 1 {
		t.Fatalf("list after trash: %d items", len(l))
	}
	if l, _ := v.List(ctx, Filter{Trash: true}); len(l) != 1 || l[0].Title != "GitHub" {
		t.Fatalf("trash: %+v", l)
	}
	if _, err := v.Restore(ctx, "GitHub"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Trash(ctx, "GitHub"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Purge(ctx, "GitHub"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after purge: %v", err)
	}
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v (%+v)", err, rep)
	}
	if rep.Items != 1 || rep.LogEntries != 8 {
		t.Fatalf("report: %+v", rep)
	}
	// Nothing a user typed is in the file in clear.
	raw := readAll(t, path)
	for _, s := range []string{"GitHub", "GitLab", "alice", "s3cret", "example"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q is in the vault file in clear", s)
		}
	}
}

func TestPasswordChangeAndRecover(t *testing.T) {
	v, path, c := newVault(t)
	addLogin(t, v, "Bank", "money")
	if err := v.ChangePassword(ctx, []byte("not it at all"), []byte("new password 2"), kdf.Params{}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("passwd with wrong old password: %v", err)
	}
	if err := v.ChangePassword(ctx, []byte("correct horse battery"), []byte("new password 2"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := v2.Unlock(ctx, []byte("correct horse battery")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password still works: %v", err)
	}
	if err := v2.Unlock(ctx, []byte("new password 2")); err != nil {
		t.Fatal(err)
	}
	v2.Lock()
	bad := []byte(c.RecoveryKey)
	bad[5] ^= 1
	if err := v2.Recover(ctx, string(bad), []byte("third password"), kdf.Params{}); !errors.Is(err, ErrRecoveryKey) {
		t.Fatalf("mistyped recovery key: %v", err)
	}
	if err := v2.Recover(ctx, c.RecoveryKey, []byte("third password"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	if it, err := v2.Get(ctx, "Bank"); err != nil || it.Password != "money" {
		t.Fatalf("after recover: %v %+v", err, it)
	}
	v2.Lock()
	if err := v2.Unlock(ctx, []byte("third password")); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	v, err := Open(path, testOptions()) // checkpoint the WAL into the main file
	if err != nil {
		t.Fatal(err)
	}
	v.st.Checkpoint()
	v.Close()
	var out []byte
	for _, p := range []string{path, path + "-wal"} {
		b, _ := osReadFile(p)
		out = append(out, b...)
	}
	return out
}

// Create builds the file under a temporary name and links it into place, so
// a stray temporary file from a crash never blocks a new vault, and an
// existing vault is never overwritten.
func TestCreateIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.db")
	if err := os.WriteFile(filepath.Join(dir, ".vault.db.creating-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, path, []byte("correct horse battery"), kdf.TestParams(), testOptions()); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, path, []byte("another password"), kdf.TestParams(), testOptions()); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "creating") && e.Name() != ".vault.db.creating-123" {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vault file: %v %v", fi.Mode(), err)
	}
	v, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
}

// Names resolve by id, id prefix, title and part of a title, in that order,
// and the title index follows renames, additions and purges.
func TestResolveOrderAndTitleIndex(t *testing.T) {
	v, _, _ := newVault(t)
	a := addLogin(t, v, "Mail", "1")
	b := addLogin(t, v, "Mailbox", "2")
	if got, err := v.Get(ctx, "mail"); err != nil || got.ID != a.ID {
		t.Fatalf("exact title beats a part of a title: %v %v", got.ID, err)
	}
	if got, err := v.Get(ctx, b.ID[:6]); err != nil || got.ID != b.ID {
		t.Fatalf("id prefix: %v %v", got.ID, err)
	}
	if got, err := v.Get(ctx, "box"); err != nil || got.ID != b.ID {
		t.Fatalf("part of a title: %v %v", got.ID, err)
	}
	b.Title = "Post"
	if _, err := v.Update(ctx, b.ID, 0, b); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "mailbox"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old title after a rename: %v", err)
	}
	if got, err := v.Get(ctx, "post"); err != nil || got.ID != b.ID {
		t.Fatalf("new title after a rename: %v %v", got.ID, err)
	}
	addLogin(t, v, "Post", "3")
	if _, err := v.Get(ctx, "post"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("two items titled Post: %v", err)
	}
}
