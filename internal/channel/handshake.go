package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"weak"

	"github.com/flynn/noise"

	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
)

// Handshake constants (see the package documentation).
const (
	// ProtocolName is the Noise protocol name of the handshake.
	ProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256"

	// protocolLabel starts the Noise prologue and is the HKDF info of the
	// final key derivation.
	protocolLabel = "safehold channel v1"

	// MaxPrologue bounds HandshakeConfig.Prologue.
	MaxPrologue = 64 << 10

	dhLen = 32

	// Exact sizes of the three handshake messages (without their 2-byte
	// length prefix). Every size is fixed, so anything else is refused
	// before it is read.
	msg1Size = dhLen + mlkem.EncapsulationKeySize768                       // e, payload ek (in clear)
	msg2Size = dhLen + dhLen + tagSize + mlkem.CiphertextSize768 + tagSize // e, enc(s), enc(ct)
	msg3Size = dhLen + tagSize + tagSize                                   // enc(s), enc(empty)
)

// noiseSuite is Noise's 25519 + ChaChaPoly + SHA256 suite. SHA-256 keeps one
// hash family from the Noise transcript to the final HKDF and the frame
// subkeys; the 32-byte handshake hash is the channel binding.
var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)

// Proof makes this device's identity proof over binding, the handshake hash
// (typically a signature by the device key over a statement naming the
// binding and this end's role). It must return 1..MaxProof bytes.
type Proof func(binding []byte) ([]byte, error)

// Check verifies the peer's identity proof over binding. An error refuses
// the peer: the handshake fails with ErrUntrusted wrapping it.
//
// Both ends receive the same binding, so a Check must refuse a proof made by
// this device's own key, or Proof must name the role (initiator or
// responder) and Check must expect the other role: otherwise a peer could
// reflect our own proof back to us. The handshake refuses a proof that is
// byte for byte the one we sent, but cannot see through a malleable
// encoding.
type Check func(proof, binding []byte) error

// HandshakeConfig configures Client and Server.
type HandshakeConfig struct {
	// Prove makes our identity proof; Verify checks the peer's. Both are
	// required.
	Prove  Proof
	Verify Check
	// Prologue is mixed into the handshake hash: both ends must pass the
	// same bytes (for example the link code's context), or the handshake
	// fails. At most MaxPrologue bytes.
	Prologue []byte
	// Options tune the resulting connection.
	Options Options
	// Rand is the randomness for the ephemeral keys. nil means a new
	// random.Source (crypto/rand mixed with an independent DRBG).
	Rand io.Reader

	hooks *testHooks // tests only
}

// testHooks let tests steer and observe a handshake. Production code never
// sets them.
type testHooks struct {
	rand    io.Reader          // replaces HandshakeConfig.Rand
	static  *noise.DHKey       // a fixed Noise static key pair (never wiped)
	keys    func(Keys)         // receives a copy of the derived direction keys
	erasure func(*erasureNote) // receives what the handshake wiped and dropped
	now     func() time.Time   // the connection's clock
}

// erasureNote records, for tests, every buffer the handshake wiped and a
// probe for every object it could not wipe and dropped instead.
type erasureNote struct {
	wiped     map[string][]byte
	collected map[string]func() bool // true once the garbage collector freed it
}

// wipe zeroes b and, in tests, remembers it under name.
func (n *erasureNote) wipe(name string, b []byte) {
	secret.Wipe(b)
	if n != nil {
		n.wiped[name] = b
	}
}

// dropped registers a probe that reports whether p has been freed. The
// probe holds only a weak pointer, so it does not keep p alive.
func dropped[T any](n *erasureNote, name string, p *T) {
	if n != nil && p != nil {
		w := weak.Make(p)
		n.collected[name] = func() bool { return w.Value() == nil }
	}
}

// Client runs the initiator side of the handshake on nc and returns the
// connection once both identity proofs are verified. ctx bounds the
// handshake: its deadline becomes nc's deadline, and cancelling it closes
// nc. On error nc is closed.
func Client(ctx context.Context, nc net.Conn, cfg HandshakeConfig) (*Conn, error) {
	return handshake(ctx, nc, &cfg, true)
}

// Server runs the responder side of the handshake on nc; see Client.
func Server(ctx context.Context, nc net.Conn, cfg HandshakeConfig) (*Conn, error) {
	return handshake(ctx, nc, &cfg, false)
}

func handshake(ctx context.Context, nc net.Conn, cfg *HandshakeConfig, initiator bool) (_ *Conn, err error) {
	defer func() {
		if err == nil {
			return
		}
		_ = nc.Close()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("channel: handshake interrupted: %w: %w", cause, err)
		}
	}()
	opt, err := cfg.Options.resolve()
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Prove == nil || cfg.Verify == nil:
		return nil, fmt.Errorf("%w: HandshakeConfig needs both Prove and Verify", ErrOptions)
	case len(cfg.Prologue) > MaxPrologue:
		return nil, fmt.Errorf("%w: prologue of %d bytes, the limit is %d", ErrOptions, len(cfg.Prologue), MaxPrologue)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: handshake not started: %w", context.Cause(ctx))
	}
	if d, ok := ctx.Deadline(); ok {
		if err := nc.SetDeadline(d); err != nil {
			return nil, fmt.Errorf("channel: setting the handshake deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()

	h := cfg.hooks
	if h == nil {
		h = &testHooks{}
	}
	rng := cfg.Rand
	if h.rand != nil {
		rng = h.rand
	} else if rng == nil {
		src, err := random.New()
		if err != nil {
			return nil, fmt.Errorf("channel: randomness for the handshake: %w", err)
		}
		rng = src
	}
	var note *erasureNote
	if h.erasure != nil {
		note = &erasureNote{wiped: map[string][]byte{}, collected: map[string]func() bool{}}
		defer func() { h.erasure(note) }()
	}
	now := time.Now
	if h.now != nil {
		now = h.now
	}

	br := bufio.NewReaderSize(nc, readBufferSize)
	run := respond
	if initiator {
		run = initiate
	}
	keys, binding, err := run(br, nc, prologue(cfg.Prologue), rng, h.static, note)
	if err != nil {
		return nil, err
	}
	if h.keys != nil {
		h.keys(keys)
	}
	conn, err := newConn(nc, br, &keys, opt, binding, now)
	conn.proofPhase = true
	note.wipe("direction keys (send)", keys.Send[:])
	note.wipe("direction keys (recv)", keys.Recv[:])
	defer func() {
		if err != nil {
			conn.Close() // wipes the session keys; sends nothing once the Conn is dead
		}
	}()
	if err != nil {
		return nil, err
	}
	if initiator {
		err = conn.proveFirst(cfg)
	} else {
		err = conn.verifyFirst(cfg)
	}
	if err != nil {
		return nil, err
	}
	if !stop() {
		// ctx ended while we finished: nc is (being) closed.
		return nil, conn.kill(fmt.Errorf("channel: handshake interrupted: %w", context.Cause(ctx)))
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, conn.kill(fmt.Errorf("channel: clearing the handshake deadline: %w", err))
	}
	return conn, nil
}

// prologue encodes the Noise prologue:
//
//	u32be(len(label)) || label || u32be(len(p)) || p
//
// with label "safehold channel v1".
func prologue(p []byte) []byte {
	b := make([]byte, 0, 8+len(protocolLabel)+len(p))
	b = binary.BigEndian.AppendUint32(b, uint32(len(protocolLabel)))
	b = append(b, protocolLabel...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// newHandshakeState returns the Noise state and the static key pair (fixed
// by a test, or fresh, in which case own is true and the caller wipes it).
func newHandshakeState(initiator bool, pro []byte, rng io.Reader, fixed *noise.DHKey) (hs *noise.HandshakeState, static noise.DHKey, own bool, err error) {
	if fixed != nil {
		static = *fixed
	} else {
		static, err = noise.DH25519.GenerateKeypair(rng)
		if err != nil {
			return nil, static, false, fmt.Errorf("channel: generating the noise static key: %w", err)
		}
		own = true
	}
	hs, err = noise.NewHandshakeState(noise.Config{
		CipherSuite:   noiseSuite,
		Random:        rng,
		Pattern:       noise.HandshakeXX,
		Initiator:     initiator,
		Prologue:      pro,
		StaticKeypair: static,
	})
	if err != nil {
		if own {
			secret.Wipe(static.Private)
		}
		return nil, static, false, fmt.Errorf("channel: starting noise: %w", err)
	}
	return hs, static, own, nil
}

// initiate runs the initiator's three Noise messages over r and w and
// derives the keys (Send is initiator to responder).
func initiate(r io.Reader, w io.Writer, pro []byte, rng io.Reader, fixed *noise.DHKey, note *erasureNote) (Keys, []byte, error) {
	hs, static, own, err := newHandshakeState(true, pro, rng, fixed)
	if err != nil {
		return Keys{}, nil, err
	}
	dropped(note, "noise handshake state", hs)
	defer func() {
		note.wipe("noise ephemeral private key", hs.LocalEphemeral().Private)
		if own {
			note.wipe("noise static private key", static.Private)
		}
	}()

	// -> e, payload: ML-KEM-768 encapsulation key
	seed := make([]byte, mlkem.SeedSize)
	defer note.wipe("ml-kem seed", seed)
	if _, err := io.ReadFull(rng, seed); err != nil {
		return Keys{}, nil, fmt.Errorf("channel: randomness for ml-kem: %w", err)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("channel: ml-kem key: %w", err)
	}
	dropped(note, "ml-kem decapsulation key", dk)
	msg1, _, _, err := hs.WriteMessage(nil, dk.EncapsulationKey().Bytes())
	if err != nil {
		return Keys{}, nil, fmt.Errorf("channel: noise message 1: %w", err)
	}
	if err := writeHandshakeMessage(w, msg1); err != nil {
		return Keys{}, nil, err
	}

	// <- e, ee, s, es, payload: ML-KEM ciphertext
	msg2, err := readHandshakeMessage(r, 2, msg2Size)
	if err != nil {
		return Keys{}, nil, err
	}
	ct, _, _, err := hs.ReadMessage(nil, msg2)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("%w: message 2 did not authenticate (%v): the two ends run different versions or prologues, or the message was altered in transit", ErrHandshake, err)
	}
	if len(ct) != mlkem.CiphertextSize768 {
		return Keys{}, nil, fmt.Errorf("%w: message 2 carries %d bytes, want an ML-KEM-768 ciphertext", ErrHandshake, len(ct))
	}
	ss, err := dk.Decapsulate(ct)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("%w: ml-kem decapsulation: %v", ErrHandshake, err)
	}
	defer note.wipe("ml-kem shared secret", ss)
	dk = nil // the expanded key cannot be wiped, only dropped

	// -> s, se, payload: empty
	msg3, i2r, r2i, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("channel: noise message 3: %w", err)
	}
	if err := writeHandshakeMessage(w, msg3); err != nil {
		return Keys{}, nil, err
	}
	return finish(hs, i2r, r2i, ss, true, note)
}

// respond runs the responder's side of the Noise messages and derives the
// keys (Send is responder to initiator).
func respond(r io.Reader, w io.Writer, pro []byte, rng io.Reader, fixed *noise.DHKey, note *erasureNote) (Keys, []byte, error) {
	hs, static, own, err := newHandshakeState(false, pro, rng, fixed)
	if err != nil {
		return Keys{}, nil, err
	}
	dropped(note, "noise handshake state", hs)
	defer func() {
		note.wipe("noise ephemeral private key", hs.LocalEphemeral().Private)
		if own {
			note.wipe("noise static private key", static.Private)
		}
	}()

	// -> e, payload: ML-KEM-768 encapsulation key
	msg1, err := readHandshakeMessage(r, 1, msg1Size)
	if err != nil {
		return Keys{}, nil, err
	}
	ekBytes, _, _, err := hs.ReadMessage(nil, msg1)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	ek, err := mlkem.NewEncapsulationKey768(ekBytes)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("%w: message 1 carries an invalid ML-KEM-768 key: %v", ErrHandshake, err)
	}
	ss, ct := ek.Encapsulate()
	defer note.wipe("ml-kem shared secret", ss)

	// <- e, ee, s, es, payload: ML-KEM ciphertext
	msg2, _, _, err := hs.WriteMessage(nil, ct)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("channel: noise message 2: %w", err)
	}
	if err := writeHandshakeMessage(w, msg2); err != nil {
		return Keys{}, nil, err
	}

	// -> s, se, payload: empty
	msg3, err := readHandshakeMessage(r, 3, msg3Size)
	if err != nil {
		return Keys{}, nil, err
	}
	payload, i2r, r2i, err := hs.ReadMessage(nil, msg3)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("%w: message 3 did not authenticate (%v): the two ends run different versions or prologues, or the message was altered in transit", ErrHandshake, err)
	}
	if len(payload) != 0 {
		return Keys{}, nil, fmt.Errorf("%w: message 3 carries a %d-byte payload, want none", ErrHandshake, len(payload))
	}
	return finish(hs, i2r, r2i, ss, false, note)
}

// finish derives the direction keys from the completed handshake:
//
//	okm = HKDF-SHA256(ikm  = k_i2r || k_r2i || ss,
//	                  salt = h, info = "safehold channel v1", 64 bytes)
//	initiator-to-responder key = okm[0:32], responder-to-initiator = okm[32:64]
//
// where k_i2r and k_r2i are Noise's split keys, ss the ML-KEM shared secret
// and h the handshake hash, returned as the binding. Every copy is wiped.
func finish(hs *noise.HandshakeState, i2r, r2i *noise.CipherState, ss []byte, initiator bool, note *erasureNote) (Keys, []byte, error) {
	dropped(note, "noise cipher state i2r", i2r)
	dropped(note, "noise cipher state r2i", r2i)
	binding := bytes.Clone(hs.ChannelBinding())
	ki, kr := i2r.UnsafeKey(), r2i.UnsafeKey()
	ikm := make([]byte, 0, 2*KeySize+len(ss))
	ikm = append(append(append(ikm, ki[:]...), kr[:]...), ss...)
	note.wipe("noise split key i2r", ki[:])
	note.wipe("noise split key r2i", kr[:])
	defer note.wipe("hkdf input", ikm)
	okm, err := hkdf.Key(sha256.New, ikm, binding, protocolLabel, 2*KeySize)
	if err != nil {
		return Keys{}, nil, fmt.Errorf("channel: deriving the session keys: %w", err)
	}
	defer note.wipe("hkdf output", okm)
	var k Keys
	if initiator {
		copy(k.Send[:], okm[:KeySize])
		copy(k.Recv[:], okm[KeySize:])
	} else {
		copy(k.Recv[:], okm[:KeySize])
		copy(k.Send[:], okm[KeySize:])
	}
	return k, binding, nil
}

// writeHandshakeMessage sends u16be(len(msg)) || msg in one write.
func writeHandshakeMessage(w io.Writer, msg []byte) error {
	b := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	if _, err := w.Write(append(b, msg...)); err != nil {
		return fmt.Errorf("channel: sending a handshake message: %w", err)
	}
	return nil
}

// readHandshakeMessage reads handshake message idx, which must be exactly
// size bytes; a different length is refused before anything is allocated.
func readHandshakeMessage(r io.Reader, idx, size int) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("%w: reading message %d: %w", ErrHandshake, idx, err)
	}
	if n := int(binary.BigEndian.Uint16(l[:])); n != size {
		return nil, fmt.Errorf("%w: message %d announces %d bytes, want %d: the peer is not a safehold channel v1 endpoint", ErrHandshake, idx, n, size)
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("%w: reading message %d: %w", ErrHandshake, idx, err)
	}
	return msg, nil
}

// proveFirst is the initiator's proof exchange: send our proof, then read
// and verify the responder's.
func (c *Conn) proveFirst(cfg *HandshakeConfig) error {
	mine, err := c.sendProof(cfg.Prove)
	if err != nil {
		return err
	}
	theirs, err := c.readProof()
	if err != nil {
		return err
	}
	if bytes.Equal(theirs, mine) {
		return c.refuse(errors.New("the peer sent back our own proof (reflection)"))
	}
	if err := cfg.Verify(theirs, c.Binding()); err != nil {
		return c.refuse(err)
	}
	return nil
}

// verifyFirst is the responder's proof exchange: read and verify the
// initiator's proof, and only then send ours, so that the listening end
// reveals nothing about its identity to a peer it does not trust.
func (c *Conn) verifyFirst(cfg *HandshakeConfig) error {
	theirs, err := c.readProof()
	if err != nil {
		return err
	}
	if err := cfg.Verify(theirs, c.Binding()); err != nil {
		return c.refuse(err)
	}
	_, err = c.sendProof(cfg.Prove)
	return err
}

// sendProof makes our proof and sends it as a proof frame.
func (c *Conn) sendProof(prove Proof) ([]byte, error) {
	proof, err := prove(c.Binding())
	if err != nil {
		return nil, c.kill(fmt.Errorf("channel: making this device's identity proof: %w", err))
	}
	if len(proof) == 0 || len(proof) > MaxProof {
		return nil, c.kill(fmt.Errorf("%w: identity proof of %d bytes, want 1..%d", ErrTooLarge, len(proof), MaxProof))
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeFrame(typeProof, proof); err != nil {
		return nil, err
	}
	return proof, nil
}

// readProof reads the peer's proof frame, the first frame of its direction.
func (c *Conn) readProof() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	typ, p, err := c.readFrame()
	c.proofPhase = false
	switch {
	case errors.Is(err, ErrTruncated):
		return nil, fmt.Errorf("%w: the peer closed the connection instead of proving its identity: %w", ErrHandshake, err)
	case err != nil:
		return nil, err
	case typ == typeProof:
		return p, nil
	case typ == typeClose && errors.Is(c.rerr, io.EOF):
		return nil, c.kill(fmt.Errorf("%w: the peer closed the connection instead of proving its identity", ErrHandshake))
	case typ == typeClose:
		return nil, c.kill(c.rerr)
	}
	return nil, c.kill(fmt.Errorf("%w: %s frame before the identity proof", ErrProtocol, typ)) // unreachable: proofPhase
}

// refuse tells the peer we do not trust it (a close frame with reason
// "refused"), closes the connection and returns ErrUntrusted wrapping why.
func (c *Conn) refuse(why error) error {
	err := fmt.Errorf("%w: %w", ErrUntrusted, why)
	c.closeOnce.Do(func() { c.closeErr = c.shutdown(closeRefused) })
	return err
}
