// Package random provides the randomness every Safehold key is made from: the
// HKDF-SHA512 mix of two independent sources, the operating system's
// generator (crypto/rand) and a userspace ChaCha20 DRBG seeded separately. If
// either source is good, the output is good.
//
// The mix, the seeding and the reseeding are specified in
// docs/design.md. Use [New] in production code and pass
// the *[Source] as an io.Reader to whatever needs random bytes; use
// [NewDeterministic] only in tests and vector generators.
package random

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

const (
	// mixInfo is the HKDF info string of the mix. Changing it changes every
	// output, so it carries a version.
	mixInfo = "safehold/random/v1"

	// drawSize is how many bytes each source contributes to one mix: 256
	// bits, the security level of every key made from the output.
	drawSize = 32

	// maxChunk is the most HKDF-SHA512 can expand from one pseudorandom
	// key (255 blocks of 64 bytes). Longer reads draw fresh input per chunk.
	maxChunk = 255 * sha512.Size
)

// Source is a cryptographically secure random generator that mixes
// crypto/rand with an independent userspace DRBG. It implements io.Reader and
// is safe for concurrent use.
//
// Every Read draws 32 fresh bytes from each source and returns
// HKDF-SHA512(ikm = os || drbg, salt = none, info = "safehold/random/v1")
// expanded to the requested length; reads longer than 16320 bytes repeat
// this per 16320-byte chunk.
type Source struct {
	mu   sync.Mutex
	os   io.Reader // crypto/rand.Reader in production
	user io.Reader // the userspace DRBG in production
}

// New returns a Source whose userspace DRBG is seeded from its own read of
// /dev/urandom, timing jitter and process facts, independently of
// crypto/rand. It fails if /dev/urandom cannot be read.
func New() (*Source, error) {
	d, err := newReseedingDRBG(time.Now, seedMaterial)
	if err != nil {
		return nil, err
	}
	return &Source{os: rand.Reader, user: d}, nil
}

// NewDeterministic returns a reader that produces the same stream for the
// same seed. It is FOR TESTS AND TEST VECTORS ONLY: its output is exactly as
// secret as seed, which is usually a constant in a test file.
//
// Both "sources" are ChaCha20 DRBGs keyed from seed with different labels,
// and their output goes through the same mix as [Source], so vectors exercise
// the real mixing code.
func NewDeterministic(seed []byte) io.Reader {
	osKey, err := hkdf.Key(sha512.New, seed, nil, "safehold/random/test-only/os", 32)
	if err != nil {
		panic("random: hkdf: " + err.Error()) // unreachable: 32 bytes is in range
	}
	userKey, err := hkdf.Key(sha512.New, seed, nil, "safehold/random/test-only/user", 32)
	if err != nil {
		panic("random: hkdf: " + err.Error())
	}
	return &Source{os: newDRBG(osKey), user: newDRBG(userKey)}
}

// Read fills p with random bytes. It returns len(p), nil unless a source
// fails, in which case it returns 0 and an error and p must not be used.
func (s *Source) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ikm [2 * drawSize]byte
	defer clear(ikm[:])
	done := 0
	for done < len(p) {
		n := min(len(p)-done, maxChunk)
		if _, err := io.ReadFull(s.os, ikm[:drawSize]); err != nil {
			clear(p)
			return 0, fmt.Errorf("random: reading the system source: %w", err)
		}
		if _, err := io.ReadFull(s.user, ikm[drawSize:]); err != nil {
			clear(p)
			return 0, fmt.Errorf("random: reading the userspace source: %w", err)
		}
		out, err := mix(ikm[:], n)
		if err != nil {
			clear(p)
			return 0, err
		}
		copy(p[done:], out)
		clear(out)
		done += n
	}
	return len(p), nil
}

// mix is the combiner: HKDF-SHA512 with the two draws concatenated as input
// keying material. HKDF-Extract is a PRF keyed by the (empty) salt over ikm,
// and a randomness extractor: the output is uniform as long as either half of
// ikm is unpredictable.
func mix(ikm []byte, n int) ([]byte, error) {
	out, err := hkdf.Key(sha512.New, ikm, nil, mixInfo, n)
	if err != nil {
		return nil, fmt.Errorf("random: mixing: %w", err)
	}
	return out, nil
}

// errShortSeed reports that seeding could not gather enough bytes.
var errShortSeed = errors.New("random: short read seeding the userspace generator")
