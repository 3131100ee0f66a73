package kit

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// This file is a minimal PDF 1.4 writer: just what the kit needs, written
// out by hand so that no third-party code ever sees the Secret Key.
// Objects are uncompressed, fonts are the standard 14 (no embedding), and
// the output is deterministic for a given Kit.

// doc collects numbered indirect objects. Object n is objs[n-1].
type doc struct {
	objs [][]byte
}

// reserve allocates an object number to be filled in later with set.
func (d *doc) reserve() int {
	d.objs = append(d.objs, nil)
	return len(d.objs)
}

func (d *doc) set(n int, body string) { d.objs[n-1] = []byte(body) }

func (d *doc) add(body string) int {
	n := d.reserve()
	d.set(n, body)
	return n
}

// addStream adds a stream object holding data.
func (d *doc) addStream(data []byte) int {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< /Length %d >>\nstream\n", len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	n := d.reserve()
	d.objs[n-1] = b.Bytes()
	return n
}

// writeTo writes the file: header, objects, cross-reference table with
// the byte offset of every object, trailer.
func (d *doc) writeTo(w io.Writer, root, info int) error {
	var b bytes.Buffer
	// The comment of four high bytes tells transfer tools that the file
	// is binary, as PDF 1.4 §3.4.1 recommends.
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(d.objs))
	for i, body := range d.objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n", i+1)
		b.Write(body)
		b.WriteString("\nendobj\n")
	}
	xref := b.Len()
	// Each xref entry is exactly 20 bytes, ending in space and newline.
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(d.objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n",
		len(d.objs)+1, root, info, xref)
	_, err := w.Write(b.Bytes())
	return err
}

// Fonts: the resource names used in content streams. All four are among
// the standard 14 fonts every PDF reader has, so nothing is embedded.
const (
	helv     = "F1" // Helvetica
	helvBold = "F2" // Helvetica-Bold
	mono     = "F3" // Courier
	monoBold = "F4" // Courier-Bold
)

var fontNames = []struct{ res, base string }{
	{helv, "Helvetica"}, {helvBold, "Helvetica-Bold"}, {mono, "Courier"}, {monoBold, "Courier-Bold"},
}

// canvas builds one page's content stream. Coordinates are PDF points
// (1/72 inch) from the bottom-left corner.
type canvas struct {
	b bytes.Buffer
}

// num formats a coordinate with at most two decimals, the way PDF wants
// numbers: no exponent.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// text draws s with its baseline starting at (x, y).
func (c *canvas) text(font string, size, x, y float64, s string) {
	fmt.Fprintf(&c.b, "BT /%s %s Tf %s %s Td %s Tj ET\n", font, num(size), num(x), num(y), pdfString(s))
}

// fillGray and strokeGray set colours: 0 is black, 1 white.
func (c *canvas) fillGray(g float64)   { fmt.Fprintf(&c.b, "%s g\n", num(g)) }
func (c *canvas) strokeGray(g float64) { fmt.Fprintf(&c.b, "%s G\n", num(g)) }

func (c *canvas) fillRect(x, y, w, h float64) {
	fmt.Fprintf(&c.b, "%s %s %s %s re f\n", num(x), num(y), num(w), num(h))
}

func (c *canvas) strokeRect(x, y, w, h, lw float64) {
	fmt.Fprintf(&c.b, "%s w %s %s %s %s re S\n", num(lw), num(x), num(y), num(w), num(h))
}

func (c *canvas) line(x1, y1, x2, y2, lw float64) {
	fmt.Fprintf(&c.b, "%s w %s %s m %s %s l S\n", num(lw), num(x1), num(y1), num(x2), num(y2))
}

// qrCode draws a QR code whose modules are grid cells: black(x, y) for
// x, y in [0, size) with y = 0 the top row, in a square of side side whose
// bottom-left corner is (x0, y0), including a quiet zone of four modules.
// Inside a saved graphics state, the transformation matrix makes one
// module one unit, so every module or horizontal run of modules is one
// "x y w 1 re" with integer operands; the runs are filled together.
func (c *canvas) qrCode(size int, black func(x, y int) bool, x0, y0, side float64) {
	const quiet = 4
	m := side / float64(size+2*quiet)
	c.fillGray(1)
	c.fillRect(x0, y0, side, side)
	c.fillGray(0)
	fmt.Fprintf(&c.b, "q %s 0 0 %s %s %s cm\n", num(m), num(m), num(x0+quiet*m), num(y0+quiet*m))
	for y := range size {
		row := size - 1 - y // PDF y grows upwards, QR rows downwards
		for x := 0; x < size; {
			if !black(x, y) {
				x++
				continue
			}
			run := 1
			for x+run < size && black(x+run, y) {
				run++
			}
			fmt.Fprintf(&c.b, "%d %d %d 1 re\n", x, row, run)
			x += run
		}
	}
	c.b.WriteString("f Q\n")
}

// pdfString encodes s as a PDF literal string in WinAnsiEncoding: the
// delimiters ( ) and \ are escaped, bytes outside printable ASCII are
// written as octal escapes so the content stream stays plain text.
// s should already be clean (see clean); a rune WinAnsi cannot show
// becomes '?'.
func pdfString(s string) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, r := range s {
		c, ok := winAnsi(r)
		if !ok {
			c = '?'
		}
		switch {
		case c == '(' || c == ')' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
	return b.String()
}

// winAnsi maps a rune to its WinAnsiEncoding (Windows-1252) byte.
func winAnsi(r rune) (byte, bool) {
	if r >= 0x20 && r < 0x7f {
		return byte(r), true
	}
	if r < 0xa0 || r == utf8.RuneError {
		return 0, false
	}
	return charmap.Windows1252.EncodeRune(r)
}

// clean makes text that came from elsewhere (the server, the user) safe
// to draw: invalid UTF-8 becomes U+FFFD (drawn as '?'), control and
// format characters (line breaks, bidirectional overrides) are dropped,
// and the result is cut to limit runes with an ellipsis. unicode.IsPrint
// is false for every control, format and non-ASCII space character.
func clean(s string, limit int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if !unicode.IsPrint(r) {
			continue
		}
		if n == limit {
			b.WriteRune('…')
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// helvWidths are the advance widths, in 1/1000 of the font size, of
// Helvetica's printable ASCII characters 0x20..0x7e (from Adobe's AFM).
var helvWidths = [95]uint16{
	278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space - /
	556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
	278, 278, 584, 584, 584, 556, 1015, // : - @
	667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, // A-M
	722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // N-Z
	278, 278, 278, 469, 556, 333, // [ \ ] ^ _ `
	556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, // a-m
	556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // n-z
	334, 260, 334, 584, // { | } ~
}

// helvWidth is the width of s in Helvetica at the given size. Characters
// outside ASCII count as wide as a digit, a fair estimate for Latin-1.
func helvWidth(s string, size float64) float64 {
	w := 0
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			w += int(helvWidths[r-0x20])
		} else {
			w += 556
		}
	}
	return float64(w) * size / 1000
}

// wrap breaks s into lines no wider than width, at spaces when it can.
// measure gives a string's width.
func wrap(s string, width float64, measure func(string) float64) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		cand := word
		if line != "" {
			cand = line + " " + word
		}
		if measure(cand) <= width {
			line = cand
			continue
		}
		if line != "" {
			lines = append(lines, line)
		}
		// A word wider than a line is cut wherever it must be.
		line = ""
		for _, r := range word {
			if line != "" && measure(line+string(r)) > width {
				lines = append(lines, line)
				line = ""
			}
			line += string(r)
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// monoWidth measures s in Courier, whose every glyph is 600/1000 wide.
func monoWidth(size float64) func(string) float64 {
	return func(s string) float64 { return float64(utf8.RuneCountInString(s)) * 0.6 * size }
}

func helvMeasure(size float64) func(string) float64 {
	return func(s string) float64 { return helvWidth(s, size) }
}
