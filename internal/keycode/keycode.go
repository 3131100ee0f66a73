// Package keycode gives the Recovery Key and the Secret Key their human text
// forms: a kind-and-version prefix, then the 16 key bytes and a 4-byte
// checksum in Crockford base32, in groups of four:
//
//	R1-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX   Recovery Key
//	S1-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX   Secret Key
//
// Parsing forgives case, spacing, hyphens and the confusable letters O, I
// and L, and refuses a mistyped key by its checksum before any key
// derivation runs. A key of one kind typed where the other is expected is
// recognised and refused by name.
//
// Both key types are secrets: String, Format, GoString, MarshalJSON and
// LogValue print a redaction marker; Reveal returns the text for the one
// place it is shown to the user. The format is specified in
// docs/design.md.
package keycode

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

const (
	// KeySize is the size of both keys: 128 bits of entropy.
	KeySize = 16
	// ChecksumSize is the size of the checksum appended before encoding.
	ChecksumSize = 4

	// alphabet is Crockford's base32 alphabet: digits and upper-case
	// letters without I, L, O and U.
	alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

	// bodyChars is the length of the encoded key and checksum: 20 bytes
	// are exactly 160 bits, 32 characters, with no padding or spare bits.
	bodyChars = (KeySize + ChecksumSize) * 8 / 5
	groupSize = 4

	// maxInput bounds the text Parse looks at. The canonical form is 42
	// characters; generous room is left for spaces and hyphens.
	maxInput = 256
)

var encoding = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

var (
	// ErrFormat reports text that is not a key of the expected form:
	// a bad character, a missing prefix or a wrong length.
	ErrFormat = errors.New("keycode: not a valid key")
	// ErrChecksum reports a key whose checksum does not match: a typo.
	ErrChecksum = errors.New("keycode: checksum mismatch, the key was mistyped")
	// ErrWrongKind reports a key of the other kind, e.g. a Recovery Key
	// entered where the Secret Key is asked for.
	ErrWrongKind = errors.New("keycode: wrong kind of key")
	// ErrVersion reports a key format version this client does not know.
	ErrVersion = errors.New("keycode: unsupported key version")
	// ErrZeroKey reports an all-zero key from the random source: the
	// generator is broken.
	ErrZeroKey = errors.New("keycode: random source returned an all-zero key")
)

// kind describes one of the two key types.
type kind struct {
	letter  byte   // first prefix character
	version byte   // format version, also the second prefix character's value
	domain  string // checksum domain separation string
	name    string // for messages
}

var (
	recoveryKind = kind{letter: 'R', version: 1, domain: "safehold/keycode/recovery-key", name: "recovery key"}
	secretKind   = kind{letter: 'S', version: 1, domain: "safehold/keycode/secret-key", name: "secret key"}
)

// checksum is SHA-256(domain || version || key)[:4].
func (k kind) checksum(key *[KeySize]byte) [ChecksumSize]byte {
	h := sha256.New()
	h.Write([]byte(k.domain))
	h.Write([]byte{k.version})
	h.Write(key[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return [ChecksumSize]byte(sum[:ChecksumSize])
}

// format returns the canonical text: prefix, then the body in groups of
// four, all separated by '-'.
func (k kind) format(key *[KeySize]byte) string {
	var raw [KeySize + ChecksumSize]byte
	copy(raw[:], key[:])
	sum := k.checksum(key)
	copy(raw[KeySize:], sum[:])
	body := encoding.EncodeToString(raw[:])
	clear(raw[:])
	var b strings.Builder
	b.Grow(2 + bodyChars + bodyChars/groupSize)
	b.WriteByte(k.letter)
	b.WriteByte('0' + k.version)
	for i := 0; i < bodyChars; i += groupSize {
		b.WriteByte('-')
		b.WriteString(body[i : i+groupSize])
	}
	return b.String()
}

// normalise maps s to the alphabet: letters upper-cased, O to 0, I and L to
// 1, spaces and hyphens (ASCII or Unicode) dropped. Any other character is
// an error that gives its position but never the character.
func normalise(s string) ([]byte, error) {
	if len(s) > maxInput {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrFormat, maxInput)
	}
	out := make([]byte, 0, 2+bodyChars)
	pos := 0
	for _, r := range s {
		pos++
		switch {
		case r == '-' || unicode.IsSpace(r) || unicode.Is(unicode.Pd, r):
			continue
		case 'a' <= r && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if r > unicode.MaxASCII || strings.IndexByte(alphabet, byte(r)) < 0 {
			return nil, fmt.Errorf("%w: character %d is not a letter or digit of a key", ErrFormat, pos)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// parse decodes text as a key of kind want.
func parse(want kind, s string) ([KeySize]byte, error) {
	var key [KeySize]byte
	n, err := normalise(s)
	if err != nil {
		return key, err
	}
	defer clear(n)
	if len(n) < 2 {
		return key, fmt.Errorf("%w: too short", ErrFormat)
	}
	other := recoveryKind
	if want.letter == recoveryKind.letter {
		other = secretKind
	}
	switch {
	case n[0] == other.letter && n[1] == '0'+other.version:
		return key, fmt.Errorf("%w: this is a %s, not a %s", ErrWrongKind, other.name, want.name)
	case n[0] != want.letter:
		return key, fmt.Errorf("%w: a %s starts with %c%c", ErrFormat, want.name, want.letter, '0'+want.version)
	case n[1] != '0'+want.version:
		return key, fmt.Errorf("%w: %s version %c", ErrVersion, want.name, n[1])
	}
	body := n[2:]
	if len(body) != bodyChars {
		return key, fmt.Errorf("%w: a %s has %d characters after %c%c, got %d",
			ErrFormat, want.name, bodyChars, want.letter, '0'+want.version, len(body))
	}
	var raw [KeySize + ChecksumSize]byte
	defer clear(raw[:])
	if m, err := encoding.Decode(raw[:], body); err != nil || m != len(raw) {
		// Unreachable: every character is in the alphabet and 32
		// characters are exactly 20 bytes.
		return key, fmt.Errorf("%w: cannot decode", ErrFormat)
	}
	copy(key[:], raw[:KeySize])
	sum := want.checksum(&key)
	if subtle.ConstantTimeCompare(sum[:], raw[KeySize:]) != 1 {
		clear(key[:])
		return key, fmt.Errorf("%w: check the %s and type it again", ErrChecksum, want.name)
	}
	return key, nil
}

func generate(r io.Reader) ([KeySize]byte, error) {
	var key [KeySize]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return key, fmt.Errorf("keycode: reading random bytes: %w", err)
	}
	if key == ([KeySize]byte{}) {
		return key, ErrZeroKey
	}
	return key, nil
}
