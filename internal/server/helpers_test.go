package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/postgres"
	"github.com/safehold/safehold/internal/server/storage/postgres/pgtest"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

// testLogN makes scrypt cheap in tests (N = 16).
const testLogN = 4

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one server on a loopback HTTPS listener, on a real store (SQLite
// unless the test asks for PostgreSQL).
type env struct {
	t      *testing.T
	srv    *Server
	store  storage.Store
	dir    string
	url    string
	client *http.Client
	logs   *syncBuffer
	clock  *clock
	cancel context.CancelFunc
	done   chan error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "db", "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startEnv(t, st, dir)
}

// newPGEnv is newEnv on PostgreSQL, in a fresh schema (skipped without a
// server; CI=true makes that a failure).
func newPGEnv(t *testing.T) *env {
	t.Helper()
	st, err := postgres.Open(t.Context(), pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startEnv(t, st, t.TempDir())
}

// eachStore runs f as a subtest on a server on SQLite and on one on
// PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPGEnv(t)) })
}

// startEnv starts a server on st with its certificate in dir.
func startEnv(t *testing.T, st storage.Store, dir string) *env {
	t.Helper()
	e := &env{t: t, store: st, dir: dir, logs: &syncBuffer{}, clock: &clock{t: time.Now()}}
	srv, err := New(Config{
		DataDir:    dir,
		Store:      st,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        e.clock.Now,
		scryptLogN: testLogN,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "https://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- srv.Serve(ctx, ln) }()
	e.client = pinnedClient(srv.Fingerprint())
	t.Cleanup(func() {
		// Close the client's connections first: an open HTTP/2
		// connection holds a graceful shutdown for a second.
		e.client.CloseIdleConnections()
		e.stop()
	})
	return e
}

// stop shuts the server down and returns Serve's result (once).
func (e *env) stop() error {
	e.cancel()
	select {
	case err, ok := <-e.done:
		if ok {
			close(e.done)
		}
		return err
	case <-time.After(20 * time.Second):
		e.t.Fatal("server did not shut down")
		return nil
	}
}

// pinnedClient trusts exactly the certificate with fingerprint fp, as the
// real client does.
func pinnedClient(fp string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS13,
				InsecureSkipVerify: true, // replaced by the pin below
				VerifyConnection: func(cs tls.ConnectionState) error {
					if got := Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
						return fmt.Errorf("certificate fingerprint %s, pinned %s", got, fp)
					}
					return nil
				},
			},
			ForceAttemptHTTP2: true,
		},
	}
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   []byte
	err    api.Error
}

// do sends a JSON request (body nil: none) with an optional bearer token
// and decodes a 2xx answer into out.
func (e *env) do(method, path, token string, body, out any) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	return e.raw(method, path, token, "application/json", rd, out)
}

func (e *env) raw(method, path, token, ctype string, body io.Reader, out any) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(api.HeaderAuth, "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	r := resp{status: res.StatusCode, header: res.Header, body: b}
	if res.StatusCode >= 300 {
		if err := json.Unmarshal(b, &r.err); err != nil {
			e.t.Fatalf("%s %s: %d with a non-JSON body %q", method, path, res.StatusCode, b)
		}
		if r.err.Code == "" || r.err.Message == "" {
			e.t.Fatalf("%s %s: %d with an empty error %q", method, path, res.StatusCode, b)
		}
	} else if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return r
}

// want fails the test unless r has the status (and, for errors, code).
func want(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status || code != "" && r.err.Code != code {
		t.Fatalf("got %d %+v (%s), want %d %s", r.status, r.err, r.body, status, code)
	}
}

// newID returns a fresh 26-character id.
func newID(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// user is one test account and one of its devices.
type user struct {
	e        *env
	email    string
	id       string
	kdf      []byte
	loginKey []byte
	device   string
	key      *sign.PrivateKey
	sess     api.Session
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func kdfHeader(t *testing.T) []byte {
	salts, err := kdf.NewSalts(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kdf.Header{Params: kdf.Defaults(), Salts: salts}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// register creates an account; it fails the test on any error.
func (e *env) register(email string) *user {
	e.t.Helper()
	u := &user{e: e, email: email, id: newID(e.t), kdf: kdfHeader(e.t), loginKey: randomBytes(32), device: newID(e.t)}
	r := e.do("POST", api.PathRegister, "", u.registerRequest(), &u.sess)
	want(e.t, r, 200, "")
	if u.sess.Account != u.id || u.sess.AccessToken == "" || u.sess.RefreshToken == "" {
		e.t.Fatalf("register: session %+v", u.sess)
	}
	return u
}

func (u *user) registerRequest() api.RegisterRequest {
	return api.RegisterRequest{
		Email: u.email, Account: u.id, KDF: u.kdf, LoginKey: u.loginKey,
		Document: []byte("sealed account document"),
		Device:   api.DeviceHello{ID: u.device, Platform: "safe/1 test"},
	}
}

// newDevice logs the user in from another device.
func (u *user) newDevice() *user {
	u.e.t.Helper()
	d := *u
	d.device = newID(u.e.t)
	d.key = nil
	r := d.login("")
	want(u.e.t, r, 200, "")
	return &d
}

// login logs this device in (with a TOTP code if not empty), storing the
// session on success.
func (u *user) login(code string) resp {
	u.e.t.Helper()
	var s api.Session
	r := u.e.do("POST", api.PathLogin, "", api.LoginRequest{
		Email: u.email, LoginKey: u.loginKey, TOTP: code,
		Device: api.DeviceHello{ID: u.device, Platform: "safe/1 test"},
	}, &s)
	if r.status == 200 {
		u.sess = s
	}
	return r
}

func (u *user) do(method, path string, body, out any) resp {
	u.e.t.Helper()
	return u.e.do(method, path, u.sess.AccessToken, body, out)
}

// signer returns the device's signing key.
func (u *user) signer() *sign.PrivateKey {
	if u.key == nil {
		k, err := sign.GenerateKey(rand.Reader)
		if err != nil {
			u.e.t.Fatal(err)
		}
		u.key = k
	}
	return u.key
}

// newVault creates a vault and returns its id.
func (u *user) newVault() string {
	u.e.t.Helper()
	v := newID(u.e.t)
	want(u.e.t, u.do("PUT", api.PathVaults+"/"+v, api.VaultPut{Record: []byte("sealed vault record")}, nil), 204, "")
	return v
}

// logWriter builds a vault's log as a client would.
type logWriter struct {
	u     *user
	vault string
	seq   uint64
	head  chain.Hash
}

func (u *user) writer(vault string) *logWriter {
	return &logWriter{u: u, vault: vault, head: vlog.Genesis(vault)}
}

// entry makes the next entry and moves the writer's head.
func (w *logWriter) entry(op byte, item string, rev uint64, payload []byte) api.Entry {
	w.u.e.t.Helper()
	w.seq++
	e := vlog.Entry{Op: op, Seq: w.seq, Time: time.Now().UnixMilli(), Prev: w.head, Revision: rev,
		Vault: w.vault, Item: item, Device: w.u.device}
	if op == vlog.OpPut {
		copy(e.Digest[:], vlog.PayloadDigest(payload))
	}
	body, err := e.Sign(w.u.signer())
	if err != nil {
		w.u.e.t.Fatal(err)
	}
	w.head = vlog.Next(w.head, body)
	return api.Entry{Body: body, Sig: e.Sig, Payload: payload}
}

// custom builds the next entry after f changed its fields, without moving the writer.
func (w *logWriter) custom(f func(e *vlog.Entry), payload []byte) api.Entry {
	w.u.e.t.Helper()
	e := vlog.Entry{Op: vlog.OpPut, Seq: w.seq + 1, Time: time.Now().UnixMilli(), Prev: w.head, Revision: 1,
		Vault: w.vault, Item: newID(w.u.e.t), Device: w.u.device}
	copy(e.Digest[:], vlog.PayloadDigest(payload))
	f(&e)
	body, err := e.Sign(w.u.signer())
	if err != nil {
		w.u.e.t.Fatal(err)
	}
	return api.Entry{Body: body, Sig: e.Sig, Payload: payload}
}

// append posts entries at base and returns the response.
func (w *logWriter) append(base uint64, entries ...api.Entry) resp {
	w.u.e.t.Helper()
	var out api.LogAppended
	return w.u.do("POST", api.PathVaults+"/"+w.vault+"/log", api.LogAppend{Base: base, Entries: entries}, &out)
}

// logPage fetches a page of the log.
func (u *user) logPage(vault string, query string) (api.LogPage, resp) {
	u.e.t.Helper()
	var p api.LogPage
	r := u.do("GET", api.PathVaults+"/"+vault+"/log"+query, nil, &p)
	return p, r
}

// containsAny reports which of the needles occur in hay.
func containsAny(hay string, needles map[string]string) []string {
	var found []string
	for name, n := range needles {
		if n != "" && strings.Contains(hay, n) {
			found = append(found, name)
		}
	}
	return found
}

var _ storage.Store = (*sqlite.Store)(nil)
