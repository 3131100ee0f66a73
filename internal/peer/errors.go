package peer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/textsafe"
)

// ErrFailed is what the client returns when the other device's remote
// failed a request with an error that is none of package remote's: the
// reason stays on the other device, which may hold paths or worse in it.
var ErrFailed = errors.New("the other device could not carry out the request")

// ErrClosed reports a call on a Client after Close. It comes wrapped with
// remote.ErrUnavailable.
var ErrClosed = errors.New("the connection to the other device is closed")

// Error codes, in an error message. They are stable: a code keeps its
// number and meaning in every version.
const (
	codeStale        byte = 1  // remote.ErrStale; detail: the backing's message
	codeNotFound     byte = 2  // remote.ErrNotFound
	codeExists       byte = 3  // remote.ErrExists
	codeAuth         byte = 4  // remote.ErrAuth
	codeTOTPRequired byte = 5  // remote.ErrTOTPRequired
	codeRefused      byte = 6  // remote.ErrRefused; detail: the backing's message
	codeForbidden    byte = 7  // remote.ErrForbidden
	codeUnavailable  byte = 8  // remote.ErrUnavailable
	codeFailed       byte = 9  // any other error of the backing (ErrFailed)
	codeBadRequest   byte = 10 // the request broke the wire format; the server closes
	codeUnsupported  byte = 11 // the request's version is unknown; the server closes
)

// detailChars bounds the characters of a detail the server sends (at most
// 4 bytes each, so under maxDetail) and of one the client shows.
const detailChars = 200

// sentinel returns the remote error a code means, or nil.
func sentinel(code byte) error {
	switch code {
	case codeStale:
		return remote.ErrStale
	case codeNotFound:
		return remote.ErrNotFound
	case codeExists:
		return remote.ErrExists
	case codeAuth:
		return remote.ErrAuth
	case codeTOTPRequired:
		return remote.ErrTOTPRequired
	case codeRefused:
		return remote.ErrRefused
	case codeForbidden:
		return remote.ErrForbidden
	case codeUnavailable:
		return remote.ErrUnavailable
	}
	return nil
}

// errorFor is the error message the server sends for a backing's error. It
// carries a detail only for a stale write and refused entries, where the
// backing's text says which entry and why (ids, numbers and rule names,
// never paths or keys); every other error travels as its code alone.
func errorFor(err error) *errorMsg {
	m := &errorMsg{Code: codeOf(err)}
	if m.Code == codeStale || m.Code == codeRefused {
		m.Detail = detail(strings.TrimPrefix(err.Error(), sentinel(m.Code).Error()+": "))
	}
	return m
}

// codeOf returns the code of a backing's error: the first remote error it
// matches, the more specific first, or codeFailed.
func codeOf(err error) byte {
	switch {
	case errors.Is(err, remote.ErrStale):
		return codeStale
	case errors.Is(err, remote.ErrNotFound):
		return codeNotFound
	case errors.Is(err, remote.ErrExists):
		return codeExists
	case errors.Is(err, remote.ErrTOTPRequired):
		return codeTOTPRequired
	case errors.Is(err, remote.ErrAuth):
		return codeAuth
	case errors.Is(err, remote.ErrRefused):
		return codeRefused
	case errors.Is(err, remote.ErrForbidden):
		return codeForbidden
	case errors.Is(err, remote.ErrUnavailable):
		return codeUnavailable
	}
	return codeFailed
}

// detail makes text safe to send and show: one line, no control or
// invisible characters, at most detailChars characters.
func detail(s string) string { return textsafe.Truncate(textsafe.Clean(s), detailChars) }

// peerError is the client's error for an error message other than
// bad_request and unsupported: the remote error its code means, with the
// detail shown as the other device's text.
func peerError(m *errorMsg) error {
	d := detail(m.Detail)
	s := sentinel(m.Code)
	switch {
	case s == nil:
		if m.Code != codeFailed {
			return fmt.Errorf("%w (unknown error code %d: the other device may run a newer safe)", ErrFailed, m.Code)
		}
		return ErrFailed
	case d != "":
		return fmt.Errorf("%w (the other device says %q)", s, d)
	}
	return s
}
