package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as an agent and as a hardening probe: TestMain
// dispatches on these environment variables.
const (
	helperEnv     = "SAFEHOLD_AGENT_TEST_HELPER"
	helperSockEnv = "SAFEHOLD_AGENT_TEST_SOCK"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "agent":
		os.Exit(helperAgent(os.Getenv(helperSockEnv)))
	case "exit":
		fmt.Fprintln(os.Stderr, "helper: exiting at once")
		os.Exit(7)
	case "mute":
		time.Sleep(30 * time.Second) // never listens
		os.Exit(0)
	case "harden":
		os.Exit(helperHarden())
	default:
		os.Exit(99)
	}
}

type agentInfo struct {
	PID int               `json:"pid"`
	SID int               `json:"sid"`
	FDs map[string]string `json:"fds"` // descriptor number → readlink target
}

func helperAgent(path string) int {
	if err := Harden(); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	l, err := Listen(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		if errors.Is(err, ErrAgentRunning) {
			return 3
		}
		return 1
	}
	fmt.Fprintln(os.Stderr, "helper agent listening")
	var srv *Server
	srv = NewServer(HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		switch req.Op {
		case "info":
			sid, _ := unix.Getsid(0)
			info := agentInfo{PID: os.Getpid(), SID: sid, FDs: map[string]string{}}
			ents, _ := os.ReadDir("/proc/self/fd")
			for _, e := range ents {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				info.FDs[e.Name()] = target
			}
			return info, nil
		case "stop":
			go srv.Shutdown(context.Background())
			return nil, nil
		}
		return nil, &Error{Code: "unknown_op", Message: "unknown op"}
	}), Options{
		// An orphaned helper (failed test) goes away by itself.
		IdleTimeout: 20 * time.Second,
		OnIdle:      func() { go srv.Shutdown(context.Background()) },
	})
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		return 1
	}
	return 0
}

func helperHarden() int {
	if err := Harden(); err != nil {
		fmt.Println("error", err)
		return 1
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Printf("dumpable=%d core=%d/%d\n", dumpable, lim.Cur, lim.Max)
	return 0
}

func helperCmd(mode, sock string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperSockEnv+"="+sock)
	return cmd
}

// stopAgent stops the agent on path and waits until it is gone.
func stopAgent(t *testing.T, path string) {
	t.Helper()
	c, err := Dial(path)
	if errors.Is(err, ErrNoAgent) {
		return
	}
	if err != nil {
		t.Errorf("stop agent: %v", err)
		return
	}
	pid := c.PID()
	c.Call(context.Background(), "stop", nil, nil)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// The process is reaped by Start's goroutine; signal 0 fails then.
		if unix.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("agent %d did not exit", pid)
}

func TestStart(t *testing.T) {
	path := sockPath(t)
	logPath := filepath.Join(shortDir(t), "agent.log")

	// A descriptor this process holds without close-on-exec must not reach
	// the agent.
	marker := filepath.Join(shortDir(t), "leak-marker")
	os.WriteFile(marker, nil, 0o600)
	leak, err := unix.Open(marker, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)

	cmd := helperCmd("agent", path)
	start := time.Now()
	if err := (Launcher{LogPath: logPath}).Start(context.Background(), path, cmd); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent answered after %v", time.Since(start))
	t.Cleanup(func() { stopAgent(t, path) })

	c := dial(t, path)
	if c.PID() != cmd.Process.Pid {
		t.Fatalf("agent pid %d, started %d", c.PID(), cmd.Process.Pid)
	}
	var info agentInfo
	if err := c.Call(context.Background(), "info", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.SID != info.PID {
		t.Errorf("agent is not a session leader: sid %d pid %d", info.SID, info.PID)
	}
	if info.FDs["0"] != os.DevNull || info.FDs["1"] != logPath || info.FDs["2"] != logPath {
		t.Errorf("agent stdio: %v", info.FDs)
	}
	for fd, target := range info.FDs {
		if target == marker {
			t.Errorf("agent inherited descriptor %s → %s", fd, target)
		}
	}
	fi, err := os.Stat(logPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "helper agent listening") {
		t.Errorf("log lacks the agent's output: %q", b)
	}

	// A second Start finds the agent and runs nothing.
	again := helperCmd("agent", path)
	if err := Start(context.Background(), path, again); err != nil || again.Process != nil {
		t.Fatalf("second Start: %v (process %v)", err, again.Process)
	}
}

func TestStartConcurrentEndsWithOneAgent(t *testing.T) {
	path := sockPath(t)
	t.Cleanup(func() { stopAgent(t, path) })
	const n = 4
	cmds := make([]*exec.Cmd, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cmds[i] = helperCmd("agent", path)
		wg.Go(func() { errs[i] = Start(context.Background(), path, cmds[i]) })
	}
	wg.Wait()
	started := 0
	pid := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Start %d: %v", i, errs[i])
		}
		if cmds[i].Process != nil {
			started++
			pid = cmds[i].Process.Pid
		}
	}
	if started != 1 {
		t.Fatalf("%d agents started, want 1", started)
	}
	c := dial(t, path)
	if c.PID() != pid {
		t.Fatalf("serving agent %d, started %d", c.PID(), pid)
	}
}

func TestStartFailures(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "run", "agent.sock")
	logPath := filepath.Join(dir, "agent.log")

	err := Launcher{LogPath: logPath}.Start(context.Background(), path, helperCmd("exit", path))
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), logPath) {
		t.Fatalf("agent that exits: %v", err)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "exiting at once") {
		t.Errorf("log: %q", b)
	}

	mute := helperCmd("mute", path)
	start := time.Now()
	err = Launcher{Timeout: 300 * time.Millisecond}.Start(context.Background(), path, mute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("agent that never listens: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Start took %v with a 300ms timeout", d)
	}
	if mute.Process != nil {
		mute.Process.Kill()
	}

	withFiles := helperCmd("agent", path)
	withFiles.ExtraFiles = []*os.File{os.Stdin}
	if err := Start(context.Background(), path, withFiles); err == nil || withFiles.Process != nil {
		t.Fatalf("ExtraFiles accepted: %v", err)
	}

	os.WriteFile(logPath, nil, 0o644)
	os.Chmod(logPath, 0o644)
	bad := helperCmd("agent", path)
	if err := (Launcher{LogPath: logPath}).Start(context.Background(), path, bad); err == nil || bad.Process != nil {
		t.Fatalf("world-readable log accepted: %v", err)
	}

	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	if err := Start(context.Background(), filepath.Join(open, "s"), helperCmd("agent", "")); !errors.Is(err, ErrInsecureDir) {
		t.Fatalf("insecure dir: %v", err)
	}
}

func TestHarden(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=harden")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "dumpable=0 core=0/0" {
		t.Fatalf("after Harden: %s", got)
	}
}

func TestStartWithoutSocketDirCreatesIt(t *testing.T) {
	path := filepath.Join(shortDir(t), "new", "agent.sock")
	t.Cleanup(func() { stopAgent(t, path) })
	if err := Start(context.Background(), path, helperCmd("agent", path)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir: %v %v", fi, err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
}
