package sshagent

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"
)

// MaxConns bounds the connections served at once; more wait in the
// listen queue.
const MaxConns = 64

// Serve answers agent requests on l until ctx is cancelled, then closes
// the listener (removing the socket) and every connection, and returns
// nil. Each connection is served on its own goroutine; a connection from a
// process of another user (SO_PEERCRED) is closed unanswered. Protocol
// payloads are never logged.
func Serve(ctx context.Context, l *Listener, a *Agent) error {
	var (
		mu    sync.Mutex
		conns = map[*net.UnixConn]bool{}
		wg    sync.WaitGroup
		slots = make(chan struct{}, MaxConns)
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	var err error
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		c, aerr := l.Accept()
		if aerr != nil {
			<-slots
			if ctx.Err() == nil && !errors.Is(aerr, net.ErrClosed) {
				err = aerr
			}
			break
		}
		if uid, ok := peerUID(c); !ok || int64(uid) != int64(os.Getuid()) {
			if ok {
				a.logf("closed a connection from uid %d (not this user)", uid)
			} else {
				a.logf("closed a connection whose peer is unknown (SO_PEERCRED failed)")
			}
			c.Close()
			<-slots
			continue
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent.ServeAgent(a, c) // returns at EOF or on a malformed frame
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			<-slots
		}()
	}
	stop()
	l.Close()
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

func peerUID(c *net.UnixConn) (uint32, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || serr != nil {
		return 0, false
	}
	return cred.Uid, true
}
