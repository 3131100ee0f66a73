package httpremote

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/textsafe"
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
// ErrAuth, ErrForbidden, ErrTOTPRequired, ErrRefused, ErrUnavailable), if
// any. A 403 forbidden is ErrForbidden when its rule is "access" (the
// organisation's log refuses the caller) and ErrAuth otherwise (a disabled
// account or a revoked device).
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
	case remote.ErrForbidden:
		b.WriteString("; ask an administrator of the organisation for access")
	case remote.ErrStale:
		b.WriteString("; sync again")
	}
	return b.String()
}

// Unwrap returns the remote error the code means, or nil.
func (e *ServerError) Unwrap() error { return e.kind }

// maxText bounds any server-provided text put into an error.
const maxText = 300

// sanitize makes server-provided text safe to show (textsafe.Clean: no
// terminal escapes, control characters, bidirectional overrides or
// invalid UTF-8; tabs and line breaks become spaces), at most 300
// characters (and "…" if cut).
func sanitize(s string) string { return textsafe.Truncate(textsafe.Clean(s), maxText) }

// printable reports whether s is valid UTF-8 without control characters:
// for values the client uses rather than shows (a TOTP URI, recovery
// codes), which are refused rather than altered.
func printable(s string) bool { return textsafe.Printable(s) }
