package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNoAgent means no agent is listening on the socket path: the socket
	// does not exist, or it exists and nothing accepts connections on it.
	ErrNoAgent = errors.New("agent: no agent running")
	// ErrVersionMismatch means the agent speaks another protocol version.
	ErrVersionMismatch = errors.New("agent: protocol version mismatch")
	// ErrClientBroken means an earlier call was interrupted mid-frame; the
	// client must be closed and a new one dialled.
	ErrClientBroken = errors.New("agent: connection unusable after an interrupted call")
	// ErrProtocol means the agent sent something the protocol forbids.
	ErrProtocol = errors.New("agent: protocol violation")
)

// Client is a connection to the agent. Its methods are safe for concurrent
// use; calls are sent one at a time.
type Client struct {
	mu      sync.Mutex
	c       *net.UnixConn
	nextID  uint64
	broken  bool
	pid     int
	version int
}

// Dial connects to the agent at path and performs the hello exchange, with a
// default timeout of HandshakeTimeout.
func Dial(path string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	return DialContext(ctx, path)
}

// DialContext is Dial with a context bounding the connection and the hello.
// It returns an error wrapping ErrNoAgent if no agent listens on path, and
// one wrapping ErrVersionMismatch if the agent speaks another version. It
// also checks that the agent runs as the current user.
func DialContext(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %q", ErrNoAgent, path)
		}
		return nil, fmt.Errorf("agent: connect to %q: %w", path, err)
	}
	c := &Client{c: nc.(*net.UnixConn), nextID: 1}
	peer, err := peerCred(c.c)
	if err == nil {
		err = SameUser(peer)
	}
	if err != nil {
		c.c.Close()
		return nil, fmt.Errorf("agent: refusing the process serving %q: %w", path, err)
	}
	var res helloResult
	if err := c.call(ctx, 0, opHello, helloArgs{Version: ProtocolVersion}, &res, nil, nil); err != nil {
		c.c.Close()
		if errors.Is(err, &Error{Code: CodeVersionMismatch}) {
			return nil, fmt.Errorf("%w: %w", ErrVersionMismatch, err)
		}
		return nil, fmt.Errorf("agent: hello: %w", err)
	}
	if res.Version != ProtocolVersion {
		c.c.Close()
		return nil, fmt.Errorf("%w: agent answered version %d, client speaks %d", ErrVersionMismatch, res.Version, ProtocolVersion)
	}
	c.pid, c.version = res.PID, res.Version
	return c, nil
}

// PID returns the agent's process id, as it reported in the hello.
func (c *Client) PID() int { return c.pid }

// Call sends op with args (encoded with encoding/json; nil sends none) and
// decodes the result strictly into result (nil ignores it). files, at most
// MaxFiles, are passed to the agent as descriptors (SCM_RIGHTS); the caller
// keeps its own copies and may close them once Call returns. An error from
// the agent is returned as *Error (match with errors.Is(err, &Error{Code:
// ...}) or errors.As).
func (c *Client) Call(ctx context.Context, op string, args, result any, files ...*os.File) error {
	return c.CallProgress(ctx, op, args, result, nil, files...)
}

// CallProgress is Call for an op that reports progress: progress, if not
// nil, is called with each progress frame the agent sends before the
// response (docs/design.md §8.6). Call ignores such frames.
func (c *Client) CallProgress(ctx context.Context, op string, args, result any, progress func(done, total int64), files ...*os.File) error {
	if op == opHello {
		return fmt.Errorf("agent: %q is reserved", op)
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("agent: %d files, at most %d", len(files), MaxFiles)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextID
	c.nextID++
	return c.call(ctx, id, op, args, result, files, progress)
}

func (c *Client) call(ctx context.Context, id uint64, op string, args, result any, files []*os.File, progress func(done, total int64)) error {
	if c.broken {
		return ErrClientBroken
	}
	req := Request{ID: id, Op: op, Files: len(files)}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("agent: encode args of %q: %w", op, err)
		}
		req.Args = raw
	}
	payload, err := EncodeRequest(req)
	if err != nil {
		return err
	}
	frame, err := AppendFrame(nil, payload)
	if err != nil {
		return fmt.Errorf("agent: request %q: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Interrupt blocked I/O when ctx ends (after ctx.Err is set, so the
	// error reports the context's reason).
	c.c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := writeWithFiles(c.c, frame, files); err != nil {
		c.broken = true
		// The agent may have refused the connection (peer check, too many
		// connections) and closed it before reading: its reason is still
		// in the receive buffer.
		c.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if b, rerr := ReadFrame(c.c); rerr == nil {
			if resp, derr := DecodeResponse(b); derr == nil && resp.Error != nil {
				return resp.Error
			}
		}
		return c.ioErr(ctx, "send", err)
	}
	resp, err := c.receive(ctx, id, progress)
	if err != nil {
		c.broken = true
		return err
	}
	if resp.ID != id {
		// ID 0 carries connection-level errors (peer refused, busy, bad
		// frame) that the agent sends before closing.
		if resp.ID == 0 && resp.Error != nil {
			c.broken = true
			return resp.Error
		}
		c.broken = true
		return fmt.Errorf("%w: response id %d for request %d", ErrProtocol, resp.ID, id)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result != nil && resp.Result != nil {
		if err := decodeStrict(resp.Result, result); err != nil {
			return fmt.Errorf("%w: result of %q: %w", ErrProtocol, op, err)
		}
	}
	return nil
}

// receive reads the response to request id, passing the progress frames
// before it to progress.
func (c *Client) receive(ctx context.Context, id uint64, progress func(done, total int64)) (Response, error) {
	for {
		// Plain reads: descriptors the agent might send are closed by the
		// kernel.
		b, err := ReadFrame(c.c)
		if err != nil {
			return Response{}, c.ioErr(ctx, "receive", err)
		}
		resp, err := DecodeResponse(b)
		if err != nil {
			return Response{}, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if resp.Progress == nil {
			return resp, nil
		}
		if resp.ID != id {
			return Response{}, fmt.Errorf("%w: progress for request %d during request %d", ErrProtocol, resp.ID, id)
		}
		if progress != nil {
			progress(resp.Progress.Done, resp.Progress.Total)
		}
	}
}

func (c *Client) ioErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("agent: %s: %w", what, cerr)
	}
	return fmt.Errorf("agent: %s: %w", what, err)
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.c.Close()
}
