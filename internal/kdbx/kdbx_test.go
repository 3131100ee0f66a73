package kdbx

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// tiny are work factors that make tests fast. Never use them for real
// files.
func tiny(kdf KDF, c Cipher, seed uint64) WriteOptions {
	var s [32]byte
	s[0] = byte(seed)
	return WriteOptions{
		KDF: kdf, Cipher: c, Memory: 64 << 10, Iterations: 1, Parallelism: 1, AESRounds: 10,
		Rand: rand.NewChaCha8(s),
		Now:  func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC) },
	}
}

var (
	t0 = time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = time.Date(2022, 6, 7, 8, 9, 10, 0, time.UTC)
	t2 = time.Date(2023, 11, 12, 13, 14, 15, 0, time.UTC)
)

func richEntries() []importer.Entry {
	trashed := t2
	return []importer.Entry{
		{
			Item: item.Item{
				Type: item.Login, Title: "GitHub ✓ 日本語", Username: "octo@example.com",
				Password: "pä$$wörd \"<&>\" 🔑", URLs: []string{"https://github.com/login", "https://gist.github.com"},
				Notes: "line one\nline two\r\n\ttabbed <xml> & \"quotes\"", TOTP: "JBSWY3DPEHPK3PXP",
				Tags: []string{"code", "2fa"}, Folder: "Work/Dev",
				Fields: []item.Field{
					{Name: "API key", Kind: item.KindHidden, Value: "sk-secret-123"},
					{Name: "Recovery hint", Kind: item.KindText, Value: "the blue notebook"},
					{Name: "Password", Kind: item.KindText, Value: "a field that collides"},
				},
				Created: t0, Modified: t2,
			},
			Attachments: []importer.File{
				{Name: "id_ed25519", Data: []byte("-----BEGIN KEY-----\x00\x01\x02binary\xff")},
				{Name: "notes.txt", Data: []byte("hello attachment\n")},
			},
			History: []item.Item{
				{Type: item.Login, Title: "GitHub", Username: "octo", Password: "old-1", Folder: "Work/Dev", Created: t0, Modified: t0},
				{Type: item.Login, Title: "GitHub ✓ 日本語", Username: "octo@example.com", Password: "pä$$wörd \"<&>\" 🔑", Folder: "Work/Dev", Created: t0, Modified: t1},
			},
		},
		{
			Item: item.Item{Type: item.Note, Title: "Wi-Fi at home", Notes: "SSID: house\ncontrol \x01 char", Created: t1, Modified: t1},
		},
		{
			Item: item.Item{
				Type: item.Login, Title: "Bank", Username: "me", Password: "hunter2", Folder: "Finance",
				TOTP:    "otpauth://totp/Bank:me?secret=JBSWY3DPEHPK3PXP&issuer=Bank&digits=8&period=60&algorithm=SHA256",
				Created: t1, Modified: t2,
			},
			Attachments: []importer.File{{Name: "same.txt", Data: []byte("hello attachment\n")}},
		},
		{
			Item: item.Item{Type: item.Login, Title: "Old thing", Password: "gone", Trashed: &trashed, Created: t0, Modified: t0},
		},
	}
}

func findEntry(t *testing.T, res *importer.Result, title string) importer.Entry {
	t.Helper()
	for _, e := range res.Entries {
		if e.Item.Title == title {
			return e
		}
	}
	t.Fatalf("no entry %q among %d entries (skipped: %v)", title, len(res.Entries), res.Skipped)
	return importer.Entry{}
}

func fieldValue(it item.Item, name string) (item.Field, bool) {
	for _, f := range it.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return item.Field{}, false
}

func checkRich(t *testing.T, res *importer.Result) {
	t.Helper()
	if len(res.Entries) != 3 {
		t.Fatalf("got %d entries, want 3: %+v", len(res.Entries), res.Skipped)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Reason != "in the recycle bin" || !strings.Contains(res.Skipped[0].Where, "Old thing") {
		t.Errorf("skipped = %+v, want the trashed item in the recycle bin", res.Skipped)
	}
	gh := findEntry(t, res, "GitHub ✓ 日本語")
	it := gh.Item
	if it.Type != item.Login || it.Username != "octo@example.com" || it.Password != "pä$$wörd \"<&>\" 🔑" {
		t.Errorf("login fields: %+v", it)
	}
	if !slices.Equal(it.URLs, []string{"https://github.com/login", "https://gist.github.com"}) {
		t.Errorf("urls = %q", it.URLs)
	}
	if it.Notes != "line one\nline two\r\n\ttabbed <xml> & \"quotes\"" {
		t.Errorf("notes = %q", it.Notes)
	}
	if !strings.HasPrefix(it.TOTP, "otpauth://totp/") || !strings.Contains(it.TOTP, "secret=JBSWY3DPEHPK3PXP") {
		t.Errorf("totp = %q", it.TOTP)
	}
	if !slices.Equal(it.Tags, []string{"code", "2fa"}) || it.Folder != "Work/Dev" {
		t.Errorf("tags %q folder %q", it.Tags, it.Folder)
	}
	if f, ok := fieldValue(it, "API key"); !ok || f.Kind != item.KindHidden || f.Value != "sk-secret-123" {
		t.Errorf("hidden field: %+v", f)
	}
	if f, ok := fieldValue(it, "Recovery hint"); !ok || f.Kind != item.KindText || f.Value != "the blue notebook" {
		t.Errorf("text field: %+v", f)
	}
	if f, ok := fieldValue(it, "Password (2)"); !ok || f.Value != "a field that collides" {
		t.Errorf("colliding field: %+v", it.Fields)
	}
	if !it.Created.Equal(t0) || !it.Modified.Equal(t2) {
		t.Errorf("times created %v modified %v", it.Created, it.Modified)
	}
	if !it.PasswordChanged.Equal(t1) {
		t.Errorf("password changed %v, want %v (the history version that first had it)", it.PasswordChanged, t1)
	}
	if len(gh.Attachments) != 2 || gh.Attachments[0].Name != "id_ed25519" ||
		!bytes.Equal(gh.Attachments[0].Data, []byte("-----BEGIN KEY-----\x00\x01\x02binary\xff")) ||
		string(gh.Attachments[1].Data) != "hello attachment\n" {
		t.Errorf("attachments: %+v", gh.Attachments)
	}
	if len(gh.History) != 2 || gh.History[0].Password != "old-1" || gh.History[0].Title != "GitHub" ||
		!gh.History[0].Modified.Equal(t0) || gh.History[1].Modified != t1 {
		t.Errorf("history (oldest first): %+v", gh.History)
	}
	if !strings.Contains(gh.Where, "GitHub") || !strings.Contains(gh.Where, "Work/Dev") {
		t.Errorf("where = %q", gh.Where)
	}

	note := findEntry(t, res, "Wi-Fi at home")
	if note.Item.Type != item.Note || note.Item.Notes != "SSID: house\ncontrol \x01 char" || note.Item.Folder != "" {
		t.Errorf("note: %+v", note.Item)
	}
	bank := findEntry(t, res, "Bank")
	if bank.Item.TOTP != "otpauth://totp/Bank:me?secret=JBSWY3DPEHPK3PXP&issuer=Bank&digits=8&period=60&algorithm=SHA256" {
		t.Errorf("bank totp = %q", bank.Item.TOTP)
	}
	if len(bank.Attachments) != 1 || string(bank.Attachments[0].Data) != "hello attachment\n" {
		t.Errorf("bank attachments: %+v", bank.Attachments)
	}
	for _, e := range res.Entries {
		if err := e.Item.Validate(); err != nil {
			t.Errorf("%s: %v", e.Where, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		kdf  KDF
		c    Cipher
	}{
		{"argon2id-aes", Argon2id, AES256},
		{"argon2id-chacha20", Argon2id, ChaCha20},
		{"argon2d-aes", Argon2d, AES256},
		{"aeskdf-chacha20", AESKDF, ChaCha20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, richEntries(), []byte("correct horse"), tiny(tc.kdf, tc.c, 1)); err != nil {
				t.Fatal(err)
			}
			res, err := Read(bytes.NewReader(buf.Bytes()), []byte("correct horse"), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkRich(t, res)
		})
	}
}

func TestRoundTripV3(t *testing.T) {
	for _, compress := range []bool{true, false} {
		data := writeV3(t, richEntries(), []byte("pw"), 100, compress, rand.NewChaCha8([32]byte{3}))
		res, err := Read(bytes.NewReader(data), []byte("pw"), nil)
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		checkRich(t, res)
	}
}

func TestWriteDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := Write(&a, richEntries(), []byte("pw"), tiny(Argon2id, AES256, 7)); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, richEntries(), []byte("pw"), tiny(Argon2id, AES256, 7)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("same options and random source gave different files")
	}
}

func TestWriteRefusesBadOptions(t *testing.T) {
	for _, o := range []WriteOptions{
		{Memory: MaxArgon2Memory + 1024},
		{Memory: 1024},
		{Iterations: MaxArgon2Iterations + 1},
		{Parallelism: 256},
		{KDF: AESKDF, AESRounds: MaxAESRounds + 1},
		{KDF: 9},
		{Cipher: 9},
	} {
		if err := Write(&bytes.Buffer{}, nil, []byte("pw"), o); err == nil {
			t.Errorf("Write accepted %+v", o)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	var v4 bytes.Buffer
	if err := Write(&v4, richEntries(), []byte("right"), tiny(Argon2id, AES256, 1)); err != nil {
		t.Fatal(err)
	}
	v3 := writeV3(t, richEntries(), []byte("right"), 10, true, rand.NewChaCha8([32]byte{}))
	for name, data := range map[string][]byte{"v4": v4.Bytes(), "v3": v3} {
		for _, pw := range [][]byte{[]byte("wrong"), nil, []byte("")} {
			_, err := Read(bytes.NewReader(data), pw, nil)
			if !errors.Is(err, ErrWrongPassword) {
				t.Errorf("%s with %q: err = %v, want ErrWrongPassword", name, pw, err)
			}
			if err != nil && strings.Contains(err.Error(), "right") {
				t.Errorf("error reveals the password: %v", err)
			}
		}
		if _, err := Read(bytes.NewReader(data), []byte("right"), []byte("a key file")); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("%s with an extra key file: %v", name, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, richEntries(), []byte("pw"), tiny(Argon2id, AES256, 1)); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	h, err := readHeader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	hl := len(h.raw)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	cases := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrCorrupt, "shorter"},
		{"signature", flip(0), ErrCorrupt, "signature"},
		{"kdbx1", append([]byte{0x03, 0xd9, 0xa2, 0x9a, 0x65, 0xfb, 0x4b, 0xb5}, good[8:]...), ErrUnsupported, "1.x"},
		{"version", flip(10), ErrUnsupported, "version"},
		{"master seed", flip(50), ErrCorrupt, "checksum"},
		{"header checksum", flip(hl + 3), ErrCorrupt, "checksum"},
		{"header hmac", flip(hl + 40), ErrWrongPassword, "HMAC"},
		{"block hmac", flip(hl + 64 + 5), ErrCorrupt, "block 0"},
		{"block data", flip(hl + 64 + 36 + 20), ErrCorrupt, "block 0"},
		{"block size", flip(hl + 64 + 32 + 3), ErrCorrupt, "block 0"},
		{"truncated", good[:len(good)-20], ErrCorrupt, "truncated"},
		{"truncated header", good[:hl-3], ErrCorrupt, "truncated"},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.data), []byte("pw"), nil)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.name, err, c.want, c.msg)
		}
	}

	v3 := writeV3(t, richEntries(), []byte("pw"), 10, true, rand.NewChaCha8([32]byte{}))
	h3, err := readHeader(bytes.NewReader(v3))
	if err != nil {
		t.Fatal(err)
	}
	// Flip a ciphertext byte in the middle: CBC garbles that block, so a
	// hashed block fails its check.
	b := bytes.Clone(v3)
	b[len(h3.raw)+200] ^= 1
	if _, err := Read(bytes.NewReader(b), []byte("pw"), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("v3 damaged block: %v", err)
	}
	if _, err := Read(bytes.NewReader(v3[:len(v3)-16]), []byte("pw"), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("v3 truncated: %v", err)
	}
}

func TestKDFLimits(t *testing.T) {
	cases := []kdfParams{
		{uuid: kdfArgon2id, seed: make([]byte, 32), version: 0x13, parallelism: 1, iterations: 1, memory: MaxArgon2Memory + 1024},
		{uuid: kdfArgon2id, seed: make([]byte, 32), version: 0x13, parallelism: 1, iterations: MaxArgon2Iterations + 1, memory: 1 << 20},
		{uuid: kdfArgon2d, seed: make([]byte, 32), version: 0x13, parallelism: 1, iterations: 1 << 20, memory: 2 << 30},
		{uuid: kdfArgon2d, seed: make([]byte, 32), version: 0x10, parallelism: 1, iterations: 1, memory: 1 << 20},
		{uuid: kdfArgon2d, seed: make([]byte, 32), version: 0x13, parallelism: 0, iterations: 1, memory: 1 << 20},
		{uuid: kdfArgon2d, seed: make([]byte, 4), version: 0x13, parallelism: 1, iterations: 1, memory: 1 << 20},
		{uuid: kdfAES, seed: make([]byte, 32), rounds: MaxAESRounds + 1},
	}
	for i, k := range cases {
		if err := k.check(); err == nil {
			t.Errorf("case %d: %+v accepted", i, k)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	raw32 := bytes.Repeat([]byte{7}, 32)
	hex64 := []byte(strings.Repeat("ab", 32))
	other := []byte("just some file contents")
	v2 := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<KeyFile>
    <Meta>
        <Version>2.0</Version>
    </Meta>
    <Key>
        <Data Hash="4BB06F8E">
            07070707 07070707 07070707 07070707
            07070707 07070707 07070707 07070707
        </Data>
    </Key>
</KeyFile>
`)
	v1 := []byte(`<?xml version="1.0" encoding="utf-8"?><KeyFile><Meta><Version>1.00</Version></Meta><Key><Data>BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=</Data></Key></KeyFile>`)
	for name, kf := range map[string][]byte{"raw32": raw32, "v2": v2, "v1": v1} {
		k, err := keyFileKey(kf)
		if err != nil || !bytes.Equal(k, raw32) {
			t.Errorf("%s: key %x, err %v; want 32 × 07", name, k, err)
		}
	}
	if k, _ := keyFileKey(hex64); !bytes.Equal(k, bytes.Repeat([]byte{0xab}, 32)) {
		t.Errorf("hex64: %x", k)
	}
	if k, _ := keyFileKey(other); len(k) != 32 || bytes.Equal(k, other[:32%len(other)]) {
		t.Errorf("hashed: %x", k)
	}
	bad := bytes.Replace(v2, []byte("4BB06F8E"), []byte("00000000"), 1)
	if _, err := keyFileKey(bad); !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "hash") {
		t.Errorf("v2 with a wrong hash: %v", err)
	}
}

func TestKeyFileComposite(t *testing.T) {
	// Key-file-only databases: nil password.
	a, _ := compositeKey(nil, []byte("kf"))
	b, _ := compositeKey([]byte{}, []byte("kf"))
	c, _ := compositeKey(nil, nil)
	d, _ := compositeKey([]byte{}, nil)
	if bytes.Equal(a, b) {
		t.Error("nil and empty password with a key file should differ")
	}
	if !bytes.Equal(c, d) {
		t.Error("without a key file, nil and empty password are the same")
	}
}

func TestVariantDict(t *testing.T) {
	w := newVDWriter()
	w.uint32("P", 2)
	w.uint64("I", 3)
	w.add(vdBytes, "S", []byte{1, 2, 3})
	w.add(vdString, "str", []byte("x"))
	d, err := parseVariantDict(w.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 4 || d["P"].typ != vdUint32 || string(d["str"].data) != "x" {
		t.Errorf("dict = %+v", d)
	}
	bad := [][]byte{
		nil,
		{0, 2},                // version 2.x
		{0, 1},                // no end
		{0, 1, 0, 1},          // trailing
		{0, 1, 4, 1, 0, 0, 0}, // truncated name
		append([]byte{0, 1, 4, 1, 0, 0, 0, 'P', 3, 0, 0, 0, 1, 2, 3}, 0),                              // wrong size
		append([]byte{0, 1, 0x99, 1, 0, 0, 0, 'P', 1, 0, 0, 0, 1}, 0),                                 // unknown type
		append([]byte{0, 1, 8, 1, 0, 0, 0, 'P', 1, 0, 0, 0, 1, 8, 1, 0, 0, 0, 'P', 1, 0, 0, 0, 1}, 0), // duplicate
	}
	for i, b := range bad {
		if _, err := parseVariantDict(b); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func TestXMLMapping(t *testing.T) {
	// A hand-written KDBX 3.1 style document: legacy TOTP, KeeOtp otp,
	// comma tags, expiry, empty title, recycle bin, a missing attachment,
	// a protected value inside an element we skip.
	doc := `<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<KeePassFile><Meta><RecycleBinUUID>AQEBAQEBAQEBAQEBAQEBAQ==</RecycleBinUUID>
<CustomData><Item><Key>k</Key><Value Protected="True"></Value></Item></CustomData></Meta>
<Root><Group><UUID>AAAAAAAAAAAAAAAAAAAAAA==</UUID><Name>Database</Name>
<Entry><UUID>AgICAgICAgICAgICAgICAg==</UUID><Tags>a, b;c</Tags>
<Times><CreationTime>2020-01-01T00:00:00Z</CreationTime><LastModificationTime>2020-02-01T00:00:00Z</LastModificationTime>
<ExpiryTime>2030-05-06T00:00:00Z</ExpiryTime><Expires>True</Expires></Times>
<String><Key>Title</Key><Value>Legacy</Value></String>
<String><Key>TOTP Seed</Key><Value>jbsw y3dp ehpk 3pxp</Value></String>
<String><Key>TOTP Settings</Key><Value>30;8</Value></String>
<String><Key>URL</Key><Value>https://legacy.example</Value></String>
<Binary><Key>gone.bin</Key><Value Ref="9"/></Binary>
<AutoType><Enabled>True</Enabled><Association><Window>x</Window><KeystrokeSequence>{PASSWORD}</KeystrokeSequence></Association></AutoType>
</Entry>
<Entry><String><Key>Title</Key><Value></Value></String><String><Key>UserName</Key><Value>bob</Value></String>
<String><Key>otp</Key><Value>key=JBSWY3DPEHPK3PXP&amp;step=45&amp;size=7</Value></String></Entry>
<Entry><String><Key>Title</Key><Value>Steam</Value></String><String><Key>TOTP Seed</Key><Value>JBSWY3DPEHPK3PXP</Value></String>
<String><Key>TOTP Settings</Key><Value>30;S</Value></String></Entry>
<Group><UUID>AQEBAQEBAQEBAQEBAQEBAQ==</UUID><Name>Recycle Bin</Name><Group><Name>Deep</Name>
<Entry><String><Key>Title</Key><Value>Deleted</Value></String></Entry></Group></Group>
</Group></Root></KeePassFile>`
	res, err := decodeXML(strings.NewReader(doc), nullStream{}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 3 {
		t.Fatalf("entries: %+v skipped %+v", res.Entries, res.Skipped)
	}
	leg := res.Entries[0].Item
	if leg.TOTP != "otpauth://totp/Legacy?digits=8&issuer=Legacy&period=30&secret=JBSWY3DPEHPK3PXP" {
		t.Errorf("legacy totp = %q", leg.TOTP)
	}
	if !slices.Equal(leg.Tags, []string{"a", "b", "c"}) || leg.Type != item.Login {
		t.Errorf("tags %q type %q", leg.Tags, leg.Type)
	}
	if f, ok := fieldValue(leg, "Expires"); !ok || f.Kind != item.KindDate || f.Value != "2030-05-06" {
		t.Errorf("expiry field: %+v", leg.Fields)
	}
	bob := res.Entries[1].Item
	if bob.Title != "bob" || !strings.Contains(bob.TOTP, "period=45") || !strings.Contains(bob.TOTP, "digits=7") {
		t.Errorf("untitled KeeOtp entry: %+v", bob)
	}
	steam := res.Entries[2].Item
	if steam.TOTP != "" || len(steam.Fields) != 2 || steam.Type != item.Note {
		t.Errorf("steam entry keeps its seed as fields: %+v", steam)
	}
	var sawBin, sawMissing bool
	for _, s := range res.Skipped {
		sawBin = sawBin || (s.Reason == "in the recycle bin" && strings.Contains(s.Where, "Deleted") && strings.Contains(s.Where, "Recycle Bin/Deep"))
		sawMissing = sawMissing || strings.Contains(s.Where, "gone.bin")
	}
	if !sawBin || !sawMissing {
		t.Errorf("skipped = %+v", res.Skipped)
	}
}

func TestXMLLimits(t *testing.T) {
	deep := "<KeePassFile>" + strings.Repeat("<a>", MaxDepth+5) + strings.Repeat("</a>", MaxDepth+5) + "</KeePassFile>"
	if _, err := decodeXML(strings.NewReader(deep), nullStream{}, nil, true); !errors.Is(err, ErrTooLarge) {
		t.Errorf("deep nesting: %v", err)
	}
	for _, doc := range []string{"", "<x/>", "<KeePassFile><Root>", "<KeePassFile></KeePassFile><KeePassFile/>", "<KeePassFile>&bogus;</KeePassFile>"} {
		if _, err := decodeXML(strings.NewReader(doc), nullStream{}, nil, true); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v", doc, err)
		}
	}
	// A gzip bomb stops at the limit.
	lr := &limitReader{r: bytes.NewReader(make([]byte, 100)), n: 50, what: "test"}
	if _, err := io.ReadAll(lr); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: %v", err)
	}
}

func TestSkippedInvalidItems(t *testing.T) {
	entries := []importer.Entry{
		{Item: item.Item{Type: item.Login, Title: "big", Password: strings.Repeat("x", item.MaxValue+1)}},
		{Item: item.Item{Type: item.Login, Title: "fine", Password: "p"}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, entries, []byte("pw"), tiny(Argon2id, ChaCha20, 2)); err != nil {
		t.Fatal(err)
	}
	res, err := Read(&buf, []byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "password") {
		t.Errorf("entries %d skipped %+v", len(res.Entries), res.Skipped)
	}
}
