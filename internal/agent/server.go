package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Handler executes requests. The server has already checked the peer, the
// protocol version and the framing; req.Op is a valid op name other than
// "hello" and files holds exactly req.Files descriptors.
//
// Contract:
//   - The result is encoded with encoding/json (nil means no result); it must
//     encode to less than MaxFrame bytes.
//   - An error of type *Error (or wrapping one) is sent to the client as is,
//     so its code, message and hint must not contain secrets. Any other error
//     is logged and the client receives code "internal" with a generic
//     message.
//   - The server closes files after Handle returns; a handler that needs a
//     descriptor longer duplicates it.
//   - Unless Options.Concurrent is set, calls are serialised: Handle and
//     OnIdle never run at the same time.
//   - ctx is cancelled when a shutdown gives up waiting.
//   - A handler must not call Server.Shutdown synchronously (Shutdown waits
//     for running handlers): start it in a goroutine.
type Handler interface {
	Handle(ctx context.Context, req Request, files []*os.File) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Request, files []*os.File) (any, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, req Request, files []*os.File) (any, error) {
	return f(ctx, req, files)
}

// Defaults for Options.
const (
	DefaultIdleTimeout = 15 * time.Minute
	DefaultMaxConns    = 32
	// HandshakeTimeout bounds the time between accepting a connection and
	// receiving its hello.
	HandshakeTimeout = 5 * time.Second
	// writeTimeout bounds the time to write one response.
	writeTimeout = 10 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("agent: server closed")

// Options configure a Server. The zero value is usable.
type Options struct {
	// IdleTimeout is how long the server waits without a request that
	// resets the timer before it calls OnIdle. Zero means
	// DefaultIdleTimeout; negative disables the timer.
	IdleTimeout time.Duration
	// OnIdle is called once each time the idle timeout expires (the engine
	// forgets its keys). It runs with the handler lock held. The timer is
	// re-armed by the next resetting request.
	OnIdle func()
	// PassiveOps lists the ops that do not reset the idle timer (for
	// example "status"). Hello never resets it.
	PassiveOps []string
	// Concurrent lets requests from different connections run the handler
	// at the same time. By default they are serialised by one mutex.
	Concurrent bool
	// CheckPeer decides whether a connecting process may talk to the agent.
	// Nil means SameUser.
	CheckPeer func(Peer) error
	// MaxConns bounds simultaneous connections; zero means DefaultMaxConns.
	MaxConns int
	// Logger receives connection events, op names and error codes, never
	// arguments or results. Nil discards.
	Logger *slog.Logger
}

// Server serves a Handler on a Listener.
type Server struct {
	h         Handler
	opts      Options
	passive   map[string]bool
	log       *slog.Logger
	handlerMu sync.Mutex
	idle      *idleTimer

	baseCtx context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	l       *Listener
	conns   map[*net.UnixConn]struct{}
	closing bool
	done    chan struct{} // closed when Shutdown begins
	wg      sync.WaitGroup
}

// NewServer returns a server for h.
func NewServer(h Handler, opts Options) *Server {
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.CheckPeer == nil {
		opts.CheckPeer = SameUser
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		h:       h,
		opts:    opts,
		passive: map[string]bool{opHello: true},
		log:     log,
		conns:   map[*net.UnixConn]struct{}{},
		done:    make(chan struct{}),
	}
	for _, op := range opts.PassiveOps {
		s.passive[op] = true
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts connections on l until Shutdown and returns ErrServerClosed
// then. It takes ownership of l. The idle timer starts now.
func (s *Server) Serve(l *Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.l != nil {
		s.mu.Unlock()
		return errors.New("agent: Serve called twice")
	}
	s.l = l
	if s.opts.IdleTimeout > 0 {
		s.idle = newIdleTimer(s.opts.IdleTimeout, s.fireIdle)
	}
	s.mu.Unlock()

	var tempDelay time.Duration
	for {
		c, err := l.accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off instead of spinning.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.log.Warn("agent: accept", "err", err)
			select {
			case <-time.After(tempDelay):
			case <-s.done:
				return ErrServerClosed
			}
			continue
		}
		tempDelay = 0
		if !s.track(c) {
			continue
		}
		go s.serveConn(c)
	}
}

// track registers c; it refuses it when closing or over MaxConns.
func (s *Server) track(c *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		c.Close()
		return false
	}
	if len(s.conns) >= s.opts.MaxConns {
		s.log.Warn("agent: too many connections", "max", s.opts.MaxConns)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, Response{Error: &Error{Code: CodeBusy, Message: "the agent has too many open connections"}})
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *net.UnixConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// setReadDeadline sets c's read deadline unless the server is shutting down
// (Shutdown has set it to the past and that must stick). It reports whether
// the connection may keep reading.
func (s *Server) setReadDeadline(c *net.UnixConn, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	c.SetReadDeadline(t)
	return true
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer s.untrack(c)
	peer, err := peerCred(c)
	if err == nil {
		err = s.opts.CheckPeer(peer)
	}
	if err != nil {
		s.log.Warn("agent: connection refused", "peer_pid", peer.PID, "peer_uid", peer.UID, "err", err)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, Response{Error: &Error{Code: CodePeerRefused, Message: "the agent refuses connections from this user"}})
		return
	}
	r := newFDReader(c)
	defer r.discard()

	if !s.setReadDeadline(c, time.Now().Add(HandshakeTimeout)) {
		return
	}
	if !s.handshake(c, r) {
		return
	}
	for {
		if !s.setReadDeadline(c, time.Time{}) {
			return
		}
		payload, err := ReadFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
				s.log.Info("agent: bad frame", "peer_pid", peer.PID, "err", err)
				s.writeError(c, 0, CodeBadRequest, "malformed frame")
			}
			return
		}
		req, err := DecodeRequest(payload)
		if err != nil || req.Op == opHello || len(r.fds) != req.Files {
			if err == nil {
				err = fmt.Errorf("op %q or %d files instead of %d", req.Op, len(r.fds), req.Files)
			}
			s.log.Info("agent: bad request", "peer_pid", peer.PID, "err", err)
			s.writeError(c, req.ID, CodeBadRequest, "malformed request")
			return
		}
		files := r.take()
		resp := s.call(req, files)
		closeFiles(files)
		if err := s.write(c, resp); err != nil {
			return
		}
	}
}

// handshake reads and answers the hello. It reports whether to go on.
func (s *Server) handshake(c *net.UnixConn, r *fdReader) bool {
	payload, err := ReadFrame(r)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.writeError(c, 0, CodeBadRequest, "malformed frame")
		}
		return false
	}
	req, err := DecodeRequest(payload)
	if err != nil || len(r.fds) != 0 || req.Files != 0 {
		s.writeError(c, 0, CodeBadRequest, "malformed hello")
		return false
	}
	if req.Op != opHello {
		s.writeError(c, req.ID, CodeHelloRequired, "the first request must be hello")
		return false
	}
	var args helloArgs
	if err := DecodeArgs(req.Args, &args); err != nil {
		s.writeError(c, req.ID, CodeBadRequest, "malformed hello")
		return false
	}
	if args.Version != ProtocolVersion {
		s.write(c, Response{ID: req.ID, Error: &Error{
			Code:    CodeVersionMismatch,
			Message: fmt.Sprintf("the agent speaks protocol version %d, the client %d", ProtocolVersion, args.Version),
			Hint:    "stop the running agent so that the current version starts",
		}})
		return false
	}
	res, _ := json.Marshal(helloResult{Version: ProtocolVersion, PID: os.Getpid()})
	return s.write(c, Response{ID: req.ID, Result: res}) == nil
}

type helloArgs struct {
	Version int `json:"version"`
}

type helloResult struct {
	Version int `json:"version"`
	PID     int `json:"pid"`
}

// call runs the handler for one request and builds the response.
func (s *Server) call(req Request, files []*os.File) Response {
	passive := s.passive[req.Op]
	if !passive && s.idle != nil {
		s.idle.begin()
		defer s.idle.end()
	}
	if !s.opts.Concurrent {
		s.handlerMu.Lock()
		defer s.handlerMu.Unlock()
	}
	start := time.Now()
	result, err := s.invoke(req, files)
	resp := Response{ID: req.ID}
	if err == nil && result != nil {
		resp.Result, err = json.Marshal(result)
		if err == nil && len(resp.Result) > MaxFrame-64 {
			err = &Error{Code: CodeTooLarge, Message: "the response is too large"}
		}
		if err != nil {
			resp.Result = nil
		}
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && validOp(e.Code) {
			resp.Error = e
		} else {
			s.log.Error("agent: request failed", "op", req.Op, "id", req.ID, "err", err)
			resp.Error = &Error{Code: CodeInternal, Message: "internal error in the agent", Hint: "see the agent log"}
		}
	}
	code := ""
	if resp.Error != nil {
		code = resp.Error.Code
	}
	s.log.Debug("agent: request", "op", req.Op, "id", req.ID, "files", len(files), "code", code, "duration", time.Since(start))
	return resp
}

func (s *Server) invoke(req Request, files []*os.File) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			// The panic value may hold data from the request: do not log it.
			result, err = nil, errors.New("handler panicked")
		}
	}()
	return s.h.Handle(s.baseCtx, req, files)
}

func (s *Server) fireIdle(it *idleTimer) {
	if !s.opts.Concurrent {
		s.handlerMu.Lock()
		defer s.handlerMu.Unlock()
	}
	// Re-check under the handler lock: a request may have begun meanwhile.
	if !it.expire() {
		return
	}
	s.log.Info("agent: idle timeout")
	if s.opts.OnIdle != nil {
		s.opts.OnIdle()
	}
}

func (s *Server) writeError(c *net.UnixConn, id uint64, code, msg string) {
	s.write(c, Response{ID: id, Error: &Error{Code: code, Message: msg}})
}

func (s *Server) write(c *net.UnixConn, resp Response) error {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writeResponse(c, resp)
}

func writeResponse(w io.Writer, resp Response) error {
	b, err := EncodeResponse(resp)
	if err != nil {
		return err
	}
	return WriteFrame(w, b)
}

// Shutdown stops the server gracefully: it closes the listener (removing
// the socket), lets running requests finish and answer, and closes every
// connection. If ctx ends first it closes the connections, cancels the
// handlers' context and returns ctx's error. OnIdle is not called.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return s.wait(ctx)
	}
	s.closing = true
	close(s.done)
	if s.idle != nil {
		s.idle.stop()
	}
	var err error
	if s.l != nil {
		err = s.l.Close()
	}
	// Wake connections blocked in a read; one that is running a request
	// finishes it, writes the response, then fails its next read.
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	if werr := s.wait(ctx); werr != nil {
		return werr
	}
	return err
}

func (s *Server) wait(ctx context.Context) error {
	idle := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// idleTimer tracks activity and calls fire after timeout without any. It is
// armed at creation and by every resetting request; it fires at most once
// per arming, and never while a resetting request runs.
type idleTimer struct {
	mu      sync.Mutex
	timeout time.Duration
	active  int
	last    time.Time
	armed   bool
	stopped bool
	t       *time.Timer
}

func newIdleTimer(timeout time.Duration, fire func(*idleTimer)) *idleTimer {
	it := &idleTimer{timeout: timeout, last: time.Now(), armed: true}
	it.t = time.AfterFunc(timeout, func() {
		if it.due() {
			fire(it)
		}
	})
	return it
}

func (it *idleTimer) begin() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.active++
	it.armed = true
}

func (it *idleTimer) end() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.active--
	it.last = time.Now()
	if it.active == 0 && !it.stopped {
		it.t.Reset(it.timeout)
	}
}

// due reports whether the timeout has passed; if not, it re-arms the timer
// for the remaining time.
func (it *idleTimer) due() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.stopped || !it.armed || it.active > 0 {
		return false
	}
	if rest := it.timeout - time.Since(it.last); rest > 0 {
		it.t.Reset(rest)
		return false
	}
	return true
}

// expire consumes the arming if the timer is still due.
func (it *idleTimer) expire() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.stopped || !it.armed || it.active > 0 || time.Since(it.last) < it.timeout {
		return false
	}
	it.armed = false
	return true
}

func (it *idleTimer) stop() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.stopped = true
	it.t.Stop()
}

// Exclusive runs fn as the handler's only user, as a request would, without
// counting as activity for the idle timer: for background work such as an
// automatic sync.
func (s *Server) Exclusive(fn func()) {
	if !s.opts.Concurrent {
		s.handlerMu.Lock()
		defer s.handlerMu.Unlock()
	}
	fn()
}
