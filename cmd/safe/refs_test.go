//go:build linux

package main

import (
	"bufio"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunForwardsSignals sends SIGTERM and SIGINT to `safe run` and checks
// that the child gets them (its trap runs, its output still masked) and
// that safe exits with the child's status.
func TestRunForwardsSignals(t *testing.T) {
	h := newProcHarness(t)
	h.must("ann", "init", "--password-file", h.pw)
	h.addLogin("ann", "db", "dbuser", "sig-Secr3t-pw")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGINT: "INT"}[sig]
		t.Run(name, func(t *testing.T) {
			script := `trap 'echo "got ` + name + ` $DB"; exit 7' ` + name + `; echo ready; while :; do sleep 0.05; done`
			cmd := h.command("ann", "run", "--", "sh", "-c", script)
			cmd.Env = append(cmd.Env, "DB=safe://Personal/db/password")
			// A process group of its own: not the terminal's foreground
			// group (when the tests run on one), where safe leaves
			// SIGINT to the terminal.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); waitWithin(cmd, 10*time.Second) })
			r := bufio.NewReader(out)
			if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("first line %q, %v\n%s", line, err, stderr.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(r)
			err = waitWithin(cmd, 30*time.Second)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("safe run ended with %v, want exit status 7\n%s", err, stderr.String())
			}
			if got := string(rest); got != "got "+name+" <concealed by safehold>\n" {
				t.Fatalf("child printed %q", got)
			}
			if strings.Contains(stderr.String(), "error:") {
				t.Fatalf("safe printed an error:\n%s", stderr.String())
			}
		})
	}
}
