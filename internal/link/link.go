// Package link enrols a new device from an unlocked one over a channel
// authenticated by a short one-time code (docs/design.md §15). The two
// devices run CPace (internal/cpace, ristretto255) on the code, confirm
// the key both ways, and only then exchange anything: the new device's
// public key one way, the account bundle the other, each inside the
// encrypted frame layer of internal/channel.
//
// One code allows one attempt: the waiting device stops at the first
// connection that fails, so an eavesdropper learns nothing and an active
// attacker gets a single online guess, never an offline attack. The code
// also expires (Options.Expiry).
//
// What travels (the bundle, the device's key) is opaque here: package
// link moves bytes; the caller decides what they mean.
package link

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/cpace"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/textsafe"
)

// Limits and labels of the protocol (§15.2).
const (
	magic         = "SHL1"
	sidSize       = 16
	tagSize       = 32
	maxHandshake  = 256     // one plaintext handshake message
	maxPayload    = 1 << 16 // one message inside the channel
	DefaultExpiry = 5 * time.Minute
	MaxExpiry     = 30 * time.Minute
	// stepTimeout bounds the handshake once connected; finishTimeout the
	// wait for the new device to set itself up (it derives keys from the
	// password and syncs), counted from the bundle, not from the code's
	// expiry.
	stepTimeout   = 30 * time.Second
	finishTimeout = 5 * time.Minute
	ciLabel       = "safehold device link v1"
	keyInfo       = "safehold device link v1 keys"
)

// Errors, matched with errors.Is.
var (
	// ErrWrongCode: the key confirmation failed: the code was mistyped,
	// or someone in between tampered with or replayed a message. The
	// attempt is over and the code is spent.
	ErrWrongCode = errors.New("the link failed: the code did not match, or the connection was tampered with")
	// ErrExpired: nobody joined before the code expired.
	ErrExpired = errors.New("the link code expired")
	// ErrProtocol: a malformed message.
	ErrProtocol = errors.New("the link's peer broke the protocol")
	// ErrRefused: the other side refused to finish (its message says why).
	ErrRefused = errors.New("the other device refused the link")
)

// Options configure either side.
type Options struct {
	// Addr: the waiting device listens there (default ":0", every
	// interface); the new device connects there instead of discovering.
	Addr string
	// DiscoveryPort is the UDP port of discovery (DefaultDiscoveryPort
	// when 0).
	DiscoveryPort int
	// Expiry bounds the wait for the new device (DefaultExpiry when 0).
	Expiry time.Duration
	// Rand supplies the code and the CPace scalars (crypto/rand when nil).
	Rand io.Reader
}

func (o Options) port() int {
	if o.DiscoveryPort != 0 {
		return o.DiscoveryPort
	}
	return DefaultDiscoveryPort
}

func (o Options) rand() io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return defaultRand
}

func (o Options) expiry() time.Duration {
	if o.Expiry > 0 {
		return min(o.Expiry, MaxExpiry)
	}
	return DefaultExpiry
}

// Offer is a waiting device's open code.
type Offer struct {
	code   Code
	ln     net.Listener
	stop   func()
	opts   Options
	expiry time.Time
}

// NewOffer draws a code, listens for the new device and answers discovery.
// Close it when done.
func NewOffer(ctx context.Context, opts Options) (*Offer, error) {
	code, err := newCode(opts.rand())
	if err != nil {
		return nil, err
	}
	return newOfferWithCode(ctx, opts, code)
}

func newOfferWithCode(ctx context.Context, opts Options, code Code) (*Offer, error) {
	addr := opts.Addr
	if addr == "" {
		addr = ":0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the new device on %s: %w", addr, err)
	}
	o := &Offer{code: code, ln: ln, opts: opts, expiry: time.Now().Add(opts.expiry())}
	stop, err := respond(context.WithoutCancel(ctx), opts.port(), code.Nameplate, ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		ln.Close()
		return nil, err
	}
	o.stop = stop
	return o, nil
}

// Code is the code to show the user.
func (o *Offer) Code() string { return o.code.String() }

// Addr is where the offer listens.
func (o *Offer) Addr() net.Addr { return o.ln.Addr() }

// Expires is when the code stops working.
func (o *Offer) Expires() time.Time { return o.expiry }

// Close stops listening and answering discovery.
func (o *Offer) Close() error {
	o.stop()
	return o.ln.Close()
}

// Certify is the waiting device's decision: given the new device's hello
// (its public key and description), it returns the bundle to send. Its
// error refuses the link (the new device is told only that it was
// refused).
// local is this device's address on the connection (where the new device
// reached it).
type Certify func(ctx context.Context, hello []byte, local net.Addr) ([]byte, error)

// Result is the outcome the new device reported.
type Result struct {
	Hello []byte // what the new device sent
}

// Serve waits for one new device and runs the link with it: the first
// connection is the only attempt. It returns once the new device reports
// that it finished (or failed), the attempt failed, or the code expired.
func (o *Offer) Serve(ctx context.Context, certify Certify) (*Result, error) {
	defer o.Close()
	parent := ctx
	ctx, cancel := context.WithDeadline(ctx, o.expiry)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { o.ln.Close() })
	defer stop()
	nc, err := o.ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: nobody joined within %s; run `safe device link` again for a new code", ErrExpired, o.opts.expiry())
			}
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("wait for the new device: %w", err)
	}
	o.Close() // one attempt: no second connection, no more discovery
	defer nc.Close()
	// From here the code's expiry no longer matters: the attempt has its
	// own deadlines.
	cancel()
	ctx, cancel = context.WithCancel(parent)
	defer cancel()
	stopConn := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stopConn()
	nc.SetDeadline(time.Now().Add(stepTimeout))
	ch, err := o.handshake(nc)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	hello, err := ch.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the new device's hello: %v", ErrProtocol, err)
	}
	bundle, err := certify(ctx, hello, nc.LocalAddr())
	if err != nil {
		ch.WriteMessage(encodeReply(reply{Refused: "the linking device refused: " + err.Error()}))
		return nil, err
	}
	enc := encodeReply(reply{Bundle: bundle})
	err = ch.WriteMessage(enc)
	secret.Wipe(enc)
	secret.Wipe(bundle)
	if err != nil {
		return nil, fmt.Errorf("send the bundle: %w", err)
	}
	nc.SetDeadline(time.Now().Add(finishTimeout))
	raw, err := ch.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("%w: the new device did not report how joining went: %v", ErrProtocol, err)
	}
	var done outcome
	if err := decodeJSON(raw, &done); err != nil {
		return nil, err
	}
	if !done.OK {
		return nil, fmt.Errorf("the new device could not finish joining: %s", clean(done.Error))
	}
	return &Result{Hello: hello}, nil
}

// handshake is the waiting device's (the responder's) side of CPace with
// key confirmation (§15.2).
func (o *Offer) handshake(nc net.Conn) (*channel.Conn, error) {
	var sid [sidSize]byte
	if _, err := io.ReadFull(o.opts.rand(), sid[:]); err != nil {
		return nil, err
	}
	if err := writeMsg(nc, append([]byte(magic), sid[:]...)); err != nil {
		return nil, err
	}
	ya, err := readMsg(nc)
	if err != nil {
		return nil, err
	}
	st, yb, err := cpace.Start(cpace.Responder, []byte(o.code.String()), ci(o.code), sid[:], nil, o.opts.rand())
	if err != nil {
		return nil, err
	}
	isk, err := st.Finish(ya, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongCode, err)
	}
	k := deriveKeys(isk, sid[:], ya, yb)
	secret.Wipe(isk)
	defer k.wipe()
	if err := writeMsg(nc, append(yb, k.tag(k.confirmR, "responder", sid[:], ya, yb)...)); err != nil {
		return nil, err
	}
	tagI, err := readMsg(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: the new device stopped before confirming: %v", ErrWrongCode, err)
	}
	if !hmac.Equal(tagI, k.tag(k.confirmI, "initiator", sid[:], ya, yb)) {
		return nil, ErrWrongCode
	}
	return channel.New(nc, channel.Keys{Send: k.r2i, Recv: k.i2r}, channel.Options{MaxMessage: maxPayload}), nil
}

// Join is the new device's side: it finds the waiting device (or dials
// opts.Addr), runs the handshake, sends hello and hands the bundle it gets
// to finish, whose outcome it reports back.
func Join(ctx context.Context, text string, opts Options, hello []byte, finish func(ctx context.Context, bundle []byte) error) error {
	code, err := ParseCode(text)
	if err != nil {
		return err
	}
	addr := opts.Addr
	if addr == "" {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		addr, err = discover(dctx, opts.port(), code.Nameplate)
		cancel()
		if err != nil {
			return err
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("reach the linking device at %s: %w", addr, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	nc.SetDeadline(time.Now().Add(stepTimeout))
	ch, err := joinHandshake(nc, code, opts)
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.WriteMessage(hello); err != nil {
		return fmt.Errorf("send this device's key: %w", err)
	}
	raw, err := ch.ReadMessage()
	if err != nil {
		return fmt.Errorf("%w: no bundle from the linking device: %v", ErrProtocol, err)
	}
	defer secret.Wipe(raw)
	var rep reply
	if err := decodeJSON(raw, &rep); err != nil {
		return err
	}
	defer secret.Wipe(rep.Bundle)
	if rep.Refused != "" || rep.Bundle == nil {
		return fmt.Errorf("%w: %s", ErrRefused, clean(rep.Refused))
	}
	nc.SetDeadline(time.Time{}) // finish may prompt for a password
	ferr := finish(ctx, rep.Bundle)
	done := outcome{OK: ferr == nil}
	if ferr != nil {
		done.Error = ferr.Error()
	}
	raw2, _ := json.Marshal(done)
	if err := ch.WriteMessage(raw2); err != nil && ferr == nil {
		return fmt.Errorf("this device joined, but could not tell the linking device: %w", err)
	}
	return ferr
}

// joinHandshake is the new device's (the initiator's) side of CPace with
// key confirmation.
func joinHandshake(nc net.Conn, code Code, opts Options) (*channel.Conn, error) {
	first, err := readMsg(nc)
	if err != nil {
		return nil, err
	}
	if len(first) != len(magic)+sidSize || string(first[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: this is not a Safehold device link (or another version)", ErrProtocol)
	}
	sid := first[len(magic):]
	st, ya, err := cpace.Start(cpace.Initiator, []byte(code.String()), ci(code), sid, nil, opts.rand())
	if err != nil {
		return nil, err
	}
	defer st.Abort() // spent by Finish on the way through
	if err := writeMsg(nc, ya); err != nil {
		return nil, err
	}
	second, err := readMsg(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: the linking device closed the connection: %v", ErrWrongCode, err)
	}
	if len(second) != 32+tagSize {
		return nil, fmt.Errorf("%w: the linking device's answer has %d bytes", ErrProtocol, len(second))
	}
	yb, tagR := second[:32], second[32:]
	isk, err := st.Finish(yb, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongCode, err)
	}
	k := deriveKeys(isk, sid, ya, yb)
	secret.Wipe(isk)
	defer k.wipe()
	if !hmac.Equal(tagR, k.tag(k.confirmR, "responder", sid, ya, yb)) {
		return nil, ErrWrongCode
	}
	if err := writeMsg(nc, k.tag(k.confirmI, "initiator", sid, ya, yb)); err != nil {
		return nil, err
	}
	return channel.New(nc, channel.Keys{Send: k.i2r, Recv: k.r2i}, channel.Options{MaxMessage: maxPayload}), nil
}

// ci is CPace's channel identifier: the protocol and the nameplate.
func ci(c Code) []byte { return []byte(ciLabel + " " + strconv.Itoa(c.Nameplate)) }

// keys are what the ISK expands to: two confirmation keys and one
// channel key per direction.
type keys struct {
	confirmI, confirmR [32]byte
	i2r, r2i           [32]byte
}

func deriveKeys(isk, sid, ya, yb []byte) *keys {
	info := append([]byte(keyInfo), sid...)
	out, err := hkdf.Key(sha512.New, isk, append(append([]byte(nil), ya...), yb...), string(info), 128)
	if err != nil {
		panic(err) // 128 bytes of SHA-512 HKDF cannot fail
	}
	k := &keys{}
	copy(k.confirmI[:], out[0:32])
	copy(k.confirmR[:], out[32:64])
	copy(k.i2r[:], out[64:96])
	copy(k.r2i[:], out[96:128])
	secret.Wipe(out)
	return k
}

// tag is a confirmation tag: HMAC-SHA-512/256 of the role and the
// transcript under the role's key.
func (k *keys) tag(key [32]byte, role string, sid, ya, yb []byte) []byte {
	m := hmac.New(sha512.New512_256, key[:])
	m.Write([]byte(role))
	for _, p := range [][]byte{sid, ya, yb} {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(p)))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func (k *keys) wipe() {
	for _, b := range [][]byte{k.confirmI[:], k.confirmR[:], k.i2r[:], k.r2i[:]} {
		secret.Wipe(b)
	}
}

// writeMsg and readMsg frame the plaintext handshake: a 2-byte length, then
// at most maxHandshake bytes.
func writeMsg(w io.Writer, p []byte) error {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(p)))
	if _, err := w.Write(append(l[:], p...)); err != nil {
		return fmt.Errorf("link: send: %w", err)
	}
	return nil
}

func readMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("link: receive: %w", err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > maxHandshake {
		return nil, fmt.Errorf("%w: a handshake message of %d bytes (at most %d)", ErrProtocol, n, maxHandshake)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, fmt.Errorf("link: receive: %w", err)
	}
	return p, nil
}

// reply is the waiting device's answer to hello; outcome is the new
// device's report.
type reply struct {
	Bundle  []byte `json:"bundle,omitempty"`
	Refused string `json:"refused,omitempty"`
}

type outcome struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func encodeReply(r reply) []byte {
	raw, _ := json.Marshal(r)
	return raw
}

func decodeJSON(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}

// clean makes a message from the other device safe to show.
func clean(s string) string { return textsafe.Truncate(textsafe.Clean(s), 300) }
