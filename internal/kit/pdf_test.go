package kit

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// This file is an independent reader for the PDFs WritePDF makes: it
// checks the file structure the way a PDF reader would find objects, and
// tokenises content streams, so tests look at what a viewer would draw.

type pdfFile struct {
	objs  map[int][]byte // object number -> body between "obj\n" and "\nendobj"
	pages [][]byte       // content stream of each page, in order
}

var (
	reXrefEntry = regexp.MustCompile(`^(\d{10}) (\d{5}) ([nf]) \n$`)
	reRef       = regexp.MustCompile(`(\d+) 0 R`)
)

// parsePDF checks the header, the cross-reference table (every offset
// points at "N 0 obj"), the trailer and the page tree.
func parsePDF(t *testing.T, data []byte) pdfFile {
	t.Helper()
	s := string(data)
	if !strings.HasPrefix(s, "%PDF-1.") {
		t.Fatalf("no %%PDF-1. header: %q", s[:min(len(s), 16)])
	}
	if !strings.HasSuffix(s, "%%EOF\n") {
		t.Fatalf("file does not end with %%%%EOF")
	}
	i := strings.LastIndex(s, "startxref\n")
	if i < 0 {
		t.Fatal("no startxref")
	}
	xrefOff, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(s[i+len("startxref\n"):], "%%EOF\n")))
	if err != nil || xrefOff <= 0 || xrefOff >= len(s) {
		t.Fatalf("startxref offset %d: %v", xrefOff, err)
	}
	rest := s[xrefOff:]
	if !strings.HasPrefix(rest, "xref\n") {
		t.Fatalf("startxref does not point at the xref table: %q", rest[:min(len(rest), 10)])
	}
	rest = rest[len("xref\n"):]
	var first, count int
	if _, err := fmt.Sscanf(rest, "%d %d\n", &first, &count); err != nil || first != 0 {
		t.Fatalf("xref subsection header: %v", err)
	}
	rest = rest[strings.IndexByte(rest, '\n')+1:]
	f := pdfFile{objs: map[int][]byte{}}
	for n := range count {
		if len(rest) < 20 {
			t.Fatal("xref table truncated")
		}
		m := reXrefEntry.FindStringSubmatch(rest[:20])
		if m == nil {
			t.Fatalf("xref entry %d is not 20 bytes of the right form: %q", n, rest[:20])
		}
		rest = rest[20:]
		if n == 0 {
			if m[3] != "f" || m[2] != "65535" {
				t.Fatalf("xref entry 0 = %q, want the free list head", m[0])
			}
			continue
		}
		if m[3] != "n" {
			t.Fatalf("object %d is free", n)
		}
		off, _ := strconv.Atoi(m[1])
		head := fmt.Sprintf("%d 0 obj\n", n)
		if !strings.HasPrefix(s[off:], head) {
			t.Fatalf("xref offset %d of object %d points at %q", off, n, s[off:min(len(s), off+12)])
		}
		body := s[off+len(head):]
		end := strings.Index(body, "\nendobj\n")
		if end < 0 {
			t.Fatalf("object %d has no endobj", n)
		}
		f.objs[n] = []byte(body[:end])
	}
	if got := strings.Count(s, " 0 obj\n"); got != count-1 {
		t.Fatalf("%d objects in the file, %d in the xref table", got, count-1)
	}
	if !strings.HasPrefix(rest, "trailer\n") {
		t.Fatalf("no trailer after the xref table")
	}
	var size, root int
	if _, err := fmt.Sscanf(rest, "trailer\n<< /Size %d /Root %d 0 R", &size, &root); err != nil {
		t.Fatalf("trailer: %v", err)
	}
	if size != count {
		t.Fatalf("trailer /Size %d, xref has %d entries", size, count)
	}
	catalog := string(f.objs[root])
	if !strings.Contains(catalog, "/Type /Catalog") {
		t.Fatalf("root object is not a catalog: %q", catalog)
	}
	pagesRef := reRef.FindStringSubmatch(catalog[strings.Index(catalog, "/Pages"):])
	pagesNum, _ := strconv.Atoi(pagesRef[1])
	tree := string(f.objs[pagesNum])
	kids := tree[strings.Index(tree, "/Kids [")+len("/Kids [") : strings.Index(tree, "]")]
	kidRefs := reRef.FindAllStringSubmatch(kids, -1)
	if !strings.Contains(tree, fmt.Sprintf("/Count %d", len(kidRefs))) {
		t.Fatalf("page tree /Count does not match its kids: %q", tree)
	}
	for _, k := range kidRefs {
		n, _ := strconv.Atoi(k[1])
		pg := string(f.objs[n])
		if !strings.Contains(pg, "/Type /Page ") || !strings.Contains(pg, fmt.Sprintf("/Parent %d 0 R", pagesNum)) {
			t.Fatalf("object %d is not a page of the tree: %q", n, pg)
		}
		for _, font := range fontNames {
			if !strings.Contains(pg, "/"+font.res+" ") {
				t.Fatalf("page %d lacks font resource %s", n, font.res)
			}
		}
		c := reRef.FindStringSubmatch(pg[strings.Index(pg, "/Contents"):])
		cn, _ := strconv.Atoi(c[1])
		f.pages = append(f.pages, streamData(t, f.objs[cn]))
	}
	return f
}

// streamData returns the data of a stream object, checking /Length.
func streamData(t *testing.T, body []byte) []byte {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(body), "<< /Length %d >>\nstream\n", &n); err != nil {
		t.Fatalf("stream dictionary: %v", err)
	}
	start := bytes.Index(body, []byte("stream\n")) + len("stream\n")
	if start+n > len(body) || string(body[start+n:]) != "\nendstream" {
		t.Fatalf("stream /Length %d does not end at endstream", n)
	}
	return body[start : start+n]
}

// op is one content stream operator with its operands. String operands
// are decoded from WinAnsi to UTF-8.
type op struct {
	name string
	args []string
}

// tokenize splits a content stream into operators. It knows the little
// the kit uses: numbers, names, literal strings and operator words.
func tokenize(t *testing.T, c []byte) []op {
	t.Helper()
	var ops []op
	var args []string
	for i := 0; i < len(c); {
		switch ch := c[i]; {
		case ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t':
			i++
		case ch == '%':
			for i < len(c) && c[i] != '\n' {
				i++
			}
		case ch == '(':
			var raw []byte
			i++
			for depth := 0; ; i++ {
				if i >= len(c) {
					t.Fatal("unterminated string")
				}
				b := c[i]
				if b == '\\' {
					i++
					switch e := c[i]; {
					case e >= '0' && e <= '7':
						v := 0
						for k := 0; k < 3 && i < len(c) && c[i] >= '0' && c[i] <= '7'; k++ {
							v = v*8 + int(c[i]-'0')
							i++
						}
						i--
						raw = append(raw, byte(v))
					case e == 'n':
						raw = append(raw, '\n')
					case e == 'r':
						raw = append(raw, '\r')
					default:
						raw = append(raw, e)
					}
					continue
				}
				if b < 0x20 || b > 0x7e {
					t.Fatalf("raw byte %#x inside a string; the writer escapes them", b)
				}
				if b == '(' {
					depth++
				}
				if b == ')' {
					if depth == 0 {
						i++
						break
					}
					depth--
				}
				raw = append(raw, b)
			}
			s, err := charmap.Windows1252.NewDecoder().Bytes(raw)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, "("+string(s))
		default:
			j := i
			for j < len(c) && !strings.ContainsRune(" \n\r\t(%", rune(c[j])) {
				j++
			}
			tok := string(c[i:j])
			i = j
			if tok[0] == '/' || tok[0] == '-' || tok[0] == '.' || tok[0] >= '0' && tok[0] <= '9' {
				args = append(args, tok)
			} else {
				ops = append(ops, op{tok, args})
				args = nil
			}
		}
	}
	if len(args) != 0 {
		t.Fatalf("operands without an operator at the end: %q", args)
	}
	return ops
}

// pageText returns the strings a page draws, one per line.
func pageText(t *testing.T, c []byte) string {
	var b strings.Builder
	for _, o := range tokenize(t, c) {
		if o.name == "Tj" {
			if len(o.args) != 1 || !strings.HasPrefix(o.args[0], "(") {
				t.Fatalf("Tj with operands %q", o.args)
			}
			b.WriteString(o.args[0][1:])
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// qrModules rebuilds the module grid a page draws: the "re" operators
// between the "cm" that scales one module to one unit and the "Q" that
// ends it. Row 0 is the top row.
func qrModules(t *testing.T, c []byte, size int) [][]bool {
	t.Helper()
	grid := make([][]bool, size)
	for i := range grid {
		grid[i] = make([]bool, size)
	}
	in, seen := false, false
	for _, o := range tokenize(t, c) {
		switch o.name {
		case "cm":
			if seen {
				t.Fatal("two QR codes on one page")
			}
			in, seen = true, true
		case "Q":
			in = false
		case "re":
			if !in {
				continue
			}
			var v [4]int
			for k, a := range o.args {
				n, err := strconv.Atoi(a)
				if err != nil {
					t.Fatalf("QR rectangle operand %q is not an integer", a)
				}
				v[k] = n
			}
			x, y, w, h := v[0], v[1], v[2], v[3]
			if h != 1 || w < 1 || x < 0 || x+w > size || y < 0 || y >= size {
				t.Fatalf("QR rectangle %v outside a %d-module grid", v, size)
			}
			for dx := range w {
				row := size - 1 - y
				if grid[row][x+dx] {
					t.Fatalf("module (%d,%d) drawn twice", x+dx, row)
				}
				grid[row][x+dx] = true
			}
		case "f":
		default:
			if in {
				t.Fatalf("unexpected operator %q inside the QR code", o.name)
			}
		}
	}
	if !seen {
		t.Fatal("no QR code on the page")
	}
	return grid
}

func TestPDFString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           "(plain)",
		`a(b)c\d`:         `(a\(b\)c\\d)`,
		"é€•·…":           `(\351\200\225\267\205)`,
		"日本":              "(??)",
		"tab\there\x00":   "(tab?here?)", // clean drops them before
		"unbalanced ((((": `(unbalanced \(\(\(\()`,
	} {
		if got := pdfString(in); got != want {
			t.Errorf("pdfString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"acct_1":                       "acct_1",
		"evil\x1b[31m\r\nred\u202egnp": "evil[31mredgnp",
		"bad \xff utf8":                "bad \ufffd utf8",
		"nbsp\u00a0zero\u200bwidth":    "nbspzerowidth",
	} {
		if got := clean(in, 100); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := clean(strings.Repeat("x", 10), 4); got != "xxxx…" {
		t.Errorf("clean cut = %q", got)
	}
}

func TestWrap(t *testing.T) {
	m := monoWidth(10) // 6 points a character
	for _, c := range []struct {
		in   string
		w    float64
		want []string
	}{
		{"a b c", 30, []string{"a b c"}},
		{"aaa bbb ccc", 42, []string{"aaa bbb", "ccc"}},
		{"abcdefghij", 24, []string{"abcd", "efgh", "ij"}},
		{"", 24, []string{""}},
	} {
		got := wrap(c.in, c.w, m)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("wrap(%q, %v) = %q, want %q", c.in, c.w, got, c.want)
		}
		for _, l := range got {
			if m(l) > c.w {
				t.Errorf("line %q wider than %v", l, c.w)
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":    "alice@example.com",
		"https://[::1]:9443/a": "'https://[::1]:9443/a'", // [ ] glob
		"a+b@x.org":            "a+b@x.org",
		"o'brien@x.org":        `'o'\''brien@x.org'`,
		"a;rm${IFS}-rf~@x":     `'a;rm${IFS}-rf~@x'`,
		"zoë@x.de":             "'zoë@x.de'",
		"https://h/$(id)":      "'https://h/$(id)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
