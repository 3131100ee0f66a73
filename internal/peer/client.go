package peer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/frames"
)

var _ remote.Remote = (*Client)(nil)

// Client is a remote.Remote on the other end of a message connection: each
// method is one request to a Serve there.
//
// Its methods are safe for concurrent use, one request at a time: a call
// waits (or gives up when its context ends) while another is in flight.
// A request cannot be withdrawn once sent, so a call whose context ends
// while its request is in flight closes the connection. After a broken
// connection, a protocol violation by either side, or Close, every call
// fails with remote.ErrUnavailable: connect again for a new Client.
type Client struct {
	conn MsgConn
	turn chan struct{} // holds a token while a request is in flight

	mu     sync.Mutex
	broken error // why the connection cannot be used; nil while it can
	closed bool
}

// NewClient returns a Client that sends its requests over c. The Client
// owns c: Close closes it.
func NewClient(c MsgConn) *Client {
	return &Client{conn: c, turn: make(chan struct{}, 1)}
}

// Close closes the connection; a call in flight fails with
// remote.ErrUnavailable. Closing twice does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.broken == nil {
		c.broken = ErrClosed
	}
	c.mu.Unlock()
	return c.conn.Close()
}

// fail marks the connection unusable for cause (the first cause stays) and
// closes it, so that the other end stops too.
func (c *Client) fail(cause error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = cause
	}
	c.mu.Unlock()
	c.conn.Close()
}

func (c *Client) unusable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return fmt.Errorf("%w: %w (connect to the other device again)", remote.ErrUnavailable, c.broken)
	}
	return nil
}

// do runs one request, fn, with the connection to itself.
func (c *Client) do(ctx context.Context, op string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("peer: %s: %w", op, context.Cause(ctx))
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("peer: %s: %w", op, context.Cause(ctx))
	}
	defer func() { <-c.turn }()
	if err := c.unusable(); err != nil {
		return fmt.Errorf("peer: %s: %w", op, err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.fail(fmt.Errorf("a request was cancelled in flight: %w", context.Cause(ctx)))
	})
	err := fn()
	cancelled := !stop()
	if err != nil && cancelled {
		return fmt.Errorf("peer: %s: %w (the connection was closed: a request in flight cannot be withdrawn)", op, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("peer: %s: %w", op, err)
	}
	return nil
}

// lost handles an error of the connection itself.
func (c *Client) lost(err error) error {
	c.fail(err)
	return fmt.Errorf("%w: the connection to the other device was lost: %w", remote.ErrUnavailable, err)
}

// violated handles a protocol violation (err wraps ErrProtocol).
func (c *Client) violated(err error) error {
	c.fail(err)
	return fmt.Errorf("%w: %w", remote.ErrUnavailable, err)
}

// send encodes m into buf (reused) and writes it. An argument out of
// bounds fails before anything is written; the connection stays usable.
func (c *Client) send(buf []byte, m message) ([]byte, error) {
	b, err := encode(buf[:0], m)
	if err != nil {
		return buf, err
	}
	err = c.conn.WriteMessage(b)
	if _, ok := m.(secretBearing); ok {
		clear(b)
	}
	if err != nil {
		return b, c.lost(err)
	}
	return b, nil
}

// recv reads and decodes one message, returning its length too.
func (c *Client) recv() (message, int, error) {
	b, err := c.conn.ReadMessage()
	if err != nil {
		return nil, 0, c.lost(err)
	}
	m, err := decode(b)
	if err != nil {
		return nil, 0, c.violated(fmt.Errorf("the other device sent a malformed message: %w", err))
	}
	return m, len(b), nil
}

// answer turns an error message into the call's error.
func (c *Client) answer(m *errorMsg) error {
	if m.Code == codeBadRequest || m.Code == codeUnsupported {
		// The server closes after these.
		return c.violated(fmt.Errorf("%w: the other device refused the request as malformed (%q): the two devices may run incompatible versions of safe", ErrProtocol, detail(m.Detail)))
	}
	return peerError(m)
}

// expect reads the response: a message of type want, or an error.
func (c *Client) expect(want msgType) (message, error) {
	m, _, err := c.recv()
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*errorMsg); ok {
		return nil, c.answer(e)
	}
	if m.typ() != want {
		return nil, c.unexpected(m, want)
	}
	return m, nil
}

func (c *Client) unexpected(m message, want msgType) error {
	return c.violated(fmt.Errorf("%w: the other device sent a %s message where a %s message belongs", ErrProtocol, m.typ(), want))
}

// call sends a one-message request and returns its one-message response.
func call[T message](ctx context.Context, c *Client, op string, req message) (T, error) {
	var res T
	err := c.do(ctx, op, func() error {
		if _, err := c.send(nil, req); err != nil {
			return err
		}
		m, err := c.expect(res.typ())
		if err != nil {
			return err
		}
		r, ok := m.(T)
		if !ok {
			return c.unexpected(m, res.typ())
		}
		res = r
		return nil
	})
	return res, err
}

// Prelogin returns the account's KDF header.
func (c *Client) Prelogin(ctx context.Context, email string) ([]byte, error) {
	m, err := call[*kdfMsg](ctx, c, "prelogin", &preloginReq{Email: email})
	if err != nil {
		return nil, err
	}
	return m.KDF, nil
}

// Register passes the registration to the other device's remote as is.
func (c *Client) Register(ctx context.Context, r api.RegisterRequest) error {
	_, err := call[*doneMsg](ctx, c, "register", &registerReq{R: r})
	return err
}

// Login passes the login to the other device's remote as is.
func (c *Client) Login(ctx context.Context, r api.LoginRequest) error {
	_, err := call[*doneMsg](ctx, c, "login", &loginReq{R: r})
	return err
}

// Account returns the account's KDF header, document and epoch.
func (c *Client) Account(ctx context.Context) (api.Account, error) {
	m, err := call[*accountMsg](ctx, c, "account", &accountReq{})
	if err != nil {
		return api.Account{}, err
	}
	return m.A, nil
}

// UpdateAccount replaces the document if u.Base is the current epoch.
func (c *Client) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	m, err := call[*epochMsg](ctx, c, "update account", &updateAccountReq{U: u})
	if err != nil {
		return 0, err
	}
	return m.Epoch, nil
}

// Vaults lists the account's vaults with their heads.
func (c *Client) Vaults(ctx context.Context) ([]api.Vault, error) {
	var out []api.Vault
	err := c.do(ctx, "list vaults", func() error {
		if _, err := c.send(nil, &vaultsReq{}); err != nil {
			return err
		}
		m, err := c.expect(typeVaultList)
		if err != nil {
			return err
		}
		n := m.(*vaultListMsg).Count
		out = make([]api.Vault, 0, min(n, 1024))
		total := 0
		for range n {
			m, size, err := c.recv()
			if err != nil {
				return err
			}
			v, ok := m.(*vaultMsg)
			if !ok {
				return c.unexpected(m, typeVault)
			}
			if total += size; total > MaxBatch {
				return c.violated(fmt.Errorf("%w: the vault listing passes %d bytes", ErrProtocol, MaxBatch))
			}
			out = append(out, v.V)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutVault creates a vault or replaces its record.
func (c *Client) PutVault(ctx context.Context, vault string, record []byte) error {
	_, err := call[*doneMsg](ctx, c, fmt.Sprintf("put vault %q", vault), &putVaultReq{Vault: vault, Record: record})
	return err
}

// Pull returns entries after since: at most api.MaxPageLimit, and fewer
// when their messages would pass MaxBatch bytes.
func (c *Client) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	var page api.LogPage
	err := c.do(ctx, fmt.Sprintf("pull vault %q", vault), func() error {
		if _, err := c.send(nil, &pullReq{Vault: vault, Since: since}); err != nil {
			return err
		}
		m, err := c.expect(typePage)
		if err != nil {
			return err
		}
		pm := m.(*pageMsg)
		page = api.LogPage{Head: pm.Head, Entries: make([]api.Entry, 0, pm.Count)}
		total := 0
		for range pm.Count {
			m, size, err := c.recv()
			if err != nil {
				return err
			}
			e, ok := m.(*entryMsg)
			if !ok {
				return c.unexpected(m, typeEntry)
			}
			if total += size; total > MaxBatch {
				return c.violated(fmt.Errorf("%w: the page passes %d bytes", ErrProtocol, MaxBatch))
			}
			page.Entries = append(page.Entries, e.E)
		}
		return nil
	})
	if err != nil {
		return api.LogPage{}, err
	}
	return page, nil
}

// Push appends entries base+1.. if base is the head. The entries go as
// one message each after the request; together they may not pass
// MaxBatch bytes (checked before anything is sent).
func (c *Client) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	op := fmt.Sprintf("push to vault %q", vault)
	if len(entries) == 0 || len(entries) > api.MaxAppend {
		return 0, fmt.Errorf("peer: %s: %d entries (want 1..%d per push)", op, len(entries), api.MaxAppend)
	}
	total := 0
	for i := range entries {
		n, err := size(&entryMsg{E: entries[i]})
		if err != nil {
			return 0, fmt.Errorf("peer: %s: entry %d: %w", op, i, err)
		}
		total += n
	}
	if total > MaxBatch {
		return 0, fmt.Errorf("peer: %s: %d bytes of entries, more than %d: push fewer at a time", op, total, MaxBatch)
	}
	var head uint64
	err := c.do(ctx, op, func() error {
		buf, err := c.send(nil, &pushReq{Vault: vault, Base: base, Count: uint32(len(entries))})
		if err != nil {
			return err
		}
		for i := range entries {
			if buf, err = c.send(buf, &entryMsg{E: entries[i]}); err != nil {
				return err
			}
		}
		m, err := c.expect(typeHead)
		if err != nil {
			return err
		}
		head = m.(*headMsg).Head
		return nil
	})
	return head, err
}

// PutBlob uploads the chunks, one message each, after the request and
// before an end message. A failing source, or a chunk out of the frames'
// bounds, sends an abort instead, so that the other device keeps the blob
// it had; the source's error is returned as is (wrapped).
func (c *Client) PutBlob(ctx context.Context, vault, itemID, blob string, chunks iter.Seq2[[]byte, error]) error {
	return c.do(ctx, fmt.Sprintf("put blob %q of item %q", blob, itemID), func() error {
		buf, err := c.send(make([]byte, 0, chunkMax), &putBlobReq{Vault: vault, Item: itemID, Blob: blob})
		if err != nil {
			return err
		}
		var n uint32
		var srcErr error
		for chunk, err := range chunks {
			switch {
			case err != nil:
				srcErr = err
			case len(chunk) < frames.Min || len(chunk) > frames.Max:
				srcErr = fmt.Errorf("%w: chunk %d is %d bytes (want %d..%d)", frames.ErrMalformed, n, len(chunk), frames.Min, frames.Max)
			case n == api.MaxBlobFrames:
				srcErr = fmt.Errorf("%w: more than %d chunks", frames.ErrMalformed, api.MaxBlobFrames)
			}
			if srcErr != nil {
				break
			}
			if buf, err = c.send(buf, &chunkMsg{Data: chunk}); err != nil {
				return err
			}
			n++
		}
		if srcErr == nil && n == 0 {
			srcErr = fmt.Errorf("%w: no chunks (an empty attachment is one sealed chunk)", frames.ErrMalformed)
		}
		if srcErr != nil {
			if _, err := c.send(buf, &abortMsg{}); err != nil {
				return err
			}
			// The other device answers the aborted upload with an error;
			// the source's error is the one that matters, unless the
			// connection broke meanwhile.
			if _, err := c.expect(typeDone); err != nil && c.unusable() != nil {
				return err
			}
			return srcErr
		}
		if _, err := c.send(buf, &endMsg{Count: n}); err != nil {
			return err
		}
		_, err = c.expect(typeDone)
		return err
	})
}

// GetBlob calls fn with each chunk as its message arrives. After fn fails
// the rest of the blob is read and dropped (a request cannot be withdrawn),
// and fn's error is returned as is (wrapped).
func (c *Client) GetBlob(ctx context.Context, vault, itemID, blob string, fn func(idx int, chunk []byte) error) error {
	return c.do(ctx, fmt.Sprintf("get blob %q of item %q", blob, itemID), func() error {
		if _, err := c.send(nil, &getBlobReq{Vault: vault, Item: itemID, Blob: blob}); err != nil {
			return err
		}
		var n uint32
		var fnErr error
		for {
			m, _, err := c.recv()
			if err != nil {
				if fnErr != nil {
					return fnErr
				}
				return err
			}
			switch m := m.(type) {
			case *chunkMsg:
				if n == api.MaxBlobFrames {
					return c.violated(fmt.Errorf("%w: the blob has more than %d chunks", ErrProtocol, api.MaxBlobFrames))
				}
				if fnErr == nil {
					fnErr = fn(int(n), m.Data)
				}
				n++
			case *endMsg:
				if m.Count != n {
					return c.violated(fmt.Errorf("%w: the blob ended after %d chunks, its end message says %d", ErrProtocol, n, m.Count))
				}
				return fnErr
			case *errorMsg:
				err := c.answer(m)
				if fnErr != nil && !errors.Is(err, ErrProtocol) {
					return fnErr
				}
				return err
			default:
				return c.unexpected(m, typeChunk)
			}
		}
	})
}
