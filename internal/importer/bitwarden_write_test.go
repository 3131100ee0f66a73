package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
)

// roundTrip writes entries as Bitwarden JSON and reads them back.
func roundTrip(t testing.TB, entries []Entry) *Result {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteBitwardenJSON(&buf, entries); err != nil {
		t.Fatal(err)
	}
	res, err := BitwardenJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// withoutWhere drops what names an entry's place in its source file, which
// a round trip changes.
func withoutWhere(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		e.Where = ""
		out[i] = e
	}
	return out
}

func TestBitwardenRoundTripFixture(t *testing.T) {
	first, err := BitwardenJSON(bytes.NewReader(open(t, "bitwarden.json")))
	if err != nil {
		t.Fatal(err)
	}
	second := roundTrip(t, first.Entries)
	checkValid(t, second)
	if len(second.Skipped) != 0 {
		t.Errorf("skipped on the way back: %v", second.Skipped)
	}
	if g, w := jsonOf(t, withoutWhere(second.Entries)), jsonOf(t, withoutWhere(first.Entries)); g != w {
		t.Errorf("round trip changed entries:\ngot  %s\nwant %s", g, w)
	}
}

func TestBitwardenRoundTripEverything(t *testing.T) {
	// Everything Bitwarden's format can carry, directly or through the
	// custom fields that BitwardenJSON reads back into place.
	entries := []Entry{
		{Item: item.Item{
			Type: item.Login, Title: "Mail ✉", Username: "me@example.com", Password: "p\"w\\d\n2",
			URLs: []string{"https://mail.example.com", "imap://mail.example.com:993"}, Notes: "multi\nline\n",
			TOTP: "JBSWY3DPEHPK3PXP",
			Fields: []item.Field{
				{Name: "text", Kind: item.KindText, Value: "plain words"},
				{Name: "hidden", Kind: item.KindHidden, Value: "s3cret"},
				{Name: "site", Kind: item.KindURL, Value: "https://help.example.com/x?y=1"},
				{Name: "born", Kind: item.KindDate, Value: "1999-12-31"},
				{Name: "otp", Kind: item.KindTOTP, Value: "otpauth://totp/x?secret=ABC"},
				{Name: "empty", Kind: item.KindText, Value: ""},
			},
			Tags: []string{"mail", "tier 1"}, Folder: "A/B", Favorite: true,
			Created: ts("2020-01-02T03:04:05.678Z"), Modified: ts("2021-01-02T03:04:05Z"),
			PasswordChanged: ts("2021-01-01T00:00:00Z"), Trashed: tp("2022-02-02T02:02:02Z"),
		}, History: []item.Item{
			{Type: item.Login, Title: "Mail ✉", Username: "me@example.com", Password: "old1", Modified: ts("2019-01-01T00:00:00Z")},
			{Type: item.Login, Title: "Mail ✉", Username: "me@example.com", Password: "old2", Modified: ts("2020-06-01T00:00:00Z")},
		}},
		{Item: item.Item{Type: item.Note, Title: "Just a note", Notes: "body"}},
		{Item: item.Item{Type: item.Card, Title: "Card", Folder: "A/B",
			Card: &item.CardData{Holder: "H", Brand: "Amex", Number: "378282246310005", Expiry: "01/2030", CVV: "1234", PIN: "9999"}}},
		{Item: item.Item{Type: item.Identity, Title: "ID", Username: "idu",
			Identity: &item.IdentityData{FirstName: "F", LastName: "L", Email: "e@x", Phone: "1", Address: "Street 1\nTown",
				Company: "C", Birthday: "1980-05-05", Passport: "P", License: "L1", NationalID: "N"}}},
		{Item: item.Item{Type: item.SSHKey, Title: "Key",
			SSH: &item.SSHData{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
				PublicKey: "ssh-ed25519 AAAA c", Fingerprint: "SHA256:x", Passphrase: "pp"}}},
	}
	var c collector
	for _, e := range entries {
		c.add(e)
	}
	if len(c.res.Skipped) != 0 {
		t.Fatalf("fixture invalid: %v", c.res.Skipped)
	}
	got := roundTrip(t, c.res.Entries)
	checkValid(t, got)
	if g, w := jsonOf(t, withoutWhere(got.Entries)), jsonOf(t, withoutWhere(c.res.Entries)); g != w {
		t.Errorf("round trip changed entries:\ngot  %s\nwant %s", g, w)
	}
}

func TestWriteBitwardenJSONShape(t *testing.T) {
	// What Bitwarden's importer looks for: folders with ids that items
	// refer to, typed items, and no encryption flag set.
	var buf bytes.Buffer
	err := WriteBitwardenJSON(&buf, []Entry{
		{Item: item.Item{Type: item.Login, Title: "a", Folder: "F", URLs: []string{"https://a"}, Username: "u", Password: "p",
			Attachments: []item.Attachment{{ID: "x", Name: "f.txt"}}}},
		{Item: item.Item{Type: item.TOTP, Title: "t", TOTP: "JBSWY3DPEHPK3PXP", Folder: "F"}},
		{Item: item.Item{Type: item.VPN, Title: "v", VPN: json.RawMessage(`{"k":1}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Encrypted bool `json:"encrypted"`
		Folders   []struct{ ID, Name string }
		Items     []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Encrypted || len(out.Folders) != 1 || out.Folders[0].Name != "F" || len(out.Folders[0].ID) != 36 {
		t.Fatalf("folders = %+v", out.Folders)
	}
	if len(out.Items) != 3 || out.Items[0]["folderId"] != out.Folders[0].ID || out.Items[1]["folderId"] != out.Folders[0].ID {
		t.Fatalf("items = %v", out.Items)
	}
	for i, wantType := range []float64{1, 1, 2} {
		if out.Items[i]["type"] != wantType {
			t.Errorf("item %d type %v, want %v", i, out.Items[i]["type"], wantType)
		}
	}
	if !strings.Contains(buf.String(), `"name": "vpn profile"`) {
		t.Error("vpn profile not kept as a field")
	}
}

func TestWriteBitwardenJSONUnknownType(t *testing.T) {
	err := WriteBitwardenJSON(&bytes.Buffer{}, []Entry{{Item: item.Item{Type: "weird", Title: "x"}}})
	if err == nil {
		t.Fatal("unknown type accepted")
	}
}

// bigExport builds a Bitwarden export of n varied items.
func bigExport(tb testing.TB, n int) []byte {
	tb.Helper()
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Item: item.Item{
			Type: item.Login, Title: fmt.Sprintf("Site %d", i), Username: fmt.Sprintf("user%d@example.com", i),
			Password: fmt.Sprintf("pw-%d-correct-horse", i), URLs: []string{fmt.Sprintf("https://site%d.example.com/login", i)},
			Notes:  "some notes\nwith two lines",
			Fields: []item.Field{{Name: "PIN", Kind: item.KindHidden, Value: "1234"}, {Name: "account", Kind: item.KindText, Value: "A-1"}},
			Folder: fmt.Sprintf("Folder %d", i%20), Created: ts("2020-01-01T00:00:00Z"), Modified: ts("2021-01-01T00:00:00Z"),
		}, History: []item.Item{{Type: item.Login, Title: fmt.Sprintf("Site %d", i), Password: "old", Modified: ts("2020-06-01T00:00:00Z")}}}
	}
	var buf bytes.Buffer
	if err := WriteBitwardenJSON(&buf, entries); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkBitwardenJSON10k(b *testing.B) {
	data := bigExport(b, 10_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := BitwardenJSON(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Entries) != 10_000 {
			b.Fatalf("%d entries", len(res.Entries))
		}
	}
}
