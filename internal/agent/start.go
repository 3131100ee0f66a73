package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safehold/safehold/internal/unixsock"
)

// DefaultStartTimeout bounds how long Start waits for a new agent to answer.
const DefaultStartTimeout = 5 * time.Second

// Launcher starts agents. The zero value is usable.
type Launcher struct {
	// LogPath, if set, receives the agent's stdout and stderr. The file is
	// created with mode 0600 (appended to if it exists; refused if it is
	// readable by others or not owned by the user). Empty means /dev/null.
	LogPath string
	// Timeout bounds the wait for the new agent's hello; zero means
	// DefaultStartTimeout.
	Timeout time.Duration
}

// Start is Launcher{}.Start.
func Start(ctx context.Context, socketPath string, cmd *exec.Cmd) error {
	return Launcher{}.Start(ctx, socketPath, cmd)
}

// Start makes sure an agent answers on socketPath. If one already answers
// the hello, it returns nil without running cmd. Otherwise it runs cmd (which
// must make the agent listen on socketPath) detached: in a new session,
// with stdin from /dev/null, stdout and stderr to /dev/null or the log file,
// and no other inherited descriptor. It waits until the agent answers the
// hello, the process exits, the timeout passes or ctx ends.
//
// Concurrent Starts for the same socket (from any processes) are serialised
// by an flock on socketPath+".start.lock", so they end with one agent.
//
// Start sets cmd's Stdin, Stdout, Stderr and SysProcAttr.Setsid; cmd must
// not have ExtraFiles. To keep descriptors that this process inherited
// without close-on-exec out of the agent, Start marks every descriptor from
// 3 up close-on-exec in this process (close_range(2) with
// CLOSE_RANGE_CLOEXEC, or fcntl on each entry of /proc/self/fd).
func (l Launcher) Start(ctx context.Context, socketPath string, cmd *exec.Cmd) error {
	if len(cmd.ExtraFiles) > 0 {
		return errors.New("agent: start: the agent command must not carry extra files")
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Fast path: an agent already answers.
	if err := probe(ctx, socketPath); !errors.Is(err, ErrNoAgent) {
		return err
	}
	if err := unixsock.EnsureDir(filepath.Dir(socketPath)); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	unlock, err := lockWait(ctx, socketPath+".start.lock")
	if err != nil {
		return err
	}
	defer unlock()
	// Another Start may have finished while this one waited for the lock.
	if err := probe(ctx, socketPath); !errors.Is(err, ErrNoAgent) {
		return err
	}

	exited, err := l.spawn(cmd)
	if err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("agent: the agent exited before answering (%v)%s", err, l.logHint())
		case <-ctx.Done():
			return fmt.Errorf("agent: no answer from the new agent (pid %d) within %v: %w%s", cmd.Process.Pid, timeout, ctx.Err(), l.logHint())
		case <-tick.C:
		}
		err := probe(ctx, socketPath)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNoAgent) && ctx.Err() == nil {
			return err
		}
	}
}

func (l Launcher) logHint() string {
	if l.LogPath == "" {
		return ""
	}
	return "; see " + strconv.Quote(l.LogPath)
}

// spawn starts cmd detached. The returned channel receives the result of
// Wait when the process exits; a goroutine waits so that the process is
// reaped if it exits while this process still runs.
func (l Launcher) spawn(cmd *exec.Cmd) (<-chan error, error) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("agent: start: %w", err)
	}
	defer devNull.Close()
	out := devNull
	if l.LogPath != "" {
		if out, err = openLog(l.LogPath); err != nil {
			return nil, err
		}
		defer out.Close()
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cloexecFrom3(); err != nil {
		return nil, fmt.Errorf("agent: start: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("agent: start %q: %w", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

// openLog opens the agent log for appending, creating it 0600.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: open log: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || int64(st.Uid) != int64(os.Getuid()) || fi.Mode().Perm()&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("agent: log %q must be a regular file of this user with mode 0600 (hint: chmod 600 %q)", path, path)
	}
	return f, nil
}

// cloexecFrom3 sets close-on-exec on every descriptor >= 3 of this process.
func cloexecFrom3() error {
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	// Before Linux 5.11: walk /proc/self/fd.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 3 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return err
		}
	}
	return nil
}

// probe reports nil if an agent answers the hello on path.
func probe(ctx context.Context, path string) error {
	c, err := DialContext(ctx, path)
	if err != nil {
		return err
	}
	return c.Close()
}

// lockWait takes an exclusive flock on path, polling until ctx ends.
func lockWait(ctx context.Context, path string) (func(), error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("agent: lock %q: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("agent: waiting for %q: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
