package keycode

import (
	"crypto/hkdf"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"

	"github.com/safehold/safehold/internal/secret"
)

const (
	// RecoveryKEKSize is the size of the key RecoveryKey.KEK returns.
	RecoveryKEKSize = 32
	// recoveryKEKInfo is the HKDF info string of RecoveryKey.KEK.
	recoveryKEKInfo = "safehold/keycode/v1/recovery-kek"

	redactedRecovery = "R1-[redacted]"
	redactedSecret   = "S1-[redacted]"
)

// RecoveryKey is a random 128-bit key that unwraps the account's Master Key
// when the password is forgotten. It is shown once, as Reveal's text.
// The zero value is not a valid key. Compare with Equal, not ==, which is
// not constant-time.
type RecoveryKey struct {
	k [KeySize]byte
}

// NewRecoveryKey reads a new Recovery Key from r, which should be a
// *random.Source.
func NewRecoveryKey(r io.Reader) (RecoveryKey, error) {
	k, err := generate(r)
	return RecoveryKey{k}, err
}

// ParseRecoveryKey reads the text form, forgiving case, spaces, hyphens and
// the letters O, I and L. It fails with ErrChecksum on a typo, ErrWrongKind
// on a Secret Key, ErrVersion on an unknown version and ErrFormat otherwise.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	k, err := parse(recoveryKind, s)
	return RecoveryKey{k}, err
}

// Reveal returns the canonical text form, R1- and eight groups of four. It
// is the only way to see the key: call it only where the user is shown the
// key (the recovery kit).
func (k RecoveryKey) Reveal() string { return recoveryKind.format(&k.k) }

// Bytes returns a copy of the 16 key bytes, for the caller to wipe.
func (k RecoveryKey) Bytes() secret.Bytes { return secret.Bytes(k.k[:]).Clone() }

// Equal reports whether k and o are the same key, in constant time.
func (k RecoveryKey) Equal(o RecoveryKey) bool {
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// KEK returns the 32-byte key that wraps the Master Key beside the
// password-derived one: HKDF-SHA512(ikm = key, salt = accountSalt, info =
// "safehold/keycode/v1/recovery-kek"). The key has full entropy, so no slow
// KDF is needed; accountSalt (the account's KDF salt or id) binds the KEK to
// one account. The caller wipes the result.
func (k RecoveryKey) KEK(accountSalt []byte) secret.Bytes {
	out, err := hkdf.Key(sha512.New, k.k[:], accountSalt, recoveryKEKInfo, RecoveryKEKSize)
	if err != nil {
		panic("keycode: hkdf: " + err.Error()) // unreachable: 32 bytes is in range
	}
	return out
}

// Wipe zeroes the key.
func (k *RecoveryKey) Wipe() { clear(k.k[:]) }

// String implements fmt.Stringer without revealing the key.
func (RecoveryKey) String() string { return redactedRecovery }

// GoString implements fmt.GoStringer without revealing the key.
func (RecoveryKey) GoString() string { return redactedRecovery }

// Format implements fmt.Formatter so that every verb prints the redaction.
func (RecoveryKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedRecovery)) }

// MarshalJSON implements json.Marshaler without revealing the key.
func (RecoveryKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedRecovery + `"`), nil }

// LogValue implements slog.LogValuer without revealing the key.
func (RecoveryKey) LogValue() slog.Value { return slog.StringValue(redactedRecovery) }

// SecretKey is the account's random 128-bit Secret Key, mixed into the
// password derivation (kdf.Derive) so that a stolen server database cannot
// be attacked offline. It is kept on each device and printed in the kit.
// The zero value is not a valid key. Compare with Equal.
type SecretKey struct {
	k [KeySize]byte
}

// NewSecretKey reads a new Secret Key from r, which should be a
// *random.Source.
func NewSecretKey(r io.Reader) (SecretKey, error) {
	k, err := generate(r)
	return SecretKey{k}, err
}

// ParseSecretKey reads the text form, forgiving case, spaces, hyphens and
// the letters O, I and L. It fails with ErrChecksum on a typo, ErrWrongKind
// on a Recovery Key, ErrVersion on an unknown version and ErrFormat
// otherwise.
func ParseSecretKey(s string) (SecretKey, error) {
	k, err := parse(secretKind, s)
	return SecretKey{k}, err
}

// Reveal returns the canonical text form, S1- and eight groups of four, for
// the emergency kit and the device-setup screen only.
func (k SecretKey) Reveal() string { return secretKind.format(&k.k) }

// Bytes returns a copy of the 16 key bytes (kdf.Derive's secretKey), for
// the caller to wipe.
func (k SecretKey) Bytes() secret.Bytes { return secret.Bytes(k.k[:]).Clone() }

// Equal reports whether k and o are the same key, in constant time.
func (k SecretKey) Equal(o SecretKey) bool { return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1 }

// Wipe zeroes the key.
func (k *SecretKey) Wipe() { clear(k.k[:]) }

// String implements fmt.Stringer without revealing the key.
func (SecretKey) String() string { return redactedSecret }

// GoString implements fmt.GoStringer without revealing the key.
func (SecretKey) GoString() string { return redactedSecret }

// Format implements fmt.Formatter so that every verb prints the redaction.
func (SecretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedSecret)) }

// MarshalJSON implements json.Marshaler without revealing the key.
func (SecretKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedSecret + `"`), nil }

// LogValue implements slog.LogValuer without revealing the key.
func (SecretKey) LogValue() slog.Value { return slog.StringValue(redactedSecret) }

// SecretKeyFromBytes makes a Secret Key from its 16 raw bytes, as a vault
// stores it.
func SecretKeyFromBytes(b []byte) (SecretKey, error) {
	var k SecretKey
	if len(b) != KeySize {
		return k, fmt.Errorf("%w: a Secret Key is %d bytes, not %d", ErrFormat, KeySize, len(b))
	}
	copy(k.k[:], b)
	return k, nil
}
