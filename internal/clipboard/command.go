package clipboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Command is a Backend that runs a clipboard tool: wl-copy/wl-paste,
// xclip, xsel or pbcopy/pbpaste.
type Command struct {
	name  string
	write []string // argv; the value goes to stdin
	read  []string
	clear []string // nil: clear by writing an empty value
	env   []string // added to the inherited environment (the display)
}

var _ Backend = (*Command)(nil)

// Name returns the tool's name, for messages.
func (c *Command) Name() string { return c.name }

// Detect picks the first usable clipboard tool, in this order:
//
//  1. wl-copy and wl-paste (wl-clipboard), if WAYLAND_DISPLAY is set;
//  2. xclip, if DISPLAY is set;
//  3. xsel, if DISPLAY is set;
//  4. pbcopy and pbpaste (macOS).
//
// getenv and lookPath are os.Getenv and exec.LookPath outside tests. The
// tools are recorded by absolute path, and the display variable that chose
// them is passed on to every run.
func Detect(getenv func(string) string, lookPath func(string) (string, error)) (*Command, error) {
	find := func(names ...string) ([]string, bool) {
		var out []string
		for _, n := range names {
			p, err := lookPath(n)
			if err != nil {
				return nil, false
			}
			out = append(out, p)
		}
		return out, true
	}
	if w := getenv("WAYLAND_DISPLAY"); w != "" {
		if p, ok := find("wl-copy", "wl-paste"); ok {
			return &Command{
				name:  "wl-copy",
				write: []string{p[0]},
				read:  []string{p[1], "--no-newline"},
				clear: []string{p[0], "--clear"},
				env:   []string{"WAYLAND_DISPLAY=" + w},
			}, nil
		}
	}
	if d := getenv("DISPLAY"); d != "" {
		if p, ok := find("xclip"); ok {
			return &Command{
				name:  "xclip",
				write: []string{p[0], "-selection", "clipboard", "-in"},
				read:  []string{p[0], "-selection", "clipboard", "-out"},
				env:   []string{"DISPLAY=" + d},
			}, nil
		}
		if p, ok := find("xsel"); ok {
			return &Command{
				name:  "xsel",
				write: []string{p[0], "--clipboard", "--input"},
				read:  []string{p[0], "--clipboard", "--output"},
				clear: []string{p[0], "--clipboard", "--clear"},
				env:   []string{"DISPLAY=" + d},
			}, nil
		}
	}
	if p, ok := find("pbcopy", "pbpaste"); ok {
		return &Command{name: "pbcopy", write: []string{p[0]}, read: []string{p[1]}}, nil
	}
	hint := "install wl-clipboard (Wayland), xclip or xsel (X11); macOS provides pbcopy"
	switch {
	case getenv("WAYLAND_DISPLAY") != "":
		hint = "install wl-clipboard (it provides wl-copy and wl-paste)"
	case getenv("DISPLAY") != "":
		hint = "install xclip or xsel"
	default:
		hint = "no graphical session found (neither WAYLAND_DISPLAY nor DISPLAY is set); " + hint
	}
	return nil, fmt.Errorf("%w: %s", ErrNoBackend, hint)
}

// DetectSystem is Detect with the process environment and PATH.
func DetectSystem() (*Command, error) { return Detect(os.Getenv, exec.LookPath) }

// command builds an exec.Cmd for argv. Its stderr goes to an unlinked
// temporary file rather than a pipe: the copy tools fork a daemon that
// serves the clipboard and inherits stderr, and Wait on a pipe would wait
// for that daemon to exit.
func (c *Command) command(ctx context.Context, argv []string) (*exec.Cmd, *os.File, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if len(c.env) > 0 {
		cmd.Env = append(os.Environ(), c.env...)
	}
	errf, err := os.CreateTemp("", "safehold-clipboard-*")
	if err != nil {
		return nil, nil, err
	}
	_ = os.Remove(errf.Name())
	cmd.Stderr = errf
	return cmd, errf, nil
}

// runErr adds the tool's first stderr line to a failure.
func runErr(name string, err error, errf *os.File) error {
	if err == nil {
		return nil
	}
	var buf [256]byte
	n, _ := errf.ReadAt(buf[:], 0)
	msg := strings.TrimSpace(strings.SplitN(string(buf[:n]), "\n", 2)[0])
	if msg != "" {
		return fmt.Errorf("%s: %w: %q", name, err, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Write implements Backend.
func (c *Command) Write(ctx context.Context, value []byte) error {
	return c.run(ctx, c.write, value)
}

func (c *Command) run(ctx context.Context, argv []string, stdin []byte) error {
	cmd, errf, err := c.command(ctx, argv)
	if err != nil {
		return err
	}
	defer errf.Close()
	cmd.Stdin = bytes.NewReader(stdin)
	return runErr(c.name, cmd.Run(), errf)
}

// Clear implements Backend.
func (c *Command) Clear(ctx context.Context) error {
	if c.clear == nil {
		return c.run(ctx, c.write, nil)
	}
	return c.run(ctx, c.clear, nil)
}

// Read implements Backend.
func (c *Command) Read(ctx context.Context, max int) ([]byte, error) {
	cmd, errf, err := c.command(ctx, c.read)
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, runErr(c.name, err, errf)
	}
	data, rerr := io.ReadAll(io.LimitReader(out, int64(max)+1))
	if len(data) > max {
		// Stop the tool; what it was writing is not ours.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		wipe(data)
		return nil, ErrTooLarge
	}
	werr := cmd.Wait()
	if rerr != nil || werr != nil {
		wipe(data)
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, runErr(c.name, errors.Join(rerr, werr), errf))
	}
	return data, nil
}
