package agent

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Peer is the identity of the process at the other end of a connection, as
// the kernel recorded it when the connection was made (SO_PEERCRED).
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// SameUser is the default peer check: the peer must run as this process's
// real user id.
func SameUser(p Peer) error {
	if uid := os.Getuid(); int64(p.UID) != int64(uid) {
		return fmt.Errorf("agent: peer uid %d is not %d", p.UID, uid)
	}
	return nil
}

func peerCred(c *net.UnixConn) (Peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if serr != nil {
		return Peer{}, fmt.Errorf("agent: SO_PEERCRED: %w", serr)
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// fdReader reads the stream of a Unix connection with recvmsg and collects
// every file descriptor that arrives (SCM_RIGHTS). It reads no more than the
// caller asks for, so descriptors are attributed to the frame they came with.
type fdReader struct {
	c   *net.UnixConn
	oob []byte
	fds []int
	err error // sticky: truncated or malformed control data
}

func newFDReader(c *net.UnixConn) *fdReader {
	return &fdReader{c: c, oob: make([]byte, unix.CmsgSpace(MaxFiles*4))}
}

func (r *fdReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	// net.UnixConn.ReadMsgUnix passes MSG_CMSG_CLOEXEC on Linux, so received
	// descriptors are never inherited by a child of the agent.
	n, oobn, flags, _, err := r.c.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		if perr := r.collect(r.oob[:oobn]); perr != nil {
			r.err = perr
		}
	}
	if flags&unix.MSG_CTRUNC != 0 && r.err == nil {
		r.err = fmt.Errorf("%w: more than %d file descriptors", ErrFrame, MaxFiles)
	}
	if r.err != nil {
		return n, r.err
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (r *fdReader) collect(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("%w: control message: %w", ErrFrame, err)
	}
	var bad error
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			bad = fmt.Errorf("%w: unexpected control message", ErrFrame)
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			bad = fmt.Errorf("%w: SCM_RIGHTS: %w", ErrFrame, err)
			continue
		}
		r.fds = append(r.fds, fds...)
	}
	if len(r.fds) > MaxFiles {
		bad = fmt.Errorf("%w: more than %d file descriptors", ErrFrame, MaxFiles)
	}
	return bad
}

// take returns the descriptors collected so far as files and forgets them.
func (r *fdReader) take() []*os.File {
	if len(r.fds) == 0 {
		return nil
	}
	files := make([]*os.File, len(r.fds))
	for i, fd := range r.fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("agent-fd-%d", i))
	}
	r.fds = nil
	return files
}

// discard closes every collected descriptor.
func (r *fdReader) discard() {
	for _, fd := range r.fds {
		_ = unix.Close(fd)
	}
	r.fds = nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// writeWithFiles writes frame on c; files, if any, ride with its first byte.
func writeWithFiles(c *net.UnixConn, frame []byte, files []*os.File) error {
	if len(files) == 0 {
		_, err := c.Write(frame)
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("agent: file %d: %w", i, err)
		}
		if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return fmt.Errorf("agent: file %d: %w", i, err)
		}
	}
	n, _, err := c.WriteMsgUnix(frame, unix.UnixRights(fds...), nil)
	runtime.KeepAlive(files)
	if err != nil {
		return err
	}
	// A stream socket may take part of the frame; the rest follows without
	// control data.
	if n < len(frame) {
		_, err = c.Write(frame[n:])
	}
	return err
}
