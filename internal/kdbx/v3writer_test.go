package kdbx

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"

	"github.com/safehold/safehold/internal/importer"
)

// writeV3 is a test-only KDBX 3.1 writer (AES-KDF, AES-256-CBC, Salsa20
// inner stream, hashed blocks, attachments in Meta/Binaries). Production
// writes KDBX 4 only; this exists so KDBX 3.1 reading is tested with tiny
// work factors and bad inputs can be built around a valid file.
func writeV3(t testing.TB, entries []importer.Entry, password []byte, rounds uint64, compress bool, rnd io.Reader) []byte {
	t.Helper()
	r := func(n int) []byte {
		b := make([]byte, n)
		if _, err := io.ReadFull(rnd, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	h := &header{major: 3, minor: 1, cipher: cipherAES256, compressed: compress}
	h.masterSeed = r(32)
	h.kdf = kdfParams{uuid: kdfAES, seed: r(32), rounds: rounds}
	h.iv = r(16)
	h.streamKey = r(32)
	h.startBytes = r(32)
	h.innerStream = streamSalsa20

	stream, err := newInnerStream(streamSalsa20, h.streamKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := &WriteOptions{Rand: rnd}
	if err := opts.fill(); err != nil {
		t.Fatal(err)
	}
	doc, _, err := buildXML(entries, opts, stream, false)
	if err != nil {
		t.Fatal(err)
	}
	if compress {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(doc)
		zw.Close()
		doc = z.Bytes()
	}
	var plain bytes.Buffer
	plain.Write(h.startBytes)
	var idx uint32
	for chunk := range chunks(doc, 1000) {
		binary.Write(&plain, binary.LittleEndian, idx)
		sum := sha256.Sum256(chunk)
		plain.Write(sum[:])
		binary.Write(&plain, binary.LittleEndian, uint32(len(chunk)))
		plain.Write(chunk)
		idx++
	}
	binary.Write(&plain, binary.LittleEndian, idx)
	plain.Write(make([]byte, 36))

	composite, err := compositeKey(password, nil)
	if err != nil {
		t.Fatal(err)
	}
	encKey, _ := h.keys(composite)
	ct, err := encrypt(h.cipher, encKey, h.iv, plain.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, []uint32{sig1, sig2, version31})
	field := func(id byte, data []byte) {
		out.WriteByte(id)
		binary.Write(&out, binary.LittleEndian, uint16(len(data)))
		out.Write(data)
	}
	comp := uint32(0)
	if compress {
		comp = 1
	}
	field(hCipherID, h.cipher[:])
	field(hCompression, binary.LittleEndian.AppendUint32(nil, comp))
	field(hMasterSeed, h.masterSeed)
	field(hTransformSeed, h.kdf.seed)
	field(hTransformRounds, binary.LittleEndian.AppendUint64(nil, rounds))
	field(hEncryptionIV, h.iv)
	field(hProtectedStreamKey, h.streamKey)
	field(hStreamStartBytes, h.startBytes)
	field(hInnerRandomStreamID, binary.LittleEndian.AppendUint32(nil, streamSalsa20))
	field(hEnd, []byte("\r\n\r\n"))
	out.Write(ct)
	return out.Bytes()
}

func chunks(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}
