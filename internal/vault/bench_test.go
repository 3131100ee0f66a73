package vault

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
)

// The engine's share of the command-line targets in docs/benchmarks.md.
// Vaults use the test KDF profile, so Unlock measures loading and checking
// the vault, not the KDF:
//
//	go test -run '^$' -bench . -benchmem -benchtime 20x ./internal/vault/
//
// Building a 10,000-item vault takes a few seconds per benchmark (one signed
// log entry per item).

var benchSizes = []int{1_000, 10_000}

const benchPassword = "correct horse battery staple"

// benchServices are the titles' first words, as in scripts/bench/gen-items.sh
// (capitalised there and here, as people type titles): "github 4242" names
// one item, "github" is in 1/40 of the titles.
var benchServices = []string{
	"amazon", "apple", "github", "gitlab", "google", "microsoft", "netflix", "paypal",
	"reddit", "slack", "spotify", "twitter", "dropbox", "linkedin", "facebook", "instagram",
	"ebay", "yahoo", "zoom", "adobe", "atlassian", "bitbucket", "docker", "heroku",
	"digitalocean", "cloudflare", "fastly", "stripe", "twilio", "sendgrid", "mailchimp", "shopify",
	"wordpress", "medium", "quora", "stackoverflow", "steam", "discord", "twitch", "protonmail",
}

func benchItem(i int) item.Item {
	s := benchServices[i%len(benchServices)]
	return item.Item{
		Type:     item.Login,
		Title:    fmt.Sprintf("%s%s %d", strings.ToUpper(s[:1]), s[1:], i),
		Username: fmt.Sprintf("user%d@example.com", i),
		Password: fmt.Sprintf("pw-%d-Zq8vN2kLm4Xr", i),
		URLs:     []string{fmt.Sprintf("https://%s.example.com/login/%d", s, i)},
		Tags:     []string{"bench", fmt.Sprintf("t%d", i%10)},
		Folder:   fmt.Sprintf("Bench/F%d", i%20),
		Notes:    fmt.Sprintf("benchmark entry %d", i),
	}
}

// benchVault creates a vault with n items, closes it, and returns its path.
func benchVault(b *testing.B, n int) string {
	b.Helper()
	ctx := context.Background()
	opts := Options{Rand: rand.Reader, AllowInsecureKDF: true}
	path := filepath.Join(b.TempDir(), "vault.db")
	if _, err := Create(ctx, path, []byte(benchPassword), kdf.TestParams(), opts); err != nil {
		b.Fatal(err)
	}
	v := benchOpen(b, path)
	defer v.Close()
	const batch = 2_000
	for first := 0; first < n; first += batch {
		items := make([]item.Item, 0, batch)
		for i := first; i < min(n, first+batch); i++ {
			items = append(items, benchItem(i))
		}
		if _, err := v.Add(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

func benchOpen(b *testing.B, path string) *Vault {
	b.Helper()
	v, err := Open(path, Options{Rand: rand.Reader, AllowInsecureKDF: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := v.Unlock(context.Background(), []byte(benchPassword)); err != nil {
		v.Close()
		b.Fatal(err)
	}
	return v
}

// BenchmarkUnlock is the agent's work for `safe unlock` after the KDF:
// unwrap the keys, load the sealed index snapshot (or walk the hash chain
// and open every row when there is none), check what follows it. It also
// reports the Go heap still live with the vault unlocked (live-MiB): the
// agent's resident memory is that plus the runtime's slack and SQLite.
func BenchmarkUnlock(b *testing.B) {
	for _, n := range benchSizes {
		path := benchVault(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			v, err := Open(path, Options{Rand: rand.Reader, AllowInsecureKDF: true})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			for b.Loop() {
				if err := v.Unlock(context.Background(), []byte(benchPassword)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MiB")
			runtime.KeepAlive(v)
		})
	}
}

// BenchmarkGet resolves a title and reads, authenticates and opens its row.
func BenchmarkGet(b *testing.B) {
	for _, n := range benchSizes {
		path := benchVault(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			v := benchOpen(b, path)
			defer v.Close()
			ref := strings.ToLower(benchItem(n / 2).Title)
			for b.Loop() {
				it, err := v.Get(context.Background(), ref)
				if err != nil || !strings.EqualFold(it.Title, ref) {
					b.Fatalf("get %q: %v %q", ref, err, it.Title)
				}
			}
		})
	}
}

// BenchmarkAdd adds one item per call, as `safe add` does: the cost must not
// grow with the vault.
func BenchmarkAdd(b *testing.B) {
	for _, n := range benchSizes {
		path := benchVault(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			v := benchOpen(b, path)
			defer v.Close()
			i := n
			for b.Loop() {
				if _, err := v.Add(context.Background(), []item.Item{benchItem(i)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkList lists every item, sorted by title (`safe ls`).
func BenchmarkList(b *testing.B) {
	for _, n := range benchSizes {
		path := benchVault(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			v := benchOpen(b, path)
			defer v.Close()
			for b.Loop() {
				out, err := v.List(context.Background(), Filter{})
				if err != nil || len(out) != n {
					b.Fatalf("list: %v, %d items", err, len(out))
				}
			}
		})
	}
}

// BenchmarkFind searches one word that is in 1/40 of the titles
// (`safe find github`).
func BenchmarkFind(b *testing.B) {
	for _, n := range benchSizes {
		path := benchVault(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			v := benchOpen(b, path)
			defer v.Close()
			for b.Loop() {
				out, err := v.Find(context.Background(), "github", Filter{})
				if err != nil || len(out) < n/len(benchServices) {
					b.Fatalf("find: %v, %d hits", err, len(out))
				}
			}
		})
	}
}
