// Package httpremote is the client of `safe serve`: a remote.Remote over
// HTTPS with the server's certificate pinned by its SHA-256 fingerprint.
//
// The client trusts the server for nothing but transport: the pin keeps
// others out of the connection, and package vault verifies everything the
// server returns. What this package does is speak the API of package api
// carefully: TLS 1.3 only, bounded and strictly decoded answers, server
// text sanitised before it reaches an error, sessions refreshed when they
// expire, and failures mapped onto package remote's errors (a network
// failure is remote.ErrUnavailable; a changed certificate never is).
package httpremote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
)

var _ remote.Remote = (*Client)(nil)

// Timeouts.
const (
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	responseHeaderWait  = 60 * time.Second
	idleConnTimeout     = 90 * time.Second
	// DefaultTimeout bounds one JSON request, a session refresh included.
	DefaultTimeout = 60 * time.Second
	// DefaultBlobIdle bounds how long a blob transfer may make no progress.
	DefaultBlobIdle = 60 * time.Second

	// refreshMargin: an access token this close to its expiry is
	// refreshed before use.
	refreshMargin = 30 * time.Second
	// maxErrorBody bounds the body of an error answer.
	maxErrorBody = 64 << 10
	// maxToken bounds a token the server sends.
	maxToken = 512
	// maxRetryAfter caps a Retry-After the server asks for.
	maxRetryAfter = 24 * time.Hour
)

// Options configure a Client.
type Options struct {
	// Session restores a saved session; nil means not logged in.
	Session *api.Session
	// OnSession is called whenever the session changes: after Register,
	// Login and every refresh with the new session, and with the zero
	// Session after Logout or when the server refuses the refresh token.
	// Persist the refresh token there (it is single-use: the old one stops
	// working at each refresh). It is called synchronously, never
	// concurrently, and must not call the Client.
	OnSession func(api.Session)
	// Timeout bounds one JSON request (0: DefaultTimeout).
	Timeout time.Duration
	// BlobIdle bounds how long a blob upload or download may stall
	// (0: DefaultBlobIdle); a blob transfer has no overall bound but ctx.
	BlobIdle time.Duration
	// Now is the clock for session expiry (nil: time.Now).
	Now func() time.Time
}

// Client is a remote.Remote on a `safe serve` server. Its methods are safe
// for concurrent use.
type Client struct {
	base     *url.URL
	tr       *http.Transport
	hc       *http.Client
	timeout  time.Duration
	blobIdle time.Duration
	now      func() time.Time
	onSess   func(api.Session)
	maxBody  int64 // api.MaxJSONBody; lowered by tests

	mu   sync.Mutex
	sess *api.Session // nil: not logged in

	refreshMu sync.Mutex // one refresh at a time; held while calling onSess
}

// New returns a client of the server at baseURL (https://host[:port]) whose
// certificate has the given fingerprint (64 hex digits, as `safe serve`
// prints it). It does not connect.
func New(baseURL, fingerprint string, opts Options) (*Client, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	pin, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment, // a proxy sees the host name only: the pin covers the tunnel
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:        pinnedConfig(u.Hostname(), pin),
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  responseHeaderWait,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}
	c := &Client{
		base: u,
		tr:   tr,
		hc: &http.Client{
			Transport: tr,
			// The API never redirects; following one could carry the
			// token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:  opts.Timeout,
		blobIdle: opts.BlobIdle,
		now:      opts.Now,
		onSess:   opts.OnSession,
		maxBody:  api.MaxJSONBody,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.blobIdle <= 0 {
		c.blobIdle = DefaultBlobIdle
	}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.Session != nil {
		s := *opts.Session
		c.sess = &s
	}
	return c, nil
}

// Close closes idle connections. The session is kept.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// LoggedIn reports whether the client holds a session (it may have expired
// on the server).
func (c *Client) LoggedIn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// url returns the address of an API path.
func (c *Client) url(path string) string {
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.Path = c.base.Path + p
	u.RawQuery = q
	return u.String()
}

// validID reports whether s is 1..64 characters of [0-9a-z]: ids go into
// URL paths, so nothing else may pass.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func checkIDs(ids ...string) error {
	for i := 0; i+1 < len(ids); i += 2 {
		if !validID(ids[i+1]) {
			return fmt.Errorf("invalid %s id %q (want 1..64 characters of 0-9 a-z)", ids[i], ids[i+1])
		}
	}
	return nil
}

// setSession stores s (nil: logged out) and tells the owner. The caller
// holds refreshMu.
func (c *Client) setSessionLocked(s *api.Session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	if c.onSess != nil {
		if s == nil {
			c.onSess(api.Session{})
		} else {
			c.onSess(*s)
		}
	}
}

func (c *Client) setSession(s *api.Session) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.setSessionLocked(s)
}

// checkSession validates a session the server sent.
func checkSession(s *api.Session) error {
	switch {
	case !validID(s.Account):
		return errors.New("the server sent a session with an invalid account id")
	case s.AccessToken == "" || len(s.AccessToken) > maxToken || !printable(s.AccessToken),
		s.RefreshToken == "" || len(s.RefreshToken) > maxToken || !printable(s.RefreshToken):
		return errors.New("the server sent a malformed session token")
	}
	return nil
}

var errNotLoggedIn = fmt.Errorf("%w: not logged in to the server; run `safe account login`", remote.ErrAuth)

// accessToken returns a usable access token, refreshing an expired one.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return "", errNotLoggedIn
	}
	if c.now().Add(refreshMargin).Unix() >= s.AccessExpires {
		return c.refresh(ctx, s.AccessToken)
	}
	return s.AccessToken, nil
}

// refresh exchanges the refresh token for a new session, unless another
// goroutine already replaced the access token `failed`.
func (c *Client) refresh(ctx context.Context, failed string) (string, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return "", errNotLoggedIn
	}
	if s.AccessToken != failed && c.now().Add(refreshMargin).Unix() < s.AccessExpires {
		return s.AccessToken, nil
	}
	if c.now().Unix() >= s.RefreshExpires {
		c.setSessionLocked(nil)
		return "", fmt.Errorf("%w: the session expired; run `safe account login`", remote.ErrAuth)
	}
	var ns api.Session
	err := c.call(ctx, http.MethodPost, api.PathRefresh, api.RefreshRequest{RefreshToken: s.RefreshToken}, &ns, false)
	if err != nil {
		if errors.Is(err, remote.ErrAuth) {
			c.setSessionLocked(nil)
		}
		return "", fmt.Errorf("renew the session: %w", err)
	}
	if err := checkSession(&ns); err != nil {
		return "", err
	}
	if ns.Account != s.Account {
		return "", fmt.Errorf("the server renewed the session for another account (%s, not %s)", sanitize(ns.Account), s.Account)
	}
	c.setSessionLocked(&ns)
	return ns.AccessToken, nil
}

// call sends a JSON request (in may be nil) and decodes a JSON answer into
// out (nil: none expected). With auth it sends the access token and, if
// the server refuses it, refreshes the session once and retries.
func (c *Client) call(ctx context.Context, method, path string, in, out any, auth bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		if len(body) > api.MaxJSONBody {
			return fmt.Errorf("the request is %d bytes, more than the %d the server accepts", len(body), api.MaxJSONBody)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tok := ""
	if auth {
		var err error
		if tok, err = c.accessToken(ctx); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		resp, err := c.send(ctx, method, path, rd, int64(len(body)), "application/json", tok)
		if err != nil {
			return err
		}
		err = c.finish(ctx, method, path, resp, out)
		if auth && attempt == 0 && c.tokenRefused(err) {
			if tok, err = c.refresh(ctx, tok); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// tokenRefused reports a 401 that a new access token may cure.
func (c *Client) tokenRefused(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized && se.Code == api.CodeUnauthorized
}

// send sends one request. body may be nil; size -1 means unknown.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, size int64, ctype, tok string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json, application/octet-stream")
	req.Header.Set("User-Agent", "safehold")
	if tok != "" {
		req.Header.Set(api.HeaderAuth, "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.netError(ctx, method, path, err)
	}
	return resp, nil
}

// netError maps a transport failure. A pin mismatch stays itself (sync
// must stop); a cancelled caller gets its context's error; anything else
// means the server cannot be reached now.
func (c *Client) netError(ctx context.Context, method, path string, err error) error {
	var fe *FingerprintError
	if errors.As(err, &fe) {
		return fe
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in our message already
	}
	if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", method, path, cerr)
	}
	return fmt.Errorf("%w: %s %s at %s: %v", remote.ErrUnavailable, method, path, c.base.Host, err)
}

// finish reads a JSON answer and closes it.
func (c *Client) finish(ctx context.Context, method, path string, resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return c.netError(ctx, method, path, err)
	}
	if int64(len(b)) > c.maxBody {
		return fmt.Errorf("%s %s: the server's answer is larger than %d bytes", method, path, c.maxBody)
	}
	if out == nil {
		return nil
	}
	if err := decodeStrict(b, out); err != nil {
		return fmt.Errorf("%s %s: the server's answer does not match the API (%v); is the address a Safehold server of this version?", method, path, err)
	}
	return nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// anything after the value.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// responseError reads a non-2xx answer (the caller closes the body) and
// maps it.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var ae api.Error
	if err := decodeStrict(b, &ae); err != nil {
		ae = api.Error{}
	}
	msg := sanitize(ae.Message)
	if resp.StatusCode == http.StatusTooManyRequests || ae.Code == api.CodeRateLimited {
		return &RateLimitError{RetryAfter: retryAfter(resp.Header.Get(api.HeaderRetryAfter)), Message: msg}
	}
	se := &ServerError{
		Status: resp.StatusCode, Code: sanitize(ae.Code), Message: msg,
		Head: ae.Head, Epoch: ae.Epoch, Seq: ae.Seq, Rule: sanitize(ae.Rule),
	}
	switch {
	case ae.Code == api.CodeStale:
		se.kind = remote.ErrStale
	case ae.Code == api.CodeNotFound:
		se.kind = remote.ErrNotFound
	case ae.Code == api.CodeExists:
		se.kind = remote.ErrExists
	case ae.Code == api.CodeForbidden && ae.Rule == api.RuleAccess:
		// The organisation's log gives the caller no (or not enough)
		// access; a 403 without the rule is about the session.
		se.kind = remote.ErrForbidden
	case ae.Code == api.CodeUnauthorized, ae.Code == api.CodeForbidden:
		se.kind = remote.ErrAuth
	case ae.Code == api.CodeTOTPRequired:
		se.kind = remote.ErrTOTPRequired
	case ae.Code == api.CodeInvalidEntry:
		se.kind = remote.ErrRefused
	case ae.Code == api.CodeUnavailable,
		resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable,
		resp.StatusCode == http.StatusGatewayTimeout:
		se.kind = remote.ErrUnavailable
	}
	return se
}

// retryAfter parses Retry-After seconds, capped; a missing or malformed
// value means one second.
func retryAfter(h string) time.Duration {
	n, err := strconv.ParseUint(h, 10, 32)
	if err != nil || n == 0 {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// Prelogin returns the account's 80-byte KDF header. The server answers
// for unknown addresses too (with a made-up header).
func (c *Client) Prelogin(ctx context.Context, email string) ([]byte, error) {
	var out api.PreloginResponse
	if err := c.call(ctx, http.MethodPost, api.PathPrelogin, api.PreloginRequest{Email: email}, &out, false); err != nil {
		return nil, fmt.Errorf("prelogin: %w", err)
	}
	if len(out.KDF) != kdf.HeaderSize {
		return nil, fmt.Errorf("prelogin: the server sent a %d-byte KDF header, want %d", len(out.KDF), kdf.HeaderSize)
	}
	return out.KDF, nil
}

// Register creates the account and logs its first device in.
func (c *Client) Register(ctx context.Context, r api.RegisterRequest) error {
	var s api.Session
	if err := c.call(ctx, http.MethodPost, api.PathRegister, r, &s, false); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if err := checkSession(&s); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	c.setSession(&s)
	return nil
}

// Login logs a device in, replacing any session the client held.
func (c *Client) Login(ctx context.Context, r api.LoginRequest) error {
	var s api.Session
	if err := c.call(ctx, http.MethodPost, api.PathLogin, r, &s, false); err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	if err := checkSession(&s); err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	c.setSession(&s)
	return nil
}

// Logout ends the session on the server and forgets it here, even if the
// server cannot be told (the error says so; the session then expires on
// its own).
func (c *Client) Logout(ctx context.Context) error {
	err := c.call(ctx, http.MethodPost, api.PathLogout, nil, nil, true)
	c.setSession(nil)
	if err != nil && !errors.Is(err, remote.ErrAuth) {
		return fmt.Errorf("log out (the session is forgotten here but stays valid on the server until it expires): %w", err)
	}
	return nil
}

// Account returns the account's KDF header, document and epoch.
func (c *Client) Account(ctx context.Context) (api.Account, error) {
	var a api.Account
	if err := c.call(ctx, http.MethodGet, api.PathAccount, nil, &a, true); err != nil {
		return api.Account{}, fmt.Errorf("read account: %w", err)
	}
	return a, nil
}

// UpdateAccount replaces the document if u.Base is the current epoch.
func (c *Client) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	var a api.Account
	if err := c.call(ctx, http.MethodPut, api.PathAccount, u, &a, true); err != nil {
		return 0, fmt.Errorf("update account: %w", err)
	}
	if a.Epoch != u.Base+1 {
		return 0, fmt.Errorf("update account: the server moved the document to epoch %d, not %d", a.Epoch, u.Base+1)
	}
	return a.Epoch, nil
}

// Vaults lists the account's vaults with their heads.
func (c *Client) Vaults(ctx context.Context) ([]api.Vault, error) {
	var vs api.Vaults
	if err := c.call(ctx, http.MethodGet, api.PathVaults, nil, &vs, true); err != nil {
		return nil, fmt.Errorf("list vaults: %w", err)
	}
	return vs.Vaults, nil
}

// PutVault creates a vault or replaces its record.
func (c *Client) PutVault(ctx context.Context, vault string, record []byte) error {
	if err := checkIDs("vault", vault); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodPut, api.PathVaults+"/"+vault, api.VaultPut{Record: record}, nil, true); err != nil {
		return fmt.Errorf("put vault %s: %w", vault, err)
	}
	return nil
}

// Pull returns the entries after since (at most api.MaxPageLimit; the
// server may send fewer) and the head.
func (c *Client) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	if err := checkIDs("vault", vault); err != nil {
		return api.LogPage{}, err
	}
	var p api.LogPage
	path := fmt.Sprintf("%s/%s/log?since=%d&limit=%d", api.PathVaults, vault, since, api.MaxPageLimit)
	if err := c.call(ctx, http.MethodGet, path, nil, &p, true); err != nil {
		return api.LogPage{}, fmt.Errorf("pull vault %s: %w", vault, err)
	}
	if len(p.Entries) > api.MaxPageLimit {
		return api.LogPage{}, fmt.Errorf("pull vault %s: the server sent %d entries, more than %d", vault, len(p.Entries), api.MaxPageLimit)
	}
	return p, nil
}

// Push appends entries base+1.. if base is the head (at most
// api.MaxAppend entries: one push is one atomic append).
func (c *Client) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	if err := checkIDs("vault", vault); err != nil {
		return 0, err
	}
	if len(entries) == 0 || len(entries) > api.MaxAppend {
		return 0, fmt.Errorf("push vault %s: %d entries (want 1..%d per push)", vault, len(entries), api.MaxAppend)
	}
	var out api.LogAppended
	if err := c.call(ctx, http.MethodPost, api.PathVaults+"/"+vault+"/log", api.LogAppend{Base: base, Entries: entries}, &out, true); err != nil {
		return 0, fmt.Errorf("push vault %s: %w", vault, err)
	}
	if want := base + uint64(len(entries)); out.Head != want {
		return 0, fmt.Errorf("push vault %s: the server reports head %d after the append, want %d", vault, out.Head, want)
	}
	return out.Head, nil
}

// AccountIfChanged is Account for a client that has the document of epoch
// known: when that is still the current epoch, the answer carries no
// document (remote.ConditionalAccount).
func (c *Client) AccountIfChanged(ctx context.Context, known uint64) (api.Account, error) {
	var a api.Account
	path := api.PathAccount + "?" + api.QueryKnownEpoch + "=" + strconv.FormatUint(known, 10)
	if err := c.call(ctx, http.MethodGet, path, nil, &a, true); err != nil {
		return api.Account{}, fmt.Errorf("read account: %w", err)
	}
	return a, nil
}
