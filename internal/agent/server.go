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

	"golang.org/x/sys/unix"
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
//   - ctx is cancelled when a shutdown gives up waiting; for an op in
//     Options.InterruptibleOps also by an interrupt (context.Cause is
//     ErrInterrupted) or when the client hangs up (ErrClientGone). Such a
//     handler must then return promptly and leave its engine consistent.
//   - A handler must not call Server.Shutdown synchronously (Shutdown waits
//     for running handlers): start it in a goroutine.
type Handler interface {
	Handle(ctx context.Context, req Request, files []*os.File) (any, error)
}

// ProgressHandler is a Handler some of whose ops report progress while they
// run (docs/design.md §8.6). The server calls HandleProgress instead of
// Handle, with report, which sends the client a progress frame for the
// request: done of total units of work (0 <= done <= total; other values
// are dropped). report is safe to call from any goroutine until
// HandleProgress returns, and is a no-op afterwards; it sends at most one
// frame per ProgressInterval, except that done == total is always sent. A
// handler calls it only for ops documented to report progress, which
// clients know to accept.
type ProgressHandler interface {
	Handler
	HandleProgress(ctx context.Context, req Request, files []*os.File, report func(done, total int64)) (any, error)
}

// ProgressInterval is the least time between two progress frames of one
// request.
const ProgressInterval = 100 * time.Millisecond

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

// Causes with which the server cancels interruptible work (see
// Options.InterruptibleOps). Both wrap context.Canceled.
var (
	// ErrInterrupted: an op of Options.InterruptOps arrived, the idle
	// timeout expired or Shutdown began.
	ErrInterrupted = fmt.Errorf("agent: interrupted: %w", context.Canceled)
	// ErrClientGone: the client closed its connection while its request
	// ran; nobody waits for the answer.
	ErrClientGone = fmt.Errorf("agent: the client hung up: %w", context.Canceled)
)

// CodeInterrupted answers an interruptible request that an interrupt
// cancelled before its handler started. Handlers may use it too for work
// cut short the same way.
const CodeInterrupted = "interrupted"

// Options configure a Server. The zero value is usable.
type Options struct {
	// IdleTimeout is how long the server waits without a request that
	// resets the timer before it calls OnIdle. Zero means
	// DefaultIdleTimeout; negative disables the timer.
	IdleTimeout time.Duration
	// OnIdle is called once each time the idle timeout expires (the engine
	// forgets its keys). It runs with the handler lock held, after
	// Exclusive work has been interrupted. The timer is re-armed by the
	// next resetting request. Shutdown waits for it, so it must not call
	// Shutdown synchronously.
	OnIdle func()
	// PassiveOps lists the ops that do not reset the idle timer (for
	// example "status"). Hello never resets it.
	PassiveOps []string
	// InterruptOps lists the ops that must not wait for long-running work
	// (the vault service: lock and stop). When one arrives, before it waits
	// for the handler lock, the server cancels the context of all
	// interruptible work, running or waiting for the lock, with cause
	// ErrInterrupted; work that arrives until the op has been handled is
	// cancelled at once. An interrupt op should not itself be interruptible.
	InterruptOps []string
	// InterruptibleOps lists the ops whose context interrupts cancel (for
	// example a sync, which waits on a remote that may never answer).
	// Their context also ends (ErrClientGone) when the client closes the
	// connection while the request runs. Exclusive work is always
	// interruptible; the idle timeout and Shutdown interrupt too.
	InterruptibleOps []string
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
	h             Handler
	opts          Options
	passive       map[string]bool
	interrupts    map[string]bool
	interruptible map[string]bool
	log           *slog.Logger
	handlerMu     sync.Mutex
	idle          *idleTimer

	baseCtx context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	l       *Listener
	conns   map[*net.UnixConn]struct{}
	closing bool
	done    chan struct{} // closed when Shutdown begins
	// wg counts connections, Exclusive work and the idle action:
	// everything Shutdown waits for.
	wg sync.WaitGroup
	// work holds the interruptible work running or waiting for the
	// handler lock; interrupting counts interrupt ops not yet handled,
	// idling idle actions not yet done (they interrupt Exclusive work
	// only: no request runs when the idle timeout fires).
	work         map[*work]struct{}
	interrupting int
	idling       int
}

// work is one piece of interruptible work.
type work struct {
	cancel     context.CancelCauseFunc
	background bool // Exclusive
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
		h:             h,
		opts:          opts,
		passive:       map[string]bool{opHello: true},
		interrupts:    map[string]bool{},
		interruptible: map[string]bool{},
		log:           log,
		conns:         map[*net.UnixConn]struct{}{},
		done:          make(chan struct{}),
		work:          map[*work]struct{}{},
	}
	for _, op := range opts.PassiveOps {
		s.passive[op] = true
	}
	for _, op := range opts.InterruptOps {
		s.interrupts[op] = true
	}
	for _, op := range opts.InterruptibleOps {
		s.interruptible[op] = true
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
		resp := s.call(c, req, files)
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
func (s *Server) call(c *net.UnixConn, req Request, files []*os.File) Response {
	passive := s.passive[req.Op]
	if !passive && s.idle != nil {
		s.idle.begin()
		defer s.idle.end()
	}
	ctx := s.baseCtx
	switch {
	case s.interrupts[req.Op]:
		// Before waiting for the handler lock, which the work may hold.
		defer s.interrupt(true)()
	case s.interruptible[req.Op]:
		var cancel context.CancelCauseFunc
		var done func()
		ctx, cancel, done = s.startWork(false)
		defer done()
		defer watchPeer(c, func() { cancel(ErrClientGone) })()
	}
	if !s.opts.Concurrent {
		s.handlerMu.Lock()
		defer s.handlerMu.Unlock()
	}
	start := time.Now()
	var result any
	var err error
	if ctx.Err() != nil {
		err = &Error{Code: CodeInterrupted, Message: "the request was interrupted before it started", Hint: "run it again"}
	} else {
		rep := &reporter{s: s, c: c, id: req.ID}
		result, err = s.invoke(ctx, req, files, rep.report)
		rep.close()
	}
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

func (s *Server) invoke(ctx context.Context, req Request, files []*os.File, report func(done, total int64)) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			// The panic value may hold data from the request: do not log it.
			result, err = nil, errors.New("handler panicked")
		}
	}()
	if ph, ok := s.h.(ProgressHandler); ok {
		return ph.HandleProgress(ctx, req, files, report)
	}
	return s.h.Handle(ctx, req, files)
}

// reporter sends the progress frames of one request (ProgressHandler).
// The connection's loop writes nothing else until the request's response,
// which comes after close, so frames never interleave.
type reporter struct {
	s  *Server
	c  *net.UnixConn
	id uint64

	mu     sync.Mutex
	last   time.Time
	closed bool // the handler returned, or a write failed
}

func (r *reporter) report(done, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.id == 0 || done < 0 || done > total {
		return
	}
	now := time.Now()
	if done != total && !r.last.IsZero() && now.Sub(r.last) < ProgressInterval {
		return
	}
	r.last = now
	if err := r.s.write(r.c, Response{ID: r.id, Progress: &Progress{Done: done, Total: total}}); err != nil {
		// The client is gone or stuck; the final write will tell.
		r.closed = true
	}
}

func (r *reporter) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// enter counts background work (Exclusive, the idle action) in the wait
// group that Shutdown waits for; it reports false once Shutdown has begun.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

// startWork registers one piece of interruptible work and returns its
// context, which is already cancelled when an interrupt is under way or
// Shutdown has begun. done unregisters it.
func (s *Server) startWork(background bool) (ctx context.Context, cancel context.CancelCauseFunc, done func()) {
	ctx, cancel = context.WithCancelCause(s.baseCtx)
	w := &work{cancel: cancel, background: background}
	s.mu.Lock()
	if s.closing || s.interrupting > 0 || background && s.idling > 0 {
		cancel(ErrInterrupted)
	} else {
		s.work[w] = struct{}{}
	}
	s.mu.Unlock()
	return ctx, cancel, func() {
		s.mu.Lock()
		delete(s.work, w)
		s.mu.Unlock()
		cancel(nil)
	}
}

// interrupt cancels interruptible work (all of it, or only Exclusive
// work) and keeps cancelling new work until the returned function is
// called.
func (s *Server) interrupt(all bool) (end func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if all {
		s.interrupting++
	} else {
		s.idling++
	}
	s.cancelWorkLocked(all)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if all {
			s.interrupting--
		} else {
			s.idling--
		}
	}
}

func (s *Server) cancelWorkLocked(all bool) {
	for w := range s.work {
		if all || w.background {
			w.cancel(ErrInterrupted)
		}
	}
}

// watchPeer calls gone if the client closes its end of c before stop is
// called. A client sends nothing while it waits for an answer (§8.8 of
// docs/design.md), so the connection stays quiet: when it becomes
// readable, a peek tells a hang-up (end of stream or an error) from data
// sent too early, which is left for the next read. stop ends the watch by
// setting a past read deadline; the caller's next read sets its own.
func watchPeer(c *net.UnixConn, gone func()) (stop func()) {
	rc, err := c.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hungUp := false
		var b [1]byte
		err := rc.Read(func(fd uintptr) bool {
			n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			for err == unix.EINTR {
				n, _, err = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			}
			if err == unix.EAGAIN {
				return false // wait until readable
			}
			hungUp = n == 0 || err != nil
			return true
		})
		if err == nil && hungUp {
			gone()
		}
	}()
	return func() {
		c.SetReadDeadline(time.Unix(1, 0))
		<-done
	}
}

// fireIdle runs the idle action. It interrupts Exclusive work first (a
// background sync must not hold the keys past the idle timeout); no
// request runs at that point, and one that arrives meanwhile wins.
func (s *Server) fireIdle(it *idleTimer) {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	defer s.interrupt(false)()
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
// the socket), interrupts interruptible work (Options.InterruptibleOps and
// Exclusive work), lets running requests and Exclusive work finish and
// requests answer, and closes every connection. Exclusive work and idle
// actions that have not started by then never run. If ctx ends first it
// closes the connections, cancels the handlers' context and returns ctx's
// error. OnIdle is not called.
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
	s.cancelWorkLocked(true)
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
// automatic sync. It reports whether fn ran. Shutdown waits for it like
// for a request; once Shutdown has begun, or when an interrupt comes
// before fn could start, fn does not run. fn's context is cancelled (cause
// ErrInterrupted) by interrupt ops, the idle timeout and Shutdown, and
// fn must then return promptly.
func (s *Server) Exclusive(fn func(ctx context.Context)) bool {
	if !s.enter() {
		return false
	}
	defer s.wg.Done()
	ctx, _, done := s.startWork(true)
	defer done()
	if !s.opts.Concurrent {
		s.handlerMu.Lock()
		defer s.handlerMu.Unlock()
	}
	if ctx.Err() != nil {
		return false
	}
	fn(ctx)
	return true
}
