package loadgen

import (
	"math/bits"
	"time"
)

// hist is a latency histogram of fixed size, so that recording allocates
// nothing while the server's memory is measured in the same process.
//
// Values are microseconds. Below 2^subBits µs every value has its own
// bucket; above, each power of two is split into 2^(subBits-1) buckets, so
// a quantile is exact to within 1/2^(subBits-1) (0.2 %) of its value.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits     = 10
	subCount    = 1 << subBits // exact buckets: 0..1023 µs
	halfSub     = subCount / 2
	maxExp      = 40 - subBits // up to 2^40 µs (12 days): anything longer is clamped
	histBuckets = subCount + maxExp*halfSub
)

// bucket returns the bucket of a value in microseconds.
func bucket(us uint64) int {
	if us < subCount {
		return int(us)
	}
	e := bits.Len64(us) - subBits // ≥ 1
	if e > maxExp {
		return histBuckets - 1
	}
	// us>>e is in [halfSub, subCount).
	return subCount + (e-1)*halfSub + int(us>>e) - halfSub
}

// lower returns the smallest value in microseconds that falls in bucket i.
func lower(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	i -= subCount
	e := i/halfSub + 1
	return uint64(i%halfSub+halfSub) << e
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d/time.Microsecond))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q ≤ 1): the lower bound of the
// bucket holding the ⌈q·n⌉-th smallest value, never above the maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(lower(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
