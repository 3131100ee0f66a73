package channel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/safehold/safehold/internal/secret"
)

// Wire constants of the frame layer (see the package documentation).
const (
	// KeySize is the size of a direction key.
	KeySize = 32

	// HeaderSize is length (4) + type (1) + counter (8).
	HeaderSize = 4 + 1 + 8

	// Overhead is what sealing adds to a payload: the AES-256-GCM tag and
	// the ChaCha20-Poly1305 tag.
	Overhead = 2 * tagSize

	// MaxProof bounds an identity proof (the payload of a proof frame).
	MaxProof = 64 << 10

	tagSize   = 16
	nonceSize = 12 // both AEADs
	adSize    = 1 + 1 + 8
)

// HKDF-SHA256 info strings. Each changes every derived byte, so each carries
// the protocol version.
const (
	labelAES    = "safehold channel v1 aes-256-gcm"
	labelChaCha = "safehold channel v1 chacha20-poly1305"
	labelNonce  = "safehold channel v1 nonce"
	labelRekey  = "safehold channel v1 rekey"
)

// frameType is the second field of the header. The zero value is invalid on
// purpose, so a frame of zeros is refused.
type frameType byte

const (
	typeData  frameType = 0x01 // payload: one application message
	typeRekey frameType = 0x02 // payload: empty; the sender's key ratchets after it
	typeClose frameType = 0x03 // payload: one reason byte
	typeProof frameType = 0x04 // payload: an identity proof, first frame of a handshake
)

func (t frameType) String() string {
	switch t {
	case typeData:
		return "data"
	case typeRekey:
		return "rekey"
	case typeClose:
		return "close"
	case typeProof:
		return "proof"
	}
	return fmt.Sprintf("unknown(0x%02x)", byte(t))
}

// Close reasons, the single payload byte of a close frame.
const (
	closeNormal  byte = 0x00 // orderly end: ReadMessage returns io.EOF
	closeRefused byte = 0x01 // the sender refused our identity proof
)

// frameHeader is a decoded header. length is the ciphertext size that
// follows it.
type frameHeader struct {
	typ     frameType
	counter uint64
	length  int
}

// parseHeader is the frame decoder: every rule about what a header may say
// lives here, and it runs before a single ciphertext byte is read or
// allocated. maxData is the largest data ciphertext accepted (MaxMessage +
// Overhead). The type and counter are not authenticated yet; they are used
// only to bound the length and are then bound into the additional data.
func parseHeader(h *[HeaderSize]byte, maxData int) (frameHeader, error) {
	n := binary.BigEndian.Uint32(h[0:4])
	fh := frameHeader{typ: frameType(h[4]), counter: binary.BigEndian.Uint64(h[5:13])}
	var lo, hi uint32
	switch fh.typ {
	case typeData:
		lo, hi = Overhead, uint32(maxData)
		if n > hi {
			return fh, fmt.Errorf("%w: data frame %d announces %d bytes, the limit is %d (MaxMessage %d) (both sides must use the same Options.MaxMessage)",
				ErrTooLarge, fh.counter, n, hi, hi-Overhead)
		}
	case typeRekey:
		lo, hi = Overhead, Overhead
	case typeClose:
		lo, hi = Overhead+1, Overhead+1
	case typeProof:
		lo, hi = Overhead+1, Overhead+MaxProof
	default:
		return fh, fmt.Errorf("%w: frame %d has unknown type 0x%02x", ErrTampered, fh.counter, h[4])
	}
	if n < lo || n > hi {
		return fh, fmt.Errorf("%w: %s frame %d has length %d, want %d..%d", ErrTampered, fh.typ, fh.counter, n, lo, hi)
	}
	fh.length = int(n)
	return fh, nil
}

// decodeFrame splits the first frame off b with parseHeader. It returns the
// header, the ciphertext (aliasing b) and the number of bytes consumed. It
// is what FuzzDecodeFrame exercises; the connection reads the same header
// from the network and calls parseHeader directly.
func decodeFrame(b []byte, maxData int) (frameHeader, []byte, int, error) {
	if len(b) < HeaderSize {
		return frameHeader{}, nil, 0, fmt.Errorf("%w: %d bytes, a header is %d", ErrTruncated, len(b), HeaderSize)
	}
	fh, err := parseHeader((*[HeaderSize]byte)(b[:HeaderSize]), maxData)
	if err != nil {
		return fh, nil, 0, err
	}
	end := HeaderSize + fh.length
	if len(b) < end {
		return fh, nil, 0, fmt.Errorf("%w: %s frame %d announces %d bytes, %d present", ErrTruncated, fh.typ, fh.counter, fh.length, len(b)-HeaderSize)
	}
	return fh, b[HeaderSize:end], end, nil
}

// appendHeader appends the encoding of h to dst.
func appendHeader(dst []byte, h frameHeader) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.length))
	dst = append(dst, byte(h.typ))
	return binary.BigEndian.AppendUint64(dst, h.counter)
}

// direction is the cipher state of one direction of a connection: the
// direction key, the two AEADs and the nonce mask derived from it, and the
// counters. The sending side and the receiving side of a direction hold the
// same key and move in lock step.
type direction struct {
	key    [KeySize]byte
	aes    cipher.AEAD // inner layer, AES-256-GCM
	chacha cipher.AEAD // outer layer, ChaCha20-Poly1305
	mask   [nonceSize]byte
	label  byte // direction label bound into the additional data

	next       uint64 // counter of the next frame
	sinceRekey uint64 // frames under the current key, rekey frames excluded
	rekeys     uint64 // how many times the key ratcheted
	keyEpoch   int64  // when the current key started, in c.now() nanoseconds

	// Scratch space for the AEAD calls. It lives in the (heap) struct so
	// that passing it to the cipher.AEAD interfaces allocates nothing.
	nonce [nonceSize]byte
	ad    [adSize]byte
}

// setKey installs k as the direction key and derives the subkeys:
//
//	aesKey    = HKDF-Expand-SHA256(k, "safehold channel v1 aes-256-gcm", 32)
//	chachaKey = HKDF-Expand-SHA256(k, "safehold channel v1 chacha20-poly1305", 32)
//	mask      = HKDF-Expand-SHA256(k, "safehold channel v1 nonce", 12)
//
// The derived key bytes are wiped; copies inside the AEADs (the AES key
// schedule, the ChaCha20 key) are unexported and can only be dropped.
func (d *direction) setKey(k *[KeySize]byte) error {
	ka, err := hkdf.Expand(sha256.New, k[:], labelAES, 32)
	if err != nil {
		return fmt.Errorf("channel: deriving the aes-256-gcm key: %w", err)
	}
	defer secret.Wipe(ka)
	kc, err := hkdf.Expand(sha256.New, k[:], labelChaCha, chacha20poly1305.KeySize)
	if err != nil {
		return fmt.Errorf("channel: deriving the chacha20-poly1305 key: %w", err)
	}
	defer secret.Wipe(kc)
	mask, err := hkdf.Expand(sha256.New, k[:], labelNonce, nonceSize)
	if err != nil {
		return fmt.Errorf("channel: deriving the nonce mask: %w", err)
	}
	defer secret.Wipe(mask)
	block, err := aes.NewCipher(ka)
	if err != nil {
		return fmt.Errorf("channel: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("channel: gcm: %w", err)
	}
	cc, err := chacha20poly1305.New(kc)
	if err != nil {
		return fmt.Errorf("channel: chacha20-poly1305: %w", err)
	}
	d.key = *k
	d.aes, d.chacha = gcm, cc
	copy(d.mask[:], mask)
	return nil
}

// ratchet replaces the direction key with
// HKDF-Expand-SHA256(key, "safehold channel v1 rekey", 32) and wipes the old
// one. HKDF is one-way, so the new key does not reveal the old one.
func (d *direction) ratchet(now int64) error {
	nk, err := hkdf.Expand(sha256.New, d.key[:], labelRekey, KeySize)
	if err != nil {
		return fmt.Errorf("channel: rekeying: %w", err)
	}
	var k [KeySize]byte
	copy(k[:], nk)
	secret.Wipe(nk)
	err = d.setKey(&k)
	secret.Wipe(k[:])
	if err != nil {
		return err
	}
	d.sinceRekey = 0
	d.rekeys++
	d.keyEpoch = now
	return nil
}

// wipe forgets the key material this package can reach and drops the AEADs.
func (d *direction) wipe() {
	secret.Wipe(d.key[:])
	secret.Wipe(d.mask[:])
	d.aes, d.chacha = nil, nil
}

// prepare fills the nonce and the additional data for frame (typ, counter):
//
//	nonce = mask XOR (0x00000000 || u64be(counter))
//	ad    = label || typ || u64be(counter)
func (d *direction) prepare(typ frameType, counter uint64) {
	d.nonce = d.mask
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], counter)
	subtle.XORBytes(d.nonce[4:], d.nonce[4:], c[:])
	d.ad[0] = d.label
	d.ad[1] = byte(typ)
	binary.BigEndian.PutUint64(d.ad[2:], counter)
}

// seal appends one frame (header and ciphertext) carrying pt to dst, under
// the next counter, and advances the counter. pt must not overlap the free
// capacity of dst; dst grows only if its capacity is short.
func (d *direction) seal(dst []byte, typ frameType, pt []byte) []byte {
	dst = slices.Grow(dst, HeaderSize+len(pt)+Overhead)
	counter := d.next
	d.next++
	if typ != typeRekey {
		d.sinceRekey++
	}
	dst = appendHeader(dst, frameHeader{typ: typ, counter: counter, length: len(pt) + Overhead})
	d.prepare(typ, counter)
	start := len(dst)
	inner := d.aes.Seal(dst[start:start], d.nonce[:], pt, d.ad[:])
	outer := d.chacha.Seal(inner[:0], d.nonce[:], inner, d.ad[:]) // in place
	return dst[:start+len(outer)]
}

// open authenticates and decrypts ct in place as frame (typ, counter) and
// returns the payload, which aliases ct. It does not look at or move the
// counters: the caller compares counter with d.next once the frame is known
// to be authentic. A failure says nothing about which layer failed.
func (d *direction) open(typ frameType, counter uint64, ct []byte) ([]byte, error) {
	d.prepare(typ, counter)
	inner, err := d.chacha.Open(ct[:0], d.nonce[:], ct, d.ad[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s frame %d did not authenticate (altered in transit or forged)", ErrTampered, typ, counter)
	}
	pt, err := d.aes.Open(inner[:0], d.nonce[:], inner, d.ad[:])
	if err != nil {
		clear(inner)
		return nil, fmt.Errorf("%w: %s frame %d did not authenticate (altered in transit or forged)", ErrTampered, typ, counter)
	}
	return pt, nil
}

// directionLabels returns the labels of the send and receive directions. A
// direction is labelled 0x01 if its key is the smaller of the two keys as a
// big-endian number, 0x02 otherwise. Both ends compute the same label for
// the same direction without knowing who is initiator, which lets New work
// from any pair of keys. The comparison runs in constant time.
func directionLabels(send, recv *[KeySize]byte) (sendLabel, recvLabel byte) {
	lt, eq := 0, 1
	for i := range send {
		x, y := int(send[i]), int(recv[i])
		lt |= eq & ((x - y) >> 31 & 1)
		eq &= subtle.ConstantTimeByteEq(send[i], recv[i])
	}
	if lt == 1 {
		return 0x01, 0x02
	}
	return 0x02, 0x01
}
