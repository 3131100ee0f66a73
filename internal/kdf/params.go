// Package kdf turns a password (and, for accounts on a server, the 128-bit
// Secret Key) into keys: Argon2id and PBKDF2-HMAC-SHA512, run with
// independent salts, both feed HKDF-SHA512, which expands the key-encryption
// key that unwraps the Master Key and the unrelated server-login key.
//
// Work factors are bounded both ways: [Params.Check] refuses parameters below
// the compiled floors (a downgrade) and above the ceilings (a denial of
// service) before any work is done. A tiny insecure profile exists for tests
// only; it is accepted only when the caller passes allowInsecure, which the
// CLI does only when SAFE_INSECURE_TEST_KDF=1, and a vault made with it
// records the fact in its header.
//
// The byte layouts are specified in docs/design.md.
package kdf

import (
	"errors"
	"fmt"
)

// Floors: the client never derives keys with less work than this, whoever
// proposes the parameters. They follow RFC 9106's second recommended option
// (64 MiB) with t raised to 2, and OWASP's PBKDF2-HMAC-SHA512 minimum
// rounded down to 100,000.
const (
	MinArgon2MemoryKiB  = 64 * 1024 // 64 MiB
	MinArgon2Time       = 2
	MinArgon2Threads    = 1
	MinPBKDF2Iterations = 100_000
)

// Ceilings: a header asking for more is refused before any work is done, so a
// hostile server cannot make the client allocate 64 GiB or spin for hours.
const (
	MaxArgon2MemoryKiB  = 4 * 1024 * 1024 // 4 GiB
	MaxArgon2Time       = 64
	MaxArgon2Threads    = 16
	MaxPBKDF2Iterations = 20_000_000
)

// Floors of the insecure test profile, accepted only with allowInsecure.
const (
	testMinArgon2MemoryKiB  = 256
	testMinArgon2Time       = 1
	testMinPBKDF2Iterations = 1000
)

var (
	// ErrBelowFloor reports a work factor below the compiled floor.
	ErrBelowFloor = errors.New("kdf: parameters below the minimum")
	// ErrAboveCeiling reports a work factor above the compiled ceiling.
	ErrAboveCeiling = errors.New("kdf: parameters above the maximum")
	// ErrInsecureNotAllowed reports the insecure test profile where the
	// caller did not allow it.
	ErrInsecureNotAllowed = errors.New("kdf: insecure test parameters are not allowed")
)

// Params are the work factors of the cascade. The zero value is invalid.
type Params struct {
	// Argon2Memory is Argon2id's memory in KiB.
	Argon2Memory uint32 `json:"argon2_memory_kib"`
	// Argon2Time is Argon2id's number of passes.
	Argon2Time uint32 `json:"argon2_time"`
	// Argon2Threads is Argon2id's parallelism (lanes).
	Argon2Threads uint8 `json:"argon2_threads"`
	// PBKDF2Iterations is PBKDF2-HMAC-SHA512's iteration count.
	PBKDF2Iterations uint32 `json:"pbkdf2_iterations"`
	// InsecureTest marks the tiny test profile. A vault made with it says
	// so in its header and is refused unless allowInsecure is passed.
	InsecureTest bool `json:"insecure_test,omitempty"`
}

// Defaults returns the parameters used when the user does not tune: Argon2id
// with 256 MiB, t=2, p=2 and PBKDF2 with 600,000 iterations. Run
// concurrently they take about 0.4 to 1 s on a 2-core virtual machine (see
// docs/design.md for measurements); `safe kdf tune`
// picks parameters for the machine at hand.
func Defaults() Params {
	return Params{
		Argon2Memory:     256 * 1024,
		Argon2Time:       2,
		Argon2Threads:    2,
		PBKDF2Iterations: 600_000,
	}
}

// TestParams returns the insecure test profile: Argon2id 256 KiB, t=1, p=1
// and PBKDF2 1000 iterations, with InsecureTest set. It derives in about a
// millisecond and protects nothing. Check accepts it only with allowInsecure.
func TestParams() Params {
	return Params{
		Argon2Memory:     testMinArgon2MemoryKiB,
		Argon2Time:       testMinArgon2Time,
		Argon2Threads:    1,
		PBKDF2Iterations: testMinPBKDF2Iterations,
		InsecureTest:     true,
	}
}

// Check reports whether p may be used, without doing any work. Parameters
// above a ceiling fail with ErrAboveCeiling and below a floor with
// ErrBelowFloor. Parameters marked InsecureTest fail with
// ErrInsecureNotAllowed unless allowInsecure is true, and are then held to
// the test profile's floors instead. Only the CLI decides allowInsecure (from
// SAFE_INSECURE_TEST_KDF=1); this package never reads the environment.
func (p Params) Check(allowInsecure bool) error {
	if p.Argon2Memory > MaxArgon2MemoryKiB {
		return fmt.Errorf("%w: argon2id memory %d KiB > %d KiB", ErrAboveCeiling, p.Argon2Memory, MaxArgon2MemoryKiB)
	}
	if p.Argon2Time > MaxArgon2Time {
		return fmt.Errorf("%w: argon2id time %d > %d", ErrAboveCeiling, p.Argon2Time, MaxArgon2Time)
	}
	if p.Argon2Threads > MaxArgon2Threads {
		return fmt.Errorf("%w: argon2id threads %d > %d", ErrAboveCeiling, p.Argon2Threads, MaxArgon2Threads)
	}
	if p.PBKDF2Iterations > MaxPBKDF2Iterations {
		return fmt.Errorf("%w: pbkdf2 iterations %d > %d", ErrAboveCeiling, p.PBKDF2Iterations, MaxPBKDF2Iterations)
	}
	minMem, minTime, minIter := uint32(MinArgon2MemoryKiB), uint32(MinArgon2Time), uint32(MinPBKDF2Iterations)
	if p.InsecureTest {
		if !allowInsecure {
			return ErrInsecureNotAllowed
		}
		minMem, minTime, minIter = testMinArgon2MemoryKiB, testMinArgon2Time, testMinPBKDF2Iterations
	}
	if p.Argon2Memory < minMem {
		return fmt.Errorf("%w: argon2id memory %d KiB < %d KiB", ErrBelowFloor, p.Argon2Memory, minMem)
	}
	if p.Argon2Time < minTime {
		return fmt.Errorf("%w: argon2id time %d < %d", ErrBelowFloor, p.Argon2Time, minTime)
	}
	if p.Argon2Threads < MinArgon2Threads {
		return fmt.Errorf("%w: argon2id threads %d < %d", ErrBelowFloor, p.Argon2Threads, MinArgon2Threads)
	}
	if p.PBKDF2Iterations < minIter {
		return fmt.Errorf("%w: pbkdf2 iterations %d < %d", ErrBelowFloor, p.PBKDF2Iterations, minIter)
	}
	return nil
}

// WeakerThan reports whether p does less work than q in any dimension an
// attacker pays for (Argon2id memory or time, PBKDF2 iterations), or is the
// insecure profile while q is not. A client refuses parameters weaker than
// those it last saw for the account. Threads are not compared: lanes change
// the output, not the attacker's cost.
func (p Params) WeakerThan(q Params) bool {
	return p.Argon2Memory < q.Argon2Memory ||
		p.Argon2Time < q.Argon2Time ||
		p.PBKDF2Iterations < q.PBKDF2Iterations ||
		(p.InsecureTest && !q.InsecureTest)
}

// String describes the parameters for messages.
func (p Params) String() string {
	s := fmt.Sprintf("Argon2id m=%d KiB t=%d p=%d, PBKDF2 %d iterations", p.Argon2Memory, p.Argon2Time, p.Argon2Threads, p.PBKDF2Iterations)
	if p.InsecureTest {
		s += " (insecure test profile)"
	}
	return s
}
