package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxSocketPath is the longest socket path the kernel accepts
// (sizeof(sun_path) - 1 for the terminating NUL).
const MaxSocketPath = 107

var (
	// ErrAgentRunning means another agent already serves the socket path.
	ErrAgentRunning = errors.New("agent: an agent is already running")
	// ErrInsecureDir means the socket's directory is not a 0700 directory
	// owned by the current user.
	ErrInsecureDir = errors.New("agent: insecure socket directory")
	// ErrSocketPath means the socket path is unusable (too long, or an
	// existing file that is not a socket).
	ErrSocketPath = errors.New("agent: bad socket path")
)

// Listener is the agent's listening socket. It holds an exclusive lock on
// path+".lock" for its lifetime, so at most one agent serves one path.
type Listener struct {
	ln   *net.UnixListener
	path string
	lock *os.File
	dev  uint64
	ino  uint64
}

// Listen creates the agent socket at path, in this order:
//
//  1. make sure the parent directory exists, is a directory (not a
//     symlink), has mode 0700 and belongs to the current user; create it
//     with mode 0700 if it does not exist, refuse otherwise;
//  2. take the exclusive lock path+".lock" (flock, non-blocking); if another
//     process holds it, return ErrAgentRunning;
//  3. if something exists at path: refuse unless it is a socket; if a
//     connection to it succeeds, return ErrAgentRunning; else remove it as
//     stale;
//  4. create the socket, bind it with the process umask set to 0177 so the
//     file is created with mode 0600, restore the umask, verify the mode and
//     owner with lstat, and only then listen.
//
// The umask is process-wide: Listen must be called before the agent starts
// other goroutines that create files. The agent is its own process, so this
// holds.
func Listen(path string) (*Listener, error) {
	if len(path) > MaxSocketPath {
		return nil, fmt.Errorf("%w: %q is longer than %d bytes", ErrSocketPath, path, MaxSocketPath)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: %q is not absolute", ErrSocketPath, path)
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	lock, err := tryLock(path + ".lock")
	if err != nil {
		return nil, err
	}
	l, err := listenLocked(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.lock = lock
	return l, nil
}

func listenLocked(path string) (*Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("agent: socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("agent: bind %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("agent: stat new socket: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o7777 != 0o600 || int64(st.Uid) != int64(os.Getuid()) {
		os.Remove(path)
		return nil, fmt.Errorf("%w: new socket %q has mode %o uid %d, want 0600 and %d",
			ErrSocketPath, path, st.Mode&0o7777, st.Uid, os.Getuid())
	}
	if err := unix.Listen(fd, 64); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("agent: listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	fl, err := net.FileListener(f) // dups the descriptor
	f.Close()
	ok = true // f owns fd now and has closed it
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("agent: listener: %w", err)
	}
	return &Listener{ln: fl.(*net.UnixListener), path: path, dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// Path returns the socket path.
func (l *Listener) Path() string { return l.path }

// Close stops listening, removes the socket file if it is still the one this
// listener created, and releases the lock.
func (l *Listener) Close() error {
	err := l.ln.Close()
	var st unix.Stat_t
	if unix.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && uint64(st.Ino) == l.ino {
		os.Remove(l.path)
	}
	if l.lock != nil {
		l.lock.Close() // releases the flock
		l.lock = nil
	}
	return err
}

func (l *Listener) accept() (*net.UnixConn, error) { return l.ln.AcceptUnix() }

// ensureDir makes dir a 0700 directory owned by the current user, creating
// it (and missing parents, also 0700) if needed, refusing if it exists with
// any other mode or owner.
func ensureDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("agent: create socket directory: %w", err)
		}
		// The umask may have removed bits: set the mode exactly.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("agent: chmod socket directory: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("agent: socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %q is not a directory", ErrInsecureDir, dir)
	case !ok || int64(st.Uid) != int64(os.Getuid()):
		return fmt.Errorf("%w: %q is not owned by uid %d", ErrInsecureDir, dir, os.Getuid())
	case fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0o700:
		return fmt.Errorf("%w: %q has mode %o, want 0700 (hint: chmod 700 %q)", ErrInsecureDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

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

// removeStale removes a socket at path that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: stat %q: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %q exists and is not a socket", ErrSocketPath, path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: something answers on %q", ErrAgentRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("agent: probe %q: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent: remove stale socket: %w", err)
	}
	return nil
}
