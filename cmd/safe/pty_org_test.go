//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteractiveOrg: without --fingerprint, on a terminal, `safe org
// accept` and `safe org confirm` show the code to compare and ask; only
// "y" goes on. `safe org remove` draws its progress bar on the terminal.
func TestInteractiveOrg(t *testing.T) {
	h := newProcHarness(t)
	bin, dir, base := h.bin, h.dir, h.base
	envFor := h.env
	ann, bob := envFor("ann"), envFor("bob")

	// plain runs safe without a terminal and returns its stdout.
	plain := func(t *testing.T, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runWithin(cmd, ptyTimeout); err != nil {
			t.Fatalf("safe %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	// A server, and two accounts on it.
	info := filepath.Join(dir, "srv.json")
	srv := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "srv"), "--info-file", info)
	srv.Env, srv.Dir = base, dir
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		waitWithin(srv, 10*time.Second) // killed if it does not stop
	})
	var si struct {
		URL         string `json:"url"`
		Fingerprint string `json:"fingerprint"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if raw, err := os.ReadFile(info); err == nil {
			if err := json.Unmarshal(raw, &si); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("safe serve did not start:\n%s", srvOut.String())
		}
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct {
		env   []string
		email string
	}{{ann, "ann@example.com"}, {bob, "bob@example.com"}} {
		plain(t, who.env, "account", "register", "--server", si.URL, "--email", who.email, "--password-file", pw, "--fingerprint", si.Fingerprint, "--manual")
	}

	var org struct {
		ID          string `json:"id"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal([]byte(plain(t, ann, "org", "create", "Acme", "--json")), &org); err != nil {
		t.Fatal(err)
	}
	plain(t, ann, "org", "invite", "Acme", "bob@example.com")

	t.Run("accept", func(t *testing.T) {
		// "n" (or anything but y) refuses, and nothing is pinned.
		s := startPTY(t, bin, bob, "org", "accept", "Acme")
		s.expect(`You are invited to Acme \(` + org.ID + `\)\. Its fingerprint is:\s+` + org.Fingerprint + `\s`)
		s.expect(`Does it match exactly\? \[y/N\] `)
		s.typeLine("n")
		s.expect(`error: the fingerprint was not confirmed`)
		s.wait(17)
		if out := plain(t, bob, "org", "ls"); !strings.Contains(out, "invited") {
			t.Fatalf("after a refusal:\n%s", out)
		}

		s = startPTY(t, bin, bob, "org", "accept", "Acme")
		s.expect(`Does it match exactly\? \[y/N\] `)
		s.typeLine("y")
		s.expect(`Accepted: you joined Acme`)
		m := s.expect(`Your identity code:\s+([0-9]{5}(?:-[0-9]{5}){5})\s`)
		s.wait(0)
		if own := strings.TrimSpace(plain(t, bob, "account", "fingerprint")); own != m[1] {
			t.Fatalf("accept printed %s, `safe account fingerprint` %s", m[1], own)
		}
	})

	t.Run("confirm", func(t *testing.T) {
		code := strings.TrimSpace(plain(t, bob, "account", "fingerprint"))
		s := startPTY(t, bin, ann, "org", "confirm", "Acme", "bob@example.com")
		s.expect(`bob@example.com presented this identity code:\s+` + code + `\s`)
		s.expect(`Does it match exactly\? \[y/N\] `)
		s.typeLine("")
		s.wait(17)

		s = startPTY(t, bin, ann, "org", "confirm", "Acme", "bob@example.com")
		s.expect(`Does it match exactly\? \[y/N\] `)
		s.typeLine("Y")
		s.expect(`Confirmed bob@example.com as a member of Acme\.`)
		s.wait(0)
		if out := plain(t, ann, "org", "members", "Acme"); !strings.Contains(out, "bob@example.com  member  active  "+code) {
			t.Fatalf("members after confirming:\n%s", out)
		}
	})

	t.Run("remove progress", func(t *testing.T) {
		plain(t, ann, "vault", "create", "Team", "--org", "Acme")
		plain(t, ann, "vault", "share", "Team", "bob@example.com", "--role", "read")
		plain(t, ann, "add", "note", "--vault", "Team", "--title", "One", "--notes", "1")
		plain(t, ann, "add", "note", "--vault", "Team", "--title", "Two", "--notes", "2")
		plain(t, ann, "sync")
		s := startPTY(t, bin, ann, "org", "remove", "Acme", "bob@example.com")
		s.expect(`\rre-encrypting \[#{30}\] ([0-9]+)/([0-9]+) items\r?\n`)
		s.expect(`Removed bob@example.com from Acme`)
		s.wait(0)
	})
}
