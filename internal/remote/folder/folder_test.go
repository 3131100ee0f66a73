package folder_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/remotetest"
	"github.com/safehold/safehold/internal/sign"
)

func TestConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		f, err := folder.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return f
	})
}

var (
	keyOnce sync.Once
	key     *sign.PrivateKey
)

func deviceKey(t *testing.T) *sign.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if key, err = sign.GenerateKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
	})
	return key
}

type fixture struct {
	f      *folder.Folder
	dir    string
	email  string
	req    api.RegisterRequest
	w      *remotetest.Writer
	device string
}

// setup registers an account in a fresh folder and creates a vault.
func setup(t *testing.T) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "remote")
	f, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{f: f, dir: dir, email: "me@example.com", device: remotetest.NewID()}
	fx.req = api.RegisterRequest{
		Email: "Me@Example.com ", Account: remotetest.NewID(), KDF: remotetest.KDFHeader(t),
		LoginKey: make([]byte, 32), Document: []byte("doc"), Device: api.DeviceHello{ID: fx.device},
	}
	if err := f.Register(t.Context(), fx.req); err != nil {
		t.Fatalf("Register: %v", err)
	}
	v := remotetest.NewID()
	if err := f.PutVault(t.Context(), v, []byte("record")); err != nil {
		t.Fatal(err)
	}
	fx.w = remotetest.NewWriter(v, fx.device, deviceKey(t))
	return fx
}

func (fx *fixture) logDir() string { return filepath.Join(fx.dir, "vaults", fx.w.Vault(), "log") }

func seqName(n uint64) string { return fmt.Sprintf("%020d", n) }

func TestOpen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := folder.Open(file); err == nil {
		t.Errorf("Open of a file succeeded")
	}
	if _, err := folder.Open(""); err == nil {
		t.Errorf("Open of an empty path succeeded")
	}
	// A missing folder (an unmounted drive) is unavailable, not empty.
	f, err := folder.Open(filepath.Join(t.TempDir(), "not-mounted", "x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := f.Account(ctx); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Account of a missing folder: err = %v, want ErrUnavailable", err)
	}
	if _, err := f.Prelogin(ctx, "a@example.com"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Prelogin of a missing folder: err = %v, want ErrUnavailable", err)
	}
	if err := f.Register(ctx, api.RegisterRequest{Email: "a@example.com", Account: "a", KDF: remotetest.KDFHeader(t), Document: []byte("d"), Device: api.DeviceHello{ID: "d"}}); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Register where the parent is missing: err = %v, want ErrUnavailable", err)
	}
}

func TestAccountFile(t *testing.T) {
	ctx := t.Context()
	fx := setup(t)
	f := fx.f
	if _, err := f.Prelogin(ctx, "other@example.com"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Prelogin of another address: err = %v, want ErrNotFound", err)
	}
	if _, err := f.Prelogin(ctx, " ME@example.COM"); err != nil {
		t.Errorf("Prelogin is not case-insensitive: %v", err)
	}
	if err := f.Login(ctx, api.LoginRequest{Email: "other@example.com", Device: api.DeviceHello{ID: "d"}}); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("Login with another address: err = %v, want ErrAuth", err)
	}
	// Registering again: the same request finishes (idempotent), another
	// is refused.
	if err := f.Register(ctx, fx.req); err != nil {
		t.Errorf("Register repeated: %v", err)
	}
	other := fx.req
	other.Account = remotetest.NewID()
	if err := f.Register(ctx, other); !errors.Is(err, remote.ErrExists) {
		t.Errorf("Register of another account: err = %v, want ErrExists", err)
	}
	// A crash between the account file and the document: rerun finishes.
	if err := os.Remove(filepath.Join(fx.dir, "doc", seqName(1))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Account(ctx); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Account without the account file: err = %v, want ErrNotFound", err)
	}
	if err := f.Register(ctx, other); !errors.Is(err, remote.ErrExists) {
		t.Errorf("Register of another account over a half-made one: err = %v, want ErrExists", err)
	}
	if err := f.Register(ctx, fx.req); err != nil {
		t.Errorf("Register finishing a half-made registration: %v", err)
	}
	a, err := f.Account(ctx)
	if err != nil || a.Email != fx.email || a.Account != fx.req.Account {
		t.Errorf("Account = %+v, %v", a, err)
	}
	// A newer layout version is refused, not misread.
	meta := filepath.Join(fx.dir, "safehold-remote.json")
	if err := os.WriteFile(meta, []byte(`{"v":2,"account":"a","email":"me@example.com"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Account(ctx); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Account with layout version 2: err = %v", err)
	}
	if err := os.WriteFile(meta, []byte(`{"v":1,"account":"a","email":"me@example.com","x":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Account(ctx); err == nil {
		t.Errorf("Account with an unknown field in the account file succeeded")
	}
}

func TestPermissions(t *testing.T) {
	fx := setup(t)
	ctx := t.Context()
	item := remotetest.NewID()
	if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, []api.Entry{fx.w.Put(t, item, []byte("payload"))}); err != nil {
		t.Fatal(err)
	}
	if err := fx.f.PutBlob(ctx, fx.w.Vault(), item, remotetest.NewID(), func(yield func([]byte, error) bool) { yield(make([]byte, 40), nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.UpdateAccount(ctx, api.AccountUpdate{Base: 1, Document: []byte("d2")}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(fx.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", path)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 12 {
		t.Errorf("walked only %d paths", n)
	}
}

func TestIgnoresForeignNames(t *testing.T) {
	fx := setup(t)
	ctx := t.Context()
	if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, fx.w.Puts(t, 2)); err != nil {
		t.Fatal(err)
	}
	// A sync tool's conflict copy, a temporary file and a stray name.
	for _, name := range []string{seqName(2) + ".sync-conflict-20260101-x", ".tmp-abc", "00000000000000000009~", "notes.txt", "99999999999999999999999"} {
		if err := os.WriteFile(filepath.Join(fx.logDir(), name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := fx.f.Pull(ctx, fx.w.Vault(), 0)
	if err != nil || p.Head != 2 || len(p.Entries) != 2 {
		t.Fatalf("Pull with foreign names: head %d, %d entries, %v", p.Head, len(p.Entries), err)
	}
	if h, err := fx.f.Push(ctx, fx.w.Vault(), 2, fx.w.Puts(t, 1)); err != nil || h != 3 {
		t.Errorf("Push with foreign names: %d, %v", h, err)
	}
}

func TestTamperedEntryFiles(t *testing.T) {
	ctx := t.Context()
	for name, tamper := range map[string]func(b []byte) []byte{
		"truncated":          func(b []byte) []byte { return b[:len(b)-1] },
		"appended":           func(b []byte) []byte { return append(b, 0) },
		"bad magic":          func(b []byte) []byte { b[0] = 'X'; return b },
		"newer version":      func(b []byte) []byte { b[4] = 2; return b },
		"huge body length":   func(b []byte) []byte { binary.BigEndian.PutUint32(b[5:], 1<<30); return b },
		"huge payload claim": func(b []byte) []byte { binary.BigEndian.PutUint32(b[13:], 1<<30); return b },
		"empty":              func(b []byte) []byte { return nil },
	} {
		fx := setup(t)
		if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, fx.w.Puts(t, 2)); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(fx.logDir(), seqName(2))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, tamper(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.f.Pull(ctx, fx.w.Vault(), 0); err == nil {
			t.Errorf("%s: Pull succeeded", name)
		}
		if _, err := fx.f.Pull(ctx, fx.w.Vault(), 2); err != nil {
			t.Errorf("%s: Pull after the tampered entry: %v", name, err)
		}
	}

	// An oversized file is not read whole.
	fx := setup(t)
	if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, fx.w.Puts(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(fx.logDir(), seqName(1)), 64<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Pull(ctx, fx.w.Vault(), 0); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Pull of an oversized entry file: %v", err)
	}
}

func TestGap(t *testing.T) {
	ctx := t.Context()
	fx := setup(t)
	if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, fx.w.Puts(t, 3)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(fx.logDir(), seqName(2))); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Pull(ctx, fx.w.Vault(), 0); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Pull over a gap: %v", err)
	}
}

func TestStalePushWritesNothing(t *testing.T) {
	ctx := t.Context()
	fx := setup(t)
	entries := fx.w.Puts(t, 3)
	if err := os.WriteFile(filepath.Join(fx.logDir(), seqName(2)), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Push(ctx, fx.w.Vault(), 0, entries); !errors.Is(err, remote.ErrStale) {
		t.Fatalf("Push: err = %v, want ErrStale", err)
	}
	if _, err := os.Stat(filepath.Join(fx.logDir(), seqName(1))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a stale push wrote entry 1: %v", err)
	}
}

func TestConcurrentFolders(t *testing.T) {
	ctx := t.Context()
	fx := setup(t)
	const n = 6
	var wg sync.WaitGroup
	wins := make(chan int, n)
	for i := range n {
		f, err := folder.Open(fx.dir) // separate handles, as on separate machines
		if err != nil {
			t.Fatal(err)
		}
		batch := fx.w.Clone().Puts(t, 4)
		wg.Go(func() {
			if _, err := f.Push(ctx, fx.w.Vault(), 0, batch); err == nil {
				wins <- i
			} else if !errors.Is(err, remote.ErrStale) {
				t.Errorf("Push: %v", err)
			}
		})
	}
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Errorf("%d of %d writers won", len(wins), n)
	}
	p, err := fx.f.Pull(ctx, fx.w.Vault(), 0)
	if err != nil || p.Head != 4 {
		t.Errorf("after the race: head %d, %v", p.Head, err)
	}
}

func TestCancelled(t *testing.T) {
	fx := setup(t)
	if _, err := fx.f.Push(t.Context(), fx.w.Vault(), 0, fx.w.Puts(t, 3)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := fx.f.Pull(ctx, fx.w.Vault(), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Pull with a cancelled context: %v", err)
	}
}
