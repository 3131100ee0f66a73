package kdbx

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzLimits keep every accepted KDF cheap so that fuzzing stays fast; the
// checks themselves are the same as Read's.
var fuzzLimits = workLimits{aesRounds: 1000, argonMemory: 1 << 20, argonIterations: 4, argonWork: 4 << 20}

func FuzzRead(f *testing.F) {
	for i, o := range []WriteOptions{tiny(Argon2id, AES256, 1), tiny(Argon2d, ChaCha20, 2), tiny(AESKDF, AES256, 3)} {
		var buf bytes.Buffer
		if err := Write(&buf, richEntries()[:2+i%2], []byte("pw"), o); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), []byte("pw"))
	}
	f.Add(writeV3(f, richEntries(), []byte("pw"), 10, true, rand.NewChaCha8([32]byte{1})), []byte("pw"))
	f.Add(writeV3(f, richEntries()[1:2], []byte("pw"), 10, false, rand.NewChaCha8([32]byte{2})), []byte("pw"))
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "keepassxc-*.kdbx"))
	for _, p := range fixtures {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, []byte(fixturePassword))
		}
	}
	f.Fuzz(func(t *testing.T, data, pw []byte) {
		res, err := readWithin(bytes.NewReader(data), pw, nil, fuzzLimits)
		if err != nil {
			return
		}
		for _, e := range res.Entries {
			if err := e.Item.Validate(); err != nil {
				t.Fatalf("%s: Read returned an invalid item: %v", e.Where, err)
			}
			for _, h := range e.History {
				if err := h.Validate(); err != nil {
					t.Fatalf("%s: Read returned an invalid history item: %v", e.Where, err)
				}
			}
		}
	})
}

// FuzzVariantDict checks that the parser never panics and that what it
// accepts re-encodes (in name order) to a dictionary that parses equal.
func FuzzVariantDict(f *testing.F) {
	k := kdfParams{uuid: kdfArgon2id, seed: make([]byte, 32), memory: 1 << 20, iterations: 2, parallelism: 2, version: 0x13}
	f.Add(k.dict())
	a := kdfParams{uuid: kdfAES, seed: make([]byte, 32), rounds: 6000}
	f.Add(a.dict())
	w := newVDWriter()
	w.add(vdBool, "b", []byte{1})
	w.add(vdInt32, "i", []byte{1, 2, 3, 4})
	w.add(vdInt64, "l", make([]byte, 8))
	w.add(vdString, "s", []byte("text"))
	f.Add(w.bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseVariantDict(data)
		if err != nil {
			return
		}
		w := newVDWriter()
		for _, name := range slices.Sorted(maps.Keys(d)) {
			w.add(d[name].typ, name, d[name].data)
		}
		d2, err := parseVariantDict(w.bytes())
		if err != nil {
			t.Fatalf("re-encoded dictionary does not parse: %v", err)
		}
		if !maps.EqualFunc(d, d2, func(a, b vdValue) bool { return a.typ == b.typ && bytes.Equal(a.data, b.data) }) {
			t.Fatal("re-encoded dictionary differs")
		}
		if kp, err := kdfFromDict(d); err == nil {
			_ = kp.checkWithin(fuzzLimits)
		}
	})
}

// FuzzDecodeXML feeds the XML decoder directly (as KDBX 3.1 and 4).
func FuzzDecodeXML(f *testing.F) {
	stream, _ := newInnerStream(streamChaCha20, []byte("key"))
	opts := tiny(Argon2id, AES256, 1)
	_ = opts.fill()
	doc, _, err := buildXML(richEntries(), &opts, stream, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc, true)
	doc3, _, _ := buildXML(richEntries(), &opts, nullStream{}, false)
	f.Add(doc3, false)
	f.Add([]byte(`<KeePassFile><Root><Group><Entry><String><Key>Title</Key><Value Protected="True">AAAA</Value></String></Entry></Group></Root></KeePassFile>`), true)
	f.Fuzz(func(t *testing.T, data []byte, v4 bool) {
		s, _ := newInnerStream(streamSalsa20, []byte("key"))
		bins := [][]byte{[]byte("a"), nil}
		res, err := decodeXML(bytes.NewReader(data), s, bins, v4)
		if err != nil {
			return
		}
		for _, e := range res.Entries {
			if err := e.Item.Validate(); err != nil {
				t.Fatalf("%s: invalid item: %v", e.Where, err)
			}
		}
	})
}

func FuzzKeyFile(f *testing.F) {
	f.Add([]byte(`<KeyFile><Meta><Version>2.0</Version></Meta><Key><Data Hash="4BB06F8E">0707070707070707070707070707070707070707070707070707070707070707</Data></Key></KeyFile>`))
	f.Add([]byte(`<KeyFile><Meta><Version>1.0</Version></Meta><Key><Data>AAAA</Data></Key></KeyFile>`))
	f.Add(bytes.Repeat([]byte("a"), 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := keyFileKey(data); err == nil && len(k) == 0 && len(data) > 0 {
			t.Logf("empty key from %d bytes", len(data))
		}
	})
}
