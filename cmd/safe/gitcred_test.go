//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// gitServer serves bare repositories over git's smart HTTP protocol (git
// http-backend as a CGI program) behind basic authentication, and records
// what it was sent.
type gitServer struct {
	*httptest.Server
	user, pass string

	mu       sync.Mutex
	accepted []string // user names let in
	refused  int
}

func newGitServer(t *testing.T, root, user, pass string) *gitServer {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("no git-http-backend: %v", err)
	}
	s := &gitServer{user: user, pass: pass}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		s.mu.Lock()
		if !ok || u != s.user || p != s.pass {
			s.refused++
			s.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		s.accepted = append(s.accepted, u)
		s.mu.Unlock()
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gitServer) counts() (accepted, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted), s.refused
}

// gitEnv is the environment of a git run: the home's safe environment, git
// kept from any user or system configuration, and no terminal prompts.
func gitEnv(h *procHarness, home, dir string) []string {
	env := h.env(home)
	return append(env,
		"HOME="+dir, "XDG_CONFIG_HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(dir, "gitconfig"),
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	)
}

func runGit(t *testing.T, env []string, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runWithin(cmd, 60*time.Second)
	return out.String(), err
}

func mustGit(t *testing.T, env []string, dir string, args ...string) {
	t.Helper()
	if out, err := runGit(t, env, dir, args...); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// loginView is what the test reads back of an item.
type loginView struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	URLs     []string `json:"urls"`
	Tags     []string `json:"tags"`
	Revision uint64   `json:"revision"`
}

func (h *procHarness) logins(home string) []loginView {
	h.t.Helper()
	var list []loginView
	if err := json.Unmarshal([]byte(h.must(home, "ls", "--json")), &list); err != nil {
		h.t.Fatal(err)
	}
	for i, o := range list {
		if err := json.Unmarshal([]byte(h.must(home, "get", o.ID, "--json", "--reveal")), &list[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	return list
}

// credHelper runs `safe git-credential ACTION` with git's input.
func (h *procHarness) credHelper(home, action, input string) (int, string, string) {
	h.t.Helper()
	cmd := h.command(home, "git-credential", action)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runWithin(cmd, 60*time.Second)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestGitCredentialHelper drives the helper with the real git against a
// smart-HTTP server that requires basic authentication: a clone stores
// the credentials it was given, later clones take them from the vault, a
// refused password is marked (erase) and replaced (store).
func TestGitCredentialHelper(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	h := newProcHarness(t)
	h.must("ann", "init", "--password-file", h.pw)

	// A bare repository with one commit.
	work := t.TempDir()
	root := filepath.Join(work, "srv")
	env := gitEnv(h, "ann", work)
	if err := os.WriteFile(filepath.Join(work, "gitconfig"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(work, "src")
	mustGit(t, env, work, "init", "-q", "-b", "main", src)
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello from the server\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, env, src, "add", "README")
	mustGit(t, env, src, "commit", "-q", "-m", "first")
	mustGit(t, env, work, "clone", "-q", "--bare", src, filepath.Join(root, "repo.git"))

	const user, pass = "alice", "corr3ct-Horse-pw"
	srv := newGitServer(t, root, user, pass)
	u, _ := url.Parse(srv.URL)
	host := u.Host // 127.0.0.1:PORT
	repoURL := srv.URL + "/repo.git"
	helper := "!'" + h.bin + "' git-credential"

	askpass := filepath.Join(work, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\ncase \"$1\" in\n  Username*) echo "+user+" ;;\n  Password*) echo "+pass+" ;;\nesac\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	n := 0
	clone := func(withAskpass bool) (string, error) {
		t.Helper()
		n++
		e := env
		if withAskpass {
			e = append(slices.Clone(env), "GIT_ASKPASS="+askpass)
		}
		dst := filepath.Join(work, "clone"+string(rune('0'+n)))
		out, err := runGit(t, e, work, "-c", "credential.helper=", "-c", "credential.helper="+helper, "clone", "-q", repoURL, dst)
		if err == nil {
			b, rerr := os.ReadFile(filepath.Join(dst, "README"))
			if rerr != nil || string(b) != "hello from the server\n" {
				t.Fatalf("the clone has README %q, %v", b, rerr)
			}
		}
		return out, err
	}

	// An empty vault and no other source: git cannot authenticate, and
	// the helper wrote nothing into the vault.
	if out, err := clone(false); err == nil {
		t.Fatalf("clone without credentials succeeded:\n%s", out)
	}
	if got := h.logins("ann"); len(got) != 0 {
		t.Fatalf("vault holds %+v", got)
	}

	// Credentials from GIT_ASKPASS: the clone succeeds and git's store
	// saves them as a login item for the host.
	if out, err := clone(true); err != nil {
		t.Fatalf("clone with askpass: %v\n%s", err, out)
	}
	items := h.logins("ann")
	if len(items) != 1 {
		t.Fatalf("after store the vault holds %+v", items)
	}
	it := items[0]
	if it.Title != host || it.Username != user || it.Password != pass || !slices.Equal(it.URLs, []string{"http://" + host}) || !slices.Contains(it.Tags, "git") {
		t.Fatalf("stored item %+v", it)
	}
	id := it.ID

	// No askpass, no prompts: the vault's credentials are the only source.
	acc0, _ := srv.counts()
	if out, err := clone(false); err != nil {
		t.Fatalf("clone with the vault's credentials: %v\n%s", err, out)
	}
	if acc, _ := srv.counts(); acc <= acc0 {
		t.Fatalf("the server let nobody in (%d, %d)", acc0, acc)
	}
	// git stores what worked, also when it came from the helper: nothing
	// is duplicated or rewritten.
	if items := h.logins("ann"); len(items) != 1 || items[0].Revision != it.Revision {
		t.Fatalf("after a clone from the vault: %+v (was revision %d)", items, it.Revision)
	}

	// The protocol directly: get prints exactly two lines; another host,
	// another scheme or another user get nothing, exit 0.
	code, out, _ := h.credHelper("ann", "get", "protocol=http\nhost="+host+"\npath=repo.git\n\n")
	if code != 0 || out != "username="+user+"\npassword="+pass+"\n" {
		t.Fatalf("get: exit %d, %q", code, out)
	}
	code, out, _ = h.credHelper("ann", "get", "protocol=http\nhost="+host+"\nusername="+user+"\n\n")
	if code != 0 || out != "password="+pass+"\n" {
		t.Fatalf("get with a username: exit %d, %q", code, out)
	}
	for _, in := range []string{
		"protocol=http\nhost=example.com\n\n",
		"protocol=https\nhost=" + host + "\n\n",
		"protocol=http\nhost=" + host + "\nusername=bob\n\n",
	} {
		if code, out, errOut := h.credHelper("ann", "get", in); code != 0 || out != "" {
			t.Fatalf("get %q: exit %d, %q\n%s", in, code, out, errOut)
		}
	}
	// Unknown actions are ignored; malformed input prints nothing.
	if code, out, _ := h.credHelper("ann", "frobnicate", "protocol=http\n\n"); code != 0 || out != "" {
		t.Fatalf("unknown action: exit %d, %q", code, out)
	}
	if code, out, errOut := h.credHelper("ann", "get", "no equals sign\n"); code != 11 || out != "" || !strings.Contains(errOut, "not key=value") {
		t.Fatalf("malformed input: exit %d, %q, %q", code, out, errOut)
	}
	// erase with a password that is not the stored one changes nothing.
	if code, _, errOut := h.credHelper("ann", "erase", "protocol=http\nhost="+host+"\nusername="+user+"\npassword=something-else\n\n"); code != 0 {
		t.Fatalf("erase: exit %d\n%s", code, errOut)
	}
	if items := h.logins("ann"); len(items) != 1 || items[0].Revision != it.Revision {
		t.Fatalf("erase of another password changed the vault: %+v", items)
	}

	// A wrong stored password: git fails and calls erase, which marks the
	// item (and keeps it).
	cmd := h.command("ann", "edit", id, "--password-stdin")
	cmd.Stdin = strings.NewReader("wrong-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("edit: %v\n%s", err, out)
	}
	_, ref0 := srv.counts()
	if out, err := clone(false); err == nil {
		t.Fatalf("clone with a wrong stored password succeeded:\n%s", out)
	}
	if _, ref := srv.counts(); ref <= ref0 {
		t.Fatal("the server refused nothing: the wrong password was not tried")
	}
	items = h.logins("ann")
	if len(items) != 1 || items[0].ID != id || items[0].Password != "wrong-password" || !slices.Contains(items[0].Tags, "git-rejected") {
		t.Fatalf("after erase: %+v", items)
	}
	// A marked item is not offered again...
	if code, out, _ := h.credHelper("ann", "get", "protocol=http\nhost="+host+"\n\n"); code != 0 || out != "" {
		t.Fatalf("get offered a refused password: %q", out)
	}
	// ...so git asks (askpass), and store puts the new password into the
	// same item and clears the mark.
	if out, err := clone(true); err != nil {
		t.Fatalf("clone with askpass after erase: %v\n%s", err, out)
	}
	items = h.logins("ann")
	if len(items) != 1 || items[0].ID != id || items[0].Password != pass || slices.Contains(items[0].Tags, "git-rejected") {
		t.Fatalf("after store: %+v", items)
	}
	if out, err := clone(false); err != nil {
		t.Fatalf("clone from the vault after store: %v\n%s", err, out)
	}

	// --read-only: get answers, store and erase change nothing.
	if code, _, _ := h.run("ann", "git-credential", "--read-only", "store"); code != 0 {
		t.Fatalf("read-only store: exit %d", code)
	}
	ro := h.command("ann", "git-credential", "--read-only", "erase")
	ro.Stdin = strings.NewReader("protocol=http\nhost=" + host + "\nusername=" + user + "\npassword=" + pass + "\n\n")
	if out, err := ro.CombinedOutput(); err != nil {
		t.Fatalf("read-only erase: %v\n%s", err, out)
	}
	if items := h.logins("ann"); slices.Contains(items[0].Tags, "git-rejected") {
		t.Fatal("read-only erase marked the item")
	}

	// Locked: the helper says so on standard error (git shows it), prints
	// nothing on standard output, and git fails without prompts.
	h.must("ann", "lock")
	code, out, errOut := h.credHelper("ann", "get", "protocol=http\nhost="+host+"\n\n")
	if code != 6 || out != "" || !strings.Contains(errOut, "safe unlock") {
		t.Fatalf("locked get: exit %d, %q, %q", code, out, errOut)
	}
	if out, err := clone(false); err == nil || !strings.Contains(out, "safe unlock") {
		t.Fatalf("clone with a locked vault: %v\n%s", err, out)
	}
}
