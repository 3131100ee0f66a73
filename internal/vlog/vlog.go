// Package vlog encodes, signs and checks the entries of a vault's change log:
// an append-only list in which each entry names the item, revision and
// payload digest it records, the hash of the entry before it, and carries the
// writing device's hybrid signature. The same entries go to disk and, later,
// over the wire, so the encoding is binary, canonical and bounded.
//
// Entry layout (all integers big-endian):
//
//	magic     4  "SHLG"
//	version   1  1
//	op        1  1 = put, 2 = purge
//	seq       8  position in the log, from 1
//	time      8  Unix milliseconds, as the writer's clock said
//	prev     64  chain hash of the entry before (chain.Genesis for seq 1)
//	revision  8  the item revision this entry records
//	digest   64  SHA-256 || SHA3-256 of the payload ciphertext (zero for purge)
//	vault     1+n  length-prefixed vault id (1..64 bytes)
//	item      1+n  length-prefixed item id (1..64 bytes)
//	device    1+n  length-prefixed device id (1..64 bytes)
//	siglen    2  length of the signature
//	sig       n  hybrid signature over everything above, context "safehold/v1 log-entry"
//
// Everything before siglen is the entry's body. The chain links bodies:
// hash(n) = chain.Link(hash(n-1), body(n)). The body already holds prev, and
// the signature covers the body, so the chain commits to the whole log while
// a reader that checks the chain need not hash the 3.3 KB signatures; those
// are verified when an entry is first accepted and by a full verification.
// Stores may keep body and signature apart for the same reason.
package vlog

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/sign"
)

// Magic starts every entry.
const Magic = "SHLG"

// Version is the entry format version.
const Version = 1

// SignContext separates log-entry signatures from every other signature.
const SignContext = "safehold/v1 log-entry"

// Ops.
const (
	OpPut   byte = 1
	OpPurge byte = 2
)

// Limits.
const (
	MaxID     = 64
	MaxSig    = 8192
	DigestLen = 64
	fixedLen  = 4 + 1 + 1 + 8 + 8 + 64 + 8 + DigestLen
	MaxEntry  = fixedLen + 3*(1+MaxID) + 2 + MaxSig
)

// Errors, matched with errors.Is.
var (
	ErrMalformed = errors.New("malformed log entry")
	ErrSignature = errors.New("log entry signature does not verify")
)

// Entry is one decoded log entry.
type Entry struct {
	Op       byte
	Seq      uint64
	Time     int64
	Prev     chain.Hash
	Revision uint64
	Digest   [DigestLen]byte
	Vault    string
	Item     string
	Device   string
	Sig      []byte
}

// Body encodes everything the signature covers.
func (e *Entry) Body() ([]byte, error) { return e.body() }

// body encodes everything the signature covers.
func (e *Entry) body() ([]byte, error) {
	for _, f := range []struct{ name, v string }{{"vault", e.Vault}, {"item", e.Item}, {"device", e.Device}} {
		if len(f.v) == 0 || len(f.v) > MaxID {
			return nil, fmt.Errorf("%w: %s id is %d bytes (want 1..%d)", ErrMalformed, f.name, len(f.v), MaxID)
		}
	}
	if e.Op != OpPut && e.Op != OpPurge {
		return nil, fmt.Errorf("%w: unknown op %d", ErrMalformed, e.Op)
	}
	if e.Seq == 0 {
		return nil, fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	b := make([]byte, 0, fixedLen+3*(1+MaxID))
	b = append(b, Magic...)
	b = append(b, Version, e.Op)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	b = append(b, e.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Revision)
	b = append(b, e.Digest[:]...)
	for _, s := range []string{e.Vault, e.Item, e.Device} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// Sign fills e.Sig with the device key's signature and returns the body.
func (e *Entry) Sign(key *sign.PrivateKey) ([]byte, error) {
	body, err := e.body()
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(SignContext, body)
	if err != nil {
		return nil, fmt.Errorf("sign log entry: %w", err)
	}
	e.Sig = sig
	return body, nil
}

// Encode returns the entry's bytes, signature included.
func (e *Entry) Encode() ([]byte, error) {
	body, err := e.body()
	if err != nil {
		return nil, err
	}
	if len(e.Sig) == 0 || len(e.Sig) > MaxSig {
		return nil, fmt.Errorf("%w: signature is %d bytes", ErrMalformed, len(e.Sig))
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(e.Sig)))
	return append(body, e.Sig...), nil
}

// Decode parses an encoded entry (body, signature length, signature)
// strictly. It does not check the signature.
func Decode(data []byte) (*Entry, error) {
	if len(data) > MaxEntry {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(data), MaxEntry)
	}
	n, err := bodyLen(data)
	if err != nil {
		return nil, err
	}
	e, err := DecodeBody(data[:n])
	if err != nil {
		return nil, err
	}
	p := data[n:]
	if len(p) < 2 {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	siglen := int(binary.BigEndian.Uint16(p))
	if len(p)-2 != siglen || siglen == 0 || siglen > MaxSig {
		return nil, fmt.Errorf("%w: signature length %d, %d bytes left", ErrMalformed, siglen, len(p)-2)
	}
	e.Sig = append([]byte(nil), p[2:]...)
	return e, nil
}

// bodyLen finds where the body ends.
func bodyLen(data []byte) (int, error) {
	n := fixedLen
	for i := 0; i < 3; i++ {
		if len(data) < n+1 || len(data) < n+1+int(data[n]) {
			return 0, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		n += 1 + int(data[n])
	}
	return n, nil
}

// DecodeBody parses an entry's body strictly; Sig stays empty.
func DecodeBody(data []byte) (*Entry, error) {
	if len(data) < fixedLen {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if len(data) > MaxEntry {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	if string(data[:4]) != Magic {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if data[4] != Version {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, data[4])
	}
	e := &Entry{Op: data[5]}
	p := data[6:]
	e.Seq = binary.BigEndian.Uint64(p)
	e.Time = int64(binary.BigEndian.Uint64(p[8:]))
	copy(e.Prev[:], p[16:80])
	e.Revision = binary.BigEndian.Uint64(p[80:])
	copy(e.Digest[:], p[88:88+DigestLen])
	p = p[88+DigestLen:]
	for _, dst := range []*string{&e.Vault, &e.Item, &e.Device} {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		*dst = string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the body", ErrMalformed, len(p))
	}
	enc, err := e.body()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return e, nil
}

// Verify checks the entry's signature with the writing device's key.
func (e *Entry) Verify(key *sign.PublicKey) error {
	body, err := e.body()
	if err != nil {
		return err
	}
	if err := key.Verify(SignContext, body, e.Sig); err != nil {
		return fmt.Errorf("%w: seq %d: %v", ErrSignature, e.Seq, err)
	}
	return nil
}

// Genesis is the chain hash before a vault's first entry.
func Genesis(vault string) chain.Hash {
	return chain.Genesis("safehold/v1 vault-log", []byte(vault))
}

// Next returns the chain hash after an entry, given its body.
func Next(prev chain.Hash, body []byte) chain.Hash {
	return chain.Link(prev, body)
}

// PayloadDigest is the digest a put entry records of its payload ciphertext
// (docs/design.md §6.6): SHA-256 || SHA3-256, domain-separated.
func PayloadDigest(payload []byte) []byte {
	a := sha256.New()
	b := sha3.New256()
	for _, h := range []hash.Hash{a, b} {
		h.Write([]byte("safehold/v1 payload\x00"))
		h.Write(payload)
	}
	return b.Sum(a.Sum(nil))
}
