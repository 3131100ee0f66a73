package service

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// StallTimeout is how long an attachment transfer may make no progress
// before the agent gives up on it. Requests run one at a time, so a
// transfer that stalls (a pager left open, a pipe nobody writes) would
// otherwise hold off `safe lock` and the idle lock for as long as it stalls.
const StallTimeout = 20 * time.Second

// ErrStalled reports a transfer that made no progress for StallTimeout.
var ErrStalled = errors.New("the attachment transfer made no progress")

// stallFile wraps a passed file so that each read or write must make
// progress within StallTimeout. Deadlines work on pipes and sockets (the
// CLI passes a pipe it made for anything but a regular file); on regular
// files they are unsupported and not needed, since those never block.
type stallFile struct {
	f     *os.File
	limit time.Duration
}

func (s stallFile) Read(p []byte) (int, error) {
	s.f.SetReadDeadline(time.Now().Add(s.limit))
	n, err := s.f.Read(p)
	return n, s.stalled(err)
}

func (s stallFile) Write(p []byte) (int, error) {
	s.f.SetWriteDeadline(time.Now().Add(s.limit))
	n, err := s.f.Write(p)
	return n, s.stalled(err)
}

func (s stallFile) stalled(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w for %s; it was cancelled so that the vault can lock", ErrStalled, s.limit)
	}
	return err
}
