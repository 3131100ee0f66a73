// Package envelope implements Safehold's symmetric envelope, suite 1:
// AES-256-GCM inside XChaCha20-Poly1305, with per-message subkeys expanded by
// HKDF-SHA512 from the caller's 32-byte key and the two random nonces.
//
// An envelope is bound to a Context (purpose, account, vault, item, revision,
// field) through the additional data of both layers, so a ciphertext moved to
// another place does not open. Seal and Open handle messages of up to
// MaxPlaintext bytes in memory; larger data (attachments) goes through the
// chunked stream (NewWriter, NewReader, StreamSealer, StreamOpener).
//
// The byte layout is specified in docs/design.md.
package envelope

//go:generate go run ./internal/vectorgen -o testdata/vectors.json

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/safehold/safehold/internal/secret"
)

// Format constants of the single-shot envelope.
const (
	// Magic starts every envelope: "SHEN", SafeHold ENvelope.
	Magic = "SHEN"
	// Version is the only envelope version this package reads and writes.
	Version byte = 0x01
	// Suite1 is AES-256-GCM inside XChaCha20-Poly1305 with HKDF-SHA512 subkeys.
	Suite1 byte = 0x01

	// KeySize is the size of the caller's key.
	KeySize = 32

	xNonceSize = chacha20poly1305.NonceSizeX // 24
	gNonceSize = 12
	tagSize    = 16

	// HeaderSize is magic (4) + version (1) + suite (1) + XChaCha20 nonce
	// (24) + AES-GCM nonce (12).
	HeaderSize = len(Magic) + 1 + 1 + xNonceSize + gNonceSize
	// Overhead is the number of bytes an envelope adds to its plaintext: the
	// header and the two 16-byte tags.
	Overhead = HeaderSize + 2*tagSize

	// MaxPlaintext bounds one envelope. Larger data uses the stream.
	MaxPlaintext = 64 << 20

	// MaxContextField bounds every string field of a Context.
	MaxContextField = 1024
)

// HKDF labels (the info parameter) of the single-shot envelope subkeys.
const (
	labelAES     = "safehold/envelope/v1/suite1/aes-256-gcm"
	labelXChaCha = "safehold/envelope/v1/suite1/xchacha20-poly1305"
	contextLabel = "safehold/envelope/context/v1"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrAuth means the ciphertext did not authenticate: wrong key, wrong
	// context, or any modification. It never says which layer failed.
	ErrAuth = errors.New("envelope: message authentication failed")
	// ErrTruncated means the input is shorter than its format requires.
	ErrTruncated = errors.New("envelope: truncated input")
	// ErrBadMagic means the input does not start with the expected magic.
	ErrBadMagic = errors.New("envelope: not a safehold envelope (bad magic)")
	// ErrUnknownVersion means the format version is not one this code reads.
	ErrUnknownVersion = errors.New("envelope: unknown format version")
	// ErrUnknownSuite means the suite id is not one this code reads.
	ErrUnknownSuite = errors.New("envelope: unknown cipher suite")
	// ErrTooLarge means a size bound was exceeded.
	ErrTooLarge = errors.New("envelope: input too large")
	// ErrKeySize means the key is not KeySize bytes.
	ErrKeySize = errors.New("envelope: key must be 32 bytes")
	// ErrContext means the Context is invalid (empty purpose, field too long).
	ErrContext = errors.New("envelope: invalid context")
)

// Context names the place a ciphertext belongs to. It is bound into the
// additional data of every layer. Purpose is required; the other fields are
// empty or zero when they do not apply.
type Context struct {
	Purpose  string // what the ciphertext is, e.g. "item-payload"
	Account  string
	Vault    string
	Item     string
	Revision uint64
	Field    string
}

// AAD returns the canonical encoding of c:
//
//	u32(len(label)) || label || u32(len(Purpose)) || Purpose ||
//	u32(len(Account)) || Account || u32(len(Vault)) || Vault ||
//	u32(len(Item)) || Item || u64(Revision) || u32(len(Field)) || Field
//
// with label "safehold/envelope/context/v1" and big-endian integers. Every
// field is length-prefixed, so distinct contexts never encode the same.
func (c Context) AAD() []byte {
	n := 4 + len(contextLabel) + 5*4 + len(c.Purpose) + len(c.Account) + len(c.Vault) + len(c.Item) + len(c.Field) + 8
	b := make([]byte, 0, n)
	b = appendString(b, contextLabel)
	b = appendString(b, c.Purpose)
	b = appendString(b, c.Account)
	b = appendString(b, c.Vault)
	b = appendString(b, c.Item)
	b = binary.BigEndian.AppendUint64(b, c.Revision)
	b = appendString(b, c.Field)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Validate reports whether c can be used: Purpose must be non-empty and no
// field may exceed MaxContextField bytes.
func (c Context) Validate() error {
	if c.Purpose == "" {
		return fmt.Errorf("%w: empty purpose", ErrContext)
	}
	for _, f := range []string{c.Purpose, c.Account, c.Vault, c.Item, c.Field} {
		if len(f) > MaxContextField {
			return fmt.Errorf("%w: field longer than %d bytes", ErrContext, MaxContextField)
		}
	}
	return nil
}

// ciphers is one pair of AEADs keyed with subkeys derived by HKDF-SHA512.
type ciphers struct {
	gcm cipher.AEAD // inner: AES-256-GCM
	x   cipher.AEAD // outer: XChaCha20-Poly1305
}

// newCiphers derives the AES and XChaCha20 subkeys from key and salt with the
// two labels and returns the keyed AEADs. The derived key bytes are wiped.
func newCiphers(key, salt []byte, aesLabel, xLabel string) (*ciphers, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	prk, err := hkdf.Extract(sha512.New, key, salt)
	if err != nil {
		return nil, fmt.Errorf("envelope: hkdf extract: %w", err)
	}
	defer secret.Wipe(prk)
	ka, err := hkdf.Expand(sha512.New, prk, aesLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("envelope: hkdf expand: %w", err)
	}
	defer secret.Wipe(ka)
	kx, err := hkdf.Expand(sha512.New, prk, xLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("envelope: hkdf expand: %w", err)
	}
	defer secret.Wipe(kx)
	block, err := aes.NewCipher(ka)
	if err != nil {
		return nil, fmt.Errorf("envelope: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: gcm: %w", err)
	}
	x, err := chacha20poly1305.NewX(kx)
	if err != nil {
		return nil, fmt.Errorf("envelope: xchacha20-poly1305: %w", err)
	}
	return &ciphers{gcm: gcm, x: x}, nil
}

// seal appends the double encryption of pt to dst, which must have capacity
// for len(pt)+2*tagSize more bytes to avoid a copy. pt and the free capacity
// of dst must not overlap.
func (c *ciphers) seal(dst, gNonce, xNonce, pt, aad []byte) []byte {
	start := len(dst)
	inner := c.gcm.Seal(dst[start:start], gNonce, pt, aad)
	// Outer layer encrypts the inner ciphertext in place.
	outer := c.x.Seal(inner[:0], xNonce, inner, aad)
	return dst[:start+len(outer)]
}

// open appends the plaintext of ct to dst. Any failure is ErrAuth.
func (c *ciphers) open(dst, gNonce, xNonce, ct, aad []byte) ([]byte, error) {
	start := len(dst)
	inner, err := c.x.Open(dst[start:start], xNonce, ct, aad)
	if err != nil {
		return nil, ErrAuth
	}
	pt, err := c.gcm.Open(inner[:0], gNonce, inner, aad)
	if err != nil {
		clear(inner)
		return nil, ErrAuth
	}
	return dst[:start+len(pt)], nil
}

// Seal encrypts plaintext under key (exactly 32 bytes) for ctx and returns
// the envelope: header || XChaCha20-Poly1305(AES-256-GCM(plaintext)). Both
// nonces are read from rand.
func Seal(rand io.Reader, key []byte, ctx Context, plaintext []byte) ([]byte, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	if err := ctx.Validate(); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: plaintext of %d bytes exceeds %d", ErrTooLarge, len(plaintext), MaxPlaintext)
	}
	out := make([]byte, HeaderSize, len(plaintext)+Overhead)
	copy(out, Magic)
	out[4] = Version
	out[5] = Suite1
	nonces := out[6:HeaderSize]
	if _, err := io.ReadFull(rand, nonces); err != nil {
		return nil, fmt.Errorf("envelope: reading random nonces: %w", err)
	}
	xNonce, gNonce := nonces[:xNonceSize], nonces[xNonceSize:]
	c, err := newCiphers(key, nonces, labelAES, labelXChaCha)
	if err != nil {
		return nil, err
	}
	aad := append(out[:HeaderSize:HeaderSize], ctx.AAD()...)
	return c.seal(out, gNonce, xNonce, plaintext, aad), nil
}

// parseHeader checks magic, version and suite, in that order.
func parseHeader(b []byte, magic string) error {
	if len(b) < len(magic)+2 {
		return ErrTruncated
	}
	if string(b[:len(magic)]) != magic {
		return ErrBadMagic
	}
	if b[len(magic)] != Version {
		return fmt.Errorf("%w: %d", ErrUnknownVersion, b[len(magic)])
	}
	if b[len(magic)+1] != Suite1 {
		return fmt.Errorf("%w: %d", ErrUnknownSuite, b[len(magic)+1])
	}
	return nil
}

// Open authenticates and decrypts an envelope made by Seal with the same key
// and context. Errors: ErrTruncated, ErrBadMagic, ErrUnknownVersion,
// ErrUnknownSuite, ErrTooLarge, ErrKeySize, ErrContext, and ErrAuth for every
// authentication failure.
func Open(key []byte, ctx Context, sealed []byte) ([]byte, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	if err := ctx.Validate(); err != nil {
		return nil, err
	}
	if err := parseHeader(sealed, Magic); err != nil {
		return nil, err
	}
	if len(sealed) < Overhead {
		return nil, ErrTruncated
	}
	if len(sealed)-Overhead > MaxPlaintext {
		return nil, ErrTooLarge
	}
	nonces := sealed[6:HeaderSize]
	xNonce, gNonce := nonces[:xNonceSize], nonces[xNonceSize:]
	c, err := newCiphers(key, nonces, labelAES, labelXChaCha)
	if err != nil {
		return nil, err
	}
	aad := append(sealed[:HeaderSize:HeaderSize], ctx.AAD()...)
	body := sealed[HeaderSize:]
	out := make([]byte, 0, len(body)-tagSize)
	return c.open(out, gNonce, xNonce, body, aad)
}
