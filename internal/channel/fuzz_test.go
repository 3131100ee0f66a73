package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecodeFrame from seedFrames")

// fuzzMaxMessage is small so the fuzzer reaches the length bounds.
const fuzzMaxMessage = 4096

// seedFrames builds the seed corpus by hand from the fixed test keys: valid
// frames of every type, a rekeyed stream, and one input per refusal. Every
// seed states the outcome it exercises in its name.
func seedFrames(t testing.TB) map[string][]byte {
	t.Helper()
	ka, _ := testKeyPair()
	opt := Options{MaxMessage: fuzzMaxMessage, RekeyMessages: 1}
	write := func(typ frameType, payloads ...[]byte) []byte {
		c, buf := recorder(t, ka, opt)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		for _, p := range payloads {
			if err := c.writeFrame(typ, p); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	data := write(typeData, []byte("hello, device"))
	header := func(typ frameType, counter uint64, n uint32) []byte {
		h := appendHeader(nil, frameHeader{typ: typ, counter: counter})
		binary.BigEndian.PutUint32(h, n)
		return h
	}
	seeds := map[string][]byte{
		"ok-data":              data,
		"ok-data-empty":        write(typeData, nil),
		"ok-close":             write(typeClose, []byte{closeNormal}),
		"ok-close-refused":     write(typeClose, []byte{closeRefused}),
		"ok-proof":             write(typeProof, []byte("identity proof")),
		"ok-data-max":          write(typeData, make([]byte, fuzzMaxMessage)),
		"truncated-header":     data[:HeaderSize-1],
		"truncated-body":       data[:len(data)-1],
		"tampered-tag":         slices.Concat(data[:len(data)-1], []byte{data[len(data)-1] ^ 1}),
		"tampered-counter":     slices.Concat(header(typeData, 1, uint32(len(data)-HeaderSize)), data[HeaderSize:]),
		"unknown-type":         slices.Concat(header(0x09, 0, Overhead), make([]byte, Overhead)),
		"zero-type":            make([]byte, HeaderSize+Overhead),
		"too-large":            header(typeData, 0, fuzzMaxMessage+Overhead+1),
		"too-large-max-u32":    header(typeData, 0, 0xFFFFFFFF),
		"short-length":         slices.Concat(header(typeData, 0, Overhead-1), make([]byte, Overhead-1)),
		"rekey-with-payload":   slices.Concat(header(typeRekey, 0, Overhead+1), make([]byte, Overhead+1)),
		"close-without-reason": slices.Concat(header(typeClose, 0, Overhead), make([]byte, Overhead)),
		"proof-too-large":      header(typeProof, 0, Overhead+MaxProof+1),
	}
	// A whole stream: data, rekey (RekeyMessages is 1), data, close.
	c, buf := recorder(t, ka, opt)
	c.WriteMessage([]byte("one"))
	c.WriteMessage([]byte("two"))
	c.Close()
	seeds["ok-data-rekey-data-close"] = buf.Bytes()
	return seeds
}

const corpusDir = "testdata/fuzz/FuzzDecodeFrame"

// TestSeedCorpusUpToDate keeps the committed corpus equal to seedFrames.
// Regenerate with: go test -run TestSeedCorpusUpToDate -update-corpus
func TestSeedCorpusUpToDate(t *testing.T) {
	seeds := seedFrames(t)
	if *updateCorpus {
		if err := os.RemoveAll(corpusDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range seeds {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(corpusDir, name)
		if *updateCorpus {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v); run go test -run TestSeedCorpusUpToDate -update-corpus", path, err)
		}
	}
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(seeds) {
		t.Errorf("%s has %d files, seedFrames %d", corpusDir, len(entries), len(seeds))
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder and to a
// receiving connection. The decoder must refuse with a known error or
// return a frame that re-encodes to exactly the input (one encoding per
// frame); a frame must open only if it re-seals to the same bytes; and the
// connection must end every stream with a known error, never a panic.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range seedFrames(f) {
		f.Add(b)
	}
	ka, kb := testKeyPair()
	maxData := fuzzMaxMessage + Overhead
	f.Fuzz(func(t *testing.T, b []byte) {
		fh, ct, n, err := decodeFrame(b, maxData)
		if err != nil {
			if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("decode: unexpected error %v", err)
			}
		} else {
			if n != HeaderSize+fh.length || len(ct) != fh.length || fh.length < Overhead || fh.length > maxData {
				t.Fatalf("decode: inconsistent frame %+v, %d bytes consumed", fh, n)
			}
			if enc := append(appendHeader(nil, fh), ct...); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("decode: re-encoding differs")
			}
			var rx, tx direction
			rx.label, _ = directionLabels(&kb.Recv, &kb.Send)
			tx.label, _ = directionLabels(&ka.Send, &ka.Recv)
			if err := rx.setKey(&kb.Recv); err != nil {
				t.Fatal(err)
			}
			if err := tx.setKey(&ka.Send); err != nil {
				t.Fatal(err)
			}
			pt, err := rx.open(fh.typ, fh.counter, bytes.Clone(ct))
			if err != nil {
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("open: unexpected error %v", err)
				}
			} else {
				tx.next = fh.counter
				if again := tx.seal(nil, fh.typ, pt); !bytes.Equal(again, b[:n]) {
					t.Fatalf("an opened frame does not re-seal to the same bytes")
				}
			}
		}

		rc := player(kb, Options{MaxMessage: fuzzMaxMessage, RekeyMessages: 1}, b)
		for range 1000 {
			if _, err := rc.ReadMessage(); err != nil {
				known := []error{io.EOF, ErrTampered, ErrTooLarge, ErrTruncated, ErrReplay, ErrOutOfOrder, ErrProtocol, ErrRefused, ErrRekeyOverdue}
				if !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
					t.Fatalf("read: unexpected error %v", err)
				}
				return
			}
		}
	})
}
