// Package sign implements Safehold's hybrid signatures: Ed25519 and
// ML-DSA-65 (FIPS 204) side by side. A signature is valid only if both
// component signatures verify, so forging one needs both algorithms broken.
//
// Every signature is made for a context string that names what is signed
// ("vault-log-entry", "device-cert"...): a signature made for one context
// never verifies for another. Keys are derived from a 64-byte seed, which is
// also the private key encoding. Encodings are specified in
// docs/design.md.
package sign

//go:generate go run ./internal/vectorgen -o testdata/vectors.json

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/safehold/safehold/internal/secret"
)

// Sizes and identifiers of the encodings.
const (
	// AlgHybridV1 identifies Ed25519 + ML-DSA-65 with the v1 message
	// encoding. It is the first byte of every key and signature encoding.
	AlgHybridV1 byte = 0x01

	// SeedSize is the private seed: 32 bytes of Ed25519 seed followed by
	// 32 bytes of ML-DSA-65 seed.
	SeedSize = ed25519.SeedSize + mldsa65.SeedSize // 64
	// PrivateKeySize is alg id + seed.
	PrivateKeySize = 1 + SeedSize // 65
	// PublicKeySize is alg id + Ed25519 public key + ML-DSA-65 public key.
	PublicKeySize = 1 + ed25519.PublicKeySize + mldsa65.PublicKeySize // 1985
	// SignatureSize is alg id + Ed25519 signature + ML-DSA-65 signature.
	SignatureSize = 1 + ed25519.SignatureSize + mldsa65.SignatureSize // 3374

	// MaxContext bounds the context string (the ML-DSA limit).
	MaxContext = 255
	// FingerprintSize is the size of Fingerprint's result.
	FingerprintSize = 32

	messageLabel     = "safehold/sign/v1"
	fingerprintLabel = "safehold/sign/fingerprint/v1"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrInvalidSignature means the signature is malformed or at least one of
	// its two components does not verify. It does not say which.
	ErrInvalidSignature = errors.New("sign: invalid signature")
	// ErrMalformedKey means a key encoding is not canonical or has the wrong
	// size or algorithm.
	ErrMalformedKey = errors.New("sign: malformed key")
	// ErrContext means the context string is empty or longer than MaxContext.
	ErrContext = errors.New("sign: invalid context")
	// ErrWiped means the private key was wiped.
	ErrWiped = errors.New("sign: private key was wiped")
)

// PublicKey is a hybrid verification key. It is immutable.
type PublicKey struct {
	ed  ed25519.PublicKey
	ml  *mldsa65.PublicKey
	raw []byte // the PublicKeySize-byte encoding
}

// PrivateKey is a hybrid signing key. Call Wipe when done with it.
type PrivateKey struct {
	seed secret.Bytes // SeedSize bytes
	ed   ed25519.PrivateKey
	ml   *mldsa65.PrivateKey
	pub  *PublicKey
}

// GenerateKey reads a SeedSize-byte seed from rand and derives a key pair.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	seed := make(secret.Bytes, SeedSize)
	defer seed.Wipe()
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("sign: reading random seed: %w", err)
	}
	return NewKeyFromSeed(seed)
}

// NewKeyFromSeed derives a key pair from a SeedSize-byte seed: its first 32
// bytes are the Ed25519 seed (RFC 8032), the last 32 the ML-DSA-65 seed
// (FIPS 204 ξ). The seed is copied.
func NewKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed must be %d bytes", ErrMalformedKey, SeedSize)
	}
	k := &PrivateKey{seed: secret.Bytes(seed).Clone()}
	k.ed = ed25519.NewKeyFromSeed(k.seed[:ed25519.SeedSize])
	var mlSeed [mldsa65.SeedSize]byte
	copy(mlSeed[:], k.seed[ed25519.SeedSize:])
	mlPub, mlPriv := mldsa65.NewKeyFromSeed(&mlSeed)
	secret.Wipe(mlSeed[:])
	k.ml = mlPriv
	raw := make([]byte, 0, PublicKeySize)
	raw = append(raw, AlgHybridV1)
	raw = append(raw, k.ed.Public().(ed25519.PublicKey)...)
	raw = append(raw, mlPub.Bytes()...)
	k.pub = &PublicKey{ed: bytes.Clone(raw[1 : 1+ed25519.PublicKeySize]), ml: mlPub, raw: raw}
	return k, nil
}

// ParsePrivateKey parses the PrivateKeySize-byte encoding alg id || seed.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes, want %d", ErrMalformedKey, len(b), PrivateKeySize)
	}
	if b[0] != AlgHybridV1 {
		return nil, fmt.Errorf("%w: unknown algorithm %d", ErrMalformedKey, b[0])
	}
	return NewKeyFromSeed(b[1:])
}

// Bytes returns the private key encoding, alg id || seed. The caller owns
// the copy and must wipe it.
func (k *PrivateKey) Bytes() secret.Bytes {
	b := make(secret.Bytes, 0, PrivateKeySize)
	b = append(b, AlgHybridV1)
	return append(b, k.seed...)
}

// Public returns the public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Wipe overwrites the seed and the expanded private keys. The key cannot
// sign afterwards.
func (k *PrivateKey) Wipe() {
	k.seed.Wipe()
	secret.Wipe(k.ed)
	if k.ml != nil {
		*k.ml = mldsa65.PrivateKey{}
	}
	k.seed, k.ed, k.ml = nil, nil, nil
}

func checkContext(context string) error {
	if context == "" || len(context) > MaxContext {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrContext, len(context), MaxContext)
	}
	return nil
}

// message is the byte string both algorithms sign:
//
//	u8(len(label)) || label || u8(len(context)) || context || msg
func message(context string, msg []byte) []byte {
	m := make([]byte, 0, 2+len(messageLabel)+len(context)+len(msg))
	m = append(m, byte(len(messageLabel)))
	m = append(m, messageLabel...)
	m = append(m, byte(len(context)))
	m = append(m, context...)
	return append(m, msg...)
}

// Sign signs msg for context (1..MaxContext bytes) and returns the
// SignatureSize-byte signature alg id || Ed25519 sig || ML-DSA-65 sig. Both
// components are deterministic: the same key, context and message always
// give the same signature.
func (k *PrivateKey) Sign(context string, msg []byte) ([]byte, error) {
	if k.ml == nil {
		return nil, ErrWiped
	}
	if err := checkContext(context); err != nil {
		return nil, err
	}
	m := message(context, msg)
	sig := make([]byte, SignatureSize)
	sig[0] = AlgHybridV1
	copy(sig[1:], ed25519.Sign(k.ed, m))
	if err := mldsa65.SignTo(k.ml, m, []byte(context), false, sig[1+ed25519.SignatureSize:]); err != nil {
		return nil, fmt.Errorf("sign: ml-dsa-65: %w", err)
	}
	return sig, nil
}

// ParsePublicKey parses the PublicKeySize-byte encoding
// alg id || Ed25519 public key || ML-DSA-65 public key. The Ed25519 part
// must be a canonical encoding (y < 2^255-19).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes, want %d", ErrMalformedKey, len(b), PublicKeySize)
	}
	if b[0] != AlgHybridV1 {
		return nil, fmt.Errorf("%w: unknown algorithm %d", ErrMalformedKey, b[0])
	}
	edb := b[1 : 1+ed25519.PublicKeySize]
	if !canonicalY(edb) {
		return nil, fmt.Errorf("%w: non-canonical ed25519 key", ErrMalformedKey)
	}
	ml := new(mldsa65.PublicKey)
	if err := ml.UnmarshalBinary(b[1+ed25519.PublicKeySize:]); err != nil {
		return nil, fmt.Errorf("%w: ml-dsa-65: %w", ErrMalformedKey, err)
	}
	raw := bytes.Clone(b)
	return &PublicKey{ed: raw[1 : 1+ed25519.PublicKeySize], ml: ml, raw: raw}, nil
}

// canonicalY reports whether the 255-bit little-endian y coordinate of an
// encoded Edwards point is below p = 2^255-19 (the sign bit is ignored).
// Values p..2^255-1 are the non-canonical encodings that some decoders
// accept; refusing them keeps one encoding, hence one fingerprint, per key.
func canonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f || b[0] < 0xed {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}

// MarshalBinary returns the PublicKeySize-byte encoding.
func (p *PublicKey) MarshalBinary() ([]byte, error) { return bytes.Clone(p.raw), nil }

// Bytes returns the PublicKeySize-byte encoding.
func (p *PublicKey) Bytes() []byte { return bytes.Clone(p.raw) }

// Equal reports whether p and q are the same key.
func (p *PublicKey) Equal(q *PublicKey) bool {
	return q != nil && subtle.ConstantTimeCompare(p.raw, q.raw) == 1
}

// Verify checks sig over msg for context. It returns nil only if the
// signature has the exact size and algorithm and both the Ed25519 and the
// ML-DSA-65 signatures verify; otherwise ErrInvalidSignature.
func (p *PublicKey) Verify(context string, msg, sig []byte) error {
	if err := checkContext(context); err != nil {
		return err
	}
	if len(sig) != SignatureSize || sig[0] != AlgHybridV1 {
		return ErrInvalidSignature
	}
	m := message(context, msg)
	edOK := ed25519.Verify(p.ed, m, sig[1:1+ed25519.SignatureSize])
	mlOK := mldsa65.Verify(p.ml, m, []byte(context), sig[1+ed25519.SignatureSize:])
	if !edOK || !mlOK {
		return ErrInvalidSignature
	}
	return nil
}

// Fingerprint identifies the key: with E = u8(len(label)) || label ||
// public key encoding, it is SHA-256(E)[:16] || SHA3-256(E)[:16]. Both halves
// must collide for two keys to share a fingerprint.
func (p *PublicKey) Fingerprint() []byte {
	e := make([]byte, 0, 1+len(fingerprintLabel)+len(p.raw))
	e = append(e, byte(len(fingerprintLabel)))
	e = append(e, fingerprintLabel...)
	e = append(e, p.raw...)
	a := sha256.Sum256(e)
	b := sha3.Sum256(e)
	return append(a[:16:16], b[:16]...)
}

// FingerprintString is the form two people compare out loud: six groups of
// five decimal digits, "01234 56789 ...". Group i is the big-endian 40-bit
// integer of Fingerprint bytes 5i..5i+4, modulo 100000; 30 digits carry
// about 99.7 bits.
func (p *PublicKey) FingerprintString() string {
	return HumanFingerprint(p.Fingerprint())
}

// HumanFingerprint formats a FingerprintSize-byte fingerprint as
// FingerprintString does. Other packages use it for their own keys.
func HumanFingerprint(fp []byte) string {
	if len(fp) < 30 {
		return ""
	}
	var sb strings.Builder
	for i := range 6 {
		var b [8]byte
		copy(b[3:], fp[5*i:5*i+5])
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%05d", binary.BigEndian.Uint64(b[:])%100000)
	}
	return sb.String()
}
