package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/frames"
	"github.com/safehold/safehold/internal/remote/remotetest"
)

// TestConformance runs the suite every remote passes against a Client
// whose other end serves a folder, one folder per Remote as for the folder
// itself. The Client does not implement remote.Orgs, so the organisation
// part skips.
func TestConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		f, err := folder.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c, _ := connect(t, f, 4)
		return c
	})
}

func chunksOf(chunks ...[]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, c := range chunks {
			if !yield(c, nil) {
				return
			}
		}
	}
}

// calls makes every Remote call once; each returns its error.
func calls(r remote.Remote) map[string]func(ctx context.Context) error {
	entry := []api.Entry{{Body: []byte("body"), Sig: []byte("sig")}}
	return map[string]func(ctx context.Context) error{
		"Prelogin": func(ctx context.Context) error { _, err := r.Prelogin(ctx, "a@example.com"); return err },
		"Register": func(ctx context.Context) error {
			return r.Register(ctx, api.RegisterRequest{Email: "a@example.com", LoginKey: make([]byte, 32)})
		},
		"Login": func(ctx context.Context) error {
			return r.Login(ctx, api.LoginRequest{Email: "a@example.com", LoginKey: make([]byte, 32)})
		},
		"Account": func(ctx context.Context) error { _, err := r.Account(ctx); return err },
		"UpdateAccount": func(ctx context.Context) error {
			_, err := r.UpdateAccount(ctx, api.AccountUpdate{Base: 1, Document: []byte("d")})
			return err
		},
		"Vaults":   func(ctx context.Context) error { _, err := r.Vaults(ctx); return err },
		"PutVault": func(ctx context.Context) error { return r.PutVault(ctx, "v", []byte("r")) },
		"Pull":     func(ctx context.Context) error { _, err := r.Pull(ctx, "v", 0); return err },
		"Push":     func(ctx context.Context) error { _, err := r.Push(ctx, "v", 0, entry); return err },
		"PutBlob": func(ctx context.Context) error {
			return r.PutBlob(ctx, "v", "i", "b", chunksOf(make([]byte, 40), make([]byte, 50), make([]byte, 60)))
		},
		"GetBlob": func(ctx context.Context) error {
			return r.GetBlob(ctx, "v", "i", "b", func(int, []byte) error { return nil })
		},
	}
}

// TestErrorMapping checks that each remote error survives the trip, that
// the connection stays usable after one, and that the backing's text
// crosses only for a stale write and refused entries.
func TestErrorMapping(t *testing.T) {
	ctx := t.Context()
	const secret = "/home/ann/.safehold/k3y"
	sentinels := []error{remote.ErrStale, remote.ErrNotFound, remote.ErrExists, remote.ErrAuth,
		remote.ErrTOTPRequired, remote.ErrRefused, remote.ErrForbidden, remote.ErrUnavailable}
	for _, s := range sentinels {
		backing := failing{fmt.Errorf("%w: vault v is at 5\x1b[31m, not 3 (%s)", s, secret)}
		c, _ := connect(t, backing, 4)
		for name, call := range calls(c) {
			err := call(ctx)
			if !errors.Is(err, s) {
				t.Errorf("%v: %s: err = %v, want it to match", s, name, err)
				continue
			}
			if s != remote.ErrUnavailable && errors.Is(err, remote.ErrUnavailable) {
				t.Errorf("%v: %s: err = %v also matches ErrUnavailable", s, name, err)
			}
			msg := err.Error()
			if s == remote.ErrStale || s == remote.ErrRefused {
				if !strings.Contains(msg, "vault v is at 5") || strings.Contains(msg, "\x1b") || strings.Count(msg, s.Error()) != 1 {
					t.Errorf("%v: %s: the detail did not cross cleaned: %q", s, name, msg)
				}
			} else if strings.Contains(msg, secret) || strings.Contains(msg, "vault v") {
				t.Errorf("%v: %s: the backing's text crossed: %q", s, name, msg)
			}
		}
	}
	for _, other := range []error{
		fmt.Errorf("open %s: permission denied", secret),
		context.Canceled,
		fmt.Errorf("%w: chunk 3", frames.ErrMalformed),
	} {
		c, _ := connect(t, failing{other}, 4)
		for name, call := range calls(c) {
			err := call(ctx)
			if !errors.Is(err, ErrFailed) || errors.Is(err, remote.ErrUnavailable) || strings.Contains(err.Error(), secret) {
				t.Errorf("%v: %s: err = %v, want ErrFailed without the backing's text", other, name, err)
			}
		}
	}
}

// TestBrokenConnection checks that a connection that fails mid-call gives
// remote.ErrUnavailable wrapping the cause, here and in every later call.
func TestBrokenConnection(t *testing.T) {
	ctx := t.Context()
	unavailable := func(t *testing.T, c *Client, err error, cause error) {
		t.Helper()
		if !errors.Is(err, remote.ErrUnavailable) || (cause != nil && !errors.Is(err, cause)) {
			t.Errorf("err = %v, want ErrUnavailable wrapping %v", err, cause)
		}
		if _, err := c.Account(ctx); !errors.Is(err, remote.ErrUnavailable) {
			t.Errorf("the next call: err = %v, want ErrUnavailable", err)
		}
	}

	t.Run("other end closes", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		sp := &spy{Remote: failing{}, before: func(op string) {
			if op == "pull" {
				close(entered)
				<-release
			}
		}}
		a, b := newPipe(4, MaxMessage)
		done := serve(b, sp)
		c := NewClient(a)
		errc := make(chan error, 1)
		go func() { _, err := c.Pull(ctx, "v", 0); errc <- err }()
		<-entered
		b.Close()
		unavailable(t, c, <-errc, io.EOF)
		close(release)
		if err := <-done; err == nil {
			t.Errorf("Serve that could not answer returned nil")
		}
	})

	t.Run("cut mid-upload", func(t *testing.T) {
		f, vault := registered(t)
		a, b := newPipe(4, MaxMessage)
		server := &cut{MsgConn: b}
		server.reads.Store(10)
		done := serve(server, f)
		c := NewClient(a)
		chunks := make([][]byte, 50)
		for i := range chunks {
			chunks[i] = bytes.Repeat([]byte{byte(i)}, 1000)
		}
		err := c.PutBlob(ctx, vault, "item", "blob", chunksOf(chunks...))
		unavailable(t, c, err, nil)
		if err := <-done; !errors.Is(err, errCut) {
			t.Errorf("Serve: %v, want the cut", err)
		}
		// Nothing of the upload was kept.
		c2, _ := connect(t, f, 4)
		if err := c2.GetBlob(ctx, vault, "item", "blob", func(int, []byte) error { return nil }); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("GetBlob after a cut upload: %v, want ErrNotFound", err)
		}
	})

	t.Run("cut mid-download", func(t *testing.T) {
		f, vault := registered(t)
		c, _ := connect(t, f, 4)
		chunks := make([][]byte, 20)
		for i := range chunks {
			chunks[i] = bytes.Repeat([]byte{byte(i)}, 1000)
		}
		if err := c.PutBlob(ctx, vault, "item", "blob", chunksOf(chunks...)); err != nil {
			t.Fatal(err)
		}
		a, b := newPipe(4, MaxMessage)
		server := &cut{MsgConn: b}
		server.writes.Store(6)
		done := serve(server, f)
		c2 := NewClient(a)
		got := 0
		err := c2.GetBlob(ctx, vault, "item", "blob", func(idx int, chunk []byte) error {
			if !bytes.Equal(chunk, chunks[idx]) {
				t.Errorf("chunk %d differs", idx)
			}
			got++
			return nil
		})
		unavailable(t, c2, err, io.EOF)
		if got != 5 {
			t.Errorf("%d chunks arrived before the cut, want 5", got)
		}
		if err := <-done; !errors.Is(err, errCut) {
			t.Errorf("Serve: %v, want the cut", err)
		}
	})

	t.Run("cancelled in flight", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		sp := &spy{Remote: failing{}, before: func(op string) {
			if op == "account" {
				close(entered)
				<-release
			}
		}}
		a, b := newPipe(4, MaxMessage)
		done := serve(b, sp)
		c := NewClient(a)
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := c.Account(cctx); errc <- err }()
		<-entered
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Account cancelled in flight: err = %v, want context.Canceled", err)
		}
		if _, err := c.Vaults(ctx); !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("the next call: err = %v, want ErrUnavailable wrapping the cancellation", err)
		}
		close(release)
		<-done
	})

	t.Run("cancelled waiting its turn", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		sp := &spy{Remote: failing{}, before: func(op string) {
			if op == "account" {
				close(entered)
				<-release
			}
		}}
		c, _ := connect(t, sp, 4)
		errc := make(chan error, 1)
		go func() { _, err := c.Account(ctx); errc <- err }()
		<-entered
		// The second call waits for the first, or finds its context ended
		// before it starts: either way it ends without touching the
		// connection.
		cctx, cancel := context.WithCancel(ctx)
		waited := make(chan error, 1)
		go func() { _, err := c.Vaults(cctx); waited <- err }()
		cancel()
		if err := <-waited; !errors.Is(err, context.Canceled) {
			t.Errorf("Vaults cancelled while waiting: err = %v", err)
		}
		close(release)
		if err := <-errc; err != nil {
			t.Errorf("the call in flight: %v", err)
		}
		if _, err := c.Vaults(ctx); err != nil {
			t.Errorf("a call after a cancelled wait: %v (the connection should be untouched)", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		c, _ := connect(t, failing{}, 4)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for name, call := range calls(c) {
			if err := call(ctx); !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: err = %v", name, err)
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// Messages built by hand, not by the code under test.
func raw(typ byte, parts ...[]byte) []byte {
	b := []byte{Version, typ}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u32b(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
func u64b(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
func strb(s string) []byte { return append(u32b(uint32(len(s))), s...) }
func bin(b []byte) []byte  { return append(u32b(uint32(len(b))), b...) }

// parseError parses an error message by hand.
func parseError(t *testing.T, m []byte) (code byte, detail string) {
	t.Helper()
	if len(m) < 7 || m[0] != Version || m[1] != 0x40 || int(binary.BigEndian.Uint32(m[3:])) != len(m)-7 {
		t.Fatalf("not an error message: % x", m[:min(len(m), 16)])
	}
	return m[2], string(m[7:])
}

// TestGarbledRequests checks that the server answers a malformed request
// with bad_request (unsupported for another version), closes, reports
// ErrProtocol, and hands nothing on to the backing.
func TestGarbledRequests(t *testing.T) {
	chunk := bytes.Repeat([]byte{7}, 40)
	entry := raw(0x20, bin([]byte("body")), bin([]byte("sig")), bin(nil))
	putBlob := raw(0x0a, strb("v"), strb("i"), strb("b"))
	big := make([]byte, MaxMessage+1)
	copy(big, raw(0x07, strb("v"), u32b(uint32(MaxMessage-12))))
	cases := []struct {
		name     string
		msgs     [][]byte
		code     byte
		upload   bool // the backing sees an upload that fails
		backing  int  // backing calls
		inStream bool
	}{
		{name: "empty", msgs: [][]byte{{}}},
		{name: "version only", msgs: [][]byte{{Version}}},
		{name: "version 2", msgs: [][]byte{{2, 0x04}}, code: codeUnsupported},
		{name: "version 0", msgs: [][]byte{{0, 0x04}}, code: codeUnsupported},
		{name: "unknown type", msgs: [][]byte{raw(0x7f)}},
		{name: "a response", msgs: [][]byte{raw(0x41)}},
		{name: "a stream item alone", msgs: [][]byte{raw(0x22, bin(chunk))}},
		{name: "an end alone", msgs: [][]byte{raw(0x23, u32b(0))}},
		{name: "truncated", msgs: [][]byte{raw(0x08, strb("v"), u64b(1))[:14]}},
		{name: "trailing byte", msgs: [][]byte{raw(0x08, strb("v"), u64b(1), []byte{0})}},
		{name: "length past the end", msgs: [][]byte{raw(0x07, strb("v"), u32b(100), []byte("short"))}},
		{name: "length out of bounds", msgs: [][]byte{raw(0x07, strb("v"), u32b(0xffffffff))}},
		{name: "string too long", msgs: [][]byte{raw(0x01, strb(strings.Repeat("a", 1025)))}},
		{name: "flag 2", msgs: [][]byte{raw(0x05, u64b(1), bin([]byte("d")), []byte{2})}},
		{name: "push of none", msgs: [][]byte{raw(0x09, strb("v"), u64b(0), u32b(0))}},
		{name: "push of 1001", msgs: [][]byte{raw(0x09, strb("v"), u64b(0), u32b(1001))}},
		{name: "oversized", msgs: [][]byte{big}},
		{name: "push then a chunk", msgs: [][]byte{raw(0x09, strb("v"), u64b(0), u32b(2)), entry, raw(0x22, bin(chunk))}},
		{name: "push then garbage", msgs: [][]byte{raw(0x09, strb("v"), u64b(0), u32b(2)), entry, {Version}}},
		{name: "upload then an entry", msgs: [][]byte{putBlob, raw(0x22, bin(chunk)), entry}, upload: true},
		{name: "upload of a short chunk", msgs: [][]byte{putBlob, raw(0x22, bin(chunk[:31]))}, upload: true},
		{name: "upload miscounted", msgs: [][]byte{putBlob, raw(0x22, bin(chunk)), raw(0x23, u32b(2))}, upload: true},
		{name: "upload then another version", msgs: [][]byte{putBlob, {2, 0x22}}, upload: true, code: codeUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, vault := registered(t)
			for i, m := range tc.msgs {
				tc.msgs[i] = bytes.ReplaceAll(m, []byte("\x00\x00\x00\x01v"), append(u32b(uint32(len(vault))), vault...))
			}
			sp := &spy{Remote: f}
			a, b := newPipe(len(tc.msgs)+1, MaxMessage+1<<10)
			done := serve(b, sp)
			for _, m := range tc.msgs {
				if err := a.WriteMessage(m); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := a.ReadMessage()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			want := tc.code
			if want == 0 {
				want = codeBadRequest
			}
			if code, d := parseError(t, resp); code != want {
				t.Errorf("answer: code %d (%q), want %d", code, d, want)
			}
			if m, err := a.ReadMessage(); err != io.EOF {
				t.Errorf("after the answer: % x, %v; want the server to close", m, err)
			}
			if err := <-done; !errors.Is(err, ErrProtocol) {
				t.Errorf("Serve: %v, want ErrProtocol", err)
			}
			wantCalls := int64(0)
			if tc.upload {
				wantCalls = 1
			}
			if n := sp.calls.Load(); n != wantCalls {
				t.Errorf("the backing saw %d calls, want %d", n, wantCalls)
			}
			if err := f.GetBlob(t.Context(), vault, "i", "b", func(int, []byte) error { return nil }); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("a blob was stored: %v", err)
			}
		})
	}
}

// TestGarbledResponses checks that the client refuses a malformed answer
// with ErrProtocol and ErrUnavailable, closes, and fails later calls.
func TestGarbledResponses(t *testing.T) {
	chunk := bytes.Repeat([]byte{7}, 40)
	big := make([]byte, MaxMessage+1)
	copy(big, raw(0x43))
	// Pages and listings past MaxBatch bytes, each message in bounds.
	heavy := raw(0x20, bin(nil), bin(nil), bin(make([]byte, maxPayload)))
	overPage := [][]byte{raw(0x46, u64b(8), u32b(8))}
	for len(overPage) < 9 {
		overPage = append(overPage, heavy)
	}
	record := raw(0x21, strb("v"), u64b(0), bin(make([]byte, api.MaxDocument)))
	overList := [][]byte{raw(0x45, u32b(33))}
	for len(overList) < 34 {
		overList = append(overList, record)
	}
	account := func(c *Client) error { _, err := c.Account(t.Context()); return err }
	pull := func(c *Client) error { _, err := c.Pull(t.Context(), "v", 0); return err }
	getBlob := func(c *Client) error {
		return c.GetBlob(t.Context(), "v", "i", "b", func(int, []byte) error { return nil })
	}
	cases := []struct {
		name string
		call func(*Client) error
		resp [][]byte
	}{
		{"garbage", account, [][]byte{{0xff}}},
		{"empty", account, [][]byte{{}}},
		{"version 2", account, [][]byte{{2, 0x43}}},
		{"a request", account, [][]byte{raw(0x04)}},
		{"another response", account, [][]byte{raw(0x41)}},
		{"trailing byte", func(c *Client) error { return c.PutVault(t.Context(), "v", nil) }, [][]byte{raw(0x41, []byte{0})}},
		{"error code 0", account, [][]byte{raw(0x40, []byte{0}, strb(""))}},
		{"detail too long", account, [][]byte{raw(0x40, []byte{codeStale}, strb(strings.Repeat("x", 1025)))}},
		{"bad_request", account, [][]byte{raw(0x40, []byte{codeBadRequest}, strb("bad"))}},
		{"unsupported", account, [][]byte{raw(0x40, []byte{codeUnsupported}, strb(""))}},
		{"oversized", account, [][]byte{big}},
		{"page of 1001", pull, [][]byte{raw(0x46, u64b(5), u32b(1001))}},
		{"page of chunks", pull, [][]byte{raw(0x46, u64b(5), u32b(1)), raw(0x22, bin(chunk))}},
		{"page past MaxBatch", pull, overPage},
		{"vault list too long", func(c *Client) error { _, err := c.Vaults(t.Context()); return err }, [][]byte{raw(0x45, u32b(MaxVaults+1))}},
		{"vault list past MaxBatch", func(c *Client) error { _, err := c.Vaults(t.Context()); return err }, overList},
		{"blob miscounted", getBlob, [][]byte{raw(0x22, bin(chunk)), raw(0x23, u32b(2))}},
		{"blob chunk too short", getBlob, [][]byte{raw(0x22, bin(chunk[:31]))}},
		{"blob chunk too long", getBlob, [][]byte{raw(0x22, bin(make([]byte, frames.Max+1)))}},
		{"blob then an entry", getBlob, [][]byte{raw(0x22, bin(chunk)), raw(0x20, bin(nil), bin(nil), bin(nil))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPipe(len(tc.resp)+1, MaxMessage+1<<10)
			requests := make(chan int, 1)
			go func() {
				n := 0
				for {
					if _, err := b.ReadMessage(); err != nil {
						requests <- n
						return
					}
					n++
					for _, r := range tc.resp {
						b.WriteMessage(r)
					}
				}
			}()
			c := NewClient(a)
			err := tc.call(c)
			if !errors.Is(err, ErrProtocol) || !errors.Is(err, remote.ErrUnavailable) {
				t.Errorf("err = %v, want ErrProtocol and ErrUnavailable", err)
			}
			if err := account(c); !errors.Is(err, remote.ErrUnavailable) {
				t.Errorf("the next call: err = %v, want ErrUnavailable", err)
			}
			if n := <-requests; n != 1 {
				t.Errorf("the server read %d requests, then the client closed; want 1", n)
			}
		})
	}

	// An unknown error code is a failure, not a violation: a newer peer
	// may send one.
	a, b := newPipe(4, MaxMessage)
	go func() {
		for {
			if _, err := b.ReadMessage(); err != nil {
				return
			}
			b.WriteMessage(raw(0x40, []byte{200}, strb("")))
		}
	}()
	c := NewClient(a)
	defer c.Close()
	for range 2 {
		if err := account(c); !errors.Is(err, ErrFailed) || errors.Is(err, remote.ErrUnavailable) {
			t.Errorf("unknown error code: err = %v, want ErrFailed only", err)
		}
	}
}

// TestRefusedLocally checks that the client refuses arguments out of the
// wire's bounds before sending, and stays usable.
func TestRefusedLocally(t *testing.T) {
	ctx := t.Context()
	sp := &spy{Remote: failing{remote.ErrNotFound}}
	c, _ := connect(t, sp, 4)
	payload := make([]byte, maxPayload)
	heavy := make([]api.Entry, 8)
	for i := range heavy {
		heavy[i] = api.Entry{Body: []byte("b"), Sig: []byte("s"), Payload: payload}
	}
	for name, call := range map[string]func() error{
		"record too large": func() error { return c.PutVault(ctx, "v", make([]byte, api.MaxDocument+1)) },
		"email too long":   func() error { _, err := c.Prelogin(ctx, strings.Repeat("a", 1025)); return err },
		"document too large": func() error {
			_, err := c.UpdateAccount(ctx, api.AccountUpdate{Base: 1, Document: make([]byte, api.MaxDocument+1)})
			return err
		},
		"push of none":   func() error { _, err := c.Push(ctx, "v", 0, nil); return err },
		"push of 1001":   func() error { _, err := c.Push(ctx, "v", 0, make([]api.Entry, 1001)); return err },
		"push too large": func() error { _, err := c.Push(ctx, "v", 0, heavy); return err },
		"payload too large": func() error {
			_, err := c.Push(ctx, "v", 0, []api.Entry{{Body: []byte("b"), Sig: []byte("s"), Payload: make([]byte, maxPayload+1)}})
			return err
		},
		"short chunk": func() error {
			return c.PutBlob(ctx, "v", "i", "b", chunksOf(make([]byte, 40), make([]byte, 31)))
		},
		"long chunk": func() error { return c.PutBlob(ctx, "v", "i", "b", chunksOf(make([]byte, frames.Max+1))) },
		"no chunks":  func() error { return c.PutBlob(ctx, "v", "i", "b", chunksOf()) },
		"failing source": func() error {
			return c.PutBlob(ctx, "v", "i", "b", func(yield func([]byte, error) bool) {
				_ = yield(make([]byte, 40), nil) && yield(nil, io.ErrUnexpectedEOF)
			})
		},
	} {
		err := call()
		if err == nil || errors.Is(err, remote.ErrUnavailable) || errors.Is(err, remote.ErrNotFound) {
			t.Errorf("%s: err = %v, want a local refusal", name, err)
		}
		if strings.Contains(name, "chunk") && !errors.Is(err, frames.ErrMalformed) {
			t.Errorf("%s: err = %v, want frames.ErrMalformed", name, err)
		}
		if name == "failing source" && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err = %v, want the source's error", name, err)
		}
		if _, err := c.Account(ctx); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("after %s: the next call: err = %v, want the backing's ErrNotFound", name, err)
		}
	}
	if n := sp.calls.Load(); n != 11+4 { // each Account, and the four uploads (aborted)
		t.Errorf("the backing saw %d calls, want 15", n)
	}
}

// TestBlobStreaming sends a blob of several MiB each way and checks that
// it goes chunk by chunk: while the client produces chunk k the backing
// has already written all but the few chunks the pipe holds, and while the
// client receives chunk k the backing has read at most a few ahead. The
// whole blob is never in memory.
func TestBlobStreaming(t *testing.T) {
	const (
		depth  = 4
		chunks = 160 // 10 MiB
		size   = 65536 + 32
	)
	ctx := t.Context()
	f, vault := registered(t)
	sp := &spy{Remote: f}
	c, conn := connect(t, sp, depth)

	chunk := func(k int) []byte {
		b := make([]byte, size)
		r := rand.NewChaCha8([32]byte{byte(k), byte(k >> 8)})
		r.Read(b)
		return b
	}
	sent := sha256.New()
	err := c.PutBlob(ctx, vault, "item", "blob", func(yield func([]byte, error) bool) {
		for k := range chunks {
			if read := sp.putChunks.Load(); int(read) < k-depth-1 {
				t.Errorf("producing chunk %d, the backing has read only %d: the upload is buffered", k, read)
			}
			b := chunk(k)
			sent.Write(b)
			if !yield(b, nil) {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if n := sp.putChunks.Load(); n != chunks {
		t.Errorf("the backing read %d chunks, want %d", n, chunks)
	}

	got := sha256.New()
	n := 0
	err = c.GetBlob(ctx, vault, "item", "blob", func(idx int, b []byte) error {
		if read := sp.getChunks.Load(); int(read) > idx+depth+2 {
			t.Errorf("receiving chunk %d, the backing has read %d: the download is buffered", idx, read)
		}
		if idx != n || len(b) != size {
			t.Errorf("chunk %d: index %d, %d bytes", n, idx, len(b))
		}
		got.Write(b)
		n++
		return nil
	})
	if err != nil || n != chunks {
		t.Fatalf("GetBlob: %d chunks, %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Errorf("the blob came back different")
	}
	if m := conn.maxLen.Load(); m > chunkMax {
		t.Errorf("a message of %d bytes passed, more than a chunk message (%d)", m, chunkMax)
	}
}

// TestPullPageCut checks that the server cuts a page at MaxBatch bytes and
// the client pages on.
func TestPullPageCut(t *testing.T) {
	payload := make([]byte, maxPayload)
	page := api.LogPage{Head: 10}
	for range 10 {
		page.Entries = append(page.Entries, api.Entry{Body: []byte("body"), Sig: []byte("sig"), Payload: payload})
	}
	c, _ := connect(t, canned{page: page}, 2)
	p, err := c.Pull(t.Context(), "v", 0)
	if err != nil {
		t.Fatal(err)
	}
	per, _ := size(&entryMsg{E: page.Entries[0]})
	if want := MaxBatch / per; p.Head != 10 || len(p.Entries) != want {
		t.Errorf("page: head %d, %d entries; want 10, %d", p.Head, len(p.Entries), want)
	}
	// A backing that oversteps the page limit is cut to it.
	many := api.LogPage{Head: 2000, Entries: make([]api.Entry, 1500)}
	c2, _ := connect(t, canned{page: many}, 2)
	if p, err := c2.Pull(t.Context(), "v", 0); err != nil || len(p.Entries) != api.MaxPageLimit {
		t.Errorf("page of a backing's 1500 entries: %d entries, %v", len(p.Entries), err)
	}
	// An entry out of bounds is a failure of the backing.
	bad := api.LogPage{Head: 1, Entries: []api.Entry{{Body: make([]byte, 1<<20)}}}
	c3, _ := connect(t, canned{page: bad}, 2)
	if _, err := c3.Pull(t.Context(), "v", 0); !errors.Is(err, ErrFailed) || errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("page with an oversized entry: err = %v, want ErrFailed", err)
	}
	// So is a listing out of bounds.
	c4, _ := connect(t, canned{vaults: make([]api.Vault, MaxVaults+1)}, 2)
	if _, err := c4.Vaults(t.Context()); !errors.Is(err, ErrFailed) {
		t.Errorf("listing of too many vaults: err = %v, want ErrFailed", err)
	}
}

// TestServeContext checks that Serve stops when its context ends.
func TestServeContext(t *testing.T) {
	a, b := newPipe(1, MaxMessage)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, b, failing{}) }()
	c := NewClient(a)
	if _, err := c.Account(t.Context()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := c.Account(t.Context()); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("a call after the server stopped: %v", err)
	}
}
