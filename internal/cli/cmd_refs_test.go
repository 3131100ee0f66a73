package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/secretref"
)

// maskAll runs input through a masker in the given chunks and flushes.
func maskAll(secrets []string, chunks ...string) string {
	var out bytes.Buffer
	m := newMasker(&out, secrets)
	for _, c := range chunks {
		m.Write([]byte(c))
	}
	m.Flush()
	return out.String()
}

func TestMaskerEverySplit(t *testing.T) {
	secrets := []string{"hunter2-s3cret", "tok"}
	in := "a hunter2-s3cret b tok c hunter2-s3crex d hunter2-s3cret"
	want := "a " + concealed + " b " + concealed + " c hunter2-s3crex d " + concealed
	if got := maskAll(secrets, in); got != want {
		t.Fatalf("one write: %q", got)
	}
	// Every way of cutting the input in two, three, and byte by byte.
	for i := 0; i <= len(in); i++ {
		if got := maskAll(secrets, in[:i], in[i:]); got != want {
			t.Fatalf("split at %d: %q", i, got)
		}
		for j := i; j <= len(in); j++ {
			if got := maskAll(secrets, in[:i], in[i:j], in[j:]); got != want {
				t.Fatalf("split at %d, %d: %q", i, j, got)
			}
		}
	}
	bytewise := make([]string, len(in))
	for i := range in {
		bytewise[i] = in[i : i+1]
	}
	if got := maskAll(secrets, bytewise...); got != want {
		t.Fatalf("byte by byte: %q", got)
	}
}

func TestMaskerRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []string
		chunks  []string
		want    string
	}{
		{"longest wins", []string{"abc", "abcdef"}, []string{"xabcdefx"}, "x" + concealed + "x"},
		{"shorter when the longer fails", []string{"abc", "abcdef"}, []string{"xabc", "dex"}, "x" + concealed + "dex"},
		{"shorter at the very end", []string{"abc", "abcdef"}, []string{"xab", "c"}, "x" + concealed},
		{"overlap in the text", []string{"aab"}, []string{"aaab"}, "a" + concealed},
		{"repeats", []string{"s3"}, []string{"s3s3", "s", "3"}, concealed + concealed + concealed},
		{"one byte is masked too", []string{"x"}, []string{"axbx"}, "a" + concealed + "b" + concealed},
		{"prefix held then released", []string{"secret"}, []string{"sec", "ond"}, "second"},
		{"prefix left at the end", []string{"secret"}, []string{"the sec"}, "the sec"},
		{"multi-line", []string{"l1\nl2"}, []string{"x l1\n", "l2 y"}, "x " + concealed + " y"},
		{"duplicates and empty", []string{"", "pw", "pw"}, []string{"pwpw"}, concealed + concealed},
		{"no secrets", nil, []string{"plain"}, "plain"},
	} {
		if got := maskAll(tc.secrets, tc.chunks...); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestMaskerHoldsLittle checks that what is held back is only a possible
// start of a secret: other output passes at once.
func TestMaskerHoldsLittle(t *testing.T) {
	var out bytes.Buffer
	m := newMasker(&out, []string{"hunter2-s3cret"})
	m.Write([]byte("ready\nhunt"))
	if out.String() != "ready\n" {
		t.Fatalf("passed %q", out.String())
	}
	if len(m.pending) != 4 {
		t.Fatalf("holds %d bytes", len(m.pending))
	}
	m.Write([]byte("ing\n"))
	if out.String() != "ready\nhunting\n" || len(m.pending) != 0 {
		t.Fatalf("passed %q, holds %d", out.String(), len(m.pending))
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("closed")
}

func TestMaskerWriterError(t *testing.T) {
	w := &failWriter{}
	m := newMasker(w, []string{"x"})
	for range 3 {
		if n, err := m.Write([]byte("abc")); n != 3 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := m.Flush(); err == nil || w.n != 1 {
		t.Fatalf("Flush = %v after %d writes", err, w.n)
	}
}

// FuzzMasker checks that masking does not depend on how the output is cut
// into writes, and that no secret survives it.
func FuzzMasker(f *testing.F) {
	f.Add("hunter2", "ter", "xx hunter2 yy hunt", uint8(3), uint8(9))
	f.Add("aab", "a", "aaabaab", uint8(1), uint8(2))
	f.Add("\n", "ab", "a\nb", uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, s1, s2, in string, cut1, cut2 uint8) {
		if len(s1) > 64 || len(s2) > 64 || len(in) > 4096 {
			return
		}
		secrets := []string{s1, s2}
		whole := maskAll(secrets, in)
		i, j := int(cut1)%(len(in)+1), int(cut2)%(len(in)+1)
		if i > j {
			i, j = j, i
		}
		if got := maskAll(secrets, in[:i], in[i:j], in[j:]); got != whole {
			t.Fatalf("cut at %d, %d: %q, whole: %q", i, j, got, whole)
		}
		// Between the markers only text that is no secret remains.
		for _, seg := range strings.Split(whole, concealed) {
			for _, s := range secrets {
				if s != "" && strings.Contains(seg, s) {
					t.Fatalf("secret %q survives in %q", s, whole)
				}
			}
		}
	})
}

func TestScanTemplate(t *testing.T) {
	tpl := "a: {{ safe://Personal/GitHub/password }}\n" +
		"b: {{safe://Work/db%2Fprod/username}} and {{\tsafe://Work/x/url\t}}\n" +
		"c: {{ .Values.x }} {{ {{ safe://P/y/notes }}\n" +
		"d: }} {{\n"
	spans, err := scanTemplate([]byte(tpl))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line int
		ref  string
		text string
	}{
		{1, "safe://Personal/GitHub/password", "{{ safe://Personal/GitHub/password }}"},
		{2, "safe://Work/db%2Fprod/username", "{{safe://Work/db%2Fprod/username}}"},
		{2, "safe://Work/x/url", "{{\tsafe://Work/x/url\t}}"},
		{3, "safe://P/y/notes", "{{ safe://P/y/notes }}"},
	}
	if len(spans) != len(want) {
		t.Fatalf("%d spans: %+v", len(spans), spans)
	}
	for i, w := range want {
		s := spans[i]
		if s.line != w.line || s.ref.String() != w.ref || tpl[s.start:s.end] != w.text {
			t.Errorf("span %d: line %d %s %q", i, s.line, s.ref, tpl[s.start:s.end])
		}
	}
}

func TestScanTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ tpl, msg string }{
		{"ok\n\nx {{ safe://a/b/c\n}}", "line 3: a reference opened with {{ is not closed"},
		{"{{ safe://a/b }}", "line 1: malformed secret reference"},
		{"\n{{ safe://a/b/c d/e }}", "line 2: malformed secret reference"},
		{"{{ safe://a/b/c", "line 1: a reference opened"},
	} {
		_, err := scanTemplate([]byte(tc.tpl))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %q", tc.tpl, err, tc.msg)
		}
	}
	many := strings.Repeat("{{ safe://a/b/c }}", maxRefs+1)
	if _, err := scanTemplate([]byte(many)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d references: %v", maxRefs+1, err)
	}
}

// FuzzScanTemplate checks that the scanner never panics and that the spans
// it finds are ordered, inside the text, and read as references.
func FuzzScanTemplate(f *testing.F) {
	f.Add("a: {{ safe://Personal/GitHub/password }}\n{{ x }} {{safe://a/b%2Fc/d}}")
	f.Add("{{ {{ safe://a/b/c }} }}")
	f.Add("{{ safe://a/b/c\n}}")
	f.Fuzz(func(t *testing.T, tpl string) {
		spans, err := scanTemplate([]byte(tpl))
		if err != nil {
			return
		}
		at := 0
		for _, s := range spans {
			if s.start < at || s.end > len(tpl) || s.start >= s.end {
				t.Fatalf("span [%d,%d) after %d in %d bytes", s.start, s.end, at, len(tpl))
			}
			text := tpl[s.start:s.end]
			if !strings.HasPrefix(text, "{{") || !strings.HasSuffix(text, "}}") || strings.Contains(text, "\n") {
				t.Fatalf("span %q", text)
			}
			inner := strings.Trim(text[2:len(text)-2], " \t")
			if r, err := secretref.Parse(inner); err != nil || r != s.ref {
				t.Fatalf("span %q: %v", text, err)
			}
			at = s.end
		}
	})
}

func TestFieldValue(t *testing.T) {
	it := item.Item{
		Type: item.Login, Title: "Mail", Username: "ann", Password: "pw", URLs: []string{"https://a", "https://b"},
		Notes: "n1\nn2", TOTP: "JBSWY3DPEHPK3PXP",
		Fields: []item.Field{
			{Name: "API key", Kind: item.KindHidden, Value: "k-1"},
			{Name: "Backup 2FA", Kind: item.KindTOTP, Value: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
			{Name: "empty", Kind: item.KindText},
		},
	}
	for field, want := range map[string]string{
		"password": "pw", "username": "ann", "notes": "n1\nn2", "url": "https://a", "urls": "https://a\nhttps://b",
		"api key": "k-1", "API key": "k-1",
	} {
		got, err := fieldValue(it, field)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v", field, got, err)
		}
	}
	for _, field := range []string{"totp", "otp", "Backup 2FA"} {
		got, err := fieldValue(it, field)
		if err != nil || len(got) != 6 || strings.Trim(got, "0123456789") != "" {
			t.Errorf("%s: %q, %v (want a 6-digit code)", field, got, err)
		}
	}
	for _, field := range []string{"nope", "empty", "card.number"} {
		_, err := fieldValue(it, field)
		if code, _ := classify(err); code != ExitNotFound {
			t.Errorf("%s: %v (exit %d), want not found", field, err, code)
		}
	}
	// A custom field named like a standard one's alias is that field.
	it.Fields = append(it.Fields, item.Field{Name: "OTP", Kind: item.KindText, Value: "not a code"})
	if got, err := fieldValue(it, "OTP"); err != nil || got != "not a code" {
		t.Errorf("custom OTP: %q, %v", got, err)
	}
}
