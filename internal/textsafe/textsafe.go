// Package textsafe makes untrusted text safe to print on a terminal.
//
// Text that a server, a sync folder or another member of an organisation
// chose (organisation, vault and group names, e-mail addresses, a server's
// error messages) is shown as data: it must not be able to clear the
// screen, retitle the window, write the clipboard (OSC 52), move the
// cursor, or reorder what surrounds it. Clean removes, in one pass:
//
//   - escape sequences as a whole, not only their ESC: CSI (ESC [ or
//     U+009B) up to its final byte, control strings (OSC, DCS, SOS, PM,
//     APC: ESC ] P X ^ _ or U+009D U+0090 U+0098 U+009E U+009F) up to BEL
//     or ST (ESC \ or U+009C), or to the end of the text when unterminated,
//     and the other ESC sequences (intermediates 0x20–0x2F, then a final
//     0x30–0x7E);
//   - every other C0 control, DEL and every C1 control (U+0080–U+009F);
//   - the bidirectional marks, embeddings, overrides and isolates (U+061C,
//     U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line and
//     paragraph separators (U+2028, U+2029);
//
// and replaces invalid UTF-8 with U+FFFD. Everything else, ordinary Unicode
// included, is kept. Tabs and line breaks become spaces in Clean and are
// kept by CleanLines.
package textsafe

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s made safe to print on one line: see the package
// documentation. Tabs, line feeds and carriage returns become spaces.
func Clean(s string) string { return clean(s, false) }

// CleanLines is Clean for text shown over several lines (an error message,
// notes): line feeds and tabs are kept, carriage returns dropped.
func CleanLines(s string) string { return clean(s, true) }

// Truncate returns s cut to at most n characters, with "…" appended when it
// was cut. It does not clean.
func Truncate(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

// Printable reports whether s is valid UTF-8 without anything Clean would
// remove or change (tabs and line breaks included): for values a program
// uses rather than shows (tokens, URIs, codes), which are refused rather
// than altered.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if control(r) || invisible(r) {
			return false
		}
	}
	return true
}

// safeASCII reports whether s needs no work at all (the common case):
// only printable ASCII.
func safeASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func clean(s string, lines bool) string {
	if safeASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b.WriteRune(utf8.RuneError) // invalid UTF-8
			i += max(size, 1)
			continue
		}
		switch {
		case r == 0x1b || introducer(r):
			i = skipEscape(s, i)
			continue
		case r == '\n' || r == '\t':
			if lines {
				b.WriteRune(r)
			} else {
				b.WriteByte(' ')
			}
		case r == '\r':
			if !lines {
				b.WriteByte(' ')
			}
		case control(r) || invisible(r):
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// control reports C0 controls, DEL and C1 controls.
func control(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// introducer reports the C1 controls that open a sequence: CSI, and the
// control strings OSC, DCS, SOS, PM and APC.
func introducer(r rune) bool {
	return r == 0x9b || r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f
}

// invisible reports the format characters that reorder or break lines of
// text: bidirectional marks, embeddings, overrides and isolates, and the
// line and paragraph separators.
func invisible(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// skipEscape returns the index just past the escape sequence that starts at
// s[i] (ESC or a C1 introducer).
func skipEscape(s string, i int) int {
	r, size := utf8.DecodeRuneInString(s[i:])
	j := i + size
	kind := r
	if r == 0x1b {
		if j >= len(s) {
			return j
		}
		switch c := s[j]; {
		case c == '[':
			kind = 0x9b
			j++
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			kind = 0x9d
			j++
		case c >= 0x20 && c <= 0x7e:
			// ESC, intermediates 0x20–0x2F, then a final 0x30–0x7E
			// (ESC c, ESC ( B, ESC # 8...). A sequence cut short ends
			// where it stops being one.
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
				j++
			}
			return j
		default:
			return j // a lone ESC: what follows is looked at on its own
		}
	}
	if kind == 0x9b {
		// CSI: parameters 0x30–0x3F and intermediates 0x20–0x2F, then a
		// final byte 0x40–0x7E. Anything else ends it (and is looked at
		// on its own).
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x3f {
			j++
		}
		if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
			j++
		}
		return j
	}
	// A control string runs to BEL, ST (ESC \ or U+009C) or the end of the
	// text: a terminal would swallow it all the same.
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		switch {
		case r == 0x07 || r == 0x9c:
			return j + size
		case r == 0x1b && j+1 < len(s) && s[j+1] == '\\':
			return j + 2
		}
		j += size
	}
	return j
}

// EscapeJSON returns the JSON text b (as encoding/json writes it) with each
// character that encoding/json leaves as it is but Clean would remove (DEL,
// the C1 controls U+0080–U+009F, and the bidirectional and line-breaking
// format characters) written as a \uXXXX escape instead: the same JSON
// value, safe to show on a terminal. encoding/json already escapes the C0
// controls, U+2028 and U+2029, and writes invalid UTF-8 as U+FFFD. Outside
// strings JSON text is ASCII without controls, so every rune replaced is
// inside a string, where the escape means the same character.
func EscapeJSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		if b[i] < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == 0x7f || (r >= 0x80 && r <= 0x9f) || invisible(r) {
			if out == nil {
				out = make([]byte, 0, len(b)+16)
			}
			out = append(out, b[last:i]...)
			out = append(out, '\\', 'u', hexDigit[r>>12&0xf], hexDigit[r>>8&0xf], hexDigit[r>>4&0xf], hexDigit[r&0xf])
			last = i + size
		}
		i += size
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

const hexDigit = "0123456789abcdef"
