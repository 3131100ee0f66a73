package archive

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
)

var testPassword = []byte("archive password ✓")

func testOpts(seed string) WriteOptions {
	return WriteOptions{Params: kdf.TestParams(), Rand: random.NewDeterministic([]byte(seed)), AllowInsecure: true}
}

var readOpts = ReadOptions{AllowInsecure: true}

// pattern returns n bytes of a fixed, non-repeating pattern.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func sampleEntries() []importer.Entry {
	when := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	login := item.Item{
		Type: item.Login, Title: "GitHub — ünïcødé 🔑", Username: "alice", Password: "s3cret\"\n\\",
		URLs: []string{"https://github.com"}, Notes: "line 1\nline 2 ✓", TOTP: "JBSWY3DPEHPK3PXP",
		Fields: []item.Field{{Name: "recovery", Kind: item.KindHidden, Value: "r-e-c"}, {Name: "born", Kind: item.KindDate, Value: "2000-01-02"}},
		Tags:   []string{"work", "dev"}, Folder: "Work/Code", Favorite: true, Created: when, Modified: when,
	}
	v1 := login.Clone()
	v1.Password = "old one"
	v2 := login.Clone()
	v2.Password = "older one"
	card := item.Item{Type: item.Card, Title: "Visa", Card: &item.CardData{Holder: "A B", Number: "4111111111111111", Expiry: "01/2030", CVV: "123"}}
	note := item.Item{Type: item.Note, Title: "empty note"}
	return []importer.Entry{
		{Item: login, History: []item.Item{v2, v1}, Attachments: []importer.File{
			{Name: "big.bin", Data: pattern(3*MaxDataRecord+17, 1)}, // several DATA records and stream chunks
			{Name: "empty.txt", Data: []byte{}},
			{Name: "ключ.txt", Data: []byte("κλειδί")},
		}},
		{Item: card},
		{Item: note},
	}
}

func writeArchive(t testing.TB, entries []importer.Entry, seed string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries, testPassword, testOpts(seed)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// canon is what an entry should read back as: the item without id,
// revision and attachment metadata.
func canon(e importer.Entry) importer.Entry {
	strip := func(it item.Item) item.Item {
		it = it.Clone()
		it.ID, it.Revision, it.Attachments = "", 0, nil
		b, _ := json.Marshal(it)
		out, _ := item.Decode(b)
		return out
	}
	out := importer.Entry{Item: strip(e.Item)}
	for _, h := range e.History {
		out.History = append(out.History, strip(h))
	}
	for _, f := range e.Attachments {
		out.Attachments = append(out.Attachments, importer.File{Name: f.Name, Data: append([]byte{}, f.Data...)})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	in := sampleEntries()
	in[0].Item.ID, in[0].Item.Revision = "some-id", 7
	in[0].Item.Attachments = []item.Attachment{{ID: "x", Name: "big.bin", Key: []byte("vault key material")}}
	data := writeArchive(t, in, "round trip")
	if bytes.Contains(data, []byte("vault key material")) || bytes.Contains(data, []byte("alice")) {
		t.Fatal("plaintext in the archive")
	}
	res, err := Read(bytes.NewReader(data), testPassword, readOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != len(in) || len(res.Skipped) != 0 {
		t.Fatalf("got %d entries, %d skipped", len(res.Entries), len(res.Skipped))
	}
	for i := range in {
		want := canon(in[i])
		got := res.Entries[i]
		if !strings.HasPrefix(got.Where, fmt.Sprintf("item %d ", i+1)) {
			t.Errorf("entry %d: where %q", i, got.Where)
		}
		got.Where = ""
		for j := range got.Attachments {
			if len(got.Attachments[j].Data) == 0 {
				got.Attachments[j].Data = []byte{}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("entry %d differs:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestEmptyArchive(t *testing.T) {
	data := writeArchive(t, nil, "empty")
	res, err := Read(bytes.NewReader(data), testPassword, readOpts)
	if err != nil || len(res.Entries) != 0 {
		t.Fatalf("%v, %+v", err, res)
	}
}

func TestWrongPassword(t *testing.T) {
	data := writeArchive(t, sampleEntries(), "wrong password")
	_, err := Read(bytes.NewReader(data), []byte("not the password"), readOpts)
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("got %v, want ErrWrongPassword", err)
	}
}

func TestInsecureProfileNeedsSwitch(t *testing.T) {
	data := writeArchive(t, sampleEntries(), "insecure")
	_, err := Read(bytes.NewReader(data), testPassword, ReadOptions{})
	if !errors.Is(err, kdf.ErrInsecureNotAllowed) {
		t.Fatalf("got %v", err)
	}
}

func TestNotArchiveAndVersion(t *testing.T) {
	data := writeArchive(t, nil, "version")
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotArchive},
		{"text", []byte("hello, this is not an archive at all......................."), ErrNotArchive},
		{"kdbx", []byte{0x03, 0xd9, 0xa2, 0x9a, 0x67, 0xfb, 0x4b, 0xb5}, ErrNotArchive},
		{"version 2", append([]byte(Magic+"\x02"), data[len(Magic)+1:]...), ErrVersion},
		{"version 0", append([]byte(Magic+"\x00"), data[len(Magic)+1:]...), ErrVersion},
		{"reserved byte", append([]byte(Magic+"\x01\x01"), data[len(Magic)+2:]...), ErrTampered},
		{"header cut", data[:PreambleSize-1], ErrTampered},
		{"no stream", data[:PreambleSize], ErrTampered},
		{"kdf version", func() []byte { b := bytes.Clone(data); b[len(Magic)+2] = 9; return b }(), ErrTampered},
	} {
		_, err := Read(bytes.NewReader(c.in), testPassword, readOpts)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// TestKDFCeilingRefusedBeforeWork: a header asking for absurd work is
// refused without deriving.
func TestKDFCeilingRefusedBeforeWork(t *testing.T) {
	data := bytes.Clone(writeArchive(t, nil, "ceiling"))
	binary.BigEndian.PutUint32(data[len(Magic)+2+4:], kdf.MaxArgon2MemoryKiB+1)
	_, err := Read(bytes.NewReader(data), testPassword, readOpts)
	if !errors.Is(err, ErrTampered) || !errors.Is(err, kdf.ErrAboveCeiling) {
		t.Fatalf("got %v", err)
	}
}

func TestTruncated(t *testing.T) {
	data := writeArchive(t, sampleEntries(), "truncated")
	cuts := []int{PreambleSize + 1, PreambleSize + envelope.StreamHeaderSize, PreambleSize + envelope.StreamHeaderSize + 1, len(data) - 1, len(data) - 17}
	// Every chunk boundary: a cut there leaves whole chunks, the last of
	// which was not sealed as final.
	for off := PreambleSize + envelope.StreamHeaderSize + envelope.MaxChunkCiphertext; off < len(data); off += envelope.MaxChunkCiphertext {
		cuts = append(cuts, off, off-1, off+1)
	}
	for _, n := range cuts {
		_, err := Read(bytes.NewReader(data[:n]), testPassword, readOpts)
		if err == nil || !(errors.Is(err, ErrTampered) || errors.Is(err, ErrWrongPassword)) {
			t.Errorf("cut at %d of %d: got %v", n, len(data), err)
		}
	}
	// Appended bytes are refused too.
	if _, err := Read(bytes.NewReader(append(bytes.Clone(data), 0)), testPassword, readOpts); !errors.Is(err, ErrTampered) {
		t.Errorf("appended byte: got %v", err)
	}
}

func TestTamperedAndReordered(t *testing.T) {
	data := writeArchive(t, sampleEntries(), "tamper")
	// Flip one bit at a spread of offsets, in the preamble, the stream
	// header and every chunk.
	offsets := []int{0, len(Magic), len(Magic) + 1, len(Magic) + 2, PreambleSize - 1, PreambleSize, PreambleSize + envelope.StreamHeaderSize - 1, len(data) - 1}
	for off := PreambleSize + envelope.StreamHeaderSize; off < len(data); off += envelope.MaxChunkCiphertext / 3 {
		offsets = append(offsets, off)
	}
	for _, off := range offsets {
		b := bytes.Clone(data)
		b[off] ^= 0x20
		if _, err := Read(bytes.NewReader(b), testPassword, readOpts); err == nil {
			t.Fatalf("flip at %d accepted", off)
		}
	}
	// Swap the first two chunks.
	start := PreambleSize + envelope.StreamHeaderSize
	c := envelope.MaxChunkCiphertext
	if len(data) < start+2*c+1 {
		t.Fatal("sample archive too small to reorder")
	}
	b := bytes.Clone(data)
	copy(b[start:], data[start+c:start+2*c])
	copy(b[start+c:], data[start:start+c])
	_, err := Read(bytes.NewReader(b), testPassword, readOpts)
	if !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrTampered) {
		t.Fatalf("swapped chunks: got %v", err)
	}
	// Swap chunks 1 and 2 (after the first has opened): damage, not password.
	b = bytes.Clone(data)
	copy(b[start+c:], data[start+2*c:start+3*c])
	copy(b[start+2*c:], data[start+c:start+2*c])
	if _, err := Read(bytes.NewReader(b), testPassword, readOpts); !errors.Is(err, ErrTampered) {
		t.Fatalf("swapped chunks 1 and 2: got %v", err)
	}
	// Drop chunk 1.
	b = append(bytes.Clone(data[:start+c]), data[start+2*c:]...)
	if _, err := Read(bytes.NewReader(b), testPassword, readOpts); !errors.Is(err, ErrTampered) {
		t.Fatalf("dropped chunk: got %v", err)
	}
	// A chunk from another archive under the same password does not fit.
	other := writeArchive(t, sampleEntries(), "other")
	b = bytes.Clone(data)
	copy(b[start+c:start+2*c], other[start+c:start+2*c])
	if _, err := Read(bytes.NewReader(b), testPassword, readOpts); !errors.Is(err, ErrTampered) {
		t.Fatalf("spliced chunk: got %v", err)
	}
}

// sealPlain builds an archive around a hand-written plaintext, to test the
// record rules behind authentication.
func sealPlain(t testing.TB, plain []byte) []byte {
	t.Helper()
	opts := testOpts("hand built")
	salts, err := kdf.NewSalts(opts.Rand)
	if err != nil {
		t.Fatal(err)
	}
	h := kdf.Header{Params: opts.Params, Salts: salts}
	pre := append([]byte(Magic), Version, 0)
	if pre, err = h.AppendBinary(pre); err != nil {
		t.Fatal(err)
	}
	key, err := deriveKey(testPassword, h, true)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(pre)
	w, err := envelope.NewWriter(&buf, opts.Rand, key, streamContext(pre))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rec(kind byte, body []byte) []byte {
	b := []byte{kind}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func end(items, files uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, items)
	return rec(kindEnd, binary.BigEndian.AppendUint64(b, files))
}

func fileRec(size uint64, name string) []byte {
	return rec(kindFile, append(binary.BigEndian.AppendUint64(nil, size), name...))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRecordRules(t *testing.T) {
	itm := rec(kindItem, []byte(`{"type":"login","title":"a"}`))
	hist := rec(kindHistory, []byte(`{"type":"login","title":"a0"}`))
	ok := cat(itm, hist, fileRec(3, "f"), rec(kindData, []byte("abc")), end(1, 1))
	if res, err := Read(bytes.NewReader(sealPlain(t, ok)), testPassword, readOpts); err != nil || len(res.Entries) != 1 || string(res.Entries[0].Attachments[0].Data) != "abc" || len(res.Entries[0].History) != 1 {
		t.Fatalf("valid hand-built archive: %v %+v", err, res)
	}
	bad := map[string][]byte{
		"no end":                 cat(itm),
		"nothing":                nil,
		"end counts items":       cat(itm, end(2, 0)),
		"end counts files":       cat(itm, end(1, 1)),
		"end too long":           cat(itm, rec(kindEnd, make([]byte, 17))),
		"after end":              cat(end(0, 0), itm),
		"unknown kind":           cat(rec(0x09, nil), end(0, 0)),
		"history first":          cat(hist, end(0, 0)),
		"history after file":     cat(itm, fileRec(0, "f"), hist, end(1, 1)),
		"file first":             cat(fileRec(0, "f"), end(0, 1)),
		"file short":             cat(itm, rec(kindFile, []byte{1, 2}), end(1, 1)),
		"file bad name":          cat(itm, fileRec(0, "a/b"), end(1, 1)),
		"file empty name":        cat(itm, fileRec(0, ""), end(1, 1)),
		"file twice":             cat(itm, fileRec(0, "f"), fileRec(0, "f"), end(1, 2)),
		"data missing":           cat(itm, fileRec(3, "f"), end(1, 1)),
		"data too much":          cat(itm, fileRec(3, "f"), rec(kindData, []byte("abcd")), end(1, 1)),
		"data empty":             cat(itm, fileRec(3, "f"), rec(kindData, nil), rec(kindData, []byte("abc")), end(1, 1)),
		"data short then more":   cat(itm, fileRec(3, "f"), rec(kindData, []byte("a")), rec(kindData, []byte("bc")), end(1, 1)),
		"data without file":      cat(itm, rec(kindData, []byte("a")), end(1, 0)),
		"item bad json":          cat(rec(kindItem, []byte(`{"type":`)), end(1, 0)),
		"item unknown field":     cat(rec(kindItem, []byte(`{"type":"login","title":"a","x":1}`)), end(1, 0)),
		"record too long":        cat(rec(kindItem, make([]byte, MaxItemRecord+1)), end(1, 0)),
		"length beyond the data": cat(itm, []byte{kindItem, 0, 0, 1, 0}),
	}
	for name, plain := range bad {
		_, err := Read(bytes.NewReader(sealPlain(t, plain)), testPassword, readOpts)
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestMaxTotal(t *testing.T) {
	data := writeArchive(t, sampleEntries(), "max total")
	_, err := Read(bytes.NewReader(data), testPassword, ReadOptions{AllowInsecure: true, MaxTotal: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	for name, e := range map[string]importer.Entry{
		"bad name":  {Item: item.Item{Type: item.Note, Title: "n"}, Attachments: []importer.File{{Name: "../x"}}},
		"same name": {Item: item.Item{Type: item.Note, Title: "n"}, Attachments: []importer.File{{Name: "x"}, {Name: "x"}}},
		"too big":   {Item: item.Item{Type: item.Note, Title: "n", Notes: strings.Repeat("x", MaxItemRecord)}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, []importer.Entry{e}, testPassword, testOpts(name)); err == nil {
			t.Errorf("%s: written", name)
		}
	}
	var buf bytes.Buffer
	opts := testOpts("insecure")
	opts.AllowInsecure = false
	if err := Write(&buf, nil, testPassword, opts); err == nil {
		t.Error("test profile accepted without AllowInsecure")
	}
}
