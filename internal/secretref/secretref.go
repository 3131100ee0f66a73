// Package secretref parses and prints secret references: text that names one
// field of one item, so that configuration files, environment variables and
// templates can hold a pointer to a secret instead of the secret.
//
// A reference is
//
//	safe://VAULT/ITEM/FIELD
//
// VAULT is a vault's name, id or id prefix (as `--vault` takes it), ITEM an
// item's exact title or id, FIELD a field's name (password, username, notes,
// totp, url, a custom field's name...). Each part is percent-encoded: "/"
// must be written %2F, "%" %25, "?" %3F and "#" %23; a space may be written
// raw or as %20. Parse accepts either case of hex digit; String writes the
// one canonical form (upper-case hex, every space, brace and control
// character encoded), so that Parse(r.String()) == r for every Ref that
// Parse returns. The grammar and limits are in docs/design.md ("Secret
// references").
//
// A reference is not a secret: it may appear in errors and logs.
package secretref

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Scheme starts every reference.
const Scheme = "safe://"

// Limits. A part is at most MaxPart bytes once decoded (an item title is at
// most 1024 bytes); MaxLen bounds the encoded text before any decoding, and
// is exactly the length of the longest canonical reference.
const (
	MaxPart = 1024
	MaxLen  = len(Scheme) + 3*3*MaxPart + 2
)

// ErrSyntax marks text that is not a well-formed reference.
var ErrSyntax = errors.New("malformed secret reference")

// Ref names one field of one item in one vault. The strings are decoded.
type Ref struct {
	Vault string
	Item  string
	Field string
}

// HasScheme says whether s is meant as a reference: it starts with
// "safe://". Such text that does not parse is an error, never a value.
func HasScheme(s string) bool { return strings.HasPrefix(s, Scheme) }

// Parse reads a reference strictly: the scheme in lower case, exactly three
// non-empty parts, valid percent escapes, valid UTF-8, no control
// characters, bounded lengths.
func Parse(s string) (Ref, error) {
	if len(s) > MaxLen {
		return Ref{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrSyntax, len(s), MaxLen)
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("%w %q: it does not start with %s", ErrSyntax, s, Scheme)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Ref{}, fmt.Errorf("%w %q: it has %d parts, not the 3 of %sVAULT/ITEM/FIELD (write a / inside a name as %%2F)", ErrSyntax, s, len(parts), Scheme)
	}
	var out [3]string
	for i, p := range parts {
		v, err := decodePart(p)
		if err != nil {
			return Ref{}, fmt.Errorf("%w %q: the %s %v", ErrSyntax, s, partNames[i], err)
		}
		out[i] = v
	}
	return Ref{Vault: out[0], Item: out[1], Field: out[2]}, nil
}

var partNames = [3]string{"vault", "item", "field"}

func decodePart(p string) (string, error) {
	if p == "" {
		return "", errors.New("is empty")
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", fmt.Errorf("has a %% not followed by two hex digits (write %% itself as %%25)")
			}
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
		case c == '?' || c == '#':
			return "", fmt.Errorf("contains %q, which must be written %%%02X", c, c)
		case c < 0x20 || c == 0x7f:
			return "", errors.New("contains a control character")
		default:
			b.WriteByte(c)
		}
	}
	v := b.String()
	if err := checkPart(v); err != nil {
		return "", err
	}
	return v, nil
}

// checkPart applies the rules on a decoded part.
func checkPart(v string) error {
	switch {
	case v == "":
		return errors.New("is empty")
	case len(v) > MaxPart:
		return fmt.Errorf("is %d bytes, more than the %d allowed", len(v), MaxPart)
	case !utf8.ValidString(v):
		return errors.New("is not valid UTF-8")
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("contains a control character")
	}
	return nil
}

// Validate checks that r can be written as a reference that parses back to
// r.
func (r Ref) Validate() error {
	for i, v := range [3]string{r.Vault, r.Item, r.Field} {
		if err := checkPart(v); err != nil {
			return fmt.Errorf("%w: the %s %v", ErrSyntax, partNames[i], err)
		}
	}
	return nil
}

// String writes the canonical form of r.
func (r Ref) String() string {
	var b strings.Builder
	b.Grow(len(Scheme) + len(r.Vault) + len(r.Item) + len(r.Field) + 2)
	b.WriteString(Scheme)
	encodePart(&b, r.Vault)
	b.WriteByte('/')
	encodePart(&b, r.Item)
	b.WriteByte('/')
	encodePart(&b, r.Field)
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

func encodePart(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

// needsEscape lists the bytes String encodes: those Parse refuses raw, the
// space (so that a reference is one shell word), and braces (so that one
// never closes a `{{ ... }}` in a template).
func needsEscape(c byte) bool {
	switch c {
	case '%', '/', '?', '#', ' ', '{', '}':
		return true
	}
	return c < 0x20 || c == 0x7f
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
