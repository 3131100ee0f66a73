package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Discovery (docs/design.md §15.3): the waiting device answers UDP
// queries on DiscoveryPort; the new device asks on the loopback address and
// by broadcast. Queries and answers carry only the nameplate and a TCP
// port: nothing secret, and everything after it is authenticated by CPace.
const (
	DefaultDiscoveryPort = 47815
	queryPrefix          = "safehold-link-v1?"
	answerPrefix         = "safehold-link-v1!"
	maxDatagram          = 64
)

// ErrNotFound: no device answered for the nameplate.
var ErrNotFound = errors.New("no device on this network is waiting with that code")

// responder answers discovery queries for one nameplate until ctx ends.
func respond(ctx context.Context, port, nameplate, tcpPort int) (func(), error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// SO_REUSEPORT only (not SO_REUSEADDR): Linux lets only the
			// same user share the port, so another user cannot bind it
			// and answer in our place.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("listen for link discovery on UDP port %d: %w (set SAFE_LINK_PORT to use another port)", port, err)
	}
	want := queryPrefix + strconv.Itoa(nameplate)
	answer := []byte(answerPrefix + strconv.Itoa(nameplate) + " " + strconv.Itoa(tcpPort))
	go func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == want {
				pc.WriteTo(answer, from)
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	return func() { stop(); pc.Close() }, nil
}

// discover asks for nameplate on port until one device answers or ctx
// ends, and returns the address to connect to.
func discover(ctx context.Context, port, nameplate int) (string, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return "", fmt.Errorf("link discovery: %w", err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()
	query := []byte(queryPrefix + strconv.Itoa(nameplate))
	want := answerPrefix + strconv.Itoa(nameplate) + " "
	targets := []*net.UDPAddr{{IP: net.IPv4(127, 0, 0, 1), Port: port}, {IP: net.IPv4bcast, Port: port}}
	buf := make([]byte, maxDatagram)
	for {
		for _, t := range targets {
			pc.WriteTo(query, t) // a network without broadcast just drops it
		}
		pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return "", fmt.Errorf("%w (nameplate %d): check the code, and that `safe device link` is still waiting on a device of this network", ErrNotFound, nameplate)
				}
				break // resend
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, want) {
				continue
			}
			tcp, err := strconv.Atoi(msg[len(want):])
			if err != nil || tcp <= 0 || tcp > 65535 {
				continue
			}
			ua, ok := from.(*net.UDPAddr)
			if !ok {
				continue
			}
			return net.JoinHostPort(ua.IP.String(), strconv.Itoa(tcp)), nil
		}
	}
}
