//go:build linux

package main

// Interactive tests: the real binary on a pseudo-terminal, typed at like a
// person would. Every wait has a deadline, so a prompt that never comes (or a
// command that hangs) fails the test instead of hanging it.

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ptyTimeout bounds every wait for output, echo changes and exits.
const ptyTimeout = 15 * time.Second

func TestInteractive(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build safe with")
	}
	bin := filepath.Join(t.TempDir(), "safe")
	build := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	t.Cleanup(func() {
		if err := stopAgents(dir); err != nil {
			t.Error(err)
		}
	})
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "SAFE_HOME="+home, "SAFE_INSECURE_TEST_KDF=1", "TERM=dumb")
	const password = "Tr0ub4dor&3 correct horse"

	// plain runs safe without a terminal and returns its stdout.
	plain := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runWithin(cmd, ptyTimeout); err != nil {
			t.Fatalf("safe %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	t.Run("init", func(t *testing.T) {
		s := startPTY(t, bin, env, "init")
		s.expect(`New password: `)
		s.typeSecret(password)
		s.expect(`Repeat it: `)
		s.typeSecret(password)
		m := s.expect(`Your Recovery Key \(shown only this once\):\s+(R1(?:-[0-9A-Z]{4}){8})\s`)
		rk := m[1]
		groups := strings.Split(rk, "-")
		last := groups[len(groups)-1]
		s.expect(`type its last group: `)
		wrong := "ZZZZ"
		if last == wrong {
			wrong = "YYYY"
		}
		s.typeLine(wrong)
		s.expect(`That is not it; look at the key above again\.`)
		s.expect(`type its last group: `)
		s.typeLine(strings.ToLower(last)) // case does not matter
		s.expect(`Confirmed\.`)
		s.wait(0)
		s.noPassword(password)
		if !strings.Contains(plain(t, "status"), "(unlocked)") {
			t.Fatal("init did not leave the vault unlocked")
		}
	})

	t.Run("init mismatch", func(t *testing.T) {
		s := startPTY(t, bin, append(env, "SAFE_HOME="+filepath.Join(dir, "other")), "init")
		s.expect(`New password: `)
		s.typeSecret(password)
		s.expect(`Repeat it: `)
		s.typeSecret(password + "x")
		s.expect(`error: the passwords differ`)
		s.wait(2)
		s.noPassword(password)
		if _, err := os.Stat(filepath.Join(dir, "other", "vault.db")); err == nil {
			t.Fatal("a vault was made although the passwords differed")
		}
	})

	t.Run("unlock", func(t *testing.T) {
		plain(t, "lock")
		s := startPTY(t, bin, env, "unlock")
		s.expect(`Password: `)
		s.typeSecret("not " + password)
		s.expect(`error: wrong password`)
		s.wait(3)
		s.noPassword(password)

		s = startPTY(t, bin, env, "unlock")
		s.expect(`Password: `)
		s.typeSecret(password)
		s.expect(`Vault: +\S+ \(unlocked\)`)
		s.wait(0)
		s.noPassword(password)
	})

	t.Run("add login", func(t *testing.T) {
		// An empty answer generates the password.
		s := startPTY(t, bin, env, "add", "login", "--title", "Generated", "--username", "ann")
		s.expect(`Password \(leave empty to generate one\): `)
		s.typeSecret("")
		s.expect(`generated password, entropy: [0-9.]+ bits`)
		s.expect(`Added login "Generated"`)
		s.wait(0)
		got := strings.TrimSpace(plain(t, "get", "Generated", "--field", "password", "--reveal"))
		if len(got) != 20 {
			t.Fatalf("generated password %q, want 20 characters", got)
		}
		s.noPassword(got)

		// A typed one is stored as typed and never echoed.
		const typed = "typed at the prompt 42"
		s = startPTY(t, bin, env, "add", "login", "--title", "Typed")
		s.expect(`Password \(leave empty to generate one\): `)
		s.typeSecret(typed)
		s.expect(`Added login "Typed"`)
		s.wait(0)
		s.noPassword(typed)
		if got := strings.TrimSpace(plain(t, "get", "Typed", "--field", "password", "--reveal")); got != typed {
			t.Fatalf("stored password %q, want %q", got, typed)
		}
	})

	plain(t, "agent", "stop")
}

// ptySession is one command running on a pseudo-terminal.
type ptySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File

	mu   sync.Mutex
	out  []byte
	pos  int // expect matches after this offset
	more chan struct{}
	done chan struct{} // closed when the reader sees the end
}

func startPTY(t *testing.T, bin string, env []string, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatalf("start on a pty: %v", err)
	}
	s := &ptySession{t: t, cmd: cmd, ptmx: ptmx, more: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		ptmx.Close()
	})
	return s
}

func (s *ptySession) read() {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, err := s.ptmx.Read(buf)
		if n > 0 {
			s.mu.Lock()
			s.out = append(s.out, buf[:n]...)
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return // EIO once the command and its terminal are gone
		}
	}
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.out)
}

// expect waits until the output after the last match matches re and
// returns the submatches.
func (s *ptySession) expect(re string) []string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(ptyTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		rest := string(s.out[s.pos:])
		if loc := rx.FindStringSubmatchIndex(rest); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = rest[loc[2*i]:loc[2*i+1]]
				}
			}
			s.pos += loc[1]
			s.mu.Unlock()
			return m
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-s.done:
			// Drain what the reader appended before it stopped.
			s.mu.Lock()
			rest := string(s.out[s.pos:])
			s.mu.Unlock()
			if rx.MatchString(rest) {
				continue
			}
			s.t.Fatalf("the command ended without printing %q; output:\n%s", re, s.output())
		case <-deadline.C:
			s.t.Fatalf("no %q within %v; output:\n%s", re, ptyTimeout, s.output())
		}
	}
}

// echoOff waits until the terminal no longer echoes, as it does while a
// password is read: typing earlier would show the secret.
func (s *ptySession) echoOff() {
	s.t.Helper()
	raw, err := s.ptmx.SyscallConn()
	if err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(ptyTimeout)
	for {
		var tio *unix.Termios
		var terr error
		if err := raw.Control(func(fd uintptr) { tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
			s.t.Fatal(err)
		}
		if terr != nil {
			s.t.Fatalf("read the terminal mode: %v", terr)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal still echoes %v after the prompt; output:\n%s", ptyTimeout, s.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// typeSecret types a secret and Enter once echo is off.
func (s *ptySession) typeSecret(v string) {
	s.t.Helper()
	s.echoOff()
	s.typeLine(v)
}

func (s *ptySession) typeLine(v string) {
	s.t.Helper()
	if _, err := io.WriteString(s.ptmx, v+"\r"); err != nil {
		s.t.Fatalf("type: %v", err)
	}
}

// wait waits for the command to exit with the given status.
func (s *ptySession) wait(status int) {
	s.t.Helper()
	err := waitWithin(s.cmd, ptyTimeout)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("wait: %v; output:\n%s", err, s.output())
	}
	select {
	case <-s.done:
	case <-time.After(ptyTimeout):
		s.t.Fatalf("the terminal stayed open after the command exited")
	}
	if got != status {
		s.t.Fatalf("exit status %d, want %d; output:\n%s", got, status, s.output())
	}
}

// noPassword checks that a secret never reached the terminal.
func (s *ptySession) noPassword(secret string) {
	s.t.Helper()
	if secret != "" && strings.Contains(s.output(), secret) {
		s.t.Fatalf("the secret %q appeared on the terminal:\n%s", secret, s.output())
	}
}

// runWithin runs cmd and kills it if it takes longer than d.
func runWithin(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	return waitWithin(cmd, d)
}

func waitWithin(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return errors.New("timed out")
	}
}
