//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sshEnv runs OpenSSH tools against one agent socket.
type sshEnv struct {
	t    *testing.T
	dir  string
	sock string
}

// run runs an OpenSSH tool with SSH_AUTH_SOCK set and no terminal to ask
// on, and returns its exit code and combined output.
func (s sshEnv) run(stdin string, name string, args ...string) (int, string) {
	s.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+s.sock, "SSH_ASKPASS=/bin/false", "DISPLAY=")
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runWithin(cmd, 60*time.Second)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return 0, out.String()
}

func (s sshEnv) must(name string, args ...string) string {
	s.t.Helper()
	code, out := s.run("", name, args...)
	if code != 0 {
		s.t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// signAndVerify signs a message with the agent's key for pub (ssh-keygen
// -Y sign given only the public key asks the agent) and checks the
// signature with ssh-keygen -Y verify against an allowed_signers file.
func (s sshEnv) signAndVerify(pub, principal string) error {
	s.t.Helper()
	msg := filepath.Join(s.dir, "msg-"+principal)
	if err := os.WriteFile(msg, []byte("a message for "+principal+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	os.Remove(msg + ".sig")
	if code, out := s.run("", "ssh-keygen", "-Y", "sign", "-f", pub, "-n", "file", msg); code != 0 {
		return fmt.Errorf("ssh-keygen -Y sign: exit %d\n%s", code, out)
	}
	key, err := os.ReadFile(pub)
	if err != nil {
		s.t.Fatal(err)
	}
	allowed := filepath.Join(s.dir, "allowed_signers")
	if err := os.WriteFile(allowed, []byte(principal+" "+string(key)), 0o600); err != nil {
		s.t.Fatal(err)
	}
	data, _ := os.ReadFile(msg)
	code, out := s.run(string(data), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", principal, "-n", "file", "-s", msg+".sig")
	if code != 0 || !strings.Contains(out, `Good "file" signature for `+principal) {
		s.t.Fatalf("ssh-keygen -Y verify: exit %d\n%s", code, out)
	}
	return nil
}

func fingerprint(t *testing.T, pub string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", pub).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l %s: %v", pub, err)
	}
	return strings.Fields(string(out))[1]
}

// TestSSHAgent: `safe ssh-agent` serves an Ed25519 key imported with
// `safe add ssh --import` and an encrypted RSA key (passphrase in the
// item) to the real OpenSSH tools: ssh-add -l lists them, ssh-keygen -Y
// signs through the agent and the signatures verify; ssh-add cannot add or
// delete keys; a locked vault lists nothing; the socket is 0600 in a 0700
// directory and gone after SIGINT; with --lifetime the keys disappear.
func TestSSHAgent(t *testing.T) {
	for _, tool := range []string{"ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	h := newProcHarness(t)
	h.must("ann", "init", "--password-file", h.pw)
	keys := filepath.Join(h.dir, "keys")
	os.Mkdir(keys, 0o700)
	ed, rsa := filepath.Join(keys, "ed"), filepath.Join(keys, "rsa")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ed@example", "-f", ed).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "rsa pass phrase", "-C", "rsa@example", "-f", rsa).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	h.must("ann", "add", "ssh", "--title", "ed key", "--import", ed)
	// The RSA key goes in as ssh-keygen wrote it, encrypted, with its
	// passphrase in the item and no public key: the agent decrypts it.
	encrypted, err := os.ReadFile(rsa)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"type": "ssh", "title": "rsa key", "ssh": map[string]string{"private_key": string(encrypted), "passphrase": "rsa pass phrase"}})
	add := h.command("ann", "add", "--json")
	add.Stdin = bytes.NewReader(js)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("safe add --json: %v\n%s", err, out)
	}
	// Only the public keys stay on disk: signatures must come from the
	// agent.
	os.Remove(ed)
	os.Remove(rsa)
	edFP, rsaFP := fingerprint(t, ed+".pub"), fingerprint(t, rsa+".pub")

	sock := filepath.Join(h.dir, "ssh", "agent.sock")
	ag := h.start("ann", "ssh-agent", "--socket", sock)
	if ag.first != "SSH_AUTH_SOCK="+sock+"; export SSH_AUTH_SOCK;" {
		t.Fatalf("first line %q", ag.first)
	}
	for p, want := range map[string]os.FileMode{sock: os.ModeSocket | 0o600, filepath.Dir(sock): os.ModeDir | 0o700} {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode() != want {
			t.Fatalf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	s := sshEnv{t: t, dir: keys, sock: sock}

	list := s.must("ssh-add", "-l")
	for _, want := range []string{"256 " + edFP + " ed key (ED25519)", "3072 " + rsaFP + " rsa key (RSA)"} {
		if !strings.Contains(list, want) {
			t.Fatalf("ssh-add -l lacks %q:\n%s", want, list)
		}
	}
	if err := s.signAndVerify(ed+".pub", "ed@example"); err != nil {
		t.Fatal(err)
	}
	if err := s.signAndVerify(rsa+".pub", "rsa@example"); err != nil {
		t.Fatal(err)
	}

	// The agent is read-only.
	other := filepath.Join(keys, "other")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).Run()
	if code, out := s.run("", "ssh-add", other); code == 0 {
		t.Fatalf("ssh-add of a new key succeeded:\n%s", out)
	}
	if code, out := s.run("", "ssh-add", "-D"); code == 0 {
		t.Fatalf("ssh-add -D succeeded:\n%s", out)
	}
	if list := s.must("ssh-add", "-l"); strings.Count(list, "\n") != 2 {
		t.Fatalf("after refused changes:\n%s", list)
	}
	if !strings.Contains(ag.stderr.String(), "refused a request to add a key") {
		t.Fatalf("agent log:\n%s", ag.stderr.String())
	}

	// A locked vault lists no keys and signs nothing; unlocking brings
	// them back without restarting the ssh agent.
	h.must("ann", "lock")
	if code, out := s.run("", "ssh-add", "-l"); code != 1 || !strings.Contains(out, "no identities") {
		t.Fatalf("ssh-add -l with the vault locked: exit %d\n%s", code, out)
	}
	if err := s.signAndVerify(ed+".pub", "ed@example"); err == nil {
		t.Fatal("signed with the vault locked")
	}
	h.must("ann", "unlock", "--password-file", h.pw)
	if err := s.signAndVerify(ed+".pub", "ed@example"); err != nil {
		t.Fatal(err)
	}

	// SIGINT stops the agent and removes the socket.
	ag.cmd.Process.Signal(os.Interrupt)
	if code := ag.wait(t); code != 0 {
		t.Fatalf("ssh-agent exit %d\n%s", code, ag.stderr.String())
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket outlived the agent: %v", err)
	}
	logs := ag.stderr.String()
	for _, secret := range []string{"PRIVATE KEY", "rsa pass phrase"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("%q in the agent's output:\n%s", secret, logs)
		}
	}

	t.Run("refuses", func(t *testing.T) {
		file := filepath.Join(h.dir, "ssh", "file")
		os.WriteFile(file, []byte("not a socket"), 0o600)
		if code, _, errOut := h.run("ann", "ssh-agent", "--socket", file); code == 0 || !strings.Contains(errOut, "exists and is not a socket") {
			t.Fatalf("over a regular file: exit %d\n%s", code, errOut)
		}
		open := filepath.Join(h.dir, "open")
		os.Mkdir(open, 0o755)
		os.Chmod(open, 0o755)
		if code, _, errOut := h.run("ann", "ssh-agent", "--socket", filepath.Join(open, "s")); code == 0 || !strings.Contains(errOut, "want 0700") {
			t.Fatalf("in a 0755 directory: exit %d\n%s", code, errOut)
		}
		// Without a terminal, --confirm cannot ask: refused at start.
		if code, _, errOut := h.run("ann", "ssh-agent", "--socket", sock, "--confirm"); code != 2 || !strings.Contains(errOut, "no controlling terminal") {
			t.Fatalf("--confirm without a terminal: exit %d\n%s", code, errOut)
		}
		h.must("ann", "lock")
		defer h.must("ann", "unlock", "--password-file", h.pw)
		if code, _, errOut := h.run("ann", "ssh-agent", "--socket", sock); code != 6 {
			t.Fatalf("with the vault locked: exit %d\n%s", code, errOut)
		}
	})

	t.Run("lifetime", func(t *testing.T) {
		sock := filepath.Join(h.dir, "ssh", "short.sock")
		ag := h.start("ann", "ssh-agent", "--socket", sock, "--lifetime", "2s")
		s := sshEnv{t: t, dir: keys, sock: sock}
		// The keys are listed until their lifetime ends, then never again.
		// (Polled with a generous bound: this checks that they go, not
		// how fast.)
		first := true
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			code, out := s.run("", "ssh-add", "-l")
			if first && (code != 0 || !strings.Contains(out, edFP)) {
				t.Fatalf("a fresh agent does not list the key: exit %d\n%s", code, out)
			}
			first = false
			if code == 1 && strings.Contains(out, "no identities") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the keys are still listed after 60s:\n%s", out)
			}
		}
		if err := s.signAndVerify(ed+".pub", "ed@example"); err == nil {
			t.Fatal("signed with an expired key")
		}
		if !strings.Contains(ag.stderr.String(), "its lifetime of 2s is over") {
			t.Fatalf("agent log:\n%s", ag.stderr.String())
		}
	})

	t.Run("confirm", func(t *testing.T) {
		sock := filepath.Join(h.dir, "ssh", "confirm.sock")
		p := startPTY(t, h.bin, h.env("ann"), "ssh-agent", "--socket", sock, "--confirm")
		p.expect(`SSH_AUTH_SOCK=`)
		p.expect(`Ctrl-C stops`)
		s := sshEnv{t: t, dir: keys, sock: sock}
		// ssh-add -l needs no confirmation.
		s.must("ssh-add", "-l")
		signed := make(chan error, 1)
		go func() { signed <- s.signAndVerify(ed+".pub", "ed@example") }()
		p.expect(`Allow use of SSH key "ed key" \(SHA256:[^)]+\)\? \[y/N\] `)
		p.typeLine("y")
		if err := <-signed; err != nil {
			t.Fatalf("after yes: %v", err)
		}
		go func() { signed <- s.signAndVerify(ed+".pub", "ed@example") }()
		p.expect(`Allow use of SSH key "ed key"`)
		p.typeLine("n")
		if err := <-signed; err == nil {
			t.Fatal("signed after no")
		}
		p.expect(`refused to sign with "ed key".*not confirmed`)
		p.cmd.Process.Signal(os.Interrupt)
		p.wait(0)
	})
}
