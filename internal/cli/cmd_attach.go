package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
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
			it, err := sc.Attach(a.ctx, args[0], name, f)
			if err != nil {
				return err
			}
			at := it.Attachments[len(it.Attachments)-1]
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "attachment": at.Name, "size": at.Size, "revision": it.Revision})
			}
			a.printf("Attached %q (%s) to %q.\n", sanitize(at.Name), humanSize(at.Size), sanitize(it.Title))
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
			dst := osFile(a.env.Stdout, os.Stdout)
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
			n, err := sc.ReadAttachment(a.ctx, args[0], args[1], dst)
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
			it, err := sc.Detach(a.ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "revision": it.Revision})
			}
			a.printf("Removed %q from %q.\n", sanitize(args[1]), sanitize(it.Title))
			return nil
		},
	}
	c.AddCommand(add, get, rm)
	return c
}
