package kdf

import (
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/safehold/safehold/internal/secret"
)

// Sizes and labels of the derivation; see the spec.
const (
	// SecretKeySize is the size of the account Secret Key.
	SecretKeySize = 16
	// KeySize is the size of KEK and LoginKey.
	KeySize = 32
	// MaxPasswordBytes bounds the password, before and after normalisation.
	MaxPasswordBytes = 4096
	// MaxExpandSize bounds Expand's output.
	MaxExpandSize = 64

	argon2KeyLen = 32
	pbkdf2KeyLen = 64
	ikmVersion   = 0x01

	extractSalt = "safehold/kdf/v1/extract"
	labelKEK    = "safehold/kdf/v1/kek"
	labelLogin  = "safehold/kdf/v1/login"
	labelExpand = "safehold/kdf/v1/expand/"
	maxLabelLen = 64
)

var (
	// ErrInvalidPassword reports a password that is empty, too long or not
	// valid UTF-8.
	ErrInvalidPassword = errors.New("kdf: invalid password")
	// ErrSecretKeySize reports a Secret Key that is neither absent nor 16
	// bytes.
	ErrSecretKeySize = errors.New("kdf: secret key must be 16 bytes")
)

// Keys holds the pseudorandom key of one derivation. Call Wipe when done.
// Methods panic after Wipe. Keys is not safe for concurrent use with Wipe.
type Keys struct {
	prk      secret.Bytes
	insecure bool
}

// Derive runs the cascade: the password is normalised to NFKC, Argon2id and
// PBKDF2-HMAC-SHA512 run concurrently with their own salts, and HKDF-SHA512
// extracts one pseudorandom key from both outputs, the header and the Secret
// Key. secretKey is nil (no Secret Key, e.g. a local-only vault) or exactly
// 16 bytes. Derive refuses the insecure test profile; see DeriveWith.
//
// The caller keeps ownership of password and secretKey and wipes them.
func Derive(password, secretKey []byte, p Params, s Salts) (*Keys, error) {
	return DeriveWith(password, secretKey, p, s, false)
}

// DeriveWith is Derive with the allowInsecure decision of Params.Check made
// by the caller. Only the CLI passes true, and only when
// SAFE_INSECURE_TEST_KDF=1.
func DeriveWith(password, secretKey []byte, p Params, s Salts, allowInsecure bool) (*Keys, error) {
	if err := p.Check(allowInsecure); err != nil {
		return nil, err
	}
	if secretKey != nil && len(secretKey) != SecretKeySize {
		return nil, fmt.Errorf("%w, got %d", ErrSecretKeySize, len(secretKey))
	}
	pw, err := normalise(password)
	if err != nil {
		return nil, err
	}
	defer secret.Wipe(pw)

	var a2 []byte
	var wg sync.WaitGroup
	wg.Go(func() {
		a2 = argon2.IDKey(pw, s.Argon2[:], p.Argon2Time, p.Argon2Memory, p.Argon2Threads, argon2KeyLen)
	})
	// crypto/pbkdf2 takes the password as a string. unsafe.String lends it
	// the normalised buffer without a copy; the buffer is not modified
	// until Key has returned. Key itself converts it back to []byte for its
	// HMAC, a copy this package cannot wipe (design §9.9).
	pb, pbErr := pbkdf2.Key(sha512.New, unsafe.String(unsafe.SliceData(pw), len(pw)), s.PBKDF2[:], int(p.PBKDF2Iterations), pbkdf2KeyLen)
	wg.Wait()
	defer secret.Wipe(a2)
	defer secret.Wipe(pb)
	if pbErr != nil {
		return nil, fmt.Errorf("kdf: pbkdf2: %w", pbErr)
	}

	ikm := buildIKM(Header{Params: p, Salts: s}, a2, pb, secretKey)
	defer secret.Wipe(ikm)
	prk, err := hkdf.Extract(sha512.New, ikm, []byte(extractSalt))
	if err != nil {
		return nil, fmt.Errorf("kdf: hkdf: %w", err)
	}
	return &Keys{prk: prk, insecure: p.InsecureTest}, nil
}

// normalise validates password and returns its NFKC form in a new buffer the
// caller wipes.
func normalise(password []byte) ([]byte, error) {
	switch {
	case len(password) == 0:
		return nil, fmt.Errorf("%w: empty", ErrInvalidPassword)
	case len(password) > MaxPasswordBytes:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidPassword, MaxPasswordBytes)
	case !utf8.Valid(password):
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidPassword)
	}
	// Room for typical expansion, so Append rarely reallocates (a
	// reallocation would leave an unwiped copy behind).
	pw := norm.NFKC.Append(make([]byte, 0, 2*len(password)+16), password...)
	if len(pw) > MaxPasswordBytes {
		secret.Wipe(pw)
		return nil, fmt.Errorf("%w: longer than %d bytes after normalisation", ErrInvalidPassword, MaxPasswordBytes)
	}
	return pw, nil
}

// buildIKM lays out the HKDF input keying material. Every field is
// length-prefixed (uint16, big-endian) so no two inputs share an encoding:
//
//	0x01                          layout version
//	len=80  || header             params and salts, as stored
//	len=32  || argon2id output
//	len=64  || pbkdf2 output
//	flag                          0x00 no Secret Key, 0x01 Secret Key present
//	len=0|16 || secret key
func buildIKM(h Header, a2, pb, secretKey []byte) []byte {
	b := make([]byte, 0, 1+2+HeaderSize+2+len(a2)+2+len(pb)+1+2+len(secretKey))
	b = append(b, ikmVersion)
	b = binary.BigEndian.AppendUint16(b, HeaderSize)
	b = h.appendBinary(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a2)))
	b = append(b, a2...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pb)))
	b = append(b, pb...)
	if secretKey != nil {
		b = append(b, 0x01)
	} else {
		b = append(b, 0x00)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(secretKey)))
	b = append(b, secretKey...)
	return b
}

func (k *Keys) expand(info string, n int) secret.Bytes {
	if k.prk == nil {
		panic("kdf: use of wiped keys")
	}
	out, err := hkdf.Expand(sha512.New, k.prk, info, n)
	if err != nil {
		panic("kdf: hkdf expand: " + err.Error()) // unreachable: n is bounded
	}
	return out
}

// KEK returns the 32-byte key-encryption key that wraps the Master Key. The
// caller wipes it.
func (k *Keys) KEK() secret.Bytes { return k.expand(labelKEK, KeySize) }

// LoginKey returns the 32-byte key the client proves to the server at
// login. It is independent of KEK: knowing it reveals nothing about KEK. The
// caller wipes it.
func (k *Keys) LoginKey() secret.Bytes { return k.expand(labelLogin, KeySize) }

// Expand returns n bytes for a future purpose named by label, a fixed string
// of 1 to 64 characters from [a-z0-9./-]. Labels live under their own prefix
// and cannot collide with KEK or LoginKey. Expand panics on an invalid label
// or n outside 1..64: both are programming errors.
func (k *Keys) Expand(label string, n int) secret.Bytes {
	if !validLabel(label) {
		panic(fmt.Sprintf("kdf: invalid expand label %q", label))
	}
	if n < 1 || n > MaxExpandSize {
		panic(fmt.Sprintf("kdf: expand size %d out of range", n))
	}
	return k.expand(labelExpand+label, n)
}

// String, GoString and Format print a redaction marker: fmt would otherwise
// print the unexported key bytes of a Keys value.
func (Keys) String() string { return "kdf.Keys[redacted]" }

// GoString implements fmt.GoStringer without revealing the value.
func (k Keys) GoString() string { return k.String() }

// Format implements fmt.Formatter without revealing the value.
func (k Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue implements slog.LogValuer without revealing the value.
func (k Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// InsecureTest reports whether the keys came from the insecure test profile.
func (k *Keys) InsecureTest() bool { return k.insecure }

// Wipe zeroes the pseudorandom key. Further use panics.
func (k *Keys) Wipe() {
	k.prk.Wipe()
	k.prk = nil
}

func validLabel(l string) bool {
	if len(l) == 0 || len(l) > maxLabelLen {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}
