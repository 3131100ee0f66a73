package kit

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"
)

// Page geometry in points: A4 with 50-point margins.
const (
	pageW   = 595
	pageH   = 842
	left    = 50.0
	right   = pageW - 50.0
	width   = right - left
	bottom  = 56.0 // nothing but the footer below this line
	qrSide  = 170.0
	qrLevel = qr.M
)

// errOverflow means the layout ran past the bottom margin: a bug, since
// every field is bounded.
var errOverflow = errors.New("kit: internal error: the page layout overflows")

// page is a canvas with a cursor: y is the baseline of the next line.
type page struct {
	canvas
	y float64
}

// para draws wrapped Helvetica text from x to right and moves down.
func (p *page) para(x float64, size, leading float64, s string) {
	for _, l := range wrap(s, right-x, helvMeasure(size)) {
		p.text(helv, size, x, p.y, l)
		p.y -= leading
	}
}

// mono draws wrapped Courier text within [x, x+w] and moves down.
func (p *page) mono(x, w, size, leading float64, s string) {
	for _, l := range wrap(s, w, monoWidth(size)) {
		p.text(mono, size, x, p.y, l)
		p.y -= leading
	}
}

// label draws a small grey field label.
func (p *page) label(x float64, s string) {
	p.fillGray(0.35)
	p.text(helvBold, 8.5, x, p.y, s)
	p.fillGray(0)
	p.y -= 12
}

func (p *page) heading(s string) {
	p.text(helvBold, 12, left, p.y, s)
	p.y -= 16
}

// keyBox draws a key in large monospace type on a light grey band.
func (p *page) keyBox(key string) {
	const h = 30
	p.fillGray(0.92)
	p.fillRect(left, p.y-h+8, width, h)
	p.fillGray(0)
	p.text(monoBold, 16, left+10, p.y-h/2+2, key)
	p.y -= h + 6
}

func (p *page) footer(n, of int) {
	p.fillGray(0.35)
	p.text(helv, 8, left, 36, fmt.Sprintf("Safehold Recovery Kit · format 1 · page %d of %d", n, of))
	p.fillGray(0)
}

// shellQuote quotes s for a POSIX shell unless it is made only of
// characters no shell treats specially, so that a command copied from the
// kit runs as printed whatever the e-mail address holds.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)
	}
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !safe(r) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// groupFingerprint writes 64 hex digits as two lines of eight groups of
// four.
func groupFingerprint(fp string) []string {
	var groups []string
	for i := 0; i+4 <= len(fp); i += 4 {
		groups = append(groups, fp[i:i+4])
	}
	if len(groups) != 16 {
		return []string{fp}
	}
	return []string{strings.Join(groups[:8], " "), strings.Join(groups[8:], " ")}
}

// WritePDF checks the kit and writes it to w as a PDF: one page, or two
// when the kit holds a Recovery Key. Nothing is written when a field is
// invalid; the error wraps ErrInvalid and names the field.
func WritePDF(w io.Writer, k Kit) error {
	n, err := k.normalize()
	if err != nil {
		return err
	}
	uri := setupURI(n.Server, n.Email, n.Fingerprint, n.SecretKey)
	// Refuse to print a QR code our own reader would refuse.
	if _, _, _, _, err := ParseSetupURI(uri); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	code, err := qr.Encode(uri, qrLevel)
	if err != nil {
		return fmt.Errorf("kit: making the QR code: %w", err)
	}
	pages := 1
	if n.RecoveryKey != "" {
		pages = 2
	}
	var contents [][]byte
	p1, err := firstPage(n, code, pages)
	if err != nil {
		return err
	}
	contents = append(contents, p1)
	if n.RecoveryKey != "" {
		p2, err := recoveryPage(n, pages)
		if err != nil {
			return err
		}
		contents = append(contents, p2)
	}

	var d doc
	catalog := d.reserve()
	pagesObj := d.reserve()
	fonts := ""
	for _, f := range fontNames {
		obj := d.add("<< /Type /Font /Subtype /Type1 /BaseFont /" + f.base + " /Encoding /WinAnsiEncoding >>")
		fonts += fmt.Sprintf(" /%s %d 0 R", f.res, obj)
	}
	var kids []string
	for _, c := range contents {
		stream := d.addStream(c)
		obj := d.add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font <<%s >> >> /Contents %d 0 R >>",
			pagesObj, pageW, pageH, fonts, stream))
		kids = append(kids, fmt.Sprintf("%d 0 R", obj))
	}
	d.set(catalog, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pagesObj))
	d.set(pagesObj, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids)))
	info := d.add("<< /Title (Safehold Recovery Kit) /Producer (Safehold) >>")
	if err := d.writeTo(w, catalog, info); err != nil {
		return fmt.Errorf("kit: writing the PDF: %w", err)
	}
	return nil
}

// firstPage lays out page 1: account details beside the QR code, the
// Secret Key, the password box and the instructions.
func firstPage(k Kit, code *qr.Code, pages int) ([]byte, error) {
	p := &page{y: 792}
	p.text(helvBold, 22, left, p.y, "Safehold Recovery Kit")
	if !k.Created.IsZero() {
		created := "Created " + k.Created.Format("2006-01-02")
		p.text(helv, 10, right-helvWidth(created, 10), p.y, created)
	}
	p.y -= 18
	p.fillGray(0.35)
	p.text(helv, 10, left, p.y, "Keep this page private: with your master password, it opens your Safehold account.")
	p.fillGray(0)
	p.y -= 10
	p.strokeGray(0.6)
	p.line(left, p.y, right, p.y, 0.5)
	p.strokeGray(0)

	// The QR code on the right, the account details on the left.
	qrTop := p.y - 8
	qrX := right - qrSide
	p.qrCode(code.Size, code.Black, qrX, qrTop-qrSide, qrSide)
	caption := "Scan with Safehold on a new device"
	p.fillGray(0.35)
	p.text(helv, 8, qrX+(qrSide-helvWidth(caption, 8))/2, qrTop-qrSide-8, caption)
	p.fillGray(0)

	// Beside the QR code a field is narrower than below it. Values are
	// cut anywhere, as URLs and addresses have no spaces to break at.
	qrBottom := qrTop - qrSide - 22
	p.y -= 22
	field := func(label string, lines ...string) {
		p.label(left, label)
		for _, l := range lines {
			r := []rune(l)
			for len(r) > 0 {
				w := width
				if p.y > qrBottom {
					w = qrX - 20 - left
				}
				n := min(len(r), int(w/(0.6*10)))
				p.text(mono, 10, left, p.y, string(r[:n]))
				r = r[n:]
				p.y -= 12
			}
		}
		p.y -= 8
	}
	field("E-MAIL", k.Email)
	field("SERVER", k.Server)
	field("SERVER CERTIFICATE FINGERPRINT (SHA-256)", groupFingerprint(k.Fingerprint)...)
	if k.Account != "" {
		field("ACCOUNT ID", k.Account)
	}
	p.y = min(p.y, qrBottom) - 4

	p.text(helvBold, 11, left, p.y, "Secret Key")
	p.y -= 14
	p.keyBox(k.SecretKey)
	p.para(left, 8.5, 11, "Needed with your master password to sign in on a new device. It is not your master password and cannot replace it.")
	p.y -= 10

	p.text(helvBold, 11, left, p.y, "Master password")
	p.y -= 8
	const boxH = 44
	p.strokeRect(left, p.y-boxH, width, boxH, 0.8)
	p.y -= boxH + 12
	p.para(left, 8.5, 11, "Write it here by hand, or leave the box empty and keep it in your memory. Safehold never prints, stores or sends your master password.")
	p.y -= 12

	p.heading("Set up a new device")
	p.para(left, 10, 13, "1. Install Safehold on the new device.")
	p.para(left, 10, 13, "2. Scan the QR code with Safehold, or save the Secret Key above in a file that only you can read and run:")
	p.y -= 2
	p.mono(left+14, width-14, 8.5, 11, "safe account login --server "+shellQuote(k.Server)+" --email "+shellQuote(k.Email)+
		" --fingerprint "+k.Fingerprint+" --secret-key-file FILE")
	p.y -= 4
	p.para(left, 10, 13, "3. Enter your master password. Safehold checks the server's certificate against the fingerprint above and refuses a server that does not match.")
	p.y -= 8

	p.heading("Keep this kit safe")
	bullets := []string{
		"Store it on paper, like a passport: not on a computer, in e-mail or in cloud storage, and do not photograph it.",
		"The QR code holds the server, the e-mail address, the fingerprint and the Secret Key. It never holds your master password or your Recovery Key.",
		"A device that is already signed in shows the Secret Key again with: safe account secret-key",
	}
	if pages > 1 {
		bullets = append(bullets, "Page 2 holds your Recovery Key. Keep it apart from this page.")
	}
	for _, b := range bullets {
		p.text(helv, 10, left, p.y, "•")
		p.para(left+12, 10, 13, b)
	}
	if p.y < bottom {
		return nil, errOverflow
	}
	p.footer(1, pages)
	return p.b.Bytes(), nil
}

// recoveryPage lays out page 2: the Recovery Key alone, with a warning.
func recoveryPage(k Kit, pages int) ([]byte, error) {
	p := &page{y: 792}
	p.text(helvBold, 22, left, p.y, "Safehold Recovery Key")
	p.y -= 18
	p.fillGray(0.35)
	p.para(left, 10, 13, "For "+k.Email+" on "+k.Server)
	p.fillGray(0)
	p.y += 3
	p.strokeGray(0.6)
	p.line(left, p.y, right, p.y, 0.5)
	p.strokeGray(0)
	p.y -= 28

	warning := "This Recovery Key sets a new master password without knowing the old one. Anyone who holds it " +
		"and can reach your vault can read everything in it. Keep it apart from page 1 and from your " +
		"devices, somewhere only you can reach. Safehold showed it once, when the account was created, " +
		"and cannot show it again."
	lines := wrap(warning, width-24, helvMeasure(10))
	boxH := 32 + 13*float64(len(lines))
	p.fillGray(0.95)
	p.fillRect(left, p.y-boxH+14, width, boxH)
	p.fillGray(0)
	p.strokeRect(left, p.y-boxH+14, width, boxH, 1.5)
	p.text(helvBold, 11, left+12, p.y, "Warning")
	p.y -= 17
	for _, l := range lines {
		p.text(helv, 10, left+12, p.y, l)
		p.y -= 13
	}
	p.y -= 30

	p.text(helvBold, 11, left, p.y, "Recovery Key")
	p.y -= 14
	p.keyBox(k.RecoveryKey)
	p.y -= 10

	p.heading("If you forget your master password")
	p.para(left, 10, 13, "On a device that has your vault, run the command below, type this Recovery Key when asked and choose a new master password. The Recovery Key stays the same afterwards.")
	p.y -= 2
	p.mono(left+14, width-14, 10, 13, "safe recover")
	if p.y < bottom {
		return nil, errOverflow
	}
	p.footer(2, pages)
	return p.b.Bytes(), nil
}
