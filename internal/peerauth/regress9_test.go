package peerauth

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/peer"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
)

// TestRegress9ListenerRefusesPeerClaimingItsOwnID: §16.2 says a side
// accepts a proof only if the device is "not its own id". On the listening
// side Verify runs before Prove (the responder verifies first), so the
// `own` id that peerauth.Config records in Prove is still empty and the
// check never fires: a client holding this device's key (a copied vault
// file, a restored backup running elsewhere) that claims the listener's own
// id gets through the handshake and is served.
//
// The dialler here is hand-built on channel.Client so that it does not
// refuse the listener's proof itself (peerauth's client-side check does
// work, because the initiator proves first).
func TestRegress9ListenerRefusesPeerClaimingItsOwnID(t *testing.T) {
	srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
	l := listen(t, srv, trustOf(srv, cli), t.TempDir())

	nc, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	clone := srv.signer() // the listener's own id and key
	cfg := channel.HandshakeConfig{
		Prologue: []byte("safehold peer v1"),
		Options:  channel.Options{MaxMessage: peer.MaxMessage},
		Prove: func(binding []byte) ([]byte, error) {
			id, sig, err := clone(RoleClient, binding)
			if err != nil {
				return nil, err
			}
			return jsonProof(id, sig), nil
		},
		Verify: func(_, _ []byte) error { return nil },
	}
	conn, err := channel.Client(context.Background(), nc, cfg)
	if err == nil {
		c := peer.NewClient(conn)
		_, verr := c.Vaults(context.Background())
		c.Close()
		s := <-l.sessions
		if verr == nil {
			t.Fatalf("the listener served a peer that claims the listener's own device id %q (session %+v); want the handshake refused with ErrUntrusted", srv.id, s)
		}
		if !errors.Is(s.Err, ErrUntrusted) {
			t.Fatalf("listener's session = %+v, want ErrUntrusted (the peer claims to be this device)", s)
		}
		return
	}
	if s := <-l.sessions; !errors.Is(s.Err, ErrUntrusted) {
		t.Fatalf("listener's session = %+v, want ErrUntrusted", s)
	}
}

func jsonProof(id string, sig []byte) []byte {
	raw, err := json.Marshal(proof{Device: id, Sig: sig})
	if err != nil {
		panic(err)
	}
	return raw
}

// fakeListener hands out the connections pushed into conns; after errOnce
// is set its next Accept returns that error instead.
type fakeListener struct {
	conns   chan net.Conn
	errOnce atomic.Pointer[error]
	closed  chan struct{}
	once    sync.Once
	accepts atomic.Int64
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.accepts.Add(1)
	if p := f.errOnce.Swap(nil); p != nil {
		return nil, *p
	}
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeListener) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7479} }

// TestRegress9ListenerSurvivesTransientAcceptError: an accept that fails
// with EMFILE (too many open files) is not a net.Error timeout, so
// peerauth.Serve returns and `safe peer listen` stops serving. Any host on
// the network can cause it by opening enough connections (each
// unauthenticated one is kept for up to handshakeTimeout). Serve must back
// off and keep accepting, as net/http does for temporary accept errors.
func TestRegress9ListenerSurvivesTransientAcceptError(t *testing.T) {
	srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
	ln := newFakeListener()
	emfile := error(&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)})
	ln.errOnce.Store(&emfile)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, srv.id, srv.signer(), trustOf(srv, cli).list, func() (remote.Remote, error) { return folder.Open(dir) }, nil)
	}()
	// A real peer after the failed accept must still be served.
	a, b := net.Pipe()
	select {
	case ln.conns <- b:
	case err := <-served:
		t.Fatalf("Serve stopped after one EMFILE from accept: %v; it must keep listening", err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer hcancel()
	conn, err := channel.Client(hctx, a, Config(RoleClient, cli.id, cli.signer(), trustOf(srv).list, nil))
	if err != nil {
		t.Fatalf("handshake after a transient accept error: %v", err)
	}
	conn.Close()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v after cancel, want nil", err)
	}
}

// stallConn is one end of a pipe that never sends; it counts reads that
// are blocked on it.
type stallConn struct {
	net.Conn
	reading *atomic.Int64
	state   chan string // "reading" once a read is blocked, "closed" on close
	once    sync.Once
}

func (s *stallConn) Read(p []byte) (int, error) {
	s.reading.Add(1)
	defer s.reading.Add(-1)
	s.once.Do(func() { s.state <- "reading" })
	return s.Conn.Read(p)
}

func (s *stallConn) Close() error {
	s.once.Do(func() { s.state <- "closed" })
	return s.Conn.Close()
}

// TestRegress9ListenerBoundsUnauthenticatedConnections: peerauth.Serve
// starts a goroutine, a 64 KiB read buffer, Noise and ML-KEM state for
// every accepted connection, with no limit, and keeps each for up to
// handshakeTimeout (10 s) while the peer says nothing. Anyone who can
// reach the port holds unbounded memory and file descriptors (and with
// EMFILE, see above, stops the listener). The listener must bound the
// handshakes in progress (and ideally per remote address).
func TestRegress9ListenerBoundsUnauthenticatedConnections(t *testing.T) {
	const stalled = 300
	const bound = 128 // generous: any sane limit is below it
	srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
	ln := newFakeListener()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, srv.id, srv.signer(), trustOf(srv, cli).list, func() (remote.Remote, error) { return nil, errors.New("unused") }, nil)
	}()
	defer func() {
		cancel()
		<-served
	}()
	var reading atomic.Int64
	states := make(chan string, stalled)
	var ends []net.Conn
	defer func() {
		for _, c := range ends {
			c.Close()
		}
	}()
	pushed := 0
push:
	for ; pushed < stalled; pushed++ {
		a, b := net.Pipe()
		ends = append(ends, a)
		sc := &stallConn{Conn: b, reading: &reading, state: states}
		select {
		case ln.conns <- sc:
		case <-time.After(2 * time.Second):
			// The listener stopped accepting: it bounds pending
			// connections by not accepting more. That is a fix.
			break push
		}
	}
	// Wait until every accepted connection is either being read by a
	// handshake or was closed by the listener (a listener that queues
	// accepted connections without reading them reports neither: stop
	// waiting once nothing happens for a while).
	for got := 0; got < pushed; got++ {
		select {
		case <-states:
		case <-time.After(5 * time.Second):
			got = pushed
		}
	}
	if n := reading.Load(); n > bound {
		t.Fatalf("%d connections that never sent a byte are held in handshakes at once (all %d accepted); the listener must bound unauthenticated connections (at most %d here)", n, pushed, bound)
	}
}
