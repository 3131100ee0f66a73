// Package kit makes the printable recovery kit: a PDF written locally that
// holds what a new device needs to reach a Safehold account, and a setup
// URI, carried in the kit's QR code, that a new device can read.
//
// # Setup URI, version 1
//
//	safehold://setup?v=1&server=S&email=E&fingerprint=F&secret_key=K
//
// The parameters appear exactly once each, in this order, and nothing
// else does. S is the server's https URL, E the account's e-mail address,
// F the SHA-256 fingerprint of the server's TLS certificate as 64
// lower-case hexadecimal digits, and K the Secret Key in its canonical
// text form (S1-XXXX-..., see package keycode). S, E and K are escaped
// as url.QueryEscape does (space as '+', upper-case %XX). The URI never
// holds the master password or the Recovery Key. ParseSetupURI accepts
// only this canonical form, at most MaxSetupURI bytes, so each set of
// values has exactly one URI; it checks the Secret Key's checksum.
//
// # The PDF
//
// A PDF 1.4 file with uncompressed content streams, written by this
// package without a PDF library; text uses the standard Helvetica and
// Courier fonts with WinAnsiEncoding, so nothing is embedded, and the QR
// code (error correction level M, a quiet zone of four modules) is drawn
// as filled rectangles. The output is deterministic for a given Kit.
//
// Page 1 holds the title, the e-mail address, the server URL, the
// certificate fingerprint in groups of four digits, the account id, the
// creation date, the QR code, the Secret Key, an empty box labelled
// "Master password" to fill in by hand, and short instructions. Page 2
// exists only when the Kit has a Recovery Key and holds it alone, with a
// warning. Every string is validated or cleaned before it is drawn:
// control and format characters never reach the page, since the account
// id and the e-mail address come back from the server and are data.
//
// The kit is never sent anywhere; the caller writes it to a local file.
package kit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/keycode"
)

// Limits on what a kit or a setup URI may hold.
const (
	MaxEmail    = 254  // bytes, as in RFC 5321
	MaxServer   = 256  // bytes of the server URL
	MaxAccount  = 64   // runes of the account id shown
	MaxSetupURI = 2048 // bytes; fits any valid set of values
)

// ErrInvalid reports a kit field that does not hold a valid value; the
// message names the field but never shows a key.
var ErrInvalid = errors.New("kit: invalid value")

// ErrSetupURI reports a setup URI that is not a valid version 1 URI.
var ErrSetupURI = errors.New("kit: not a valid setup URI")

// Kit is what the recovery kit shows. SecretKey and RecoveryKey are the
// text forms of keycode keys; RecoveryKey may be empty (it is shown only
// when an account is created), and so may Account and Created.
//
// A Kit holds secrets: its String, Format, GoString, MarshalJSON and
// LogValue leave the keys out.
type Kit struct {
	Email       string
	Server      string
	Fingerprint string
	Account     string
	SecretKey   string
	RecoveryKey string
	Created     time.Time
}

const redacted = "[redacted]"

// String describes the kit without its keys.
func (k Kit) String() string {
	return fmt.Sprintf("kit{email=%q server=%q account=%q secret_key=%s recovery_key=%s}",
		clean(k.Email, MaxEmail), clean(k.Server, MaxServer), clean(k.Account, MaxAccount), redacted, redacted)
}

// GoString is String, for %#v.
func (k Kit) GoString() string { return k.String() }

// Format is String for every verb.
func (k Kit) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// MarshalJSON refuses to put the keys in JSON: it writes the String form.
func (k Kit) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// LogValue logs the kit without its keys.
func (k Kit) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", clean(k.Email, MaxEmail)),
		slog.String("server", clean(k.Server, MaxServer)), slog.String("secret_key", redacted))
}

// normalize checks every field and returns the kit in canonical form:
// fingerprint in lower-case hex without separators, keys in their
// canonical text form, account id cleaned for display.
func (k Kit) normalize() (Kit, error) {
	n := Kit{Created: k.Created}
	var err error
	if n.Email, err = checkEmail(k.Email); err != nil {
		return Kit{}, err
	}
	if n.Server, err = checkServer(k.Server); err != nil {
		return Kit{}, err
	}
	if n.Fingerprint, err = normalizeFingerprint(k.Fingerprint); err != nil {
		return Kit{}, err
	}
	sk, err := keycode.ParseSecretKey(k.SecretKey)
	if err != nil {
		return Kit{}, fmt.Errorf("%w: secret key: %w", ErrInvalid, err)
	}
	n.SecretKey = sk.Reveal()
	sk.Wipe()
	if k.RecoveryKey != "" {
		rk, err := keycode.ParseRecoveryKey(k.RecoveryKey)
		if err != nil {
			return Kit{}, fmt.Errorf("%w: recovery key: %w", ErrInvalid, err)
		}
		n.RecoveryKey = rk.Reveal()
		rk.Wipe()
	}
	n.Account = clean(k.Account, MaxAccount)
	return n, nil
}

func checkEmail(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("%w: the e-mail address is empty", ErrInvalid)
	case len(s) > MaxEmail:
		return "", fmt.Errorf("%w: the e-mail address is longer than %d bytes", ErrInvalid, MaxEmail)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%w: the e-mail address is not valid UTF-8", ErrInvalid)
	case strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }):
		return "", fmt.Errorf("%w: the e-mail address contains a space or a control character", ErrInvalid)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", fmt.Errorf("%w: the e-mail address %q has no local part and domain around an @", ErrInvalid, s)
	}
	return s, nil
}

func checkServer(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: the server URL is empty", ErrInvalid)
	}
	if len(s) > MaxServer {
		return "", fmt.Errorf("%w: the server URL is longer than %d bytes", ErrInvalid, MaxServer)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) {
		return "", fmt.Errorf("%w: the server URL contains a space or a control character", ErrInvalid)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: the server URL %q does not parse", ErrInvalid, s)
	}
	if u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return "", fmt.Errorf("%w: the server URL %q is not of the form https://host[:port][/path]", ErrInvalid, s)
	}
	return s, nil
}

// normalizeFingerprint accepts 64 hexadecimal digits in either case,
// optionally separated by colons, spaces or hyphens, and returns them in
// lower case without separators.
func normalizeFingerprint(s string) (string, error) {
	if len(s) > 256 {
		return "", fmt.Errorf("%w: the certificate fingerprint is too long", ErrInvalid)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ':' || r == ' ' || r == '-':
		case '0' <= r && r <= '9', 'a' <= r && r <= 'f':
			b.WriteRune(r)
		case 'A' <= r && r <= 'F':
			b.WriteRune(r - 'A' + 'a')
		default:
			return "", fmt.Errorf("%w: the certificate fingerprint holds a character that is not a hexadecimal digit", ErrInvalid)
		}
	}
	if b.Len() != 64 {
		return "", fmt.Errorf("%w: the certificate fingerprint has %d hexadecimal digits, want 64 (SHA-256)", ErrInvalid, b.Len())
	}
	return b.String(), nil
}

// setupURI builds the canonical URI from canonical values.
func setupURI(server, email, fingerprint, secretKey string) string {
	return "safehold://setup?v=1&server=" + url.QueryEscape(server) +
		"&email=" + url.QueryEscape(email) +
		"&fingerprint=" + url.QueryEscape(fingerprint) +
		"&secret_key=" + url.QueryEscape(secretKey)
}

// SetupURI returns the URI the kit's QR code holds. It normalises the
// fingerprint and the Secret Key first; for a kit that WritePDF would
// refuse, the fields are escaped as they are and ParseSetupURI will
// refuse the result.
func (k Kit) SetupURI() string {
	if n, err := k.normalize(); err == nil {
		k = n
	}
	return setupURI(k.Server, k.Email, k.Fingerprint, k.SecretKey)
}

// setupParams are the parameters of a version 1 URI, in their order.
var setupParams = [...]string{"v", "server", "email", "fingerprint", "secret_key"}

// ParseSetupURI reads a setup URI. It accepts only the canonical form
// that SetupURI writes, and checks every value: an https server URL, an
// e-mail address, a 64-digit fingerprint and a Secret Key whose checksum
// matches. Errors wrap ErrSetupURI and never contain the Secret Key.
func ParseSetupURI(s string) (server, email, fingerprint, secretKey string, err error) {
	const prefix = "safehold://setup?"
	if len(s) > MaxSetupURI {
		return "", "", "", "", fmt.Errorf("%w: longer than %d bytes", ErrSetupURI, MaxSetupURI)
	}
	if !strings.HasPrefix(s, prefix) {
		return "", "", "", "", fmt.Errorf("%w: it does not start with %q", ErrSetupURI, prefix)
	}
	parts := strings.Split(s[len(prefix):], "&")
	if len(parts) != len(setupParams) {
		return "", "", "", "", fmt.Errorf("%w: it has %d parameters, want %d (%s)",
			ErrSetupURI, len(parts), len(setupParams), strings.Join(setupParams[:], ", "))
	}
	var vals [len(setupParams)]string
	for i, p := range parts {
		name, val, ok := strings.Cut(p, "=")
		if !ok || name != setupParams[i] {
			return "", "", "", "", fmt.Errorf("%w: parameter %d is not %q", ErrSetupURI, i+1, setupParams[i])
		}
		if vals[i], err = url.QueryUnescape(val); err != nil {
			return "", "", "", "", fmt.Errorf("%w: parameter %q is not correctly escaped", ErrSetupURI, name)
		}
	}
	if vals[0] != "1" {
		return "", "", "", "", fmt.Errorf("%w: version is not 1; this setup code needs a newer Safehold", ErrSetupURI)
	}
	if server, err = checkServer(vals[1]); err != nil {
		return "", "", "", "", fmt.Errorf("%w: %w", ErrSetupURI, err)
	}
	if email, err = checkEmail(vals[2]); err != nil {
		return "", "", "", "", fmt.Errorf("%w: %w", ErrSetupURI, err)
	}
	if fingerprint, err = normalizeFingerprint(vals[3]); err != nil {
		return "", "", "", "", fmt.Errorf("%w: %w", ErrSetupURI, err)
	}
	sk, err := keycode.ParseSecretKey(vals[4])
	if err != nil {
		return "", "", "", "", fmt.Errorf("%w: secret key: %w", ErrSetupURI, err)
	}
	secretKey = sk.Reveal()
	sk.Wipe()
	if setupURI(server, email, fingerprint, secretKey) != s {
		return "", "", "", "", fmt.Errorf("%w: it is not in canonical form", ErrSetupURI)
	}
	return server, email, fingerprint, secretKey, nil
}
