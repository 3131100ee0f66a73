package importer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
)

// gnupg makes a throwaway GnuPG home with one unprotected key and returns
// the home and the key's fingerprint.
func gnupg(t *testing.T) (home, fpr string) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed")
	}
	// A short path keeps gpg-agent's socket name under the limit.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", "Safehold Test <test@example.invalid>", "default", "default", "never")
	out := run(t, nil, "gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys")
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			return home, f[9]
		}
	}
	t.Fatalf("no fingerprint in %s", out)
	return "", ""
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return out
}

// encrypt writes plaintext to path as pass does: gpg -e to the store's key.
func encrypt(t *testing.T, home, fpr, path, plaintext string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, []byte(plaintext), "gpg", "--homedir", home, "--batch", "--yes", "--trust-model", "always",
		"--recipient", fpr, "--output", path, "--encrypt")
}

func TestPassRealGPG(t *testing.T) {
	home, fpr := gnupg(t)
	store := t.TempDir()
	if err := os.WriteFile(filepath.Join(store, ".gpg-id"), []byte(fpr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	encrypt(t, home, fpr, filepath.Join(store, "email", "github.com.gpg"),
		"hunter2 with spaces\nlogin: octocat\nurl: https://github.com/login\notpauth://totp/GitHub:octocat?secret=JBSWY3DPEHPK3PXP\n"+
			"pin: 1234\nsecurity question: first pet?\nFree text line with ünïcode\nhttps://not-a-field.example\n")
	encrypt(t, home, fpr, filepath.Join(store, "top.gpg"), "only-a-password\n")
	encrypt(t, home, fpr, filepath.Join(store, "work", "infra", "db.gpg"),
		"dbpw\r\n---\r\nuser: admin\r\nuser: second\r\ntotp: otpauth://totp/db?secret=ABC\r\n")
	// Not part of the store: git's own files, and other files.
	encrypt(t, home, fpr, filepath.Join(store, ".git", "objects", "x.gpg"), "should not be read\n")
	os.WriteFile(filepath.Join(store, "README"), []byte("not an entry"), 0o600)
	// A file that gpg cannot decrypt is skipped with gpg's reason.
	os.WriteFile(filepath.Join(store, "broken.gpg"), []byte("this is not OpenPGP data"), 0o600)

	res, err := Pass(context.Background(), store, ExecGPG{Homedir: home})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Where: "email/github.com", Item: item.Item{
			Type: item.Login, Title: "github.com", Username: "octocat", Password: "hunter2 with spaces",
			URLs:  []string{"https://github.com/login"},
			Notes: "Free text line with ünïcode\nhttps://not-a-field.example",
			TOTP:  "otpauth://totp/GitHub:octocat?secret=JBSWY3DPEHPK3PXP",
			Fields: []item.Field{
				{Name: "pin", Kind: item.KindHidden, Value: "1234"},
				{Name: "security question", Kind: item.KindText, Value: "first pet?"},
			},
			Folder: "email",
		}},
		{Where: "top", Item: item.Item{Type: item.Login, Title: "top", Password: "only-a-password"}},
		{Where: "work/infra/db", Item: item.Item{
			Type: item.Login, Title: "db", Username: "admin", Password: "dbpw", TOTP: "otpauth://totp/db?secret=ABC",
			Fields: []item.Field{{Name: "user", Kind: item.KindText, Value: "second"}}, Folder: "work/infra",
		}},
	}
	compare(t, res, want, [][2]string{{"broken", "gpg failed"}})
}

func TestPassNotAStore(t *testing.T) {
	_, err := Pass(context.Background(), t.TempDir(), ExecGPG{})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), ".gpg-id") {
		t.Fatalf("error = %v", err)
	}
}

// fakeGPG decrypts by reading the file as it is, to test parsing and
// limits without gpg.
type fakeGPG struct{}

func (fakeGPG) Decrypt(_ context.Context, path string, max int64) ([]byte, error) {
	b, err := os.ReadFile(path)
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, err
}

func TestPassCancelAndLimits(t *testing.T) {
	store := t.TempDir()
	os.WriteFile(filepath.Join(store, ".gpg-id"), []byte("x\n"), 0o600)
	os.WriteFile(filepath.Join(store, "a.gpg"), []byte("pw\n"), 0o600)
	os.WriteFile(filepath.Join(store, "big.gpg"), []byte("pw\n"+strings.Repeat("n", item.MaxNotes+1)), 0o600)
	os.Symlink(filepath.Join(store, "a.gpg"), filepath.Join(store, "link.gpg"))

	res, err := Pass(context.Background(), store, fakeGPG{})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, res)
	if len(res.Entries) != 1 || len(res.Skipped) != 2 ||
		!strings.Contains(res.Skipped[0].Reason, "notes is") || !strings.Contains(res.Skipped[1].Reason, "not a regular file") {
		t.Fatalf("got %d entries, skipped %v", len(res.Entries), res.Skipped)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pass(ctx, store, fakeGPG{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: %v", err)
	}
}

func TestExecGPGLimit(t *testing.T) {
	home, fpr := gnupg(t)
	path := filepath.Join(t.TempDir(), "big.gpg")
	encrypt(t, home, fpr, path, strings.Repeat("x", 100_000))
	if _, err := (ExecGPG{Homedir: home}).Decrypt(context.Background(), path, 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
}

// TestPassStoreMadeByPass: a store written by the real `pass` (pass init,
// pass insert --multiline, pass generate), read back through gpg.
func TestPassStoreMadeByPass(t *testing.T) {
	if _, err := exec.LookPath("pass"); err != nil {
		t.Skip("pass is not installed (CI installs it)")
	}
	home, fpr := gnupg(t)
	store := filepath.Join(t.TempDir(), "store")
	env := append(os.Environ(), "GNUPGHOME="+home, "PASSWORD_STORE_DIR="+store, "PASSWORD_STORE_GPG_OPTS=--trust-model always")
	passCmd := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command("pass", args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pass %v: %v\n%s", args, err, out)
		}
	}
	passCmd("", "init", fpr)
	passCmd("s3cret-bank\nlogin: alice\nurl: https://bank.example\n", "insert", "--multiline", "finance/bank")
	passCmd("", "generate", "--no-symbols", "social/forum", "24")

	res, err := Pass(context.Background(), store, ExecGPG{Homedir: home})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 2 || len(res.Skipped) != 0 {
		t.Fatalf("entries %d, skipped %v", len(res.Entries), res.Skipped)
	}
	byTitle := map[string]item.Item{}
	for _, e := range res.Entries {
		byTitle[e.Item.Title] = e.Item
	}
	bank := byTitle["bank"]
	if bank.Password != "s3cret-bank" || bank.Username != "alice" || len(bank.URLs) != 1 || bank.URLs[0] != "https://bank.example" || bank.Folder != "finance" {
		t.Fatalf("bank = %+v", bank)
	}
	if forum := byTitle["forum"]; len(forum.Password) != 24 || forum.Folder != "social" {
		t.Fatalf("forum = %+v", forum)
	}
}
