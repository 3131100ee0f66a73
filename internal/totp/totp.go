// Package totp computes RFC 6238 time-based one-time passwords for TOTP
// items.
//
// A Config holds the shared seed and the code parameters. It is parsed from
// what users paste (a base32 seed, tolerant of spaces, lower case and missing
// padding, or an otpauth:// URI), stored inside an encrypted item as
// canonical JSON (Config.MarshalJSON), and turned into codes by Code, which
// delegates the HOTP/TOTP computation to github.com/pquerna/otp.
package totp

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/safehold/safehold/internal/secret"
)

// Algorithm is the HMAC hash named in an otpauth URI.
type Algorithm string

// The supported algorithms, spelled as in otpauth URIs.
const (
	SHA1   Algorithm = "SHA1"
	SHA256 Algorithm = "SHA256"
	SHA512 Algorithm = "SHA512"
)

// Bounds and defaults. RFC 4226 asks for a seed of at least 128 bits but
// many services issue 80-bit seeds, so 10 bytes is the floor; 128 bytes (a
// SHA-512 block) is far above any seed in use.
const (
	DefaultDigits = 6
	MinDigits     = 6
	MaxDigits     = 8
	DefaultPeriod = 30
	MinPeriod     = 1
	MaxPeriod     = 300
	MinSeedLen    = 10
	MaxSeedLen    = 128
	// MaxInputLen bounds what Parse accepts (URI or seed text).
	MaxInputLen = 4096
	// MaxLabelLen bounds Issuer and Account, in bytes.
	MaxLabelLen = 256
)

// Errors wrapped by this package; match them with errors.Is.
var (
	ErrInvalid  = errors.New("invalid totp configuration")
	ErrSeed     = errors.New("invalid totp seed")
	ErrURI      = errors.New("invalid otpauth uri")
	ErrTooLarge = errors.New("totp input too large")
	ErrTime     = errors.New("time before 1970 or after 9999")
)

// Config is everything needed to compute codes. Secret is the raw seed (not
// base32). The zero value is invalid; use Parse or fill every field.
type Config struct {
	Secret    secret.Bytes
	Algorithm Algorithm
	Digits    int
	Period    int // seconds
	Issuer    string
	Account   string
}

// LogValue implements slog.LogValuer without the seed. Without it a JSON
// log handler would call MarshalJSON, which includes the seed.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.String("account", c.Account),
		slog.String("algorithm", string(c.Algorithm)),
		slog.Int("digits", c.Digits),
		slog.Int("period", c.Period),
	)
}

// Equal reports whether a and b are the same configuration, comparing the
// seeds in constant time.
func (c Config) Equal(o Config) bool {
	same := subtle.ConstantTimeCompare(c.Secret, o.Secret) == 1
	return same && c.Algorithm == o.Algorithm && c.Digits == o.Digits &&
		c.Period == o.Period && c.Issuer == o.Issuer && c.Account == o.Account
}

// Validate checks every bound. Errors never contain the seed.
func (c Config) Validate() error {
	if n := len(c.Secret); n < MinSeedLen || n > MaxSeedLen {
		return fmt.Errorf("%w: seed is %d bytes, want %d to %d", ErrSeed, n, MinSeedLen, MaxSeedLen)
	}
	if _, err := c.Algorithm.otp(); err != nil {
		return err
	}
	if c.Digits < MinDigits || c.Digits > MaxDigits {
		return fmt.Errorf("%w: %d digits, want %d to %d", ErrInvalid, c.Digits, MinDigits, MaxDigits)
	}
	if c.Period < MinPeriod || c.Period > MaxPeriod {
		return fmt.Errorf("%w: period %d s, want %d to %d", ErrInvalid, c.Period, MinPeriod, MaxPeriod)
	}
	if err := checkLabel("issuer", c.Issuer); err != nil {
		return err
	}
	return checkLabel("account", c.Account)
}

func checkLabel(what, s string) error {
	if len(s) > MaxLabelLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, MaxLabelLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == ':' {
			return fmt.Errorf("%w: %s %q contains a control character or colon", ErrInvalid, what, s)
		}
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%w: %s %q has leading or trailing space", ErrInvalid, what, s)
	}
	return nil
}

func (a Algorithm) otp() (otp.Algorithm, error) {
	switch a {
	case SHA1:
		return otp.AlgorithmSHA1, nil
	case SHA256:
		return otp.AlgorithmSHA256, nil
	case SHA512:
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("%w: algorithm %q, want SHA1, SHA256 or SHA512", ErrInvalid, string(a))
}

// b32 is the canonical seed encoding: RFC 4648 base32, upper case, no
// padding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Code returns the code valid at t and how long it stays valid.
func Code(c Config, t time.Time) (code string, remaining time.Duration, err error) {
	if err := c.Validate(); err != nil {
		return "", 0, err
	}
	alg, _ := c.Algorithm.otp()
	unix := t.Unix()
	if unix < 0 || t.Year() > 9999 {
		return "", 0, ErrTime
	}
	// The library takes the seed as base32 text; the string cannot be
	// wiped, which is the price of not reimplementing HOTP.
	code, err = totp.GenerateCodeCustom(b32.EncodeToString(c.Secret), t, totp.ValidateOpts{
		Period:    uint(c.Period),
		Digits:    otp.Digits(c.Digits),
		Algorithm: alg,
	})
	if err != nil {
		return "", 0, fmt.Errorf("totp: %w", err)
	}
	p := int64(c.Period)
	next := time.Unix((unix/p+1)*p, 0)
	return code, next.Sub(t), nil
}

// Parse reads a TOTP configuration from user input: either an otpauth://
// URI, or a bare base32 seed with the defaults SHA1, 6 digits, 30 seconds.
// Leading and trailing white space is ignored.
func Parse(s string) (Config, error) {
	if len(s) > MaxInputLen {
		return Config{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxInputLen)
	}
	s = strings.TrimSpace(s)
	if len(s) >= len("otpauth:") && strings.EqualFold(s[:len("otpauth:")], "otpauth:") {
		return parseURI(s)
	}
	seed, err := DecodeSeed(s)
	if err != nil {
		return Config{}, err
	}
	c := Config{Secret: seed, Algorithm: SHA1, Digits: DefaultDigits, Period: DefaultPeriod}
	if err := c.Validate(); err != nil {
		seed.Wipe()
		return Config{}, err
	}
	return c, nil
}

// DecodeSeed decodes a base32 seed as people type it: spaces and tabs are
// removed, lower case is accepted, and trailing '=' padding may be present
// (then it must be the correct amount) or absent. The length must be a
// possible base32 length and the seed 10 to 128 bytes.
func DecodeSeed(s string) (secret.Bytes, error) {
	if len(s) > MaxInputLen {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxInputLen)
	}
	buf := make([]byte, 0, len(s))
	defer secret.Wipe(buf[:cap(buf)])
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		buf = append(buf, c)
	}
	body := buf
	for len(body) > 0 && body[len(body)-1] == '=' {
		body = body[:len(body)-1]
	}
	if pad := len(buf) - len(body); pad > 0 && len(buf)%8 != 0 {
		return nil, fmt.Errorf("%w: wrong amount of '=' padding", ErrSeed)
	}
	switch len(body) % 8 {
	case 1, 3, 6:
		return nil, fmt.Errorf("%w: %d base32 characters is not a whole number of bytes", ErrSeed, len(body))
	}
	out := make(secret.Bytes, b32.DecodedLen(len(body)))
	n, err := b32.Decode(out, body)
	if err != nil {
		out.Wipe()
		// The decoder's error names an offset, never the data.
		return nil, fmt.Errorf("%w: not base32 (%v)", ErrSeed, err)
	}
	out = out[:n]
	if n < MinSeedLen || n > MaxSeedLen {
		out.Wipe()
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d to %d", ErrSeed, n, MinSeedLen, MaxSeedLen)
	}
	return out, nil
}
