package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/server/storage"
)

// Blob frames (docs/api.md): the body of a blob PUT or GET is a sequence
// of frames, each a u32 big-endian length and that many bytes of one sealed
// attachment chunk, at most api.MaxBlobFrames frames. A body without frames
// is refused: an empty file is one (sealed, non-empty) chunk.
const (
	minFrame = 32
	maxFrame = 65568

	// frameTimeout is how long one frame may take to arrive or leave. A
	// blob may be gigabytes, so the server's whole-request timeouts do not
	// apply to blob transfers; a stalled one ends after this.
	frameTimeout = time.Minute
)

// blobPath returns the vault, item and blob ids of a blob path.
func blobPath(r *http.Request) (vault, item, blob string, err error) {
	vault, item, blob = r.PathValue("vault"), r.PathValue("item"), r.PathValue("blob")
	for _, x := range []struct{ name, v string }{{"vault", vault}, {"item", item}, {"blob", blob}} {
		if !validID(x.v) {
			return "", "", "", badRequest("%s id is not a 26-character id", x.name)
		}
	}
	return vault, item, blob, nil
}

// readFrames yields the frames of body one at a time, so that an upload is
// never held in memory whole. A framing error is yielded once and also
// stored in *ferr, so the handler answers it whatever the store does with
// it.
func readFrames(body io.Reader, rc *http.ResponseController, ferr *error) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		fail := func(e *httpError) {
			*ferr = e
			yield(nil, e)
		}
		var hdr [4]byte
		for count := 0; ; count++ {
			rc.SetReadDeadline(time.Now().Add(frameTimeout))
			if _, err := io.ReadFull(body, hdr[:]); err != nil {
				switch {
				case err == io.EOF && count > 0:
					return
				case err == io.EOF:
					fail(badRequest("the blob body is empty; send at least one frame"))
				default:
					fail(badRequest("frame %d: the body ended inside the length", count))
				}
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n < minFrame || n > maxFrame {
				fail(badRequest("frame %d: length %d is outside %d..%d", count, n, minFrame, maxFrame))
				return
			}
			if count >= api.MaxBlobFrames {
				fail(tooLarge(fmt.Sprintf("the blob has more than %d frames", api.MaxBlobFrames)))
				return
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(body, buf); err != nil {
				fail(badRequest("frame %d: the body ended inside the frame", count))
				return
			}
			if !yield(buf, nil) {
				return
			}
		}
	}
}

// handleBlobPut stores an attachment's chunks, replacing any earlier
// upload of the same blob; on any error nothing of this upload remains.
func (s *Server) handleBlobPut(w http.ResponseWriter, r *http.Request, p *principal) error {
	vault, item, blob, err := blobPath(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.vaultFor(ctx, p, vault, org.Write); err != nil {
		return err
	}
	var ferr error
	rc := http.NewResponseController(w)
	err = s.store.PutBlob(ctx, vault, item, blob, readFrames(r.Body, rc, &ferr))
	rc.SetWriteDeadline(time.Now().Add(frameTimeout)) // the upload may have outlived the write timeout
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleBlobGet streams an attachment's chunks as frames.
func (s *Server) handleBlobGet(w http.ResponseWriter, r *http.Request, p *principal) error {
	vault, item, blob, err := blobPath(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.vaultFor(ctx, p, vault, org.Read); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	started := false
	var hdr [4]byte
	err = s.store.Blob(ctx, vault, item, blob, func(idx int, chunk []byte) error {
		if !started {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		rc.SetWriteDeadline(time.Now().Add(frameTimeout))
		binary.BigEndian.PutUint32(hdr[:], uint32(len(chunk)))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		_, err := w.Write(chunk)
		return err
	})
	switch {
	case err == nil && started:
		return nil
	case err == nil || errors.Is(err, storage.ErrNotFound) && !started:
		return notFound("blob")
	case !started:
		return fmt.Errorf("read blob: %w", err)
	default:
		// The status is sent; cut the response short so the client sees
		// a truncated body, not a complete one.
		if ctx.Err() == nil {
			s.log.Error("blob download failed midway", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}
