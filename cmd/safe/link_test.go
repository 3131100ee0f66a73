//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// procHarness runs the real safe binary: a built binary, one directory of
// homes, and the environment each home gets.
type procHarness struct {
	t    *testing.T
	bin  string
	dir  string
	base []string
	pw   string
}

func newProcHarness(t *testing.T) *procHarness {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build safe with")
	}
	bin := filepath.Join(t.TempDir(), "safe")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := stopAgents(dir); err != nil {
			t.Error(err)
		}
	})
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_") {
			base = append(base, kv)
		}
	}
	// Discovery on a port of this test's own, so parallel tests and other
	// links on the machine do not answer.
	base = append(base, "SAFE_INSECURE_TEST_KDF=1", "TERM=dumb", fmt.Sprintf("SAFE_LINK_PORT=%d", freeUDPPort(t)))
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &procHarness{t: t, bin: bin, dir: dir, base: base, pw: pw}
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (h *procHarness) env(home string) []string {
	return append(h.base[:len(h.base):len(h.base)], "SAFE_HOME="+filepath.Join(h.dir, home))
}

func (h *procHarness) command(home string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env, cmd.Dir = h.env(home), h.dir
	return cmd
}

// run runs safe and returns its exit code, stdout and stderr.
func (h *procHarness) run(home string, args ...string) (int, string, string) {
	h.t.Helper()
	cmd := h.command(home, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runWithin(cmd, 60*time.Second)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		h.t.Fatalf("safe %s: %v", strings.Join(args, " "), err)
	}
	return 0, stdout.String(), stderr.String()
}

// must runs safe and fails the test unless it exits 0.
func (h *procHarness) must(home string, args ...string) string {
	h.t.Helper()
	code, out, errOut := h.run(home, args...)
	if code != 0 {
		h.t.Fatalf("safe %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// addLogin adds a login item.
func (h *procHarness) addLogin(home, title, user, password string) {
	h.t.Helper()
	cmd := h.command(home, "add", "--json")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"type":"login","title":%q,"username":%q,"password":%q}`, title, user, password))
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("safe add %s: %v\n%s", title, err, out)
	}
}

// password reads an item's password.
func (h *procHarness) password(home, title string) string {
	h.t.Helper()
	return strings.TrimSpace(h.must(home, "get", title, "--field", "password", "--reveal"))
}

// background is a safe process that runs while the test goes on; first
// is its first stdout line.
type background struct {
	cmd    *exec.Cmd
	first  string
	rest   bytes.Buffer // read only after wait
	stderr lockedBuffer
	done   chan struct{}
}

// lockedBuffer is a buffer the process writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (h *procHarness) start(home string, args ...string) *background {
	h.t.Helper()
	b := &background{cmd: h.command(home, args...), done: make(chan struct{})}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		b.cmd.Process.Signal(os.Interrupt)
		waitWithin(b.cmd, 10*time.Second)
	})
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		b.cmd.Process.Kill()
		h.t.Fatalf("safe %s printed no line: %v\n%s", strings.Join(args, " "), err, b.stderr.String())
	}
	b.first = strings.TrimSpace(line)
	go func() {
		io.Copy(&b.rest, r)
		close(b.done)
	}()
	return b
}

// wait waits for the process and returns its exit code.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	err := waitWithin(b.cmd, 60*time.Second)
	<-b.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, b.stderr.String())
	}
	return 0
}

// server starts `safe serve` and returns its URL and fingerprint.
func (h *procHarness) server() (string, string) {
	h.t.Helper()
	info := filepath.Join(h.dir, "srv.json")
	srv := exec.Command(h.bin, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(h.dir, "srv"), "--info-file", info)
	srv.Env, srv.Dir = h.base, h.dir
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		waitWithin(srv, 10*time.Second)
	})
	var si struct {
		URL         string `json:"url"`
		Fingerprint string `json:"fingerprint"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if raw, err := os.ReadFile(info); err == nil && json.Unmarshal(raw, &si) == nil && si.URL != "" {
			return si.URL, si.Fingerprint
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("safe serve did not start:\n%s", srvOut.String())
		}
	}
}

// TestDeviceLinkThroughServer: an unlocked device shows a code; a new home
// given only the code and the password becomes a device of the account,
// with the server, its fingerprint and the keys coming through the link.
func TestDeviceLinkThroughServer(t *testing.T) {
	h := newProcHarness(t)
	url, fp := h.server()
	h.must("ann", "account", "register", "--server", url, "--email", "ann@example.com", "--password-file", h.pw, "--fingerprint", fp, "--manual")
	h.addLogin("ann", "mail", "ann", "s3cret-mail")
	h.must("ann", "sync")

	t.Run("joins", func(t *testing.T) {
		link := h.start("ann", "device", "link")
		code := link.first
		if !regexpMatch(`^[0-9]{1,2}(-[a-z]+){3}$`, code) {
			t.Fatalf("first line %q is not a code", code)
		}
		out := h.must("bob", "device", "join", code, "--password-file", h.pw)
		if !strings.Contains(out, "joined ann@example.com on "+url) {
			t.Fatalf("join said:\n%s", out)
		}
		if c := link.wait(t); c != 0 {
			t.Fatalf("link exit %d\n%s", c, link.stderr.String())
		}
		if !strings.Contains(link.rest.String(), "joined the account") {
			t.Fatalf("link printed:\n%s", link.rest.String())
		}
		// The new device reads what the first one wrote, and is listed.
		if got := h.password("bob", "mail"); got != "s3cret-mail" {
			t.Fatalf("bob reads %q", got)
		}
		var devs []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		}
		if err := json.Unmarshal([]byte(h.must("bob", "device", "ls", "--json")), &devs); err != nil {
			t.Fatal(err)
		}
		if len(devs) != 2 {
			t.Fatalf("device ls lists %d devices: %+v", len(devs), devs)
		}
		annList := h.must("ann", "device", "ls")
		for _, d := range devs {
			if d.Current && !strings.Contains(annList, d.ID) {
				t.Fatalf("ann's device list does not show the new device %s:\n%s", d.ID, annList)
			}
		}
		// Writes flow both ways through the server.
		h.addLogin("bob", "bank", "bob", "b4nk")
		h.must("bob", "sync")
		h.must("ann", "sync")
		if got := h.password("ann", "bank"); got != "b4nk" {
			t.Fatalf("ann reads %q", got)
		}
	})

	t.Run("wrong code", func(t *testing.T) {
		link := h.start("ann", "device", "link")
		parts := strings.Split(link.first, "-")
		// Another word of the list: a typo that is not a word is caught
		// before connecting and does not spend the code.
		if parts[1] == "walrus" {
			parts[1] = "tiger"
		} else {
			parts[1] = "walrus"
		}
		if code, _, errOut := h.run("cat", "device", "join", parts[0]+"-walrusx-"+parts[2]+"-"+parts[3], "--password-file", h.pw); code != 2 || !strings.Contains(errOut, "not one of the code's words") {
			t.Fatalf("join with a misspelt word: exit %d\n%s", code, errOut)
		}
		code, _, errOut := h.run("cat", "device", "join", strings.Join(parts, "-"), "--password-file", h.pw)
		if code != 18 || !strings.Contains(errOut, "code did not match") {
			t.Fatalf("join with a wrong code: exit %d\n%s", code, errOut)
		}
		if c := link.wait(t); c != 18 {
			t.Fatalf("link after a wrong code: exit %d\n%s", c, link.stderr.String())
		}
		if _, err := os.Stat(filepath.Join(h.dir, "cat", "vault.db")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed join left a vault behind (%v)", err)
		}
		// The right code is spent with the attempt: nobody answers it.
		code, _, _ = h.run("cat", "device", "join", link.first, "--password-file", h.pw, "--addr", "127.0.0.1:1")
		if code == 0 {
			t.Fatal("a spent code still worked")
		}
	})

	t.Run("expired", func(t *testing.T) {
		link := h.start("ann", "device", "link", "--timeout", "300ms")
		if c := link.wait(t); c != 19 || !strings.Contains(link.stderr.String(), "expired") {
			t.Fatalf("link that nobody joined: exit %d\n%s", c, link.stderr.String())
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		link := h.start("ann", "device", "link")
		bad := filepath.Join(h.dir, "badpw")
		os.WriteFile(bad, []byte("not the password\n"), 0o600)
		code, _, errOut := h.run("dan", "device", "join", link.first, "--password-file", bad)
		// The server refuses the login key the wrong password makes.
		if code != 15 || !strings.Contains(errOut, "password") {
			t.Fatalf("join with a wrong password: exit %d\n%s", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "dan", "vault.db")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed join left a vault behind (%v)", err)
		}
		if c := link.wait(t); c == 0 {
			t.Fatal("the linking device reported success for a join that failed")
		}
	})
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// TestPeerSync: two devices of one account sync directly, with no server:
// the first keeps the account on a store it serves with `safe peer
// listen`, the second joins it with a code and syncs through it. A device
// of another account and a revoked device are refused in the handshake.
func TestPeerSync(t *testing.T) {
	h := newProcHarness(t)
	addr := freeTCPAddr(t)
	h.must("ann", "init", "--password-file", h.pw)
	h.addLogin("ann", "wifi", "home", "w1f1-pass")
	listen := h.start("ann", "peer", "listen", "--addr", addr, "--password-file", h.pw)
	if !strings.HasPrefix(listen.first, "Listening on "+addr) {
		t.Fatalf("peer listen printed %q\n%s", listen.first, listen.stderr.String())
	}

	// A new device joins through the listening device, by code.
	link := h.start("ann", "device", "link")
	out := h.must("bob", "device", "join", link.first, "--password-file", h.pw)
	if !strings.Contains(out, "on "+addr) {
		t.Fatalf("join said:\n%s", out)
	}
	if c := link.wait(t); c != 0 {
		t.Fatalf("link exit %d\n%s", c, link.stderr.String())
	}
	if got := h.password("bob", "wifi"); got != "w1f1-pass" {
		t.Fatalf("bob reads %q", got)
	}
	hub := filepath.Join(h.dir, "ann", "hub")
	snapshot := filepath.Join(h.dir, "hub-then")
	if err := os.CopyFS(snapshot, os.DirFS(hub)); err != nil {
		t.Fatal(err)
	}

	// Writes flow both ways, device to device.
	h.addLogin("bob", "bank", "bob", "b4nk")
	if out := h.must("bob", "peer", "sync", addr); !strings.Contains(out, "Synced with "+addr+": 0 received, ") {
		t.Fatalf("peer sync said:\n%s", out)
	}
	h.must("ann", "sync")
	if got := h.password("ann", "bank"); got != "b4nk" {
		t.Fatalf("ann reads %q", got)
	}
	h.addLogin("ann", "mail", "ann", "m41l")
	h.must("ann", "sync")
	h.must("bob", "peer", "sync", addr)
	if got := h.password("bob", "mail"); got != "m41l" {
		t.Fatalf("bob reads %q", got)
	}

	// A peer that serves an older copy of the store (a rollback) is
	// caught by the ordinary sync checks.
	current := filepath.Join(h.dir, "hub-now")
	if err := os.Rename(hub, current); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(snapshot, hub); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := h.run("bob", "peer", "sync", addr)
	if code != 13 || !strings.Contains(errOut, "rolled") {
		t.Fatalf("a peer serving an older store: exit %d\n%s", code, errOut)
	}
	if err := os.RemoveAll(hub); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current, hub); err != nil {
		t.Fatal(err)
	}
	h.must("bob", "peer", "sync", addr)

	// A device of another account is refused in the handshake.
	h.must("eve", "account", "register", "--server", filepath.Join(h.dir, "evestore"), "--email", "eve@example.com", "--password-file", h.pw)
	code, _, errOut = h.run("eve", "peer", "sync", addr)
	if code != 16 || !strings.Contains(errOut, "refused this device") {
		t.Fatalf("another account's device: exit %d\n%s", code, errOut)
	}

	// A revoked device is refused too.
	var devs []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	if err := json.Unmarshal([]byte(h.must("bob", "device", "ls", "--json")), &devs); err != nil {
		t.Fatal(err)
	}
	bobID := ""
	for _, d := range devs {
		if d.Current {
			bobID = d.ID
		}
	}
	h.must("ann", "device", "revoke", bobID)
	code, _, errOut = h.run("bob", "peer", "sync", addr)
	if code != 16 || !strings.Contains(errOut, "refused this device") {
		t.Fatalf("a revoked device: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(listen.stderr.String(), "not one of the account's trusted devices") {
		t.Fatalf("the listener's log does not say why it refused:\n%s", listen.stderr.String())
	}
	if out := h.must("ann", "device", "ls"); !strings.Contains(out, "revoked") {
		t.Fatalf("ann's device list:\n%s", out)
	}
}
