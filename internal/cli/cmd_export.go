package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/archive"
	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdbx"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/vault"
)

// exportFormats are the FORMAT words of `safe export`.
var exportFormats = []string{"archive", "kdbx", "bitwarden-json"}

// plaintextWarning is printed whenever a plaintext export is written.
const plaintextWarning = "this file holds every secret in clear text: anyone who can read it has all your passwords. Import it where it is going, then delete it (and empty any trash or backup that caught it)"

type exportFlags struct {
	out, passwordFile string
	plaintext, force  bool
}

func (a *app) exportCommand() *cobra.Command {
	var f exportFlags
	c := &cobra.Command{
		Use:   "export FORMAT --out FILE",
		Short: "Export every item to an encrypted Safehold archive, a KeePass file or Bitwarden JSON",
		Long: `Export every item (not those in the trash), with its attachments and earlier
versions where the format keeps them. FORMAT is one of:
  archive         an encrypted Safehold archive that ` + "`safe import archive`" + ` restores:
                  items, every earlier version and the attachments
  kdbx            a KeePass KDBX 4 file (KeePassXC, KeePass) with attachments and history
  bitwarden-json  Bitwarden's unencrypted JSON: PLAINTEXT, needs --plaintext

archive and kdbx are sealed under a new password for the file: typed twice on
a terminal, or read from --password-file. The file is written 0600 beside its
final name and renamed into place when complete; an existing file is never
replaced without --force.`,
		Example: `  safe export archive --out safehold-backup.sharch
  safe export kdbx --out for-keepassxc.kdbx --password-file kp.txt
  safe export bitwarden-json --out bitwarden.json --plaintext`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return a.runExport(args[0], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.out, "out", "", "write the export to `FILE` (required)")
	fl.StringVar(&f.passwordFile, "password-file", "", "read the new password of the archive or KDBX file from `FILE` (or fd:N) instead of the terminal")
	fl.BoolVar(&f.plaintext, "plaintext", false, "allow a format that writes secrets unencrypted (bitwarden-json)")
	fl.BoolVar(&f.force, "force", false, "replace FILE if it exists")
	a.vaultFlag(c)
	return c
}

func (a *app) runExport(format string, f exportFlags) error {
	if !slices.Contains(exportFormats, format) {
		return usageError{fmt.Errorf("unknown export format %q (known: %s)", format, strings.Join(exportFormats, ", "))}
	}
	if f.out == "" {
		return usageError{fmt.Errorf("pass --out FILE: the file to write")}
	}
	plain := format == "bitwarden-json"
	if plain && !f.plaintext {
		return withHint(ExitUsage, "add --plaintext if you mean it, or export an encrypted archive or kdbx file instead",
			fmt.Errorf("bitwarden-json writes every secret unencrypted; it needs --plaintext"))
	}
	if plain && f.passwordFile != "" {
		return usageError{fmt.Errorf("--password-file is for archive and kdbx: bitwarden-json has no password")}
	}
	if !f.force {
		if _, err := os.Lstat(f.out); err == nil {
			return failf(ExitExists, "choose another --out, or pass --force to replace it", "%s exists", f.out)
		}
	}
	dir := filepath.Dir(f.out)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return failf(ExitUsage, "create the directory first", "directory %s does not exist", dir)
	}
	sc, err := a.unlocked()
	if err != nil {
		return err
	}
	defer sc.C.Close()
	// The file's password before the long read, so that a mistyped
	// confirmation costs nothing.
	var pw secret.Bytes
	if !plain {
		if pw, err = a.newPassword(f.passwordFile, "--password-file"); err != nil {
			return err
		}
		defer pw.Wipe()
	}
	entries, err := a.readAllEntries(sc)
	if err != nil {
		return err
	}
	defer wipeEntries(entries)
	var sum struct {
		Path        string `json:"path"`
		Format      string `json:"format"`
		Items       int    `json:"items"`
		Attachments int    `json:"attachments"`
		Versions    int    `json:"versions"`
		Warning     string `json:"warning,omitempty"`
	}
	sum.Path, sum.Format, sum.Items = f.out, format, len(entries)
	for _, e := range entries {
		sum.Attachments += len(e.Attachments)
		sum.Versions += len(e.History)
	}
	src, err := random.New()
	if err != nil {
		return fmt.Errorf("set up randomness: %w", err)
	}
	err = writeAtomic(f.out, f.force, func(w io.Writer) error {
		switch format {
		case "archive":
			params := kdf.Defaults()
			if a.insecureKDF() {
				params = kdf.TestParams()
			}
			return archive.Write(w, entries, pw, archive.WriteOptions{Params: params, Rand: src, AllowInsecure: a.insecureKDF()})
		case "kdbx":
			return kdbx.Write(w, entries, pw, kdbx.WriteOptions{Rand: src})
		}
		return importer.WriteBitwardenJSON(w, entries)
	})
	if err != nil {
		return err
	}
	if plain {
		if a.jsonOut {
			sum.Warning = plaintextWarning
		} else {
			a.warnf("%s", plaintextWarning)
		}
	}
	if a.jsonOut {
		return a.printJSON(sum)
	}
	a.printf("Exported %d %s (%d %s, %d earlier %s) to %s (%s).\n", sum.Items, plural(sum.Items, "item", "items"),
		sum.Attachments, plural(sum.Attachments, "attachment", "attachments"), sum.Versions, plural(sum.Versions, "version", "versions"),
		f.out, format)
	return nil
}

// readAllEntries reads every item outside the trash (of --vault, or of
// all vaults), with its earlier versions and the content of its
// attachments.
func (a *app) readAllEntries(sc *service.Client) ([]importer.Entry, error) {
	list, err := sc.List(a.ctx, vault.Filter{Vault: a.vault}, true)
	if err != nil {
		return nil, err
	}
	bar := a.ttyProgress("reading")
	defer bar.finish()
	entries := make([]importer.Entry, 0, len(list))
	for i, o := range list {
		it, err := sc.Get(a.ctx, o.ID)
		if err != nil {
			return nil, err
		}
		e := importer.Entry{Where: fmt.Sprintf("item %q (%s)", it.Title, it.ID)}
		if it.Revision > 1 {
			revs, err := sc.History(a.ctx, it.ID)
			if err != nil {
				return nil, err
			}
			for _, r := range revs {
				if !r.Current {
					e.History = append(e.History, stripped(r.Item))
				}
			}
		}
		for _, at := range it.Attachments {
			data, err := a.readAttachmentBytes(sc, it.ID, at)
			if err != nil {
				return nil, fmt.Errorf("read attachment %q of %q: %w", at.Name, it.Title, err)
			}
			e.Attachments = append(e.Attachments, importer.File{Name: at.Name, Data: data})
		}
		e.Item = stripped(it)
		entries = append(entries, e)
		bar.update(int64(i+1), int64(len(list)))
	}
	return entries, nil
}

// stripped is an item as exports see it: no attachment metadata (which
// holds the vault's keys for the attachment's chunks).
func stripped(it item.Item) item.Item {
	it = it.Clone()
	it.Attachments = nil
	return it
}

// readAttachmentBytes reads an attachment's content through a pipe.
func (a *app) readAttachmentBytes(sc *service.Client, id string, at item.Attachment) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("make a pipe for the attachment: %w", err)
	}
	defer r.Close()
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		if at.Size > 0 && at.Size < 1<<30 {
			buf.Grow(int(at.Size))
		}
		_, err := io.Copy(&buf, r)
		got <- result{buf.Bytes(), err}
	}()
	_, err = sc.ReadAttachment(a.ctx, id, at.ID, w)
	w.Close() // our copy: the reader sees the end once the agent closed its own
	res := <-got
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, res.err
	}
	if int64(len(res.data)) != at.Size {
		return nil, fmt.Errorf("read %d bytes, the attachment has %d", len(res.data), at.Size)
	}
	return res.data, nil
}

func wipeEntries(entries []importer.Entry) {
	for _, e := range entries {
		for _, f := range e.Attachments {
			secret.Wipe(f.Data)
		}
	}
}

// writeAtomic writes a new 0600 file beside path and moves it into place
// only when write succeeded and the data is on disk. Without force an
// existing path is never replaced, even one created meanwhile (the move is
// a hard link, which refuses an existing name).
func writeAtomic(path string, force bool, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".safe-export-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if force {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
		return syncDir(path)
	}
	err = os.Link(tmp.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return failf(ExitExists, "choose another --out, or pass --force to replace it", "%s exists", path)
	}
	if err != nil {
		// A file system without hard links: check, then rename.
		if _, serr := os.Lstat(path); serr == nil {
			return failf(ExitExists, "choose another --out, or pass --force to replace it", "%s exists", path)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
		return syncDir(path)
	}
	// Drop the temporary name before the directory is flushed, so that a
	// crash cannot leave a second copy of the export behind.
	if err := os.Remove(tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save %s: remove the temporary file: %w", path, err)
	}
	return syncDir(path)
}

// syncDir flushes the directory holding path, so that the new name of a
// file moved into place survives a crash. File systems that cannot sync a
// directory (EINVAL, unsupported) are not an error.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("save %s: flush its directory: %w", path, err)
	}
	return nil
}
