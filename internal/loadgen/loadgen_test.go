package loadgen

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestHistQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h hist
	var exact []time.Duration
	for range 100_000 {
		// Log-uniform from 1 µs to 10 s.
		d := time.Duration(float64(time.Microsecond) * math.Pow(10, rng.Float64()*7))
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := exact[int(q*float64(len(exact))+0.999999)-1]
		got := h.quantile(q)
		// Lower bound of the bucket: at most 0.2 % (or 1 µs) below.
		if got > want || float64(want-got) > 0.002*float64(want)+float64(time.Microsecond) {
			t.Errorf("quantile(%v) = %v, want %v (within 0.2 %% below)", q, got, want)
		}
	}
	if h.max != exact[len(exact)-1] || h.n != uint64(len(exact)) {
		t.Errorf("max %v n %d, want %v %d", h.max, h.n, exact[len(exact)-1], len(exact))
	}
	for i := range histBuckets - 1 {
		if lower(i) >= lower(i+1) || bucket(lower(i)) != i {
			t.Fatalf("bucket %d: lower %d, next %d, bucket(lower) %d", i, lower(i), lower(i+1), bucket(lower(i)))
		}
	}
	if bucket(1<<50) != histBuckets-1 {
		t.Errorf("a huge value is not clamped into the last bucket")
	}
}

func TestCheckLoopback(t *testing.T) {
	ctx := t.Context()
	for _, ok := range []string{"https://127.0.0.1:8443", "https://[::1]:8443", "https://127.3.4.5:1", "https://localhost:8443"} {
		if err := CheckLoopback(ctx, ok); err != nil {
			t.Errorf("CheckLoopback(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"https://10.0.0.1:8443", "https://example.com", "https://8.8.8.8", "https://[2001:db8::1]:443", "https://0.0.0.0:8443"} {
		if err := CheckLoopback(ctx, bad); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckLoopback(%q) = %v, want ErrNotLoopback", bad, err)
		}
	}
	for _, bad := range []string{"http://127.0.0.1:8443", "127.0.0.1:8443", "https://", ":::"} {
		if err := CheckLoopback(ctx, bad); err == nil {
			t.Errorf("CheckLoopback(%q) = nil, want an error", bad)
		}
	}
}

func TestRunRefusesOtherHosts(t *testing.T) {
	_, err := Run(t.Context(), Config{URL: "https://192.0.2.1:8443", Fingerprint: strings.Repeat("ab", 32), Duration: time.Second})
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Run against 192.0.2.1: %v, want ErrNotLoopback", err)
	}
}

func TestConfigBounds(t *testing.T) {
	for _, c := range []Config{
		{Duration: MaxDuration + time.Second},
		{Duration: time.Millisecond},
		{Clients: MaxClients + 1},
		{Clients: -3},
		{PushPct: 101},
		{Payload: MaxPayload + 1},
		{Seed: MaxSeed + 1},
		{URL: "https://127.0.0.1:1"},
		{URL: "https://127.0.0.1:1", Fingerprint: "x", DB: "postgres://h/db"},
		{Duration: 2 * time.Second, Interval: 3 * time.Second},
		{Duration: 2 * time.Second, Interval: time.Millisecond},
		{Interval: -time.Second},
		{ServerPID: os.Getpid()}, // a PID needs a server given by URL
		{URL: "https://127.0.0.1:1", Fingerprint: strings.Repeat("ab", 32), ServerPID: -1},
		{URL: "https://127.0.0.1:1", Fingerprint: strings.Repeat("ab", 32), ServerPID: 1 << 30}, // no such process
	} {
		if _, err := Run(t.Context(), c); err == nil {
			t.Errorf("Run(%+v) succeeded, want a refusal", c)
		}
	}
}

// check verifies what every run must report.
func check(t *testing.T, rep *Report, inProcess bool) {
	t.Helper()
	if rep.Requests == 0 || rep.PerSecond <= 0 || rep.Errors != 0 || len(rep.ErrorKinds) != 0 {
		t.Fatalf("report: %d requests, %.0f/s, %d errors %+v", rep.Requests, rep.PerSecond, rep.Errors, rep.ErrorKinds)
	}
	if rep.Pull.Count+rep.Push.Count != rep.Requests || rep.Pull.Count == 0 || rep.Push.Count == 0 {
		t.Errorf("pull %d + push %d != %d requests (or one kind is missing)", rep.Pull.Count, rep.Push.Count, rep.Requests)
	}
	l := rep.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency quantiles out of order: %+v", l)
	}
	if (rep.Memory != nil) != inProcess {
		t.Errorf("memory report present = %v, want %v", rep.Memory != nil, inProcess)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "requests/s") {
		t.Errorf("WriteText: %v\n%s", err, b.String())
	}
}

func TestRunInProcessSQLite(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(t.Context(), Config{DataDir: dir, Clients: 3, Duration: time.Second, Seed: 5, PushPct: 30})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, true)
	if rep.Server != "in-process, sqlite" || rep.Seed != 5 || rep.PushPct != 30 {
		t.Errorf("report header: %+v", rep)
	}
	if _, err := os.Stat(dir + "/server.db"); err != nil {
		t.Errorf("the SQLite database is not in --data: %v", err)
	}
}

// checkTimeline verifies a run's intervals: one row per interval, in order,
// accounting for every request and error of the run.
func checkTimeline(t *testing.T, rep *Report, inProcess bool) {
	t.Helper()
	if n := len(rep.Intervals); n < 2 || n > int(rep.ElapsedS)+1 {
		t.Fatalf("%d intervals in a %.1f s run with 1 s intervals", n, rep.ElapsedS)
	}
	var requests, errs uint64
	last := 0.0
	for i, iv := range rep.Intervals {
		if iv.EndS <= last || iv.EndS > rep.ElapsedS+0.001 {
			t.Errorf("interval %d ends at %.3f s, after %.3f s, in a %.3f s run", i, iv.EndS, last, rep.ElapsedS)
		}
		last = iv.EndS
		// An interval can be empty on a stalled machine; one with requests
		// must have a rate and ordered quantiles.
		if iv.Requests > 0 && (iv.PerSecond <= 0 || !(iv.P50 > 0 && iv.P50 <= iv.P99 && iv.P99 <= iv.Max)) {
			t.Errorf("interval %d: %+v", i, iv)
		}
		if iv.ServerRSSMiB <= 0 || (iv.HeapInuseMiB > 0) != inProcess {
			t.Errorf("interval %d memory: %+v (in process %v)", i, iv, inProcess)
		}
		requests += iv.Requests
		errs += iv.Errors
	}
	if requests != rep.Requests || errs != rep.Errors {
		t.Errorf("the intervals hold %d requests and %d errors, the run %d and %d", requests, errs, rep.Requests, rep.Errors)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "timeline:") {
		t.Errorf("WriteText: %v\n%s", err, b.String())
	}
}

func TestRunTimelineInProcess(t *testing.T) {
	rep, err := Run(t.Context(), Config{DataDir: t.TempDir(), Clients: 3, Duration: 3 * time.Second, Interval: time.Second, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, true)
	checkTimeline(t, rep, true)
	if rep.ServerMemory != nil {
		t.Errorf("server memory for an in-process server: %+v", rep.ServerMemory)
	}
}

func TestRunExternal(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	srv, err := startServer(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
	})
	rep, err := Run(t.Context(), Config{URL: srv.url, Fingerprint: srv.fingerprint, Clients: 2, Duration: time.Second, Seed: -1})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, false)
	if rep.Server != srv.url || rep.Seed != 0 {
		t.Errorf("report header: %+v", rep)
	}
	if rep.ServerMemory != nil || rep.Intervals != nil {
		t.Errorf("server memory or a timeline without asking: %+v %+v", rep.ServerMemory, rep.Intervals)
	}

	// With its PID, the server's resident memory is followed: here the
	// server shares the test's process, so its RSS is the test's. (VmHWM
	// is not compared with the samples: Linux updates it lazily, so a
	// VmRSS reading can be above it.)
	rep, err = Run(t.Context(), Config{URL: srv.url, Fingerprint: srv.fingerprint, Clients: 2, Duration: 2 * time.Second, Interval: time.Second, Seed: -1, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, false)
	checkTimeline(t, rep, false)
	m := rep.ServerMemory
	if m == nil || m.PID != os.Getpid() || m.RSSBeforeMiB <= 0 || m.RSSWarmMiB <= 0 || m.RSSAfterMiB <= 0 ||
		m.RSSPeakMiB < m.RSSAfterMiB || m.HWMMiB <= 0 || m.GrowthMiB != m.RSSAfterMiB-m.RSSBeforeMiB {
		t.Errorf("server memory: %+v", m)
	}

	// A wrong fingerprint fails at setup, before any load.
	_, err = Run(t.Context(), Config{URL: srv.url, Fingerprint: strings.Repeat("00", 32), Clients: 1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Run with a wrong fingerprint: %v", err)
	}
}

// testPostgres is the database of the storage tests (trust auth on
// 127.0.0.1); SAFE_TEST_POSTGRES names another.
func testPostgres(t *testing.T) string {
	dsn := os.Getenv("SAFE_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&connect_timeout=5"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("no PostgreSQL at the test address: %v", err)
	}
	conn.Close(ctx)
	return dsn
}

func TestRunInProcessPostgres(t *testing.T) {
	dsn := testPostgres(t)
	rep, err := Run(t.Context(), Config{DB: dsn, Clients: 3, Duration: time.Second, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, true)
	if rep.Server != "in-process, postgresql" {
		t.Errorf("server %q", rep.Server)
	}
	// The run's schema is gone.
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'safe_bench_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d safe_bench_ schemas left behind", n)
	}
}
