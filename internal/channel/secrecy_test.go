package channel

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/flynn/noise"

	"github.com/safehold/safehold/internal/random"
)

// What these tests can and cannot show about erasure in Go.
//
// They show that every buffer this package owns that held a handshake
// secret (the X25519 ephemeral and static private keys inside Noise's
// state, the ML-KEM seed and shared secret, the Noise split keys, the HKDF
// input and output, the direction keys handed to the connection) is zero
// when the handshake returns, and that the objects whose secret fields are
// unexported and therefore cannot be wiped (Noise's HandshakeState with its
// chaining key, the two Noise CipherStates, the ML-KEM DecapsulationKey768
// with its expanded key) are unreachable: the garbage collector frees them.
//
// They cannot show that freed memory is overwritten: Go zeroes memory when
// it is reused, not when it is freed, and the runtime may have copied a
// value before it was wiped (stack growth moves stacks; the standard
// library's X25519 and HKDF use stack temporaries we cannot reach). Go
// 1.26's experimental runtime/secret (GOEXPERIMENT=runtimesecret) would let
// the key computation run in secret.Do, which erases registers and stacks
// and heap allocations once unreachable; it is not used here because it is
// experimental. Forward secrecy therefore rests on what we can guarantee:
// nothing reachable from a live connection, or from anything else this
// process keeps, lets an attacker recompute past session keys, and the
// long-term secrets alone do not either (TestForwardSecrecy).

func TestHandshakeErasesEphemeralSecrets(t *testing.T) {
	alice, bob := trustedPair()
	var mu sync.Mutex
	notes := map[string]*erasureNote{}
	hook := func(side string) *testHooks {
		return &testHooks{erasure: func(n *erasureNote) { mu.Lock(); notes[side] = n; mu.Unlock() }}
	}
	ccfg, scfg := alice.config("initiator"), bob.config("responder")
	ccfg.hooks, scfg.hooks = hook("client"), hook("server")
	cn, sn := tcpPair(t)
	c, s := mustHandshake(t, cn, sn, ccfg, scfg)

	common := []string{
		"noise ephemeral private key", "noise static private key", "ml-kem shared secret",
		"noise split key i2r", "noise split key r2i", "hkdf input", "hkdf output",
		"direction keys (send)", "direction keys (recv)",
	}
	wantWiped := map[string][]string{
		"client": append(slices.Clone(common), "ml-kem seed"),
		"server": common,
	}
	wantDropped := map[string][]string{
		"client": {"ml-kem decapsulation key", "noise cipher state i2r", "noise cipher state r2i", "noise handshake state"},
		"server": {"noise cipher state i2r", "noise cipher state r2i", "noise handshake state"},
	}
	for side, n := range notes {
		var names []string
		for name, b := range n.wiped {
			names = append(names, name)
			if len(b) == 0 {
				t.Errorf("%s: %s: empty buffer reported", side, name)
			}
			if !isZero(b) {
				t.Errorf("%s: %s is not wiped", side, name)
			}
		}
		sort.Strings(names)
		want := slices.Sorted(slices.Values(wantWiped[side]))
		if !slices.Equal(names, want) {
			t.Errorf("%s wiped %q, want %q", side, names, want)
		}
		var dropped []string
		for name := range n.collected {
			dropped = append(dropped, name)
		}
		sort.Strings(dropped)
		if !slices.Equal(dropped, wantDropped[side]) {
			t.Errorf("%s dropped %q, want %q", side, dropped, wantDropped[side])
		}
	}
	if len(notes) != 2 {
		t.Fatalf("erasure reported by %d sides", len(notes))
	}

	// The unwipeable objects are unreachable: a full collection frees
	// them. (runtime.GC blocks until the cycle, sweep included, is done;
	// the loop only absorbs objects that a finalizer-free runtime may keep
	// for one extra cycle.)
	for side, n := range notes {
		for name, freed := range n.collected {
			for i := 0; i < 5 && !freed(); i++ {
				runtime.GC()
			}
			if !freed() {
				t.Errorf("%s: %s is still reachable after the handshake", side, name)
			}
		}
	}

	// The connection does not need any of it.
	go c.WriteMessage([]byte("after erasure"))
	if got, err := s.ReadMessage(); err != nil || string(got) != "after erasure" {
		t.Fatalf("traffic after erasure: %q, %v", got, err)
	}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// tapConn records every byte written through it.
type tapConn struct {
	net.Conn
	mu    sync.Mutex
	wrote bytes.Buffer
}

func (t *tapConn) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.wrote.Write(p)
	t.mu.Unlock()
	return t.Conn.Write(p)
}

func (t *tapConn) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.wrote.Bytes())
}

// staticKey returns a fixed Noise static key pair: a device's long-term
// Noise key, in the scenario where the attacker steals it.
func staticKey(t testing.TB, label string) *noise.DHKey {
	k, err := noise.DH25519.GenerateKeypair(random.NewDeterministic([]byte(label)))
	if err != nil {
		t.Fatal(err)
	}
	return &k
}

// openRecorded plays the frames of a recorded client-to-server stream (the
// handshake messages already removed) to a receiver holding keys, and
// returns the messages it could open.
func openRecorded(keys Keys, frames []byte) ([]string, error) {
	rx := player(Keys{Send: keys.Recv, Recv: keys.Send}, Options{}, frames)
	if _, err := rx.readProof(); err != nil {
		return nil, err
	}
	var got []string
	for {
		m, err := rx.ReadMessage()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(m))
	}
}

// TestForwardSecrecy records a session and shows that an attacker holding
// every long-term secret of both devices (their identity signing keys,
// which make the proofs, and their Noise static private keys) cannot open
// it: the session keys depend on the ephemeral X25519 and ML-KEM secrets,
// which the handshake wiped (TestHandshakeErasesEphemeralSecrets). A
// control run shows that those ephemerals, and nothing more, are what the
// attacker lacks.
func TestForwardSecrecy(t *testing.T) {
	alice, bob := trustedPair()
	staticA, staticB := staticKey(t, "alice noise static"), staticKey(t, "bob noise static")
	const clientSeed = "alice's randomness for session 1"

	// The recorded session.
	var session Keys
	ccfg, scfg := alice.config("initiator"), bob.config("responder")
	ccfg.hooks = &testHooks{rand: random.NewDeterministic([]byte(clientSeed)), static: staticA, keys: func(k Keys) { session = k }}
	scfg.hooks = &testHooks{static: staticB}
	cn, sn := tcpPair(t)
	tapC, tapS := &tapConn{Conn: cn}, &tapConn{Conn: sn}
	c, s := mustHandshake(t, tapC, tapS, ccfg, scfg)
	secrets := []string{"the vault master key", "the wifi password"}
	for _, m := range secrets {
		if err := c.WriteMessage([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for range secrets {
		if _, err := s.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	c2s, s2c := tapC.bytes(), tapS.bytes()
	hsLen := 2 + msg1Size + 2 + msg3Size
	if len(c2s) <= hsLen {
		t.Fatalf("recorded %d bytes from the client", len(c2s))
	}
	frames := c2s[hsLen:]

	// Sanity: with the session keys the recording opens.
	if got, err := openRecorded(session, frames); err != nil || !slices.Equal(got, secrets) {
		t.Fatalf("the recording does not open with the session keys: %q, %v", got, err)
	}

	// Attack 1: a new handshake with the same identity keys and the same
	// Noise static keys, fresh ephemerals. It succeeds (the long-term keys
	// are valid) but yields unrelated keys that do not open the recording.
	var again Keys
	ccfg2, scfg2 := alice.config("initiator"), bob.config("responder")
	ccfg2.hooks = &testHooks{static: staticA, keys: func(k Keys) { again = k }}
	scfg2.hooks = &testHooks{static: staticB}
	cn2, sn2 := tcpPair(t)
	c2, _ := mustHandshake(t, cn2, sn2, ccfg2, scfg2)
	if again.Send == session.Send || again.Recv == session.Recv || bytes.Equal(c2.Binding(), c.Binding()) {
		t.Fatal("a handshake with the same long-term keys derived the same session keys")
	}
	if got, err := openRecorded(again, frames); !errors.Is(err, ErrTampered) || len(got) != 0 {
		t.Fatalf("keys from a fresh handshake opened the recording: %q, %v", got, err)
	}

	// Attack 2: replay alice's side against bob's recorded message 2 with
	// alice's static key but her ephemerals unknown (fresh randomness).
	// Message 2 does not even decrypt: its key needs DH(e_alice, e_bob).
	pro := prologue(ccfg.Prologue)
	_, _, err := initiate(bytes.NewReader(s2c), io.Discard, pro, random.NewDeterministic([]byte("attacker guess")), staticA, nil)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("replaying the initiator without its ephemerals: got %v, want ErrHandshake", err)
	}

	// Attack 3: replay bob's side against alice's recorded messages 1 and
	// 3 with bob's static key. Bob's fresh ephemeral differs from the
	// recorded one, so message 3 does not decrypt.
	_, _, err = respond(bytes.NewReader(c2s[:hsLen]), io.Discard, pro, random.NewDeterministic([]byte("attacker guess")), staticB, nil)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("replaying the responder without its ephemerals: got %v, want ErrHandshake", err)
	}

	// Control: the same replay as attack 2, but with alice's original
	// randomness, that is with her ephemeral X25519 key and ML-KEM seed,
	// reproduces the session keys and opens the recording. So those
	// ephemerals are exactly what the attacker is missing, and the
	// handshake wipes them.
	replayed, binding, err := initiate(bytes.NewReader(s2c), io.Discard, pro, random.NewDeterministic([]byte(clientSeed)), staticA, nil)
	if err != nil {
		t.Fatalf("control replay: %v", err)
	}
	if replayed != session || !bytes.Equal(binding, c.Binding()) {
		t.Fatal("control replay did not reproduce the session keys")
	}
	if got, err := openRecorded(replayed, frames); err != nil || !slices.Equal(got, secrets) {
		t.Fatalf("control replay: %q, %v", got, err)
	}
}
