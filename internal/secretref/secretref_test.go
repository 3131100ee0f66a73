package secretref

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      Ref
		canonical string // "" when in is canonical
	}{
		{"safe://Personal/GitHub/password", Ref{"Personal", "GitHub", "password"}, ""},
		{"safe://Work/db%2Fprod/notes", Ref{"Work", "db/prod", "notes"}, ""},
		{"safe://Work/db%2fprod/notes", Ref{"Work", "db/prod", "notes"}, "safe://Work/db%2Fprod/notes"},
		{"safe://Personal/My Bank/PIN code", Ref{"Personal", "My Bank", "PIN code"}, "safe://Personal/My%20Bank/PIN%20code"},
		{"safe://Personal/My%20Bank/totp", Ref{"Personal", "My Bank", "totp"}, ""},
		{"safe://Personal/100%25/x", Ref{"Personal", "100%", "x"}, ""},
		{"safe://Personal/What%3F%23/url", Ref{"Personal", "What?#", "url"}, ""},
		{"safe://Personal/a{b}/url", Ref{"Personal", "a{b}", "url"}, "safe://Personal/a%7Bb%7D/url"},
		{"safe://Persönlich/Zürich/Kennwort", Ref{"Persönlich", "Zürich", "Kennwort"}, ""},
		{"safe://0123abcd/p3k7n98dsf7e2bam93djz6q2n4/card.number", Ref{"0123abcd", "p3k7n98dsf7e2bam93djz6q2n4", "card.number"}, ""},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		canon := tc.canonical
		if canon == "" {
			canon = tc.in
		}
		if s := got.String(); s != canon {
			t.Errorf("String() = %q, want %q", s, canon)
		}
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", MaxPart+1)
	for _, tc := range []struct{ in, msg string }{
		{"", "does not start with safe://"},
		{"Safe://a/b/c", "does not start with safe://"},
		{"op://a/b/c", "does not start with safe://"},
		{"safe://a/b", "2 parts"},
		{"safe://a/b/c/d", "4 parts"},
		{"safe://", "1 parts"},
		{"safe:///b/c", "vault is empty"},
		{"safe://a//c", "item is empty"},
		{"safe://a/b/", "field is empty"},
		{"safe://a/b%/c", "% not followed"},
		{"safe://a/b%2/c", "% not followed"},
		{"safe://a/b%zz/c", "% not followed"},
		{"safe://a/b?c/d", `contains '?', which must be written %3F`},
		{"safe://a/b#c/d", `contains '#', which must be written %23`},
		{"safe://a/b\n/c", "control character"},
		{"safe://a/b%0A/c", "control character"},
		{"safe://a/b%00/c", "control character"},
		{"safe://a/b%7F/c", "control character"},
		{"safe://a/%FF/c", "not valid UTF-8"},
		{"safe://a/" + long + "/c", "more than the 1024 allowed"},
		{"safe://a/" + strings.Repeat("%41", MaxPart+1) + "/c", "more than the 1024 allowed"},
		{"safe://" + strings.Repeat("a", MaxLen), "more than the"},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%.40q) accepted it", tc.in)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.40q): error %v is not ErrSyntax", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Parse(%.40q) = %v, want it to say %q", tc.in, err, tc.msg)
		}
	}
}

// TestLongest checks that MaxLen is the length of the longest canonical
// reference, so that String never writes what Parse refuses.
func TestLongest(t *testing.T) {
	p := strings.Repeat(" ", MaxPart)
	r := Ref{p, p, p}
	s := r.String()
	if len(s) != MaxLen {
		t.Fatalf("longest reference is %d bytes, MaxLen %d", len(s), MaxLen)
	}
	got, err := Parse(s)
	if err != nil || got != r {
		t.Fatalf("Parse(longest): %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := (Ref{"a", "b", "c"}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Ref{{"", "b", "c"}, {"a", "b\n", "c"}, {"a", "b", "\xff"}} {
		if err := r.Validate(); !errors.Is(err, ErrSyntax) {
			t.Errorf("Validate(%+v) = %v", r, err)
		}
	}
}

func TestHasScheme(t *testing.T) {
	if !HasScheme("safe://x") || HasScheme(" safe://x") || HasScheme("SAFE://x") || HasScheme("safe:/x") {
		t.Fatal("HasScheme")
	}
}
