package channel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/random"
)

// trustedPair returns two devices that trust each other.
func trustedPair() (alice, bob *device) {
	alice, bob = newDevice("alice", 1), newDevice("bob", 2)
	alice.trust(bob)
	bob.trust(alice)
	return alice, bob
}

func TestHandshakeAndTrafficTCP(t *testing.T) {
	alice, bob := trustedPair()
	cn, sn := tcpPair(t)
	c, s := mustHandshake(t, cn, sn, alice.config("initiator"), bob.config("responder"))

	// Both ends share the binding, and it is what each Prove was given.
	if len(c.Binding()) != 32 || !bytes.Equal(c.Binding(), s.Binding()) {
		t.Fatalf("bindings differ: %x vs %x", c.Binding(), s.Binding())
	}
	if len(alice.bindings) != 1 || len(bob.bindings) != 1 ||
		!bytes.Equal(alice.bindings[0], bob.bindings[0]) || !bytes.Equal(alice.bindings[0], c.Binding()) {
		t.Fatal("Prove did not get the same binding on both sides")
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if err := c.WriteMessage(message(i, 1000*i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 50 {
		got, err := s.ReadMessage()
		if err != nil || !bytes.Equal(got, message(i, 1000*i)) {
			t.Fatalf("client to server %d: %v", i, err)
		}
		if err := s.WriteMessage(got[:min(len(got), 10)]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i := range 50 {
		got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, message(i, 1000*i)[:min(1000*i, 10)]) {
			t.Fatalf("server to client %d: %v", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage(); err != io.EOF {
		t.Fatalf("after the client closed: got %v, want io.EOF", err)
	}
}

func TestHandshakePipeWithRekeys(t *testing.T) {
	alice, bob := trustedPair()
	cn, sn := net.Pipe()
	ccfg, scfg := alice.config("initiator"), bob.config("responder")
	ccfg.Options = Options{RekeyMessages: 2}
	scfg.Options = Options{RekeyMessages: 2}
	c, s := mustHandshake(t, cn, sn, ccfg, scfg)
	go func() {
		for i := range 10 {
			c.WriteMessage(message(i, 33))
		}
	}()
	for i := range 10 {
		if got, err := s.ReadMessage(); err != nil || !bytes.Equal(got, message(i, 33)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if s.recv.rekeys == 0 {
		t.Fatal("no rekey happened")
	}
	// net.Pipe is synchronous: the close frame needs a reader.
	eof := make(chan error, 1)
	go func() { _, err := c.ReadMessage(); eof <- err }()
	s.Close()
	if err := <-eof; err != io.EOF {
		t.Fatalf("after the server closed: got %v, want io.EOF", err)
	}
}

func TestServerRefusesUntrustedClient(t *testing.T) {
	alice, bob := trustedPair()
	mallory := newDevice("mallory", 9).trust(bob) // trusts bob, but bob does not trust mallory
	_ = alice
	cn, sn := tcpPair(t)
	c, s := runHandshake(t, cn, sn, mallory.config("initiator"), bob.config("responder"))
	if !errors.Is(s.err, ErrUntrusted) || !errors.Is(s.err, errTestUnknownKey) {
		t.Fatalf("server: got %v, want ErrUntrusted wrapping the Verify error", s.err)
	}
	if !strings.Contains(s.err.Error(), "not trusted") {
		t.Fatalf("server error does not say the key is not trusted: %v", s.err)
	}
	if !errors.Is(c.err, ErrRefused) {
		t.Fatalf("client: got %v, want ErrRefused", c.err)
	}
	if c.c != nil || s.c != nil {
		t.Fatal("a refused handshake returned a connection")
	}
	// The server never sent its proof, so the untrusted client learned
	// nothing about the server's identity.
	if len(bob.bindings) != 0 {
		t.Fatal("the server made its identity proof for an untrusted client")
	}
}

func TestClientRefusesUntrustedServer(t *testing.T) {
	alice, _ := trustedPair()
	mallory := newDevice("mallory", 9).trust(alice) // claims to be a server alice knows
	cn, sn := tcpPair(t)
	c, s := runHandshake(t, cn, sn, alice.config("initiator"), mallory.config("responder"))
	if !errors.Is(c.err, ErrUntrusted) || !errors.Is(c.err, errTestUnknownKey) {
		t.Fatalf("client: got %v, want ErrUntrusted", c.err)
	}
	// The server's handshake completed before the client's verdict; its
	// first read reports the refusal.
	if s.err != nil {
		t.Fatalf("server: %v", s.err)
	}
	if _, err := s.c.ReadMessage(); !errors.Is(err, ErrRefused) {
		t.Fatalf("server read: got %v, want ErrRefused", err)
	}
}

func TestReflectedProofRefused(t *testing.T) {
	// A device that trusts its own key (a misconfigured trust list) is
	// still safe from a server that sends the client's proof back.
	alice := newDevice("alice", 1)
	alice.trust(alice)
	mallory := newDevice("mallory", 9)
	ccfg := alice.config("initiator")
	ccfg.Verify = func(proof, binding []byte) error { return nil } // trusts anything
	var seen []byte
	scfg := mallory.config("responder")
	scfg.Verify = func(proof, binding []byte) error { seen = bytes.Clone(proof); return nil }
	scfg.Prove = func(binding []byte) ([]byte, error) { return seen, nil }
	cn, sn := tcpPair(t)
	c, _ := runHandshake(t, cn, sn, ccfg, scfg)
	if !errors.Is(c.err, ErrUntrusted) || !strings.Contains(c.err.Error(), "reflection") {
		t.Fatalf("client: got %v, want ErrUntrusted (reflection)", c.err)
	}
}

// tamperProxy copies bytes between two pipes and flips the byte at offset
// flip (counted from the start of the stream) in the direction it is set
// for. Negative offsets mean no flip.
func tamperProxy(a, b net.Conn, flipAtoB, flipBtoA int) {
	cp := func(dst, src net.Conn, flip int) {
		buf := make([]byte, 4096)
		off := 0
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if flip >= off && flip < off+n {
					buf[flip-off] ^= 0x01
				}
				off += n
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close()
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go cp(b, a, flipAtoB)
	go cp(a, b, flipBtoA)
}

func TestTamperedHandshakeFailsBothSides(t *testing.T) {
	const (
		msg1Start = 0
		msg2Start = 0
		msg3Start = 2 + msg1Size
	)
	cases := []struct {
		name       string
		c2s, s2c   int
		wantServer error
	}{
		{"msg1 length prefix", msg1Start, -1, ErrHandshake},
		{"msg1 ephemeral key", msg1Start + 2 + 5, -1, ErrHandshake},
		{"msg1 ml-kem encapsulation key", msg1Start + 2 + 32 + 500, -1, ErrHandshake},
		{"msg2 ephemeral key", -1, msg2Start + 2 + 3, nil},
		{"msg2 encrypted static", -1, msg2Start + 2 + 32 + 10, nil},
		{"msg2 ml-kem ciphertext", -1, msg2Start + 2 + 80 + 700, nil},
		{"msg3 encrypted static", msg3Start + 2 + 1, -1, ErrHandshake},
		{"msg3 tag", msg3Start + 2 + msg3Size - 1, -1, ErrHandshake},
		{"client proof frame", msg3Start + 2 + msg3Size + HeaderSize + 4, -1, ErrTampered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := trustedPair()
			cn, cp := net.Pipe()
			sp, sn := net.Pipe()
			tamperProxy(cp, sp, tc.c2s, tc.s2c)
			c, s := runHandshake(t, cn, sn, alice.config("initiator"), bob.config("responder"))
			if c.err == nil || s.err == nil {
				t.Fatalf("a tampered handshake succeeded: client %v, server %v", c.err, s.err)
			}
			if tc.wantServer != nil && !errors.Is(s.err, tc.wantServer) {
				t.Fatalf("server: got %v, want %v", s.err, tc.wantServer)
			}
			if tc.s2c >= 0 && !errors.Is(c.err, ErrHandshake) {
				t.Fatalf("client: got %v, want ErrHandshake", c.err)
			}
		})
	}
}

// TestManInTheMiddleRelayingProofs is the attack the proofs exist for:
// mallory runs one handshake with the client and another with the server
// and relays the identity proofs between them. Each proof is bound to the
// handshake hash of the leg it was made for, so it does not verify on the
// other leg.
func TestManInTheMiddleRelayingProofs(t *testing.T) {
	alice, bob := trustedPair()
	cn, m1 := net.Pipe() // alice <-> mallory
	m2, sn := net.Pipe() // mallory <-> bob

	clientProof := make(chan []byte, 1)
	serverProof := make(chan []byte, 1)
	// Mallory, server to alice: accepts alice's proof and forwards it; her
	// own proof is whatever bob sends.
	mServer := HandshakeConfig{
		Prologue: []byte("test prologue"),
		Verify:   func(proof, _ []byte) error { clientProof <- bytes.Clone(proof); return nil },
		Prove: func([]byte) ([]byte, error) {
			p, ok := <-serverProof
			if !ok {
				return nil, errors.New("no proof to relay")
			}
			return p, nil
		},
	}
	// Mallory, client to bob: proves with alice's relayed proof.
	mClient := HandshakeConfig{
		Prologue: []byte("test prologue"),
		Prove:    func([]byte) ([]byte, error) { return <-clientProof, nil },
		Verify:   func(proof, _ []byte) error { serverProof <- bytes.Clone(proof); return nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results := make(chan error, 3)
	go func() { _, err := Server(ctx, m1, mServer); results <- err }()
	go func() {
		_, err := Client(ctx, m2, mClient)
		close(serverProof) // bob refused: nothing to relay
		results <- err
	}()
	var bobErr error
	go func() { _, bobErr = Server(ctx, sn, bob.config("responder")); results <- bobErr }()
	_, aliceErr := Client(ctx, cn, alice.config("initiator"))
	for range 3 {
		<-results
	}
	if !errors.Is(bobErr, ErrUntrusted) || !errors.Is(bobErr, errTestBadSignature) {
		t.Fatalf("bob: got %v, want ErrUntrusted (bad signature)", bobErr)
	}
	if aliceErr == nil {
		t.Fatal("alice completed a handshake through a man in the middle")
	}
}

func TestPrologueMismatchFails(t *testing.T) {
	alice, bob := trustedPair()
	ccfg, scfg := alice.config("initiator"), bob.config("responder")
	scfg.Prologue = []byte("another context")
	cn, sn := tcpPair(t)
	c, s := runHandshake(t, cn, sn, ccfg, scfg)
	if !errors.Is(c.err, ErrHandshake) || s.err == nil {
		t.Fatalf("client %v, server %v; want both to fail", c.err, s.err)
	}
}

func TestHandshakeHonoursContext(t *testing.T) {
	_, bob := trustedPair()

	// Cancelled while waiting for a client that never speaks.
	_, sn := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := Server(ctx, sn, bob.config("responder")); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v, want context.Canceled", err)
	}

	// A deadline that has passed.
	cn, _ := net.Pipe()
	ctx, cancel = context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	if _, err := Client(ctx, cn, bob.config("initiator")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired: got %v, want context.DeadlineExceeded", err)
	}
	// nc is closed on failure.
	if _, err := cn.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("nc after a failed handshake: %v", err)
	}
}

func TestHandshakeRefusesWrongSizesBeforeReading(t *testing.T) {
	_, bob := trustedPair()
	for _, n := range []uint16{0, msg1Size - 1, msg1Size + 1, 0xFFFF} {
		cn, sn := net.Pipe()
		go func() {
			var l [2]byte
			binary.BigEndian.PutUint16(l[:], n)
			cn.Write(l[:]) // and nothing else: a server that waited for the body would hang
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := Server(ctx, sn, bob.config("responder"))
		expired := ctx.Err()
		cancel()
		if !errors.Is(err, ErrHandshake) || expired != nil {
			t.Fatalf("length %d: got %v, want ErrHandshake at once", n, err)
		}
		cn.Close()
	}
}

func TestHandshakeRefusesInvalidMLKEMKey(t *testing.T) {
	_, bob := trustedPair()
	cn, sn := net.Pipe()
	go func() {
		msg := make([]byte, 2+msg1Size)
		binary.BigEndian.PutUint16(msg, msg1Size)
		for i := 2; i < len(msg); i++ {
			msg[i] = 0xFF // coefficients 4095 > q: not a valid encapsulation key
		}
		cn.Write(msg)
	}()
	_, err := Server(context.Background(), sn, bob.config("responder"))
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "ML-KEM") {
		t.Fatalf("got %v, want ErrHandshake about the ML-KEM key", err)
	}
}

func TestProofBounds(t *testing.T) {
	alice, bob := trustedPair()
	for _, size := range []int{0, MaxProof + 1} {
		ccfg := alice.config("initiator")
		ccfg.Prove = func([]byte) ([]byte, error) { return make([]byte, size), nil }
		cn, sn := tcpPair(t)
		c, s := runHandshake(t, cn, sn, ccfg, bob.config("responder"))
		if !errors.Is(c.err, ErrTooLarge) || s.err == nil {
			t.Fatalf("proof of %d bytes: client %v, server %v", size, c.err, s.err)
		}
	}
	// A proof of exactly MaxProof bytes is carried (and then refused by
	// Verify, since it is not a signature).
	ccfg := alice.config("initiator")
	ccfg.Prove = func([]byte) ([]byte, error) { return make([]byte, MaxProof), nil }
	cn, sn := tcpPair(t)
	_, s := runHandshake(t, cn, sn, ccfg, bob.config("responder"))
	if !errors.Is(s.err, ErrUntrusted) {
		t.Fatalf("MaxProof-byte proof: server %v, want ErrUntrusted from Verify", s.err)
	}
}

func TestHandshakeConfigChecked(t *testing.T) {
	alice, _ := trustedPair()
	for name, mod := range map[string]func(*HandshakeConfig){
		"no Prove":      func(c *HandshakeConfig) { c.Prove = nil },
		"no Verify":     func(c *HandshakeConfig) { c.Verify = nil },
		"long prologue": func(c *HandshakeConfig) { c.Prologue = make([]byte, MaxPrologue+1) },
		"bad options":   func(c *HandshakeConfig) { c.Options.MaxMessage = -5 },
	} {
		cfg := alice.config("initiator")
		mod(&cfg)
		cn, _ := net.Pipe()
		if _, err := Client(context.Background(), cn, cfg); err == nil {
			t.Errorf("%s: handshake started", name)
		}
	}
}

func TestDataBeforeProofRefused(t *testing.T) {
	alice, bob := trustedPair()
	cn, sn := net.Pipe()
	errc := make(chan error, 1)
	go func() { _, err := Server(context.Background(), sn, bob.config("responder")); errc <- err }()
	// A client that completes Noise but sends data instead of its proof.
	br := bufioReader(cn)
	keys, binding, err := initiate(br, cn, prologue(alice.config("initiator").Prologue), random.NewDeterministic([]byte("sneaky")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newConn(cn, br, &keys, Options{}, binding, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	go c.WriteMessage([]byte("let me in"))
	if err := <-errc; !errors.Is(err, ErrProtocol) {
		t.Fatalf("server: got %v, want ErrProtocol", err)
	}
	if len(bob.bindings) != 0 {
		t.Fatal("the server proved its identity to a client that never proved its own")
	}
}
