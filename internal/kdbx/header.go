package kdbx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// File signatures and versions.
const (
	sig1         = 0x9AA2D903
	sig2         = 0xB54BFB67 // KDBX (KeePass 2.x)
	sig2KeePass1 = 0xB54BFB65
	sig2Pre2     = 0xB54BFB66 // KeePass 2.x pre-release

	version31 = 0x00030001
	version40 = 0x00040000
)

// Outer header field IDs.
const (
	hEnd                 = 0
	hComment             = 1
	hCipherID            = 2
	hCompression         = 3
	hMasterSeed          = 4
	hTransformSeed       = 5 // KDBX 3.1
	hTransformRounds     = 6 // KDBX 3.1
	hEncryptionIV        = 7
	hProtectedStreamKey  = 8  // KDBX 3.1
	hStreamStartBytes    = 9  // KDBX 3.1
	hInnerRandomStreamID = 10 // KDBX 3.1
	hKDFParameters       = 11 // KDBX 4
	hPublicCustomData    = 12 // KDBX 4
)

// Cipher, KDF and inner stream identifiers.
var (
	cipherAES256   = [16]byte{0x31, 0xc1, 0xf2, 0xe6, 0xbf, 0x71, 0x43, 0x50, 0xbe, 0x58, 0x05, 0x21, 0x6a, 0xfc, 0x5a, 0xff}
	cipherChaCha20 = [16]byte{0xd6, 0x03, 0x8a, 0x2b, 0x8b, 0x6f, 0x4c, 0xb5, 0xa5, 0x24, 0x33, 0x9a, 0x31, 0xdb, 0xb5, 0x9a}
	cipherTwofish  = [16]byte{0xad, 0x68, 0xf2, 0x9f, 0x57, 0x6f, 0x4b, 0xb9, 0xa3, 0x6a, 0xd4, 0x7a, 0xf9, 0x65, 0x34, 0x6c}

	kdfAES      = [16]byte{0xc9, 0xd9, 0xf3, 0x9a, 0x62, 0x8a, 0x44, 0x60, 0xbf, 0x74, 0x0d, 0x08, 0xc1, 0x8a, 0x4f, 0xea}
	kdfAESKDBX4 = [16]byte{0x7c, 0x02, 0xbb, 0x82, 0x79, 0xa7, 0x4a, 0xc0, 0x92, 0x7d, 0x11, 0x4a, 0x00, 0x64, 0x82, 0x38}
	kdfArgon2d  = [16]byte{0xef, 0x63, 0x6d, 0xdf, 0x8c, 0x29, 0x44, 0x4b, 0x91, 0xf7, 0xa9, 0xa4, 0x03, 0xe3, 0x0a, 0x0c}
	kdfArgon2id = [16]byte{0x9e, 0x29, 0x8b, 0x19, 0x56, 0xdb, 0x47, 0x73, 0xb2, 0x3d, 0xfc, 0x3e, 0xc6, 0xf0, 0xa1, 0xe6}
)

const (
	streamNone     = 0
	streamArcFour  = 1
	streamSalsa20  = 2
	streamChaCha20 = 3
)

// header is the parsed outer header.
type header struct {
	major, minor uint16
	cipher       [16]byte
	compressed   bool
	masterSeed   []byte
	iv           []byte
	kdf          kdfParams
	// KDBX 3.1 only.
	streamKey   []byte
	startBytes  []byte
	innerStream uint32
	// raw is the header as read, signature through the end field, for the
	// KDBX 4 checksum and HMAC.
	raw []byte
}

// readHeader reads the outer header, recording the raw bytes.
func readHeader(r io.Reader) (*header, error) { return readHeaderWithin(r, defaultLimits) }

func readHeaderWithin(r io.Reader, l workLimits) (*header, error) {
	var raw bytes.Buffer
	tr := io.TeeReader(io.LimitReader(r, MaxHeader+1), &raw)
	var pre [12]byte
	if _, err := io.ReadFull(tr, pre[:]); err != nil {
		return nil, corrupt("file is shorter than a KeePass header (%d bytes read)", raw.Len())
	}
	s1, s2 := binary.LittleEndian.Uint32(pre[0:]), binary.LittleEndian.Uint32(pre[4:])
	if s1 != sig1 {
		return nil, corrupt("not a KeePass database (bad signature)")
	}
	switch s2 {
	case sig2:
	case sig2KeePass1:
		return nil, unsupported("this is a KeePass 1.x .kdb database; open it in KeePassXC or KeePass 2 and save it as KDBX")
	case sig2Pre2:
		return nil, unsupported("this is a KeePass 2 pre-release database; open it in KeePass 2 and save it again")
	default:
		return nil, corrupt("not a KeePass database (bad second signature)")
	}
	h := &header{minor: binary.LittleEndian.Uint16(pre[8:]), major: binary.LittleEndian.Uint16(pre[10:])}
	switch h.major {
	case 3, 4:
	default:
		if h.major < 3 {
			return nil, unsupported("KDBX version %d.%d; open it in KeePass 2 or KeePassXC and save it to upgrade to KDBX 4", h.major, h.minor)
		}
		return nil, unsupported("KDBX version %d.%d is newer than this reader (3.1 and 4.x)", h.major, h.minor)
	}
	seen := map[byte]bool{}
	for {
		var id [1]byte
		if _, err := io.ReadFull(tr, id[:]); err != nil {
			return nil, headerEOF(err)
		}
		var size uint32
		if h.major >= 4 {
			var b [4]byte
			if _, err := io.ReadFull(tr, b[:]); err != nil {
				return nil, headerEOF(err)
			}
			size = binary.LittleEndian.Uint32(b[:])
		} else {
			var b [2]byte
			if _, err := io.ReadFull(tr, b[:]); err != nil {
				return nil, headerEOF(err)
			}
			size = uint32(binary.LittleEndian.Uint16(b[:]))
		}
		if size > MaxHeaderField {
			return nil, tooLarge("header field %d is %d bytes, more than the %d allowed", id[0], size, MaxHeaderField)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, headerEOF(err)
		}
		if raw.Len() > MaxHeader {
			return nil, tooLarge("header is more than %d bytes", MaxHeader)
		}
		if id[0] == hEnd {
			break
		}
		if seen[id[0]] {
			return nil, corrupt("header field %d appears twice", id[0])
		}
		seen[id[0]] = true
		if err := h.setField(id[0], data); err != nil {
			return nil, err
		}
	}
	h.raw = raw.Bytes()
	if err := h.check(l); err != nil {
		return nil, err
	}
	return h, nil
}

func headerEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("header is truncated")
	}
	return fmt.Errorf("reading the header: %w", err)
}

func (h *header) setField(id byte, data []byte) error {
	v3 := h.major < 4
	switch id {
	case hComment, hPublicCustomData:
		// Not used.
	case hCipherID:
		if len(data) != 16 {
			return corrupt("cipher id is %d bytes, want 16", len(data))
		}
		copy(h.cipher[:], data)
	case hCompression:
		if len(data) != 4 {
			return corrupt("compression flags are %d bytes, want 4", len(data))
		}
		switch binary.LittleEndian.Uint32(data) {
		case 0:
		case 1:
			h.compressed = true
		default:
			return unsupported("compression algorithm %d (known: none, gzip)", binary.LittleEndian.Uint32(data))
		}
	case hMasterSeed:
		if len(data) != 32 {
			return corrupt("master seed is %d bytes, want 32", len(data))
		}
		h.masterSeed = data
	case hEncryptionIV:
		h.iv = data
	case hTransformSeed:
		if v3 {
			h.kdf.uuid = kdfAES
			h.kdf.seed = data
		}
	case hTransformRounds:
		if v3 {
			if len(data) != 8 {
				return corrupt("transform rounds are %d bytes, want 8", len(data))
			}
			h.kdf.uuid = kdfAES
			h.kdf.rounds = binary.LittleEndian.Uint64(data)
		}
	case hProtectedStreamKey:
		if v3 {
			h.streamKey = data
		}
	case hStreamStartBytes:
		if v3 {
			h.startBytes = data
		}
	case hInnerRandomStreamID:
		if v3 {
			if len(data) != 4 {
				return corrupt("inner stream id is %d bytes, want 4", len(data))
			}
			h.innerStream = binary.LittleEndian.Uint32(data)
		}
	case hKDFParameters:
		if !v3 {
			d, err := parseVariantDict(data)
			if err != nil {
				return fmt.Errorf("KDF parameters: %w", err)
			}
			k, err := kdfFromDict(d)
			if err != nil {
				return err
			}
			h.kdf = k
		}
	default:
		return corrupt("unknown header field %d", id)
	}
	return nil
}

// check verifies that every field needed is present and well sized.
func (h *header) check(l workLimits) error {
	switch h.cipher {
	case cipherAES256, cipherTwofish:
		if len(h.iv) != 16 {
			return corrupt("encryption IV is %d bytes, want 16 for this cipher", len(h.iv))
		}
	case cipherChaCha20:
		if len(h.iv) != 12 {
			return corrupt("encryption IV is %d bytes, want 12 for ChaCha20", len(h.iv))
		}
	case [16]byte{}:
		return corrupt("header names no cipher")
	default:
		return unsupported("cipher %x (known: AES-256, ChaCha20, Twofish)", h.cipher)
	}
	if h.masterSeed == nil {
		return corrupt("header has no master seed")
	}
	if h.major < 4 {
		if len(h.kdf.seed) != 32 {
			return corrupt("transform seed is %d bytes, want 32", len(h.kdf.seed))
		}
		if len(h.startBytes) != 32 {
			return corrupt("stream start bytes are %d bytes, want 32", len(h.startBytes))
		}
		if h.streamKey == nil {
			return corrupt("header has no protected stream key")
		}
		if err := checkStreamID(h.innerStream); err != nil {
			return err
		}
	} else if h.kdf.uuid == [16]byte{} {
		return corrupt("header has no KDF parameters")
	}
	return h.kdf.checkWithin(l)
}

func checkStreamID(id uint32) error {
	switch id {
	case streamNone, streamSalsa20, streamChaCha20:
		return nil
	case streamArcFour:
		return unsupported("the ArcFour inner stream of early KeePass 2 versions; open and save the file in KeePass 2 to upgrade it")
	}
	return unsupported("inner stream %d (known: Salsa20, ChaCha20)", id)
}

// Variant dictionary value types (KDBX 4).
const (
	vdEnd     = 0x00
	vdUint32  = 0x04
	vdUint64  = 0x05
	vdBool    = 0x08
	vdInt32   = 0x0C
	vdInt64   = 0x0D
	vdString  = 0x18
	vdBytes   = 0x42
	vdVersion = 0x0100
	// maxVDItems bounds the entries of one dictionary.
	maxVDItems = 256
)

type vdValue struct {
	typ  byte
	data []byte
}

// parseVariantDict parses a KDBX 4 variant dictionary strictly: known
// types with their fixed sizes, no duplicate names, nothing after the end.
func parseVariantDict(b []byte) (map[string]vdValue, error) {
	if len(b) < 2 {
		return nil, corrupt("variant dictionary is truncated")
	}
	if v := binary.LittleEndian.Uint16(b); v&0xFF00 > vdVersion&0xFF00 {
		return nil, unsupported("variant dictionary version %#04x (known: 1.x)", v)
	}
	b = b[2:]
	d := map[string]vdValue{}
	for {
		if len(b) < 1 {
			return nil, corrupt("variant dictionary has no end marker")
		}
		typ := b[0]
		b = b[1:]
		if typ == vdEnd {
			if len(b) != 0 {
				return nil, corrupt("%d bytes after the variant dictionary's end", len(b))
			}
			return d, nil
		}
		if len(d) >= maxVDItems {
			return nil, tooLarge("variant dictionary has more than %d items", maxVDItems)
		}
		name, rest, err := vdChunk(b)
		if err != nil {
			return nil, err
		}
		value, rest, err := vdChunk(rest)
		if err != nil {
			return nil, err
		}
		b = rest
		want := map[byte]int{vdUint32: 4, vdUint64: 8, vdBool: 1, vdInt32: 4, vdInt64: 8, vdString: -1, vdBytes: -1}
		n, ok := want[typ]
		if !ok {
			return nil, corrupt("variant dictionary item %q has unknown type %#02x", name, typ)
		}
		if n >= 0 && len(value) != n {
			return nil, corrupt("variant dictionary item %q is %d bytes, want %d", name, len(value), n)
		}
		if _, dup := d[string(name)]; dup {
			return nil, corrupt("variant dictionary item %q appears twice", name)
		}
		d[string(name)] = vdValue{typ: typ, data: value}
	}
}

func vdChunk(b []byte) (chunk, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, corrupt("variant dictionary is truncated")
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if n > uint32(len(b)) {
		return nil, nil, corrupt("variant dictionary item of %d bytes runs past the end", n)
	}
	return b[:n], b[n:], nil
}

// vdWriter builds a variant dictionary in the order items are added.
type vdWriter struct{ buf bytes.Buffer }

func newVDWriter() *vdWriter {
	w := &vdWriter{}
	_ = binary.Write(&w.buf, binary.LittleEndian, uint16(vdVersion))
	return w
}

func (w *vdWriter) add(typ byte, name string, value []byte) {
	w.buf.WriteByte(typ)
	_ = binary.Write(&w.buf, binary.LittleEndian, uint32(len(name)))
	w.buf.WriteString(name)
	_ = binary.Write(&w.buf, binary.LittleEndian, uint32(len(value)))
	w.buf.Write(value)
}

func (w *vdWriter) uint32(name string, v uint32) {
	w.add(vdUint32, name, binary.LittleEndian.AppendUint32(nil, v))
}

func (w *vdWriter) uint64(name string, v uint64) {
	w.add(vdUint64, name, binary.LittleEndian.AppendUint64(nil, v))
}

func (w *vdWriter) bytes() []byte {
	w.buf.WriteByte(vdEnd)
	return w.buf.Bytes()
}
