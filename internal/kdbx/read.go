package kdbx

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/safehold/safehold/internal/importer"
)

// Read decrypts a KDBX 3.1 or 4.x database and maps its entries. password
// and keyFile (nil for none) are the composite key's parts. With a key
// file and an empty password, Read tries the key file alone, then the key
// file with the empty password, as KeePassXC does. Errors wrap
// ErrWrongPassword, ErrCorrupt, ErrUnsupported or ErrTooLarge.
func Read(r io.Reader, password, keyFile []byte) (*importer.Result, error) {
	return readWithin(r, password, keyFile, defaultLimits)
}

func readWithin(r io.Reader, password, keyFile []byte, l workLimits) (*importer.Result, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readHeaderWithin(br, l)
	if err != nil {
		return nil, err
	}
	keys, err := compositeKeys(password, keyFile)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	if h.major >= 4 {
		return readV4(br, h, keys)
	}
	return readV3(br, h, keys)
}

// compositeKeys lists the composite keys to try, most likely first.
func compositeKeys(password, keyFile []byte) ([][]byte, error) {
	if keyFile != nil && len(password) == 0 {
		alone, err := compositeKey(nil, keyFile)
		if err != nil {
			return nil, err
		}
		withEmpty, err := compositeKey([]byte{}, keyFile)
		if err != nil {
			return nil, err
		}
		return [][]byte{alone, withEmpty}, nil
	}
	k, err := compositeKey(password, keyFile)
	if err != nil {
		return nil, err
	}
	return [][]byte{k}, nil
}

// keys derives the outer cipher key and, for KDBX 4, the HMAC base key.
func (h *header) keys(composite []byte) (encKey, hmacBase []byte) {
	transformed := h.kdf.transform(composite)
	defer clear(transformed)
	e := sha256.New()
	e.Write(h.masterSeed)
	e.Write(transformed)
	m := sha512.New()
	m.Write(h.masterSeed)
	m.Write(transformed)
	m.Write([]byte{1})
	return e.Sum(nil), m.Sum(nil)
}

func readV4(r io.Reader, h *header, composites [][]byte) (*importer.Result, error) {
	var check [64]byte
	if _, err := io.ReadFull(r, check[:]); err != nil {
		return nil, truncated(err, "the header checksum")
	}
	if sum := sha256.Sum256(h.raw); !bytes.Equal(sum[:], check[:32]) {
		return nil, corrupt("header checksum does not match (the file is damaged)")
	}
	var encKey, hmacBase []byte
	for _, c := range composites {
		e, m := h.keys(c)
		mac := hmac.New(sha256.New, hmacBlockKey(m, ^uint64(0)))
		mac.Write(h.raw)
		if hmac.Equal(mac.Sum(nil), check[32:]) {
			encKey, hmacBase = e, m
			break
		}
		clear(e)
		clear(m)
	}
	if encKey == nil {
		return nil, fmt.Errorf("%w: the header's HMAC does not match; check the password and key file", ErrWrongPassword)
	}
	defer clear(encKey)
	defer clear(hmacBase)
	plain, err := newDecrypter(h.cipher, encKey, h.iv, &hmacBlockReader{r: r, key: hmacBase})
	if err != nil {
		return nil, err
	}
	payload := plain
	if h.compressed {
		zr, err := gzip.NewReader(plain)
		if err != nil {
			return nil, payloadErr(err, "the compressed payload")
		}
		payload = zr
	}
	// Bound the whole decompressed payload, inner header included, before
	// reading any of it: the inner header can hold at most MaxBinaries of
	// attachments (each with a 5-byte field prefix) and its three other
	// fields (stream id, stream key, end), each at most MaxHeaderField;
	// the XML after it has its own MaxXML limit below.
	payload = &limitReader{r: payload, n: maxPayloadV4,
		what: fmt.Sprintf("the decompressed payload is more than %d bytes", int64(maxPayloadV4))}
	payload = bufio.NewReaderSize(payload, 64<<10)
	stream, binaries, err := readInnerHeader(payload)
	if err != nil {
		return nil, err
	}
	return decodeXML(&limitReader{r: payload, n: MaxXML, what: fmt.Sprintf("the XML document is more than %d bytes", MaxXML)}, stream, binaries, true)
}

func readV3(r *bufio.Reader, h *header, composites [][]byte) (*importer.Result, error) {
	first, err := r.Peek(32)
	if err != nil {
		return nil, truncated(err, "the encrypted payload")
	}
	var encKey []byte
	for _, c := range composites {
		e, m := h.keys(c)
		clear(m)
		start, err := decryptPrefix(h.cipher, e, h.iv, first)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(start, h.startBytes) {
			encKey = e
			break
		}
		clear(e)
	}
	if encKey == nil {
		return nil, fmt.Errorf("%w: the decrypted start bytes do not match; check the password and key file", ErrWrongPassword)
	}
	defer clear(encKey)
	plain, err := newDecrypter(h.cipher, encKey, h.iv, r)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(plain, make([]byte, 32)); err != nil {
		return nil, truncated(err, "the encrypted payload")
	}
	stream, err := newInnerStream(h.innerStream, h.streamKey)
	if err != nil {
		return nil, err
	}
	var payload io.Reader = &hashedBlockReader{r: plain}
	if h.compressed {
		zr, err := gzip.NewReader(payload)
		if err != nil {
			return nil, payloadErr(err, "the compressed payload")
		}
		payload = zr
	}
	return decodeXML(&limitReader{r: payload, n: MaxXML, what: fmt.Sprintf("the XML document is more than %d bytes", MaxXML)}, stream, nil, false)
}

// payloadErr classifies an error from the payload pipeline: our own
// sentinel errors pass through; anything else (gzip) means damage.
func payloadErr(err error, what string) error {
	for _, e := range []error{ErrCorrupt, ErrTooLarge, ErrWrongPassword, ErrUnsupported} {
		if errors.Is(err, e) {
			return err
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("%s is truncated", what)
	}
	return corrupt("%s: %v", what, err)
}

// maxPayloadV4 bounds the decompressed KDBX 4 payload: the inner header
// (attachments, their field prefixes, and the stream id, stream key and end
// fields) plus the XML document.
const maxPayloadV4 = MaxXML + MaxBinaries + MaxBinaryCount*5 + 3*(5+MaxHeaderField)

// Inner header field IDs (KDBX 4).
const (
	ihEnd      = 0
	ihStreamID = 1
	ihStreamKy = 2
	ihBinary   = 3
)

// readInnerHeader reads the KDBX 4 inner header: the protected-value stream
// and the attachments, in order.
func readInnerHeader(r io.Reader) (innerStream, [][]byte, error) {
	var (
		id       uint32
		haveID   bool
		key      []byte
		binaries [][]byte
		total    int64
	)
	defer func() { clear(key) }() // on the error paths too
	for {
		var pre [5]byte
		if _, err := io.ReadFull(r, pre[:]); err != nil {
			return nil, nil, payloadErr(err, "the inner header")
		}
		size := int64(int32(binary.LittleEndian.Uint32(pre[1:])))
		if size < 0 {
			return nil, nil, corrupt("inner header field %d has a negative size", pre[0])
		}
		if pre[0] == ihBinary {
			if total+size > MaxBinaries {
				return nil, nil, tooLarge("attachments total more than %d bytes", MaxBinaries)
			}
			if len(binaries) >= MaxBinaryCount {
				return nil, nil, tooLarge("more than %d attachments", MaxBinaryCount)
			}
		} else if size > MaxHeaderField {
			return nil, nil, tooLarge("inner header field %d is %d bytes", pre[0], size)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, nil, payloadErr(err, "the inner header")
		}
		switch pre[0] {
		case ihEnd:
			if !haveID || key == nil {
				return nil, nil, corrupt("inner header lacks the stream id or key")
			}
			s, err := newInnerStream(id, key)
			clear(key)
			return s, binaries, err
		case ihStreamID:
			if haveID {
				return nil, nil, corrupt("inner header field %d appears twice", pre[0])
			}
			if len(data) != 4 {
				return nil, nil, corrupt("inner stream id is %d bytes, want 4", len(data))
			}
			id, haveID = binary.LittleEndian.Uint32(data), true
			if err := checkStreamID(id); err != nil {
				return nil, nil, err
			}
		case ihStreamKy:
			if key != nil {
				clear(data)
				return nil, nil, corrupt("inner header field %d appears twice", pre[0])
			}
			if len(data) == 0 {
				return nil, nil, corrupt("inner stream key is empty")
			}
			key = data
		case ihBinary:
			if len(data) < 1 {
				return nil, nil, corrupt("attachment %d has no flags byte", len(binaries))
			}
			total += size
			binaries = append(binaries, data[1:])
		default:
			return nil, nil, corrupt("unknown inner header field %d", pre[0])
		}
	}
}
