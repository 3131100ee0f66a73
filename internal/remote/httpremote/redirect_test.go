package httpremote

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
)

// TestNoRedirects: a server that answers with a redirect cannot send the
// client, its login key or its token anywhere else (security.md §2 row
// 11). The other place is one the pin would accept (httptest servers share
// a certificate), on another server or on the same one, so only the
// client's refusal to follow redirects keeps it from being contacted.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other, otherFP := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		writeJSON(w, http.StatusOK, api.PreloginResponse{KDF: make([]byte, 80)})
	}))
	var status atomic.Int32
	var toOther atomic.Bool
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			elsewhere.Add(1)
			writeJSON(w, http.StatusOK, api.PreloginResponse{KDF: make([]byte, 80)})
			return
		}
		loc := "/elsewhere"
		if toOther.Load() {
			loc = other.URL + r.URL.RequestURI()
		}
		http.Redirect(w, r, loc, int(status.Load()))
	}))
	if fp != otherFP {
		t.Fatal("the test servers' certificates differ: the pin alone would refuse the other server")
	}

	// Control: with the pin of the redirecting server, the other one is
	// reachable when addressed directly.
	direct := newClient(t, other, fp, Options{})
	if _, err := direct.Prelogin(t.Context(), "a@example.com"); err != nil {
		t.Fatalf("the other server refuses a direct request: %v", err)
	}
	if elsewhere.Swap(0) != 1 {
		t.Fatal("the direct request did not reach the other server")
	}

	c := newClient(t, srv, fp, Options{Session: session("access", "refresh", time.Now().Add(time.Hour))})
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"prelogin", func(ctx context.Context) error { _, err := c.Prelogin(ctx, "a@example.com"); return err }},
		{"login", func(ctx context.Context) error {
			return c.Login(ctx, api.LoginRequest{Email: "a@example.com", LoginKey: make([]byte, api.LoginKeySize), Device: api.DeviceHello{ID: testAccount, Platform: "x"}})
		}},
		{"account", func(ctx context.Context) error { _, err := c.Account(ctx); return err }},
		{"update-account", func(ctx context.Context) error {
			_, err := c.UpdateAccount(ctx, api.AccountUpdate{Base: 1, Document: []byte("{}"), Credentials: &api.Credentials{KDF: make([]byte, 80), LoginKey: make([]byte, api.LoginKeySize)}})
			return err
		}},
		{"vaults", func(ctx context.Context) error { _, err := c.Vaults(ctx); return err }},
		{"put-vault", func(ctx context.Context) error { return c.PutVault(ctx, testAccount, []byte("{}")) }},
		{"pull", func(ctx context.Context) error { _, err := c.Pull(ctx, testAccount, 0); return err }},
		{"push", func(ctx context.Context) error {
			_, err := c.Push(ctx, testAccount, 0, []api.Entry{{Body: []byte("b"), Sig: []byte("s")}})
			return err
		}},
		{"get-blob", func(ctx context.Context) error {
			return c.GetBlob(ctx, testAccount, testAccount, testAccount, func(int, []byte) error { return nil })
		}},
		{"put-blob", func(ctx context.Context) error {
			return c.PutBlob(ctx, testAccount, testAccount, testAccount, func(yield func([]byte, error) bool) { yield([]byte("chunk"), nil) })
		}},
	}
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		status.Store(int32(code))
		for _, far := range []bool{false, true} {
			toOther.Store(far)
			for _, cl := range calls {
				if err := cl.call(t.Context()); err == nil {
					t.Errorf("%d (other server %v) %s: no error", code, far, cl.name)
				}
				if n := elsewhere.Swap(0); n != 0 {
					t.Errorf("%d (other server %v) %s: the client followed the redirect (%d requests)", code, far, cl.name, n)
				}
			}
		}
	}
}
