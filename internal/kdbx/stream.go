package kdbx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/salsa20/salsa"
	"golang.org/x/crypto/twofish"
)

// hmacBlockKey is the KDBX 4 HMAC key for block index i (the header uses
// index 2^64-1).
func hmacBlockKey(base []byte, i uint64) []byte {
	h := sha512.New()
	var idx [8]byte
	binary.LittleEndian.PutUint64(idx[:], i)
	h.Write(idx[:])
	h.Write(base)
	return h.Sum(nil)
}

func blockMAC(base []byte, i uint64, data []byte) []byte {
	m := hmac.New(sha256.New, hmacBlockKey(base, i))
	var pre [12]byte
	binary.LittleEndian.PutUint64(pre[:8], i)
	binary.LittleEndian.PutUint32(pre[8:], uint32(len(data)))
	m.Write(pre[:])
	m.Write(data)
	return m.Sum(nil)
}

// hmacBlockReader verifies and yields the KDBX 4 HMAC block stream:
// [32-byte HMAC][int32 size][data], ending with an empty block.
type hmacBlockReader struct {
	r    io.Reader
	key  []byte
	idx  uint64
	buf  []byte
	done bool
}

func (b *hmacBlockReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *hmacBlockReader) next() error {
	var pre [36]byte
	if _, err := io.ReadFull(b.r, pre[:]); err != nil {
		return truncated(err, "block %d", b.idx)
	}
	size := int32(binary.LittleEndian.Uint32(pre[32:]))
	if size < 0 || size > MaxBlock {
		return corrupt("block %d claims %d bytes (at most %d allowed)", b.idx, size, MaxBlock)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(b.r, data); err != nil {
		return truncated(err, "block %d", b.idx)
	}
	if !hmac.Equal(pre[:32], blockMAC(b.key, b.idx, data)) {
		return corrupt("block %d fails its integrity check (the file is damaged or was altered)", b.idx)
	}
	b.idx++
	if size == 0 {
		b.done = true
	}
	b.buf = data
	return nil
}

func truncated(err error, format string, args ...any) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("file is truncated in %s", fmt.Sprintf(format, args...))
	}
	return err
}

// writeHMACBlocks writes data as KDBX 4 HMAC blocks of at most blockSize
// bytes followed by the empty final block.
func writeHMACBlocks(w io.Writer, key, data []byte, blockSize int) error {
	var idx uint64
	for {
		n := min(len(data), blockSize)
		chunk := data[:n]
		data = data[n:]
		var size [4]byte
		binary.LittleEndian.PutUint32(size[:], uint32(n))
		for _, part := range [][]byte{blockMAC(key, idx, chunk), size[:], chunk} {
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
		idx++
		if n == 0 {
			return nil
		}
	}
}

// hashedBlockReader yields the KDBX 3.1 hashed block stream:
// [uint32 index][32-byte SHA-256][int32 size][data], ending with an empty
// block whose hash is zero.
type hashedBlockReader struct {
	r    io.Reader
	idx  uint32
	buf  []byte
	done bool
}

func (b *hashedBlockReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *hashedBlockReader) next() error {
	var pre [40]byte
	if _, err := io.ReadFull(b.r, pre[:]); err != nil {
		return truncated(err, "block %d", b.idx)
	}
	if idx := binary.LittleEndian.Uint32(pre[:4]); idx != b.idx {
		return corrupt("block %d carries index %d", b.idx, idx)
	}
	size := int32(binary.LittleEndian.Uint32(pre[36:]))
	if size < 0 || size > MaxBlock {
		return corrupt("block %d claims %d bytes (at most %d allowed)", b.idx, size, MaxBlock)
	}
	if size == 0 {
		if !bytes.Equal(pre[4:36], make([]byte, 32)) {
			return corrupt("final block %d has a non-zero hash", b.idx)
		}
		b.done = true
		return nil
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(b.r, data); err != nil {
		return truncated(err, "block %d", b.idx)
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], pre[4:36]) {
		return corrupt("block %d fails its hash check (the file is damaged)", b.idx)
	}
	b.idx++
	b.buf = data
	return nil
}

// newDecrypter returns a reader of the plaintext of src under the file's
// outer cipher.
func newDecrypter(id [16]byte, key, iv []byte, src io.Reader) (io.Reader, error) {
	switch id {
	case cipherChaCha20:
		c, err := chacha20.NewUnauthenticatedCipher(key, iv)
		if err != nil {
			return nil, corrupt("ChaCha20 setup: %v", err)
		}
		return cipher.StreamReader{S: c, R: src}, nil
	case cipherAES256, cipherTwofish:
		var b cipher.Block
		var err error
		if id == cipherAES256 {
			b, err = aes.NewCipher(key)
		} else {
			b, err = twofish.NewCipher(key)
		}
		if err != nil {
			return nil, corrupt("cipher setup: %v", err)
		}
		return &cbcReader{src: src, mode: cipher.NewCBCDecrypter(b, iv)}, nil
	}
	return nil, unsupported("cipher %x", id)
}

// decryptPrefix decrypts the first whole blocks of the ciphertext (32
// bytes: the KDBX 3.1 start bytes) to test a key before streaming.
func decryptPrefix(id [16]byte, key, iv, ct []byte) ([]byte, error) {
	out := make([]byte, len(ct))
	switch id {
	case cipherChaCha20:
		c, err := chacha20.NewUnauthenticatedCipher(key, iv)
		if err != nil {
			return nil, corrupt("ChaCha20 setup: %v", err)
		}
		c.XORKeyStream(out, ct)
	case cipherAES256, cipherTwofish:
		var b cipher.Block
		var err error
		if id == cipherAES256 {
			b, err = aes.NewCipher(key)
		} else {
			b, err = twofish.NewCipher(key)
		}
		if err != nil {
			return nil, corrupt("cipher setup: %v", err)
		}
		cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, ct)
	default:
		return nil, unsupported("cipher %x", id)
	}
	return out, nil
}

// cbcReader decrypts CBC with PKCS#7 padding as a stream: it holds back
// the last block until the source ends, then removes the padding.
type cbcReader struct {
	src  io.Reader
	mode cipher.BlockMode
	ct   []byte // ciphertext not yet decrypted
	out  []byte // plaintext ready
	eof  bool
	err  error
}

const cbcChunk = 64 << 10

func (c *cbcReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.fill()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (c *cbcReader) fill() {
	bs := c.mode.BlockSize()
	if !c.eof {
		buf := make([]byte, cbcChunk)
		n, err := io.ReadFull(c.src, buf)
		c.ct = append(c.ct, buf[:n]...)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			c.eof = true
		} else if err != nil {
			c.err = err
			return
		}
	}
	if !c.eof {
		// Keep at least one whole block back: it may hold the padding.
		n := (len(c.ct)/bs - 1) * bs
		if n > 0 {
			c.out = make([]byte, n)
			c.mode.CryptBlocks(c.out, c.ct[:n])
			c.ct = append(c.ct[:0], c.ct[n:]...)
		}
		return
	}
	if len(c.ct) == 0 || len(c.ct)%bs != 0 {
		c.err = corrupt("encrypted data is %d bytes past the last whole block, not a multiple of %d", len(c.ct), bs)
		return
	}
	out := make([]byte, len(c.ct))
	c.mode.CryptBlocks(out, c.ct)
	c.ct = nil
	pad := int(out[len(out)-1])
	if pad < 1 || pad > bs || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		// Deliver the data first: the caller's own checks (start bytes,
		// block hashes) say more than the padding does.
		c.out = out
		c.err = corrupt("encrypted data has invalid padding (the file is damaged)")
		return
	}
	c.out = out[:len(out)-pad]
	c.err = io.EOF
}

// encrypt encrypts data under the outer cipher (for Write).
func encrypt(id [16]byte, key, iv, data []byte) ([]byte, error) {
	switch id {
	case cipherChaCha20:
		c, err := chacha20.NewUnauthenticatedCipher(key, iv)
		if err != nil {
			return nil, err
		}
		out := make([]byte, len(data))
		c.XORKeyStream(out, data)
		return out, nil
	case cipherAES256:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		pad := aes.BlockSize - len(data)%aes.BlockSize
		out := make([]byte, len(data)+pad)
		copy(out, data)
		for i := len(data); i < len(out); i++ {
			out[i] = byte(pad)
		}
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
		return out, nil
	}
	return nil, fmt.Errorf("kdbx: no writer for cipher %x", id)
}

// innerStream produces the key stream that protected XML values are XORed
// with, in document order.
type innerStream interface {
	XORKeyStream(dst, src []byte)
}

// salsa20IV is KeePass's fixed Salsa20 nonce for the inner stream.
var salsa20IV = [8]byte{0xE8, 0x30, 0x09, 0x4B, 0x97, 0x20, 0x5D, 0x2A}

func newInnerStream(id uint32, key []byte) (innerStream, error) {
	switch id {
	case streamNone:
		return nullStream{}, nil
	case streamSalsa20:
		s := &salsaStream{key: sha256.Sum256(key)}
		copy(s.counter[:8], salsa20IV[:])
		return s, nil
	case streamChaCha20:
		h := sha512.Sum512(key)
		c, err := chacha20.NewUnauthenticatedCipher(h[:32], h[32:44])
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, checkStreamID(id)
}

type nullStream struct{}

func (nullStream) XORKeyStream(dst, src []byte) { copy(dst, src) }

// salsaStream is a Salsa20 key stream read across calls. The block
// function is x/crypto's; this only keeps the position.
type salsaStream struct {
	key     [32]byte
	counter [16]byte // nonce, then the little-endian block counter
	buf     [64 * 16]byte
	pos     int
	filled  bool
}

func (s *salsaStream) XORKeyStream(dst, src []byte) {
	for i := range src {
		if !s.filled || s.pos == len(s.buf) {
			clear(s.buf[:])
			salsa.XORKeyStream(s.buf[:], s.buf[:], &s.counter, &s.key)
			n := binary.LittleEndian.Uint64(s.counter[8:]) + uint64(len(s.buf)/64)
			binary.LittleEndian.PutUint64(s.counter[8:], n)
			s.pos, s.filled = 0, true
		}
		dst[i] = src[i] ^ s.buf[s.pos]
		s.pos++
	}
}

// limitReader fails with ErrTooLarge once more than n bytes are read.
type limitReader struct {
	r    io.Reader
	n    int64
	what string
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, tooLarge("%s", l.what)
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return 0, tooLarge("%s", l.what)
	}
	return n, err
}
