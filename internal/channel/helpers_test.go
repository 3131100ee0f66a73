package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// testKeyPair returns the keys of the two ends of one connection: a.Send is
// b.Recv and the other way round. The bytes are fixed so failures repeat.
func testKeyPair() (a, b Keys) {
	for i := range KeySize {
		a.Send[i] = byte(0x10 + i)
		a.Recv[i] = byte(0x80 + i)
	}
	b.Send, b.Recv = a.Recv, a.Send
	return a, b
}

// memConn is a net.Conn whose reads come from r and whose writes go to w. It
// lets tests capture the exact bytes a Conn sends and feed a Conn exactly
// the bytes they built, with no goroutines and no timing.
type memConn struct {
	r      io.Reader
	w      io.Writer
	closed bool
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.closed {
		return 0, net.ErrClosed
	}
	if m.r == nil {
		return 0, io.EOF
	}
	return m.r.Read(p)
}

func (m *memConn) Write(p []byte) (int, error) {
	if m.closed {
		return 0, net.ErrClosed
	}
	if m.w == nil {
		return len(p), nil
	}
	return m.w.Write(p)
}

func (m *memConn) Close() error                     { m.closed = true; return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "mem", Net: "unix"} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "mem", Net: "unix"} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// recorder returns a Conn that writes into the returned buffer.
func recorder(t testing.TB, k Keys, opt Options) (*Conn, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	return New(&memConn{w: &buf}, k, opt), &buf
}

// player returns a Conn that reads stream.
func player(k Keys, opt Options, stream []byte) *Conn {
	return New(&memConn{r: bytes.NewReader(stream)}, k, opt)
}

// splitFrames cuts a recorded stream into its frames.
func splitFrames(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(stream) > 0 {
		_, _, n, err := decodeFrame(stream, DefaultMaxMessage+Overhead)
		if err != nil {
			t.Fatalf("splitting recorded frames: %v", err)
		}
		frames = append(frames, stream[:n:n])
		stream = stream[n:]
	}
	return frames
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// device is a test identity: an Ed25519 key that signs
// "safehold channel test proof" || role || binding, and a trust list.
// Production proofs live in internal/link; this one only has to be a real
// signature bound to the binding and the role.
type device struct {
	name    string
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	trusted map[string]bool // hex-free: string(pub)

	mu       sync.Mutex
	bindings [][]byte // every binding Prove was called with
}

func newDevice(name string, seed byte) *device {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return &device{name: name, priv: priv, pub: priv.Public().(ed25519.PublicKey), trusted: map[string]bool{}}
}

func (d *device) trust(peers ...*device) *device {
	for _, p := range peers {
		d.trusted[string(p.pub)] = true
	}
	return d
}

func proofMessage(role string, binding []byte) []byte {
	return append([]byte("safehold channel test proof\x00"+role+"\x00"), binding...)
}

// config returns the handshake config of d in role ("initiator" or
// "responder").
func (d *device) config(role string) HandshakeConfig {
	other := map[string]string{"initiator": "responder", "responder": "initiator"}[role]
	return HandshakeConfig{
		Prove: func(binding []byte) ([]byte, error) {
			d.mu.Lock()
			d.bindings = append(d.bindings, bytes.Clone(binding))
			d.mu.Unlock()
			sig := ed25519.Sign(d.priv, proofMessage(role, binding))
			return append(bytes.Clone(d.pub), sig...), nil
		},
		Verify: func(proof, binding []byte) error {
			if len(proof) != ed25519.PublicKeySize+ed25519.SignatureSize {
				return fmt.Errorf("proof has %d bytes", len(proof))
			}
			pub, sig := ed25519.PublicKey(proof[:ed25519.PublicKeySize]), proof[ed25519.PublicKeySize:]
			if !d.trusted[string(pub)] {
				return errTestUnknownKey
			}
			if !ed25519.Verify(pub, proofMessage(other, binding), sig) {
				return errTestBadSignature
			}
			return nil
		},
		Prologue: []byte("test prologue"),
	}
}

var (
	errTestUnknownKey   = errors.New("device key is not in the trust list")
	errTestBadSignature = errors.New("identity proof signature does not verify")
)

// handshakeResult is what one side of a handshake returned.
type handshakeResult struct {
	c   *Conn
	err error
}

// runHandshake runs Client on cn and Server on sn concurrently and returns
// both results. ctx guards against a hang in a broken build; no assertion
// depends on it.
func runHandshake(t testing.TB, cn, sn net.Conn, ccfg, scfg HandshakeConfig) (client, server handshakeResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := make(chan handshakeResult, 1)
	go func() {
		c, err := Server(ctx, sn, scfg)
		ch <- handshakeResult{c, err}
	}()
	c, err := Client(ctx, cn, ccfg)
	client = handshakeResult{c, err}
	server = <-ch
	for _, r := range []handshakeResult{client, server} {
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
	}
	return client, server
}

// mustHandshake runs a handshake that must succeed.
func mustHandshake(t testing.TB, cn, sn net.Conn, ccfg, scfg HandshakeConfig) (client, server *Conn) {
	t.Helper()
	c, s := runHandshake(t, cn, sn, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: client: %v; server: %v", c.err, s.err)
	}
	return c.c, s.c
}

// message returns a deterministic message i of n bytes.
func message(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7)
	}
	if n >= 4 {
		b[0], b[1], b[2], b[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	}
	return b
}

func bufioReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, readBufferSize) }

func hkdfExpand(t testing.TB, key []byte, info string, n int) []byte {
	t.Helper()
	out, err := hkdf.Expand(sha256.New, key, info, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// structBytes returns the memory of d itself (not what its pointers point
// to), to check that a wiped key is gone from it.
func structBytes(d *direction) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(d)), unsafe.Sizeof(*d))
}
