package peerauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/peer"
	"github.com/safehold/safehold/internal/remote"
)

// Limits of a listener: a connection's handshake is bounded in time, so
// that a peer that connects and says nothing does not hold a slot, and in
// number, so that unauthenticated connections cannot exhaust memory or
// file descriptors (further connections wait in the kernel's backlog).
const (
	handshakeTimeout = 10 * time.Second
	maxHandshakes    = 32
	maxAcceptBackoff = time.Second
)

// Dial connects to the device listening at addr, proves this device's
// identity, checks the other's, and returns the connection as a remote.
func Dial(ctx context.Context, addr, selfID string, self Signer, trusted Trusted) (remote.Remote, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: reach the peer at %s: %v", remote.ErrUnavailable, addr, err)
	}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := channel.Client(hctx, nc, Config(RoleClient, selfID, self, trusted, nil))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	return peer.NewClient(conn), nil
}

// Session describes one served connection, for the listener's log.
type Session struct {
	Remote string // the peer's network address
	Device string // the peer's device id, once proven
	Err    error  // why the session ended, nil for an orderly end
}

// Serve accepts connections on ln until ctx ends: each must complete the
// handshake as a trusted device of the account, then is served from the
// remote backing returns. done hears about every session that ends. At
// most maxHandshakes handshakes run at once; an accept error other than
// the listener's closing is waited out, not fatal.
func Serve(ctx context.Context, ln net.Listener, selfID string, self Signer, trusted Trusted, backing func() (remote.Remote, error), done func(Session)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxHandshakes)
	var backoff time.Duration
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		nc, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Too many open files, a connection reset before accept...:
			// wait and go on, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Session{Remote: nc.RemoteAddr().String()}
			s.Err = serveOne(ctx, nc, selfID, self, trusted, backing, &s.Device, func() { <-slots })
			if done != nil {
				done(s)
			}
		}()
	}
}

// serveOne runs one connection; release frees its handshake slot once the
// handshake is over, whatever its outcome.
func serveOne(ctx context.Context, nc net.Conn, selfID string, self Signer, trusted Trusted, backing func() (remote.Remote, error), device *string, release func()) error {
	defer nc.Close()
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	conn, err := channel.Server(hctx, nc, Config(RoleServer, selfID, self, trusted, func(id string) { *device = id }))
	cancel()
	release()
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := backing()
	if err != nil {
		return err
	}
	defer r.Close()
	return peer.Serve(ctx, conn, r)
}
