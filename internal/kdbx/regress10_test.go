package kdbx

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// buildV4 seals a hand-made decompressed payload (inner header + XML) as a
// valid KDBX 4 file under password, with tiny work factors.
func buildV4(t *testing.T, password []byte, payload func(zw *gzip.Writer)) []byte {
	t.Helper()
	o := tiny(Argon2id, AES256, 10)
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	k, err := o.kdf()
	if err != nil {
		t.Fatal(err)
	}
	h := &header{major: 4, kdf: k, compressed: true, cipher: cipherAES256,
		masterSeed: bytes.Repeat([]byte{1}, 32), iv: bytes.Repeat([]byte{2}, 16)}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	payload(zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	composite, err := compositeKey(password, nil)
	if err != nil {
		t.Fatal(err)
	}
	encKey, hmacBase := h.keys(composite)
	ct, err := encrypt(h.cipher, encKey, h.iv, z.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	hdr := h.encodeV4()
	out.Write(hdr)
	sum := sha256.Sum256(hdr)
	out.Write(sum[:])
	m := hmac.New(sha256.New, hmacBlockKey(hmacBase, ^uint64(0)))
	m.Write(hdr)
	out.Write(m.Sum(nil))
	if err := writeHMACBlocks(&out, hmacBase, ct, 1<<20); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The KDBX 4 inner header is read from the decompressed stream before the
// MaxXML limit is applied (readV4 wraps only decodeXML in limitReader), and
// it accepts any number of repeated stream-id / stream-key fields (each up
// to 1 MiB). So a gzip bomb placed in the inner header is not stopped:
// this file of a few hundred KB makes Read inflate and allocate 300 MiB
// (and 100 times that costs only 100 times the file), against the
// documented "The decompressed XML is capped at 256 MiB (a gzip bomb stops
// there)". Read must refuse it (ErrTooLarge, or ErrCorrupt for the
// duplicate fields).
func TestRegress10InnerHeaderGzipBomb(t *testing.T) {
	pw := []byte("pw")
	zeros := make([]byte, MaxHeaderField)
	file := buildV4(t, pw, func(zw *gzip.Writer) {
		field := func(id byte, data []byte) {
			var pre [5]byte
			pre[0] = id
			binary.LittleEndian.PutUint32(pre[1:], uint32(len(data)))
			zw.Write(pre[:])
			zw.Write(data)
		}
		field(ihStreamID, binary.LittleEndian.AppendUint32(nil, streamChaCha20))
		for range (MaxXML / MaxHeaderField) + 44 { // 300 MiB of stream keys
			field(ihStreamKy, zeros)
		}
		field(ihEnd, nil)
		zw.Write([]byte(`<KeePassFile><Root><Group><Name>R</Name></Group></Root></KeePassFile>`))
	})
	t.Logf("file is %d bytes", len(file))
	_, err := Read(bytes.NewReader(file), pw, nil)
	if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a %d-byte file that inflates to %d MiB of inner header: err = %v; want ErrTooLarge or ErrCorrupt",
			len(file), (MaxXML/MaxHeaderField)+44, err)
	}
}
