package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/vlog"
)

// TestLogSecrecy runs a whole register / 2FA / login / sync flow and scans
// everything the server logged for the secrets that passed through it.
func TestLogSecrecy(t *testing.T) {
	e := newEnv(t)
	u := e.register("victor@example.org")
	secrets := map[string]string{}
	addBytes := func(name string, b []byte) {
		secrets[name+" raw"] = string(b)
		secrets[name+" base64"] = base64.StdEncoding.EncodeToString(b)
		secrets[name+" base64url"] = base64.RawURLEncoding.EncodeToString(b)
		secrets[name+" hex"] = hex.EncodeToString(b)
	}
	addSession := func(s api.Session) {
		secrets["access token "+s.AccessToken[:4]] = s.AccessToken
		secrets["refresh token "+s.RefreshToken[:4]] = s.RefreshToken
	}
	addBytes("login key", u.loginKey)
	secrets["email"] = u.email
	addSession(u.sess)

	var setup api.TOTPSetup
	want(t, u.do("POST", api.Path2FASetup, nil, &setup), 200, "")
	secrets["totp secret"] = setup.Secret
	code, _ := totp.GenerateCodeCustom(setup.Secret, e.clock.Now(), totpOpts)
	var rc api.RecoveryCodes
	want(t, u.do("POST", api.Path2FAEnable, api.TOTPEnable{Code: code}, &rc), 200, "")
	for i, c := range rc.Codes {
		secrets["recovery code "+string(rune('a'+i))] = c
	}
	e.clock.Advance(totpPeriod * time.Second)
	code, _ = totp.GenerateCodeCustom(setup.Secret, e.clock.Now(), totpOpts)
	d := *u
	d.device = newID(t)
	want(t, d.login(code), 200, "")
	addSession(d.sess)
	bad := d
	bad.loginKey = randomBytes(32)
	addBytes("wrong login key", bad.loginKey)
	want(t, bad.login(""), 401, api.CodeUnauthorized)

	var s api.Session
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: d.sess.RefreshToken}, &s), 200, "")
	addSession(s)
	d.sess = s

	newKey := randomBytes(32)
	addBytes("new login key", newKey)
	doc := []byte("SECRET-DOCUMENT-" + hex.EncodeToString(randomBytes(8)))
	addBytes("document", doc)
	want(t, d.do("PUT", api.PathAccount, api.AccountUpdate{Base: 1, Document: doc,
		Credentials: &api.Credentials{KDF: kdfHeader(t), LoginKey: newKey}}, nil), 200, "")

	v := d.newVault()
	w := d.writer(v)
	payload := []byte("SECRET-PAYLOAD-" + hex.EncodeToString(randomBytes(8)))
	addBytes("payload", payload)
	item := newID(t)
	want(t, w.append(0, w.entry(vlog.OpPut, item, 1, payload)), 200, "")
	want(t, w.append(0, w.entry(vlog.OpPut, item, 2, payload)), 409, api.CodeStale)
	page, _ := d.logPage(v, "?since=0")
	if len(page.Entries) != 1 {
		t.Fatal("log page")
	}
	chunk := bytes.Repeat([]byte("SECRET-CHUNK!"), 10)
	addBytes("chunk", chunk)
	want(t, d.putBlob(v, item, newID(t), [][]byte{chunk}), 204, "")
	want(t, d.putBlob(v, item, newID(t), [][]byte{chunk[:10]}), 400, api.CodeBadRequest)
	want(t, d.do("POST", api.PathLogout, nil, nil), 204, "")
	want(t, e.do("GET", api.PathAccount+"?token="+d.sess.AccessToken, d.sess.AccessToken, nil, nil), 401, api.CodeUnauthorized)

	e.client.CloseIdleConnections()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"POST /v1/vaults/{vault}/log"`) || strings.Count(logs, `"msg":"request"`) < 15 {
		t.Fatalf("the log does not have the request lines:\n%s", logs)
	}
	if found := containsAny(logs, secrets); len(found) > 0 {
		t.Fatalf("the server log contains: %v", found)
	}
	if strings.Contains(logs, "Bearer") || strings.Contains(logs, "token=") {
		t.Fatal("the server log contains a header or a query string")
	}
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	u := e.register("wendy@example.org")
	v := u.newVault()
	item, blob := newID(t), newID(t)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", e.url+api.PathVaults+"/"+v+"/blobs/"+item+"/"+blob, pr)
	req.Header.Set(api.HeaderAuth, "Bearer "+u.sess.AccessToken)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		res.Body.Close()
		done <- result{status: res.StatusCode}
	}()
	frame := frameBody(frames(1, 100))
	pw.Write(frame)
	waitFor(t, func() bool { return e.srv.metrics.inFlight.Load() > 0 })

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	waitFor(t, func() bool { return e.srv.draining.Load() })
	// New connections are refused while the upload goes on.
	waitFor(t, func() bool {
		_, err := pinnedClient(e.srv.Fingerprint()).Get(e.url + api.PathHealth)
		return err != nil
	})
	pw.Write(frame)
	pw.Close()
	r := <-done
	if r.err != nil || r.status != 204 {
		t.Fatalf("in-flight upload: %d %v", r.status, r.err)
	}
	e.client.CloseIdleConnections()
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	n := 0
	if err := e.store.Blob(context.Background(), v, item, blob, func(int, []byte) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("blob after shutdown: %d chunks, %v", n, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	u := e.register("xavier@example.org")
	v := u.newVault()

	r := e.raw("GET", api.PathHealth, "", "", nil, nil)
	if r.status != 200 || string(r.body) != "ok\n" {
		t.Fatalf("healthz: %d %q", r.status, r.body)
	}
	want(t, e.raw("GET", "/v1/nothing", "", "", nil, nil), 404, api.CodeNotFound)
	want(t, e.raw("DELETE", api.PathAccount, "", "", nil, nil), 405, api.CodeBadRequest)
	want(t, e.raw("BREW", "/"+u.id, "", "", nil, nil), 404, api.CodeNotFound)

	r = e.raw("GET", api.PathMetrics, "", "", nil, nil)
	m := string(r.body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, s := range []string{
		`safehold_http_requests_total{route="POST /v1/register",method="POST",code="200"} 1`,
		`safehold_http_requests_total{route="PUT /v1/vaults/{vault}",method="PUT",code="204"} 1`,
		`safehold_http_requests_total{route="unmatched",method="other",code="404"} 1`,
		`safehold_http_request_duration_seconds_bucket{route="POST /v1/register",le="+Inf"} 1`,
		`safehold_http_request_duration_seconds_count{route="GET /healthz"} 1`,
		"# TYPE safehold_http_request_duration_seconds histogram",
		"safehold_http_requests_in_flight 1", // this request
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
	} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %q", s)
		}
	}
	for _, s := range []string{u.id, v, u.email, u.device, "127.0.0.1"} {
		if strings.Contains(m, s) {
			t.Errorf("metrics contain user data %q", s)
		}
	}
	// Every line is a comment or "name{labels} value".
	line := regexp.MustCompile(`^(# (HELP|TYPE) .*|[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? [0-9.e+-]+)$`)
	for _, l := range strings.Split(strings.TrimSpace(m), "\n") {
		if !line.MatchString(l) {
			t.Errorf("bad exposition line %q", l)
		}
	}
}

func TestCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cert, fp, err := LoadOrCreateCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 64 || strings.ToLower(fp) != fp || fp != Fingerprint(cert.Certificate[0]) {
		t.Fatalf("fingerprint %q", fp)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, CertFileName): 0o600} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v, want %v (%v)", p, fi.Mode().Perm(), mode, err)
		}
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("key %T", leaf.PublicKey)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate not valid for %s: %v", h, err)
		}
	}
	_, fp2, err := LoadOrCreateCert(dir)
	if err != nil || fp2 != fp {
		t.Fatalf("second load: %s %v", fp2, err)
	}
	// A key readable by others is refused.
	os.Chmod(filepath.Join(dir, CertFileName), 0o644)
	if _, _, err := LoadOrCreateCert(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loaded a world-readable key: %v", err)
	}
	os.Chmod(filepath.Join(dir, CertFileName), 0o600)

	// An operator-supplied certificate is used instead.
	pemBytes, err := newSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cb, rest := pem.Decode(pemBytes)
	kb, _ := pem.Decode(rest)
	opDir := t.TempDir()
	certFile, keyFile := filepath.Join(opDir, "c.pem"), filepath.Join(opDir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(cb), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(kb), 0o600)
	st := openStore(t)
	srv, err := New(Config{Store: st, CertFile: certFile, KeyFile: keyFile, DataDir: dir, scryptLogN: testLogN})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Fingerprint() != Fingerprint(cb.Bytes) || srv.Fingerprint() == fp {
		t.Fatal("the operator's certificate is not used")
	}
	if _, err := New(Config{Store: st, CertFile: certFile, scryptLogN: testLogN}); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}

	// TLS 1.2 is refused.
	e := newEnv(t)
	c := pinnedClient(e.srv.Fingerprint())
	c.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	c.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
	if _, err := c.Get(e.url + api.PathHealth); err == nil {
		t.Fatal("TLS 1.2 accepted")
	}
	// A client pinning another fingerprint is refused by its own check.
	if _, err := pinnedClient(fp).Get(e.url + api.PathHealth); err == nil {
		t.Fatal("wrong pin accepted")
	}
}

func openStore(t *testing.T) storage.Store {
	t.Helper()
	e := newEnv(t)
	return e.store
}

func TestAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.register("yvonne@example.org")
	v := u.newVault()
	w := u.writer(v)
	want(t, w.append(0, w.entry(vlog.OpPut, newID(t), 1, []byte("payload"))), 200, "")
	e.register("zack@example.org")

	users, err := Users(ctx, e.store)
	if err != nil || len(users) != 2 {
		t.Fatalf("users %+v %v", users, err)
	}
	var mine UserInfo
	for _, x := range users {
		if x.Account == u.id {
			mine = x
		}
	}
	if mine.Email != u.email || mine.Usage.Vaults != 1 || mine.Usage.Entries != 1 || mine.Usage.Bytes == 0 || mine.Created.IsZero() {
		t.Fatalf("user %+v", mine)
	}
	for _, key := range []string{u.id, "YVONNE@example.org"} {
		a, err := FindAccount(ctx, e.store, key)
		if err != nil || a.ID != u.id {
			t.Fatalf("find %q: %v", key, err)
		}
	}
	if _, err := FindAccount(ctx, e.store, "nobody@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("find unknown: %v", err)
	}
	if us, err := Usage(ctx, e.store, u.id); err != nil || us.Vaults != 1 {
		t.Fatalf("usage %+v %v", us, err)
	}
	if err := DeleteAccount(ctx, e.store, u.id); err != nil {
		t.Fatal(err)
	}
	want(t, u.do("GET", api.PathAccount, nil, nil), 401, api.CodeUnauthorized)
	want(t, u.login(""), 401, api.CodeUnauthorized)
	if users, _ := Users(ctx, e.store); len(users) != 1 {
		t.Fatalf("%d users after delete", len(users))
	}
}

// TestServeErrors: Serve returns listener errors; New refuses an
// incomplete configuration.
func TestServeErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store")
	}
	e := newEnv(t)
	if _, err := New(Config{Store: e.store, scryptLogN: testLogN}); err == nil {
		t.Fatal("New without a data directory or certificate")
	}
	srv, err := New(Config{Store: e.store, DataDir: t.TempDir(), scryptLogN: testLogN, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	if err := srv.Serve(context.Background(), ln); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
	var x api.Error
	if err := json.Unmarshal([]byte(`{"code":"a","message":"b","seq":3,"rule":"seq"}`), &x); err != nil || x.Seq != 3 {
		t.Fatal("api.Error fields")
	}
}
