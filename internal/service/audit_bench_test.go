package service

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/audit"
	"github.com/safehold/safehold/internal/audit/audittest"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/vault"
)

// BenchmarkAuditOp10k is the agent's whole share of `safe audit
// --breach-file` on a 10,000-item vault with a 10-million-hash list: read
// and open every item, score, hash and look up each password, build the
// report (target for the command: 5 s):
//
//	go test -run '^$' -bench AuditOp10k -benchtime 3x ./internal/service/
//
// Building the vault and writing the list (gen-s) are not timed.
func BenchmarkAuditOp10k(b *testing.B) {
	start := time.Now()
	path := filepath.Join(b.TempDir(), "vault.db")
	opts := vault.Options{Rand: rand.Reader, AllowInsecureKDF: true}
	if _, err := vault.Create(ctx, path, []byte("correct horse battery"), kdf.TestParams(), opts); err != nil {
		b.Fatal(err)
	}
	v, err := vault.Open(path, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		b.Fatal(err)
	}
	data := audittest.Items(10_000, 1)
	for i := 0; i < len(data.Items); i += 2_000 {
		batch := data.Items[i:min(i+2_000, len(data.Items))]
		for j := range batch {
			batch[j].ID = ""
		}
		if _, err := v.Add(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	list := filepath.Join(b.TempDir(), "pwned.txt")
	f, err := os.OpenFile(list, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if err := audittest.WriteList(f, 10_000_000, 1, data.Breached); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	gen := time.Since(start)
	h := &Handler{V: v}
	raw, _ := json.Marshal(AuditArgs{MinScore: 3, OldAfterSeconds: 365 * 24 * 3600, Breach: BreachFile, BreachFile: list})
	var rep *audit.Report
	cpu0 := cpuTime()
	for b.Loop() {
		res, _, err := h.handleAudit(ctx, agent.Request{Op: OpAudit, Args: raw}, nil)
		if err != nil {
			b.Fatal(err)
		}
		rep = res.(*audit.Report)
	}
	b.StopTimer()
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	if rep.Items != 10_000 || rep.Summary.Breached < len(data.Breached) {
		b.Fatalf("%d items, %d breached", rep.Items, rep.Summary.Breached)
	}
	b.ReportMetric(gen.Seconds(), "gen-s")
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
