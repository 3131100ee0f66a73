package httpremote

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/textsafe"
)

// These tests talk to hand-written handlers to reach what a real server
// does not do on demand: a wrong certificate, expiring tokens, hostile
// error text, rate limits and malformed answers. The conformance suite
// runs against the real server (conformance_test.go).

const testAccount = "0123456789abcdefghjkmnpqrs"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func newTLS(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, Fingerprint(srv.Certificate().Raw)
}

func newClient(t *testing.T, srv *httptest.Server, fp string, opts Options) *Client {
	t.Helper()
	c, err := New(srv.URL, fp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func session(access, refresh string, accessExp time.Time) *api.Session {
	return &api.Session{
		Account: testAccount, AccessToken: access, AccessExpires: accessExp.Unix(),
		RefreshToken: refresh, RefreshExpires: time.Now().Add(time.Hour).Unix(),
	}
}

func TestPinning(t *testing.T) {
	var hits atomic.Int32
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, 200, api.PreloginResponse{KDF: make([]byte, 80)})
	}))

	got, err := Probe(t.Context(), srv.URL)
	if err != nil || got != fp {
		t.Fatalf("Probe = %q, %v; want %q", got, err, fp)
	}
	if len(got) != 64 || strings.ToLower(got) != got {
		t.Errorf("fingerprint %q is not 64 lower-case hex digits", got)
	}

	// The right pin, in the forms people paste.
	for _, pin := range []string{fp, strings.ToUpper(fp), colons(fp)} {
		c := newClient(t, srv, pin, Options{})
		if _, err := c.Prelogin(t.Context(), "a@example.com"); err != nil {
			t.Errorf("Prelogin with pin %q: %v", pin, err)
		}
	}

	// A wrong pin: refused before any request is sent.
	wrong := strings.Repeat("ab", 32)
	before := hits.Load()
	c := newClient(t, srv, wrong, Options{})
	_, err = c.Prelogin(t.Context(), "a@example.com")
	var fe *FingerprintError
	if !errors.As(err, &fe) {
		t.Fatalf("Prelogin with a wrong pin: err = %v, want *FingerprintError", err)
	}
	if !errors.Is(err, ErrFingerprint) || errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("errors.Is(ErrFingerprint) = %v, errors.Is(ErrUnavailable) = %v; want true, false", errors.Is(err, ErrFingerprint), errors.Is(err, remote.ErrUnavailable))
	}
	if fe.Pinned != wrong || fe.Got != fp {
		t.Errorf("FingerprintError = %+v, want pinned %s, got %s", fe, wrong, fp)
	}
	if msg := err.Error(); !strings.Contains(msg, wrong) || !strings.Contains(msg, fp) || !strings.Contains(msg, "--fingerprint") {
		t.Errorf("message %q does not name both fingerprints and what to do", msg)
	}
	if hits.Load() != before {
		t.Errorf("the server received a request despite the wrong pin")
	}
}

func colons(fp string) string {
	var parts []string
	for i := 0; i < len(fp); i += 2 {
		parts = append(parts, fp[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestNewRefuses(t *testing.T) {
	fp := strings.Repeat("0", 64)
	for _, u := range []string{"http://example.com", "ftp://example.com", "https://", "example.com", "https://u:p@example.com", "https://example.com/?q=1", "https://example.com/#f"} {
		if _, err := New(u, fp, Options{}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	for _, f := range []string{"", "abc", strings.Repeat("0", 63), strings.Repeat("g", 64), strings.Repeat("0", 66)} {
		if _, err := New("https://example.com", f, Options{}); err == nil {
			t.Errorf("New with fingerprint %q succeeded", f)
		}
	}
	if _, err := New("https://example.com:8443/prefix/", fp, Options{}); err != nil {
		t.Errorf("New with a port and path prefix: %v", err)
	}
}

// tokenServer is an account API whose access tokens can be made to
// expire; refresh tokens are single-use, as on the real server.
type tokenServer struct {
	mu        sync.Mutex
	access    map[string]bool
	refresh   map[string]bool
	n         int
	refreshes int
	seen      []string // access tokens presented, in order
}

func newTokenServer() *tokenServer {
	return &tokenServer{access: map[string]bool{}, refresh: map[string]bool{"r0": true}}
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case api.PathRefresh:
		var req api.RefreshRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !s.refresh[req.RefreshToken] {
			writeJSON(w, 401, api.Error{Code: api.CodeUnauthorized, Message: "the refresh token is expired or revoked; log in"})
			return
		}
		delete(s.refresh, req.RefreshToken)
		s.n++
		s.refreshes++
		a, rt := fmt.Sprintf("a%d", s.n), fmt.Sprintf("r%d", s.n)
		s.access[a], s.refresh[rt] = true, true
		writeJSON(w, 200, session(a, rt, time.Now().Add(time.Hour)))
	case api.PathLogout:
		writeJSON(w, 401, api.Error{Code: api.CodeUnauthorized, Message: "gone"})
	case api.PathAccount:
		tok := strings.TrimPrefix(r.Header.Get(api.HeaderAuth), "Bearer ")
		s.seen = append(s.seen, tok)
		if !s.access[tok] {
			writeJSON(w, 401, api.Error{Code: api.CodeUnauthorized, Message: "the access token is expired or revoked; refresh or log in"})
			return
		}
		writeJSON(w, 200, api.Account{Account: testAccount, Email: "a@example.com", KDF: make([]byte, 80), Epoch: 1, Document: []byte("d")})
	default:
		http.NotFound(w, r)
	}
}

func (s *tokenServer) stats() (refreshes int, seen []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes, append([]string(nil), s.seen...)
}

func TestRefreshOn401(t *testing.T) {
	ts := newTokenServer()
	srv, fp := newTLS(t, ts)
	var (
		mu    sync.Mutex
		saved []api.Session
	)
	c := newClient(t, srv, fp, Options{
		// The server revoked "old" though the client thinks it valid.
		Session: session("old", "r0", time.Now().Add(time.Hour)),
		OnSession: func(s api.Session) {
			mu.Lock()
			saved = append(saved, s)
			mu.Unlock()
		},
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.Account(t.Context()); err != nil {
				t.Errorf("Account: %v", err)
			}
		})
	}
	wg.Wait()
	if n, _ := ts.stats(); n != 1 {
		t.Errorf("%d refreshes for 10 concurrent refused calls, want 1", n)
	}
	if len(saved) != 1 || saved[0].RefreshToken != "r1" || saved[0].AccessToken != "a1" {
		t.Errorf("OnSession saw %+v, want one session with refresh token r1", saved)
	}
}

func TestRefreshWhenExpired(t *testing.T) {
	ts := newTokenServer()
	srv, fp := newTLS(t, ts)
	c := newClient(t, srv, fp, Options{Session: session("old", "r0", time.Now().Add(-time.Minute))})
	if _, err := c.Account(t.Context()); err != nil {
		t.Fatalf("Account: %v", err)
	}
	if n, seen := ts.stats(); n != 1 || len(seen) != 1 || seen[0] != "a1" {
		t.Errorf("refreshes %d, tokens presented %q; want the expired token never sent", n, seen)
	}
}

func TestRefreshRefused(t *testing.T) {
	ts := newTokenServer()
	ts.refresh = map[string]bool{}
	srv, fp := newTLS(t, ts)
	var saved []api.Session
	c := newClient(t, srv, fp, Options{
		Session:   session("old", "r0", time.Now().Add(time.Hour)),
		OnSession: func(s api.Session) { saved = append(saved, s) },
	})
	_, err := c.Account(t.Context())
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("Account with a dead session: err = %v, want ErrAuth", err)
	}
	if len(saved) != 1 || saved[0] != (api.Session{}) || c.LoggedIn() {
		t.Errorf("OnSession saw %+v, logged in %v; want the session forgotten", saved, c.LoggedIn())
	}
	if _, err := c.Account(t.Context()); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("Account when logged out: %v", err)
	}
}

func TestLogoutForgets(t *testing.T) {
	ts := newTokenServer()
	srv, fp := newTLS(t, ts)
	var saved []api.Session
	c := newClient(t, srv, fp, Options{
		Session:   session("old", "r0", time.Now().Add(time.Hour)),
		OnSession: func(s api.Session) { saved = append(saved, s) },
	})
	if err := c.Logout(t.Context()); err != nil {
		t.Errorf("Logout of an already dead session: %v", err)
	}
	if c.LoggedIn() || len(saved) == 0 || saved[len(saved)-1] != (api.Session{}) {
		t.Errorf("after Logout: logged in %v, sessions %+v", c.LoggedIn(), saved)
	}
}

func TestSanitizedServerText(t *testing.T) {
	evil := "bad \x1b]0;evil\x07request\x1b[2J\x1b[31m red\u202e\u009b1m\x00\x7f\nnext"
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, api.Error{Code: "bad_request\x1b[2J", Message: evil})
	}))
	c := newClient(t, srv, fp, Options{})
	_, err := c.Prelogin(t.Context(), "a@example.com")
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *ServerError", err)
	}
	if want := "bad request red next"; se.Message != want {
		t.Errorf("Message = %q, want %q", se.Message, want)
	}
	msg := err.Error()
	for _, bad := range []string{"\x1b", "evil", "[2J", "\x07", "\u202e", "\u009b", "\x00", "\x7f", "\n"} {
		if strings.Contains(msg, bad) || strings.Contains(se.Code, bad) {
			t.Errorf("error %q still holds %q", msg, bad)
		}
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"title \x1b]0;evil\x07 set", "title  set"},
		{"osc \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end", "osc link end"},
		{"clear\x1b[2J\x1b[H!", "clear!"},
		{"c1 \u009b31mred\u009d0;t\u009c.", "c1 red."},
		{"two-char \x1bc reset", "two-char  reset"},
		{"dangling \x1b", "dangling "},
		{"dangling csi \x1b[12", "dangling csi "},
		{"bidi \u202eevil\u202c \u2066x\u2069 \u200f", "bidi evil x "},
		{"tabs\tand\r\nlines", "tabs and  lines"},
		{"del\x7f nul\x00 bel\a", "del nul bel"},
		{"bad utf8 \xff", "bad utf8 \ufffd"},
		{"ünïcödé ✓", "ünïcödé ✓"},
	} {
		if got := sanitize(tc.in); got != tc.want {
			t.Errorf("sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := sanitize(strings.Repeat("é", 1000))
	if n := len([]rune(long)); n != maxText+1 || !strings.HasSuffix(long, "…") {
		t.Errorf("sanitize of 1000 characters: %d characters", n)
	}
	if got := sanitize(strings.Repeat("x", maxText)); len(got) != maxText {
		t.Errorf("sanitize of exactly %d characters changed it to %d", maxText, len(got))
	}
}

func TestRateLimited(t *testing.T) {
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderRetryAfter, "7")
		writeJSON(w, 429, api.Error{Code: api.CodeRateLimited, Message: "too many failed attempts"})
	}))
	c := newClient(t, srv, fp, Options{})
	err := c.Login(t.Context(), api.LoginRequest{Email: "a@example.com", LoginKey: make([]byte, 32)})
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
		t.Fatalf("err = %v, want *RateLimitError with 7s", err)
	}
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("errors.Is(ErrRateLimited) %v, errors.Is(ErrUnavailable) %v", errors.Is(err, ErrRateLimited), errors.Is(err, remote.ErrUnavailable))
	}
	if !strings.Contains(err.Error(), "wait 7 seconds") {
		t.Errorf("message %q does not say how long to wait", err)
	}
	for h, want := range map[string]time.Duration{"": time.Second, "x": time.Second, "0": time.Second, "99999999": maxRetryAfter} {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   error
		rule   string
	}{
		{409, api.CodeStale, remote.ErrStale, ""},
		{404, api.CodeNotFound, remote.ErrNotFound, ""},
		{409, api.CodeExists, remote.ErrExists, ""},
		{401, api.CodeUnauthorized, remote.ErrAuth, ""},
		{403, api.CodeForbidden, remote.ErrAuth, ""},
		{403, api.CodeForbidden, remote.ErrForbidden, api.RuleAccess},
		{401, api.CodeTOTPRequired, remote.ErrTOTPRequired, ""},
		{503, api.CodeUnavailable, remote.ErrUnavailable, ""},
		{502, "", remote.ErrUnavailable, ""},
		{422, api.CodeInvalidEntry, remote.ErrRefused, ""},
		{500, api.CodeInternal, nil, ""},
	} {
		srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, tc.status, api.Error{Code: tc.code, Message: "m", Head: 3, Rule: tc.rule})
		}))
		c := newClient(t, srv, fp, Options{})
		err := c.Login(t.Context(), api.LoginRequest{Email: "a@example.com"})
		var se *ServerError
		if !errors.As(err, &se) || se.Status != tc.status || se.Head != 3 {
			t.Errorf("%d %s: err = %v", tc.status, tc.code, err)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%d %s: err = %v, want %v", tc.status, tc.code, err, tc.want)
		}
		if tc.want == remote.ErrForbidden && errors.Is(err, remote.ErrAuth) {
			t.Errorf("%d %s rule %s: err = %v also matches ErrAuth", tc.status, tc.code, tc.rule, err)
		}
		if tc.want == nil && se.Unwrap() != nil {
			t.Errorf("%d %s: matches %v", tc.status, tc.code, se.Unwrap())
		}
	}
}

func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New("https://"+addr, strings.Repeat("0", 64), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prelogin(t.Context(), "a@example.com"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Prelogin against a closed port: err = %v, want ErrUnavailable", err)
	}
	if _, err := Probe(t.Context(), "https://"+addr); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Probe against a closed port: err = %v, want ErrUnavailable", err)
	}

	// A server that never answers: the request timeout ends it.
	hang := make(chan struct{})
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer close(hang)
	c = newClient(t, srv, fp, Options{Timeout: 200 * time.Millisecond})
	if _, err := c.Prelogin(t.Context(), "a@example.com"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Prelogin against a hanging server: err = %v, want ErrUnavailable", err)
	}
}

func TestStrictAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field": `{"kdf":"` + strings.Repeat("A", 108) + `","extra":1}`,
		"trailing data": `{"kdf":"` + strings.Repeat("A", 108) + `"} {}`,
		"wrong size":    `{"kdf":"AAAA"}`,
		"not json":      `<html>`,
		"too large":     `{"kdf":"` + strings.Repeat("A", 108) + `","pad":"` + strings.Repeat("A", 1000) + `"}`,
	} {
		srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		}))
		c := newClient(t, srv, fp, Options{})
		c.maxBody = 1000
		if _, err := c.Prelogin(t.Context(), "a@example.com"); err == nil {
			t.Errorf("%s: Prelogin accepted the answer", name)
		}
	}
}

// blobServer answers blob GETs with raw bytes and records PUT bodies.
func blobServer(t *testing.T, get []byte, cutShort bool) (*Client, *[]byte) {
	var put []byte
	srv, fp := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(200)
			w.Write(get)
			if cutShort {
				panic(http.ErrAbortHandler)
			}
		case http.MethodPut:
			var b bytes.Buffer
			if _, err := b.ReadFrom(r.Body); err != nil {
				writeJSON(w, 400, api.Error{Code: api.CodeBadRequest, Message: "truncated"})
				return
			}
			put = b.Bytes()
			w.WriteHeader(204)
		}
	}))
	return newClient(t, srv, fp, Options{Session: session("a", "r", time.Now().Add(time.Hour))}), &put
}

func frame(b []byte, n int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, bytes.Repeat([]byte{7}, n)...)
}

func TestBlobFrames(t *testing.T) {
	const v, it, bl = "v", "i", "b"
	nop := func(int, []byte) error { return nil }
	good := frame(frame(nil, 32), 65568)
	c, _ := blobServer(t, good, false)
	var sizes []int
	if err := c.GetBlob(t.Context(), v, it, bl, func(i int, ch []byte) error { sizes = append(sizes, len(ch)); return nil }); err != nil || len(sizes) != 2 {
		t.Errorf("GetBlob of good frames: %v, sizes %v", err, sizes)
	}
	for name, body := range map[string][]byte{
		"empty":       nil,
		"short frame": frame(nil, 31),
		"long frame":  binary.BigEndian.AppendUint32(nil, 65569),
		"cut length":  good[:len(good)-65568-4+2],
		"cut frame":   good[:len(good)-1],
	} {
		c, _ := blobServer(t, body, false)
		if err := c.GetBlob(t.Context(), v, it, bl, nop); err == nil {
			t.Errorf("GetBlob with %s succeeded", name)
		}
	}
	c, _ = blobServer(t, good[:40], true)
	if err := c.GetBlob(t.Context(), v, it, bl, nop); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("GetBlob cut short by the server: err = %v, want ErrUnavailable", err)
	}

	c, put := blobServer(t, nil, false)
	chunks := func(yield func([]byte, error) bool) {
		_ = yield(bytes.Repeat([]byte{7}, 32), nil) && yield(bytes.Repeat([]byte{7}, 65568), nil)
	}
	if err := c.PutBlob(t.Context(), v, it, bl, chunks); err != nil || !bytes.Equal(*put, good) {
		t.Errorf("PutBlob: %v; body equal %v", err, bytes.Equal(*put, good))
	}
	boom := errors.New("boom")
	var failing iter.Seq2[[]byte, error] = func(yield func([]byte, error) bool) {
		_ = yield(bytes.Repeat([]byte{7}, 40), nil) && yield(nil, boom)
	}
	if err := c.PutBlob(t.Context(), v, it, bl, failing); !errors.Is(err, boom) {
		t.Errorf("PutBlob with a failing source: %v", err)
	}
}

// FuzzSanitize checks that no control, escape or bidi character survives
// and that the result is bounded valid UTF-8.
func FuzzSanitize(f *testing.F) {
	f.Add("bad \x1b]0;evil\x07 \x1b[2J \u202e \u009b1m")
	f.Add(strings.Repeat("x", 400))
	f.Fuzz(func(t *testing.T, s string) {
		out := sanitize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("sanitize(%q) = %q: invalid UTF-8", s, out)
		}
		n := 0
		for _, r := range out {
			n++
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || !textsafe.Printable(string(r)) {
				t.Fatalf("sanitize(%q) = %q keeps %U", s, out, r)
			}
		}
		if n > maxText+1 {
			t.Fatalf("sanitize(%q) has %d characters", s, n)
		}
	})
}
