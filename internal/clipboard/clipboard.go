// Package clipboard copies a secret to the system clipboard and clears it
// after a timeout, but only if the clipboard still holds that secret.
//
// The clearing is done by a detached helper process (the CLI's hidden
// clipboard-clear command) so that the user gets the prompt back at once.
// The secret itself never reaches the helper: the CLI sends it a Token
// (a random key, the HMAC-SHA-256 of the secret under that key, and the
// delay) on its standard input, never on argv or in the environment. After
// the delay the helper reads the clipboard, computes the HMAC of what it
// finds and compares it in constant time; only on a match does it clear.
package clipboard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout is how long a copied secret stays on the clipboard.
const DefaultTimeout = 45 * time.Second

// MaxValueSize bounds what Copy accepts and what a Backend reads back.
const MaxValueSize = 1 << 20

// Errors wrapped by this package; match them with errors.Is.
var (
	ErrNoBackend  = errors.New("no clipboard tool found")
	ErrTooLarge   = errors.New("clipboard content too large")
	ErrUnreadable = errors.New("clipboard content could not be read")
	ErrToken      = errors.New("invalid clipboard token")
)

// Backend is one way to reach the system clipboard.
//
// Contract:
//   - Write replaces the clipboard content with exactly value (no added
//     newline). The value goes to the tool on standard input; an
//     implementation never puts it on a command line or in an environment.
//   - Read returns the current content. It fails (wrapping ErrTooLarge) if
//     the content is longer than max bytes, and fails (wrapping
//     ErrUnreadable) if there is no text content, for example when an image
//     was copied. It never returns partial content.
//   - Clear empties the clipboard.
//   - Every method honours ctx cancellation. None of them is called
//     concurrently with another on the same Backend.
type Backend interface {
	Name() string
	Write(ctx context.Context, value []byte) error
	Read(ctx context.Context, max int) ([]byte, error)
	Clear(ctx context.Context) error
}

// Copy puts value on the clipboard.
func Copy(ctx context.Context, b Backend, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(value), MaxValueSize)
	}
	if err := b.Write(ctx, value); err != nil {
		return fmt.Errorf("copy to clipboard with %s: %w", b.Name(), err)
	}
	return nil
}

// ClearIfUnchanged clears the clipboard if and only if it still holds the
// value tok was made for. It reports whether it cleared. If the content
// cannot be read (non-text, too large, tool failure) it is left alone and
// the error says why.
func ClearIfUnchanged(ctx context.Context, b Backend, tok Token) (bool, error) {
	cur, err := b.Read(ctx, MaxValueSize)
	if err != nil {
		return false, fmt.Errorf("read clipboard with %s: %w", b.Name(), err)
	}
	same := tok.Matches(cur)
	wipe(cur)
	if !same {
		return false, nil
	}
	if err := b.Clear(ctx); err != nil {
		return false, fmt.Errorf("clear clipboard with %s: %w", b.Name(), err)
	}
	return true, nil
}

func wipe(b []byte) { clear(b) }
