// Package secret holds types for key material and other secrets whose every
// printing path (fmt verbs, JSON, slog) redacts the value, and helpers to wipe
// buffers once a secret is no longer needed.
//
// Wiping is best effort: the Go runtime may have copied a value before it is
// wiped (stack growth, append). Code that handles secrets keeps them in
// []byte, never in string, and calls Wipe as soon as it is done.
package secret

import (
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// Bytes is secret material: a key, a password, a seed. It never prints its
// value through fmt, encoding/json or log/slog.
type Bytes []byte

// String implements fmt.Stringer without revealing the value.
func (Bytes) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (Bytes) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %x and %v included,
// prints the redaction marker.
func (Bytes) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler without revealing the value.
func (Bytes) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue implements slog.LogValuer without revealing the value.
func (Bytes) LogValue() slog.Value { return slog.StringValue(redacted) }

// Wipe overwrites the secret with zeros.
func (b Bytes) Wipe() { Wipe(b) }

// Clone returns a copy that the caller must wipe separately.
func (b Bytes) Clone() Bytes {
	if b == nil {
		return nil
	}
	c := make(Bytes, len(b))
	copy(c, b)
	return c
}

// Wipe overwrites b with zeros. The loop is kept simple on purpose: clear is
// not elided by the compiler for memory that escapes, which key buffers do.
func Wipe(b []byte) { clear(b) }
