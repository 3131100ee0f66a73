package kdf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Header encoding constants; see the spec for the byte layout.
const (
	// HeaderSize is the exact length of an encoded Header.
	HeaderSize = 80

	// HeaderVersion is the only header version this client reads or writes.
	HeaderVersion = 0x01

	// AlgorithmCascadeV1 names the cascade Argon2id (v1.3, 32-byte output)
	// and PBKDF2-HMAC-SHA512 (64-byte output) combined by HKDF-SHA512 as
	// this package implements it.
	AlgorithmCascadeV1 = 0x01

	// SaltSize is the size of each of the two salts.
	SaltSize = 32

	flagInsecureTest = 0x01
	flagsKnown       = flagInsecureTest
)

var (
	// ErrMalformed reports a header that is not the canonical encoding of
	// any Params and Salts.
	ErrMalformed = errors.New("kdf: malformed parameters header")
	// ErrUnsupported reports a header version or algorithm this client does
	// not know.
	ErrUnsupported = errors.New("kdf: unsupported parameters header")
)

// Salts are the two independent random salts, one per slow KDF.
type Salts struct {
	Argon2 [SaltSize]byte
	PBKDF2 [SaltSize]byte
}

// NewSalts reads two independent salts from r, which should be a
// *random.Source.
func NewSalts(r io.Reader) (Salts, error) {
	var s Salts
	if _, err := io.ReadFull(r, s.Argon2[:]); err != nil {
		return Salts{}, fmt.Errorf("kdf: reading salt: %w", err)
	}
	if _, err := io.ReadFull(r, s.PBKDF2[:]); err != nil {
		return Salts{}, fmt.Errorf("kdf: reading salt: %w", err)
	}
	return s, nil
}

// Header is what a vault stores about its password derivation: the
// parameters and the salts. Its binary form is HeaderSize bytes.
type Header struct {
	Params Params
	Salts  Salts
}

// MarshalBinary returns the 80-byte canonical encoding. It refuses
// parameters that ParseHeader would refuse, so every header written can be
// read back.
func (h Header) MarshalBinary() ([]byte, error) {
	if err := h.Params.Check(true); err != nil {
		return nil, err
	}
	return h.appendBinary(make([]byte, 0, HeaderSize)), nil
}

// AppendBinary appends the canonical encoding to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	if err := h.Params.Check(true); err != nil {
		return nil, err
	}
	return h.appendBinary(b), nil
}

func (h Header) appendBinary(b []byte) []byte {
	var flags byte
	if h.Params.InsecureTest {
		flags |= flagInsecureTest
	}
	b = append(b, HeaderVersion, AlgorithmCascadeV1, flags, h.Params.Argon2Threads)
	b = binary.BigEndian.AppendUint32(b, h.Params.Argon2Memory)
	b = binary.BigEndian.AppendUint32(b, h.Params.Argon2Time)
	b = binary.BigEndian.AppendUint32(b, h.Params.PBKDF2Iterations)
	b = append(b, h.Salts.Argon2[:]...)
	b = append(b, h.Salts.PBKDF2[:]...)
	return b
}

// ParseHeader decodes the canonical 80-byte encoding. It fails with
// ErrMalformed on a wrong length or a reserved flag, ErrUnsupported on an
// unknown version or algorithm, and ErrBelowFloor or ErrAboveCeiling on
// parameters outside the hard bounds (Check with allowInsecure; Derive
// applies the caller's actual policy).
func ParseHeader(b []byte) (Header, error) {
	if len(b) != HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), HeaderSize)
	}
	if b[0] != HeaderVersion {
		return Header{}, fmt.Errorf("%w: version %d", ErrUnsupported, b[0])
	}
	if b[1] != AlgorithmCascadeV1 {
		return Header{}, fmt.Errorf("%w: algorithm %d", ErrUnsupported, b[1])
	}
	if b[2]&^flagsKnown != 0 {
		return Header{}, fmt.Errorf("%w: reserved flags %#02x set", ErrMalformed, b[2]&^flagsKnown)
	}
	var h Header
	h.Params = Params{
		InsecureTest:     b[2]&flagInsecureTest != 0,
		Argon2Threads:    b[3],
		Argon2Memory:     binary.BigEndian.Uint32(b[4:8]),
		Argon2Time:       binary.BigEndian.Uint32(b[8:12]),
		PBKDF2Iterations: binary.BigEndian.Uint32(b[12:16]),
	}
	copy(h.Salts.Argon2[:], b[16:48])
	copy(h.Salts.PBKDF2[:], b[48:80])
	if err := h.Params.Check(true); err != nil {
		return Header{}, err
	}
	return h, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler with ParseHeader.
func (h *Header) UnmarshalBinary(b []byte) error {
	p, err := ParseHeader(b)
	if err != nil {
		return err
	}
	*h = p
	return nil
}
