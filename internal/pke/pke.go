// Package pke implements Safehold's public-key encryption: HPKE (RFC 9180)
// with the hybrid KEM MLKEM768-X25519 (X-Wing) and HKDF-SHA512 exports a
// 32-byte key, and the payload is sealed under it with the suite 1 envelope
// (AES-256-GCM inside XChaCha20-Poly1305). Key agreement thus rests on
// ML-KEM-768 and X25519, and payload encryption on AES and ChaCha20.
//
// The HPKE info binds the ciphertext header, the recipient key fingerprint
// and the envelope context, so a ciphertext opens only for its recipient and
// in its place. Encodings are specified in
// docs/design.md.
package pke

//go:generate go run ./internal/vectorgen -o testdata/vectors.json

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/secret"
)

// Format constants.
const (
	// AlgXWingV1 identifies MLKEM768-X25519 keys; it is the first byte of
	// the key encodings.
	AlgXWingV1 byte = 0x01
	// SeedSize is the X-Wing private key seed.
	SeedSize = 32
	// PrivateKeySize is alg id + seed.
	PrivateKeySize = 1 + SeedSize // 33
	// KEMPublicKeySize is the X-Wing public key: ML-KEM-768 (1184) + X25519 (32).
	KEMPublicKeySize = 1184 + 32
	// PublicKeySize is alg id + X-Wing public key.
	PublicKeySize = 1 + KEMPublicKeySize // 1217
	// EncSize is the X-Wing encapsulation: ML-KEM-768 ciphertext (1088) +
	// X25519 ephemeral public key (32).
	EncSize = 1088 + 32

	// Magic starts every ciphertext: "SHPK", SafeHold Public Key.
	Magic = "SHPK"
	// Version is the only ciphertext version this package reads and writes.
	Version byte = 0x01
	// Suite1 is X-Wing + HKDF-SHA512 + HPKE export-only, payload in envelope
	// suite 1.
	Suite1 byte = 0x01
	// HeaderSize is magic (4) + version (1) + suite (1).
	HeaderSize = len(Magic) + 2
	// Overhead is what Seal adds to the plaintext.
	Overhead = HeaderSize + EncSize + envelope.Overhead
	// MaxPlaintext bounds one ciphertext (the envelope bound).
	MaxPlaintext = envelope.MaxPlaintext

	// FingerprintSize is the size of Fingerprint's result.
	FingerprintSize = 32

	infoLabel        = "safehold/pke/v1"
	exportLabel      = "safehold/pke/v1/envelope-key"
	fingerprintLabel = "safehold/pke/fingerprint/v1"
)

// Errors returned by this package. Match them with errors.Is. Envelope errors
// (envelope.ErrContext...) pass through wrapped.
var (
	// ErrAuth means the ciphertext did not decrypt: wrong recipient, wrong
	// context, or any modification.
	ErrAuth = errors.New("pke: decryption failed")
	// ErrMalformedKey means a key encoding has the wrong size or algorithm or
	// is not a valid key.
	ErrMalformedKey = errors.New("pke: malformed key")
	// ErrTruncated means the ciphertext is shorter than its format requires.
	ErrTruncated = errors.New("pke: truncated ciphertext")
	// ErrBadMagic means the input is not a pke ciphertext.
	ErrBadMagic = errors.New("pke: not a safehold pke ciphertext (bad magic)")
	// ErrUnknownVersion means the version byte is not one this code reads.
	ErrUnknownVersion = errors.New("pke: unknown format version")
	// ErrUnknownSuite means the suite byte is not one this code reads.
	ErrUnknownSuite = errors.New("pke: unknown cipher suite")
	// ErrTooLarge means the ciphertext exceeds the size bound.
	ErrTooLarge = errors.New("pke: ciphertext too large")
)

func kem() hpke.KEM { return hpke.MLKEM768X25519() }

// PublicKey is a recipient's encryption key. It is immutable.
type PublicKey struct {
	k   hpke.PublicKey
	raw []byte // PublicKeySize bytes
}

// PrivateKey is a decryption key. Call Wipe when done with it.
type PrivateKey struct {
	seed secret.Bytes
	k    hpke.PrivateKey
	pub  *PublicKey
}

// GenerateKey reads a SeedSize-byte seed from rand and derives a key pair.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	seed := make(secret.Bytes, SeedSize)
	defer seed.Wipe()
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("pke: reading random seed: %w", err)
	}
	return NewKeyFromSeed(seed)
}

// NewKeyFromSeed derives a key pair from the 32-byte X-Wing seed, expanded
// with SHAKE256 into the ML-KEM-768 and X25519 keys as draft-ietf-hpke-pq
// specifies. The seed is copied.
func NewKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed must be %d bytes", ErrMalformedKey, SeedSize)
	}
	k, err := kem().NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	pk := k.PublicKey()
	raw := append([]byte{AlgXWingV1}, pk.Bytes()...)
	return &PrivateKey{seed: secret.Bytes(seed).Clone(), k: k, pub: &PublicKey{k: pk, raw: raw}}, nil
}

// ParsePrivateKey parses the PrivateKeySize-byte encoding alg id || seed.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes, want %d", ErrMalformedKey, len(b), PrivateKeySize)
	}
	if b[0] != AlgXWingV1 {
		return nil, fmt.Errorf("%w: unknown algorithm %d", ErrMalformedKey, b[0])
	}
	return NewKeyFromSeed(b[1:])
}

// Bytes returns the private key encoding alg id || seed. The caller owns the
// copy and must wipe it.
func (k *PrivateKey) Bytes() secret.Bytes {
	b := make(secret.Bytes, 0, PrivateKeySize)
	b = append(b, AlgXWingV1)
	return append(b, k.seed...)
}

// Public returns the public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Wipe overwrites this package's copy of the seed and drops the expanded
// key. The expanded key inside crypto/hpke cannot be overwritten from here;
// it becomes garbage. The key cannot decrypt afterwards.
func (k *PrivateKey) Wipe() {
	k.seed.Wipe()
	k.seed, k.k = nil, nil
}

// ParsePublicKey parses the PublicKeySize-byte encoding alg id || ML-KEM-768
// encapsulation key || X25519 public key. The ML-KEM key must be canonical
// (every coefficient below q), as FIPS 203 requires.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes, want %d", ErrMalformedKey, len(b), PublicKeySize)
	}
	if b[0] != AlgXWingV1 {
		return nil, fmt.Errorf("%w: unknown algorithm %d", ErrMalformedKey, b[0])
	}
	k, err := kem().NewPublicKey(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	raw := bytes.Clone(b)
	if !bytes.Equal(append([]byte{AlgXWingV1}, k.Bytes()...), raw) {
		return nil, fmt.Errorf("%w: non-canonical encoding", ErrMalformedKey)
	}
	return &PublicKey{k: k, raw: raw}, nil
}

// Bytes returns the PublicKeySize-byte encoding.
func (p *PublicKey) Bytes() []byte { return bytes.Clone(p.raw) }

// MarshalBinary returns the PublicKeySize-byte encoding.
func (p *PublicKey) MarshalBinary() ([]byte, error) { return p.Bytes(), nil }

// Equal reports whether p and q are the same key.
func (p *PublicKey) Equal(q *PublicKey) bool {
	return q != nil && subtle.ConstantTimeCompare(p.raw, q.raw) == 1
}

// Fingerprint identifies the key: with E = u8(len(label)) || label ||
// public key encoding and label "safehold/pke/fingerprint/v1", it is
// SHA-256(E)[:16] || SHA3-256(E)[:16].
func (p *PublicKey) Fingerprint() []byte {
	e := make([]byte, 0, 1+len(fingerprintLabel)+len(p.raw))
	e = append(e, byte(len(fingerprintLabel)))
	e = append(e, fingerprintLabel...)
	e = append(e, p.raw...)
	a, b := sha256.Sum256(e), sha3.Sum256(e)
	return append(a[:16:16], b[:16]...)
}

// info is the HPKE info:
//
//	u8(len(label)) || label || header (6) || fingerprint (32) ||
//	u32(len(aad)) || ctx.AAD()
func info(header []byte, p *PublicKey, ctx envelope.Context) []byte {
	aad := ctx.AAD()
	b := make([]byte, 0, 1+len(infoLabel)+HeaderSize+FingerprintSize+4+len(aad))
	b = append(b, byte(len(infoLabel)))
	b = append(b, infoLabel...)
	b = append(b, header...)
	b = append(b, p.Fingerprint()...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(aad)))
	return append(b, aad...)
}

func header() []byte { return []byte{Magic[0], Magic[1], Magic[2], Magic[3], Version, Suite1} }

// Seal encrypts plaintext to pub for ctx and returns
// magic || version || suite || enc (EncSize) || envelope.
//
// The envelope nonces come from rand. The KEM encapsulation randomness
// comes from crypto/rand inside crypto/hpke, which takes no reader.
func Seal(rand io.Reader, pub *PublicKey, ctx envelope.Context, plaintext []byte) ([]byte, error) {
	if err := ctx.Validate(); err != nil {
		return nil, fmt.Errorf("pke: %w", err)
	}
	if len(plaintext) > MaxPlaintext {
		return nil, ErrTooLarge
	}
	h := header()
	enc, sender, err := hpke.NewSender(pub.k, hpke.HKDFSHA512(), hpke.ExportOnly(), info(h, pub, ctx))
	if err != nil {
		return nil, fmt.Errorf("pke: hpke sender: %w", err)
	}
	key, err := sender.Export(exportLabel, envelope.KeySize)
	if err != nil {
		return nil, fmt.Errorf("pke: hpke export: %w", err)
	}
	defer secret.Wipe(key)
	env, err := envelope.Seal(rand, key, ctx, plaintext)
	if err != nil {
		return nil, fmt.Errorf("pke: %w", err)
	}
	out := make([]byte, 0, HeaderSize+len(enc)+len(env))
	out = append(out, h...)
	out = append(out, enc...)
	return append(out, env...), nil
}

// Open decrypts a ciphertext made by Seal for k's public key and ctx.
// Errors: ErrTruncated, ErrBadMagic, ErrUnknownVersion, ErrUnknownSuite,
// ErrTooLarge, and ErrAuth for every decryption failure.
func Open(k *PrivateKey, ctx envelope.Context, ciphertext []byte) ([]byte, error) {
	if k.k == nil {
		return nil, errors.New("pke: private key was wiped")
	}
	if err := ctx.Validate(); err != nil {
		return nil, fmt.Errorf("pke: %w", err)
	}
	if err := parseHeader(ciphertext); err != nil {
		return nil, err
	}
	if len(ciphertext) < Overhead {
		return nil, ErrTruncated
	}
	if len(ciphertext)-Overhead > MaxPlaintext {
		return nil, ErrTooLarge
	}
	h := ciphertext[:HeaderSize]
	enc := ciphertext[HeaderSize : HeaderSize+EncSize]
	r, err := hpke.NewRecipient(enc, k.k, hpke.HKDFSHA512(), hpke.ExportOnly(), info(h, k.pub, ctx))
	if err != nil {
		return nil, ErrAuth
	}
	key, err := r.Export(exportLabel, envelope.KeySize)
	if err != nil {
		return nil, fmt.Errorf("pke: hpke export: %w", err)
	}
	defer secret.Wipe(key)
	pt, err := envelope.Open(key, ctx, ciphertext[HeaderSize+EncSize:])
	if err != nil {
		if errors.Is(err, envelope.ErrAuth) {
			return nil, ErrAuth
		}
		return nil, fmt.Errorf("pke: %w", err)
	}
	return pt, nil
}

func parseHeader(b []byte) error {
	if len(b) < HeaderSize {
		return ErrTruncated
	}
	if string(b[:4]) != Magic {
		return ErrBadMagic
	}
	if b[4] != Version {
		return fmt.Errorf("%w: %d", ErrUnknownVersion, b[4])
	}
	if b[5] != Suite1 {
		return fmt.Errorf("%w: %d", ErrUnknownSuite, b[5])
	}
	return nil
}
