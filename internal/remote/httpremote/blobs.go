package httpremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/frames"
)

func blobPath(vault, item, blob string) string {
	return api.PathVaults + "/" + vault + "/blobs/" + item + "/" + blob
}

// watchdog cancels a transfer that makes no progress for idle.
type watchdog struct {
	t    *time.Timer
	idle time.Duration
}

func newWatchdog(idle time.Duration, cancel context.CancelCauseFunc) *watchdog {
	stalled := fmt.Errorf("%w: the blob transfer made no progress for %s", remote.ErrUnavailable, idle)
	return &watchdog{t: time.AfterFunc(idle, func() { cancel(stalled) }), idle: idle}
}

func (w *watchdog) kick() { w.t.Reset(w.idle) }
func (w *watchdog) stop() { w.t.Stop() }

// progressWriter kicks the watchdog on each write and remembers the first
// write error (the transport stopped reading).
type progressWriter struct {
	w    io.Writer
	wd   *watchdog
	mu   sync.Mutex
	werr error
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.wd.kick()
	if err != nil {
		p.mu.Lock()
		if p.werr == nil {
			p.werr = err
		}
		p.mu.Unlock()
	}
	return n, err
}

func (p *progressWriter) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr != nil
}

// progressReader kicks the watchdog on each read and remembers the first
// error other than EOF.
type progressReader struct {
	r    io.Reader
	wd   *watchdog
	rerr error
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.wd.kick()
	if err != nil && err != io.EOF && p.rerr == nil {
		p.rerr = err
	}
	return n, err
}

// errUploadDone ends the frame writer once the request is over.
var errUploadDone = errors.New("upload ended")

// PutBlob streams the chunks as frames in one request; nothing is held in
// memory but the chunk being sent. The source's error, or a chunk out of
// bounds, aborts the upload (the server keeps the earlier blob, if any) and
// is returned. A transfer that stalls for Options.BlobIdle ends with
// remote.ErrUnavailable.
func (c *Client) PutBlob(ctx context.Context, vault, item, blob string, chunks iter.Seq2[[]byte, error]) error {
	if err := checkIDs("vault", vault, "item", item, "blob", blob); err != nil {
		return err
	}
	tok, err := c.accessToken(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(c.blobIdle, cancel)
	defer wd.stop()

	pr, pw := io.Pipe()
	w := &progressWriter{w: pw, wd: wd}
	var srcErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := frames.Write(w, chunks)
		if err != nil && !w.failed() {
			srcErr = err // the source's, or a framing rule's
		}
		pw.CloseWithError(err) // nil: EOF, the body is complete
	}()
	path := blobPath(vault, item, blob)
	resp, err := c.send(ctx, http.MethodPut, path, pr, -1, "application/octet-stream", tok)
	pr.CloseWithError(errUploadDone) // the writer must not block on a reader that left
	<-done
	if srcErr != nil {
		if resp != nil {
			resp.Body.Close()
		}
		if errors.Is(srcErr, frames.ErrMalformed) {
			return fmt.Errorf("upload blob %s: %w", blob, srcErr)
		}
		return srcErr
	}
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", blob, err)
	}
	err = c.finish(ctx, http.MethodPut, path, resp, nil)
	if c.tokenRefused(err) {
		// The body is spent and the source may not replay; renew the
		// session so that the caller's retry goes through.
		if _, rerr := c.refresh(ctx, tok); rerr != nil {
			return fmt.Errorf("upload blob %s: %w", blob, rerr)
		}
		return fmt.Errorf("%w: upload blob %s: the session was renewed during the upload; try again", remote.ErrUnavailable, blob)
	}
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", blob, err)
	}
	return nil
}

// GetBlob streams the blob's frames to fn, checking each frame's length
// and their count; ErrNotFound if absent. fn's error is returned as is. A
// transfer cut short is remote.ErrUnavailable (fn has then seen a prefix).
func (c *Client) GetBlob(ctx context.Context, vault, item, blob string, fn func(idx int, chunk []byte) error) error {
	if err := checkIDs("vault", vault, "item", item, "blob", blob); err != nil {
		return err
	}
	tok, err := c.accessToken(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(c.blobIdle, cancel)
	defer wd.stop()

	path := blobPath(vault, item, blob)
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		if resp, err = c.send(ctx, http.MethodGet, path, nil, 0, "", tok); err != nil {
			return fmt.Errorf("download blob %s: %w", blob, err)
		}
		if resp.StatusCode == http.StatusOK {
			break
		}
		err = responseError(resp)
		resp.Body.Close()
		if attempt == 0 && c.tokenRefused(err) {
			if tok, err = c.refresh(ctx, tok); err != nil {
				return fmt.Errorf("download blob %s: %w", blob, err)
			}
			continue
		}
		return fmt.Errorf("download blob %s: %w", blob, err)
	}
	defer resp.Body.Close()
	body := &progressReader{r: resp.Body, wd: wd}
	var fnErr error
	err = frames.Read(body, func(idx int, chunk []byte) error {
		fnErr = fn(idx, chunk)
		return fnErr
	})
	switch {
	case err == nil || err == fnErr:
		return err
	case body.rerr != nil:
		return fmt.Errorf("download blob %s: %w", blob, c.netError(ctx, http.MethodGet, path, body.rerr))
	case errors.Is(err, frames.ErrMalformed) && ctx.Err() != nil:
		return fmt.Errorf("download blob %s: %w", blob, c.netError(ctx, http.MethodGet, path, context.Cause(ctx)))
	case errors.Is(err, frames.ErrMalformed):
		// A server that fails midway cuts the body short; so does a
		// dropped connection.
		return fmt.Errorf("%w: download blob %s: %v", remote.ErrUnavailable, blob, err)
	}
	return fmt.Errorf("download blob %s: %w", blob, err)
}
