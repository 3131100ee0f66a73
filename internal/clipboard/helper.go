package clipboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// StartClearer starts cmd — the CLI's hidden clearing command, which calls
// RunClearer — as a detached process in its own session, sends it tok on
// its standard input and returns without waiting for it. cmd.Stdin must be
// nil; cmd.Args must not contain anything secret (nothing needs to be
// there: the token carries the delay).
func StartClearer(cmd *exec.Cmd, tok Token) error {
	if cmd.Stdin != nil {
		return fmt.Errorf("start clipboard clearer: stdin already set")
	}
	msg, err := tok.MarshalBinary()
	if err != nil {
		return err
	}
	detach(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start clipboard clearer: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start clipboard clearer: %w", err)
	}
	_, werr := in.Write(msg)
	cerr := in.Close()
	if werr != nil || cerr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("send token to clipboard clearer: %w", errors.Join(werr, cerr))
	}
	// Not waiting: the helper outlives us and is reaped by init.
	return cmd.Process.Release()
}

// RunClearer is the body of the clearing helper: it reads one token from
// stdin (exactly TokenSize bytes, then end of input), waits for the token's
// delay or ctx, and calls ClearIfUnchanged.
func RunClearer(ctx context.Context, stdin io.Reader, b Backend) (bool, error) {
	buf, err := io.ReadAll(io.LimitReader(stdin, TokenSize+1))
	if err != nil {
		return false, fmt.Errorf("read clipboard token: %w", err)
	}
	tok, err := ParseToken(buf)
	if err != nil {
		return false, err
	}
	t := time.NewTimer(tok.Delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
	}
	return ClearIfUnchanged(ctx, b, tok)
}
