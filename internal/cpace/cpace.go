// Package cpace implements the CPace balanced password-authenticated key
// exchange of draft-irtf-cfrg-cpace, cipher suite CPACE-RISTR255-SHA512
// (group ristretto255 as in RFC 9496, hash SHA-512), in the
// initiator-responder setting: the transcript is transcript_ir, the
// initiator's message always comes first.
//
// The code matches draft-irtf-cfrg-cpace-21 (the text dated 23 April 2026 in
// the draft's repository) and reproduces every value of its Appendix B.3
// test vectors (testdata/ristretto255.json). Group arithmetic, the
// ristretto255 encoding and the element derivation ("one-way map") come from
// github.com/gtank/ristretto255; this package only holds the protocol glue:
// prepend_len, lv_cat, generator_string, calculate_generator, transcript_ir
// and the ISK derivation.
//
// # Protocol
//
// Both parties derive a secret generator g from the password-related string
// PRS, the channel identifier CI and the session id sid. Each picks a fresh
// scalar y and sends Y = y*g together with its associated data AD. On
// receiving the peer's Y' it computes K = y*Y', refuses K = identity, and
// outputs
//
//	ISK = SHA-512(lv_cat("CPaceRistretto255_ISK", sid, K) || lv_cat(Ya, ADa) || lv_cat(Yb, ADb))
//
// where (Ya, ADa) is the initiator's message and (Yb, ADb) the responder's.
// The two parties get the same ISK only if PRS, CI, sid and both messages and
// associated data match.
//
// # What the caller must do
//
//   - Confirm the key. CPace gives implicit authentication only: a peer that
//     used a wrong password gets a different ISK and Finish cannot tell. The
//     caller MUST run a key confirmation round (for example a MAC over each
//     side's own message under a key derived from ISK) before trusting the
//     peer or using any key derived from ISK. The confirmation tags MUST be
//     bound to the role (initiator and responder tags must differ), or an
//     attacker can reflect one side's tag back to it.
//   - Derive keys from ISK with a KDF (HKDF) and a purpose label; do not use
//     ISK directly as a cipher key.
//   - Give each party exactly one role for a given password and sid, send the
//     initiator's message first, and carry AD to the peer alongside the
//     message (AD travels in clear; it is authenticated through ISK).
//   - Put the identities of both parties (initiator first) into CI, and use a
//     fresh sid (for example random bytes from both sides) when one is
//     available: the draft recommends both (Sections 10.1, 10.9, 10.12).
//   - Never reuse a State: one Start, one Finish. Each exchange gives an
//     active attacker one online password guess (checked through the key
//     confirmation), so the caller should limit attempts per pairing code and
//     pick a new code after a failed confirmation.
//
// # Wiping
//
// Start overwrites the generator string, its hash and the generator once our
// message is computed; Finish overwrites the secret scalar, the shared point
// K and the ISK hash input, whatever the outcome. Go does not let us wipe everything: SHA-512's internal
// state, the library's stack temporaries (the 64-byte copy inside
// Scalar.FromUniformBytes, field elements in scalar multiplication), values
// the runtime copied while growing a stack, and the caller's own copy of the
// password are out of reach. Wiping is therefore best effort.
package cpace

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/gtank/ristretto255"
)

// Sizes of the CPACE-RISTR255-SHA512 suite.
const (
	// MessageSize is the size of a CPace message (an encoded ristretto255
	// element, Ya or Yb).
	MessageSize = 32
	// KeySize is the size of the intermediate shared key ISK (SHA-512).
	KeySize = sha512.Size
	// MaxInputSize bounds each of PRS, CI, sid and the associated data of
	// both parties. The draft sets no limit; the bound keeps the work done
	// on attacker-supplied associated data small.
	MaxInputSize = 64 << 10
)

const (
	// dsi is G_Ristretto255.DSI.
	dsi = "CPaceRistretto255"
	// dsiISK is G.DSI || "_ISK", the label of the ISK derivation.
	dsiISK = dsi + "_ISK"
	// hashBlockSize is H.s_in_bytes for SHA-512: the generator string is
	// zero padded so that DSI and PRS fill the first block.
	hashBlockSize = sha512.BlockSize
	// scalarSampleSize is the number of random bytes reduced modulo the
	// group order to make a scalar (wide reduction, as in Section 10.7).
	scalarSampleSize = 64
	// maxSampleAttempts bounds the retries when a sampled scalar is zero,
	// which a working random source does with probability about 2^-252.
	maxSampleAttempts = 4
)

// Role says which side of the initiator-responder flow a party plays. The
// initiator's message is Ya and comes first in the transcript.
type Role int

// The two roles. The zero Role is invalid, so a forgotten field is caught.
const (
	Initiator Role = iota + 1
	Responder
)

// String returns "initiator" or "responder".
func (r Role) String() string {
	switch r {
	case Initiator:
		return "initiator"
	case Responder:
		return "responder"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

var (
	// ErrInvalidPeer is returned by Finish when the peer's message is not a
	// canonical ristretto255 encoding, encodes the identity element (so
	// K would be the identity), or echoes our own message. The exchange
	// must be abandoned; retrying with the same State is impossible.
	ErrInvalidPeer = errors.New("cpace: invalid peer message")
	// ErrUsed is returned by Finish on a State that already finished (or
	// failed) once, and on a nil or zero State.
	ErrUsed = errors.New("cpace: state already used")
	// ErrInput is returned by Start for an invalid role, an empty password
	// or an input longer than MaxInputSize.
	ErrInput = errors.New("cpace: invalid input")
)

// State is one party's side of a CPace exchange between Start and Finish. It
// holds the secret scalar; it never prints it (see Format and LogValue). A
// State is not safe for concurrent use.
type State struct {
	role Role
	y    *ristretto255.Scalar // nil once finished
	sid  []byte
	msg  []byte // our Y, encoded
	ad   []byte // our associated data
}

// Start begins CPace for one party. prs is the password (the short code), ci
// the channel identifier, sid the session id (may be empty), ad this party's
// associated data. rand supplies the scalar (64 bytes per attempt, reduced
// modulo the group order).
//
// It returns the State to pass the peer's reply to, and our message (Ya for
// the initiator, Yb for the responder, MessageSize bytes) to send to the peer
// together with ad. The inputs are copied; the caller may wipe prs at once.
func Start(role Role, prs, ci, sid, ad []byte, rand io.Reader) (*State, []byte, error) {
	if err := checkInputs(role, prs, ci, sid, ad); err != nil {
		return nil, nil, err
	}
	if rand == nil {
		return nil, nil, fmt.Errorf("%w: nil random source", ErrInput)
	}
	y, err := sampleScalar(rand)
	if err != nil {
		return nil, nil, err
	}
	st, msg, err := startWithScalar(role, prs, ci, sid, ad, y)
	if err != nil {
		y.Zero()
		return nil, nil, err
	}
	return st, msg, nil
}

// checkInputs validates what Start is given.
func checkInputs(role Role, prs, ci, sid, ad []byte) error {
	if role != Initiator && role != Responder {
		return fmt.Errorf("%w: role %v, want Initiator or Responder", ErrInput, role)
	}
	if len(prs) == 0 {
		return fmt.Errorf("%w: empty password", ErrInput)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"password", prs}, {"channel identifier", ci}, {"session id", sid}, {"associated data", ad}} {
		if len(f.b) > MaxInputSize {
			return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInput, f.name, len(f.b), MaxInputSize)
		}
	}
	return nil
}

// sampleScalar implements G.sample_scalar with wide reduction: 64 uniform
// bytes reduced modulo the group order l give a scalar whose statistical
// distance from uniform is negligible (about 2^-259). Zero is refused and sampled again so that the
// result lies in [1, l-1] as the draft asks of alternatives to its bit-masking
// recipe (Section 8.3).
func sampleScalar(rand io.Reader) (*ristretto255.Scalar, error) {
	var buf [scalarSampleSize]byte
	defer clear(buf[:])
	zero := ristretto255.NewScalar()
	for range maxSampleAttempts {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, fmt.Errorf("cpace: reading random scalar: %w", err)
		}
		y := ristretto255.NewScalar().FromUniformBytes(buf[:])
		if y.Equal(zero) == 0 {
			return y, nil
		}
	}
	return nil, errors.New("cpace: random source returned only zero scalars; check the system random generator")
}

// startWithScalar is Start with the scalar given, so that tests can use the
// draft's ya and yb. It takes ownership of y (Finish wipes it).
func startWithScalar(role Role, prs, ci, sid, ad []byte, y *ristretto255.Scalar) (*State, []byte, error) {
	if err := checkInputs(role, prs, ci, sid, ad); err != nil {
		return nil, nil, err
	}
	g := calculateGenerator(prs, ci, sid)
	defer g.Zero()
	// G.scalar_mult(y, g) = encode(y * g).
	p := ristretto255.NewElement().ScalarMult(y, g)
	identity := p.Equal(ristretto255.NewElement()) == 1
	msg := p.Encode(make([]byte, 0, MessageSize))
	p.Zero()
	if identity {
		// Only if y = 0 or g is the identity; neither happens with a
		// sampled scalar and a hashed generator.
		return nil, nil, errors.New("cpace: degenerate generator or scalar; use another password or session id")
	}
	st := &State{
		role: role,
		y:    y,
		sid:  bytes.Clone(sid),
		msg:  msg,
		ad:   bytes.Clone(ad),
	}
	return st, bytes.Clone(msg), nil
}

// Finish takes the peer's message and associated data and returns the
// intermediate shared key ISK (KeySize bytes). It refuses, with an error
// wrapping ErrInvalidPeer, a message that is not a canonical ristretto255
// encoding, that encodes the identity element (K == identity), or that is our
// own message sent back. The state is wiped and unusable afterwards, whatever
// the outcome.
//
// A nil error does not mean the peer knows the password: the caller must
// confirm the key (see the package documentation) before using it.
func (s *State) Finish(peerMsg, peerAD []byte) ([]byte, error) {
	if s == nil || s.y == nil {
		return nil, ErrUsed
	}
	defer s.wipe()
	if len(peerAD) > MaxInputSize {
		return nil, fmt.Errorf("%w: associated data is %d bytes, limit %d; the peer is not following this protocol",
			ErrInvalidPeer, len(peerAD), MaxInputSize)
	}
	if bytes.Equal(peerMsg, s.msg) {
		// Not in the draft: a reflected message is the loopback attack of
		// its Section 10.1.2, which no honest peer can trigger (it would
		// need the same scalar).
		return nil, fmt.Errorf("%w: the peer sent our own message back; abandon this pairing attempt", ErrInvalidPeer)
	}
	k, err := scalarMultVfy(s.y, peerMsg)
	if err != nil {
		return nil, err
	}
	defer clear(k)

	var tr []byte
	if s.role == Initiator {
		tr = transcriptIR(s.msg, s.ad, peerMsg, peerAD)
	} else {
		tr = transcriptIR(peerMsg, peerAD, s.msg, s.ad)
	}
	return deriveISK(s.sid, k, tr), nil
}

// wipe zeroes the secret scalar and makes the state unusable.
// Abort wipes a state that will not be finished (its caller gave up, the
// peer went away). A nil or spent state is fine.
func (s *State) Abort() {
	if s != nil {
		s.wipe()
	}
}

func (s *State) wipe() {
	if s.y != nil {
		s.y.Zero()
	}
	s.y = nil
	s.sid, s.msg, s.ad = nil, nil, nil
}

// String implements fmt.Stringer without revealing the scalar.
func (s *State) String() string {
	if s == nil {
		return "cpace.State(nil)"
	}
	return "cpace.State(" + s.role.String() + ", [redacted])"
}

// GoString implements fmt.GoStringer without revealing the scalar.
func (s *State) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb prints the redacted form.
func (s *State) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue implements slog.LogValuer without revealing the scalar.
func (s *State) LogValue() slog.Value { return slog.StringValue(s.String()) }

// scalarMultVfy is G.scalar_mult_vfy(y, X) for ristretto255 followed by the
// abort check of Section 7.2: it decodes X, refusing anything but the
// canonical encoding of a group element, computes K = y * X and refuses
// K = G.I. It returns the encoding of K, which the caller must wipe.
func scalarMultVfy(y *ristretto255.Scalar, x []byte) ([]byte, error) {
	if len(x) != MessageSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d; the peer is not speaking CPace-ristretto255 or the message was cut",
			ErrInvalidPeer, len(x), MessageSize)
	}
	p := ristretto255.NewElement()
	if err := p.Decode(x); err != nil {
		return nil, fmt.Errorf("%w: not a canonical ristretto255 element; the message was altered in transit", ErrInvalidPeer)
	}
	k := ristretto255.NewElement().ScalarMult(y, p)
	defer k.Zero()
	if k.Equal(ristretto255.NewElement()) == 1 {
		return nil, fmt.Errorf("%w: identity element; the peer or a relay is attacking the exchange", ErrInvalidPeer)
	}
	return k.Encode(make([]byte, 0, MessageSize)), nil
}

// calculateGenerator is G.calculate_generator(H, PRS, CI, sid) of Section 8.3:
// hash the zero-padded generator string to 2*32 bytes with SHA-512 and map
// them to the group with the ristretto255 element derivation.
func calculateGenerator(prs, ci, sid []byte) *ristretto255.Element {
	gs := generatorString([]byte(dsi), prs, ci, sid, hashBlockSize)
	h := sha512.Sum512(gs)
	clear(gs)
	g := ristretto255.NewElement().FromUniformBytes(h[:])
	clear(h[:])
	return g
}

// generatorString is generator_string(DSI, PRS, CI, sid, s_in_bytes) of
// Appendix A.2: lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid), where the
// padding makes DSI and PRS fill the first hash block whenever PRS is short,
// so that the cost of hashing the first block does not depend on the
// password length.
func generatorString(domain, prs, ci, sid []byte, sInBytes int) []byte {
	lenPRS := prependLenSize(len(prs)) + len(prs)       // len(prepend_len(PRS))
	lenDSI := prependLenSize(len(domain)) + len(domain) // len(prepend_len(DSI))
	zpad := max(0, sInBytes-1-lenPRS-lenDSI)
	return lvCat(domain, prs, make([]byte, zpad), ci, sid)
}

// transcriptIR is transcript_ir(Ya, ADa, Yb, ADb) of Appendix A.3.4: the
// initiator's message and associated data first.
func transcriptIR(ya, ada, yb, adb []byte) []byte {
	return append(lvCat(ya, ada), lvCat(yb, adb)...)
}

// deriveISK is ISK = H.hash(lv_cat(G.DSI || "_ISK", sid, K) || transcript)
// of Section 7.2. It wipes its own copy of K.
func deriveISK(sid, k, transcript []byte) []byte {
	in := append(lvCat([]byte(dsiISK), sid, k), transcript...)
	isk := sha512.Sum512(in)
	clear(in)
	out := make([]byte, KeySize)
	copy(out, isk[:])
	clear(isk[:])
	return out
}

// lvCat is lv_cat(a0, a1, ...) of Appendix A.1.3: each argument with its
// length prepended.
func lvCat(args ...[]byte) []byte {
	n := 0
	for _, a := range args {
		n += prependLenSize(len(a)) + len(a)
	}
	out := make([]byte, 0, n)
	for _, a := range args {
		out = appendPrependLen(out, a)
	}
	return out
}

// appendPrependLen appends prepend_len(data) of Appendix A.1.1 to dst: the
// length of data as unsigned LEB128, then data.
func appendPrependLen(dst, data []byte) []byte {
	return append(appendLEB128(dst, uint64(len(data))), data...)
}

// appendLEB128 appends the unsigned LEB128 encoding of n: seven bits per
// byte, least significant group first, bit 7 set on every byte but the last.
func appendLEB128(dst []byte, n uint64) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// prependLenSize is the size of the LEB128 length prefix that prepend_len puts
// before a string of n bytes.
func prependLenSize(n int) int {
	size := 1
	for v := uint64(n); v >= 0x80; v >>= 7 {
		size++
	}
	return size
}
