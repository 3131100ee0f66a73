package server

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics is the Prometheus exposition (text format 0.0.4), written by
// hand to avoid a dependency. Labels are route patterns, methods and
// status codes: never ids, addresses or anything a user typed.
type metrics struct {
	inFlight atomic.Int64

	mu       sync.Mutex
	requests map[reqKey]uint64
	latency  map[string]*histogram // by route
}

type reqKey struct {
	route, method string
	code          int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// latencyBuckets are the histogram's upper bounds in seconds.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]uint64{}, latency: map[string]*histogram{}}
}

// observe counts one finished request.
func (m *metrics) observe(route, method string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		method = "other" // the client chooses the method: bound the labels
	}
	sec := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{route, method, code}]++
	h := m.latency[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		m.latency[route] = h
	}
	for i, b := range latencyBuckets {
		if sec <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += sec
	h.count++
}

func (m *metrics) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	m.write(&buf)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(buf.Bytes())
}

// write renders every metric.
func (m *metrics) write(b *bytes.Buffer) {
	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqKey) int {
		return cmp.Or(strings.Compare(a.route, b.route), strings.Compare(a.method, b.method), cmp.Compare(a.code, b.code))
	})
	b.WriteString("# HELP safehold_http_requests_total HTTP requests by route pattern, method and status code.\n")
	b.WriteString("# TYPE safehold_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(b, "safehold_http_requests_total{route=%s,method=%s,code=\"%d\"} %d\n",
			quoteLabel(k.route), quoteLabel(k.method), k.code, m.requests[k])
	}
	routes := make([]string, 0, len(m.latency))
	for r := range m.latency {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	b.WriteString("# HELP safehold_http_request_duration_seconds HTTP request latency by route pattern.\n")
	b.WriteString("# TYPE safehold_http_request_duration_seconds histogram\n")
	for _, r := range routes {
		h := m.latency[r]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(b, "safehold_http_request_duration_seconds_bucket{route=%s,le=\"%s\"} %d\n", quoteLabel(r), formatFloat(le), cum)
		}
		fmt.Fprintf(b, "safehold_http_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", quoteLabel(r), h.count)
		fmt.Fprintf(b, "safehold_http_request_duration_seconds_sum{route=%s} %s\n", quoteLabel(r), formatFloat(h.sum))
		fmt.Fprintf(b, "safehold_http_request_duration_seconds_count{route=%s} %d\n", quoteLabel(r), h.count)
	}
	m.mu.Unlock()

	b.WriteString("# HELP safehold_http_requests_in_flight HTTP requests being served.\n")
	b.WriteString("# TYPE safehold_http_requests_in_flight gauge\n")
	fmt.Fprintf(b, "safehold_http_requests_in_flight %d\n", m.inFlight.Load())

	b.WriteString("# HELP go_goroutines Number of goroutines that currently exist.\n")
	b.WriteString("# TYPE go_goroutines gauge\n")
	fmt.Fprintf(b, "go_goroutines %d\n", runtime.NumGoroutine())

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.WriteString("# HELP go_memstats_heap_alloc_bytes Bytes of allocated heap objects.\n")
	b.WriteString("# TYPE go_memstats_heap_alloc_bytes gauge\n")
	fmt.Fprintf(b, "go_memstats_heap_alloc_bytes %d\n", ms.HeapAlloc)
	b.WriteString("# HELP go_memstats_sys_bytes Bytes of memory obtained from the OS.\n")
	b.WriteString("# TYPE go_memstats_sys_bytes gauge\n")
	fmt.Fprintf(b, "go_memstats_sys_bytes %d\n", ms.Sys)
	if rss, ok := residentBytes(); ok {
		b.WriteString("# HELP process_resident_memory_bytes Resident memory size in bytes.\n")
		b.WriteString("# TYPE process_resident_memory_bytes gauge\n")
		fmt.Fprintf(b, "process_resident_memory_bytes %d\n", rss)
	}
}

// quoteLabel quotes a label value as the exposition format wants.
func quoteLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// residentBytes reads the resident set size from /proc (Linux only).
func residentBytes() (int64, bool) {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
