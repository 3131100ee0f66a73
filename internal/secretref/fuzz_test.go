package secretref

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts is valid,
// that String re-encodes it to a reference that parses to the same Ref, and
// that the canonical form is a fixed point.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"safe://Personal/GitHub/password",
		"safe://Work/db%2Fprod/notes",
		"safe://Work/db%2fprod/notes",
		"safe://Personal/My Bank/PIN code",
		"safe://Personal/100%25/x",
		"safe://Personal/a{b}/url",
		"safe://Persönlich/Zürich/Kennwort",
		"safe://a/b%/c",
		"safe://a/b?c/d",
		"safe://a/%FF/c",
		"safe://a/b/c/d",
		"safe:///b/c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not ErrSyntax", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid Ref: %v", err)
		}
		c := r.String()
		if len(c) > MaxLen {
			t.Fatalf("canonical form is %d bytes, more than MaxLen", len(c))
		}
		r2, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c, err)
		}
		if r2 != r {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
		if c2 := r2.String(); c2 != c {
			t.Fatalf("not canonical: %q then %q", c, c2)
		}
	})
}
