package clipboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memBackend is an in-memory clipboard.
type memBackend struct {
	mu       sync.Mutex
	data     []byte
	readErr  error
	cleared  int
	lastCall string
}

var _ Backend = (*memBackend)(nil)

func (m *memBackend) Name() string { return "mem" }
func (m *memBackend) Write(_ context.Context, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = bytes.Clone(v)
	return nil
}
func (m *memBackend) Read(_ context.Context, max int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return nil, m.readErr
	}
	if len(m.data) > max {
		return nil, ErrTooLarge
	}
	return bytes.Clone(m.data), nil
}
func (m *memBackend) Clear(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = nil
	m.cleared++
	return nil
}

// fileBackend keeps the clipboard in a file, so that a helper process can
// share it with the test.
type fileBackend string

func (f fileBackend) Name() string { return "file" }
func (f fileBackend) Write(_ context.Context, v []byte) error {
	return os.WriteFile(string(f), v, 0o600)
}
func (f fileBackend) Read(_ context.Context, max int) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	if len(b) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
func (f fileBackend) Clear(context.Context) error { return os.WriteFile(string(f), nil, 0o600) }

const helperEnv = "SAFEHOLD_CLIPBOARD_TEST_FILE"

// TestMain doubles as the clearing helper when helperEnv names a file: the
// test binary then plays the part of `safe clipboard-clear`.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		cleared, err := RunClearer(context.Background(), os.Stdin, fileBackend(path))
		_ = os.WriteFile(path+".done", []byte(fmt.Sprintf("%v %v", cleared, err)), 0o600)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestClearIfUnchanged(t *testing.T) {
	ctx := context.Background()
	m := &memBackend{}
	secret := []byte("correct horse battery staple")
	if err := Copy(ctx, m, secret); err != nil {
		t.Fatal(err)
	}
	tok, err := NewToken(rand.Reader, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	cleared, err := ClearIfUnchanged(ctx, m, tok)
	if err != nil || !cleared || m.data != nil {
		t.Fatalf("unchanged clipboard not cleared: %v %v %q", cleared, err, m.data)
	}
	// The user copied something else: leave it alone.
	_ = Copy(ctx, m, secret)
	_ = m.Write(ctx, []byte("something else"))
	cleared, err = ClearIfUnchanged(ctx, m, tok)
	if err != nil || cleared || string(m.data) != "something else" {
		t.Fatalf("changed clipboard touched: %v %v %q", cleared, err, m.data)
	}
	// A prefix or extension of the secret is a different value.
	_ = m.Write(ctx, secret[:len(secret)-1])
	if cleared, _ := ClearIfUnchanged(ctx, m, tok); cleared {
		t.Fatal("cleared a prefix of the secret")
	}
	// Unreadable content (an image, say) is left alone, with the reason.
	m.readErr = ErrUnreadable
	cleared, err = ClearIfUnchanged(ctx, m, tok)
	if cleared || !errors.Is(err, ErrUnreadable) || m.cleared != 1 {
		t.Fatalf("unreadable: %v %v", cleared, err)
	}
	if err := Copy(ctx, m, make([]byte, MaxValueSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized copy: %v", err)
	}
}

func TestToken(t *testing.T) {
	tok, err := NewToken(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), []byte("v"), 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != TokenSize || string(b[:5]) != "SHCB\x01" || !bytes.Equal(b[5:9], []byte{0, 0, 0xaf, 0xc8}) {
		t.Fatalf("encoding %x", b)
	}
	back, err := ParseToken(b)
	if err != nil || back != tok {
		t.Fatalf("round trip: %v", err)
	}
	if !back.Matches([]byte("v")) || back.Matches([]byte("w")) || back.Matches(nil) {
		t.Fatal("Matches wrong")
	}
	// Same value, different key: different MAC.
	tok2, _ := NewToken(rand.Reader, []byte("v"), 0)
	if tok2.MAC == tok.MAC {
		t.Fatal("MAC does not depend on the key")
	}
	bad := map[string][]byte{
		"short":    b[:TokenSize-1],
		"long":     append(bytes.Clone(b), 0),
		"magic":    append([]byte("SHCA"), b[4:]...),
		"version":  append([]byte("SHCB\x02"), b[5:]...),
		"too late": append(append([]byte("SHCB\x01"), 0x00, 0x36, 0xEE, 0x81), b[9:]...),
	}
	for name, in := range bad {
		if _, err := ParseToken(in); !errors.Is(err, ErrToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, d := range []time.Duration{-1, MaxDelay + time.Millisecond, time.Microsecond} {
		if _, err := NewToken(rand.Reader, nil, d); !errors.Is(err, ErrToken) {
			t.Errorf("delay %v accepted", d)
		}
	}
}

func TestRunClearerInProcess(t *testing.T) {
	m := &memBackend{data: []byte("pw")}
	tok, _ := NewToken(rand.Reader, []byte("pw"), 10*time.Millisecond)
	msg, _ := tok.MarshalBinary()
	cleared, err := RunClearer(context.Background(), bytes.NewReader(msg), m)
	if err != nil || !cleared {
		t.Fatalf("%v %v", cleared, err)
	}
	// Trailing input is refused.
	if _, err := RunClearer(context.Background(), bytes.NewReader(append(msg, 0)), m); !errors.Is(err, ErrToken) {
		t.Fatalf("trailing byte: %v", err)
	}
	// Cancellation during the wait.
	tok.Delay = time.Hour
	msg, _ = tok.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := RunClearer(ctx, bytes.NewReader(msg), m); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancel: %v", err)
	}
}

// runHelper copies value to a file clipboard, starts the test binary as a
// detached clearer and, after mid (run while the helper waits), waits for
// the helper to finish. It returns the final clipboard and the helper's
// report.
func runHelper(t *testing.T, value []byte, mid func(path string)) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip")
	ctx := context.Background()
	if err := Copy(ctx, fileBackend(path), value); err != nil {
		t.Fatal(err)
	}
	tok, err := NewToken(rand.Reader, value, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	if err := StartClearer(cmd, tok); err != nil {
		t.Fatal(err)
	}
	// Neither argv nor the environment carries the value or the token.
	all := strings.Join(append(cmd.Args, cmd.Env...), "\x00")
	if strings.Contains(all, string(value)) || strings.Contains(all, string(tok.MAC[:8])) {
		t.Fatal("secret on argv or env")
	}
	if mid != nil {
		mid(path)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		done, err := os.ReadFile(path + ".done")
		if err == nil {
			final, _ := os.ReadFile(path)
			return string(final), string(done)
		}
		if time.Now().After(deadline) {
			t.Fatal("helper did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDetachedHelperClears(t *testing.T) {
	final, report := runHelper(t, []byte("s3cret value"), nil)
	if final != "" || report != "true <nil>" {
		t.Fatalf("clipboard %q, helper %q", final, report)
	}
}

func TestDetachedHelperKeepsNewContent(t *testing.T) {
	final, report := runHelper(t, []byte("s3cret value"), func(path string) {
		_ = os.WriteFile(path, []byte("user copied this"), 0o600)
	})
	if final != "user copied this" || report != "false <nil>" {
		t.Fatalf("clipboard %q, helper %q", final, report)
	}
}

func TestStartClearerRefusesStdin(t *testing.T) {
	cmd := exec.Command("true")
	cmd.Stdin = strings.NewReader("x")
	if err := StartClearer(cmd, Token{}); err == nil {
		t.Fatal("accepted a command with stdin set")
	}
}

func TestDetect(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	path := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, x := range names {
				if x == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	all := path("wl-copy", "wl-paste", "xclip", "xsel", "pbcopy", "pbpaste")
	cases := []struct {
		name   string
		getenv func(string) string
		look   func(string) (string, error)
		want   string
		errSub string
	}{
		{"wayland first", env("WAYLAND_DISPLAY", "wayland-0", "DISPLAY", ":0"), all, "wl-copy", ""},
		{"wayland needs both", env("WAYLAND_DISPLAY", "wayland-0", "DISPLAY", ":0"), path("wl-copy", "xsel"), "xsel", ""},
		{"x11 xclip", env("DISPLAY", ":0"), all, "xclip", ""},
		{"x11 xsel", env("DISPLAY", ":0"), path("xsel", "pbcopy"), "xsel", ""},
		{"no display", env(), path("xclip", "xsel"), "", "neither WAYLAND_DISPLAY nor DISPLAY"},
		{"mac", env(), path("pbcopy", "pbpaste"), "pbcopy", ""},
		{"wayland missing", env("WAYLAND_DISPLAY", "w"), path(), "", "install wl-clipboard"},
		{"x11 missing", env("DISPLAY", ":1"), path(), "", "install xclip or xsel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Detect(tc.getenv, tc.look)
			if tc.errSub != "" {
				if !errors.Is(err, ErrNoBackend) || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("got %v, want ErrNoBackend containing %q", err, tc.errSub)
				}
				return
			}
			if err != nil || b.Name() != tc.want {
				t.Fatalf("got %v %v, want %s", b, err, tc.want)
			}
			if !strings.HasPrefix(b.write[0], "/") || !strings.HasPrefix(b.read[0], "/") {
				t.Fatal("tool not recorded by absolute path")
			}
		})
	}
}
