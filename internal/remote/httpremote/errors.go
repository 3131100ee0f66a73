package httpremote

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/remote"
)

// ErrFingerprint matches a *FingerprintError with errors.Is.
var ErrFingerprint = errors.New("the server's certificate does not match the pinned fingerprint")

// ErrRateLimited matches a *RateLimitError with errors.Is.
var ErrRateLimited = errors.New("the server is rate-limiting requests")

// FingerprintError reports a server whose certificate is not the pinned
// one: the certificate was replaced, or someone is intercepting the
// connection. It is never remote.ErrUnavailable: sync must stop, not queue.
type FingerprintError struct {
	Pinned string // the fingerprint the client pinned
	Got    string // the fingerprint of the certificate the server presented
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("the server's certificate changed: pinned fingerprint %s, the server presented %s; "+
		"nothing was sent. If the server's operator replaced the certificate, confirm the new fingerprint "+
		"with them (`safe serve fingerprint` on the server) and pin it again with --fingerprint; "+
		"otherwise someone may be intercepting the connection", e.Pinned, e.Got)
}

// Is makes errors.Is(err, ErrFingerprint) true.
func (e *FingerprintError) Is(target error) bool { return target == ErrFingerprint }

// RateLimitError is a 429: wait RetryAfter, then try again. It matches
// ErrRateLimited and also remote.ErrUnavailable (the remote cannot be used
// now; queued writes stay queued).
type RateLimitError struct {
	RetryAfter time.Duration
	Message    string // the server's text, sanitised
}

func (e *RateLimitError) Error() string {
	s := fmt.Sprintf("the server is rate-limiting this account or address: wait %d seconds and try again", int((e.RetryAfter+time.Second-1)/time.Second))
	if e.Message != "" {
		s += fmt.Sprintf(" (server says %q)", e.Message)
	}
	return s
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns remote.ErrUnavailable.
func (e *RateLimitError) Unwrap() error { return remote.ErrUnavailable }

// ServerError is any other non-2xx answer. Code, Message and Rule are the
// server's text, sanitised: show them as data. It matches, with errors.Is,
// the remote error its code means (remote.ErrStale, ErrNotFound, ErrExists,
// ErrAuth, ErrTOTPRequired, ErrUnavailable), if any.
type ServerError struct {
	Status  int
	Code    string
	Message string
	// Head, Epoch, Seq and Rule are api.Error's fields (0 or "" if not
	// sent).
	Head, Epoch, Seq uint64
	Rule             string

	kind error
}

func (e *ServerError) Error() string {
	what := "the server refused the request"
	if e.kind != nil {
		what = e.kind.Error()
	}
	var b strings.Builder
	b.WriteString(what)
	if e.Message != "" {
		fmt.Fprintf(&b, ": server says %q", e.Message)
	}
	fmt.Fprintf(&b, " (HTTP %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	b.WriteString(")")
	switch e.kind {
	case remote.ErrAuth:
		if e.Status == http.StatusForbidden {
			b.WriteString("; the account may be disabled or this device revoked")
		} else {
			b.WriteString("; log in again")
		}
	case remote.ErrTOTPRequired:
		b.WriteString("; pass a current two-factor code or a recovery code")
	case remote.ErrStale:
		b.WriteString("; sync again")
	}
	return b.String()
}

// Unwrap returns the remote error the code means, or nil.
func (e *ServerError) Unwrap() error { return e.kind }

// maxText bounds any server-provided text put into an error.
const maxText = 300

// sanitize makes server-provided text safe to show: it removes terminal
// escape sequences (CSI, OSC, DCS and the like, whether introduced by ESC or
// by their C1 code), every other C0 and C1 control character and DEL,
// bidirectional overrides and isolates, and line and paragraph separators;
// tabs and line breaks become spaces; invalid UTF-8 becomes U+FFFD. The
// result has at most 300 characters (and "…" if cut).
func sanitize(s string) string {
	rs := []rune(s) // invalid UTF-8 becomes U+FFFD
	var b strings.Builder
	n := 0
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == 0x1b || r == 0x90 || r == 0x98 || r == 0x9b || r == 0x9d || r == 0x9e || r == 0x9f:
			i = skipEscape(rs, i)
			continue
		case r == '\t' || r == '\n' || r == '\r':
			r = ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			continue
		case invisible(r):
			continue
		}
		if n == maxText {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
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

// skipEscape returns the index of the last rune of the escape sequence
// starting at rs[i] (ESC or a C1 introducer).
func skipEscape(rs []rune, i int) int {
	kind := rs[i]
	j := i + 1
	if kind == 0x1b {
		if j >= len(rs) {
			return i
		}
		switch rs[j] {
		case '[':
			kind = 0x9b
		case ']', 'P', 'X', '^', '_':
			kind = 0x9d
		default:
			return j // a two-character escape
		}
		j++
	}
	if kind == 0x9b {
		// CSI: parameters and intermediates up to a final byte 0x40..0x7e.
		for ; j < len(rs); j++ {
			if rs[j] >= 0x40 && rs[j] <= 0x7e {
				return j
			}
		}
		return len(rs) - 1
	}
	// A control string (OSC, DCS, SOS, PM, APC): up to BEL or ST.
	for ; j < len(rs); j++ {
		switch {
		case rs[j] == 0x07 || rs[j] == 0x9c:
			return j
		case rs[j] == 0x1b && j+1 < len(rs) && rs[j+1] == '\\':
			return j + 1
		}
	}
	return len(rs) - 1
}

// printable reports whether s is valid UTF-8 without control characters:
// for values the client uses rather than shows (a TOTP URI, recovery
// codes), which are refused rather than altered.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || invisible(r) {
			return false
		}
	}
	return true
}
