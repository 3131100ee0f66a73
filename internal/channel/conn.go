package channel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safehold/safehold/internal/secret"
)

// Errors returned by this package. Match them with errors.Is; the text says
// which frame and what to do.
var (
	// ErrTampered means a frame or handshake message did not authenticate
	// or was malformed: it was altered in transit or forged. The
	// connection is dead.
	ErrTampered = errors.New("channel: frame tampered with")
	// ErrReplay means an authentic frame arrived with a counter lower than
	// the next expected one: a replay. The connection is dead.
	ErrReplay = errors.New("channel: replayed frame")
	// ErrOutOfOrder means an authentic frame arrived with a counter higher
	// than the next expected one: a frame was dropped or reordered, which
	// an ordered stream never does. The connection is dead.
	ErrOutOfOrder = errors.New("channel: frame out of order")
	// ErrTooLarge means a message or frame exceeds Options.MaxMessage (or a
	// proof exceeds MaxProof). On the receiving side it is refused before
	// anything is allocated, and the connection is dead.
	ErrTooLarge = errors.New("channel: message too large")
	// ErrTruncated means the stream ended without a close frame, possibly in
	// the middle of a frame: the peer crashed or someone cut the
	// connection. It is never reported as io.EOF.
	ErrTruncated = errors.New("channel: connection ended without a close frame")
	// ErrRekeyOverdue means the peer sent more than 4 × RekeyMessages
	// frames under one key. The connection is dead.
	ErrRekeyOverdue = errors.New("channel: peer did not rekey")
	// ErrProtocol means an authentic frame that is not allowed where it
	// arrived (a proof after the handshake, data before it, an unknown close
	// reason). The connection is dead.
	ErrProtocol = errors.New("channel: protocol violation")
	// ErrExhausted means a direction used up its 2^63 counters.
	ErrExhausted = errors.New("channel: frame counter exhausted")
	// ErrClosed means Close was called on this connection.
	ErrClosed = errors.New("channel: connection closed")
	// ErrBadKeys means New was given unusable keys (all zero, or the same
	// key for both directions).
	ErrBadKeys = errors.New("channel: unusable keys")
	// ErrOptions means an Options field is out of range.
	ErrOptions = errors.New("channel: invalid options")

	// ErrHandshake means the Noise handshake failed: a message did not
	// authenticate, had the wrong size, or the peer speaks another version
	// or uses another prologue.
	ErrHandshake = errors.New("channel: handshake failed")
	// ErrUntrusted means the peer's identity proof did not verify: the
	// peer's key is not trusted. The connection is closed.
	ErrUntrusted = errors.New("channel: the peer's key is not trusted")
	// ErrRefused means the peer did not accept our identity proof: this
	// device's key is not trusted there.
	ErrRefused = errors.New("channel: the peer refused this device's identity proof")
)

// Defaults and ceilings of Options.
const (
	DefaultMaxMessage    = 1 << 20
	DefaultRekeyMessages = 1 << 20
	DefaultRekeyInterval = 2 * time.Minute

	// MaxMessageCeiling is the largest MaxMessage accepted.
	MaxMessageCeiling = 128 << 20
	// MaxRekeyMessages is the largest RekeyMessages accepted.
	MaxRekeyMessages = 1 << 40

	// rekeyHardFactor: a peer that sends more than this many times
	// RekeyMessages frames under one key is refused.
	rekeyHardFactor = 4

	// closeTimeout bounds how long Close waits for the transport to take
	// the close frame: immediate on TCP unless the peer stopped reading
	// long ago; on a synchronous net.Pipe the peer must be reading.
	closeTimeout = time.Second

	readBufferSize = 64 << 10

	// maxCounter is the largest counter a frame may carry: 2^63-1, which
	// a billion frames a second would reach in 292 years.
	maxCounter = 1<<63 - 1
)

// MsgConn is a reliable, ordered, authenticated and encrypted message
// connection: what internal/link and internal/peer use. *Conn implements it.
//
// WriteMessage sends one message of at most MaxMessage bytes and is safe for
// concurrent use. ReadMessage returns the next message, in order, as a slice
// the caller owns; call it from one goroutine. It returns io.EOF only after
// the peer closed the connection in an orderly way; any other failure is
// permanent. Close ends the connection and wipes its keys.
type MsgConn interface {
	WriteMessage(p []byte) error
	ReadMessage() ([]byte, error)
	Close() error
}

var _ MsgConn = (*Conn)(nil)

// Keys are the two direction keys of a connection. They must be uniformly
// random (the output of a KDF), distinct, and each end's Send must be the
// other end's Recv. New copies them: the caller wipes its copy with Wipe.
// Printing a Keys never shows the keys.
type Keys struct{ Send, Recv [KeySize]byte }

// Wipe overwrites both keys with zeros.
func (k *Keys) Wipe() { secret.Wipe(k.Send[:]); secret.Wipe(k.Recv[:]) }

// String implements fmt.Stringer without revealing the keys.
func (Keys) String() string { return "channel.Keys{[redacted]}" }

// GoString implements fmt.GoStringer without revealing the keys.
func (Keys) GoString() string { return "channel.Keys{[redacted]}" }

// Format implements fmt.Formatter: every verb prints the redaction.
func (Keys) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "channel.Keys{[redacted]}") }

// MarshalJSON implements json.Marshaler without revealing the keys.
func (Keys) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// LogValue implements slog.LogValuer without revealing the keys.
func (Keys) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Options tune a connection. The zero value means the defaults. Both ends
// must use the same values: a peer's larger messages are refused, and a
// peer rekeying much later than we expect is refused.
type Options struct {
	// MaxMessage bounds one message (plaintext bytes). 0 means
	// DefaultMaxMessage (1 MiB); the ceiling is MaxMessageCeiling.
	MaxMessage int
	// RekeyMessages is how many frames a sender sends under one key before
	// it rekeys. 0 means DefaultRekeyMessages (2^20). A receiver refuses a
	// peer that exceeds 4 × RekeyMessages.
	RekeyMessages uint64
	// RekeyInterval is how long a sender uses one key before it rekeys
	// (checked when it next sends). 0 means DefaultRekeyInterval (2 min).
	RekeyInterval time.Duration
}

// resolve fills in the defaults and checks the ranges.
func (o Options) resolve() (Options, error) {
	if o.MaxMessage == 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.RekeyMessages == 0 {
		o.RekeyMessages = DefaultRekeyMessages
	}
	if o.RekeyInterval == 0 {
		o.RekeyInterval = DefaultRekeyInterval
	}
	switch {
	case o.MaxMessage < 0 || o.MaxMessage > MaxMessageCeiling:
		return o, fmt.Errorf("%w: MaxMessage %d is outside 1..%d", ErrOptions, o.MaxMessage, MaxMessageCeiling)
	case o.RekeyMessages > MaxRekeyMessages:
		return o, fmt.Errorf("%w: RekeyMessages %d is above %d", ErrOptions, o.RekeyMessages, uint64(MaxRekeyMessages))
	case o.RekeyInterval < 0:
		return o, fmt.Errorf("%w: RekeyInterval %v is negative", ErrOptions, o.RekeyInterval)
	}
	return o, nil
}

// Conn is an encrypted, framed connection over a net.Conn. See the package
// documentation for the format and the guarantees.
type Conn struct {
	nc      net.Conn
	opt     Options
	binding []byte // handshake hash; nil for New
	now     func() time.Time

	// fatal holds the first error that killed the connection (tampering,
	// replay, a write failure, Close). Every later call returns it.
	fatal atomic.Pointer[error]

	wmu  sync.Mutex
	send direction
	wbuf []byte // reused frame buffer; holds only ciphertext between calls

	rmu  sync.Mutex
	recv direction
	br   *bufio.Reader
	rhdr [HeaderSize]byte
	rctl [Overhead + 1]byte // ciphertext of rekey and close frames
	rerr error              // sticky read error (io.EOF after a close frame)

	// proofPhase is set while a handshake waits for the peer's identity
	// proof: only proof and close frames are accepted.
	proofPhase bool

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a connection that frames and encrypts messages over nc with
// keys k, which both ends agreed on beforehand (internal/link derives them
// with CPace). Counters start at 0. An unusable k or opt makes every method
// return an error wrapping ErrBadKeys or ErrOptions.
func New(nc net.Conn, k Keys, opt Options) *Conn {
	c, err := newConn(nc, bufio.NewReaderSize(nc, readBufferSize), &k, opt, nil, time.Now)
	k.Wipe()
	if err != nil {
		c.kill(err)
	}
	return c
}

// newConn builds the connection; on error the returned Conn is unusable
// and the caller kills it or throws it away.
func newConn(nc net.Conn, br *bufio.Reader, k *Keys, opt Options, binding []byte, now func() time.Time) (*Conn, error) {
	c := &Conn{nc: nc, br: br, binding: binding, now: now}
	opt, err := opt.resolve()
	c.opt = opt
	if err != nil {
		return c, err
	}
	var zero [KeySize]byte
	switch {
	case k.Send == zero || k.Recv == zero:
		return c, fmt.Errorf("%w: a direction key is all zeros", ErrBadKeys)
	case k.Send == k.Recv:
		return c, fmt.Errorf("%w: the send and receive keys are equal (derive one key per direction)", ErrBadKeys)
	}
	c.send.label, c.recv.label = directionLabels(&k.Send, &k.Recv)
	if err := c.send.setKey(&k.Send); err != nil {
		return c, err
	}
	if err := c.recv.setKey(&k.Recv); err != nil {
		return c, err
	}
	start := c.now().UnixNano()
	c.send.keyEpoch, c.recv.keyEpoch = start, start
	return c, nil
}

// kill records err as the connection's fatal error (the first one wins)
// and closes the network connection, which unblocks any reader or writer.
func (c *Conn) kill(err error) error {
	if c.fatal.CompareAndSwap(nil, &err) {
		_ = c.nc.Close()
		return err
	}
	return *c.fatal.Load()
}

func (c *Conn) dead() error {
	if p := c.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Binding returns a copy of the handshake hash, which both ends share and
// no other connection has: a channel binding. It is nil for New.
func (c *Conn) Binding() []byte {
	if c.binding == nil {
		return nil
	}
	return append([]byte(nil), c.binding...)
}

// WriteMessage encrypts p and sends it as one data frame, first sending a
// rekey frame if one is due. It is safe for concurrent use. A failure is
// permanent: the connection is dead afterwards.
func (c *Conn) WriteMessage(p []byte) error {
	if err := c.dead(); err != nil {
		return err
	}
	if len(p) > c.opt.MaxMessage {
		return fmt.Errorf("%w: %d bytes, the limit is %d (split the message, or raise Options.MaxMessage on both ends)", ErrTooLarge, len(p), c.opt.MaxMessage)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrame(typeData, p)
}

// writeFrame sends one frame of type typ; c.wmu must be held.
func (c *Conn) writeFrame(typ frameType, p []byte) error {
	if err := c.dead(); err != nil {
		return err
	}
	if c.send.next >= maxCounter { // room for a rekey frame and this one
		return c.kill(fmt.Errorf("%w: reconnect to start new keys", ErrExhausted))
	}
	need := HeaderSize + len(p) + Overhead
	rekey := typ == typeData && c.rekeyDue()
	if rekey {
		need += HeaderSize + Overhead
	}
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, 0, need)
	}
	buf := c.wbuf[:0]
	if rekey {
		buf = c.send.seal(buf, typeRekey, nil)
		if err := c.send.ratchet(c.now().UnixNano()); err != nil {
			return c.kill(err)
		}
	}
	buf = c.send.seal(buf, typ, p)
	if _, err := c.nc.Write(buf); err != nil {
		return c.kill(c.ioError("writing", err))
	}
	return nil
}

// rekeyDue reports whether the send key has been used long enough.
func (c *Conn) rekeyDue() bool {
	return c.send.sinceRekey >= c.opt.RekeyMessages ||
		c.now().UnixNano()-c.send.keyEpoch >= int64(c.opt.RekeyInterval)
}

// ioError wraps a network error, or reports ErrClosed after Close.
func (c *Conn) ioError(what string, err error) error {
	if c.closing.Load() {
		return ErrClosed
	}
	return fmt.Errorf("channel: %s: %w", what, err)
}

// ReadMessage returns the next message. The returned slice belongs to the
// caller (who wipes it if it is secret). It returns io.EOF after the peer's
// close frame, an error wrapping ErrRefused if the peer closed because it
// does not trust us, and otherwise a permanent error: every later call
// returns the same error. Call it from one goroutine at a time.
func (c *Conn) ReadMessage() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	typ, p, err := c.readFrame()
	if err != nil {
		return nil, err
	}
	switch typ {
	case typeData:
		return p, nil
	case typeClose:
		return nil, c.rerr
	}
	return nil, c.kill(fmt.Errorf("%w: unexpected %s frame %d", ErrProtocol, typ, c.recv.next-1))
}

// readFrame reads, authenticates and checks the next frame that is not a
// rekey frame, and returns its type and payload. Rekey frames are handled
// here. A close frame sets c.rerr. c.rmu must be held.
func (c *Conn) readFrame() (frameType, []byte, error) {
	for {
		if c.rerr != nil {
			return 0, nil, c.rerr
		}
		if err := c.dead(); err != nil {
			return 0, nil, err
		}
		if n, err := io.ReadFull(c.br, c.rhdr[:]); err != nil {
			return 0, nil, c.readFailed(n, err)
		}
		fh, err := parseHeader(&c.rhdr, c.opt.MaxMessage+Overhead)
		if err != nil {
			return 0, nil, c.kill(err)
		}
		if c.proofPhase && fh.typ != typeProof && fh.typ != typeClose {
			// Refused before its body is read or allocated: nothing but a
			// proof may come from a peer that has not proven its identity.
			return 0, nil, c.kill(fmt.Errorf("%w: %s frame %d before the identity proof", ErrProtocol, fh.typ, fh.counter))
		}
		var ct []byte
		if fh.length <= len(c.rctl) && fh.typ != typeData && fh.typ != typeProof {
			ct = c.rctl[:fh.length]
		} else {
			ct = make([]byte, fh.length) // bounded by parseHeader
		}
		if n, err := io.ReadFull(c.br, ct); err != nil {
			return 0, nil, c.readFailed(HeaderSize+n, err)
		}
		p, err := c.recv.open(fh.typ, fh.counter, ct)
		if err != nil {
			return 0, nil, c.kill(err)
		}
		if err := c.checkCounter(fh); err != nil {
			return 0, nil, c.kill(err)
		}
		switch fh.typ {
		case typeRekey:
			if err := c.recv.ratchet(c.now().UnixNano()); err != nil {
				return 0, nil, c.kill(err)
			}
			continue
		case typeClose:
			switch p[0] {
			case closeNormal:
				c.rerr = io.EOF
			case closeRefused:
				c.rerr = fmt.Errorf("%w: it does not trust this device's key", ErrRefused)
			default:
				return 0, nil, c.kill(fmt.Errorf("%w: close frame %d has unknown reason 0x%02x", ErrProtocol, fh.counter, p[0]))
			}
			c.recv.wipe()
		}
		return fh.typ, p, nil
	}
}

// checkCounter enforces the replay window (exactly the next counter) and the
// hard rekey limit on an authentic frame, and advances the counter.
func (c *Conn) checkCounter(fh frameHeader) error {
	switch want := c.recv.next; {
	case fh.counter < want:
		return fmt.Errorf("%w: %s frame %d arrived again (expected frame %d)", ErrReplay, fh.typ, fh.counter, want)
	case fh.counter > want:
		return fmt.Errorf("%w: %s frame %d arrived when frame %d was expected (frames dropped or reordered)", ErrOutOfOrder, fh.typ, fh.counter, want)
	case want > maxCounter:
		return fmt.Errorf("%w: reconnect to start new keys", ErrExhausted)
	}
	c.recv.next++
	if fh.typ != typeRekey {
		c.recv.sinceRekey++
		if limit := rekeyHardFactor * c.opt.RekeyMessages; c.recv.sinceRekey > limit {
			return fmt.Errorf("%w: %d frames under one key, the limit is %d", ErrRekeyOverdue, c.recv.sinceRekey, limit)
		}
	}
	return nil
}

// readFailed turns a failed read of the stream into the connection's fatal
// error. n is how many bytes of the current frame were read.
func (c *Conn) readFailed(n int, err error) error {
	switch {
	case c.closing.Load():
		err = ErrClosed
	case errors.Is(err, io.EOF) && n == 0:
		err = fmt.Errorf("%w: the peer crashed or the connection was cut (%w)", ErrTruncated, io.ErrUnexpectedEOF)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w: the stream ended %d bytes into a frame (%w)", ErrTruncated, n, io.ErrUnexpectedEOF)
	default:
		err = fmt.Errorf("channel: reading: %w", err)
	}
	return c.kill(err)
}

// Close sends a close frame (if no write is in progress and the connection
// is healthy), closes the network connection and wipes the keys. Later
// calls return ErrClosed from every method; Close itself returns the
// result of the first call.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.shutdown(closeNormal) })
	return c.closeErr
}

// shutdown implements Close, sending reason in the close frame. The close
// frame is sent only if no write is in progress (a blocked writer would
// otherwise block Close) and the connection is healthy; it is best effort.
func (c *Conn) shutdown(reason byte) error {
	c.closing.Store(true)
	locked := c.wmu.TryLock()
	if locked && c.dead() == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
		_ = c.writeFrame(typeClose, []byte{reason})
	}
	err := c.nc.Close()
	c.kill(ErrClosed)
	// The network connection is closed, so a blocked reader or writer
	// returns now and releases its lock.
	if !locked {
		c.wmu.Lock()
	}
	c.send.wipe()
	c.wmu.Unlock()
	c.rmu.Lock()
	c.recv.wipe()
	c.rerr = ErrClosed
	c.rmu.Unlock()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("channel: closing: %w", err)
	}
	return nil
}
