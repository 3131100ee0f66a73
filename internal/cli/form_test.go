package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
)

func TestFormRoundTrip(t *testing.T) {
	items := []item.Item{
		{ID: "x", Type: item.Login, Title: "GitHub", Username: "alice", Password: "p: w#1", URLs: []string{"https://a", "https://b"},
			Notes: "line one\n  indented\nline: three", Tags: []string{"dev", "work"}, Folder: "Work/Code", Favorite: true,
			Fields: []item.Field{{Name: `Recovery "code": 1`, Kind: item.KindHidden, Value: "123"}, {Name: "Born", Kind: item.KindDate, Value: "2000-01-02"}}},
		{Type: item.Card, Title: "Visa", Card: &item.CardData{Number: "4111", CVV: "123", Expiry: "12/2030"}},
		{Type: item.Identity, Title: "Me", Identity: &item.IdentityData{FirstName: "A", Email: "a@b"}},
		{Type: item.SSHKey, Title: "key", SSH: &item.SSHData{PrivateKey: "-----BEGIN X-----\nAAA\n-----END X-----", PublicKey: "ssh-ed25519 AAAA c"}},
		{Type: item.Note, Title: "Note"},
	}
	for _, it := range items {
		it.Finish()
		got, err := parseForm(renderForm(it), it)
		if err != nil {
			t.Fatalf("%s: %v\n%s", it.Title, err, renderForm(it))
		}
		a, _ := encodeJSON(it)
		b, _ := encodeJSON(got)
		if a != b {
			t.Errorf("%s: round trip changed the item:\n%s\n%s", it.Title, a, b)
		}
	}
}

func TestFormErrorsNameTheLine(t *testing.T) {
	base := item.Item{Type: item.Login, Title: "T"}
	for form, want := range map[string]string{
		"type: login\ntitle: T\ncolour: blue\n": "line 3: unknown field",
		"title: T\nfavorite: maybe\n":           "line 2: favorite",
		"title: T\nfield hidden PIN: 1\n":       "line 2",
		"title: T\njust text\n":                 "line 2",
		"type: spaceship\ntitle: T\n":           "line 1",
	} {
		_, err := parseForm([]byte(form), base)
		if !errors.Is(err, item.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", form, err, want)
		}
	}
}

func FuzzParseForm(f *testing.F) {
	f.Add(string(renderForm(item.Item{Type: item.Login, Title: "T", Notes: "a\nb", Fields: []item.Field{{Name: "n", Kind: item.KindText, Value: "v"}}})))
	f.Add("notes: |\n  x\n\ntitle: y")
	f.Fuzz(func(t *testing.T, form string) {
		parseForm([]byte(form), item.Item{Type: item.Login, Title: "base"})
	})
}

// Values the plain form would change (surrounding spaces, "|", a leading
// quote, control characters, trailing line breaks) survive a round trip.
func TestFormKeepsAwkwardValues(t *testing.T) {
	for _, pw := range []string{" pw with spaces ", "|", `"quoted"`, "tab\there", "ends with newline\n", "line one  \nline two", "é\u0001"} {
		it := item.Item{Type: item.Login, Title: "T", Password: pw, Notes: pw}
		got, err := parseForm(renderForm(it), it)
		if err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		if got.Password != pw || got.Notes != pw {
			t.Errorf("%q came back as password %q, notes %q\n%s", pw, got.Password, got.Notes, renderForm(it))
		}
	}
}
