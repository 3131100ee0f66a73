package importer

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// checkValid fails unless every entry and earlier version passes item
// validation, as the vault will demand.
func checkValid(t testing.TB, res *Result) {
	t.Helper()
	for _, e := range res.Entries {
		if err := e.Item.Validate(); err != nil {
			t.Errorf("%s: %v", e.Where, err)
		}
		for i, h := range e.History {
			if err := h.Validate(); err != nil {
				t.Errorf("%s version %d: %v", e.Where, i+1, err)
			}
		}
		if len(e.Attachments) > item.MaxAttachment {
			t.Errorf("%s: %d attachments", e.Where, len(e.Attachments))
		}
	}
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// compare checks the entries against the wanted ones, field by field
// through their JSON forms, and the skipped list by where and a fragment
// of the reason.
func compare(t *testing.T, res *Result, want []Entry, skipped [][2]string) {
	t.Helper()
	checkValid(t, res)
	if len(res.Entries) != len(want) {
		t.Errorf("got %d entries, want %d:\n%s", len(res.Entries), len(want), jsonOf(t, res.Entries))
	}
	for i := 0; i < len(want) && i < len(res.Entries); i++ {
		got, w := res.Entries[i], want[i]
		if g, ww := jsonOf(t, got), jsonOf(t, w); g != ww {
			t.Errorf("entry %d (%s):\ngot  %s\nwant %s", i+1, w.Where, g, ww)
		}
	}
	if len(res.Skipped) != len(skipped) {
		t.Errorf("got skipped %v, want %d", res.Skipped, len(skipped))
		return
	}
	for i, s := range skipped {
		if res.Skipped[i].Where != s[0] || !strings.Contains(res.Skipped[i].Reason, s[1]) {
			t.Errorf("skipped %d = %+v, want where %q and reason containing %q", i+1, res.Skipped[i], s[0], s[1])
		}
	}
}

func open(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ts(s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return v.UTC()
}

func tp(s string) *time.Time { v := ts(s); return &v }

func TestBitwardenJSON(t *testing.T) {
	res, err := BitwardenJSON(bytes.NewReader(open(t, "bitwarden.json")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{
			Where: `item 1 "GitHub"`,
			Item: item.Item{
				Type: item.Login, Title: "GitHub", Username: "octocat", Password: "correct horse battery staple",
				URLs:  []string{"https://github.com/login", "https://gist.github.com"},
				Notes: "Recovery codes are in the safe.\nSecond line.",
				TOTP:  "otpauth://totp/GitHub:octocat?secret=JBSWY3DPEHPK3PXP&issuer=GitHub",
				Fields: []item.Field{
					{Name: "Employee ID", Kind: item.KindText, Value: "E-1042"},
					{Name: "Backup PIN", Kind: item.KindHidden, Value: "9921"},
					{Name: "Admin", Kind: item.KindText, Value: "true"},
					{Name: "Login name", Kind: item.KindText, Value: "linked to username"},
				},
				Folder: "Work", Favorite: true,
				Created: ts("2022-01-15T09:00:00Z"), Modified: ts("2024-05-01T12:00:00Z"),
				PasswordChanged: ts("2024-03-02T10:00:00Z"),
			},
			History: []item.Item{
				{Type: item.Login, Title: "GitHub", Username: "octocat", Password: "older-pass-1", Modified: ts("2023-11-20T08:30:00Z")},
				{Type: item.Login, Title: "GitHub", Username: "octocat", Password: "older-pass-2", Modified: ts("2024-03-02T10:00:00Z")},
			},
		},
		{
			Where: `item 2 "Café ☕ — Wi-Fi notes"`,
			Item: item.Item{
				Type: item.Note, Title: "Café ☕ — Wi-Fi notes",
				Notes:   "SSID: Café-Guest\nPasswort: grüner Tee 🍵\n\nAsk the barista.",
				Created: ts("2024-02-10T07:00:00Z"), Modified: ts("2024-02-10T07:00:00Z"),
			},
		},
		{
			Where: `item 3 "Visa"`,
			Item: item.Item{
				Type: item.Card, Title: "Visa", Folder: "Personal/Banking",
				Card: &item.CardData{Holder: "Jane Q. Doe", Brand: "Visa", Number: "4111111111111111",
					Expiry: "07/2027", CVV: "123", PIN: "4321"},
				Created: ts("2023-09-09T09:09:09Z"), Modified: ts("2023-09-09T09:09:09Z"),
			},
		},
		{
			Where: `item 4 "Me"`,
			Item: item.Item{
				Type: item.Identity, Title: "Me", Username: "janed",
				Identity: &item.IdentityData{
					FirstName: "Jane", LastName: "Doe", Email: "jane@example.com", Phone: "+1 555 0100",
					Address: "1 Infinite Loop\nApt 2\nCupertino, CA 95014\nUS", Company: "Acme",
					Passport: "X1234567", License: "D7654321", NationalID: "078-05-1120",
				},
				Fields: []item.Field{
					{Name: "name title", Kind: item.KindText, Value: "Ms"},
					{Name: "middle name", Kind: item.KindText, Value: "Quinn"},
					{Name: "nickname", Kind: item.KindText, Value: "JQ"},
				},
				Created: ts("2023-01-01T00:00:00Z"), Modified: ts("2023-01-01T00:00:00Z"),
			},
		},
		{
			Where: `item 5 ""`,
			Item: item.Item{
				Type: item.Login, Title: "intranet.example.org", URLs: []string{"https://intranet.example.org/sso"},
				Fields:  []item.Field{{Name: "collection", Kind: item.KindText, Value: "Engineering"}},
				Created: ts("2024-06-01T00:00:00Z"), Modified: ts("2024-06-01T00:00:00Z"),
			},
		},
		{
			Where: `item 8 "Deploy key"`,
			Item: item.Item{
				Type: item.SSHKey, Title: "Deploy key", Folder: "Work",
				SSH: &item.SSHData{
					PrivateKey:  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
					PublicKey:   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample deploy@example",
					Fingerprint: "SHA256:2Ay0EXAMPLEfingerprint",
				},
				Created: ts("2024-07-07T07:07:07Z"), Modified: ts("2024-07-07T07:07:07Z"),
			},
		},
	}
	compare(t, res, want, [][2]string{
		{`item 5 ""`, "1 passkey(s) not imported"},
		{`item 6 "Future thing"`, "item type 9"},
		{`item 7 "Broken"`, "notes is a JSON number, not a string"},
	})
	for _, s := range res.Skipped {
		if strings.Contains(s.Reason, "secret-key-material") {
			t.Errorf("a skip reason quotes a secret: %q", s.Reason)
		}
	}
}

func TestBitwardenJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"encrypted", string(open(t, "bitwarden_encrypted.json")), `not "JSON (Encrypted)"`},
		{"account encrypted", `{"encrypted": true, "encKeyValidation_DO_NOT_EDIT": "2.x", "folders": [], "items": []}`, "this export is encrypted"},
		{"syntax", "{\n  \"encrypted\": false,\n  \"items\": [\n    {\"name\": \"a\",}\n  ]\n}", "line 4, column"},
		{"cut short", `{"encrypted": false, "items": [{"name": "a"`, "line 1"},
		{"not bitwarden", `{"accounts": []}`, `no "items" list`},
		{"items not a list", "{\n\"items\": {}\n}", "line 2"},
		{"empty", ``, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BitwardenJSON(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
		})
	}
}

func TestBitwardenJSONUnknownFolder(t *testing.T) {
	in := `{"encrypted":false,"folders":[],"items":[{"type":2,"name":"n","folderId":"nope"},{"type":2,"name":"ok"}]}`
	res, err := BitwardenJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "folders list") {
		t.Fatalf("got %+v", res)
	}
}

func TestBitwardenCSV(t *testing.T) {
	res, err := BitwardenCSV(bytes.NewReader(open(t, "bitwarden.csv")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{
			Where: "line 2",
			Item: item.Item{
				Type: item.Login, Title: "GitHub", Username: "octocat", Password: `p@ss,word"quoted`,
				URLs:  []string{"https://github.com", "https://gist.github.com"},
				Notes: "Line one\nLine two", TOTP: "otpauth://totp/GitHub:octocat?secret=JBSWY3DPEHPK3PXP",
				Folder: "Work", Favorite: true,
			},
		},
		{
			Where: "line 4",
			Item: item.Item{
				Type: item.Note, Title: "Résumé notes ✍", Notes: "Ünïcödé body\nwith two lines",
				Fields: []item.Field{
					{Name: "Locker", Kind: item.KindHidden, Value: "12"},
					{Name: "Combo", Kind: item.KindHidden, Value: "4-8-15"},
				},
			},
		},
		{
			Where: "line 7", // the record before spans lines 4 to 6
			Item: item.Item{
				Type: item.Login, Title: "bank.example.com", Username: "jane",
				URLs: []string{"https://bank.example.com/login"}, Folder: "Personal/Banking",
			},
		},
	}
	compare(t, res, want, [][2]string{
		{"line 8", `type "card" is not login or note`},
		{"line 9", "has 6 fields but the header has 11"},
	})
}

func TestChromeCSV(t *testing.T) {
	res, err := ChromeCSV(bytes.NewReader(open(t, "chrome.csv")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Where: "line 2", Item: item.Item{Type: item.Login, Title: "github.com", Username: "octocat", Password: "correct horse",
			URLs: []string{"https://github.com/login"}, Notes: "first line\nsecond line"}},
		{Where: "line 4", Item: item.Item{Type: item.Login, Title: "accounts.example.com", Username: "jane@example.com",
			Password: `pa,ss"word`, URLs: []string{"https://accounts.example.com:8443/signin"}}},
		{Where: "line 5", Item: item.Item{Type: item.Login, Title: "bücher.example", URLs: []string{"https://bücher.example/"}}},
		{Where: "line 6", Item: item.Item{Type: item.Login, Title: "android", Username: "user", Password: "app-pass",
			URLs: []string{"android://hash@com.example.app/"}}},
	}
	compare(t, res, want, nil)
}

func TestFirefoxCSV(t *testing.T) {
	res, err := FirefoxCSV(bytes.NewReader(open(t, "firefox.csv")))
	if err != nil {
		t.Fatal(err)
	}
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	want := []Entry{
		{Where: "line 2", Item: item.Item{Type: item.Login, Title: "www.mozilla.org", Username: "fox", Password: "f1r3f0x",
			URLs: []string{"https://www.mozilla.org"}, Created: ms(1700000000000), PasswordChanged: ms(1705000000000)}},
		{Where: "line 3", Item: item.Item{Type: item.Login, Title: "router.local", Username: "admin", Password: "admin123",
			URLs:    []string{"https://router.local"},
			Fields:  []item.Field{{Name: "HTTP realm", Kind: item.KindText, Value: "Router Admin"}},
			Created: ms(1600000000000), PasswordChanged: ms(1600000000000)}},
		{Where: "line 4", Item: item.Item{Type: item.Login, Title: "login.example.com", Username: "émilie", Password: "mot de passe ✓",
			URLs:    []string{"https://login.example.com"},
			Fields:  []item.Field{{Name: "form action", Kind: item.KindURL, Value: "https://auth.example.com"}},
			Created: ms(1650000000000), PasswordChanged: ms(1650000000000)}},
	}
	compare(t, res, want, nil)
}

func TestCSVErrors(t *testing.T) {
	type parser func(io.Reader) (*Result, error)
	for _, tc := range []struct {
		name  string
		parse parser
		in    string
		want  string
	}{
		{"bare quote", ChromeCSV, "name,url,username,password\na,https://a,u,p\nb,https://b,u\"x,p\n", "line 3"},
		{"unterminated quote", FirefoxCSV, "url,username,password\n\"https://a\",u,p\n\"https://b\",\"u,p\n", "line 3"},
		{"missing column", ChromeCSV, "name,url,login,password\n", `no "username" column`},
		{"firefox as chrome", BitwardenCSV, "url,username,password\n", `no "type" column`},
		{"empty", FirefoxCSV, "", "empty"},
		{"bom only", ChromeCSV, "\ufeff", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
		})
	}
}

func TestCSVHeaderByNameAndExtras(t *testing.T) {
	// Columns in another order, CRLF line ends, a column Chrome does not
	// have, which must not be dropped.
	in := "password,Username,URL,name,Comment\r\nsecret,bob,https://x.example/a,X,\"keep\r\nme\"\r\n"
	res, err := ChromeCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, res, []Entry{{Where: "line 2", Item: item.Item{Type: item.Login, Title: "X", Username: "bob", Password: "secret",
		URLs: []string{"https://x.example/a"}, Fields: []item.Field{{Name: "Comment", Kind: item.KindText, Value: "keep\nme"}}}}}, nil)
}

func TestCSVOverLimitsSkipped(t *testing.T) {
	long := strings.Repeat("p", item.MaxValue+1)
	in := "name,url,username,password\nbig,https://a.example,u," + long + "\nsmall,https://b.example,u,p\n" +
		"badms,https://c.example,u,p\n"
	res, err := ChromeCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 2 || len(res.Skipped) != 1 {
		t.Fatalf("got %d entries and skipped %v", len(res.Entries), res.Skipped)
	}
	if s := res.Skipped[0]; s.Where != "line 2" || !strings.Contains(s.Reason, "password is 65537 bytes") || strings.Contains(s.Reason, "ppp") {
		t.Errorf("skipped = %+v", s)
	}
	checkValid(t, res)

	res, err = FirefoxCSV(strings.NewReader("url,username,password,timeCreated\nhttps://a,u,p,yesterday\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "timecreated is not a number") {
		t.Errorf("skipped = %v", res.Skipped)
	}
}

func TestBounded(t *testing.T) {
	data, err := io.ReadAll(bounded(strings.NewReader("12345"), 5))
	if err != nil || string(data) != "12345" {
		t.Fatalf("exactly at the limit: %q, %v", data, err)
	}
	_, err = io.ReadAll(bounded(strings.NewReader("123456"), 5))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
}

// zipDir builds a 1PUX archive in memory from a directory of loose files,
// so that the fixture stays readable in the repository. Members in extra
// replace or add to what is on disk.
func zipDir(t testing.TB, dir string, extra map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if _, ok := extra[rel]; ok {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, err := zw.Create(rel)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range extra {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOnePUX(t *testing.T) {
	z := zipDir(t, "testdata/1pux", nil)
	res, err := OnePUX(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	sec := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	want := []Entry{
		{
			Where: `vault "Personal" item 1 "Dropbox"`,
			Item: item.Item{
				Type: item.Login, Title: "Dropbox", Username: "jane@example.com", Password: "most-secure-password-ever!",
				URLs:  []string{"https://www.dropbox.com/", "https://www.dropbox.com/login"},
				Notes: "Shared with nobody.\nKeep it that way. 🔐",
				TOTP:  "otpauth://totp/Dropbox:jane?secret=JBSWY3DPEHPK3PXP&issuer=Dropbox",
				Fields: []item.Field{
					{Name: "rememberme", Kind: item.KindText, Value: "remember-me"},
					{Name: "PIN", Kind: item.KindHidden, Value: "12345"},
					{Name: "member since", Kind: item.KindDate, Value: "2010-01-01"},
					{Name: "support site", Kind: item.KindURL, Value: "https://help.dropbox.com"},
					{Name: "recovery email", Kind: item.KindText, Value: "backup@example.com"},
					{Name: "hotline", Kind: item.KindText, Value: "+44 20 7946 0000"},
				},
				Tags: []string{"cloud", "work/shared"}, Folder: "Personal", Favorite: true,
				Created: sec(1614298956), Modified: sec(1635346445),
			},
			Attachments: []File{{Name: "recovery.txt", Data: []byte("wifi recovery sheet\n")}},
			History: []item.Item{
				{Type: item.Login, Title: "Dropbox", Username: "jane@example.com", Password: "first-old", Modified: sec(1500000000)},
				{Type: item.Login, Title: "Dropbox", Username: "jane@example.com", Password: "second-old", Modified: sec(1600000000)},
			},
		},
		{
			Where: `vault "Personal" item 2 "Mastercard"`,
			Item: item.Item{
				Type: item.Card, Title: "Mastercard", Folder: "Personal",
				Card: &item.CardData{Holder: "Jane Q Doe", Brand: "mc", Number: "5555555555554444", Expiry: "11/2028", CVV: "321", PIN: "0000"},
				Fields: []item.Field{
					{Name: "valid from", Kind: item.KindText, Value: "11/2023"},
					{Name: "issuing bank", Kind: item.KindText, Value: "Example Bank"},
				},
				Created: sec(1600000000), Modified: sec(1600000100),
			},
		},
		{
			Where: `vault "Personal" item 3 "Passport scan"`,
			Item: item.Item{
				Type: item.Note, Title: "Passport scan", Notes: "Scan of my passport", Tags: []string{"archived"},
				Folder: "Personal", Created: sec(1610000000), Modified: sec(1610000000),
			},
			Attachments: []File{{Name: "passport-scan.txt", Data: []byte("Hello from a 1Password document.\n")}},
		},
		{
			Where: `vault "Personal" item 4 "Jane Doe — ID"`,
			Item: item.Item{
				Type: item.Identity, Title: "Jane Doe — ID", Username: "jdoe", Folder: "Personal",
				Identity: &item.IdentityData{FirstName: "Jane", LastName: "Doe", Email: "jane@example.com",
					Phone: "+44 20 7946 0001", Address: "221B Baker Street\nLondon NW1 6XE\ngb", Birthday: "1990-01-01"},
				Fields:  []item.Field{{Name: "initial", Kind: item.KindText, Value: "Q"}},
				Created: sec(1620000000), Modified: sec(1620000000),
			},
		},
		{
			Where: `vault "Work" item 1 "CI key"`,
			Item: item.Item{
				Type: item.SSHKey, Title: "CI key", Folder: "Work",
				SSH: &item.SSHData{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
					PublicKey: "ssh-ed25519 AAAAC3Nza example", Fingerprint: "SHA256:abcdef"},
				Created: sec(1700000000), Modified: sec(1700000000),
			},
		},
		{
			Where: `vault "Work" item 2 "Orders DB"`,
			Item: item.Item{
				Type: item.Login, Title: "Orders DB", Username: "app", Password: "db-secret", Folder: "Work",
				Fields: []item.Field{
					{Name: "type", Kind: item.KindText, Value: "postgresql"},
					{Name: "server", Kind: item.KindText, Value: "db.internal"},
					{Name: "port", Kind: item.KindText, Value: "5432"},
				},
				Created: sec(1700000000), Modified: sec(1700000000),
			},
		},
	}
	compare(t, res, want, [][2]string{{`vault "Work" item 3 "Bad item"`, "details is a JSON string, not an object"}})
}

func TestOnePUXErrors(t *testing.T) {
	noData := zipDir(t, "testdata/1pux", map[string][]byte{"export.data": nil})
	// Rebuild without export.data at all.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zr, _ := zip.NewReader(bytes.NewReader(noData), int64(len(noData)))
	for _, f := range zr.File {
		if f.Name != "export.data" {
			w, _ := zw.Create(f.Name)
			rc, _ := f.Open()
			io.Copy(w, rc)
			rc.Close()
		}
	}
	zw.Close()
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not zip", []byte("plain text, not a zip"), "not a zip archive"},
		{"no export.data", buf.Bytes(), "no export.data"},
		{"bad json", zipDir(t, "testdata/1pux", map[string][]byte{"export.data": []byte("{\n\"accounts\": [\n}")}), "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OnePUX(bytes.NewReader(tc.in), int64(len(tc.in)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOnePUXBounds(t *testing.T) {
	// An attachment that inflates past MaxAttachmentSize is skipped with a
	// reason; the item and the rest of the archive are imported.
	big := make([]byte, MaxAttachmentSize+1)
	z := zipDir(t, "testdata/1pux", map[string][]byte{"files/h4k8m2n6p0r3s7t1v5x9z2b4d6__recovery.txt": big})
	res, err := OnePUX(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 6 || len(res.Entries[0].Attachments) != 0 {
		t.Fatalf("got %d entries, first with %d attachments", len(res.Entries), len(res.Entries[0].Attachments))
	}
	found := false
	for _, s := range res.Skipped {
		found = found || strings.Contains(s.Reason, `attachment "recovery.txt" not imported: larger than`)
	}
	if !found {
		t.Errorf("no skip for the big attachment: %v", res.Skipped)
	}

	// A member that holds more than its header says is refused, not read
	// on.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "export.data", Method: zip.Store, CompressedSize64: 64, UncompressedSize64: 8})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte(" "), 64))
	zw.Close()
	if _, err := OnePUX(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err == nil {
		t.Fatal("a member longer than its header says was accepted")
	}
}

func TestTidy(t *testing.T) {
	e := Entry{Where: "x", Item: item.Item{
		Type: item.Login, Title: "two\nlines\r\n",
		URLs:   []string{"https://ok.example", "http://bad\x7f.example/"},
		Tags:   []string{"fine", "a,b"},
		Fields: []item.Field{{Name: "", Kind: item.KindText, Value: "v"}, {Name: "tab\there", Kind: item.KindText, Value: "w"}},
	}}
	var c collector
	c.add(e)
	if len(c.res.Entries) != 1 {
		t.Fatalf("skipped: %v", c.res.Skipped)
	}
	got := c.res.Entries[0].Item
	want := item.Item{Type: item.Login, Title: "two lines", URLs: []string{"https://ok.example"}, Tags: []string{"fine"},
		Fields: []item.Field{
			{Name: "field", Kind: item.KindText, Value: "v"},
			{Name: "tab here", Kind: item.KindText, Value: "w"},
			{Name: "url", Kind: item.KindText, Value: "http://bad\x7f.example/"},
			{Name: "tag", Kind: item.KindText, Value: "a,b"},
		}}
	if jsonOf(t, got) != jsonOf(t, want) {
		t.Errorf("got %s\nwant %s", jsonOf(t, got), jsonOf(t, want))
	}
}
