package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/safehold/safehold/internal/unixsock"
)

// MaxSocketPath is the longest socket path the kernel accepts
// (sizeof(sun_path) - 1 for the terminating NUL).
const MaxSocketPath = unixsock.MaxPath

var (
	// ErrAgentRunning means another agent already serves the socket path.
	ErrAgentRunning = errors.New("agent: an agent is already running")
	// ErrInsecureDir means the socket's directory is not a 0700 directory
	// owned by the current user.
	ErrInsecureDir = unixsock.ErrInsecureDir
	// ErrSocketPath means the socket path is unusable (too long, or an
	// existing file that is not a socket).
	ErrSocketPath = unixsock.ErrPath
)

// Listener is the agent's listening socket. It holds an exclusive lock on
// path+".lock" for its lifetime, so at most one agent serves one path.
type Listener struct {
	sock *unixsock.Listener
	lock *os.File
}

// Listen creates the agent socket at path, in this order:
//
//  1. make sure the parent directory exists, is a directory (not a
//     symlink), has mode 0700 and belongs to the current user; create it
//     with mode 0700 if it does not exist, refuse otherwise;
//  2. take the exclusive lock path+".lock" (flock, non-blocking); if another
//     process holds it, return ErrAgentRunning;
//  3. create the socket with unixsock.Listen: a socket that answers at path
//     is ErrAgentRunning, a stale one is removed, the new one is born 0600
//     and checked before it listens.
//
// The umask is process-wide: Listen must be called before the agent starts
// other goroutines that create files. The agent is its own process, so this
// holds.
func Listen(path string) (*Listener, error) {
	if err := unixsock.CheckPath(path); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := unixsock.EnsureDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	lock, err := tryLock(path + ".lock")
	if err != nil {
		return nil, err
	}
	sock, err := unixsock.Listen(path)
	if err != nil {
		lock.Close()
		if errors.Is(err, unixsock.ErrInUse) {
			return nil, fmt.Errorf("%w: %w", ErrAgentRunning, err)
		}
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Listener{sock: sock, lock: lock}, nil
}

// Path returns the socket path.
func (l *Listener) Path() string { return l.sock.Path() }

// Close stops listening, removes the socket file if it is still the one this
// listener created, and releases the lock.
func (l *Listener) Close() error {
	err := l.sock.Close()
	if l.lock != nil {
		l.lock.Close() // releases the flock
		l.lock = nil
	}
	return err
}

func (l *Listener) accept() (*net.UnixConn, error) { return l.sock.Accept() }

// tryLock takes an exclusive flock on path without waiting.
func tryLock(path string) (*os.File, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %q is locked", ErrAgentRunning, path)
		}
		return nil, fmt.Errorf("agent: lock %q: %w", path, err)
	}
	return f, nil
}

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: open lock file: %w", err)
	}
	return f, nil
}
