// Package chain computes Safehold's hash chains with SHA-256 and SHA3-256
// together: every hash is the concatenation of both digests of the same
// domain-separated, length-prefixed input, so a collision needs both
// functions broken at once.
//
// A chain starts at Genesis(domain, id) and each entry moves it with
// Link(prev, entry). The encodings are specified in
// docs/design.md.
package chain

//go:generate go run ./internal/vectorgen -o testdata/vectors.json

import (
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Size is the size of a Hash: SHA-256 (32) then SHA3-256 (32).
const Size = sha256.Size + 32

const (
	genesisLabel = "safehold/chain/v1/genesis"
	linkLabel    = "safehold/chain/v1/link"
)

// ErrMalformed means a hash encoding has the wrong size.
var ErrMalformed = errors.New("chain: malformed hash")

// Hash is SHA-256(input) || SHA3-256(input).
type Hash [Size]byte

func sum(input []byte) Hash {
	var h Hash
	a := sha256.Sum256(input)
	b := sha3.Sum256(input)
	copy(h[:32], a[:])
	copy(h[32:], b[:])
	return h
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
	return append(b, v...)
}

// Genesis returns the first hash of a chain:
//
//	H( u64(len(label)) || label || u64(len(domain)) || domain || u64(len(id)) || id )
//
// with label "safehold/chain/v1/genesis". domain names the kind of chain
// ("vault-log"), id the chain's owner (the vault id).
func Genesis(domain string, id []byte) Hash {
	in := make([]byte, 0, 24+len(genesisLabel)+len(domain)+len(id))
	in = appendBytes(in, []byte(genesisLabel))
	in = appendBytes(in, []byte(domain))
	in = appendBytes(in, id)
	return sum(in)
}

// Link returns the hash after entry:
//
//	H( u64(len(label)) || label || prev (64) || u64(len(entry)) || entry )
//
// with label "safehold/chain/v1/link".
func Link(prev Hash, entry []byte) Hash {
	in := make([]byte, 0, 16+len(linkLabel)+Size+len(entry))
	in = appendBytes(in, []byte(linkLabel))
	in = append(in, prev[:]...)
	in = appendBytes(in, entry)
	return sum(in)
}

// Equal reports whether h and o are equal, in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// IsZero reports whether h is the zero value (no chain hash is).
func (h Hash) IsZero() bool { return h.Equal(Hash{}) }

// String returns h in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalBinary returns the Size bytes of h.
func (h Hash) MarshalBinary() ([]byte, error) { return append([]byte(nil), h[:]...), nil }

// Parse returns the Hash encoded in exactly Size bytes.
func Parse(b []byte) (Hash, error) {
	var h Hash
	if len(b) != Size {
		return h, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	copy(h[:], b)
	return h, nil
}

// ParseString returns the Hash encoded as String does: exactly 128
// lowercase hex digits.
func ParseString(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*Size {
		return h, fmt.Errorf("%w: %d hex digits, want %d", ErrMalformed, len(s), 2*Size)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, fmt.Errorf("%w: not lowercase hex", ErrMalformed)
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h, nil
}
