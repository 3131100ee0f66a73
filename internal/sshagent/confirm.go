package sshagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrNoTerminal means confirmation was asked for and there is no
// controlling terminal to ask on.
var ErrNoTerminal = errors.New("no controlling terminal to ask on")

// TTY asks on the controlling terminal (/dev/tty), which it opens for each
// question: "y" or "yes" (any case) is a yes; anything else, end of input,
// or no answer within Timeout is a no.
type TTY struct {
	// Path is the terminal device; "" is /dev/tty.
	Path string
	// Timeout for an answer; 0 is DefaultConfirmTimeout.
	Timeout time.Duration
}

// DefaultConfirmTimeout is how long a question waits for an answer.
const DefaultConfirmTimeout = 30 * time.Second

// maxAnswer bounds what is read of an answer line.
const maxAnswer = 64

var _ Confirmer = TTY{}

// Check opens the terminal once, so that a missing terminal is reported
// when the agent starts rather than at the first signature.
func (t TTY) Check() error {
	f, err := os.OpenFile(t.path(), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	return f.Close()
}

func (t TTY) path() string {
	if t.Path == "" {
		return "/dev/tty"
	}
	return t.Path
}

// Confirm writes prompt to the terminal and reads one line.
func (t TTY) Confirm(ctx context.Context, prompt string) (bool, error) {
	f, err := os.OpenFile(t.path(), os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultConfirmTimeout
	}
	// Closing the file ends a read that the deadline could not (a
	// terminal that the runtime does not poll).
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
		case <-time.After(timeout):
		}
		f.Close()
	}()
	f.SetReadDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprint(f, "\n"+prompt); err != nil {
		return false, fmt.Errorf("write to the terminal: %w", err)
	}
	line, err := bufio.NewReaderSize(f, maxAnswer).ReadSlice('\n')
	if err != nil && len(line) == 0 {
		fmt.Fprintln(f)
		return false, fmt.Errorf("no answer within %s", timeout)
	}
	switch strings.ToLower(strings.TrimSpace(string(line))) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
