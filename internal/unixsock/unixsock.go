// Package unixsock makes a Unix socket that only its owner can reach: in a
// 0700 directory of the current user, born 0600 (bound under umask 0177),
// its mode and owner checked before it listens, a stale socket replaced
// and a live one refused. The unlock agent (internal/agent) and the SSH
// agent (internal/sshagent) both listen through it.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxPath is the longest socket path the kernel accepts
// (sizeof(sun_path) - 1 for the terminating NUL).
const MaxPath = 107

// Errors, matched with errors.Is.
var (
	// ErrPath means the path is unusable: not absolute, too long, or an
	// existing file that is not a socket.
	ErrPath = errors.New("bad socket path")
	// ErrInsecureDir means the socket's directory is not a 0700 directory
	// owned by the current user.
	ErrInsecureDir = errors.New("insecure socket directory")
	// ErrInUse means something answers on the socket already.
	ErrInUse = errors.New("socket in use")
)

// Listener is a listening socket. Close removes the socket file if it is
// still the one this listener made.
type Listener struct {
	ln       *net.UnixListener
	path     string
	dev, ino uint64
	once     sync.Once
	err      error
}

// CheckPath refuses a path that is not absolute or too long.
func CheckPath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: %q is not absolute", ErrPath, path)
	}
	if len(path) > MaxPath {
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrPath, path, MaxPath)
	}
	return nil
}

// Listen creates the socket at path, in this order:
//
//  1. the path must be absolute and short enough (CheckPath);
//  2. its directory must be a 0700 directory (no symlink) owned by the
//     current user; a missing one is created 0700 (EnsureDir);
//  3. an existing path is refused unless it is a socket; a socket that
//     accepts a connection is refused (ErrInUse), one that refuses is
//     removed as stale;
//  4. the socket is bound with the umask at 0177, so that it is born 0600;
//     its mode and owner are checked with lstat, and only then does it
//     listen.
//
// The umask is process-wide: call Listen before starting goroutines that
// create files.
func Listen(path string) (*Listener, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	if err := EnsureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
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
		return nil, fmt.Errorf("bind %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("stat new socket: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o7777 != 0o600 || int64(st.Uid) != int64(os.Getuid()) {
		os.Remove(path)
		return nil, fmt.Errorf("%w: new socket %q has mode %o uid %d, want 0600 and uid %d",
			ErrPath, path, st.Mode&0o7777, st.Uid, os.Getuid())
	}
	if err := unix.Listen(fd, 64); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fl, err := net.FileListener(f) // dups the descriptor
	f.Close()
	ok = true // f owned fd and closed it
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	return &Listener{ln: fl.(*net.UnixListener), path: path, dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// Path is the socket path.
func (l *Listener) Path() string { return l.path }

// Accept waits for the next connection.
func (l *Listener) Accept() (*net.UnixConn, error) { return l.ln.AcceptUnix() }

// Close stops listening and removes the socket file if it is still the one
// this listener made. Later calls do nothing and return the first result.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.err = l.ln.Close()
		var st unix.Stat_t
		if unix.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && uint64(st.Ino) == l.ino {
			os.Remove(l.path)
		}
	})
	return l.err
}

// EnsureDir makes dir a 0700 directory owned by the current user, creating
// it (and missing parents, also 0700) if needed, refusing it if it exists
// with any other mode or owner, or is a symlink.
func EnsureDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		// The umask may have removed bits: set the mode exactly.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("chmod socket directory: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %q is not a directory", ErrInsecureDir, dir)
	case !ok || int64(st.Uid) != int64(os.Getuid()):
		return fmt.Errorf("%w: %q is not owned by uid %d", ErrInsecureDir, dir, os.Getuid())
	case fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0o700:
		return fmt.Errorf("%w: %q has mode %o, want 0700 (chmod 700 it, or choose a socket in a private directory)", ErrInsecureDir, dir, fi.Mode().Perm())
	}
	return nil
}

// removeStale removes a socket at path that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %q: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %q exists and is not a socket", ErrPath, path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: something answers on %q", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probe %q: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	return nil
}
