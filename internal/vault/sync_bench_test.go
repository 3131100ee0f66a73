package vault

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
	"github.com/safehold/safehold/internal/vlog"
)

// The sync targets of docs/benchmarks.md, against a real `safe serve`
// (SQLite, TLS on 127.0.0.1) through the real HTTPS client:
//
//	go test -run '^$' -bench SyncOneChangeInto100k -benchtime 20x ./internal/vault/
//	go test -run '^$' -bench InitialSync10k -benchtime 3x ./internal/vault/
//
// The first run prepares each account — a vault of n items pushed to a
// server, and for the 100k benchmark a second device that has pulled them
// — in $TMPDIR/safehold-syncbench-VERSION-n (10k: 15 s and 130 MB; 100k:
// about 10 minutes on two cores and 1.5 GB), and every run works on a
// copy of it, so that runs do not change it. Remove that directory to
// prepare it again. Bytes on the wire are counted at the server's TCP
// connections: TLS records, HTTP/2 frames, headers and JSON, without
// TCP/IP headers. Neither benchmark runs without -bench.

// syncBenchVersion names the prepared state; it changes with anything
// that makes an old one unusable.
var syncBenchVersion = fmt.Sprintf("1-r%d-s%d-l%d", RecordVersion, SecurityVersion, vlog.Version)

const syncBenchEmail = "bench@example.com"

// syncBenchMeta is what a prepared account needs besides its files.
type syncBenchMeta struct {
	SecretKey string   `json:"secret_key"`
	Items     []string `json:"items"` // ids of a few items, to edit
}

// BenchmarkSyncOneChangeInto100k: device A edits one item of a
// 100,000-item vault and syncs; device B, already in sync, syncs and gets
// it. One op is both syncs (the edit itself is not timed). Targets: each
// sync under 8 KiB on the wire and under 100 ms.
func BenchmarkSyncOneChangeInto100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	dir, meta := syncBenchPrepared(b, n, true)
	srv := startSyncBenchServer(b, filepath.Join(dir, "server"))
	a, ra := syncBenchDevice(b, srv, filepath.Join(dir, "a.db"))
	bv, rb := syncBenchDevice(b, srv, filepath.Join(dir, "b.db"))
	// Whatever a previous run left unsynced.
	for _, s := range []struct {
		v *Vault
		r *httpremote.Client
	}{{a, ra}, {bv, rb}, {a, ra}} {
		if _, err := s.v.Sync(ctx, s.r); err != nil {
			b.Fatal(err)
		}
	}

	ta, tb := &wireTap{Remote: ra, wire: srv.wire}, &wireTap{Remote: rb, wire: srv.wire}
	var pushWire, pullWire int64
	var pushTime, pullTime time.Duration
	i := 0
	last := ""
	for b.Loop() {
		b.StopTimer()
		id := meta.Items[i%len(meta.Items)]
		it, err := a.Get(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		next := it.Clone()
		next.Password = fmt.Sprintf("changed-%d-%d", time.Now().UnixNano(), i)
		last = next.Password
		if _, err := a.Update(ctx, id, it.Revision, next); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()

		ta.calls, tb.calls = nil, nil
		w0, t0 := srv.wire.Load(), time.Now()
		res, err := a.Sync(ctx, ta)
		if err != nil || res.Pushed != 1 {
			b.Fatalf("A's sync: %+v, %v", res, err)
		}
		w1, t1 := srv.wire.Load(), time.Now()
		res, err = bv.Sync(ctx, tb)
		if err != nil || res.Pulled != 1 {
			b.Fatalf("B's sync: %+v, %v", res, err)
		}
		w2, t2 := srv.wire.Load(), time.Now()
		pushWire += w1 - w0
		pullWire += w2 - w1
		pushTime += t1.Sub(t0)
		pullTime += t2.Sub(t1)
	}
	b.StopTimer()
	if got, err := bv.Get(ctx, meta.Items[(i-1)%len(meta.Items)]); err != nil || got.Password != last {
		b.Fatalf("B does not have the last edit: %v", err)
	}
	b.Logf("A's last sync on the wire: %s", ta.calls)
	b.Logf("B's last sync on the wire: %s", tb.calls)
	ops := float64(b.N)
	b.ReportMetric(float64(pushWire+pullWire)/ops, "wire-B/op")
	b.ReportMetric(float64(pushWire)/ops, "push-sync-wire-B")
	b.ReportMetric(float64(pullWire)/ops, "pull-sync-wire-B")
	b.ReportMetric(float64(pushTime.Microseconds())/1000/ops, "push-sync-ms")
	b.ReportMetric(float64(pullTime.Microseconds())/1000/ops, "pull-sync-ms")
}

// BenchmarkInitialSync10k: a new device joins an account whose vault has
// 10,000 items and syncs them all. One op is Join (prelogin, login with the
// server's scrypt check, account document, new device key) and the first
// Sync, over a new connection. The client's KDF is the test profile, so
// it is not measured. Target: under 3 s.
func BenchmarkInitialSync10k(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	dir, meta := syncBenchPrepared(b, n, false)
	srv := startSyncBenchServer(b, filepath.Join(dir, "server"))
	target := syncBenchTarget(srv)
	var wire int64
	i := 0
	for b.Loop() {
		path := filepath.Join(dir, fmt.Sprintf("join-%d.db", i))
		i++
		w0 := srv.wire.Load()
		r, err := httpremote.New(srv.url, srv.fp, httpremote.Options{})
		if err != nil {
			b.Fatal(err)
		}
		v, err := Join(ctx, path, r, JoinRequest{Target: target, Password: []byte(benchPassword), SecretKey: meta.SecretKey}, syncBenchOptions())
		if err != nil {
			b.Fatal(err)
		}
		res, err := v.Sync(ctx, r)
		if err != nil || res.Pulled < n {
			b.Fatalf("the new device's sync: pulled %d, %v", res.Pulled, err)
		}
		wire += srv.wire.Load() - w0
		b.StopTimer()
		v.Close()
		r.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
}

func syncBenchOptions() Options { return Options{Rand: rand.Reader, AllowInsecureKDF: true} }

// syncBenchServer is a `safe serve` on a loopback port whose connections
// count their bytes.
type syncBenchServer struct {
	url, fp string
	wire    *atomic.Int64
	stop    func() error
}

func startSyncBenchServer(b *testing.B, dir string) *syncBenchServer {
	b.Helper()
	s, err := newSyncBenchServer(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.stop(); err != nil {
			b.Errorf("server: %v", err)
		}
	})
	return s
}

func newSyncBenchServer(dir string) (*syncBenchServer, error) {
	st, err := sqlite.Open(filepath.Join(dir, "server.db"))
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{DataDir: dir, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &syncBenchServer{url: "https://" + ln.Addr().String(), fp: srv.Fingerprint(), wire: new(atomic.Int64)}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, countingListener{ln, s.wire}) }()
	s.stop = func() error {
		cancel()
		return errors.Join(<-done, st.Close())
	}
	return s, nil
}

// wireTap records the bytes on the wire of each remote call (calls are
// sequential within one Sync, so the server's counter attributes them).
type wireTap struct {
	remote.Remote
	wire  *atomic.Int64
	calls wireCalls
}

type wireCalls []string

func (c wireCalls) String() string { return strings.Join(c, ", ") }

func (t *wireTap) note(what string, w0 int64) {
	t.calls = append(t.calls, fmt.Sprintf("%s %d B", what, t.wire.Load()-w0))
}

func (t *wireTap) Account(ctx context.Context) (api.Account, error) {
	w0 := t.wire.Load()
	a, err := t.Remote.Account(ctx)
	t.note(fmt.Sprintf("account (document %d B)", len(a.Document)), w0)
	return a, err
}

// AccountIfChanged passes the remote's capability through, as a sync uses
// it.
func (t *wireTap) AccountIfChanged(ctx context.Context, known uint64) (api.Account, error) {
	w0 := t.wire.Load()
	a, err := t.Remote.(remote.ConditionalAccount).AccountIfChanged(ctx, known)
	t.note(fmt.Sprintf("account if changed (document %d B)", len(a.Document)), w0)
	return a, err
}

func (t *wireTap) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	defer t.note("update-account", t.wire.Load())
	return t.Remote.UpdateAccount(ctx, u)
}

func (t *wireTap) Vaults(ctx context.Context) ([]api.Vault, error) {
	defer t.note("vaults", t.wire.Load())
	return t.Remote.Vaults(ctx)
}

func (t *wireTap) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	w0 := t.wire.Load()
	p, err := t.Remote.Pull(ctx, vault, since)
	t.note(fmt.Sprintf("pull (%d entries)", len(p.Entries)), w0)
	return p, err
}

func (t *wireTap) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	defer t.note(fmt.Sprintf("push (%d entries)", len(entries)), t.wire.Load())
	return t.Remote.Push(ctx, vault, base, entries)
}

// countingListener counts every byte read from and written to its
// connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.n.Add(int64(k))
	return k, err
}

func syncBenchTarget(s *syncBenchServer) RemoteTarget {
	return RemoteTarget{Name: "bench", Kind: RemoteServer, URL: s.url, Fingerprint: s.fp, Email: syncBenchEmail, Platform: "bench"}
}

// syncBenchDevice opens and unlocks a prepared device's vault and logs it
// in to the server (not measured).
func syncBenchDevice(b *testing.B, s *syncBenchServer, path string) (*Vault, *httpremote.Client) {
	b.Helper()
	ctx := context.Background()
	v, err := Open(path, syncBenchOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	if err := v.Unlock(ctx, []byte(benchPassword)); err != nil {
		b.Fatal(err)
	}
	r, err := httpremote.New(s.url, s.fp, httpremote.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if err := v.Login(ctx, r, []byte(benchPassword), "", "", "bench"); err != nil {
		b.Fatal(err)
	}
	return v, r
}

// syncBenchPrepared returns a private copy (in b.TempDir) of the prepared
// account with n items, making it first if $TMPDIR has none: server/ (the
// server's data directory), a.db (the first device's vault) and, with
// second, b.db (a device that joined and pulled everything).
func syncBenchPrepared(b *testing.B, n int, second bool) (string, syncBenchMeta) {
	b.Helper()
	name := fmt.Sprintf("safehold-syncbench-%s-%d", syncBenchVersion, n)
	if second {
		name += "-2dev"
	}
	cache := filepath.Join(os.TempDir(), name)
	if _, err := os.Stat(filepath.Join(cache, "meta.json")); errors.Is(err, fs.ErrNotExist) {
		start := time.Now()
		b.Logf("preparing an account with %d items in %s (once; remove it to prepare again)", n, cache)
		if err := prepareSyncBench(cache, n, second); err != nil {
			b.Fatalf("prepare %s: %v", cache, err)
		}
		b.Logf("prepared in %s", time.Since(start).Round(time.Second))
	} else if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(cache, "meta.json"))
	if err != nil {
		b.Fatal(err)
	}
	var meta syncBenchMeta
	if err := json.Unmarshal(raw, &meta); err != nil || meta.SecretKey == "" || len(meta.Items) == 0 {
		b.Fatalf("%s/meta.json is damaged (%v): remove %s", cache, err, cache)
	}
	dir := filepath.Join(b.TempDir(), "state")
	if err := copyTree(cache, dir); err != nil {
		b.Fatalf("copy the prepared state: %v", err)
	}
	return dir, meta
}

// prepareSyncBench builds the prepared state in a scratch directory next
// to dir and renames it into place when complete.
func prepareSyncBench(dir string, n int, second bool) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	serverDir := filepath.Join(tmp, "server")
	if err := os.Mkdir(serverDir, 0o700); err != nil {
		return err
	}
	srv, err := newSyncBenchServer(serverDir)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()

	pathA := filepath.Join(tmp, "a.db")
	if _, err := Create(ctx, pathA, []byte(benchPassword), kdf.TestParams(), syncBenchOptions()); err != nil {
		return err
	}
	a, err := Open(pathA, syncBenchOptions())
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Unlock(ctx, []byte(benchPassword)); err != nil {
		return err
	}
	const batch = 2_000
	var ids []string
	for first := 0; first < n; first += batch {
		items := make([]item.Item, 0, batch)
		for i := first; i < min(n, first+batch); i++ {
			items = append(items, benchItem(i))
		}
		added, err := a.Add(ctx, items)
		if err != nil {
			return err
		}
		ids = append(ids, added[0].ID)
	}
	ra, err := httpremote.New(srv.url, srv.fp, httpremote.Options{})
	if err != nil {
		return err
	}
	defer ra.Close()
	target := syncBenchTarget(srv)
	sk, err := a.Register(ctx, ra, target, []byte(benchPassword))
	if err != nil {
		return err
	}
	if _, err := a.Sync(ctx, ra); err != nil {
		return err
	}
	if second {
		rb, err := httpremote.New(srv.url, srv.fp, httpremote.Options{})
		if err != nil {
			return err
		}
		defer rb.Close()
		bv, err := Join(ctx, filepath.Join(tmp, "b.db"), rb, JoinRequest{Target: target, Password: []byte(benchPassword), SecretKey: sk}, syncBenchOptions())
		if err != nil {
			return err
		}
		defer bv.Close()
		if res, err := bv.Sync(ctx, rb); err != nil {
			return err
		} else if res.Pulled != n {
			return fmt.Errorf("the second device pulled %d entries, want %d", res.Pulled, n)
		}
		// A learns of B's device (B pushed the account document).
		if _, err := a.Sync(ctx, ra); err != nil {
			return err
		}
		if err := bv.Close(); err != nil {
			return err
		}
	}
	if err := a.Close(); err != nil {
		return err
	}
	meta, err := json.Marshal(syncBenchMeta{SecretKey: sk, Items: ids})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), meta, 0o600); err != nil {
		return err
	}
	ra.Close()
	stopped = true
	if err := srv.stop(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		// Another run may have prepared it at the same time (the rename
		// then fails because dir is not empty): use that one.
		if _, serr := os.Stat(filepath.Join(dir, "meta.json")); serr != nil {
			return err
		}
	}
	return nil
}

// copyTree copies a directory of regular files (0600) and directories
// (0700).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
