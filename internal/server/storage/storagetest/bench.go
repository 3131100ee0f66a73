package storagetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

// Benchmark measures the shape of the server's sync load on stores made by
// open: 50 clients, each on its own vault, each request checking a session
// and then reading the log's last entries or appending one (4 KiB, about
// the size of an entry with its hybrid signature). It reports requests per
// second for reads only, one append in five requests, and appends only.
func Benchmark(b *testing.B, open func(b *testing.B) storage.Store) {
	for _, every := range []int{0, 5, 1} {
		name := "reads"
		if every > 0 {
			name = fmt.Sprintf("append=1in%d", every)
		}
		b.Run(name, func(b *testing.B) { benchSync(b, open(b), 50, every) })
	}
}

func benchSync(b *testing.B, s storage.Store, clients, appendEvery int) {
	ctx := b.Context()
	now := time.Now()
	vaults := make([]string, clients)
	tokens := make([][]byte, clients)
	for c := range clients {
		a, d := newAccount(fmt.Sprintf("client%d", c))
		if err := s.CreateAccount(ctx, a, d); err != nil {
			b.Fatal(err)
		}
		vaults[c] = id(fmt.Sprintf("vault %d", c))
		if err := s.PutVault(ctx, a.ID, vaults[c], fill("record", 100), genesis(vaults[c])); err != nil {
			b.Fatal(err)
		}
		tokens[c] = fill(fmt.Sprintf("token %d", c), 32)
		if err := s.CreateSession(ctx, storage.Session{Hash: tokens[c], Kind: "access", Account: a.ID, Device: d.ID,
			Created: now, Expires: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	body, sig, payload := fill("body", 200), fill("sig", 3400), fill("payload", 600)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for c := range clients {
		wg.Go(func() {
			var head uint64
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if _, err := s.Session(ctx, tokens[c], time.Now()); err != nil {
					b.Error(err)
					return
				}
				if appendEvery > 0 && i%appendEvery == appendEvery-1 {
					e := storage.Entry{Seq: head + 1, Op: opPut, Item: id(fmt.Sprint(i % 100)), Revision: uint64(i + 1),
						Body: body, Sig: sig, Payload: payload}
					if err := s.Append(ctx, vaults[c], head, []storage.Entry{e}, headHash(vaults[c], e.Seq)); err != nil {
						b.Error(err)
						return
					}
					head++
					continue
				}
				if err := s.Entries(ctx, vaults[c], max(head, 10)-10, 100, func(storage.Entry) error { return nil }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

// cpuTime is the CPU time this process has used. Unlike req/s, CPU per
// request hardly depends on what else the machine is doing (for an
// embedded store; a database server's own CPU is not counted).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
