// Package frames reads and writes an attachment's sealed chunks as blob
// frames, the format of a blob on the wire (PUT and GET
// /v1/vaults/{vault}/blobs/{item}/{blob}) and in a folder remote:
//
//	frame = u32 big-endian length || length bytes of one sealed chunk
//
// A blob is 1..api.MaxBlobFrames frames, each 32..65,568 bytes long (a
// sealed chunk of 0..65,536 bytes of plaintext); an empty attachment is one
// sealed chunk, so a blob without frames is malformed.
package frames

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/safehold/safehold/internal/api"
)

// Frame length bounds.
const (
	Min = 32
	Max = 65536 + 32
)

// ErrMalformed reports frames that break the format.
var ErrMalformed = errors.New("malformed blob frames")

// Write writes each chunk as a frame. It returns the source's error as is,
// ErrMalformed (wrapped) for a chunk out of bounds, too many chunks or
// none, and w's error (wrapped) if a write fails.
func Write(w io.Writer, chunks iter.Seq2[[]byte, error]) error {
	n := 0
	var hdr [4]byte
	for c, err := range chunks {
		if err != nil {
			return err
		}
		if len(c) < Min || len(c) > Max {
			return fmt.Errorf("%w: chunk %d is %d bytes (want %d..%d)", ErrMalformed, n, len(c), Min, Max)
		}
		if n == api.MaxBlobFrames {
			return fmt.Errorf("%w: more than %d chunks", ErrMalformed, api.MaxBlobFrames)
		}
		n++
		binary.BigEndian.PutUint32(hdr[:], uint32(len(c)))
		if _, err := w.Write(hdr[:]); err != nil {
			return fmt.Errorf("write blob: %w", err)
		}
		if _, err := w.Write(c); err != nil {
			return fmt.Errorf("write blob: %w", err)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no chunks (an empty attachment is one sealed chunk)", ErrMalformed)
	}
	return nil
}

// Read reads frames from r until EOF and calls fn with each chunk (a fresh
// slice the callee may keep). It returns fn's error as is, ErrMalformed
// (wrapped) for a length out of bounds, too many frames, none, or a frame
// cut short, and r's other errors wrapped.
func Read(r io.Reader, fn func(idx int, chunk []byte) error) error {
	var hdr [4]byte
	for idx := 0; ; idx++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			switch {
			case err == io.EOF && idx > 0:
				return nil
			case err == io.EOF:
				return fmt.Errorf("%w: no frames", ErrMalformed)
			case err == io.ErrUnexpectedEOF:
				return fmt.Errorf("%w: frame %d: cut short in its length", ErrMalformed, idx)
			}
			return fmt.Errorf("read blob frame %d: %w", idx, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < Min || n > Max {
			return fmt.Errorf("%w: frame %d is %d bytes (want %d..%d)", ErrMalformed, idx, n, Min, Max)
		}
		if idx == api.MaxBlobFrames {
			return fmt.Errorf("%w: more than %d frames", ErrMalformed, api.MaxBlobFrames)
		}
		c := make([]byte, n)
		if _, err := io.ReadFull(r, c); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return fmt.Errorf("%w: frame %d: cut short", ErrMalformed, idx)
			}
			return fmt.Errorf("read blob frame %d: %w", idx, err)
		}
		if err := fn(idx, c); err != nil {
			return err
		}
	}
}
