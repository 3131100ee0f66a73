package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shortDir returns a fresh directory with a short path: t.TempDir can exceed
// the 107-byte limit of a socket path.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func sockPath(t *testing.T) string {
	return filepath.Join(shortDir(t), "run", "agent.sock")
}

type echoArgs struct {
	Text string `json:"text"`
}

// testHandler answers a few ops used across the tests.
func testHandler(ctx context.Context, req Request, files []*os.File) (any, error) {
	switch req.Op {
	case "echo", "status", "get":
		var a echoArgs
		if err := DecodeArgs(req.Args, &a); err != nil {
			return nil, err
		}
		return a, nil
	case "nothing":
		return nil, nil
	case "fail":
		return nil, &Error{Code: "locked", Message: "the vault is locked", Hint: "run safe unlock"}
	case "wrapped":
		return nil, errors.Join(errors.New("while doing x"), &Error{Code: "not_found", Message: "no such item"})
	case "boom":
		return nil, errors.New("boom: database is on fire")
	case "panic":
		panic("secret-in-panic")
	case "huge":
		return strings.Repeat("x", MaxFrame), nil
	}
	return nil, &Error{Code: "unknown_op", Message: "unknown op " + req.Op}
}

func serve(t *testing.T, h Handler, opts Options) (*Server, string) {
	t.Helper()
	path := sockPath(t)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return srv, path
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenPermissions(t *testing.T) {
	path := sockPath(t)
	// A permissive umask must not matter.
	old := syscall.Umask(0)
	l, err := Listen(path)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	di, err := os.Lstat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", di.Mode())
	}
	if syscall.Umask(old) != old {
		t.Error("Listen did not restore the umask")
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}
}

func TestListenRefusesInsecureDir(t *testing.T) {
	base := shortDir(t)
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o755)
	if _, err := Listen(filepath.Join(open, "s")); !errors.Is(err, ErrInsecureDir) {
		t.Errorf("0755 dir: %v", err)
	}
	priv := filepath.Join(base, "priv")
	if err := os.Mkdir(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(priv, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(link, "s")); !errors.Is(err, ErrInsecureDir) {
		t.Errorf("symlinked dir: %v", err)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o700)
	if _, err := Listen(filepath.Join(file, "s")); err == nil {
		t.Error("file as dir accepted")
	}
	if os.Getuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		os.Chown(other, 12345, 12345)
		if _, err := Listen(filepath.Join(other, "s")); !errors.Is(err, ErrInsecureDir) {
			t.Errorf("dir of another user: %v", err)
		}
	}
	if _, err := Listen("/" + strings.Repeat("a", MaxSocketPath)); !errors.Is(err, ErrSocketPath) {
		t.Errorf("long path: %v", err)
	}
	if _, err := Listen("rel/agent.sock"); !errors.Is(err, ErrSocketPath) {
		t.Errorf("relative path: %v", err)
	}
}

func TestListenOnePerPath(t *testing.T) {
	path := sockPath(t)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(path); !errors.Is(err, ErrAgentRunning) {
		t.Fatalf("second Listen: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("second Listen removed the socket: %v", err)
	}
}

func TestListenStaleSocket(t *testing.T) {
	path := sockPath(t)
	os.MkdirAll(filepath.Dir(path), 0o700)
	// A socket file nobody listens on, as left by a killed agent.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := Dial(path); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Dial on stale socket: %v", err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	l.Close()
}

func TestListenLeavesLiveOrForeignFiles(t *testing.T) {
	path := sockPath(t)
	os.MkdirAll(filepath.Dir(path), 0o700)
	// Something answers on the path but does not hold the lock.
	foreign, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrAgentRunning) {
		t.Errorf("Listen with a live socket: %v", err)
	}
	foreign.Close()
	// A regular file is never removed.
	os.WriteFile(path, []byte("keep"), 0o600)
	if _, err := Listen(path); !errors.Is(err, ErrSocketPath) {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("regular file was touched")
	}
}

func TestCallResultsAndErrors(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, path := serve(t, HandlerFunc(testHandler), Options{Logger: log})
	c := dial(t, path)
	if c.PID() != os.Getpid() {
		t.Errorf("PID() = %d, want %d", c.PID(), os.Getpid())
	}
	ctx := context.Background()
	const secret = "hunter2-correct-horse"

	var got echoArgs
	if err := c.Call(ctx, "echo", echoArgs{Text: secret}, &got); err != nil || got.Text != secret {
		t.Fatalf("echo = %+v, %v", got, err)
	}
	if err := c.Call(ctx, "nothing", nil, &got); err != nil {
		t.Fatalf("nothing: %v", err)
	}
	err := c.Call(ctx, "fail", echoArgs{Text: secret}, nil)
	var ae *Error
	if !errors.As(err, &ae) || *ae != (Error{Code: "locked", Message: "the vault is locked", Hint: "run safe unlock"}) {
		t.Fatalf("fail: %#v", err)
	}
	if err := c.Call(ctx, "wrapped", nil, nil); !errors.Is(err, &Error{Code: "not_found"}) {
		t.Fatalf("wrapped: %v", err)
	}
	for _, op := range []string{"boom", "panic"} {
		err := c.Call(ctx, op, echoArgs{Text: secret}, nil)
		if !errors.As(err, &ae) || ae.Code != CodeInternal || strings.Contains(ae.Message, "fire") || strings.Contains(ae.Message, "secret") {
			t.Fatalf("%s: %#v", op, err)
		}
	}
	if err := c.Call(ctx, "huge", nil, nil); !errors.Is(err, &Error{Code: CodeTooLarge}) {
		t.Fatalf("huge: %v", err)
	}
	// Strict decoding of results: a field the caller does not expect.
	var narrow struct{}
	if err := c.Call(ctx, "echo", echoArgs{Text: "x"}, &narrow); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown result field: %v", err)
	}
	// The handler's strict args decoding.
	if err := c.Call(ctx, "echo", map[string]any{"text": "x", "admin": true}, nil); !errors.Is(err, &Error{Code: CodeBadRequest}) {
		t.Fatalf("unknown args field: %v", err)
	}
	// The connection still works after handler errors.
	if err := c.Call(ctx, "echo", echoArgs{Text: "again"}, &got); err != nil || got.Text != "again" {
		t.Fatalf("echo after errors = %+v, %v", got, err)
	}
	if err := c.Call(ctx, "Bad Op", nil, nil); !errors.Is(err, ErrEncoding) {
		t.Fatalf("bad op name: %v", err)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "op=echo") {
		t.Errorf("log lacks the failure or the op names:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "secret-in-panic") {
		t.Errorf("log contains request data:\n%s", logs.String())
	}
}

// progressHandler reports progress for "count" (args: how many steps) and
// answers the other ops as testHandler does.
type progressHandler struct{ late chan func(done, total int64) }

func (h progressHandler) Handle(ctx context.Context, req Request, files []*os.File) (any, error) {
	return testHandler(ctx, req, files)
}

func (h progressHandler) HandleProgress(ctx context.Context, req Request, files []*os.File, report func(done, total int64)) (any, error) {
	if req.Op != "count" {
		return testHandler(ctx, req, files)
	}
	var n int64
	if err := DecodeArgs(req.Args, &n); err != nil {
		return nil, err
	}
	report(5, 1) // invalid: dropped
	for i := range n + 1 {
		report(i, n)
		if i == 1 {
			time.Sleep(ProgressInterval + 20*time.Millisecond)
		}
	}
	h.late <- report
	return n, nil
}

func TestProgress(t *testing.T) {
	h := progressHandler{late: make(chan func(done, total int64), 1)}
	_, path := serve(t, h, Options{})
	c := dial(t, path)
	ctx := context.Background()
	var seen [][2]int64
	var got int64
	if err := c.CallProgress(ctx, "count", 1000, &got, func(done, total int64) { seen = append(seen, [2]int64{done, total}) }); err != nil || got != 1000 {
		t.Fatalf("count = %d, %v", got, err)
	}
	// The first frame, the first after the pause, and the last; the
	// rest fall inside ProgressInterval.
	if len(seen) < 3 || len(seen) > 5 || seen[0] != [2]int64{0, 1000} || seen[len(seen)-1] != [2]int64{1000, 1000} {
		t.Fatalf("progress frames %v", seen)
	}
	// A report after the handler returned sends nothing: the next call
	// gets its own answer.
	(<-h.late)(1, 2)
	var echo echoArgs
	if err := c.Call(ctx, "echo", echoArgs{Text: "after"}, &echo); err != nil || echo.Text != "after" {
		t.Fatalf("echo after progress = %+v, %v", echo, err)
	}
	// Call ignores progress frames.
	if err := c.Call(ctx, "count", 3, &got); err != nil || got != 3 {
		t.Fatalf("count without a callback = %d, %v", got, err)
	}
	<-h.late
}

// TestProgressForAnotherRequest: a progress frame must name the request
// that waits.
func TestProgressForAnotherRequest(t *testing.T) {
	path := sockPath(t)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := newFDReader(c)
		ReadFrame(r)
		res, _ := json.Marshal(helloResult{Version: ProtocolVersion, PID: os.Getpid()})
		writeResponse(c, Response{Result: res})
		ReadFrame(r)
		writeResponse(c, Response{ID: 7, Progress: &Progress{Done: 1, Total: 2}})
		writeResponse(c, Response{ID: 1})
	}()
	c := dial(t, path)
	if err := c.CallProgress(context.Background(), "count", 1, nil, func(int64, int64) {}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("progress for request 7 during request 1: %v", err)
	}
}

func TestPeerRefused(t *testing.T) {
	var seen atomic.Pointer[Peer]
	_, path := serve(t, HandlerFunc(testHandler), Options{CheckPeer: func(p Peer) error {
		seen.Store(&p)
		if err := SameUser(p); err != nil {
			return err
		}
		return SameUser(Peer{UID: p.UID + 1}) // as if the peer were another user
	}})
	_, err := Dial(path)
	if !errors.Is(err, &Error{Code: CodePeerRefused}) {
		t.Fatalf("Dial = %v, want peer_refused", err)
	}
	p := seen.Load()
	if p == nil || int(p.UID) != os.Getuid() || int(p.PID) != os.Getpid() || int(p.GID) != os.Getgid() {
		t.Fatalf("peer credentials %+v, want uid %d pid %d", p, os.Getuid(), os.Getpid())
	}
}

// rawConn speaks the wire protocol by hand.
type rawConn struct {
	t *testing.T
	c net.Conn
}

func rawDial(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) recv() Response {
	r.t.Helper()
	b, err := ReadFrame(r.c)
	if err != nil {
		r.t.Fatalf("reading response: %v", err)
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		r.t.Fatalf("decoding %q: %v", b, err)
	}
	return resp
}

// closed checks that the server closed the connection.
func (r *rawConn) closed() {
	r.t.Helper()
	if b, err := ReadFrame(r.c); err != io.EOF {
		r.t.Fatalf("connection still open: %q, %v", b, err)
	}
}

const hello = `{"op":"hello","args":{"version":1}}`

func TestHandshake(t *testing.T) {
	_, path := serve(t, HandlerFunc(testHandler), Options{})

	r := rawDial(t, path)
	r.send(frame(hello))
	resp := r.recv()
	if resp.Error != nil || string(resp.Result) != `{"version":1,"pid":`+itoa(os.Getpid())+`}` {
		t.Fatalf("hello answer %+v %s", resp, resp.Result)
	}
	r.send(frame(hello)) // a second hello is a protocol error
	if resp := r.recv(); resp.Error == nil || resp.Error.Code != CodeBadRequest {
		t.Fatalf("second hello: %+v", resp)
	}
	r.closed()

	r = rawDial(t, path)
	r.send(frame(`{"id":1,"op":"echo"}`))
	if resp := r.recv(); resp.Error == nil || resp.Error.Code != CodeHelloRequired || resp.ID != 1 {
		t.Fatalf("no hello: %+v", resp)
	}
	r.closed()

	r = rawDial(t, path)
	r.send(frame(`{"op":"hello","args":{"version":2}}`))
	resp = r.recv()
	if resp.Error == nil || resp.Error.Code != CodeVersionMismatch || !strings.Contains(resp.Error.Message, "version 1") || resp.Error.Hint == "" {
		t.Fatalf("version 2: %+v", resp)
	}
	r.closed()

	r = rawDial(t, path)
	r.send(frame(`{"op":"hello","args":{"version":1,"x":1}}`))
	if resp := r.recv(); resp.Error == nil || resp.Error.Code != CodeBadRequest {
		t.Fatalf("hello with unknown field: %+v", resp)
	}
	r.closed()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestMalformedFramesCloseTheConnection(t *testing.T) {
	_, path := serve(t, HandlerFunc(testHandler), Options{})
	cases := map[string][]byte{
		"zero length":       {0, 0, 0, 0},
		"oversize":          binary.BigEndian.AppendUint32(nil, MaxFrame+1),
		"not canonical":     frame(`{"id":1, "op":"echo"}`),
		"unknown field":     frame(`{"id":1,"op":"echo","x":1}`),
		"trailing value":    frame(`{"id":1,"op":"echo"}{}`),
		"missing files":     frame(`{"id":1,"op":"echo","files":1}`),
		"not json":          frame(`hello`),
		"hello again later": frame(hello),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			r := rawDial(t, path)
			r.send(frame(hello))
			r.recv()
			r.send(b)
			if resp := r.recv(); resp.Error == nil || resp.Error.Code != CodeBadRequest {
				t.Fatalf("got %+v", resp)
			}
			r.closed()
		})
	}
}

func TestDialErrors(t *testing.T) {
	dir := shortDir(t)
	if _, err := Dial(filepath.Join(dir, "none.sock")); !errors.Is(err, ErrNoAgent) {
		t.Errorf("missing socket: %v", err)
	}
	if _, err := Dial(filepath.Join(dir, "nodir", "a.sock")); !errors.Is(err, ErrNoAgent) {
		t.Errorf("missing directory: %v", err)
	}
	// A listener that accepts and never answers: not "no agent".
	path := filepath.Join(dir, "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := DialContext(ctx, path); err == nil || errors.Is(err, ErrNoAgent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("mute agent: %v", err)
	}
}

func TestDialVersionMismatch(t *testing.T) {
	path := filepath.Join(shortDir(t), "old.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for _, answer := range []string{
			`{"error":{"code":"version_mismatch","message":"the agent speaks protocol version 2, the client 1"}}`,
			`{"result":{"version":2,"pid":1}}`,
		} {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ReadFrame(c)
			c.Write(frame(answer))
			c.Close()
		}
	}()
	for range 2 {
		if _, err := Dial(path); !errors.Is(err, ErrVersionMismatch) {
			t.Errorf("Dial = %v, want ErrVersionMismatch", err)
		}
	}
}

func TestFilePassing(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		switch req.Op {
		case "copy": // stream files[0] into files[1]
			n, err := io.Copy(files[1], files[0])
			return n, err
		case "count":
			return len(files), nil
		}
		return nil, &Error{Code: "unknown_op", Message: "?"}
	})
	_, path := serve(t, h, Options{})
	c := dial(t, path)
	ctx := context.Background()

	src := filepath.Join(shortDir(t), "src")
	data := bytes.Repeat([]byte("attachment "), 300_000) // 3.3 MB: more than a frame
	os.WriteFile(src, data, 0o600)
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(pr); got <- b }()
	var n int64
	if err := c.Call(ctx, "copy", nil, &n, in, pw); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// EOF on the pipe proves the agent closed its copy of the write end.
	if b := <-got; !bytes.Equal(b, data) || n != int64(len(data)) {
		t.Fatalf("copied %d bytes (reported %d), want %d", len(b), n, len(data))
	}
	var count int
	files := []*os.File{in, in, in, in}
	if err := c.Call(ctx, "count", nil, &count, files...); err != nil || count != 4 {
		t.Fatalf("count = %d, %v", count, err)
	}
	if err := c.Call(ctx, "count", nil, &count, append(files, in)...); err == nil {
		t.Fatal("more than MaxFiles accepted")
	}
	if err := c.Call(ctx, "count", nil, &count); err != nil || count != 0 {
		t.Fatalf("count without files = %d, %v", count, err)
	}
}

func TestFilesWithoutDeclarationAreRefused(t *testing.T) {
	_, path := serve(t, HandlerFunc(testHandler), Options{})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	uc.Write(frame(hello))
	ReadFrame(uc)
	// One descriptor, but the request declares none.
	if err := writeWithFiles(uc, frame(`{"id":1,"op":"echo"}`), []*os.File{os.Stdin}); err != nil {
		t.Fatal(err)
	}
	b, err := ReadFrame(uc)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := DecodeResponse(b); resp.Error == nil || resp.Error.Code != CodeBadRequest {
		t.Fatalf("undeclared descriptor: %s", b)
	}
}

func TestConcurrentClientsAreSerialised(t *testing.T) {
	var inflight, maxInflight, calls atomic.Int32
	h := HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(100 * time.Microsecond)
		calls.Add(1)
		var a echoArgs
		if err := DecodeArgs(req.Args, &a); err != nil {
			return nil, err
		}
		return a, nil
	})
	for _, concurrent := range []bool{false, true} {
		inflight.Store(0)
		maxInflight.Store(0)
		calls.Store(0)
		_, path := serve(t, h, Options{Concurrent: concurrent})
		var wg sync.WaitGroup
		const clients, each = 8, 40
		for i := range clients {
			wg.Go(func() {
				c, err := Dial(path)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				for j := range each {
					want := itoa(i*1000 + j)
					var got echoArgs
					if err := c.Call(context.Background(), "echo", echoArgs{Text: want}, &got); err != nil || got.Text != want {
						t.Errorf("client %d call %d: %+v %v", i, j, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if calls.Load() != clients*each {
			t.Errorf("concurrent=%v: %d calls, want %d", concurrent, calls.Load(), clients*each)
		}
		if !concurrent && maxInflight.Load() != 1 {
			t.Errorf("handler ran %d times at once while serialised", maxInflight.Load())
		}
	}
}

func TestClientConcurrentCalls(t *testing.T) {
	_, path := serve(t, HandlerFunc(testHandler), Options{})
	c := dial(t, path)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			var got echoArgs
			want := itoa(i)
			if err := c.Call(context.Background(), "echo", echoArgs{Text: want}, &got); err != nil || got.Text != want {
				t.Errorf("call %d: %+v %v", i, got, err)
			}
		})
	}
	wg.Wait()
}

func TestMaxConns(t *testing.T) {
	_, path := serve(t, HandlerFunc(testHandler), Options{MaxConns: 2})
	dial(t, path)
	dial(t, path)
	if _, err := Dial(path); !errors.Is(err, &Error{Code: CodeBusy}) {
		t.Fatalf("third connection: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	idle := make(chan time.Time, 10)
	_, path := serve(t, HandlerFunc(testHandler), Options{
		IdleTimeout: timeout,
		OnIdle:      func() { idle <- time.Now() },
		PassiveOps:  []string{"status"},
	})
	c := dial(t, path)
	ctx := context.Background()
	expectIdle := func(after time.Time, within time.Duration) {
		t.Helper()
		select {
		case at := <-idle:
			if d := at.Sub(after); d < timeout {
				t.Fatalf("OnIdle after %v, before the %v timeout", d, timeout)
			}
		case <-time.After(within):
			t.Fatalf("OnIdle not called within %v", within)
		}
	}
	expectQuiet := func(d time.Duration) {
		t.Helper()
		select {
		case <-idle:
			t.Fatal("OnIdle called unexpectedly")
		case <-time.After(d):
		}
	}

	// Armed from the start: fires once, and only once.
	expectIdle(time.Now().Add(-timeout), 2*time.Second)
	expectQuiet(2 * timeout)

	// A resetting op re-arms it.
	start := time.Now()
	if err := c.Call(ctx, "get", nil, nil); err != nil {
		t.Fatal(err)
	}
	expectIdle(start, 2*time.Second)

	// Passive ops (and new connections' hellos) do not keep it alive.
	start = time.Now()
	if err := c.Call(ctx, "get", nil, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			c.Call(ctx, "status", nil, nil)
			if c2, err := Dial(path); err == nil {
				c2.Close()
			}
		}
	})
	expectIdle(start, 2*time.Second)
	close(stop)
	wg.Wait()

	// Resetting ops do keep it alive.
	if err := c.Call(ctx, "get", nil, nil); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	var maxGap time.Duration
	for range 8 {
		time.Sleep(timeout / 4)
		if err := c.Call(ctx, "get", nil, nil); err != nil {
			t.Fatal(err)
		}
		maxGap = max(maxGap, time.Since(last))
		last = time.Now()
	}
	select {
	case <-idle:
		// Only a loaded machine that stalled us past the timeout excuses it.
		if maxGap < timeout {
			t.Fatalf("OnIdle called although requests came every %v at most", maxGap)
		}
		t.Logf("scheduler stalled for %v; skipping the keep-alive check", maxGap)
		return
	default:
	}
	expectIdle(last, 2*time.Second)
}

func TestIdleTimeoutWaitsForRunningRequest(t *testing.T) {
	const timeout = 100 * time.Millisecond
	idle := make(chan time.Time, 10)
	// The handler notes when it finishes, on the server's side: the idle
	// timer may only start after that, so the client's later receipt of the
	// reply is not a sound reference point.
	finished := make(chan time.Time, 1)
	h := HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		time.Sleep(3 * timeout)
		finished <- time.Now()
		return nil, nil
	})
	_, path := serve(t, h, Options{IdleTimeout: timeout, OnIdle: func() { idle <- time.Now() }})
	c := dial(t, path)
	<-idle // initial arming
	if err := c.Call(context.Background(), "slow", nil, nil); err != nil {
		t.Fatal(err)
	}
	end := <-finished
	select {
	case at := <-idle:
		if at.Sub(end) < timeout {
			t.Fatalf("OnIdle %v after a request ended, timeout %v", at.Sub(end), timeout)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("OnIdle not called")
	}
}

func TestCallContext(t *testing.T) {
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		<-release
		return nil, nil
	})
	_, path := serve(t, h, Options{})
	defer close(release)
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Call(ctx, "slow", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want deadline exceeded", err)
	}
	if err := c.Call(context.Background(), "slow", nil, nil); !errors.Is(err, ErrClientBroken) {
		t.Fatalf("Call after interruption = %v", err)
	}
}

func TestShutdown(t *testing.T) {
	path := sockPath(t)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	var srv *Server
	srv = NewServer(HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		switch req.Op {
		case "slow":
			close(entered)
			<-release
			return "done", nil
		case "stop":
			go srv.Shutdown(context.Background())
			return "stopping", nil
		}
		return nil, nil
	}), Options{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	idleClient := dial(t, path)
	busy := dial(t, path)
	result := make(chan error, 1)
	go func() {
		var s string
		err := busy.Call(context.Background(), "slow", nil, &s)
		if err == nil && s != "done" {
			err = errors.New("wrong result " + s)
		}
		result <- err
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request ran", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still present during shutdown: %v", err)
	}
	if _, err := Dial(path); !errors.Is(err, ErrNoAgent) {
		t.Errorf("Dial during shutdown: %v", err)
	}
	close(release)
	if err := <-result; err != nil {
		t.Fatalf("running request: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := idleClient.Call(context.Background(), "x", nil, nil); err == nil {
		t.Fatal("idle connection survived shutdown")
	}

	// The "stop" op, handled by the engine, shuts the server down.
	l, err = Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv = NewServer(srv.h, Options{})
	go func() { served <- srv.Serve(l) }()
	c := dial(t, path)
	var s string
	if err := c.Call(context.Background(), "stop", nil, &s); err != nil || s != "stopping" {
		t.Fatalf("stop = %q, %v", s, err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end Serve")
	}
}

func TestShutdownDeadline(t *testing.T) {
	path := sockPath(t)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	srv := NewServer(HandlerFunc(func(ctx context.Context, req Request, files []*os.File) (any, error) {
		close(entered)
		<-ctx.Done() // released only when Shutdown gives up
		return nil, ctx.Err()
	}), Options{})
	go srv.Serve(l)
	c := dial(t, path)
	go c.Call(context.Background(), "stuck", nil, nil)
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
}

func BenchmarkCall(b *testing.B) {
	d, _ := os.MkdirTemp("", "sb")
	defer os.RemoveAll(d)
	path := filepath.Join(d, "run", "s")
	l, err := Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(HandlerFunc(testHandler), Options{})
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	c, err := Dial(path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var got echoArgs
	for b.Loop() {
		if err := c.Call(context.Background(), "echo", echoArgs{Text: "abc"}, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDial(b *testing.B) {
	d, _ := os.MkdirTemp("", "sb")
	defer os.RemoveAll(d)
	path := filepath.Join(d, "run", "s")
	l, err := Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(HandlerFunc(testHandler), Options{})
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	for b.Loop() {
		c, err := Dial(path)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func TestExclusiveAndShutdown(t *testing.T) {
	srv, _ := serve(t, HandlerFunc(testHandler), Options{})
	entered := make(chan context.Context, 1)
	release := make(chan struct{})
	ran := make(chan bool, 1)
	go func() {
		ran <- srv.Exclusive(func(ctx context.Context) {
			entered <- ctx
			<-release // ignores ctx: Shutdown must still wait
		})
	}()
	ctx := <-entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); !errors.Is(cause, ErrInterrupted) {
			t.Fatalf("cause %v, want ErrInterrupted", cause)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Shutdown did not interrupt the Exclusive work")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while Exclusive work ran", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !<-ran {
		t.Fatal("Exclusive reported that fn did not run")
	}
	if srv.Exclusive(func(context.Context) { t.Error("Exclusive work ran after Shutdown") }) {
		t.Fatal("Exclusive after Shutdown reported that it ran")
	}
}

// interruptHandler: "sync" waits for its context, "lock" is an interrupt
// op that waits for unblock (when set) while holding the handler lock,
// "get" is neither.
type interruptHandler struct {
	syncs   atomic.Int32
	started chan context.Context
	unblock chan struct{}
	inLock  chan struct{}
}

func newInterruptHandler() *interruptHandler {
	return &interruptHandler{started: make(chan context.Context, 4), inLock: make(chan struct{}, 4)}
}

func (h *interruptHandler) Handle(ctx context.Context, req Request, files []*os.File) (any, error) {
	switch req.Op {
	case "sync":
		h.syncs.Add(1)
		h.started <- ctx
		select {
		case <-ctx.Done():
			return nil, &Error{Code: CodeInterrupted, Message: context.Cause(ctx).Error()}
		case <-time.After(5 * time.Second):
			return nil, &Error{Code: "not_interrupted", Message: "the sync ran to its end"}
		}
	case "quick":
		return "ok", nil
	case "lock":
		h.inLock <- struct{}{}
		if h.unblock != nil {
			<-h.unblock
		}
		return "locked", nil
	}
	return "got", nil
}

var interruptOpts = Options{InterruptOps: []string{"lock"}, InterruptibleOps: []string{"sync", "quick"}}

func TestInterruptCancelsRunningWork(t *testing.T) {
	h := newInterruptHandler()
	srv, path := serve(t, h, interruptOpts)
	a, b := dial(t, path), dial(t, path)
	syncErr := make(chan error, 1)
	go func() { syncErr <- a.Call(context.Background(), "sync", nil, nil) }()
	ctx := <-h.started

	start := time.Now()
	var s string
	if err := b.Call(context.Background(), "lock", nil, &s); err != nil || s != "locked" {
		t.Fatalf("lock = %q, %v", s, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("lock waited %v for the running sync", d)
	}
	if cause := context.Cause(ctx); !errors.Is(cause, ErrInterrupted) || !errors.Is(cause, context.Canceled) {
		t.Fatalf("sync's cause = %v", cause)
	}
	if err := <-syncErr; !errors.Is(err, &Error{Code: CodeInterrupted}) {
		t.Fatalf("sync = %v", err)
	}

	// Exclusive work is interrupted the same way.
	ran := make(chan bool, 1)
	go func() { ran <- srv.Exclusive(func(ctx context.Context) { h.started <- ctx; <-ctx.Done() }) }()
	<-h.started
	if err := b.Call(context.Background(), "lock", nil, &s); err != nil {
		t.Fatal(err)
	}
	if !<-ran {
		t.Fatal("Exclusive work did not run")
	}

	// Requests of other ops are not interrupted; the connections work on.
	if err := a.Call(context.Background(), "get", nil, &s); err != nil || s != "got" {
		t.Fatalf("get after an interrupt = %q, %v", s, err)
	}
}

func TestInterruptCancelsQueuedWork(t *testing.T) {
	h := newInterruptHandler()
	h.unblock = make(chan struct{})
	srv, path := serve(t, h, interruptOpts)
	a, b := dial(t, path), dial(t, path)
	lockErr := make(chan error, 1)
	go func() { lockErr <- b.Call(context.Background(), "lock", nil, nil) }()
	<-h.inLock // the lock holds the handler lock

	// A sync and Exclusive work arriving meanwhile never start.
	syncErr := make(chan error, 1)
	go func() { syncErr <- a.Call(context.Background(), "sync", nil, nil) }()
	ran := make(chan bool, 1)
	go func() { ran <- srv.Exclusive(func(context.Context) {}) }()
	time.Sleep(50 * time.Millisecond)
	close(h.unblock)
	if err := <-lockErr; err != nil {
		t.Fatal(err)
	}
	if err := <-syncErr; !errors.Is(err, &Error{Code: CodeInterrupted}) {
		t.Fatalf("queued sync = %v", err)
	}
	if <-ran {
		t.Fatal("queued Exclusive work ran after the interrupt")
	}
	if n := h.syncs.Load(); n != 0 {
		t.Fatalf("the sync handler ran %d times", n)
	}

	// Once the interrupt is handled, interruptible work runs again, and
	// a connection whose interruptible request ended keeps working.
	var s string
	for range 3 {
		if err := a.Call(context.Background(), "quick", nil, &s); err != nil || s != "ok" {
			t.Fatalf("quick = %q, %v", s, err)
		}
	}
	if !srv.Exclusive(func(context.Context) {}) {
		t.Fatal("Exclusive work refused after the interrupt")
	}
}

func TestClientHangUpCancelsInterruptible(t *testing.T) {
	h := newInterruptHandler()
	_, path := serve(t, h, interruptOpts)
	c := dial(t, path)
	go c.Call(context.Background(), "sync", nil, nil)
	ctx := <-h.started
	c.Close()
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); !errors.Is(cause, ErrClientGone) {
			t.Fatalf("cause %v, want ErrClientGone", cause)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("hanging up did not cancel the request")
	}
}

func TestIdleInterruptsExclusive(t *testing.T) {
	const timeout = 100 * time.Millisecond
	idle := make(chan time.Time, 10)
	srv, _ := serve(t, HandlerFunc(testHandler), Options{IdleTimeout: timeout, OnIdle: func() { idle <- time.Now() }})
	interrupted := make(chan error, 1)
	ran := srv.Exclusive(func(ctx context.Context) {
		// Exclusive work is no activity: the timer, armed when Serve
		// started, fires during it.
		select {
		case <-ctx.Done():
			interrupted <- context.Cause(ctx)
		case <-time.After(5 * time.Second):
			interrupted <- errors.New("not interrupted")
		}
	})
	if !ran {
		t.Fatal("Exclusive work did not run")
	}
	if err := <-interrupted; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Exclusive work: %v", err)
	}
	select {
	case <-idle:
	case <-time.After(2 * time.Second):
		t.Fatal("OnIdle not called after the interrupted work")
	}
}
