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

// handshakeTimeout bounds a connection's handshake, so that a peer that
// connects and says nothing does not hold a slot.
const handshakeTimeout = 10 * time.Second

// Dial connects to the device listening at addr, proves this device's
// identity, checks the other's, and returns the connection as a remote.
func Dial(ctx context.Context, addr string, self Signer, trusted Trusted) (remote.Remote, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: reach the peer at %s: %v", remote.ErrUnavailable, addr, err)
	}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := channel.Client(hctx, nc, Config(RoleClient, self, trusted, nil))
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
// remote backing returns. done hears about every session that ends.
func Serve(ctx context.Context, ln net.Listener, self Signer, trusted Trusted, backing func() (remote.Remote, error), done func(Session)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept peers: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Session{Remote: nc.RemoteAddr().String()}
			s.Err = serveOne(ctx, nc, self, trusted, backing, &s.Device)
			if done != nil {
				done(s)
			}
		}()
	}
}

func serveOne(ctx context.Context, nc net.Conn, self Signer, trusted Trusted, backing func() (remote.Remote, error), device *string) error {
	defer nc.Close()
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	conn, err := channel.Server(hctx, nc, Config(RoleServer, self, trusted, func(id string) { *device = id }))
	cancel()
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
