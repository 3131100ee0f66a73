package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
)

// The malicious-server harness over the real protocol: a real `safe serve`
// server behind a TLS proxy that rewrites its answers with the same hooks
// as the liar remote. Clients pin the proxy's certificate: to them, the
// proxy is the server.

// startServer runs a real server on loopback (SQLite in a temp dir).
func startServer(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return "https://" + ln.Addr().String()
}

var logPath = regexp.MustCompile(`^/v1/vaults/([0-9a-z]+)/log$`)

// lyingProxy forwards to target and lets l's hooks rewrite the answers.
func lyingProxy(t testing.TB, target string, l *liar) (url, fingerprint string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == api.PathLogin {
			l.logins.Add(1)
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			out = rewrite(t, r, out, l)
		}
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	}))
	t.Cleanup(p.Close)
	return p.URL, httpremote.Fingerprint(p.Certificate().Raw)
}

func rewrite(t testing.TB, r *http.Request, out []byte, l *liar) []byte {
	recode := func(v any, fn func()) []byte {
		if err := json.Unmarshal(out, v); err != nil {
			t.Errorf("proxy: decode %s: %v", r.URL.Path, err)
			return out
		}
		fn()
		b, _ := json.Marshal(v)
		return b
	}
	if l.org != nil && strings.HasPrefix(r.URL.Path, api.PathOrgs) {
		return l.org.rewrite(t, r, out)
	}
	switch {
	case r.Method == http.MethodGet && logPath.MatchString(r.URL.Path) && l.pull != nil:
		var p api.LogPage
		return recode(&p, func() { l.pull(logPath.FindStringSubmatch(r.URL.Path)[1], &p) })
	case r.Method == http.MethodGet && r.URL.Path == api.PathAccount && l.account != nil:
		var a api.Account
		return recode(&a, func() { l.account(&a) })
	case r.URL.Path == api.PathPrelogin && l.prelogin != nil:
		var p api.PreloginResponse
		return recode(&p, func() { p.KDF = l.prelogin(p.KDF) })
	case r.Method == http.MethodGet && r.URL.Path == api.PathVaults && l.vaults != nil:
		var v api.Vaults
		return recode(&v, func() { l.vaults(v.Vaults) })
	}
	return out
}

// httpPair is syncPair over the real protocol through a lying proxy.
func httpPair(t *testing.T) (a, b *Vault, ra, rb remote.Remote, l *liar) {
	t.Helper()
	target := startServer(t)
	l = &liar{}
	u, fp := lyingProxy(t, target, l)
	dial := func() *httpremote.Client {
		c, err := httpremote.New(u, fp, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, _, _ = newVault(t)
	addLogin(t, a, "Mail", "pw-one")
	addLogin(t, a, "Bank", "pw-two")
	ca := dial()
	target2 := RemoteTarget{Name: "origin", Kind: RemoteServer, URL: u, Fingerprint: fp, Email: "alice@example.com"}
	sk, err := a.Register(ctx, ca, target2, []byte(syncPassword))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, ca)
	cb := dial()
	b = join(t, cb, target2, sk)
	l.Remote = cb
	return a, b, ca, cb, l
}

// TestAttacksServer runs every attack through a lying server.
func TestAttacksServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server per attack")
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			a, b, ra, rb, l := httpPair(t)
			prepareAttack(t, a, b, ra)
			// The attack arms a liar around A's honest client (some
			// make honest calls first), then its hooks move to the proxy.
			armed := &liar{Remote: ra}
			at.arm(t, a, b, armed)
			l.pull, l.account, l.prelogin, l.vaults = armed.pull, armed.account, armed.prelogin, armed.vaults
			refused(t, b, rb, ErrRemoteTampered, at.words)
		})
	}
}

// TestPreloginServer: a server offering weakened parameters at login gets
// no login attempt.
func TestPreloginServer(t *testing.T) {
	_, b, _, rb, l := httpPair(t)
	l.prelogin = func(h []byte) []byte { h = bytes.Clone(h); h[len(h)-1] ^= 1; return h }
	before := l.logins.Load()
	err := b.Login(ctx, rb, []byte(syncPassword), "", "", "test")
	if err == nil || !strings.Contains(err.Error(), "salts differ") {
		t.Fatalf("login: %v", err)
	}
	if l.logins.Load() != before {
		t.Fatal("a login reached the server after refused parameters")
	}
}

// TestServerLoginNeedsSecretKey: with the right password but without the
// Secret Key, the login key a client derives is refused by the real
// server, and with it the Master Key does not open.
func TestServerLoginNeedsSecretKey(t *testing.T) {
	a, _, ra, rb, _ := httpPair(t)
	header, err := rb.Prelogin(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	hd, err := kdf.ParseHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	noSK, err := kdf.DeriveWith([]byte(syncPassword), nil, hd.Params, hd.Salts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer noSK.Wipe()
	err = rb.Login(ctx, api.LoginRequest{Email: "alice@example.com", LoginKey: noSK.LoginKey(), Device: api.DeviceHello{ID: "zzzzzzzzzzzzzzzzzzzzzzzzz0", Platform: "x"}})
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("login without the Secret Key: %v", err)
	}
	acc, err := ra.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var doc accountRecord
	if err := decodeRecord(acc.Document, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := openWrap(noSK.KEK(), a.Account(), doc.PasswordWrap); err == nil {
		t.Fatal("the password alone opened the Master Key")
	}
}
