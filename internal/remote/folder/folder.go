// Package folder is a Remote kept in a plain directory: a NAS share, a
// Dropbox or Syncthing folder, a USB drive. There is no server, so nothing
// is authenticated here and nothing needs to be: the client verifies every
// byte it reads back exactly as it does for `safe serve`. What this package
// adds is atomicity on a shared file system, so that two devices writing at
// once cannot both win.
//
// # Layout (version 1)
//
// All names below DIR are fixed strings or ids; an id is 1..64 characters of
// [0-9a-z]. Files are 0600, directories 0700. A sequence number or epoch N
// is written as exactly 20 decimal digits (%020d). Names that do not match
// (temporary files, a sync tool's conflict copies) are ignored.
//
//	DIR/safehold-remote.json             {"v":1,"account":ID,"email":E}
//	DIR/doc/NNNNNNNNNNNNNNNNNNNN         account document, epoch N (from 1)
//	DIR/vaults/VAULT/record              the vault record
//	DIR/vaults/VAULT/log/NNNNNNNNNNNNNNNNNNNN   log entry seq N (from 1)
//	DIR/vaults/VAULT/blobs/ITEM/BLOB     an attachment's sealed chunks
//
// safehold-remote.json names the one account the folder holds; E is the
// address lower-cased and trimmed. Register links it first (claiming the
// folder), then epoch 1 of the document; repeating an interrupted Register
// finishes it.
//
// A document file is the 80-byte KDF header followed by the document
// bytes. The header lives in each epoch rather than in a file of its own so
// that a password change (new header and new document) is one atomic step:
// a reader never pairs a new document with an old header. Prelogin and
// Account read the highest epoch.
//
// An entry file is
//
//	magic "SHFE" | version 0x01 | u32 len(body) | u32 len(sig) | u32 len(payload) | body | sig | payload
//
// with big-endian lengths, body as in package vlog (at most vlog.MaxEntry
// bytes), sig at most vlog.MaxSig bytes and payload at most
// item.MaxPayload + 1 KiB (empty for a purge, and for a put whose item was
// purged since). The lengths come first so that a purge can find an item's
// entries by reading only each file's head.
//
// A blob file is the frames of the HTTP API (package frames): each frame a
// u32 big-endian length (32..65,568) then that many bytes, at least one and
// at most api.MaxBlobFrames frames.
//
// # Write ordering
//
// New names are created by writing a temporary file (".tmp-" + random, in
// the same directory), fsyncing it, and hard-linking it to its final name:
// link(2) fails if the name exists, so of two writers of the same epoch or
// sequence number exactly one wins and the other gets ErrStale. Replaced
// names (a vault record, a blob, an entry rewritten without its payload)
// are written to a temporary file and renamed over. The directory is fsynced
// before a write is reported done. Old epochs and log entries are never
// deleted, so a name once taken can never be taken again.
//
// A Push links entries base+1, base+2, … in order and fsyncs the log
// directory once at the end. If a later entry's name is taken (another
// writer, based on our own earlier entries, got there first) the earlier
// ones stay and Push reports ErrStale: the caller pulls and recognises them
// as its own. A purge entry, once linked, rewrites the item's earlier
// entries without their payloads and deletes the item's blobs.
//
// The file system must support hard links (ext4, XFS, Btrfs, APFS, NTFS,
// most NAS protocols; not FAT or exFAT).
package folder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/frames"
	"github.com/safehold/safehold/internal/vlog"
)

var _ remote.Remote = (*Folder)(nil)

// ErrInvalidEntry reports a pushed entry that breaks the log's rules (wrong
// vault, sequence number, chain link or payload digest). Nothing of that
// push was written.
var ErrInvalidEntry = fmt.Errorf("%w: log entry refused by the folder", remote.ErrRefused)

const (
	metaName  = "safehold-remote.json"
	docDir    = "doc"
	vaultsDir = "vaults"
	logDir    = "log"
	blobsDir  = "blobs"
	record    = "record"
	tmpPrefix = ".tmp-"

	metaVersion = 1
	maxMeta     = 4 << 10

	entryMagic   = "SHFE"
	entryVersion = 1
	entryHead    = 4 + 1 + 3*4
	// MaxPayload bounds a put entry's payload: an encoded item and the
	// envelope around it.
	MaxPayload = item.MaxPayload + 1<<10
	maxEntry   = entryHead + vlog.MaxEntry + MaxPayload

	seqDigits = 20
)

// Folder is a Remote in a directory. Its methods are safe for concurrent
// use, by goroutines and by processes on other machines sharing the
// directory.
type Folder struct {
	dir string

	beforeLink func() // test hook: runs after Push's checks, before it links
}

// Open returns the folder remote at dir. The directory need not exist yet
// (Register creates it if its parent exists); while it is missing, as when a
// drive is not mounted, every method fails with remote.ErrUnavailable.
func Open(dir string) (*Folder, error) {
	if dir == "" {
		return nil, errors.New("folder remote: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("folder remote %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("folder remote %q is a file, not a directory", abs)
	}
	return &Folder{dir: abs}, nil
}

// Dir returns the folder's absolute path.
func (f *Folder) Dir() string { return f.dir }

// Close does nothing: a folder holds no connections.
func (f *Folder) Close() error { return nil }

type meta struct {
	V       int    `json:"v"`
	Account string `json:"account"`
	Email   string `json:"email"`
}

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validID reports whether s is 1..64 characters of [0-9a-z]: ids become path
// names, so nothing else may pass.
func validID(s string) bool {
	if len(s) == 0 || len(s) > vlog.MaxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func checkID(kind, s string) error {
	if !validID(s) {
		return fmt.Errorf("folder remote: invalid %s id %q (want 1..%d characters of 0-9 a-z)", kind, s, vlog.MaxID)
	}
	return nil
}

func seqName(n uint64) string { return fmt.Sprintf("%0*d", seqDigits, n) }

// parseSeq parses a 20-digit name; ok is false for any other name.
func parseSeq(name string) (uint64, bool) {
	if len(name) != seqDigits {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(name, 10, 64)
	return n, err == nil && n > 0
}

// ready checks that the folder is there: a missing folder is an unmounted
// drive, so the remote is unavailable, not empty.
func (f *Folder) ready() error {
	fi, err := os.Stat(f.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: folder %q does not exist (is the drive mounted?)", remote.ErrUnavailable, f.dir)
		}
		return fmt.Errorf("%w: folder %q: %v", remote.ErrUnavailable, f.dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("folder remote %q is a file, not a directory", f.dir)
	}
	return nil
}

// readMeta reads safehold-remote.json; ErrNotFound if there is no account.
func (f *Folder) readMeta() (meta, error) {
	if err := f.ready(); err != nil {
		return meta{}, err
	}
	b, err := readBounded(filepath.Join(f.dir, metaName), maxMeta)
	if errors.Is(err, fs.ErrNotExist) {
		return meta{}, fmt.Errorf("%w: no account in folder %q (register first)", remote.ErrNotFound, f.dir)
	}
	if err != nil {
		return meta{}, err
	}
	var m meta
	if err := decodeStrict(b, &m); err != nil {
		return meta{}, fmt.Errorf("folder remote: %s: %w", metaName, err)
	}
	if m.V != metaVersion {
		return meta{}, fmt.Errorf("folder remote: %s: unknown version %d (a newer safe may have written it)", metaName, m.V)
	}
	if !validID(m.Account) || m.Email == "" || len(m.Email) > api.MaxEmail {
		return meta{}, fmt.Errorf("folder remote: %s: malformed account", metaName)
	}
	return m, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Prelogin returns the KDF header of the folder's account; ErrNotFound if
// the folder holds no account or another address's.
func (f *Folder) Prelogin(ctx context.Context, email string) ([]byte, error) {
	m, err := f.readMeta()
	if err != nil {
		return nil, err
	}
	if m.Email != normEmail(email) {
		return nil, fmt.Errorf("%w: folder %q holds another address's account", remote.ErrNotFound, f.dir)
	}
	k, _, _, err := f.head()
	return k, err
}

// Register creates the folder's layout, epoch 1 of the document and the
// account file. The folder holds one account: ErrExists if it has one.
// Running Register again with the same request finishes a registration
// that a crash interrupted.
func (f *Folder) Register(ctx context.Context, r api.RegisterRequest) error {
	email := normEmail(r.Email)
	switch {
	case email == "" || len(email) > api.MaxEmail:
		return fmt.Errorf("folder remote: invalid e-mail address (1..%d bytes)", api.MaxEmail)
	case len(r.Document) == 0 || len(r.Document) > api.MaxDocument:
		return fmt.Errorf("folder remote: account document is %d bytes (want 1..%d)", len(r.Document), api.MaxDocument)
	}
	if err := checkID("account", r.Account); err != nil {
		return err
	}
	if err := checkID("device", r.Device.ID); err != nil {
		return err
	}
	if _, err := kdf.ParseHeader(r.KDF); err != nil {
		return fmt.Errorf("folder remote: KDF header: %w", err)
	}
	if err := os.Mkdir(f.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: create folder %q: %v", remote.ErrUnavailable, f.dir, err)
	}
	if err := f.ready(); err != nil {
		return err
	}
	mb, err := json.Marshal(meta{V: metaVersion, Account: r.Account, Email: email})
	if err != nil {
		return err
	}
	if m, err := f.readMeta(); err == nil {
		if m.Account != r.Account || m.Email != email {
			return fmt.Errorf("%w: folder %q already holds an account", remote.ErrExists, f.dir)
		}
	} else if !errors.Is(err, remote.ErrNotFound) {
		return err
	}
	for _, d := range []string{docDir, vaultsDir} {
		if err := mkdir(filepath.Join(f.dir, d)); err != nil {
			return err
		}
	}
	if err := syncDir(f.dir); err != nil {
		return err
	}
	// The account file claims the folder: of two registrations racing,
	// one links it and the other finds it.
	if err := createExcl(filepath.Join(f.dir, metaName), mb); errors.Is(err, fs.ErrExist) {
		m, rerr := f.readMeta()
		if rerr != nil || m.Account != r.Account || m.Email != email {
			return fmt.Errorf("%w: folder %q already holds an account", remote.ErrExists, f.dir)
		}
	} else if err != nil {
		return err
	}
	doc := append(slices.Clip(r.KDF), r.Document...)
	name := filepath.Join(f.dir, docDir, seqName(1))
	if err := createExcl(name, doc); errors.Is(err, fs.ErrExist) {
		// Ours, from an interrupted run; or the account is in use.
		old, rerr := readBounded(name, kdf.HeaderSize+api.MaxDocument)
		if rerr != nil || !bytes.Equal(old, doc) {
			return fmt.Errorf("%w: folder %q already holds an account", remote.ErrExists, f.dir)
		}
	} else if err != nil {
		return err
	}
	return nil
}

// Login checks that the folder holds the address's account. A folder has
// no server: the login key is not checked and there is no session.
func (f *Folder) Login(ctx context.Context, r api.LoginRequest) error {
	m, err := f.readMeta()
	if err != nil {
		return err
	}
	if m.Email != normEmail(r.Email) {
		return fmt.Errorf("%w: folder %q holds another address's account", remote.ErrAuth, f.dir)
	}
	if err := checkID("device", r.Device.ID); err != nil {
		return err
	}
	return nil
}

// head returns the KDF header, document and epoch of the highest epoch.
func (f *Folder) head() (kdfHeader, doc []byte, epoch uint64, err error) {
	dir := filepath.Join(f.dir, docDir)
	epoch, err = highest(dir)
	if err != nil {
		return nil, nil, 0, err
	}
	if epoch == 0 {
		return nil, nil, 0, fmt.Errorf("%w: folder %q has no account document", remote.ErrNotFound, f.dir)
	}
	b, err := readBounded(filepath.Join(dir, seqName(epoch)), kdf.HeaderSize+api.MaxDocument)
	if err != nil {
		return nil, nil, 0, err
	}
	if len(b) < kdf.HeaderSize {
		return nil, nil, 0, fmt.Errorf("folder remote: document epoch %d is truncated (%d bytes)", epoch, len(b))
	}
	return b[:kdf.HeaderSize:kdf.HeaderSize], b[kdf.HeaderSize:], epoch, nil
}

// Account returns the highest epoch of the document.
func (f *Folder) Account(ctx context.Context) (api.Account, error) {
	m, err := f.readMeta()
	if err != nil {
		return api.Account{}, err
	}
	k, doc, epoch, err := f.head()
	if err != nil {
		return api.Account{}, err
	}
	return api.Account{Account: m.Account, Email: m.Email, KDF: k, Epoch: epoch, Document: doc}, nil
}

// UpdateAccount writes epoch u.Base+1 if u.Base is the highest epoch;
// ErrStale if it is not, or if another writer takes u.Base+1 first.
func (f *Folder) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	if len(u.Document) == 0 || len(u.Document) > api.MaxDocument {
		return 0, fmt.Errorf("folder remote: account document is %d bytes (want 1..%d)", len(u.Document), api.MaxDocument)
	}
	if _, err := f.readMeta(); err != nil {
		return 0, err
	}
	k, _, epoch, err := f.head()
	if err != nil {
		return 0, err
	}
	if u.Base != epoch {
		return 0, fmt.Errorf("%w: account document is at epoch %d, not %d", remote.ErrStale, epoch, u.Base)
	}
	if u.Credentials != nil {
		if _, err := kdf.ParseHeader(u.Credentials.KDF); err != nil {
			return 0, fmt.Errorf("folder remote: KDF header: %w", err)
		}
		k = u.Credentials.KDF
	}
	doc := append(slices.Clip(k), u.Document...)
	err = createExcl(filepath.Join(f.dir, docDir, seqName(epoch+1)), doc)
	if errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("%w: another device wrote account document epoch %d", remote.ErrStale, epoch+1)
	}
	if err != nil {
		return 0, err
	}
	return epoch + 1, nil
}

func (f *Folder) vaultDir(vault string) string { return filepath.Join(f.dir, vaultsDir, vault) }

// Vaults lists the vaults that have a record, with their heads.
func (f *Folder) Vaults(ctx context.Context) ([]api.Vault, error) {
	if _, err := f.readMeta(); err != nil {
		return nil, err
	}
	names, err := readNames(filepath.Join(f.dir, vaultsDir))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []api.Vault
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !validID(name) {
			continue
		}
		rec, err := readBounded(filepath.Join(f.vaultDir(name), record), api.MaxDocument)
		if errors.Is(err, fs.ErrNotExist) {
			continue // being created
		}
		if err != nil {
			return nil, err
		}
		head, err := highest(filepath.Join(f.vaultDir(name), logDir))
		if err != nil {
			return nil, err
		}
		out = append(out, api.Vault{Vault: name, Record: rec, Head: head})
	}
	return out, nil
}

// PutVault creates a vault's directories and writes (or replaces) its
// record.
func (f *Folder) PutVault(ctx context.Context, vault string, rec []byte) error {
	if err := checkID("vault", vault); err != nil {
		return err
	}
	if len(rec) == 0 || len(rec) > api.MaxDocument {
		return fmt.Errorf("folder remote: vault record is %d bytes (want 1..%d)", len(rec), api.MaxDocument)
	}
	if _, err := f.readMeta(); err != nil {
		return err
	}
	vd := f.vaultDir(vault)
	for _, d := range []string{vd, filepath.Join(vd, logDir), filepath.Join(vd, blobsDir)} {
		if err := mkdir(d); err != nil {
			return err
		}
	}
	if err := syncDir(filepath.Join(f.dir, vaultsDir)); err != nil {
		return err
	}
	return replaceFile(filepath.Join(vd, record), func(w io.Writer) error {
		_, err := w.Write(rec)
		return err
	})
}

// vaultExists returns ErrNotFound unless the vault has a record.
func (f *Folder) vaultExists(vault string) error {
	if err := checkID("vault", vault); err != nil {
		return err
	}
	if _, err := f.readMeta(); err != nil {
		return err
	}
	_, err := os.Stat(filepath.Join(f.vaultDir(vault), record))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: vault %s", remote.ErrNotFound, vault)
	}
	return err
}

// Pull reads entries since+1.. (at most api.MaxPageLimit). It lists the log
// directory once to find the head.
func (f *Folder) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	if err := f.vaultExists(vault); err != nil {
		return api.LogPage{}, err
	}
	ld := filepath.Join(f.vaultDir(vault), logDir)
	head, err := highest(ld)
	if err != nil {
		return api.LogPage{}, err
	}
	page := api.LogPage{Head: head, Entries: []api.Entry{}}
	for seq := since + 1; seq <= head && len(page.Entries) < api.MaxPageLimit; seq++ {
		if err := ctx.Err(); err != nil {
			return api.LogPage{}, err
		}
		e, err := readEntry(filepath.Join(ld, seqName(seq)))
		if errors.Is(err, fs.ErrNotExist) {
			return api.LogPage{}, fmt.Errorf("folder remote: vault %s: log entry %d is missing though the log reaches %d (the folder was damaged or is still syncing)", vault, seq, head)
		}
		if err != nil {
			return api.LogPage{}, fmt.Errorf("folder remote: vault %s: entry %d: %w", vault, seq, err)
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// checked is a pushed entry after the folder's checks.
type checked struct {
	e    *vlog.Entry
	data []byte // the entry file
}

// check applies the folder's second-line checks to entries base+1.. and
// encodes their files.
func (f *Folder) check(vault string, base uint64, entries []api.Entry) ([]checked, error) {
	ld := filepath.Join(f.vaultDir(vault), logDir)
	prev := vlog.Genesis(vault)
	if base > 0 {
		last, err := readEntry(filepath.Join(ld, seqName(base)))
		if err != nil {
			return nil, fmt.Errorf("folder remote: vault %s: entry %d: %w", vault, base, err)
		}
		e, err := vlog.DecodeBody(last.Body)
		if err != nil {
			return nil, fmt.Errorf("folder remote: vault %s: entry %d: %w", vault, base, err)
		}
		prev = vlog.Next(e.Prev, last.Body)
	}
	decoded := make([]*vlog.Entry, len(entries))
	for i, in := range entries {
		e, err := vlog.DecodeBody(in.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: vault %s, entry %d: %v", ErrInvalidEntry, vault, base+1+uint64(i), err)
		}
		decoded[i] = e
	}
	// purgedLater reports whether an entry after i purges the same item: a
	// put may then come without its payload (the client dropped it).
	purgedLater := func(i int) bool {
		for _, e := range decoded[i+1:] {
			if e.Op == vlog.OpPurge && e.Item == decoded[i].Item {
				return true
			}
		}
		return false
	}
	out := make([]checked, 0, len(entries))
	for i, in := range entries {
		seq := base + 1 + uint64(i)
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: vault %s, entry %d: %s", ErrInvalidEntry, vault, seq, fmt.Sprintf(format, a...))
		}
		e := decoded[i]
		switch {
		case e.Vault != vault:
			return nil, bad("names vault %q", e.Vault)
		case e.Seq != seq:
			return nil, bad("names seq %d", e.Seq)
		case e.Prev != prev:
			return nil, bad("does not link to the entry before it")
		case !validID(e.Item):
			return nil, bad("invalid item id %q", e.Item)
		case len(in.Sig) == 0 || len(in.Sig) > vlog.MaxSig:
			return nil, bad("signature is %d bytes", len(in.Sig))
		case len(in.Payload) > MaxPayload:
			return nil, bad("payload is %d bytes, more than %d", len(in.Payload), MaxPayload)
		case e.Op == vlog.OpPurge && len(in.Payload) != 0:
			return nil, bad("a purge carries a payload")
		case e.Op == vlog.OpPut && len(in.Payload) == 0 && !purgedLater(i):
			return nil, bad("a put carries no payload")
		case e.Op == vlog.OpPut && len(in.Payload) > 0 && !bytes.Equal(vlog.PayloadDigest(in.Payload), e.Digest[:]):
			return nil, bad("payload does not match its digest")
		}
		prev = vlog.Next(prev, in.Body)
		out = append(out, checked{e: e, data: encodeEntry(in)})
	}
	return out, nil
}

// Push links entries base+1.. if base is the head. See the package
// documentation for what a lost race leaves behind.
func (f *Folder) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, errors.New("folder remote: push of no entries")
	}
	if len(entries) > api.MaxAppend {
		return 0, fmt.Errorf("folder remote: push of %d entries, more than %d", len(entries), api.MaxAppend)
	}
	if err := f.vaultExists(vault); err != nil {
		return 0, err
	}
	ld := filepath.Join(f.vaultDir(vault), logDir)
	head, err := highest(ld)
	if err != nil {
		return 0, err
	}
	if head != base {
		return 0, fmt.Errorf("%w: vault %s is at %d, not %d", remote.ErrStale, vault, head, base)
	}
	cs, err := f.check(vault, base, entries)
	if err != nil {
		return 0, err
	}
	// Write and sync every temporary file first, so that linking is quick
	// and a failure here leaves nothing behind.
	tmps := make([]string, len(cs))
	defer func() {
		for _, t := range tmps {
			if t != "" {
				os.Remove(t)
			}
		}
	}()
	for i, c := range cs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if tmps[i], err = writeTemp(ld, c.data); err != nil {
			return 0, err
		}
	}
	if f.beforeLink != nil {
		f.beforeLink()
	}
	linked := 0
	for i := range cs {
		err = os.Link(tmps[i], filepath.Join(ld, seqName(base+1+uint64(i))))
		if err != nil {
			break
		}
		linked++
	}
	if serr := syncDir(ld); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%w: another device wrote entry %d of vault %s first (%d of this push's entries were written)", remote.ErrStale, base+1+uint64(linked), vault, linked)
		}
		return 0, fmt.Errorf("folder remote: vault %s: write entry %d: %w", vault, base+1+uint64(linked), err)
	}
	for _, c := range cs {
		if c.e.Op == vlog.OpPurge {
			if err := f.purge(vault, c.e.Item, c.e.Seq); err != nil {
				return 0, err
			}
		}
	}
	return base + uint64(len(cs)), nil
}

// purge rewrites the item's entries before seq without their payloads and
// deletes the item's blobs.
func (f *Folder) purge(vault, itemID string, seq uint64) error {
	if err := checkID("item", itemID); err != nil {
		return err
	}
	ld := filepath.Join(f.vaultDir(vault), logDir)
	for s := uint64(1); s < seq; s++ {
		name := filepath.Join(ld, seqName(s))
		body, hasPayload, err := readEntryHead(name)
		if err != nil {
			return fmt.Errorf("folder remote: purge: vault %s, entry %d: %w", vault, s, err)
		}
		if !hasPayload {
			continue
		}
		e, err := vlog.DecodeBody(body)
		if err != nil {
			return fmt.Errorf("folder remote: purge: vault %s, entry %d: %w", vault, s, err)
		}
		if e.Item != itemID {
			continue
		}
		full, err := readEntry(name)
		if err != nil {
			return fmt.Errorf("folder remote: purge: vault %s, entry %d: %w", vault, s, err)
		}
		full.Payload = nil
		data := encodeEntry(full)
		if err := replaceFile(name, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		}); err != nil {
			return err
		}
	}
	bd := filepath.Join(f.vaultDir(vault), blobsDir)
	if err := os.RemoveAll(filepath.Join(bd, itemID)); err != nil {
		return fmt.Errorf("folder remote: purge blobs of item %s: %w", itemID, err)
	}
	return syncDir(bd)
}

// PutBlob writes the chunks as frames to a temporary file and renames it
// over the blob: on any error the earlier blob, if any, stays.
func (f *Folder) PutBlob(ctx context.Context, vault, itemID, blob string, chunks iter.Seq2[[]byte, error]) error {
	if err := checkID("item", itemID); err != nil {
		return err
	}
	if err := checkID("blob", blob); err != nil {
		return err
	}
	if err := f.vaultExists(vault); err != nil {
		return err
	}
	bd := filepath.Join(f.vaultDir(vault), blobsDir)
	id := filepath.Join(bd, itemID)
	if err := mkdir(id); err != nil {
		return err
	}
	if err := syncDir(bd); err != nil {
		return err
	}
	return replaceFile(filepath.Join(id, blob), func(w io.Writer) error {
		err := frames.Write(w, func(yield func([]byte, error) bool) {
			for c, err := range chunks {
				if err == nil {
					err = ctx.Err()
				}
				if !yield(c, err) || err != nil {
					return
				}
			}
		})
		if errors.Is(err, frames.ErrMalformed) {
			return fmt.Errorf("folder remote: %w", err)
		}
		return err
	})
}

// GetBlob reads the blob's frames, checking each length and the count.
func (f *Folder) GetBlob(ctx context.Context, vault, itemID, blob string, fn func(idx int, chunk []byte) error) error {
	if err := checkID("item", itemID); err != nil {
		return err
	}
	if err := checkID("blob", blob); err != nil {
		return err
	}
	if err := f.vaultExists(vault); err != nil {
		return err
	}
	fh, err := os.Open(filepath.Join(f.vaultDir(vault), blobsDir, itemID, blob))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: blob %s of item %s", remote.ErrNotFound, blob, itemID)
	}
	if err != nil {
		return fmt.Errorf("folder remote: %w", err)
	}
	defer fh.Close()
	var fnErr error
	err = frames.Read(fh, func(idx int, c []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		fnErr = fn(idx, c)
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("folder remote: blob %s of item %s: %w", blob, itemID, err)
	}
	return err
}

// encodeEntry encodes an entry file.
func encodeEntry(e api.Entry) []byte {
	b := make([]byte, 0, entryHead+len(e.Body)+len(e.Sig)+len(e.Payload))
	b = append(b, entryMagic...)
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Body)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Sig)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	b = append(b, e.Body...)
	b = append(b, e.Sig...)
	return append(b, e.Payload...)
}

// entryLens parses an entry file's head.
func entryLens(h []byte) (body, sig, payload int, err error) {
	if len(h) < entryHead || string(h[:4]) != entryMagic {
		return 0, 0, 0, errors.New("not an entry file")
	}
	if h[4] != entryVersion {
		return 0, 0, 0, fmt.Errorf("unknown entry file version %d", h[4])
	}
	b := binary.BigEndian.Uint32(h[5:])
	s := binary.BigEndian.Uint32(h[9:])
	p := binary.BigEndian.Uint32(h[13:])
	if b == 0 || b > vlog.MaxEntry || s == 0 || s > vlog.MaxSig || p > MaxPayload {
		return 0, 0, 0, fmt.Errorf("entry file lengths out of bounds (body %d, sig %d, payload %d)", b, s, p)
	}
	return int(b), int(s), int(p), nil
}

// decodeEntry parses a whole entry file.
func decodeEntry(b []byte) (api.Entry, error) {
	nb, ns, np, err := entryLens(b)
	if err != nil {
		return api.Entry{}, err
	}
	if len(b) != entryHead+nb+ns+np {
		return api.Entry{}, fmt.Errorf("entry file is %d bytes, its lengths say %d", len(b), entryHead+nb+ns+np)
	}
	p := b[entryHead:]
	e := api.Entry{Body: p[:nb:nb], Sig: p[nb : nb+ns : nb+ns]}
	if np > 0 {
		e.Payload = p[nb+ns:]
	}
	return e, nil
}

func readEntry(name string) (api.Entry, error) {
	b, err := readBounded(name, maxEntry)
	if err != nil {
		return api.Entry{}, err
	}
	return decodeEntry(b)
}

// readEntryHead reads only an entry file's lengths and body.
func readEntryHead(name string) (body []byte, hasPayload bool, err error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	h := make([]byte, entryHead)
	if _, err := io.ReadFull(fh, h); err != nil {
		return nil, false, fmt.Errorf("entry file truncated: %w", err)
	}
	nb, _, np, err := entryLens(h)
	if err != nil {
		return nil, false, err
	}
	body = make([]byte, nb)
	if _, err := io.ReadFull(fh, body); err != nil {
		return nil, false, fmt.Errorf("entry file truncated: %w", err)
	}
	return body, np > 0, nil
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(name string, limit int64) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("folder remote: read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("folder remote: %s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// readNames lists a directory's names, unsorted; a missing directory has
// none.
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("folder remote: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("folder remote: list %s: %w", dir, err)
	}
	return names, nil
}

// highest returns the highest 20-digit name in dir (0 if none).
func highest(dir string) (uint64, error) {
	names, err := readNames(dir)
	if err != nil {
		return 0, err
	}
	var max uint64
	for _, n := range names {
		if s, ok := parseSeq(n); ok && s > max {
			max = s
		}
	}
	return max, nil
}

func mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("folder remote: %w", err)
	}
	return nil
}

// writeTemp writes data to a new synced temporary file in dir.
func writeTemp(dir string, data []byte) (string, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	name := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("folder remote: %w", err)
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("folder remote: write %s: %w", name, err)
	}
	return name, nil
}

// createExcl creates name with data unless it exists (fs.ErrExist), so
// that whole contents appear at once and exactly one of several writers
// wins.
func createExcl(name string, data []byte) error {
	dir := filepath.Dir(name)
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("folder remote: %w", err)
	}
	return syncDir(dir)
}

// replaceFile writes a temporary file with fill, syncs it and renames it
// over name.
func replaceFile(name string, fill func(io.Writer) error) error {
	dir := filepath.Dir(name)
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("folder remote: %w", err)
	}
	err = fill(fh)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("folder remote: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("folder remote: sync %s: %w", dir, err)
	}
	return nil
}
