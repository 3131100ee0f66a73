// Package genpass generates passwords and passphrases from a caller-supplied
// random source and reports their entropy.
//
// Randomness always comes in as an io.Reader: the CLI passes its two-source
// reader, tests pass crypto/rand or a deterministic stream. Every choice is
// made by rejection sampling, never by reducing a random value modulo the
// alphabet size, so each character or word is exactly uniform. Generated
// secrets are returned as secret.Bytes, which redact themselves when
// printed; callers wipe them when done.
package genpass

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"

	"github.com/safehold/safehold/internal/secret"
)

// Character classes. The alphabets are fixed; changing them changes the
// entropy of every generated password and must be reflected in the design
// document.
const (
	lowerChars  = "abcdefghijklmnopqrstuvwxyz"
	upperChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars  = "0123456789"
	symbolChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

	// AmbiguousChars are removed when PasswordOptions.ExcludeAmbiguous is set.
	AmbiguousChars = "0O1lI|"
)

// Password length bounds and default.
const (
	DefaultLength = 20
	MinLength     = 4
	MaxLength     = 1024
)

// ErrLength, ErrNoClasses and ErrTooShortForClasses are wrapped by the
// errors returned for invalid PasswordOptions.
var (
	ErrLength             = errors.New("password length out of range")
	ErrNoClasses          = errors.New("no character class enabled")
	ErrTooShortForClasses = errors.New("password shorter than the number of required classes")
)

// PasswordOptions configures Password. The zero value is the default: 20
// characters drawn from all four classes, ambiguous characters allowed, no
// per-class requirement.
type PasswordOptions struct {
	// Length in characters; 0 means DefaultLength, otherwise MinLength..MaxLength.
	Length int
	// NoLower, NoUpper, NoDigits and NoSymbols disable a class. They are
	// negative so that the zero value enables every class.
	NoLower, NoUpper, NoDigits, NoSymbols bool
	// ExcludeAmbiguous removes the characters in AmbiguousChars.
	ExcludeAmbiguous bool
	// RequireEachClass makes every enabled class appear at least once. It is
	// implemented by rejection sampling of whole passwords, so the result is
	// uniform over all passwords that satisfy the constraint.
	RequireEachClass bool
}

// maxPasswordAttempts bounds rejection of whole passwords under
// RequireEachClass. The worst accepted configuration (4 classes, length 4,
// ambiguous characters excluded) accepts a candidate with probability
// 24*25*24*8*31/88^4 ≈ 0.0596, so 4000 consecutive rejections happen with
// probability below 2^-350.
const maxPasswordAttempts = 4000

// classes returns the enabled, non-empty alphabets in a fixed order
// (lower, upper, digits, symbols).
func (o PasswordOptions) classes() [][]byte {
	var out [][]byte
	add := func(off bool, chars string) {
		if off {
			return
		}
		var c []byte
		for i := 0; i < len(chars); i++ {
			if o.ExcludeAmbiguous && containsByte(AmbiguousChars, chars[i]) {
				continue
			}
			c = append(c, chars[i])
		}
		out = append(out, c)
	}
	add(o.NoLower, lowerChars)
	add(o.NoUpper, upperChars)
	add(o.NoDigits, digitChars)
	add(o.NoSymbols, symbolChars)
	return out
}

func containsByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// resolve validates o and returns the effective length and classes.
func (o PasswordOptions) resolve() (int, [][]byte, error) {
	n := o.Length
	if n == 0 {
		n = DefaultLength
	}
	if n < MinLength || n > MaxLength {
		return 0, nil, fmt.Errorf("%w: %d is not between %d and %d", ErrLength, n, MinLength, MaxLength)
	}
	cls := o.classes()
	if len(cls) == 0 {
		return 0, nil, fmt.Errorf("%w: enable at least one of lower, upper, digits, symbols", ErrNoClasses)
	}
	if o.RequireEachClass && n < len(cls) {
		return 0, nil, fmt.Errorf("%w: length %d, %d classes", ErrTooShortForClasses, n, len(cls))
	}
	return n, cls, nil
}

// Password generates a password from r and returns it with its entropy in
// bits. The password is ASCII; it is returned as secret.Bytes so that it
// redacts when printed, and the caller wipes it when done.
func Password(r io.Reader, o PasswordOptions) (secret.Bytes, float64, error) {
	n, cls, err := o.resolve()
	if err != nil {
		return nil, 0, err
	}
	bits := passwordEntropy(n, cls, o.RequireEachClass)
	var alphabet []byte
	for _, c := range cls {
		alphabet = append(alphabet, c...)
	}
	s := newSampler(r)
	defer s.close()
	pw := make(secret.Bytes, n)
	for range maxPasswordAttempts {
		for i := range pw {
			j, err := s.uniform(uint64(len(alphabet)))
			if err != nil {
				pw.Wipe()
				return nil, 0, err
			}
			pw[i] = alphabet[j]
		}
		if !o.RequireEachClass || hasEachClass(pw, cls) {
			return pw, bits, nil
		}
	}
	pw.Wipe()
	return nil, 0, ErrExhausted
}

func hasEachClass(pw []byte, cls [][]byte) bool {
	for _, c := range cls {
		found := false
		for _, b := range pw {
			if containsByte(string(c), b) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// PasswordEntropy returns the entropy in bits of passwords generated with o,
// without generating one.
func PasswordEntropy(o PasswordOptions) (float64, error) {
	n, cls, err := o.resolve()
	if err != nil {
		return 0, err
	}
	return passwordEntropy(n, cls, o.RequireEachClass), nil
}

// passwordEntropy is log2 of the number of equally likely outcomes.
//
// Without the per-class requirement every one of N^L strings is equally
// likely (N = alphabet size, L = length), so the entropy is L*log2(N).
//
// With it, the generator is uniform over the strings that contain every
// class; the classes are disjoint, so by inclusion–exclusion their number is
//
//	sum over subsets S of the classes of (-1)^|S| * (N - sum_{c in S} n_c)^L
//
// which is computed exactly with big integers. The entropy is its log2: an
// exact value, not a bound.
func passwordEntropy(length int, cls [][]byte, requireEach bool) float64 {
	total := 0
	for _, c := range cls {
		total += len(c)
	}
	if !requireEach || len(cls) == 1 {
		return float64(length) * math.Log2(float64(total))
	}
	count := new(big.Int)
	term := new(big.Int)
	l := big.NewInt(int64(length))
	for mask := 0; mask < 1<<len(cls); mask++ {
		left := total
		sign := 1
		for i, c := range cls {
			if mask&(1<<i) != 0 {
				left -= len(c)
				sign = -sign
			}
		}
		term.Exp(big.NewInt(int64(left)), l, nil)
		if sign < 0 {
			count.Sub(count, term)
		} else {
			count.Add(count, term)
		}
	}
	return log2Big(count)
}

// log2Big returns log2(x) for x > 0 with float64 precision.
func log2Big(x *big.Int) float64 {
	n := x.BitLen()
	if n <= 64 {
		return math.Log2(float64(x.Uint64()))
	}
	shift := uint(n - 64)
	top := new(big.Int).Rsh(x, shift)
	return math.Log2(float64(top.Uint64())) + float64(shift)
}

// Strength classifies an entropy in bits for display: "weak" below 50,
// "fair" below 80, "strong" below 100, otherwise "very strong".
func Strength(bits float64) string {
	switch {
	case bits < 50:
		return "weak"
	case bits < 80:
		return "fair"
	case bits < 100:
		return "strong"
	default:
		return "very strong"
	}
}
