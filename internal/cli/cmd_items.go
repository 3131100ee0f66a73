package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// maxStdin bounds JSON read from standard input (bulk adds included).
const maxStdin = 60 << 20

func (a *app) readStdin() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(a.env.Stdin, maxStdin+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > maxStdin {
		return nil, failf(ExitInvalid, "split the input into several runs", "standard input is larger than %d bytes", maxStdin)
	}
	return b, nil
}

// itemFlags are the field flags of add and edit.
type itemFlags struct {
	title, username, notes, folder, totpURI string
	urls, tags, fields                      []string
	favorite                                bool
	passwordStdin, totpStdin                bool
	gen                                     genFlags
	generate                                bool
}

func (f *itemFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.title, "title", "", "title")
	fl.StringVar(&f.username, "username", "", "user name")
	fl.StringArrayVar(&f.urls, "url", nil, "URL (repeat for several)")
	fl.StringVar(&f.notes, "notes", "", "notes (visible to other local users in the process list: use --editor or --json for private notes)")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag (repeat for several)")
	fl.StringVar(&f.folder, "folder", "", "folder, like Work/Servers")
	fl.BoolVar(&f.favorite, "favorite", false, "mark as a favourite")
	fl.StringArrayVar(&f.fields, "field", nil, "custom text field `NAME=VALUE` (not for secrets: use --json or --editor)")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the item's password from standard input")
	fl.BoolVar(&f.totpStdin, "totp-stdin", false, "read a TOTP seed or otpauth:// URI from standard input")
	fl.BoolVar(&f.generate, "generate", false, "generate the password (see the generator flags)")
	f.gen.register(c)
}

// apply writes the flags that were given into it.
func (f *itemFlags) apply(a *app, c *cobra.Command, it *item.Item) error {
	set := func(name string) bool { return c.Flags().Changed(name) }
	if set("title") {
		it.Title = f.title
	}
	if set("username") {
		it.Username = f.username
	}
	if set("url") {
		it.URLs = f.urls
	}
	if set("notes") {
		it.Notes = f.notes
	}
	if set("tag") {
		it.Tags = f.tags
	}
	if set("folder") {
		it.Folder = f.folder
	}
	if set("favorite") {
		it.Favorite = f.favorite
	}
	for _, kv := range f.fields {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return usageError{fmt.Errorf("--field %q is not NAME=VALUE", kv)}
		}
		it.Set(strings.TrimSpace(name), value)
	}
	if f.passwordStdin && f.totpStdin {
		return usageError{fmt.Errorf("--password-stdin and --totp-stdin both want standard input; use --json for both")}
	}
	if f.generate && f.passwordStdin {
		return usageError{fmt.Errorf("--generate and --password-stdin both set the password; choose one")}
	}
	if f.passwordStdin || f.totpStdin {
		b, err := a.readStdin()
		if err != nil {
			return err
		}
		v := strings.TrimRight(string(b), "\r\n")
		if f.passwordStdin {
			it.Password = v
		} else {
			it.TOTP = strings.TrimSpace(v)
		}
	}
	if f.generate && it.Type != item.SSHKey && it.Type != item.VPN { // those generate key pairs
		pw, bits, err := f.gen.generate()
		if err != nil {
			return err
		}
		it.Password = string(pw)
		pw.Wipe()
		if !a.jsonOut {
			fmt.Fprint(a.env.Stderr, "generated password, "+formatEntropy(bits))
		}
	}
	return nil
}

func (a *app) addCommand() *cobra.Command {
	var f itemFlags
	var useEditor bool
	var ssh sshFlags
	var vpn vpnFlags
	c := &cobra.Command{
		Use:   "add [TYPE]",
		Short: "Add an item (login, note, card, identity, ssh, totp, vpn)",
		Long: `Add an item. TYPE is login (the default), note, card, identity, ssh, totp or vpn.

Fields come from flags, from $EDITOR (--editor) on a readable form, or, with
--json, from standard input as one item or an array of items (added in one
transaction). Secrets never belong on the command line: use --generate,
--password-stdin, --editor or --json.`,
		Example: `  safe add login --title GitHub --username alice --url https://github.com --generate
  echo '{"type":"note","title":"Wi-Fi","notes":"pass: ..."}' | safe add --json
  safe add ssh --title "deploy key" --generate
  safe add vpn --title office --generate --address 10.0.0.2/32 --peer-key KEY --endpoint vpn.example.com:51820 --allowed-ips 0.0.0.0/0`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var items []item.Item
			if a.jsonOut && len(args) == 0 && !c.Flags().Changed("title") {
				b, err := a.readStdin()
				if err != nil {
					return err
				}
				if items, err = item.DecodeInput(b); err != nil {
					return err
				}
			} else {
				typ := item.Login
				if len(args) == 1 {
					t, err := item.ParseType(args[0])
					if err != nil {
						return usageError{err}
					}
					typ = t
				}
				it := item.Item{Type: typ}
				if err := f.apply(a, c, &it); err != nil {
					return err
				}
				if err := ssh.apply(a, c, &it); err != nil {
					return err
				}
				if err := vpn.apply(c, &it); err != nil {
					return err
				}
				if useEditor {
					edited, err := a.editForm(it)
					if err != nil {
						return err
					}
					it = edited
				} else if it.Type == item.Login && it.Password == "" && !f.generate && a.stdinIsTerminal() {
					pw, err := a.promptSecret("Password (leave empty to generate one): ", "--generate or --password-stdin")
					if err != nil {
						return err
					}
					if len(pw) == 0 {
						g, bits, err := f.gen.generate()
						if err != nil {
							return err
						}
						pw = g
						fmt.Fprint(a.env.Stderr, "generated password, "+formatEntropy(bits))
					}
					it.Password = string(pw)
					pw.Wipe()
				}
				if strings.TrimSpace(it.Title) == "" {
					return usageError{fmt.Errorf("an item needs a title: pass --title")}
				}
				items = []item.Item{it}
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			var added []item.Item
			if a.vault != "" {
				added, err = sc.AddTo(a.ctx, a.vault, items)
			} else {
				added, err = sc.Add(a.ctx, items)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]map[string]any, len(added))
				for i, it := range added {
					out[i] = map[string]any{"id": it.ID, "title": it.Title, "type": it.Type, "revision": it.Revision}
				}
				if len(out) == 1 && len(items) == 1 && c.Flags().Changed("title") {
					return a.printJSON(out[0])
				}
				return a.printJSON(out)
			}
			for _, it := range added {
				a.printf("Added %s %q (%s)\n", it.Type, textsafe.Clean(it.Title), it.ID)
			}
			return nil
		},
	}
	f.register(c)
	ssh.register(c)
	vpn.register(c)
	c.Flags().BoolVar(&useEditor, "editor", false, "fill the item in $EDITOR")
	a.vaultFlag(c)
	return c
}

func (a *app) editCommand() *cobra.Command {
	var f itemFlags
	var useEditor bool
	var unset []string
	var addURL, addTag, removeTag []string
	c := &cobra.Command{
		Use:   "edit NAME",
		Short: "Change an item: by flags, in $EDITOR, or with JSON on standard input",
		Long: `Change an item. Without flags (on a terminal) it opens $EDITOR on a readable
form. With --json it reads the whole item as JSON from standard input; its
"revision" must be the one you read, so that a concurrent change is refused
rather than overwritten.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, cur, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			next := cur.Clone()
			base := cur.Revision
			anyFlag := false
			c.Flags().Visit(func(fl *pflagFlag) {
				if fl.Name != "json" && fl.Name != "home" && fl.Name != "editor" {
					anyFlag = true
				}
			})
			switch {
			case a.jsonOut:
				b, err := a.readStdin()
				if err != nil {
					return err
				}
				in, err := item.Decode(b)
				if err != nil {
					return err
				}
				if in.ID != "" && in.ID != cur.ID {
					return failf(ExitInvalid, "edit the item the JSON came from", "the JSON is for item %s, not %s", in.ID, cur.ID)
				}
				if in.Revision == 0 {
					return failf(ExitInvalid, "start from `safe get "+args[0]+" --json --reveal`, which includes it",
						"the JSON has no \"revision\": it must name the revision you edited, so that a change made meanwhile is not overwritten")
				}
				if masked := maskedSecrets(cur, in); len(masked) > 0 {
					return failf(ExitInvalid, "read the item with --reveal before editing its JSON",
						"the JSON holds masked values (%s) where the item has real ones; saving would replace them with %q", strings.Join(masked, ", "), item.Mask)
				}
				base = in.Revision
				next = in
			case useEditor || !anyFlag:
				if !a.stdinIsTerminal() && !useEditor {
					return usageError{fmt.Errorf("nothing to change: give flags, --editor, or --json with the item on standard input")}
				}
				if next, err = a.editForm(cur); err != nil {
					return err
				}
				if before, _ := encodeJSON(cur); func() bool { after, _ := encodeJSON(next); return after == before }() {
					fmt.Fprintln(a.env.Stderr, "Nothing changed.")
					return nil
				}
			default:
				if err := f.apply(a, c, &next); err != nil {
					return err
				}
				next.URLs = append(next.URLs, addURL...)
				next.Tags = append(next.Tags, addTag...)
				for _, t := range removeTag {
					next.Tags = removeFold(next.Tags, t)
				}
				for _, name := range unset {
					if err := unsetField(&next, name); err != nil {
						return err
					}
				}
			}
			stored, err := sc.Update(a.ctx, cur.ID, base, next)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": stored.ID, "title": stored.Title, "revision": stored.Revision})
			}
			a.printf("Updated %q (revision %d)\n", textsafe.Clean(stored.Title), stored.Revision)
			return nil
		},
	}
	f.register(c)
	c.Flags().BoolVar(&useEditor, "editor", false, "edit the item in $EDITOR")
	c.Flags().StringArrayVar(&unset, "unset", nil, "clear a field or remove a custom field (repeatable)")
	c.Flags().StringArrayVar(&addURL, "add-url", nil, "add a URL (repeatable)")
	c.Flags().StringArrayVar(&addTag, "add-tag", nil, "add a tag (repeatable)")
	c.Flags().StringArrayVar(&removeTag, "remove-tag", nil, "remove a tag (repeatable)")
	a.vaultFlag(c)
	return c
}

func removeFold(list []string, v string) []string {
	var out []string
	for _, s := range list {
		if !strings.EqualFold(s, v) {
			out = append(out, s)
		}
	}
	return out
}

func unsetField(it *item.Item, name string) error {
	for i, f := range it.Fields {
		if strings.EqualFold(f.Name, name) {
			it.Fields = append(it.Fields[:i], it.Fields[i+1:]...)
			return nil
		}
	}
	if _, _, err := it.Get(name); err != nil {
		return err
	}
	it.Set(name, "")
	if strings.EqualFold(name, "url") || strings.EqualFold(name, "urls") {
		it.URLs = nil
	}
	if strings.EqualFold(name, "tags") {
		it.Tags = nil
	}
	return nil
}

func (a *app) getCommand(name string) *cobra.Command {
	var field string
	var reveal bool
	c := &cobra.Command{
		Use:   name + " NAME",
		Short: "Show an item (secrets masked unless --reveal)",
		Long: `Show an item found by id, id prefix or title. Secret values (passwords, TOTP
seeds, card numbers, hidden fields...) are masked unless --reveal is given.
With --field, print one field's bare value.`,
		Example: `  safe get GitHub
  safe get GitHub --field password --reveal
  safe get GitHub --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if field != "" {
				v, isSecret, err := it.Get(field)
				if err != nil {
					return withHint(ExitNotFound, "`safe get "+args[0]+"` lists the item's fields", err)
				}
				if isSecret && !reveal && v != "" {
					v = item.Mask
					fmt.Fprintln(a.env.Stderr, "(masked: add --reveal to print the value)")
				}
				if a.jsonOut {
					return a.printJSON(map[string]any{"id": it.ID, "field": field, "value": v})
				}
				return a.writeValue([]byte(v + "\n"))
			}
			if !reveal {
				it = it.Masked()
			}
			if a.jsonOut {
				return a.printJSON(it)
			}
			a.printItem(it)
			return nil
		},
	}
	c.Flags().StringVar(&field, "field", "", "print only this field (password, username, url, notes, totp, card.number, a custom field's name...)")
	c.Flags().BoolVar(&reveal, "reveal", false, "show secret values")
	a.vaultFlag(c)
	return c
}

// printItem shows an item as aligned "Name: value" lines.
func (a *app) printItem(it item.Item) {
	bw := bufio.NewWriterSize(a.env.Stdout, 64<<10)
	defer bw.Flush()
	w := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		lines := strings.Split(textsafe.CleanLines(v), "\n")
		fmt.Fprintf(w, "%s:\t%s\n", k, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "\t%s\n", l)
		}
	}
	line("Title", it.Title)
	line("Type", string(it.Type))
	for _, v := range it.Values() {
		if v.Name == "title" {
			continue
		}
		line(displayName(v.Name), v.Value)
	}
	if len(it.VPN) > 0 {
		line("VPN profile", "(use `safe vpn export "+it.ID+"`)")
	}
	for _, at := range it.Attachments {
		line("Attachment", fmt.Sprintf("%s (%s)", at.Name, humanSize(at.Size)))
	}
	for _, cf := range it.Conflicts {
		line("Conflict", fmt.Sprintf("%s also had %q (%s)", cf.Field, cf.Value, cf.Seen.Format(time.DateTime)))
	}
	if it.Favorite {
		line("Favourite", "yes")
	}
	if it.Trashed != nil {
		line("In trash", it.Trashed.Local().Format(time.DateTime))
	}
	line("ID", fmt.Sprintf("%s  (revision %d, modified %s)", it.ID, it.Revision, it.Modified.Local().Format(time.DateTime)))
	w.Flush()
}

func displayName(n string) string {
	n = strings.ReplaceAll(textsafe.Clean(n), "_", " ")
	if i := strings.IndexByte(n, '.'); i >= 0 && i+1 < len(n) {
		n = n[i+1:]
	}
	if n == "" {
		return n
	}
	switch n {
	case "totp":
		return "TOTP"
	case "url":
		return "URL"
	}
	if strings.HasPrefix(n, "url") {
		return "URL " + n[3:]
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// filterFlags are the list filters of ls and find.
type filterFlags struct {
	typ, tag, folder string
	favorite, trash  bool
}

func (f *filterFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.typ, "type", "", "only items of this type")
	c.Flags().StringVar(&f.tag, "tag", "", "only items with this tag")
	c.Flags().StringVar(&f.folder, "folder", "", "only items in this folder (and its subfolders)")
	c.Flags().BoolVar(&f.favorite, "favorite", false, "only favourites")
	c.Flags().BoolVar(&f.trash, "trash", false, "list the trash instead")
}

func (f *filterFlags) filter(a *app) (vault.Filter, error) {
	out := vault.Filter{Tag: f.tag, Folder: f.folder, Favorite: f.favorite, Trash: f.trash, Vault: a.vault}
	if f.typ != "" {
		t, err := item.ParseType(f.typ)
		if err != nil {
			return out, usageError{err}
		}
		out.Type = t
	}
	return out, nil
}

func (a *app) lsCommand() *cobra.Command {
	var f filterFlags
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List items (filter by type, tag, folder, favourite; --trash for the trash)",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			flt, err := f.filter(a)
			if err != nil {
				return err
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			list, err := sc.List(a.ctx, flt, !a.jsonOut)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			a.printOverviews(list, nil)
			return nil
		},
	}
	f.register(c)
	a.vaultFlag(c)
	return c
}

func (a *app) findCommand() *cobra.Command {
	var f filterFlags
	c := &cobra.Command{
		Use:   "find QUERY",
		Short: "Search titles, usernames, URLs, tags and folders (fuzzy)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			flt, err := f.filter(a)
			if err != nil {
				return err
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			hits, err := sc.Find(a.ctx, strings.Join(args, " "), flt)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(hits); err != nil {
					return err
				}
				if len(hits) == 0 {
					return withHint(ExitNotFound, "try fewer or shorter words", fmt.Errorf("nothing matches %q", strings.Join(args, " ")))
				}
				return nil
			}
			list := make([]vault.Overview, len(hits))
			for i, h := range hits {
				list[i] = h.Overview
			}
			if len(list) == 0 {
				return withHint(ExitNotFound, "try fewer or shorter words", fmt.Errorf("nothing matches %q", strings.Join(args, " ")))
			}
			a.printOverviews(list, nil)
			return nil
		},
	}
	f.register(c)
	a.vaultFlag(c)
	return c
}

func (a *app) printOverviews(list []vault.Overview, _ []int) {
	if len(list) == 0 {
		fmt.Fprintln(a.env.Stderr, "(no items)")
		return
	}
	bw := bufio.NewWriterSize(a.env.Stdout, 64<<10)
	defer bw.Flush()
	w := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tTITLE\tUSERNAME\tFOLDER\tTAGS")
	for _, o := range list {
		star := ""
		if o.Favorite {
			star = " *"
		}
		fmt.Fprintf(w, "%s\t%s\t%s%s\t%s\t%s\t%s\n", o.ID[:8], o.Type, textsafe.Clean(o.Title), star, textsafe.Clean(o.Username), textsafe.Clean(o.Folder), textsafe.Clean(strings.Join(o.Tags, ",")))
	}
	w.Flush()
}

func (a *app) refCommand(use, short, op, verb string) *cobra.Command {
	c := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
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
			it, err := sc.RefOp(a.ctx, op, ref)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "title": it.Title, "revision": it.Revision, "action": verb})
			}
			a.printf("%s %q (%s)\n", strings.ToUpper(verb[:1])+verb[1:], textsafe.Clean(it.Title), it.ID)
			return nil
		},
	}
	a.vaultFlag(c)
	return c
}

func (a *app) rmCommand() *cobra.Command {
	return a.refCommand("rm", "Move an item to the trash (restore with `safe restore`)", service.OpTrash, "moved to the trash")
}

func (a *app) restoreCommand() *cobra.Command {
	return a.refCommand("restore", "Take an item out of the trash", service.OpRestore, "restored")
}

func (a *app) purgeCommand() *cobra.Command {
	var all, yes bool
	c := a.refCommand("purge", "Delete a trashed item for good, with its history and attachments", service.OpPurge, "purged")
	c.Use = "purge [NAME]"
	c.Args = cobra.MaximumNArgs(1)
	single := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if !all {
			if len(args) != 1 {
				return usageError{fmt.Errorf("name an item in the trash, or pass --all to empty the trash")}
			}
			return single(cmd, args)
		}
		if len(args) != 0 {
			return usageError{fmt.Errorf("--all takes no item name")}
		}
		if a.vault != "" {
			return usageError{fmt.Errorf("--all empties the trash of every vault; it takes no --vault")}
		}
		if !yes {
			return usageError{fmt.Errorf("emptying the trash cannot be undone: add --yes to confirm")}
		}
		sc, err := a.unlocked()
		if err != nil {
			return err
		}
		defer sc.C.Close()
		n, err := sc.EmptyTrash(a.ctx)
		if err != nil {
			return err
		}
		if a.jsonOut {
			return a.printJSON(map[string]any{"purged": n})
		}
		a.printf("Purged %d item(s) from the trash.\n", n)
		return nil
	}
	c.Flags().BoolVar(&all, "all", false, "empty the whole trash")
	c.Flags().BoolVar(&yes, "yes", false, "confirm --all")
	return c
}

func (a *app) historyCommand() *cobra.Command {
	var show, restore uint64
	var reveal bool
	c := &cobra.Command{
		Use:   "history NAME",
		Short: "List an item's revisions; show or restore one",
		Example: `  safe history GitHub
  safe history GitHub --show 2 --reveal
  safe history GitHub --restore 2`,
		Args: cobra.ExactArgs(1),
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
			if restore > 0 {
				it, err := sc.RestoreRevision(a.ctx, ref, restore)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(map[string]any{"id": it.ID, "revision": it.Revision, "restored_from": restore})
				}
				a.printf("Restored revision %d of %q as revision %d.\n", restore, textsafe.Clean(it.Title), it.Revision)
				return nil
			}
			revs, err := sc.History(a.ctx, ref)
			if err != nil {
				return err
			}
			if show > 0 {
				for _, r := range revs {
					if r.Revision == show {
						it := r.Item
						if !reveal {
							it = it.Masked()
						}
						if a.jsonOut {
							return a.printJSON(it)
						}
						a.printItem(it)
						return nil
					}
				}
				return failf(ExitNotFound, "`safe history "+args[0]+"` lists the revisions", "no revision %d", show)
			}
			// Compare before masking: a changed password is a change even
			// though both revisions show as ********.
			changed := make([]string, len(revs))
			var prev *item.Item
			for i := range revs {
				changed[i] = changedFields(prev, &revs[i].Item)
				prev = &revs[i].Item
			}
			if !reveal {
				for i := range revs {
					revs[i].Item = revs[i].Item.Masked()
				}
			}
			if a.jsonOut {
				return a.printJSON(revs)
			}
			bw := bufio.NewWriterSize(a.env.Stdout, 64<<10)
			defer bw.Flush()
			w := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REV\tMODIFIED\tCHANGED")
			for i := range revs {
				r := &revs[i]
				cur := ""
				if r.Current {
					cur = " (current)"
				}
				fmt.Fprintf(w, "%d%s\t%s\t%s\n", r.Revision, cur, r.Modified.Local().Format(time.DateTime), changed[i])
			}
			w.Flush()
			return nil
		},
	}
	c.Flags().Uint64Var(&show, "show", 0, "show revision `REV`")
	c.Flags().Uint64Var(&restore, "restore", 0, "make revision `REV` current again (as a new revision)")
	c.Flags().BoolVar(&reveal, "reveal", false, "show secret values")
	a.vaultFlag(c)
	return c
}

// changedFields names the fields that differ between two revisions.
func changedFields(prev, cur *item.Item) string {
	if prev == nil {
		return "created"
	}
	a, b := map[string]string{}, map[string]string{}
	for _, v := range prev.Values() {
		a[v.Name] = v.Value
	}
	for _, v := range cur.Values() {
		b[v.Name] = v.Value
	}
	var names []string
	for k, v := range b {
		if a[k] != v {
			names = append(names, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			names = append(names, k)
		}
	}
	if (prev.Trashed == nil) != (cur.Trashed == nil) {
		if cur.Trashed != nil {
			names = append(names, "moved to trash")
		} else {
			names = append(names, "restored")
		}
	}
	if len(prev.Attachments) != len(cur.Attachments) {
		names = append(names, "attachments")
	}
	if len(names) == 0 {
		return "-"
	}
	sortStrings(names)
	return textsafe.Clean(strings.Join(names, ", "))
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

var _ = json.Marshal
var _ = os.Stdin

func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// maskedSecrets names the secret fields whose new value is the mask while the
// current value is something else: JSON from `safe get --json` without
// --reveal, fed back by mistake.
func maskedSecrets(cur, next item.Item) []string {
	have := map[string]string{}
	for _, v := range cur.Values() {
		have[v.Name] = v.Value
	}
	var out []string
	for _, v := range next.Values() {
		if v.Secret && v.Value == item.Mask && have[v.Name] != item.Mask {
			out = append(out, v.Name)
		}
	}
	if string(next.VPN) == `"`+item.Mask+`"` {
		out = append(out, "vpn")
	}
	return out
}
