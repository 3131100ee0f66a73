package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
)

const testPassword = "correct horse battery"

// stallingServer is a real sync server behind a switch: while stall is
// set, every request is accepted and never answered.
type stallingServer struct {
	url, fingerprint string
	stall            atomic.Bool
	stalled          chan struct{} // one value per stalled request
}

func newStallingServer(t *testing.T) *stallingServer {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{Store: st, DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := &stallingServer{stalled: make(chan struct{}, 64)}
	quit := make(chan struct{})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.stall.Load() {
			select {
			case s.stalled <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-quit:
			}
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(quit) }) // runs first
	s.url, s.fingerprint = ts.URL, httpremote.Fingerprint(ts.Certificate().Raw)
	return s
}

// serveHandler serves h the way `safe agent` does and returns the socket.
func serveHandler(t *testing.T, h *Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sv") // t.TempDir may be too long for a socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "agent.sock")
	l, err := agent.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := agent.NewServer(h, agent.Options{
		IdleTimeout: -1, OnIdle: h.OnIdle, PassiveOps: PassiveOps,
		InterruptOps: InterruptOps, InterruptibleOps: InterruptibleOps,
	})
	h.RunLocked = srv.Exclusive
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	return path
}

func dialAgent(t *testing.T, path string) *Client {
	t.Helper()
	c, err := agent.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{C: c}
}

// A remote that never answers must not hold off `safe lock`: the lock
// interrupts the sync, which gives up at once and leaves the vault
// consistent.
func TestLockInterruptsStalledSync(t *testing.T) {
	remote := newStallingServer(t)
	h := newHandler(t)
	path := serveHandler(t, h)
	a, b := dialAgent(t, path), dialAgent(t, path)
	if _, err := a.Unlock(ctx, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, []item.Item{{Type: item.Note, Title: "Before"}}); err != nil {
		t.Fatal(err)
	}
	var reg Registered
	args := RegisterArgs{URL: remote.url, Fingerprint: remote.fingerprint, Email: "alice@example.com", Password: []byte(testPassword), Manual: true}
	if err := a.C.Call(ctx, OpAccountRegister, args, &reg); err != nil || reg.SyncError != "" {
		t.Fatalf("register: %v %q", err, reg.SyncError)
	}
	if _, err := a.Add(ctx, []item.Item{{Type: item.Note, Title: "Queued"}}); err != nil {
		t.Fatal(err)
	}

	remote.stall.Store(true)
	syncErr := make(chan error, 1)
	go func() { syncErr <- a.C.Call(ctx, OpSync, nil, nil) }()
	select {
	case <-remote.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the sync never reached the remote")
	}
	start := time.Now()
	info, err := b.Lock(ctx)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("lock took %v behind a stalled sync", d)
	}
	if info.Unlocked {
		t.Fatal("lock answered, but the vault is unlocked")
	}
	select {
	case err := <-syncErr:
		if !errors.Is(err, &agent.Error{Code: agent.CodeInterrupted}) {
			t.Fatalf("interrupted sync = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the sync did not return after the lock")
	}
	if info, err := b.Info(ctx, false); err != nil || info.Unlocked {
		t.Fatalf("after lock: %+v %v", info, err)
	}

	// Nothing was lost or damaged: the vault unlocks, checks clean, and
	// the queued change goes out once the remote answers again.
	remote.stall.Store(false)
	if _, err := b.Unlock(ctx, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	if err := b.C.Call(ctx, OpSync, nil, nil); err != nil {
		t.Fatalf("sync after the interrupted one: %v", err)
	}
	rep, err := b.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	var st AccountStatus
	if err := b.C.Call(ctx, OpAccountStatus, nil, &st); err != nil || st.LastError != "" || st.LastSync.IsZero() {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// Locking drops a pending automatic sync; Close ends them for good.
func TestLockStopsAutoSync(t *testing.T) {
	h := newHandler(t)
	var mu sync.Mutex // the agent's handler lock
	var runs atomic.Int32
	call := func(op string, args any) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if _, err := handle(t, h, op, args); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	call(OpUnlock, UnlockArgs{Password: []byte(testPassword)})
	call(OpAccountRegister, RegisterArgs{URL: t.TempDir(), Email: "alice@example.com", Password: []byte(testPassword)})
	h.RunLocked = func(fn func(context.Context)) bool {
		mu.Lock()
		defer mu.Unlock()
		runs.Add(1)
		fn(ctx)
		return true
	}
	add := func(title string) { call(OpAdd, AddArgs{Items: []item.Item{{Type: item.Note, Title: title}}}) }

	// A write schedules one.
	add("One")
	for deadline := time.Now().Add(5 * time.Second); runs.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no automatic sync after a write")
		}
	}

	// A lock right after a write cancels it.
	n := runs.Load()
	add("Two")
	call(OpLock, nil)
	time.Sleep(AutoSyncDelay + 300*time.Millisecond)
	if runs.Load() != n {
		t.Fatal("an automatic sync ran after the lock")
	}

	// So does Close, and nothing is scheduled after it.
	call(OpUnlock, UnlockArgs{Password: []byte(testPassword)}) // schedules one
	h.Close()
	add("Three")
	time.Sleep(AutoSyncDelay + 300*time.Millisecond)
	if runs.Load() != n {
		t.Fatal("an automatic sync ran after Close")
	}
}
