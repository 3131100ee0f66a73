package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/safehold/safehold/internal/textsafe"
)

func (a *app) attachCommand() *cobra.Command {
	c := &cobra.Command{Use: "attach", Short: "Add, fetch or remove files attached to an item"}
	var name string
	add := &cobra.Command{
		Use:   "add NAME FILE",
		Short: "Attach a file (streamed and encrypted in 64 KiB chunks; any size)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := os.Open(args[1])
			if err != nil {
				return withHint(ExitUsage, "check the file path", fmt.Errorf("open %s: %w", args[1], err))
			}
			defer f.Close()
			if name == "" {
				name = filepath.Base(args[1])
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			ref, err := a.itemRef(sc, args[0])
			if err != nil {
				return err
			}
			src, done, err := pipeIfNotRegular(f, true)
			if err != nil {
				return err
			}
			it, err := sc.Attach(a.ctx, ref, name, src)
			if cerr := done(); cerr != nil {
				return fmt.Errorf("read %s: %w", args[1], cerr)
			}
			if err != nil {
				return err
			}
			at := it.Attachments[len(it.Attachments)-1]
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "attachment": at.Name, "size": at.Size, "revision": it.Revision})
			}
			a.printf("Attached %q (%s) to %q.\n", textsafe.Clean(at.Name), humanSize(at.Size), textsafe.Clean(it.Title))
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "name to store the file under (default: its base name)")
	var out string
	get := &cobra.Command{
		Use:   "get NAME ATTACHMENT",
		Short: "Write an attachment to --out FILE (created 0600) or standard output",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			ref, err := a.itemRef(sc, args[0])
			if err != nil {
				return err
			}
			dst := osFile(a.env.Stdout, os.Stdout)
			if out == "" && term.IsTerminal(int(dst.Fd())) {
				// A file's bytes are not cleaned on their way (an
				// attachment is any file, of any size): one that another
				// member attached must not act on the terminal.
				return failf(ExitUsage, "pass --out FILE, or pipe the output (`| less`)",
					"an attachment is not written to a terminal")
			}
			tmp := ""
			if out != "" {
				// Write beside the target and rename, so a failed read
				// never leaves a half-written file under the real name.
				f, err := os.CreateTemp(filepath.Dir(out), ".safe-attachment-*")
				if err != nil {
					return fmt.Errorf("create %s: %w", out, err)
				}
				defer f.Close()
				tmp, dst = f.Name(), f
				defer os.Remove(tmp)
			}
			sink, done, err := pipeIfNotRegular(dst, false)
			if err != nil {
				return err
			}
			n, err := sc.ReadAttachment(a.ctx, ref, args[1], sink)
			if cerr := done(); err == nil && cerr != nil {
				err = fmt.Errorf("write the attachment: %w", cerr)
			}
			if err != nil {
				return err
			}
			if tmp != "" {
				if err := dst.Sync(); err != nil {
					return err
				}
				if err := os.Rename(tmp, out); err != nil {
					return fmt.Errorf("save %s: %w", out, err)
				}
				if !a.jsonOut {
					fmt.Fprintf(a.env.Stderr, "Wrote %s (%s).\n", out, humanSize(n))
				}
			}
			if a.jsonOut && out != "" {
				return a.printJSON(map[string]any{"path": out, "size": n})
			}
			return nil
		},
	}
	get.Flags().StringVar(&out, "out", "", "write to `FILE` instead of standard output")
	rm := &cobra.Command{
		Use:   "rm NAME ATTACHMENT",
		Short: "Remove an attachment from the item (earlier revisions keep it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			ref, err := a.itemRef(sc, args[0])
			if err != nil {
				return err
			}
			it, err := sc.Detach(a.ctx, ref, args[1])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "revision": it.Revision})
			}
			a.printf("Removed %q from %q.\n", textsafe.Clean(args[1]), textsafe.Clean(it.Title))
			return nil
		},
	}
	for _, sub := range []*cobra.Command{add, get, rm} {
		a.vaultFlag(sub)
	}
	c.AddCommand(add, get, rm)
	return c
}

// pipeIfNotRegular returns f itself when it is a regular file, and otherwise
// one end of a private pipe that a goroutine copies from f (in) or into f
// (out). The agent then never holds the user's terminal or shared pipe, and
// it can put deadlines on the private one (see service.StallTimeout). done
// closes this process's end and returns the copy's error; for output it
// first waits until everything the agent wrote has reached f. A read error
// on input leaves the pipe open rather than ending it, so the agent sees a
// stalled transfer and stores nothing, never a truncated attachment.
func pipeIfNotRegular(f *os.File, in bool) (*os.File, func() error, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		return nil, nil, failf(ExitUsage, "attach a file, not a directory", "%s is a directory", f.Name())
	}
	if fi.Mode().IsRegular() {
		return f, func() error { return nil }, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("make a pipe for the transfer: %w", err)
	}
	copied := make(chan error, 1)
	if in {
		go func() {
			_, err := io.Copy(w, f)
			if err == nil {
				w.Close() // the end of the data
			}
			copied <- err
		}()
		return r, func() error {
			r.Close()
			select {
			case err := <-copied:
				w.Close()
				return err
			default:
				// Still reading (the agent gave up first): the
				// process exits soon; the goroutine goes with it.
				return nil
			}
		}, nil
	}
	go func() {
		_, err := io.Copy(f, r)
		r.Close()
		copied <- err
	}()
	return w, func() error { w.Close(); return <-copied }, nil
}
