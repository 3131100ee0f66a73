package importer

import (
	"fmt"
	"strings"
	"testing"
)

// A CSV whose first row is data (a headerless export, or the wrong format
// chosen) makes openTable quote that row in its error: "the header is
// "https://bank.example,alice,Hunter2-s3cret"". docs/design.md §17.1:
// "Reasons and errors never quote secret values."
func TestRegress10CSVHeaderErrorQuotesSecret(t *testing.T) {
	const pw = "Hunter2-s3cret-pw"
	csv := "https://bank.example/login,alice," + pw + "\nhttps://mail.example,bob,other\n"
	for name, read := range map[string]func(string) error{
		"chrome":    func(s string) error { _, err := ChromeCSV(strings.NewReader(s)); return err },
		"firefox":   func(s string) error { _, err := FirefoxCSV(strings.NewReader(s)); return err },
		"bitwarden": func(s string) error { _, err := BitwardenCSV(strings.NewReader(s)); return err },
	} {
		err := read(csv)
		if err == nil {
			t.Fatalf("%s: a headerless file was accepted", name)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error quotes the password from the first row: %v", name, err)
		}
	}
}

// Password history is not bounded per entry (kdbx keeps 1,024 versions,
// the archive writes at most archive.MaxHistory = 1,000): a Bitwarden
// export of a few hundred KB gives one entry thousands of versions, each a
// full item in memory and one vault update at import, and the imported
// item can then no longer be written by `safe export archive` ("has N
// earlier versions, at most 1000").
func TestRegress10UnboundedPasswordHistory(t *testing.T) {
	const versions = 5000
	var hist []string
	for i := range versions {
		hist = append(hist, fmt.Sprintf(`{"lastUsedDate":"2024-01-01T00:00:00Z","password":"old-%d"}`, i))
	}
	doc := `{"encrypted":false,"folders":[],"items":[{"type":1,"name":"bank","login":{"username":"u","password":"p"},"passwordHistory":[` +
		strings.Join(hist, ",") + `]}]}`
	res, err := BitwardenJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("%d entries", len(res.Entries))
	}
	if n := len(res.Entries[0].History); n > 1000 {
		t.Fatalf("one entry carries %d earlier versions; want at most 1000 (the newest), the rest reported in Skipped", n)
	}
}
