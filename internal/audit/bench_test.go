package audit_test

import (
	"context"
	"crypto/sha1"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/audit"
	"github.com/safehold/safehold/internal/audit/audittest"
)

// BenchmarkAudit10k is the engine's share of `safe audit` on 10,000 items
// with a local breach list of 10 million hashes (docs/benchmarks.md target:
// the whole command within 5 s):
//
//	go test -run '^$' -bench Audit10k -benchtime 3x ./internal/audit/
//
// The list (about 480 MB, in b.TempDir) is written once per run; its
// generation time is reported as gen-s and is not part of ns/op.
func BenchmarkAudit10k(b *testing.B) {
	v := audittest.Items(10_000, 1)
	path := filepath.Join(b.TempDir(), "pwned-passwords-sha1-ordered-by-hash.txt")
	start := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if err := audittest.WriteList(f, 10_000_000, 1, v.Breached); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	gen := time.Since(start)
	list, err := audit.OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer list.Close()
	opts := audit.Options{Now: audittest.Epoch, MinScore: audit.DefaultMinScore, OldAfter: audit.DefaultOldAfter, Breaches: list, Breach: "file"}
	var rep *audit.Report
	cpu0 := cpuTime()
	for b.Loop() {
		if rep, err = audit.Run(context.Background(), v.Items, opts, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	if rep.Summary.Breached < len(v.Breached) {
		b.Fatalf("%d breached, want at least %d", rep.Summary.Breached, len(v.Breached))
	}
	b.ReportMetric(gen.Seconds(), "gen-s")
	b.ReportMetric(float64(rep.Summary.Findings), "findings")
}

// cpuTime is the CPU time (user and system) the process has used: on a
// shared machine it says more than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLookup10M is one lookup in the 10-million-hash list (the
// breach half of BenchmarkAudit10k, per password).
func BenchmarkLookup10M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "pwned.txt")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if err := audittest.WriteList(f, 10_000_000, 2, nil); err != nil {
		b.Fatal(err)
	}
	f.Close()
	list, err := audit.OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer list.Close()
	sums := make([][20]byte, 1)
	counts := make([]int64, 1)
	i := 0
	for b.Loop() {
		sums[0] = sha1.Sum([]byte(strconv.Itoa(i)))
		i++
		if err := list.Counts(context.Background(), sums, counts); err != nil {
			b.Fatal(err)
		}
	}
}
