package genpass

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/safehold/safehold/internal/secret"
)

// ErrExhausted is returned when rejection sampling does not finish within its
// attempt budget. With a working random source this happens with probability
// far below 2^-100; it almost always means the reader is broken (for example
// it returns constant bytes).
var ErrExhausted = errors.New("random source looks broken: rejection sampling did not finish")

// sampler draws uniformly distributed integers from an io.Reader. It buffers
// reads in chunks so that a slow source (the CLI's two-source mixer) is not
// asked for one byte at a time, and wipes its buffer when closed.
type sampler struct {
	r   io.Reader
	buf []byte
	pos int
}

const samplerChunk = 256

// maxRejections bounds the draws spent on one uniform integer. Each draw is
// accepted with probability > 1/2, so 1000 rejections in a row have
// probability < 2^-1000 with a good source.
const maxRejections = 1000

func newSampler(r io.Reader) *sampler {
	return &sampler{r: r, buf: make([]byte, samplerChunk), pos: samplerChunk}
}

func (s *sampler) close() { secret.Wipe(s.buf) }

func (s *sampler) byte() (byte, error) {
	if s.pos == len(s.buf) {
		if _, err := io.ReadFull(s.r, s.buf); err != nil {
			return 0, fmt.Errorf("read random source: %w", err)
		}
		s.pos = 0
	}
	b := s.buf[s.pos]
	s.buf[s.pos] = 0
	s.pos++
	return b, nil
}

// uniform returns an integer uniformly distributed in [0, n), 1 <= n <= 2^32.
// It reads ceil(k/8) bytes, where k is the bit length of n-1, masks the value
// to k bits and rejects values >= n. No modulo reduction is ever applied, so
// the result carries no bias.
func (s *sampler) uniform(n uint64) (uint64, error) {
	if n == 0 || n > 1<<32 {
		return 0, fmt.Errorf("uniform: range %d out of bounds", n)
	}
	if n == 1 {
		return 0, nil
	}
	k := bits.Len64(n - 1)
	mask := uint64(1)<<k - 1
	nbytes := (k + 7) / 8
	for range maxRejections {
		var v uint64
		for range nbytes {
			b, err := s.byte()
			if err != nil {
				return 0, err
			}
			v = v<<8 | uint64(b)
		}
		v &= mask
		if v < n {
			return v, nil
		}
	}
	return 0, ErrExhausted
}
