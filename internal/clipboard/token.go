package clipboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Token identifies a copied value without revealing it. It travels from
// the CLI to the clearing helper over the helper's standard input.
//
// MAC is HMAC-SHA-256 keyed with a fresh random 32-byte Key. A plain
// SHA-256 would let whoever sees the token (a core dump, a debugger on the
// helper) test password guesses offline; a random key makes the token
// useless without the clipboard content itself. It still lets the helper
// check the content in constant time.
type Token struct {
	Key   [32]byte
	MAC   [32]byte
	Delay time.Duration
}

// Token encoding, 73 bytes:
//
//	magic "SHCB" (4) | version 0x01 (1) | delay in ms, uint32 big-endian (4) |
//	key (32) | mac (32)
const (
	tokenMagic   = "SHCB"
	tokenVersion = 1
	// TokenSize is the length of a marshalled Token.
	TokenSize = 4 + 1 + 4 + 32 + 32
	// MaxDelay bounds the delay a token may carry.
	MaxDelay = time.Hour
)

// NewToken makes a token for value, drawing the key from r.
func NewToken(r io.Reader, value []byte, delay time.Duration) (Token, error) {
	var t Token
	if delay < 0 || delay > MaxDelay || delay%time.Millisecond != 0 {
		return Token{}, fmt.Errorf("%w: delay %v not a whole number of milliseconds between 0 and %v", ErrToken, delay, MaxDelay)
	}
	if _, err := io.ReadFull(r, t.Key[:]); err != nil {
		return Token{}, fmt.Errorf("read random source: %w", err)
	}
	t.Delay = delay
	copy(t.MAC[:], t.mac(value))
	return t, nil
}

func (t Token) mac(value []byte) []byte {
	h := hmac.New(sha256.New, t.Key[:])
	h.Write(value)
	return h.Sum(nil)
}

// Matches reports, in constant time, whether value is the value t was
// made for.
func (t Token) Matches(value []byte) bool {
	return hmac.Equal(t.mac(value), t.MAC[:])
}

// MarshalBinary encodes t in the 73-byte token format.
func (t Token) MarshalBinary() ([]byte, error) {
	if t.Delay < 0 || t.Delay > MaxDelay || t.Delay%time.Millisecond != 0 {
		return nil, fmt.Errorf("%w: delay %v out of range", ErrToken, t.Delay)
	}
	b := make([]byte, 0, TokenSize)
	b = append(b, tokenMagic...)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Delay/time.Millisecond))
	b = append(b, t.Key[:]...)
	b = append(b, t.MAC[:]...)
	return b, nil
}

// ParseToken decodes exactly one token; any other length, magic, version
// or a delay above MaxDelay is an error.
func ParseToken(b []byte) (Token, error) {
	if len(b) != TokenSize {
		return Token{}, fmt.Errorf("%w: %d bytes, want %d", ErrToken, len(b), TokenSize)
	}
	if string(b[:4]) != tokenMagic || b[4] != tokenVersion {
		return Token{}, fmt.Errorf("%w: bad magic or version", ErrToken)
	}
	ms := binary.BigEndian.Uint32(b[5:9])
	d := time.Duration(ms) * time.Millisecond
	if d > MaxDelay {
		return Token{}, fmt.Errorf("%w: delay %v above %v", ErrToken, d, MaxDelay)
	}
	var t Token
	t.Delay = d
	copy(t.Key[:], b[9:41])
	copy(t.MAC[:], b[41:73])
	return t, nil
}
