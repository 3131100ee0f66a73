package vault

import (
	"errors"
	"fmt"
	"strings"

	"github.com/safehold/safehold/internal/textsafe"
)

// Errors that callers match with errors.Is. The CLI maps each to a
// documented exit code.
var (
	ErrWrongPassword = errors.New("wrong password")
	ErrLocked        = errors.New("vault is locked")
	ErrNotFound      = errors.New("item not found")
	ErrAmbiguous     = errors.New("name matches more than one item")
	ErrTampered      = errors.New("vault file failed an integrity check")
	ErrConflict      = errors.New("item changed since it was read")
	ErrInsecureKDF   = errors.New("vault uses the insecure test KDF profile")
	ErrNoVault       = errors.New("no vault here")
	ErrExists        = errors.New("a vault already exists here")
	ErrRecoveryKey   = errors.New("recovery key does not open this vault")
	ErrNotInTrash    = errors.New("item is not in the trash")
	ErrNewerFormat   = errors.New("vault was written by a newer safehold")
	// ErrRemoteTampered: the remote served something that fails a check
	// (forged, moved, rolled back, forked, downgraded). Sync stops; local
	// data is untouched.
	ErrRemoteTampered = errors.New("the remote failed an integrity check")
	// ErrNoRemote: the vault has no remote configured.
	ErrNoRemote = errors.New("no remote is configured")
	// ErrRemoteExists: the vault already syncs with a remote.
	ErrRemoteExists = errors.New("the vault already has a remote")
	// ErrPrelogin: the remote's KDF parameters were refused before anything
	// was derived or sent.
	ErrPrelogin = errors.New("the remote's key-derivation parameters were refused")
)

// Candidate is one of several items a name matched.
type Candidate struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Type  string `json:"type"`
}

// AmbiguousError lists the items a name matched.
type AmbiguousError struct {
	Query      string
	Candidates []Candidate
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q matches %d items:", e.Query, len(e.Candidates))
	for _, c := range e.Candidates {
		// One line each: a title (which another member of a shared
		// vault may have chosen) cannot add lines of its own.
		fmt.Fprintf(&b, "\n  %s  %s (%s)", c.ID, textsafe.Clean(c.Title), c.Type)
	}
	return b.String()
}

func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

// IntegrityError says what an integrity check found.
type IntegrityError struct{ Problems []string }

func (e *IntegrityError) Error() string {
	if len(e.Problems) == 1 {
		return "integrity check failed: " + e.Problems[0]
	}
	return fmt.Sprintf("integrity check failed with %d problems; first: %s", len(e.Problems), e.Problems[0])
}

func (e *IntegrityError) Unwrap() error { return ErrTampered }

func tampered(format string, args ...any) error {
	return &IntegrityError{Problems: []string{fmt.Sprintf(format, args...)}}
}
