package loadgen

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Interval is one row of a soak run's timeline: what happened between the
// previous row and EndS seconds into the run.
type Interval struct {
	EndS      float64 `json:"end_s"`
	Requests  uint64  `json:"requests"`
	PerSecond float64 `json:"requests_per_s"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	Errors    uint64  `json:"errors"`
	// HeapInuseMiB is the in-process Go heap in use at EndS (no
	// collection forced: it includes garbage not yet collected).
	HeapInuseMiB float64 `json:"heap_inuse_mib,omitempty"`
	// ServerRSSMiB is the resident set of the server at EndS: this
	// process for an in-process server, else the process Config.ServerPID
	// names.
	ServerRSSMiB float64 `json:"server_rss_mib,omitempty"`
}

// ServerMemory is the resident memory of a server in another process
// (Config.ServerPID), read from /proc around and during the run.
type ServerMemory struct {
	PID          int     `json:"pid"`
	RSSBeforeMiB float64 `json:"rss_before_mib"` // after setup, before the run
	// RSSWarmMiB is the resident set at the end of the first interval
	// (or at the end of the run without intervals): caches, connection
	// buffers and the heap target are then in place, so RSSAfterMiB −
	// RSSWarmMiB is the growth a leak would show.
	RSSWarmMiB  float64 `json:"rss_warm_mib"`
	RSSAfterMiB float64 `json:"rss_after_mib"`
	RSSPeakMiB  float64 `json:"rss_peak_mib"`      // the highest sample
	HWMMiB      float64 `json:"rss_hwm_mib"`       // VmHWM: the kernel's high-water mark since the server started
	GrowthMiB   float64 `json:"growth_mib"`        // after − before
	SteadyMiB   float64 `json:"steady_growth_mib"` // after − warm
}

// window collects the requests of the current interval across clients.
// Recording takes a lock; at a few thousand requests per second that costs
// nothing measurable, and it lets the quantiles of each interval be exact
// to the histogram's resolution.
type window struct {
	mu     sync.Mutex
	cur    *hist
	spare  *hist
	errors atomic.Uint64
}

func newWindow() *window { return &window{cur: new(hist), spare: new(hist)} }

func (w *window) record(d time.Duration) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.cur.record(d)
	w.mu.Unlock()
}

func (w *window) fail() {
	if w != nil {
		w.errors.Add(1)
	}
}

// take summarises the interval that ends now and starts the next.
func (w *window) take(end, length time.Duration) Interval {
	w.mu.Lock()
	h := w.cur
	w.cur, w.spare = w.spare, h
	w.mu.Unlock()
	iv := Interval{
		EndS:     end.Seconds(),
		Requests: h.n,
		P50:      ms(h.quantile(0.50)),
		P99:      ms(h.quantile(0.99)),
		Max:      ms(h.max),
		Errors:   w.errors.Swap(0),
	}
	if length > 0 {
		iv.PerSecond = float64(h.n) / length.Seconds()
	}
	*h = hist{}
	return iv
}

// memorySampler watches the server's resident memory (and, in process, the
// Go heap) during the run.
type memorySampler struct {
	pid       string // "self" or a PID
	inProcess bool
	peakRSS   float64
	peakHeap  uint64
}

func newMemorySampler(inProcess bool, serverPID int) *memorySampler {
	switch {
	case inProcess:
		return &memorySampler{pid: "self", inProcess: true}
	case serverPID > 0:
		return &memorySampler{pid: strconv.Itoa(serverPID)}
	}
	return nil
}

// sample reads the memory now, keeps the peaks and fills iv's memory
// columns (iv may be nil).
func (s *memorySampler) sample(iv *Interval) {
	if s == nil {
		return
	}
	rss := procMiB(s.pid, "VmRSS:")
	s.peakRSS = max(s.peakRSS, rss)
	var heap uint64
	if s.inProcess {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		heap = m.HeapInuse
		s.peakHeap = max(s.peakHeap, heap)
	}
	if iv != nil {
		iv.ServerRSSMiB = rss
		if s.inProcess {
			iv.HeapInuseMiB = float64(heap) / (1 << 20)
		}
	}
}
