package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
)

var update = flag.Bool("update", false, "rewrite testdata/v1.sharch and testdata/v1.json")

const (
	vectorArchive = "testdata/v1.sharch"
	vectorJSON    = "testdata/v1.json"
	vectorPass    = "archive vector password ✓"
	vectorSeed    = "safehold archive v1 vectors"
)

// archiveVectors is testdata/v1.json: what testdata/v1.sharch holds and how
// it was made (docs/design.md §17.3). The archive is written by Write with
// the insecure test KDF profile and random.NewDeterministic(seed) as its
// only random source (KDF salts, then the envelope stream salt).
type archiveVectors struct {
	Comment  string        `json:"comment"`
	Password string        `json:"password"`
	Seed     string        `json:"seed"`
	Size     int           `json:"size"`
	SHA256   string        `json:"sha256"`   // of testdata/v1.sharch
	Preamble string        `json:"preamble"` // hex, the first PreambleSize bytes
	Entries  []vectorEntry `json:"entries"`
}

type vectorEntry struct {
	Where       string            `json:"where"`
	Item        json.RawMessage   `json:"item"`
	History     []json.RawMessage `json:"history,omitempty"`
	Attachments []vectorFile      `json:"attachments,omitempty"`
}

type vectorFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"` // base64
}

// vectorEntries are the fixed inputs: a login with two earlier versions
// and three attachments (one empty), a card and an empty note.
func vectorEntries() []importer.Entry {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	login := item.Item{
		Type: item.Login, Title: "Example — ünïcødé", Username: "alice", Password: "s3cret\"\n\\",
		URLs: []string{"https://example.com/login"}, Notes: "line 1\nline 2 ✓", TOTP: "JBSWY3DPEHPK3PXP",
		Fields: []item.Field{{Name: "recovery", Kind: item.KindHidden, Value: "r-e-c"}, {Name: "born", Kind: item.KindDate, Value: "2000-01-02"}},
		Tags:   []string{"work", "dev"}, Folder: "Work/Web", Favorite: true, Created: when, Modified: when,
	}
	v1, v2 := login.Clone(), login.Clone()
	v1.Password, v1.Modified = "older one", when.Add(-48*time.Hour)
	v2.Password, v2.Modified = "old one", when.Add(-24*time.Hour)
	card := item.Item{Type: item.Card, Title: "Visa", Card: &item.CardData{Holder: "A B", Number: "4111111111111111", Expiry: "01/2030", CVV: "123"}, Created: when, Modified: when}
	note := item.Item{Type: item.Note, Title: "empty note", Created: when, Modified: when}
	return []importer.Entry{
		{Item: login, History: []item.Item{v1, v2}, Attachments: []importer.File{
			{Name: "key.bin", Data: pattern(300, 7)},
			{Name: "empty.txt", Data: []byte{}},
			{Name: "ключ.txt", Data: []byte("κλειδί")},
		}},
		{Item: card},
		{Item: note},
	}
}

// writeVectorArchive writes the vector archive from the fixed inputs.
func writeVectorArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	opts := WriteOptions{Params: kdf.TestParams(), Rand: random.NewDeterministic([]byte(vectorSeed)), AllowInsecure: true}
	if err := Write(&buf, vectorEntries(), []byte(vectorPass), opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// renderVectors describes archive data and the entries read from it.
func renderVectors(t *testing.T, data []byte, res *importer.Result) []byte {
	t.Helper()
	sum := sha256.Sum256(data)
	v := archiveVectors{
		Comment: "Safehold archive v1 (docs/design.md §17.3): testdata/v1.sharch, written by archive.Write from fixed entries " +
			"with kdf.TestParams and random.NewDeterministic(seed); entries are what Read returns. " +
			"Regenerate with go test ./internal/archive -run TestArchiveVectors -update.",
		Password: vectorPass,
		Seed:     vectorSeed,
		Size:     len(data),
		SHA256:   hex.EncodeToString(sum[:]),
		Preamble: hex.EncodeToString(data[:min(len(data), PreambleSize)]),
	}
	raw := func(it item.Item) json.RawMessage {
		b, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, e := range res.Entries {
		ve := vectorEntry{Where: e.Where, Item: raw(e.Item)}
		for _, h := range e.History {
			ve.History = append(ve.History, raw(h))
		}
		for _, f := range e.Attachments {
			ve.Attachments = append(ve.Attachments, vectorFile{Name: f.Name, Data: append([]byte{}, f.Data...)})
		}
		v.Entries = append(v.Entries, ve)
	}
	out, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestArchiveVectors(t *testing.T) {
	if *update {
		data := writeVectorArchive(t)
		res, err := Read(bytes.NewReader(data), []byte(vectorPass), readOpts)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorArchive, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorJSON, renderVectors(t, data, res), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(vectorArchive)
	if err != nil {
		t.Fatal(err)
	}
	rawJSON, err := os.ReadFile(vectorJSON)
	if err != nil {
		t.Fatal(err)
	}
	var v archiveVectors
	dec := json.NewDecoder(bytes.NewReader(rawJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if len(data) != v.Size || hex.EncodeToString(sum[:]) != v.SHA256 {
		t.Fatalf("%s is %d bytes, sha256 %x; %s says %d bytes, %s", vectorArchive, len(data), sum, vectorJSON, v.Size, v.SHA256)
	}

	// 1. The committed archive opens with the password and holds exactly
	// the committed items.
	res, err := Read(bytes.NewReader(data), []byte(v.Password), readOpts)
	if err != nil {
		t.Fatalf("reading %s: %v", vectorArchive, err)
	}
	if len(res.Entries) != len(v.Entries) || len(res.Skipped) != 0 {
		t.Fatalf("read %d entries (%d skipped), want %d", len(res.Entries), len(res.Skipped), len(v.Entries))
	}
	for i, ve := range v.Entries {
		want := importer.Entry{Where: ve.Where}
		if want.Item, err = item.Decode(ve.Item); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		for _, h := range ve.History {
			it, err := item.Decode(h)
			if err != nil {
				t.Fatalf("entry %d history: %v", i, err)
			}
			want.History = append(want.History, it)
		}
		for _, f := range ve.Attachments {
			want.Attachments = append(want.Attachments, importer.File{Name: f.Name, Data: append([]byte{}, f.Data...)})
		}
		got := res.Entries[i]
		for j := range got.Attachments {
			got.Attachments[j].Data = append([]byte{}, got.Attachments[j].Data...) // nil and empty alike
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("entry %d differs:\n got %+v\nwant %+v", i, got, want)
		}
	}
	// The committed items are the fixed inputs, as an archive stores them.
	for i, in := range vectorEntries() {
		if i < len(res.Entries) && !reflect.DeepEqual(normalise(res.Entries[i]), normalise(canon(in))) {
			t.Errorf("entry %d is not the fixed input %d", i, i)
		}
	}
	if got := renderVectors(t, data, res); !bytes.Equal(got, rawJSON) {
		t.Errorf("%s is not what %s reads as; run go test -run TestArchiveVectors -update only for a deliberate format change", vectorJSON, vectorArchive)
	}

	// 2. The layout of §17.3 around the preamble.
	if string(data[:6]) != Magic || data[6] != Version || data[7] != 0 || string(data[PreambleSize:PreambleSize+4]) != "SHST" {
		t.Errorf("preamble %x does not start SHARCH 01 00 and is not followed by SHST", data[:PreambleSize+4])
	}
	if _, h, err := ReadPreamble(bytes.NewReader(data)); err != nil || h.Params != kdf.TestParams() {
		t.Errorf("kdf header: %+v, %v; want the test profile", h.Params, err)
	}

	// 3. Writing the fixed inputs again gives the committed bytes: any
	// change to the format (records, item JSON, KDF header, key label,
	// stream context, envelope) changes them.
	if again := writeVectorArchive(t); !bytes.Equal(again, data) {
		n := 0
		for n < min(len(again), len(data)) && again[n] == data[n] {
			n++
		}
		t.Errorf("Write now gives %d bytes differing from %s (%d bytes) at offset %d; run go test -run TestArchiveVectors -update only for a deliberate format change",
			len(again), vectorArchive, len(data), n)
	}
}

// normalise drops Where and makes empty attachment data non-nil.
func normalise(e importer.Entry) importer.Entry {
	e.Where = ""
	for j := range e.Attachments {
		e.Attachments[j].Data = append([]byte{}, e.Attachments[j].Data...)
	}
	return e
}
