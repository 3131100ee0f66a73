package textsafe

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "plain text", "plain text"},
		{"unicode", "ünïcödé ✓ 日本語 🙂", "ünïcödé ✓ 日本語 🙂"},
		{"clear screen", "a\x1b[2J\x1b[H!", "a!"},
		{"clear screen and scrollback", "\x1b[3J\x1b[1;1HEvil", "Evil"},
		{"colour", "\x1b[31;1mred\x1b[0m", "red"},
		{"private mode", "\x1b[?1049halt\x1b[?25l", "alt"},
		{"osc 52 clipboard BEL", "\x1b[2J\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07Evil", "Evil"},
		{"osc 52 clipboard ST", "x\x1b]52;c;Y3VybA==\x1b\\y", "xy"},
		{"title BEL", "title \x1b]0;pwned\x07 set", "title  set"},
		{"title ST", "title \x1b]2;pwned\x1b\\ set", "title  set"},
		{"hyperlink", "osc \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end", "osc link end"},
		{"unterminated osc", "good\x1b]0;rest of it", "good"},
		{"dcs", "a\x1bP1$r0m\x1b\\b", "ab"},
		{"apc pm sos", "a\x1b_x\x07b\x1b^y\x1b\\c\x1bXz\u009cd", "abcd"},
		{"c1 csi osc", "c1 \u009b31mred\u009d0;t\u009c.", "c1 red."},
		{"c1 dcs", "\u0090q\u009cok", "ok"},
		{"two-char escape", "two-char \x1bc reset", "two-char  reset"},
		{"charset escape", "\x1b(Bplain\x1b#8", "plain"},
		{"dangling esc", "dangling \x1b", "dangling "},
		{"dangling csi", "dangling csi \x1b[12", "dangling csi "},
		{"csi broken by control", "\x1b[1\nx", " x"},
		{"esc before non-ascii", "\x1bé", "é"},
		{"bidi override", "bidi \u202eevil\u202c \u2066x\u2069 \u200f", "bidi evil x "},
		{"bidi all", "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\u200e\u200f\u2028\u2029ok", "ok"},
		{"tabs and lines", "tabs\tand\r\nlines", "tabs and  lines"},
		{"c0 del", "del\x7f nul\x00 bel\a bs\b", "del nul bel bs"},
		{"c1", "a\u0085b\u008dc\u009ad", "abcd"},
		{"invalid utf8", "bad utf8 \xff\xfe", "bad utf8 \ufffd\ufffd"},
		{"raw c1 byte is invalid utf8", "x\x9b31m", "x\ufffd31m"},
		{"zero width joiner kept", "👩\u200d💻", "👩\u200d💻"},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("%s: Clean(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestCleanLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"one\ntwo\tcol", "one\ntwo\tcol"},
		{"crlf\r\nnext", "crlf\nnext"},
		{"over\rwrite", "overwrite"},
		{"\x1b[2Jline\n\x1b]0;t\x07next", "line\nnext"},
		{"sep\u2028x", "sepx"},
	} {
		if got := CleanLines(tc.in); got != tc.want {
			t.Errorf("CleanLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"éééé", 2, "éé…"},
		{"", 0, ""},
		{"a", 0, "…"},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"otpauth://totp/x?secret=ABC", true},
		{"ünï ✓", true},
		{"tab\t", false},
		{"nl\n", false},
		{"esc\x1b", false},
		{"c1\u009b", false},
		{"bidi\u202e", false},
		{"bad\xff", false},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestEscapeJSON: what encoding/json leaves raw and Clean would remove is
// escaped, everything else is kept byte for byte, and the JSON still
// decodes to the same value.
func TestEscapeJSON(t *testing.T) {
	evil := "a\x1b[2J\x1b]52;c;Y3Vy\x07\u009b31m\u0085\x7f\u202eevil\u202c\u2066x\u2069\u200f\u061c\u2028\r\b ünï ✓ 🙂"
	raw, err := json.Marshal(map[string]any{"title": evil, "n": 1, "tags": []string{"\u009d0;t\u009c", "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	got := EscapeJSON(raw)
	for _, r := range string(got) {
		if control(r) || invisible(r) {
			t.Errorf("EscapeJSON(%q) = %q keeps %U", raw, got, r)
		}
	}
	for _, want := range []string{`\u009b31m`, `\u0085`, `\u007f`, `\u202eevil\u202c`, `\u2066x\u2069`, `\u200f`, `\u061c`, `\u009d0;t\u009c`, "ünï ✓ 🙂"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("EscapeJSON(%q) = %q, want it to hold %q", raw, got, want)
		}
	}
	var before, after any
	if err := json.Unmarshal(raw, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &after); err != nil {
		t.Fatalf("EscapeJSON(%q) = %q: %v", raw, got, err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("EscapeJSON changed the value: %#v, was %#v", after, before)
	}
	plain := []byte(`{"title": "plain ünïcödé \u001b"}`)
	if got := EscapeJSON(plain); string(got) != string(plain) {
		t.Errorf("EscapeJSON(%q) = %q, want it unchanged", plain, got)
	}
}

// FuzzClean checks that nothing a terminal acts on survives: no control
// character (ESC included), no bidirectional or line-breaking format
// character, no invalid UTF-8; that cleaning twice changes nothing; and
// that text with nothing to remove is kept as it is.
func FuzzClean(f *testing.F) {
	f.Add("\x1b[2J\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07Evil")
	f.Add("\x1b]0;title\x1b\\ \u202eevil\u2069 \u009b1m\xff")
	f.Add("plain ünïcödé")
	f.Fuzz(func(t *testing.T, s string) {
		for _, lines := range []bool{false, true} {
			out := clean(s, lines)
			if !utf8.ValidString(out) {
				t.Fatalf("clean(%q, %v) = %q: invalid UTF-8", s, lines, out)
			}
			for _, r := range out {
				if lines && (r == '\n' || r == '\t') {
					continue
				}
				if control(r) || invisible(r) {
					t.Fatalf("clean(%q, %v) = %q keeps %U", s, lines, out, r)
				}
			}
			if again := clean(out, lines); again != out {
				t.Fatalf("clean(%q, %v) = %q, cleaned again %q", s, lines, out, again)
			}
			if Printable(s) && out != s {
				t.Fatalf("clean(%q, %v) = %q changed printable text", s, lines, out)
			}
			if !lines && !Printable(out) {
				t.Fatalf("Clean(%q) = %q is not Printable", s, out)
			}
			if strings.ContainsRune(out, 0x1b) {
				t.Fatalf("clean(%q, %v) = %q keeps ESC", s, lines, out)
			}
		}
	})
}
