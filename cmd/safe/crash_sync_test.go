package main

// The server is killed (SIGKILL, no shutdown) at random moments while two
// devices sync through it, again and again: no write a sync acknowledged
// may be lost, and every device must end verified and identical. Every
// third round the client is killed instead: device B's agent (which runs
// the sync) gets SIGKILL mid-sync while the server stays up; B must keep
// every write it acknowledged locally, pass `safe verify` at once, and sync
// later. Real processes on loopback, like the scripts: the `safe` on PATH
// is this test binary (see TestMain).
//
// Rounds: 15 by default; SAFEHOLD_SYNC_CRASH_ITERATIONS=N for more
// (scripts/crash).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashRounds is how many rounds of syncs-with-a-kill run by default.
const crashRounds = 15

// syncCrashIterationsEnv overrides crashRounds.
const syncCrashIterationsEnv = "SAFEHOLD_SYNC_CRASH_ITERATIONS"

// syncCrashRounds returns the number of rounds: crashRounds unless the
// environment sets it.
func syncCrashRounds(t *testing.T) int {
	v := os.Getenv(syncCrashIterationsEnv)
	if v == "" {
		return crashRounds
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", syncCrashIterationsEnv, v)
	}
	return n
}

// crashCmdTimeout bounds every command the test runs.
const crashCmdTimeout = 30 * time.Second

func TestSyncServerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server or an agent mid-sync 15 times (about 15 s)")
	}
	rounds := syncCrashRounds(t)
	start := time.Now()
	bin, err := exec.LookPath("safe")
	if err != nil {
		t.Fatalf("the test binary is not on PATH as safe: %v", err)
	}
	dir := t.TempDir()
	h := &crashHarness{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "srv")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_") {
			h.env = append(h.env, kv)
		}
	}
	h.env = append(h.env, "SAFE_INSECURE_TEST_KDF=1")
	t.Cleanup(func() {
		h.stopServer(false)
		if err := stopAgents(dir); err != nil {
			t.Error(err)
		}
	})
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 200<<10) // four chunks
	var seed [32]byte
	copy(seed[:], "safehold crash test attachment!!")
	rand.NewChaCha8(seed).Read(blob)
	blobFile := filepath.Join(dir, "blob.bin")
	if err := os.WriteFile(blobFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	// The first start picks a free port; every restart reuses it, since
	// the devices pin the URL.
	h.startServer("127.0.0.1:0")
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	h.must(a, "account", "register", "--server", h.url, "--email", "ann@example.com", "--password-file", pw, "--fingerprint", h.fp, "--manual")
	skFile := filepath.Join(dir, "sk")
	if err := os.WriteFile(skFile, []byte(h.must(a, "account", "secret-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	login := []string{"account", "login", "--server", h.url, "--email", "ann@example.com", "--password-file", pw, "--secret-key-file", skFile, "--fingerprint", h.fp, "--manual"}
	h.must(b, login...)

	// Each round both devices write (A also attaches a file every third
	// round), then both sync while the server is killed after a random
	// delay. A sync that exits 0 acknowledges everything its device wrote
	// before it started. Every third round (from round 1) B's agent is
	// killed instead of the server.
	seedN := time.Now().UnixNano()
	t.Logf("random seed %d", seedN)
	rng := rand.New(rand.NewPCG(uint64(seedN), 0))
	written := map[string][]string{} // home → titles, in order
	acked := map[string]int{}        // home → how many of written are acknowledged
	attached := map[string]bool{}    // titles with the attachment
	outcomes := map[string]int{}     // "exit N" → count, for the log
	serverKills, clientKills, clientChecks, localAcks := 0, 0, 0, 0
	serverMidSync, clientMidSync := 0, 0 // kills that a sync saw fail
	clientEarly := 0                     // client kills before the sync reached the agent
	clientResyncs := 0                   // syncs after a client kill, all of which must succeed
	bSync := 200 * time.Millisecond      // how long B's last complete sync took
	for round := range rounds {
		killClient := round%3 == 1
		for _, home := range []string{a, b} {
			title := fmt.Sprintf("%s-%02d", filepath.Base(home), round)
			h.must(home, "add", "login", "--title", title, "--username", "u"+title)
			written[home] = append(written[home], title)
			// B attaches before the syncs its agent is killed in, so
			// that its sync uploads chunks and lasts long enough to be
			// hit.
			if home == a && round%3 == 0 || home == b && killClient {
				h.must(home, "attach", "add", title, blobFile)
				attached[title] = true
			}
		}
		type result struct {
			home string
			n    int // titles written before the sync started
			code int
			out  string
			took time.Duration
		}
		results := make(chan result, 2)
		bPID := make(chan int, 1)
		for _, home := range []string{a, b} {
			n := len(written[home])
			var started func(int)
			if home == b {
				started = func(pid int) { bPID <- pid }
			}
			go func() {
				t0 := time.Now()
				code, out := h.runStarted(home, started, "sync")
				results <- result{home, n, code, out, time.Since(t0)}
			}()
		}
		// The server dies after a random delay. A client kill waits
		// until B's `safe sync` has connected to its agent (the process
		// start takes most of a short sync), then lands at a random
		// point within half the time B's last complete sync took.
		delay := time.Duration(rng.IntN(250)) * time.Millisecond
		if killClient {
			waitSocket(<-bPID, 5*time.Second)
			delay = time.Duration(rng.Int64N(int64(bSync / 2)))
		}
		time.Sleep(delay)
		if killClient {
			pids := safePIDs(b, "agent", "--home")
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			for _, pid := range pids {
				for alive(pid) {
					time.Sleep(5 * time.Millisecond)
				}
			}
			clientKills++
		} else {
			h.stopServer(true)
			serverKills++
		}
		for range 2 {
			r := <-results
			outcomes[fmt.Sprintf("exit %d", r.code)]++
			switch {
			case r.code == 0:
				acked[r.home] = max(acked[r.home], r.n)
				if r.home == b {
					bSync = r.took
				}
			case r.code == exitOffline && !killClient:
				// The server died before or during the sync: the writes
				// stay queued.
				serverMidSync++
			case killClient && r.home == b && r.code == exitLocked:
				// B's agent died before the sync reached it.
				clientEarly++
			case killClient && r.home == b && r.code > 0:
				// B's agent died under its sync: the sync failed, and
				// B's writes stay local until a later sync.
				clientMidSync++
			default:
				t.Fatalf("round %d: sync on %s exited %d (want 0, or 14 while the server is down):\n%s\nserver log:\n%s",
					round, filepath.Base(r.home), r.code, r.out, h.serverTail())
			}
		}
		if killClient {
			// The killed device keeps every write it acknowledged
			// locally (the adds exited 0), and its vault verifies. The
			// agent held the keys: unlock again, as a user would.
			h.must(b, "unlock", "--password-file", pw)
			got := h.titles(b)
			for _, title := range written[b] {
				if !slices.Contains(got, title) {
					t.Fatalf("round %d: %s was written on b (the add exited 0) but is gone after b's agent was killed mid-sync; b has %v", round, title, got)
				}
			}
			localAcks += len(written[b])
			if out := h.must(b, "verify"); !strings.Contains(out, "No problems found") {
				t.Fatalf("round %d: verify on b after its agent was killed mid-sync: %s", round, out)
			}
			clientChecks++
			// A later sync succeeds (the server is up) and sends what
			// the killed one did not.
			h.must(b, "sync")
			acked[b] = len(written[b])
			clientResyncs++
		} else {
			h.startServer(h.addr)
		}
	}
	t.Logf("syncs during crashes: %v; acknowledged: A %d/%d, B %d/%d", outcomes,
		acked[a], len(written[a]), acked[b], len(written[b]))

	// A device that joins now sees every acknowledged write, before the
	// others send what is still queued.
	h.must(c, login...)
	titlesC := h.titles(c)
	syncAcks := acked[a] + acked[b]
	for _, home := range []string{a, b} {
		for _, title := range written[home][:acked[home]] {
			if !slices.Contains(titlesC, title) {
				t.Errorf("%s was acknowledged by a sync on %s but is not on the server (a new device has %v)", title, filepath.Base(home), titlesC)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Everything queued goes out; every device ends with the same items,
	// attachments intact, and verified.
	for _, home := range []string{a, b, a, c} {
		h.must(home, "sync")
	}
	var all []string
	for _, home := range []string{a, b} {
		all = append(all, written[home]...)
	}
	slices.Sort(all)
	for _, home := range []string{a, b, c} {
		if got := h.titles(home); !slices.Equal(got, all) {
			t.Errorf("%s has %v, want %v", filepath.Base(home), got, all)
		}
		out := h.must(home, "verify")
		if !strings.Contains(out, "No problems found") {
			t.Errorf("verify on %s: %s", filepath.Base(home), out)
		}
	}
	for title := range attached {
		out := filepath.Join(dir, "got-"+title)
		h.must(c, "attach", "get", title, "blob.bin", "--out", out)
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, blob) {
			t.Errorf("attachment of %s on c: %d bytes, err %v; want the %d bytes attached", title, len(got), err, len(blob))
		}
	}
	t.Logf("summary: %d iterations, %d server SIGKILLs during sync (%d syncs failed by them), %d client (agent) SIGKILLs during sync (%d syncs failed by them, %d before the sync reached the agent; %d later syncs of the killed client succeeded); "+
		"%d sync-acknowledged writes checked on a new device, %d locally acknowledged writes checked on the killed client, "+
		"%d writes queued at the kills all landed after recovery (%d items on 3 devices), %d attachments compared; "+
		"verify passed %d times (%d after client kills + 3 final); time %v",
		rounds, serverKills, serverMidSync, clientKills, clientMidSync, clientEarly, clientResyncs, syncAcks, localAcks,
		len(all)-syncAcks, len(all), len(attached), clientChecks+3, clientChecks, time.Since(start).Round(time.Millisecond))
}

// waitSocket waits until process pid has a socket open (for `safe sync`:
// its connection to the agent), has exited, or limit has passed.
func waitSocket(pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for pid > 0 && alive(pid) && time.Now().Before(deadline) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// exitLocked is the exit code of a command that finds no agent (cli.ExitLocked).
const exitLocked = 6

// exitOffline is the documented exit code of `safe sync` when the remote
// is unreachable (cli.ExitOffline).
const exitOffline = 14

// crashHarness runs one server and the safe commands of a test.
type crashHarness struct {
	t         *testing.T
	bin       string
	dir, data string
	env       []string

	mu      sync.Mutex
	srv     *exec.Cmd
	srvLog  *bytes.Buffer
	srvDone chan struct{}
	url     string
	addr    string
	fp      string
}

// startServer starts `safe serve` on addr and waits until it listens.
func (h *crashHarness) startServer(addr string) {
	h.t.Helper()
	info := filepath.Join(h.dir, "srv.json")
	os.Remove(info)
	cmd := exec.Command(h.bin, "serve", "--addr", addr, "--data", h.data, "--info-file", info)
	cmd.Env = h.env
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	h.mu.Lock()
	h.srv, h.srvLog, h.srvDone = cmd, &log, done
	h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile(info)
		if err == nil {
			var v struct{ URL, Fingerprint string }
			if err := json.Unmarshal(raw, &v); err != nil {
				h.t.Fatalf("server info: %v", err)
			}
			if h.fp != "" && v.Fingerprint != h.fp {
				h.t.Fatalf("the server's fingerprint changed across a restart: %s, then %s", h.fp, v.Fingerprint)
			}
			h.url, h.fp = v.URL, v.Fingerprint
			h.addr = strings.TrimPrefix(v.URL, "https://")
			return
		}
		select {
		case <-done:
			h.t.Fatalf("safe serve --addr %s exited: %v\n%s", addr, cmd.ProcessState, h.serverTail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("safe serve --addr %s did not start within 10 s\n%s", addr, h.serverTail())
		}
	}
}

// stopServer kills the server (SIGKILL when crash, else SIGINT for a
// graceful stop) and waits for it to exit.
func (h *crashHarness) stopServer(crash bool) {
	h.mu.Lock()
	cmd, done := h.srv, h.srvDone
	h.srv = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	if crash {
		cmd.Process.Kill()
	} else {
		cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// serverTail returns the end of the current server's output.
func (h *crashHarness) serverTail() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srvLog == nil {
		return ""
	}
	s := h.srvLog.String()
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// run runs safe for a home and returns its exit code and its combined
// output.
func (h *crashHarness) run(home string, args ...string) (int, string) {
	return h.runStarted(home, nil, args...)
}

// runStarted is run that calls started (when not nil) with the process id
// once the command has started.
func (h *crashHarness) runStarted(home string, started func(pid int), args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), crashCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(slices.Clip(h.env), "SAFE_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if started != nil {
		pid := -1
		if err == nil {
			pid = cmd.Process.Pid
		}
		started(pid)
	}
	if err == nil {
		err = cmd.Wait()
	}
	if ctx.Err() != nil {
		return -1, fmt.Sprintf("timed out after %v\n%s", crashCmdTimeout, out.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, out.String()
}

// must runs safe and fails the test unless it succeeds; it returns the
// output without the insecure-KDF warning.
func (h *crashHarness) must(home string, args ...string) string {
	h.t.Helper()
	code, out := h.run(home, args...)
	if code != 0 {
		h.t.Fatalf("safe %s (home %s) exited %d:\n%s\nserver log:\n%s", strings.Join(args, " "), filepath.Base(home), code, out, h.serverTail())
	}
	var keep []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(line, "WARNING: ") {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, ""))
}

// titles lists a home's item titles, sorted.
func (h *crashHarness) titles(home string) []string {
	h.t.Helper()
	var list []struct {
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(h.must(home, "ls", "--json")), &list); err != nil {
		h.t.Fatalf("ls --json on %s: %v", filepath.Base(home), err)
	}
	var out []string
	for _, it := range list {
		out = append(out, it.Title)
	}
	slices.Sort(out)
	return out
}
