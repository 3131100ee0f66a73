package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Format constants of the chunked stream.
const (
	// StreamMagic starts every stream header: "SHST", SafeHold STream.
	StreamMagic = "SHST"
	// ChunkSize is the plaintext size of every chunk but the final one.
	ChunkSize = 64 << 10
	// ChunkOverhead is what sealing adds to a chunk: two 16-byte tags.
	ChunkOverhead = 2 * tagSize
	// MaxChunkCiphertext is the size of a sealed full chunk.
	MaxChunkCiphertext = ChunkSize + ChunkOverhead
	saltSize           = 32
	// StreamHeaderSize is magic (4) + version (1) + suite (1) + chunk size
	// (4, big-endian, must be ChunkSize) + salt (32).
	StreamHeaderSize = len(StreamMagic) + 1 + 1 + 4 + saltSize
)

const (
	labelStreamAES     = "safehold/stream/v1/suite1/aes-256-gcm"
	labelStreamXChaCha = "safehold/stream/v1/suite1/xchacha20-poly1305"
)

// Stream errors, in addition to the envelope errors.
var (
	// ErrChunkSize means a chunk (or the header's chunk size) has a size the
	// format does not allow at that place.
	ErrChunkSize = errors.New("envelope: invalid chunk size")
	// ErrChunkOrder means SealChunk was called out of order or after the
	// final chunk.
	ErrChunkOrder = errors.New("envelope: chunk out of order")
	// ErrTrailingData means bytes follow the end of a header.
	ErrTrailingData = errors.New("envelope: trailing data")
	// ErrClosed means a Writer was used after Close.
	ErrClosed = errors.New("envelope: stream writer closed")
)

// streamCiphers holds the per-stream subkeys and the bound header and context.
type streamCiphers struct {
	c      *ciphers
	header []byte // StreamHeaderSize bytes
	ctxAAD []byte
}

func newStreamCiphers(key []byte, ctx Context, header []byte) (*streamCiphers, error) {
	c, err := newCiphers(key, header[StreamHeaderSize-saltSize:], labelStreamAES, labelStreamXChaCha)
	if err != nil {
		return nil, err
	}
	return &streamCiphers{c: c, header: header, ctxAAD: ctx.AAD()}, nil
}

// nonces returns the AES-GCM and XChaCha20 nonces of a chunk: zero bytes,
// then the big-endian chunk index, then the final flag (0x01 or 0x00).
func chunkNonces(index uint64, final bool) (g [gNonceSize]byte, x [xNonceSize]byte) {
	var f byte
	if final {
		f = 1
	}
	binary.BigEndian.PutUint64(g[gNonceSize-9:], index)
	g[gNonceSize-1] = f
	binary.BigEndian.PutUint64(x[xNonceSize-9:], index)
	x[xNonceSize-1] = f
	return g, x
}

// chunkAAD is header || u64(index) || u8(final) || ctx.AAD().
func (s *streamCiphers) chunkAAD(index uint64, final bool) []byte {
	aad := make([]byte, 0, len(s.header)+9+len(s.ctxAAD))
	aad = append(aad, s.header...)
	aad = binary.BigEndian.AppendUint64(aad, index)
	if final {
		aad = append(aad, 1)
	} else {
		aad = append(aad, 0)
	}
	return append(aad, s.ctxAAD...)
}

// checkPlainSize enforces the one canonical chunking: every non-final chunk
// is exactly ChunkSize; the final chunk is 1..ChunkSize bytes, or empty only
// when it is chunk 0 (the empty stream).
func checkPlainSize(index uint64, final bool, n int) error {
	switch {
	case !final && n != ChunkSize:
		return fmt.Errorf("%w: non-final chunk of %d bytes", ErrChunkSize, n)
	case final && n > ChunkSize:
		return fmt.Errorf("%w: final chunk of %d bytes", ErrChunkSize, n)
	case final && n == 0 && index != 0:
		return fmt.Errorf("%w: empty final chunk after chunk 0", ErrChunkSize)
	}
	return nil
}

// StreamSealer seals the chunks of one stream, in order. It is not safe for
// concurrent use.
type StreamSealer struct {
	s    *streamCiphers
	next uint64
	done bool
}

// NewStreamSealer starts a stream under key for ctx. It returns the sealer
// and the StreamHeaderSize-byte header, which must be stored with the chunks
// and given to NewStreamOpener. The 32-byte salt is read from rand.
func NewStreamSealer(rand io.Reader, key []byte, ctx Context) (*StreamSealer, []byte, error) {
	if len(key) != KeySize {
		return nil, nil, ErrKeySize
	}
	if err := ctx.Validate(); err != nil {
		return nil, nil, err
	}
	header := make([]byte, StreamHeaderSize)
	copy(header, StreamMagic)
	header[4] = Version
	header[5] = Suite1
	binary.BigEndian.PutUint32(header[6:10], ChunkSize)
	if _, err := io.ReadFull(rand, header[10:]); err != nil {
		return nil, nil, fmt.Errorf("envelope: reading random salt: %w", err)
	}
	s, err := newStreamCiphers(key, ctx, header)
	if err != nil {
		return nil, nil, err
	}
	return &StreamSealer{s: s}, append([]byte(nil), header...), nil
}

// SealChunk seals chunk number index. Chunks must be sealed in order from 0,
// exactly once each, and the last one with final set; every non-final chunk
// holds exactly ChunkSize bytes and the final one 1..ChunkSize bytes (0 only
// for an empty stream). The result is len(pt)+ChunkOverhead bytes.
func (w *StreamSealer) SealChunk(index uint64, final bool, pt []byte) ([]byte, error) {
	return w.sealChunk(nil, index, final, pt)
}

func (w *StreamSealer) sealChunk(dst []byte, index uint64, final bool, pt []byte) ([]byte, error) {
	if w.done {
		return nil, fmt.Errorf("%w: stream already finished", ErrChunkOrder)
	}
	if index != w.next {
		return nil, fmt.Errorf("%w: got chunk %d, want %d", ErrChunkOrder, index, w.next)
	}
	if !final && index == math.MaxUint64 {
		return nil, fmt.Errorf("%w: chunk counter exhausted", ErrChunkOrder)
	}
	if err := checkPlainSize(index, final, len(pt)); err != nil {
		return nil, err
	}
	if cap(dst) < len(pt)+ChunkOverhead {
		dst = make([]byte, 0, len(pt)+ChunkOverhead)
	}
	g, x := chunkNonces(index, final)
	ct := w.s.c.seal(dst[:0], g[:], x[:], pt, w.s.chunkAAD(index, final))
	w.next++
	w.done = final
	return ct, nil
}

// StreamOpener opens the chunks of one stream, in any order. It is safe for
// concurrent use.
//
// A stream is complete only once its final chunk has opened: a caller of the
// chunk API that stores chunks separately MUST treat a stream whose final
// chunk is missing as truncated. NewReader does this itself.
type StreamOpener struct {
	s *streamCiphers
}

// ParseStreamHeader checks a stream header: exact size, magic, version,
// suite and chunk size.
func ParseStreamHeader(header []byte) error {
	if err := parseHeader(header, StreamMagic); err != nil {
		return err
	}
	if len(header) < StreamHeaderSize {
		return ErrTruncated
	}
	if len(header) > StreamHeaderSize {
		return ErrTrailingData
	}
	if n := binary.BigEndian.Uint32(header[6:10]); n != ChunkSize {
		return fmt.Errorf("%w: header chunk size %d", ErrChunkSize, n)
	}
	return nil
}

// NewStreamOpener checks header and derives the stream subkeys.
func NewStreamOpener(key []byte, ctx Context, header []byte) (*StreamOpener, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	if err := ctx.Validate(); err != nil {
		return nil, err
	}
	if err := ParseStreamHeader(header); err != nil {
		return nil, err
	}
	s, err := newStreamCiphers(key, ctx, append([]byte(nil), header...))
	if err != nil {
		return nil, err
	}
	return &StreamOpener{s: s}, nil
}

// OpenChunk authenticates and decrypts chunk number index, which the caller
// says is (or is not) the final one. A chunk presented at another index, with
// the wrong final flag, or from another stream fails with ErrAuth.
func (r *StreamOpener) OpenChunk(index uint64, final bool, ct []byte) ([]byte, error) {
	return r.openChunk(nil, index, final, ct)
}

func (r *StreamOpener) openChunk(dst []byte, index uint64, final bool, ct []byte) ([]byte, error) {
	if len(ct) < ChunkOverhead {
		return nil, ErrTruncated
	}
	if err := checkPlainSize(index, final, len(ct)-ChunkOverhead); err != nil {
		return nil, err
	}
	if cap(dst) < len(ct)-tagSize {
		dst = make([]byte, 0, len(ct)-tagSize)
	}
	g, x := chunkNonces(index, final)
	return r.s.c.open(dst[:0], g[:], x[:], ct, r.s.chunkAAD(index, final))
}

// writer is the io.WriteCloser returned by NewWriter.
type writer struct {
	dst   io.Writer
	s     *StreamSealer
	buf   []byte // pending plaintext, at most ChunkSize
	out   []byte // sealed chunk buffer
	err   error  // sticky
	index uint64
}

// NewWriter returns a WriteCloser that encrypts everything written to it as
// one stream and writes header and chunks to dst. Close MUST be called to
// seal the final chunk; it does not close dst. Memory use is bounded by about
// two chunks whatever the stream length.
func NewWriter(dst io.Writer, rand io.Reader, key []byte, ctx Context) (io.WriteCloser, error) {
	s, header, err := NewStreamSealer(rand, key, ctx)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(header); err != nil {
		return nil, fmt.Errorf("envelope: writing stream header: %w", err)
	}
	return &writer{
		dst: dst,
		s:   s,
		buf: make([]byte, 0, ChunkSize),
		out: make([]byte, 0, MaxChunkCiphertext),
	}, nil
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		// A full buffer is sealed as non-final only once more data arrives,
		// so that a stream of a multiple of ChunkSize ends with a full final
		// chunk rather than an empty one.
		if len(w.buf) == ChunkSize {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

func (w *writer) flush(final bool) error {
	ct, err := w.s.sealChunk(w.out, w.index, final, w.buf)
	if err != nil {
		w.err = err
		return err
	}
	if _, err := w.dst.Write(ct); err != nil {
		w.err = fmt.Errorf("envelope: writing chunk: %w", err)
		return w.err
	}
	w.index++
	clear(w.buf)
	w.buf = w.buf[:0]
	return nil
}

// Close seals and writes the final chunk.
func (w *writer) Close() error {
	if w.err != nil {
		if w.err == ErrClosed {
			return nil
		}
		return w.err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	w.err = ErrClosed
	return nil
}

// reader is the io.Reader returned by NewReader.
type reader struct {
	src   io.Reader
	o     *StreamOpener
	in    []byte // MaxChunkCiphertext+1: a chunk plus one byte of lookahead
	carry bool   // in[0] holds the lookahead byte of the previous read
	pt    []byte // decrypted, not yet returned
	ptBuf []byte
	index uint64
	done  bool  // final chunk opened
	err   error // sticky
}

// NewReader reads the stream header from src and returns a Reader of the
// plaintext. Each chunk is authenticated before any of its bytes are
// returned, but a stream is only known to be complete when Read returns
// io.EOF: consumers MUST NOT act on the data before that (write to a
// temporary file and rename it at EOF). Truncation, reordering, dropping,
// duplication or appended data yield ErrAuth, ErrTruncated or ErrTrailingData.
func NewReader(src io.Reader, key []byte, ctx Context) (io.Reader, error) {
	header := make([]byte, StreamHeaderSize)
	if n, err := io.ReadFull(src, header); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// Report a wrong magic, version or suite before a short read.
			if perr := parseHeader(header[:n], StreamMagic); perr != nil {
				return nil, perr
			}
			return nil, ErrTruncated
		}
		return nil, fmt.Errorf("envelope: reading stream header: %w", err)
	}
	o, err := NewStreamOpener(key, ctx, header)
	if err != nil {
		return nil, err
	}
	return &reader{
		src:   src,
		o:     o,
		in:    make([]byte, MaxChunkCiphertext+1),
		ptBuf: make([]byte, 0, MaxChunkCiphertext),
	}, nil
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

// next reads and opens one chunk. A chunk is final when the source ends
// right after it (a one-byte lookahead tells), so the format needs no length
// field and a dropped final chunk fails authentication.
func (r *reader) next() error {
	start := 0
	if r.carry {
		start = 1
	}
	n, err := io.ReadFull(r.src, r.in[start:MaxChunkCiphertext])
	n += start
	final := false
	switch {
	case err == nil:
		// A full chunk: look one byte ahead.
		m, perr := io.ReadFull(r.src, r.in[MaxChunkCiphertext:])
		switch {
		case m == 1:
		case errors.Is(perr, io.EOF):
			final = true
		default:
			return fmt.Errorf("envelope: reading stream: %w", perr)
		}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		final = true
		if n == 0 {
			return ErrTruncated
		}
	default:
		return fmt.Errorf("envelope: reading stream: %w", err)
	}
	pt, oerr := r.o.openChunk(r.ptBuf, r.index, final, r.in[:n])
	if oerr != nil {
		return oerr
	}
	if !final {
		r.in[0] = r.in[MaxChunkCiphertext]
		r.carry = true
	}
	r.pt = pt
	r.index++
	r.done = final
	return nil
}
