// Package server is `safe serve`: the HTTP/JSON sync server (docs/api.md).
//
// The server stores only what package storage lists: ciphertexts, signed log
// entries and the metadata it must read. It authenticates devices (login key
// verifier, sessions, optional TOTP), keeps each vault's log append-only and
// hash-chained, and refuses stale writes. It does not verify log-entry
// signatures: clients do, because a client never trusts the server anyway
// (docs/design.md, Sync). What the server checks of an entry — sequence,
// chain, revision rules, payload digest, writing device — keeps an honest
// server's log well-formed and stops one device from writing as another.
//
// For organisations (orgs.go, orgstate.go) the server replays each log of
// signed statements with package org, the code clients run, and enforces
// what it says: who may read and append to the log, and who may read and
// write its shared vaults. Clients never rely on this either.
//
// The server is stateless between requests: every piece of state lives in
// the Store, so several processes may serve one PostgreSQL database. The
// one thing kept in memory, replayed organisation states, is a cache used
// only at exactly the head the Store reports.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
)

// Timeouts and limits of the HTTP server. Blob transfers extend their own
// deadlines frame by frame (blobs.go), so the read and write timeouts bound
// one JSON request, not one attachment.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10

	defaultShutdownTimeout = 15 * time.Second
	defaultScryptWorkers   = 4
)

// Config configures a Server.
type Config struct {
	// Addr is the address ListenAndServe listens on, e.g. "127.0.0.1:8443".
	Addr string
	// DataDir holds the self-signed certificate (tls.pem) made on first
	// start. It is not used when CertFile and KeyFile are set.
	DataDir string
	// Store is the persistence; the Server does not close it.
	Store storage.Store
	// CertFile and KeyFile are an operator-supplied certificate chain and
	// key (PEM). Both or neither.
	CertFile, KeyFile string
	// Logger receives one line per request and server-side errors. It
	// never receives a secret, a token or a ciphertext. Nil: slog.Default.
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context ends (0: 15 s).
	ShutdownTimeout time.Duration
	// ScryptWorkers bounds how many login-key hashes run at once; each
	// takes 32 MiB (0: 4).
	ScryptWorkers int

	// scryptLogN lowers the verifier cost in tests (0: verifierLogN).
	scryptLogN uint8
}

// Server serves the sync API. Create it with New.
type Server struct {
	store    storage.Store
	log      *slog.Logger
	now      func() time.Time
	tls      *tls.Config
	fp       string
	addr     string
	shutdown time.Duration
	handler  http.Handler
	metrics  *metrics

	logN   uint8
	scrypt chan struct{} // semaphore of running scrypt computations
	dummy  []byte        // verifier of a random key, for unknown accounts

	secretMu sync.Mutex
	secret   []byte

	orgs orgCache // replayed organisation states (orgstate.go)

	draining atomic.Bool
}

// New checks cfg, loads or makes the TLS certificate and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store configured")
	}
	s := &Server{
		store:    cfg.Store,
		log:      cfg.Logger,
		now:      cfg.Now,
		addr:     cfg.Addr,
		shutdown: cfg.ShutdownTimeout,
		logN:     cfg.scryptLogN,
		metrics:  newMetrics(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.shutdown <= 0 {
		s.shutdown = defaultShutdownTimeout
	}
	if s.logN == 0 {
		s.logN = verifierLogN
	}
	workers := cfg.ScryptWorkers
	if workers <= 0 {
		workers = defaultScryptWorkers
	}
	s.scrypt = make(chan struct{}, workers)

	var (
		cert tls.Certificate
		err  error
	)
	switch {
	case cfg.CertFile != "" || cfg.KeyFile != "":
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("server: a certificate needs both a certificate file and a key file")
		}
		cert, s.fp, err = LoadCert(cfg.CertFile, cfg.KeyFile)
	case cfg.DataDir != "":
		cert, s.fp, err = LoadOrCreateCert(cfg.DataDir)
	default:
		return nil, errors.New("server: no data directory and no certificate configured")
	}
	if err != nil {
		return nil, err
	}
	s.tls = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}

	s.dummy, err = s.newDummyVerifier()
	if err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Fingerprint is the lower-case hex SHA-256 of the certificate the server
// presents, which clients pin.
func (s *Server) Fingerprint() string { return s.fp }

// TLSConfig returns a copy of the server's TLS configuration (TLS 1.3 only).
func (s *Server) TLSConfig() *tls.Config { return s.tls.Clone() }

// Handler is the API without TLS, for embedding behind another listener.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on Config.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.addr == "" {
		return errors.New("server: no listen address configured")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTPS on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish within the shutdown
// timeout and answers 503 to new requests on open connections. It closes
// ln. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls.Clone(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()

	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", serr)
	}
	if err != nil {
		hs.Close()
		return fmt.Errorf("server: shutdown: in-flight requests did not finish in %s: %w", s.shutdown, err)
	}
	return nil
}

// endpoint is one route of the API. docs/api.md has one heading per
// endpoint; api_doc_test.go checks that the two lists agree.
type endpoint struct {
	method, pattern string
	handler         http.Handler
}

// endpoints lists every route the server serves.
func (s *Server) endpoints() []endpoint {
	const get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	return []endpoint{
		{get, api.PathHealth, http.HandlerFunc(s.handleHealth)},
		{get, api.PathMetrics, http.HandlerFunc(s.metrics.serveHTTP)},

		{post, api.PathPrelogin, s.public(s.handlePrelogin)},
		{post, api.PathRegister, s.public(s.handleRegister)},
		{post, api.PathLogin, s.public(s.handleLogin)},
		{post, api.PathRefresh, s.public(s.handleRefresh)},
		{post, api.PathLogout, s.authed(s.handleLogout)},

		{get, api.PathAccount, s.authed(s.handleAccountGet)},
		{put, api.PathAccount, s.authed(s.handleAccountPut)},

		{post, api.Path2FASetup, s.authed(s.handleTOTPSetup)},
		{post, api.Path2FAEnable, s.authed(s.handleTOTPEnable)},
		{post, api.Path2FADisable, s.authed(s.handleTOTPDisable)},

		{get, api.PathDevices, s.authed(s.handleDevices)},
		{del, api.PathDevices + "/{device}", s.authed(s.handleDeviceRevoke)},
		{get, api.PathLogins, s.authed(s.handleLogins)},

		{get, api.PathVaults, s.authed(s.handleVaults)},
		{put, api.PathVaults + "/{vault}", s.authed(s.handleVaultPut)},
		{get, api.PathVaults + "/{vault}/log", s.authed(s.handleLogGet)},
		{post, api.PathVaults + "/{vault}/log", s.authed(s.handleLogAppend)},
		{put, api.PathVaults + "/{vault}/blobs/{item}/{blob}", s.authed(s.handleBlobPut)},
		{get, api.PathVaults + "/{vault}/blobs/{item}/{blob}", s.authed(s.handleBlobGet)},

		{get, api.PathOrgs, s.authed(s.handleOrgs)},
		{post, api.PathOrgs, s.authed(s.handleOrgCreate)},
		{del, api.PathOrgs + "/{org}", s.authed(s.handleOrgDelete)},
		{get, api.PathOrgs + "/{org}/log", s.authed(s.handleOrgLogGet)},
		{post, api.PathOrgs + "/{org}/log", s.authed(s.handleOrgAppend)},
		{get, api.PathOrgs + "/{org}/vaults", s.authed(s.handleOrgVaults)},
		{put, api.PathOrgs + "/{org}/vaults/{vault}", s.authed(s.handleOrgVaultPut)},
	}
}

// routes builds the handler tree.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, e := range s.endpoints() {
		mux.Handle(e.method+" "+e.pattern, e.handler)
	}
	return s.observe(mux)
}

// observe wraps every request: draining, panics, JSON for the mux's own
// 404/405, metrics and one log line.
func (s *Server) observe(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, pattern := mux.Handler(r)
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.inFlight.Add(1)
		rw := &responseWriter{ResponseWriter: w, unmatched: pattern == ""}
		defer func() {
			s.metrics.inFlight.Add(-1)
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					s.finish(r, route, rw, start)
					panic(v)
				}
				s.log.Error("panic in handler", "route", route, "panic", fmt.Sprint(v))
				if !rw.wrote {
					writeError(rw, errInternal)
				}
			}
			s.finish(r, route, rw, start)
		}()
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if s.draining.Load() {
			h.Set("Connection", "close")
			writeError(rw, &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "the server is shutting down; retry shortly"})
			return
		}
		mux.ServeHTTP(rw, r)
	})
}

// finish records metrics and writes the request's log line: method, route
// pattern, status, size and duration. Never the raw path's query, a body or
// a header.
func (s *Server) finish(r *http.Request, route string, rw *responseWriter, start time.Time) {
	d := time.Since(start)
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.observe(route, r.Method, status, d)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", rw.bytes),
		slog.Duration("duration", d),
		slog.String("addr", clientAddr(r)),
	)
}

// responseWriter remembers the status and size, and turns the mux's
// plain-text 404 and 405 into JSON errors.
type responseWriter struct {
	http.ResponseWriter
	status    int
	bytes     int64
	wrote     bool
	unmatched bool // the mux found no pattern: its own 404/405 comes
	swallow   bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
	if w.unmatched && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		w.swallow = true
		e := api.Error{Code: api.CodeNotFound, Message: "no such endpoint"}
		if code == http.StatusMethodNotAllowed {
			e = api.Error{Code: api.CodeBadRequest, Message: "method not allowed on this endpoint"}
		}
		writeJSONStatus(w.ResponseWriter, code, e)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handleHealth answers 200 "ok" when the store answers a cheap read.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Throttle(ctx, "health"); err != nil {
		s.log.Error("health check: store", "err", err)
		writeError(w, &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "the store does not answer"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// serverSecret returns the store's secret, read once.
func (s *Server) serverSecret(ctx context.Context) ([]byte, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	if s.secret != nil {
		return s.secret, nil
	}
	sec, err := s.store.Secret(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the server secret: %w", err)
	}
	if len(sec) < 32 {
		return nil, fmt.Errorf("the server secret is %d bytes, want 32", len(sec))
	}
	s.secret = sec
	return sec, nil
}
