package peer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/frames"
)

// Serve answers the requests that arrive on c with backing, one at a time,
// until the other end closes the connection between requests (nil), ctx
// ends (ctx's cause), the connection fails, or a message breaks the wire
// format (an error wrapping ErrProtocol, after an error message to the
// other end). It closes c when it returns. Errors of backing are answered
// and do not end it.
//
// The byte slices of a request are slices of its message, and the message
// of register, login and update_account (which carry a login key) is
// wiped once the backing returns: a backing must not keep them.
func Serve(ctx context.Context, c MsgConn, backing remote.Remote) error {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s := &server{conn: c, backing: backing}
	for {
		msg, err := c.ReadMessage()
		if err == nil {
			err = s.handle(ctx, msg)
		} else if errors.Is(err, io.EOF) {
			err = nil
			if ctx.Err() == nil {
				return nil
			}
		} else {
			err = fmt.Errorf("peer: read a request: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("peer: %w", context.Cause(ctx))
		}
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				code := codeBadRequest
				if errors.Is(err, errVersion) {
					code = codeUnsupported
				}
				s.write(&errorMsg{Code: code, Detail: detail(err.Error())}) // best effort: we close anyway
				return fmt.Errorf("peer: the other device sent a malformed request: %w", err)
			}
			return err
		}
	}
}

type server struct {
	conn    MsgConn
	backing remote.Remote
	buf     []byte // reused for chunk and entry messages
}

// write sends m. A message out of bounds is a bug of ours or of the
// backing; it is answered as a failure rather than sent.
func (s *server) write(m message) error {
	b, err := encode(s.buf[:0], m)
	if err != nil {
		b, _ = encode(s.buf[:0], &errorMsg{Code: codeFailed})
	}
	s.buf = b
	if err := s.conn.WriteMessage(b); err != nil {
		return fmt.Errorf("peer: write a response: %w", err)
	}
	return nil
}

// reply sends the response to a request whose backing call returned err.
func (s *server) reply(err error, ok message) error {
	if err != nil {
		return s.write(errorFor(err))
	}
	return s.write(ok)
}

// next reads the next message of a request's stream. The end of the
// connection here is not orderly.
func (s *server) next() (message, int, error) {
	b, err := s.conn.ReadMessage()
	if err != nil {
		return nil, 0, fmt.Errorf("peer: read a request's stream: %w", err)
	}
	m, err := decode(b)
	return m, len(b), err
}

func unexpected(m message, where string) error {
	return fmt.Errorf("%w: a %s message %s", ErrProtocol, m.typ(), where)
}

// handle answers one request message. It returns only errors that end the
// connection.
func (s *server) handle(ctx context.Context, msg []byte) error {
	m, err := decode(msg)
	if err != nil {
		return err
	}
	if _, ok := m.(secretBearing); ok {
		defer clear(msg)
	}
	b := s.backing
	switch m := m.(type) {
	case *preloginReq:
		k, err := b.Prelogin(ctx, m.Email)
		return s.reply(err, &kdfMsg{KDF: k})
	case *registerReq:
		return s.reply(b.Register(ctx, m.R), &doneMsg{})
	case *loginReq:
		return s.reply(b.Login(ctx, m.R), &doneMsg{})
	case *accountReq:
		a, err := b.Account(ctx)
		return s.reply(err, &accountMsg{A: a})
	case *updateAccountReq:
		e, err := b.UpdateAccount(ctx, m.U)
		return s.reply(err, &epochMsg{Epoch: e})
	case *vaultsReq:
		return s.vaults(ctx)
	case *putVaultReq:
		return s.reply(b.PutVault(ctx, m.Vault, m.Record), &doneMsg{})
	case *pullReq:
		return s.pull(ctx, m)
	case *pushReq:
		return s.push(ctx, m)
	case *putBlobReq:
		return s.putBlob(ctx, m)
	case *getBlobReq:
		return s.getBlob(ctx, m)
	}
	return unexpected(m, "is not a request")
}

var errTooMany = errors.New("too many vaults, or records too large, to list in one response")

func (s *server) vaults(ctx context.Context) error {
	vs, err := s.backing.Vaults(ctx)
	if err != nil {
		return s.reply(err, nil)
	}
	total := 0
	for i := range vs {
		n, err := size(&vaultMsg{V: vs[i]})
		if err != nil {
			return s.reply(err, nil)
		}
		total += n
	}
	if len(vs) > MaxVaults || total > MaxBatch {
		return s.reply(errTooMany, nil)
	}
	if err := s.write(&vaultListMsg{Count: uint32(len(vs))}); err != nil {
		return err
	}
	for i := range vs {
		if err := s.write(&vaultMsg{V: vs[i]}); err != nil {
			return err
		}
	}
	return nil
}

// pull sends at most api.MaxPageLimit of the backing's entries, and fewer
// if their messages would pass MaxBatch bytes (always at least one, which
// MaxMessage bounds): the client asks again from where the page ends.
func (s *server) pull(ctx context.Context, m *pullReq) error {
	page, err := s.backing.Pull(ctx, m.Vault, m.Since)
	if err != nil {
		return s.reply(err, nil)
	}
	entries := page.Entries[:min(len(page.Entries), api.MaxPageLimit)]
	total := 0
	for i := range entries {
		n, err := size(&entryMsg{E: entries[i]})
		if err != nil {
			return s.reply(fmt.Errorf("entry %d: %w", m.Since+1+uint64(i), err), nil)
		}
		if total+n > MaxBatch && i > 0 {
			entries = entries[:i]
			break
		}
		total += n
	}
	if err := s.write(&pageMsg{Head: page.Head, Count: uint32(len(entries))}); err != nil {
		return err
	}
	for i := range entries {
		if err := s.write(&entryMsg{E: entries[i]}); err != nil {
			return err
		}
	}
	return nil
}

// push reads the request's entries, then pushes them all at once.
func (s *server) push(ctx context.Context, m *pushReq) error {
	entries := make([]api.Entry, 0, m.Count)
	total := 0
	for range m.Count {
		em, n, err := s.next()
		if err != nil {
			return err
		}
		e, ok := em.(*entryMsg)
		if !ok {
			return unexpected(em, "in a push")
		}
		if total += n; total > MaxBatch {
			return fmt.Errorf("%w: a push passes %d bytes", ErrProtocol, MaxBatch)
		}
		entries = append(entries, e.E)
	}
	head, err := s.backing.Push(ctx, m.Vault, m.Base, entries)
	return s.reply(err, &headMsg{Head: head})
}

// errAborted is what the backing reads from an upload the client aborted.
var errAborted = errors.New("the other device aborted the upload")

// upload is a blob arriving as chunk messages.
type upload struct {
	s       *server
	n       uint32 // chunks read
	done    bool   // end or abort read
	aborted bool
	fatal   error // the connection failed or the stream broke the format
}

// step reads one message of the upload: a chunk (returned), end or abort.
func (u *upload) step() []byte {
	m, _, err := u.s.next()
	if err != nil {
		u.fatal, u.done = err, true
		return nil
	}
	switch m := m.(type) {
	case *chunkMsg:
		if u.n == api.MaxBlobFrames {
			u.fatal = fmt.Errorf("%w: an upload of more than %d chunks", ErrProtocol, api.MaxBlobFrames)
			u.done = true
			return nil
		}
		u.n++
		return m.Data
	case *endMsg:
		if m.Count != u.n {
			u.fatal = fmt.Errorf("%w: an upload of %d chunks ends with a count of %d", ErrProtocol, u.n, m.Count)
		}
		u.done = true
	case *abortMsg:
		u.aborted, u.done = true, true
	default:
		u.fatal, u.done = unexpected(m, "in a blob upload"), true
	}
	return nil
}

// chunks is the upload as the backing reads it.
func (u *upload) chunks(yield func([]byte, error) bool) {
	for !u.done {
		c := u.step()
		switch {
		case u.fatal != nil:
			yield(nil, u.fatal)
			return
		case u.aborted:
			yield(nil, errAborted)
			return
		case c != nil && !yield(c, nil):
			return
		}
	}
}

func (s *server) putBlob(ctx context.Context, m *putBlobReq) error {
	u := &upload{s: s}
	err := s.backing.PutBlob(ctx, m.Vault, m.Item, m.Blob, u.chunks)
	// A backing that refused early has not read the stream: drop the rest.
	for !u.done {
		u.step()
	}
	if u.fatal != nil {
		return u.fatal
	}
	if u.aborted && err == nil {
		err = errAborted
	}
	return s.reply(err, &doneMsg{})
}

var errBadChunk = fmt.Errorf("%w: the blob's chunks are out of bounds", frames.ErrMalformed)

// getBlob sends each chunk as the backing reads it, then end, or an error
// if the backing fails part way.
func (s *server) getBlob(ctx context.Context, m *getBlobReq) error {
	var n uint32
	var werr error
	err := s.backing.GetBlob(ctx, m.Vault, m.Item, m.Blob, func(_ int, c []byte) error {
		if n == api.MaxBlobFrames || len(c) < frames.Min || len(c) > frames.Max {
			return errBadChunk
		}
		if werr = s.write(&chunkMsg{Data: c}); werr != nil {
			return werr
		}
		n++
		return nil
	})
	if werr != nil {
		return werr
	}
	return s.reply(err, &endMsg{Count: n})
}
