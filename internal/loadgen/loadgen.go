// Package loadgen is the engine of `safe bench sync`: a load generator for
// the sync server that speaks the wire protocol directly.
//
// It starts `safe serve` in this process (SQLite in a temporary directory,
// or PostgreSQL in a fresh schema) or targets one already running on this
// machine; it never sends load anywhere but loopback. It registers one
// account per simulated client (setup, not measured: each registration
// runs the server's scrypt), then every client loops over sync requests on
// its own connection for a fixed time: mostly pulls of its vault's log
// since its head (what a device that is up to date sends), sometimes a
// push of one new log entry. The entries are real (package vlog, signed,
// chained, with payload digests) because the server checks them; the
// payloads are random bytes of the size of a sealed item, because the
// server never opens them.
//
// It reports throughput, latency quantiles per request kind, errors by
// kind, and, for an in-process server, the process's memory and CPU
// before and after (which include the load generator's own share).
package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/sign"
)

// Bounds of a run.
const (
	MaxDuration = time.Hour
	MaxClients  = 1000
	MaxSeed     = 100_000
	MaxPayload  = 1 << 20

	DefaultClients  = 50
	DefaultDuration = 10 * time.Second
	DefaultPushPct  = 20
	DefaultPayload  = 400
	DefaultSeed     = 100

	// registerWorkers bounds concurrent registrations (the server bounds
	// its scrypt work on its own; this only avoids timeouts in the queue).
	registerWorkers = 8
)

// Config describes one run.
type Config struct {
	// URL and Fingerprint name a running server (loopback only). Empty
	// URL: start one in this process.
	URL, Fingerprint string
	// DB is a PostgreSQL URL for the in-process server; the run uses a
	// fresh schema in it and drops it at the end. Empty: SQLite.
	DB string
	// DataDir holds the in-process server's certificate and SQLite
	// database. Empty: a temporary directory, removed at the end.
	DataDir string

	Clients  int           // concurrent clients (0: DefaultClients)
	Duration time.Duration // measured time (0: DefaultDuration)
	PushPct  int           // share of pushes in percent, 0..100 (-1: none; 0: DefaultPushPct)
	Payload  int           // payload bytes of a pushed entry (0: DefaultPayload)
	Seed     int           // entries in each vault before the run (-1: none; 0: DefaultSeed)

	// Interval, if set, adds a timeline to the report: a row per
	// Interval with its throughput, latency, errors and memory, so that
	// a long (soak) run shows whether anything drifts.
	Interval time.Duration
	// ServerPID names the process of a server given by URL, on this
	// machine, whose resident memory the report follows (Linux /proc).
	// An in-process server is followed without it.
	ServerPID int

	// Progress receives a line per setup step (nil: none).
	Progress io.Writer
	// CPUProfile, if set, receives a CPU profile (runtime/pprof) of the
	// measured run, setup excluded.
	CPUProfile io.Writer
}

func (c *Config) defaults() error {
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	switch c.PushPct {
	case 0:
		c.PushPct = DefaultPushPct
	case -1:
		c.PushPct = 0
	}
	if c.Payload == 0 {
		c.Payload = DefaultPayload
	}
	switch c.Seed {
	case 0:
		c.Seed = DefaultSeed
	case -1:
		c.Seed = 0
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("clients: %d is not in 1..%d", c.Clients, MaxClients)
	case c.Duration < time.Second || c.Duration > MaxDuration:
		return fmt.Errorf("duration: %s is not in 1s..%s", c.Duration, MaxDuration)
	case c.PushPct < 0 || c.PushPct > 100:
		return fmt.Errorf("push share: %d%% is not in 0..100", c.PushPct)
	case c.Payload < 1 || c.Payload > MaxPayload:
		return fmt.Errorf("payload: %d bytes is not in 1..%d", c.Payload, MaxPayload)
	case c.Seed < 0 || c.Seed > MaxSeed:
		return fmt.Errorf("seed: %d entries is not in 0..%d", c.Seed, MaxSeed)
	case c.URL != "" && (c.DB != "" || c.DataDir != ""):
		return errors.New("a database or data directory applies only to an in-process server, not with a server address")
	case c.URL != "" && c.Fingerprint == "":
		return errors.New("a server address needs its certificate fingerprint")
	case c.Interval < 0 || (c.Interval > 0 && c.Interval < time.Second) || c.Interval > c.Duration:
		return fmt.Errorf("interval: %s is not in 1s..%s (the duration)", c.Interval, c.Duration)
	case c.ServerPID != 0 && c.URL == "":
		return errors.New("a server PID applies to a server given by address; an in-process server is measured without it")
	case c.ServerPID < 0:
		return fmt.Errorf("server PID: %d is not a process id", c.ServerPID)
	case c.ServerPID > 0 && procMiB(fmt.Sprint(c.ServerPID), "VmRSS:") == 0:
		return fmt.Errorf("server PID: no running process %d whose memory this machine can read (Linux /proc/PID/status)", c.ServerPID)
	}
	return nil
}

// Report is the outcome of a run. Durations are in milliseconds in JSON.
type Report struct {
	Server     string       `json:"server"` // "in-process, sqlite", "in-process, postgresql" or the URL
	Clients    int          `json:"clients"`
	PushPct    int          `json:"push_pct"`
	Payload    int          `json:"payload_bytes"`
	Seed       int          `json:"seed_entries"`
	SetupS     float64      `json:"setup_s"`   // registration and seeding, not measured
	ElapsedS   float64      `json:"elapsed_s"` // from the first request to the last answer
	Requests   uint64       `json:"requests"`
	PerSecond  float64      `json:"requests_per_s"`
	Errors     uint64       `json:"errors"`
	Latency    Latency      `json:"latency"`
	Pull       Latency      `json:"pull"`
	Push       Latency      `json:"push"`
	ErrorKinds []ErrorCount `json:"errors_by_kind"`
	CPU        *CPU         `json:"cpu,omitempty"`
	Memory     *Memory      `json:"memory,omitempty"`
	// ServerMemory follows a server in another process (Config.ServerPID).
	ServerMemory *ServerMemory `json:"server_memory,omitempty"`
	// Intervals is the timeline of a run with Config.Interval.
	Intervals   []Interval `json:"intervals,omitempty"`
	GOMAXPROCS  int        `json:"gomaxprocs"`
	InProcess   bool       `json:"in_process"`
	MemoryNotes string     `json:"memory_note,omitempty"`
}

// Latency summarises one kind of request, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// ErrorCount counts one kind of failed request, with one message.
type ErrorCount struct {
	Kind    string `json:"kind"`
	Count   uint64 `json:"count"`
	Example string `json:"example"`
}

// CPU is this process's CPU time during the measured run (the load
// generator's and, in process, the server's).
type CPU struct {
	UserS          float64 `json:"user_s"`
	SystemS        float64 `json:"system_s"`
	PerRequestUS   float64 `json:"per_request_us"`
	Utilisation    float64 `json:"utilisation"` // CPU seconds per second of run
	IncludesServer bool    `json:"includes_server"`
}

// Memory is the Go heap of this process around the measured run (server
// and load generator together), after a collection unless said otherwise.
type Memory struct {
	HeapInuseBeforeMiB float64 `json:"heap_inuse_before_mib"`
	HeapInuseAfterMiB  float64 `json:"heap_inuse_after_mib"`
	HeapInusePeakMiB   float64 `json:"heap_inuse_peak_mib"` // sampled every 100 ms, no collection
	GrowthMiB          float64 `json:"growth_mib"`          // after − before
	SysBeforeMiB       float64 `json:"sys_before_mib"`
	SysAfterMiB        float64 `json:"sys_after_mib"`
	RSSBeforeMiB       float64 `json:"rss_before_mib,omitempty"`
	RSSAfterMiB        float64 `json:"rss_after_mib,omitempty"`
	AllocPerRequestKiB float64 `json:"alloc_per_request_kib"`
	GCs                uint32  `json:"gcs"`
	GoroutinesBefore   int     `json:"goroutines_before"`
	GoroutinesAfter    int     `json:"goroutines_after"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarise(h *hist) Latency {
	return Latency{
		Count: h.n, Mean: ms(h.mean()), P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
		P99: ms(h.quantile(0.99)), Max: ms(h.max),
	}
}

// Run runs the load described by cfg and reports. ctx cancels it (the
// report then covers the time until the cancellation).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}

	var t *target
	if cfg.URL != "" {
		if err := CheckLoopback(ctx, cfg.URL); err != nil {
			return nil, err
		}
		if _, err := httpremote.ParseFingerprint(cfg.Fingerprint); err != nil {
			return nil, err
		}
		t = &target{url: cfg.URL, fingerprint: cfg.Fingerprint, desc: cfg.URL}
	} else {
		progress("starting the server in this process")
		var err error
		if t, err = startServer(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	report, err := run(ctx, &cfg, t, progress)
	if t.stop != nil {
		if serr := t.stop(); serr != nil && err == nil {
			err = serr
		}
	}
	return report, err
}

func run(ctx context.Context, cfg *Config, t *target, progress func(string, ...any)) (*Report, error) {
	// One device key for every client: the server does not verify
	// signatures (clients do), so sharing it changes nothing it does.
	key, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()

	progress("registering %d accounts on %s (scrypt on the server: not measured) and seeding %d entries each", cfg.Clients, t.url, cfg.Seed)
	setupStart := time.Now()
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		if clients[i], err = newClient(t, key); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, c := range clients {
			c.rc.Close()
		}
	}()
	if err := setup(ctx, cfg, clients); err != nil {
		return nil, err
	}
	setupTime := time.Since(setupStart)

	rep := &Report{
		Server: t.desc, Clients: cfg.Clients, PushPct: cfg.PushPct, Payload: cfg.Payload, Seed: cfg.Seed,
		SetupS: setupTime.Seconds(), GOMAXPROCS: runtime.GOMAXPROCS(0), InProcess: t.inProcess,
	}
	progress("running %d clients for %s", cfg.Clients, cfg.Duration)

	var before, after runtime.MemStats
	var allocatedBytes uint64
	var rssBefore, rssAfter float64
	var peak uint64
	if t.inProcess {
		runtime.GC()
		runtime.ReadMemStats(&before)
		rssBefore = rssMiB()
		peak = before.HeapInuse
	}
	// The sampler follows the heap peak in process and the resident set of
	// a server in another process, every 100 ms.
	mem := newMemorySampler(t.inProcess, cfg.ServerPID)
	var serverMem *ServerMemory
	if cfg.ServerPID > 0 {
		serverMem = &ServerMemory{PID: cfg.ServerPID, RSSBeforeMiB: procMiB(mem.pid, "VmRSS:")}
		mem.peakRSS = serverMem.RSSBeforeMiB
	}
	var memMu sync.Mutex // mem is sampled by two goroutines
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	if mem != nil {
		mem.peakHeap = peak
		go func() {
			defer close(sampleDone)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopSampling:
					return
				case <-tick.C:
					memMu.Lock()
					mem.sample(nil)
					memMu.Unlock()
				}
			}
		}()
	} else {
		close(sampleDone)
	}

	var win *window
	if cfg.Interval > 0 {
		win = newWindow()
		for _, c := range clients {
			c.win = win
		}
	}
	goroutinesBefore := runtime.NumGoroutine()
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, fmt.Errorf("start the CPU profile: %w", err)
		}
	}
	cpuBefore, cpuOK := cpuTime()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clients {
		wg.Go(func() { c.loop(ctx, stop, cfg.PushPct, cfg.Payload) })
	}
	// takeInterval closes the current interval at time end (since start).
	var lastEnd time.Duration
	takeInterval := func(end time.Duration) {
		iv := win.take(end, end-lastEnd)
		lastEnd = end
		memMu.Lock()
		mem.sample(&iv)
		memMu.Unlock()
		if serverMem != nil && len(rep.Intervals) == 0 {
			serverMem.RSSWarmMiB = iv.ServerRSSMiB
		}
		rep.Intervals = append(rep.Intervals, iv)
		progress("%6.0f s  %8.0f requests/s  p50 %6.2f ms  p99 %7.2f ms  %d errors", iv.EndS, iv.PerSecond, iv.P50, iv.P99, iv.Errors)
	}
	var ticks <-chan time.Time
	if win != nil {
		ticker := time.NewTicker(cfg.Interval)
		defer ticker.Stop()
		ticks = ticker.C
	}
	timer := time.NewTimer(cfg.Duration)
wait:
	for {
		select {
		case <-ticks:
			if d := time.Since(start); d < cfg.Duration {
				takeInterval(d)
			}
		case <-timer.C:
			break wait
		case <-ctx.Done():
			timer.Stop()
			break wait
		}
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	cpuAfter, _ := cpuTime()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	close(stopSampling)
	<-sampleDone
	if win != nil && elapsed-lastEnd >= 100*time.Millisecond {
		takeInterval(elapsed)
	}
	if serverMem != nil {
		serverMem.RSSAfterMiB = procMiB(mem.pid, "VmRSS:")
		if serverMem.RSSWarmMiB == 0 {
			serverMem.RSSWarmMiB = serverMem.RSSAfterMiB
		}
		serverMem.RSSPeakMiB = max(mem.peakRSS, serverMem.RSSAfterMiB)
		serverMem.HWMMiB = procMiB(mem.pid, "VmHWM:")
		serverMem.GrowthMiB = serverMem.RSSAfterMiB - serverMem.RSSBeforeMiB
		serverMem.SteadyMiB = serverMem.RSSAfterMiB - serverMem.RSSWarmMiB
		rep.ServerMemory = serverMem
	}
	if mem != nil {
		peak = max(peak, mem.peakHeap)
	}

	if t.inProcess {
		runtime.ReadMemStats(&after)
		peak = max(peak, after.HeapInuse)
		allocated := after.TotalAlloc - before.TotalAlloc
		gcs := after.NumGC - before.NumGC
		runtime.GC()
		runtime.ReadMemStats(&after)
		rssAfter = rssMiB()
		mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
		rep.Memory = &Memory{
			HeapInuseBeforeMiB: mib(before.HeapInuse),
			HeapInuseAfterMiB:  mib(after.HeapInuse),
			HeapInusePeakMiB:   mib(peak),
			GrowthMiB:          mib(after.HeapInuse) - mib(before.HeapInuse),
			SysBeforeMiB:       mib(before.Sys),
			SysAfterMiB:        mib(after.Sys),
			RSSBeforeMiB:       rssBefore,
			RSSAfterMiB:        rssAfter,
			GCs:                gcs,
			GoroutinesBefore:   goroutinesBefore,
			GoroutinesAfter:    runtime.NumGoroutine(),
		}
		rep.MemoryNotes = "one process: the server and the load generator's clients together"
		allocatedBytes = allocated
	}

	var all, pulls, pushes hist
	kinds := map[string]*ErrorCount{}
	for _, c := range clients {
		pulls.merge(&c.pull)
		pushes.merge(&c.push)
		for k, e := range c.errs {
			if kinds[k] == nil {
				kinds[k] = &ErrorCount{Kind: k, Example: e.Example}
			}
			kinds[k].Count += e.Count
			rep.Errors += e.Count
		}
	}
	all.merge(&pulls)
	all.merge(&pushes)
	rep.ElapsedS = elapsed.Seconds()
	rep.Requests = all.n
	rep.PerSecond = float64(all.n) / elapsed.Seconds()
	rep.Latency, rep.Pull, rep.Push = summarise(&all), summarise(&pulls), summarise(&pushes)
	if rep.Memory != nil && all.n > 0 {
		rep.Memory.AllocPerRequestKiB = float64(allocatedBytes) / 1024 / float64(all.n)
	}
	rep.ErrorKinds = []ErrorCount{}
	for _, e := range kinds {
		rep.ErrorKinds = append(rep.ErrorKinds, *e)
	}
	sort.Slice(rep.ErrorKinds, func(i, j int) bool { return rep.ErrorKinds[i].Count > rep.ErrorKinds[j].Count })
	if cpuOK {
		u, s := cpuAfter.user-cpuBefore.user, cpuAfter.system-cpuBefore.system
		rep.CPU = &CPU{UserS: u.Seconds(), SystemS: s.Seconds(), Utilisation: (u + s).Seconds() / elapsed.Seconds(), IncludesServer: t.inProcess}
		if all.n > 0 {
			rep.CPU.PerRequestUS = float64((u+s)/time.Microsecond) / float64(all.n)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("the run was interrupted after %.1f s: %w", elapsed.Seconds(), err)
	}
	return rep, nil
}

// setup registers and seeds every client, a few at a time.
func setup(ctx context.Context, cfg *Config, clients []*client) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, registerWorkers)
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := c.register(ctx, cfg.Seed, cfg.Payload); err != nil {
				errs[i] = fmt.Errorf("set up client %d: %w", i+1, err)
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// errorKind names the kind of a failed request, for counting.
func errorKind(err error) string {
	var (
		rl *httpremote.RateLimitError
		se *httpremote.ServerError
		fe *httpremote.FingerprintError
		wa errWrongAnswer
	)
	switch {
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.As(err, &se):
		if se.Code != "" {
			return fmt.Sprintf("http_%d_%s", se.Status, se.Code)
		}
		return fmt.Sprintf("http_%d", se.Status)
	case errors.As(err, &fe):
		return "fingerprint"
	case errors.As(err, &wa):
		return "wrong_answer"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, remote.ErrUnavailable):
		return "unavailable"
	}
	return "other"
}
