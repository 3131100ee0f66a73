package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/archive"
	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdbx"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// importFormats are the FORMAT words of `safe import`, in help order.
var importFormats = []string{"kdbx", "bitwarden-json", "bitwarden-csv", "1pux", "chrome-csv", "firefox-csv", "pass", "archive"}

// importBatch is how many items one add op carries: large enough that a
// 10,000-entry import is twenty round trips, small enough that one op's
// JSON stays a few megabytes.
const importBatch = 500

// maxKeePassKeyFile bounds a KeePass key file (any file may serve as one; it is
// hashed).
const maxKeePassKeyFile = 16 << 20

// importFlags are the flags of `safe import`.
type importFlags struct {
	passwordFile, keyFile, folder string
	dryRun                        bool
}

// importSummary is the result of an import, as --json prints it.
type importSummary struct {
	Imported    int                `json:"imported"`
	Skipped     []importer.Skipped `json:"skipped"`
	Attachments int                `json:"attachments"`
	Versions    int                `json:"versions"`
	DryRun      bool               `json:"dry_run"`
}

func (a *app) importCommand() *cobra.Command {
	var f importFlags
	c := &cobra.Command{
		Use:   "import FORMAT FILE-OR-DIR",
		Short: "Import items from another password manager's export or a Safehold archive",
		Long: `Import items from a file (or, for pass, a store directory). FORMAT is one of:
  kdbx            KeePass / KeePassXC database (KDBX 3.1 or 4); --password-file, --key-file
  bitwarden-json  Bitwarden unencrypted JSON export
  bitwarden-csv   Bitwarden CSV export
  1pux            1Password export (.1pux)
  chrome-csv      Chrome / Chromium passwords CSV
  firefox-csv     Firefox logins CSV
  pass            a pass / gopass store directory, decrypted with your gpg
  archive         a Safehold archive written by ` + "`safe export archive`" + `; --password-file

The whole file is read and checked before anything is written: a malformed
file imports nothing and the error names the line or entry. Entries that
cannot be imported are listed with the reason, and an entry identical to an
item already in the safe (same type, title, username, password, URLs, notes
and other fields) is skipped as "already in the vault", so running the same
import twice adds nothing the second time. Earlier versions (KeePass history,
archives) become the item's history; attachments are added after the item.`,
		Example: `  safe import kdbx Passwords.kdbx --password-file kp.txt
  safe import bitwarden-json bitwarden_export.json --folder Bitwarden
  safe import archive backup.sharch --password-file archive-pw.txt
  safe import chrome-csv "Chrome Passwords.csv" --dry-run`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return a.runImport(args[0], args[1], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.passwordFile, "password-file", "", "read the KDBX or archive password from `FILE` (or fd:N) instead of the terminal")
	fl.StringVar(&f.keyFile, "key-file", "", "KeePass key `FILE` (kdbx only)")
	fl.StringVar(&f.folder, "folder", "", "put every imported item under this folder `PREFIX` (like Imported/KeePass)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "read and check the file and print what would be imported, without touching the vault")
	a.vaultFlag(c)
	return c
}

func (a *app) runImport(format, path string, f importFlags) error {
	if !slices.Contains(importFormats, format) {
		return usageError{fmt.Errorf("unknown import format %q (known: %s)", format, strings.Join(importFormats, ", "))}
	}
	if f.keyFile != "" && format != "kdbx" {
		return usageError{fmt.Errorf("--key-file is for kdbx only")}
	}
	if f.passwordFile != "" && format != "kdbx" && format != "archive" {
		return usageError{fmt.Errorf("--password-file is for kdbx and archive only")}
	}
	prefix := strings.Trim(strings.TrimSpace(f.folder), "/")
	// Check the vault first, so that nobody types a KeePass password and
	// waits for a large file to parse only to learn the vault is locked.
	var sc *service.Client
	if !f.dryRun {
		var err error
		if sc, err = a.unlocked(); err != nil {
			return err
		}
		defer sc.C.Close()
	}
	res, err := a.parseImport(format, path, f)
	if err != nil {
		return err
	}
	sum := importSummary{Skipped: append([]importer.Skipped{}, res.Skipped...), DryRun: f.dryRun}
	entries := prepareEntries(res.Entries, prefix, &sum.Skipped)
	if sc != nil {
		if entries, err = a.dropDuplicates(sc, entries, &sum.Skipped); err != nil {
			return err
		}
	}
	if f.dryRun {
		for _, e := range entries {
			sum.Imported++
			sum.Attachments += len(e.Attachments)
			sum.Versions += len(e.History)
		}
	} else if err := a.writeImport(sc, entries, &sum); err != nil {
		return err
	}
	return a.printImportSummary(format, path, sum)
}

// parseImport reads the whole source with the format's parser.
func (a *app) parseImport(format, path string, f importFlags) (*importer.Result, error) {
	if format == "pass" {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, withHint(ExitUsage, "give the store directory (often ~/.password-store)", err)
		}
		if !fi.IsDir() {
			return nil, failf(ExitUsage, "give the store directory (often ~/.password-store)", "%s is not a directory", path)
		}
		res, err := importer.Pass(a.ctx, path, importer.ExecGPG{})
		return res, importError(format, path, err)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, withHint(ExitUsage, "check the file path", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, failf(ExitUsage, "give the export file, not a directory (a directory is for the pass format)", "%s is a directory", path)
	}
	var res *importer.Result
	switch format {
	case "bitwarden-json":
		res, err = importer.BitwardenJSON(file)
	case "bitwarden-csv":
		res, err = importer.BitwardenCSV(file)
	case "chrome-csv":
		res, err = importer.ChromeCSV(file)
	case "firefox-csv":
		res, err = importer.FirefoxCSV(file)
	case "1pux":
		res, err = importer.OnePUX(file, fi.Size())
	case "kdbx":
		var pw, key secret.Bytes
		if key, err = readKeyFile(f.keyFile); err != nil {
			return nil, err
		}
		defer key.Wipe()
		if f.passwordFile != "" || key == nil || a.stdinIsTerminal() {
			prompt := "KeePass password: "
			if key != nil {
				prompt = "KeePass password (empty if the key file alone opens it): "
			}
			if pw, err = a.password(f.passwordFile, prompt); err != nil {
				return nil, err
			}
			defer pw.Wipe()
		}
		res, err = kdbx.Read(file, pw, key)
	case "archive":
		var pw secret.Bytes
		if pw, err = a.password(f.passwordFile, "Archive password: "); err != nil {
			return nil, err
		}
		defer pw.Wipe()
		res, err = archive.Read(file, pw, archive.ReadOptions{AllowInsecure: a.insecureKDF()})
	}
	if err != nil {
		return nil, importError(format, path, err)
	}
	if res == nil {
		res = &importer.Result{}
	}
	return res, nil
}

// importError gives a parser's error its exit code and hint. Nothing has
// been written when it is returned.
func importError(format, path string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("import %s: %w", path, err)
	nothing := "nothing was imported"
	switch {
	case errors.Is(err, archive.ErrWrongPassword):
		return withHint(ExitWrongPassword, "check the archive password (the one typed at `safe export archive`); "+nothing, err)
	case errors.Is(err, archive.ErrTampered):
		return withHint(ExitTampered, "the archive was changed or cut short after it was written; use another copy; "+nothing, err)
	case errors.Is(err, archive.ErrNotArchive), errors.Is(err, archive.ErrVersion):
		return withHint(ExitInvalid, "give a file written by `safe export archive`; "+nothing, err)
	case errors.Is(err, kdbx.ErrWrongPassword):
		return withHint(ExitWrongPassword, "check the KeePass password (--password-file) and --key-file; "+nothing, err)
	case errors.Is(err, kdbx.ErrCorrupt):
		return withHint(ExitInvalid, "the KeePass file is damaged; open it in KeePassXC to check it; "+nothing, err)
	case errors.Is(err, kdbx.ErrUnsupported):
		return withHint(ExitInvalid, "save the database again with KeePassXC (KDBX 4) and import that; "+nothing, err)
	case errors.Is(err, archive.ErrTooLarge), errors.Is(err, importer.ErrTooLarge), errors.Is(err, kdbx.ErrTooLarge):
		return withHint(ExitInvalid, "split the export into smaller files; "+nothing, err)
	case errors.Is(err, importer.ErrFormat):
		return withHint(ExitInvalid, fmt.Sprintf("check that the file is a %s export and fix the place named; %s", format, nothing), err)
	}
	var he *hintError
	if errors.As(err, &he) {
		return err
	}
	code, _ := classify(err)
	return withHint(code, nothing, err)
}

// readKeyFile reads a KeePass key file (nil when none is given).
func readKeyFile(path string) (secret.Bytes, error) {
	if path == "" {
		return nil, nil
	}
	kf, err := os.Open(path)
	if err != nil {
		return nil, withHint(ExitUsage, "check the path given to --key-file", fmt.Errorf("read key file: %w", err))
	}
	defer kf.Close()
	b, err := io.ReadAll(io.LimitReader(kf, maxKeePassKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(b) > maxKeePassKeyFile {
		secret.Wipe(b)
		return nil, failf(ExitInvalid, "", "key file %s is larger than %d bytes", path, maxKeePassKeyFile)
	}
	return secret.Bytes(b), nil
}

// prepareEntries readies parsed entries for the vault: the folder prefix,
// the vault's normal form, and its rules. An entry that breaks a rule is
// skipped with the reason; an earlier version that does is left out of the
// history, also with the reason. Attachment names become plain file names,
// unique within the item.
func prepareEntries(in []importer.Entry, prefix string, skipped *[]importer.Skipped) []importer.Entry {
	out := make([]importer.Entry, 0, len(in))
	for _, e := range in {
		where := e.Where
		if where == "" {
			where = fmt.Sprintf("entry %q", e.Item.Title)
		}
		it, err := prepareItem(e.Item, prefix)
		if err != nil {
			*skipped = append(*skipped, importer.Skipped{Where: where, Reason: reasonOf(err)})
			continue
		}
		var hist []item.Item
		for i, h := range e.History {
			old, err := prepareItem(h, prefix)
			if err != nil {
				*skipped = append(*skipped, importer.Skipped{Where: fmt.Sprintf("%s, earlier version %d", where, i+1), Reason: "version left out of the history: " + reasonOf(err)})
				continue
			}
			hist = append(hist, old)
		}
		if len(e.Attachments) > item.MaxAttachment {
			*skipped = append(*skipped, importer.Skipped{Where: where, Reason: fmt.Sprintf("%d attachments, more than the %d an item may have", len(e.Attachments), item.MaxAttachment)})
			continue
		}
		var files []importer.File
		var names []string
		for _, a := range e.Attachments {
			name := attachmentName(a.Name, names)
			names = append(names, name)
			files = append(files, importer.File{Name: name, Data: a.Data})
		}
		out = append(out, importer.Entry{Item: it, History: hist, Attachments: files, Where: where})
	}
	return out
}

func prepareItem(it item.Item, prefix string) (item.Item, error) {
	it = it.Clone()
	it.ID, it.Revision, it.Attachments, it.Trashed = "", 0, nil, nil
	if prefix != "" {
		it.Folder = strings.Trim(prefix+"/"+strings.Trim(strings.TrimSpace(it.Folder), "/"), "/")
	}
	it.Finish()
	if strings.TrimSpace(it.Title) == "" {
		it.Title = "(untitled)"
	}
	return it, it.Validate()
}

// reasonOf is an item error without the generic "invalid item: " prefix.
func reasonOf(err error) string {
	return strings.TrimPrefix(err.Error(), item.ErrInvalid.Error()+": ")
}

// attachmentName makes name a plain file name the vault accepts, distinct
// from those already taken.
func attachmentName(name string, taken []string) string {
	name = strings.Map(func(r rune) rune {
		switch r {
		case '/', '\\', 0, '\n', '\r':
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	name = strings.TrimSpace(name)
	if name == "" {
		name = "attachment"
	}
	for len(name) > item.MaxTitle-8 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	base := name
	for n := 2; slices.Contains(taken, name); n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	return name
}

// sameContent says whether two items hold the same things a user typed:
// everything but ids, revisions, dates, attachments, favourites and merge
// conflicts.
func sameContent(x, y item.Item) bool {
	norm := func(it item.Item) string {
		it = it.Clone()
		it.ID, it.Revision, it.Attachments, it.Conflicts, it.Trashed = "", 0, nil, nil, nil
		it.Created, it.Modified, it.PasswordChanged = time.Time{}, time.Time{}, time.Time{}
		it.Favorite = false
		it.Finish()
		b, _ := json.Marshal(it)
		return string(b)
	}
	return norm(x) == norm(y)
}

// dropDuplicates skips entries identical to an item already in the target
// vault (all vaults without --vault). Only items with the same title are
// read in full.
func (a *app) dropDuplicates(sc *service.Client, entries []importer.Entry, skipped *[]importer.Skipped) ([]importer.Entry, error) {
	list, err := sc.List(a.ctx, vault.Filter{Vault: a.vault}, true)
	if err != nil {
		return nil, err
	}
	byTitle := map[string][]string{}
	for _, o := range list {
		byTitle[o.Title] = append(byTitle[o.Title], o.ID)
	}
	full := map[string]item.Item{}
	out := entries[:0]
	for _, e := range entries {
		dup := false
		for _, id := range byTitle[e.Item.Title] {
			it, ok := full[id]
			if !ok {
				if it, err = sc.Get(a.ctx, id); err != nil {
					return nil, err
				}
				full[id] = it
			}
			if sameContent(it, e.Item) {
				dup = true
				break
			}
		}
		if dup {
			*skipped = append(*skipped, importer.Skipped{Where: e.Where, Reason: "already in the vault"})
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// writeImport adds the entries in batches: each entry's oldest version
// first, then one update per newer version (so the vault's history holds
// them in order), then its attachments. An error stops the import; the
// message says how much is in the vault.
func (a *app) writeImport(sc *service.Client, entries []importer.Entry, sum *importSummary) error {
	bar := a.ttyProgress("importing")
	defer bar.finish()
	total := int64(len(entries))
	stopped := func(err error) error {
		code, _ := classify(err)
		return withHint(code,
			fmt.Sprintf("%d of %d items (%d attachments) were imported before the error and stay in the vault; fix the cause and run the same import again: the items already there are skipped as duplicates", sum.Imported, len(entries), sum.Attachments),
			fmt.Errorf("import stopped after %d of %d items: %w", sum.Imported, len(entries), err))
	}
	for start := 0; start < len(entries); start += importBatch {
		batch := entries[start:min(start+importBatch, len(entries))]
		first := make([]item.Item, len(batch))
		for i, e := range batch {
			first[i] = e.Item
			if len(e.History) > 0 {
				first[i] = e.History[0]
			}
		}
		var added []item.Item
		var err error
		// The source's dates are kept, so that `safe audit` sees how old
		// an imported password is.
		added, err = sc.Import(a.ctx, a.vault, first)
		if err == nil && len(added) != len(batch) {
			err = fmt.Errorf("the agent stored %d of %d items", len(added), len(batch))
		}
		if err != nil {
			return stopped(err)
		}
		for i, e := range batch {
			cur := added[i]
			if len(e.History) > 0 {
				for _, next := range append(e.History[1:len(e.History):len(e.History)], e.Item) {
					if sameContent(cur, next) {
						continue // a version that changed nothing Safehold keeps
					}
					if cur, err = sc.Update(a.ctx, cur.ID, cur.Revision, next); err != nil {
						sum.Imported++ // the item is in the vault, with part of its history
						return stopped(fmt.Errorf("%s: %w", e.Where, err))
					}
					sum.Versions++
				}
			}
			sum.Imported++
			for _, f := range e.Attachments {
				if err := a.attachBytes(sc, cur.ID, f); err != nil {
					return stopped(fmt.Errorf("%s: attachment %q: %w", e.Where, f.Name, err))
				}
				sum.Attachments++
			}
			bar.update(int64(sum.Imported), total)
		}
	}
	return nil
}

// attachBytes sends data to the agent as a new attachment through a pipe
// (the attach op takes a file descriptor; the bytes never touch the disk).
func (a *app) attachBytes(sc *service.Client, id string, f importer.File) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("make a pipe for the attachment: %w", err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(f.Data)
		w.Close()
		wrote <- err
	}()
	_, err = sc.Attach(a.ctx, id, f.Name, r)
	r.Close() // the agent has its own copy; closing ours ends a stuck write
	werr := <-wrote
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("send the attachment: %w", werr)
	}
	return nil
}

func (a *app) printImportSummary(format, path string, sum importSummary) error {
	if a.jsonOut {
		return a.printJSON(sum)
	}
	verb := "Imported"
	if sum.DryRun {
		verb = "Would import"
	}
	a.printf("%s %d %s (%d %s, %d earlier %s) from %s %s.\n", verb, sum.Imported, plural(sum.Imported, "item", "items"),
		sum.Attachments, plural(sum.Attachments, "attachment", "attachments"), sum.Versions, plural(sum.Versions, "version", "versions"),
		format, textsafe.Clean(path))
	if len(sum.Skipped) > 0 {
		a.printf("Skipped %d:\n", len(sum.Skipped))
		for _, s := range sum.Skipped {
			a.printf("  %s: %s\n", textsafe.Clean(s.Where), textsafe.Clean(s.Reason))
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ttyProgress is a progress bar drawn only when standard error is a
// terminal (and not with --json); otherwise its methods do nothing.
func (a *app) ttyProgress(what string) *ttyBar {
	p := a.progressBar(what)
	if !p.tty || a.jsonOut {
		return &ttyBar{}
	}
	return &ttyBar{p: p}
}

type ttyBar struct{ p *progressBar }

func (b *ttyBar) update(done, total int64) {
	if b.p != nil {
		b.p.update(done, total)
	}
}

func (b *ttyBar) finish() {
	if b.p != nil {
		b.p.finish()
	}
}
