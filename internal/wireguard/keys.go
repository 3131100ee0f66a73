// Package wireguard handles WireGuard VPN profile items: Curve25519 key
// pairs in wg's base64 form, a validated Profile type stored as canonical
// JSON inside an encrypted item, and import and export of wg-quick .conf
// files.
//
// ParseWGQuick is strict: unknown keys, shell hooks (PreUp, PostUp, ...),
// duplicate settings and malformed values are errors naming the line, so a
// file taken from an untrusted source can never smuggle a command into the
// configuration that ExportWGQuick writes back.
package wireguard

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/safehold/safehold/internal/secret"
)

// KeySize is the size of every WireGuard key (private, public, preshared).
const KeySize = 32

// keyB64Len is the length of a key in wg's encoding: standard base64 with
// padding.
const keyB64Len = 44

// ErrKey is wrapped by errors about malformed keys.
var ErrKey = errors.New("invalid wireguard key")

// b64 is wg's key encoding: RFC 4648 standard alphabet, with padding, and
// strict (the unused low bits of the last character must be zero).
var b64 = base64.StdEncoding.Strict()

// Key is a WireGuard public key.
type Key [KeySize]byte

// String returns the key as wg prints it (44 characters of base64).
func (k Key) String() string { return b64.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (unset).
func (k Key) IsZero() bool { return k == Key{} }

// ParseKey decodes a public key in wg's base64 form.
func ParseKey(s string) (Key, error) {
	var k Key
	if err := decodeKey(k[:], s); err != nil {
		return Key{}, err
	}
	return k, nil
}

func decodeKey(dst []byte, s string) error { return decodeKeyBytes(dst, []byte(s)) }

func decodeKeyBytes(dst, s []byte) error {
	if len(s) != keyB64Len {
		return fmt.Errorf("%w: want %d base64 characters, got %d", ErrKey, keyB64Len, len(s))
	}
	var tmp [KeySize + 1]byte // DecodedLen(44) is 33
	defer secret.Wipe(tmp[:])
	n, err := b64.Decode(tmp[:], s)
	if err != nil || n != KeySize {
		return fmt.Errorf("%w: not canonical base64 of %d bytes", ErrKey, KeySize)
	}
	copy(dst, tmp[:KeySize])
	return nil
}

// ParsePrivateKey decodes a private (or preshared) key in wg's base64 form.
func ParsePrivateKey(s string) (secret.Bytes, error) {
	k := make(secret.Bytes, KeySize)
	if err := decodeKey(k, s); err != nil {
		k.Wipe()
		return nil, err
	}
	return k, nil
}

// EncodePrivateKey returns a private or preshared key in wg's base64 form.
// The string cannot be wiped; use it only to write a file or a terminal.
func EncodePrivateKey(k secret.Bytes) string { return b64.EncodeToString(k) }

// GenerateKey returns a new private key: 32 bytes from r, clamped as
// RFC 7748 and `wg genkey` do (clear bits 0-2 of byte 0 and bit 7 of byte
// 31, set bit 6 of byte 31). X25519 clamps on use anyway; storing the clamped
// form makes our keys byte-identical to wg's.
func GenerateKey(r io.Reader) (secret.Bytes, error) {
	k := make(secret.Bytes, KeySize)
	if _, err := io.ReadFull(r, k); err != nil {
		k.Wipe()
		return nil, fmt.Errorf("read random source: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// GeneratePresharedKey returns 32 bytes from r, as `wg genpsk` does.
func GeneratePresharedKey(r io.Reader) (secret.Bytes, error) {
	k := make(secret.Bytes, KeySize)
	if _, err := io.ReadFull(r, k); err != nil {
		k.Wipe()
		return nil, fmt.Errorf("read random source: %w", err)
	}
	return k, nil
}

// PublicKeyOf derives the public key of a 32-byte private key (X25519 of
// the base point, via crypto/ecdh).
func PublicKeyOf(priv []byte) (Key, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("%w: private key must be %d bytes", ErrKey, KeySize)
	}
	var k Key
	copy(k[:], sk.PublicKey().Bytes())
	return k, nil
}

// PublicKey derives the base64 public key from a base64 private key, as
// `wg pubkey` does.
func PublicKey(privateB64 string) (string, error) {
	priv, err := ParsePrivateKey(privateB64)
	if err != nil {
		return "", err
	}
	defer priv.Wipe()
	pub, err := PublicKeyOf(priv)
	if err != nil {
		return "", err
	}
	return pub.String(), nil
}
