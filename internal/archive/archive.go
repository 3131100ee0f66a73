// Package archive reads and writes the Safehold archive: an encrypted,
// self-contained copy of a vault's items, their earlier versions and their
// attachments, protected by an archive password of its own. `safe export
// archive` writes one and `safe import archive` restores it into any vault.
//
// An archive is a short preamble (magic, version and the 80-byte KDF header
// of internal/kdf with fresh salts) followed by one envelope stream
// (internal/envelope: AES-256-GCM inside XChaCha20-Poly1305 in 64 KiB
// chunks, each bound to its index and to whether it is the last). The key
// is expanded from the password's KDF output under the label
// "archive/v1", and the stream's context binds the preamble byte for byte.
// The plaintext of the stream is a sequence of framed records ending with
// an END record. A reader authenticates the whole stream before it returns
// anything, so a wrong password, a changed, reordered, dropped or
// truncated byte is refused and nothing of such a file is imported.
//
// The byte layout is specified in docs/design.md ("Safehold archive").
package archive

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/secret"
)

// Format constants; see docs/design.md.
const (
	// Magic starts every archive: "SHARCH", SafeHold ARCHive.
	Magic = "SHARCH"
	// Version is the only archive version this package reads and writes.
	Version byte = 0x01
	// PreambleSize is magic (6) + version (1) + reserved zero (1) + the
	// KDF header (80).
	PreambleSize = len(Magic) + 2 + kdf.HeaderSize

	// keyLabel names the archive key among the KDF's expansions.
	keyLabel = "archive/v1"
	// purpose is the envelope Context purpose of the stream.
	purpose = "archive"
)

// Record kinds of the plaintext stream.
const (
	kindEnd     byte = 0x00
	kindItem    byte = 0x01
	kindHistory byte = 0x02
	kindFile    byte = 0x03
	kindData    byte = 0x04
)

// Bounds a reader enforces (and a writer respects, so every archive written
// can be read back).
const (
	// MaxItemRecord bounds an ITEM or HISTORY record: one item's JSON.
	MaxItemRecord = item.MaxPayload
	// MaxDataRecord bounds a DATA record; the writer uses exactly this
	// size for every DATA record but a file's last.
	MaxDataRecord = 1 << 20
	// MaxEntries bounds the ITEM records of one archive.
	MaxEntries = 1_000_000
	// MaxHistory bounds the HISTORY records of one entry. The vault keeps
	// every revision, so this is set well above any real item's history
	// (an item rotated by a script can pass a thousand); memory is bounded
	// by ReadOptions.MaxTotal and the record limits, not by this count.
	MaxHistory = 100_000
	// MaxFileName bounds a FILE record's name.
	MaxFileName = item.MaxTitle
	// DefaultMaxTotal is the default bound on the plaintext held in
	// memory while reading (items, history and attachment bytes).
	DefaultMaxTotal int64 = 4 << 30
)

// Errors. Match them with errors.Is.
var (
	// ErrNotArchive means the input does not start with the archive magic.
	ErrNotArchive = errors.New("not a Safehold archive")
	// ErrVersion means the archive was written by another format version.
	ErrVersion = errors.New("unsupported Safehold archive version")
	// ErrWrongPassword means the first part of the stream does not
	// authenticate: the password is wrong (or that part was damaged).
	ErrWrongPassword = errors.New("wrong archive password (or the start of the archive is damaged)")
	// ErrTampered means the archive opened with the password but a later
	// part does not authenticate, is missing, or breaks the record rules.
	ErrTampered = errors.New("the archive is damaged or was modified")
	// ErrTooLarge means the archive goes over a bound.
	ErrTooLarge = errors.New("the archive exceeds a size limit")
)

// WriteOptions configure Write.
type WriteOptions struct {
	// Params are the KDF work factors (kdf.Defaults() normally).
	Params kdf.Params
	// Rand supplies the salts and the stream salt: a *random.Source.
	Rand io.Reader
	// AllowInsecure permits kdf.TestParams (tests only).
	AllowInsecure bool
}

// ReadOptions configure Read.
type ReadOptions struct {
	// AllowInsecure accepts an archive made with the insecure test KDF
	// profile (the CLI sets it only with SAFE_INSECURE_TEST_KDF=1).
	AllowInsecure bool
	// MaxTotal bounds the plaintext kept in memory; 0 means
	// DefaultMaxTotal.
	MaxTotal int64
}

// Write writes entries as an archive sealed under password. Each entry's
// item is stored without its id, revision and attachment metadata (which
// hold the vault's own keys); its History versions likewise, oldest first;
// its Attachments as FILE and DATA records.
func Write(w io.Writer, entries []importer.Entry, password []byte, opts WriteOptions) error {
	if opts.Rand == nil {
		return errors.New("archive: no random source")
	}
	if len(entries) > MaxEntries {
		return fmt.Errorf("%w: %d items, at most %d", ErrTooLarge, len(entries), MaxEntries)
	}
	salts, err := kdf.NewSalts(opts.Rand)
	if err != nil {
		return err
	}
	h := kdf.Header{Params: opts.Params, Salts: salts}
	pre := make([]byte, 0, PreambleSize)
	pre = append(pre, Magic...)
	pre = append(pre, Version, 0)
	if pre, err = h.AppendBinary(pre); err != nil {
		return fmt.Errorf("archive: kdf header: %w", err)
	}
	key, err := deriveKey(password, h, opts.AllowInsecure)
	if err != nil {
		return err
	}
	defer key.Wipe()
	if _, err := w.Write(pre); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	sw, err := envelope.NewWriter(w, opts.Rand, key, streamContext(pre))
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	bw := sw
	var files uint64
	for i, e := range entries {
		if len(e.History) > MaxHistory {
			return fmt.Errorf("%w: item %d has %d earlier versions, at most %d", ErrTooLarge, i+1, len(e.History), MaxHistory)
		}
		if len(e.Attachments) > item.MaxAttachment {
			return fmt.Errorf("%w: item %d has %d attachments, at most %d", ErrTooLarge, i+1, len(e.Attachments), item.MaxAttachment)
		}
		if err := writeItem(bw, kindItem, e.Item); err != nil {
			return fmt.Errorf("archive: item %d: %w", i+1, err)
		}
		for _, old := range e.History {
			if err := writeItem(bw, kindHistory, old); err != nil {
				return fmt.Errorf("archive: item %d history: %w", i+1, err)
			}
		}
		seen := map[string]bool{}
		for _, f := range e.Attachments {
			if err := checkFileName(f.Name); err != nil {
				return fmt.Errorf("archive: item %d: %w", i+1, err)
			}
			if seen[f.Name] {
				return fmt.Errorf("archive: item %d has two attachments named %q", i+1, f.Name)
			}
			seen[f.Name] = true
			body := binary.BigEndian.AppendUint64(nil, uint64(len(f.Data)))
			body = append(body, f.Name...)
			err := writeRecord(bw, kindFile, body)
			clear(body)
			if err != nil {
				return err
			}
			for d := f.Data; len(d) > 0; {
				n := min(len(d), MaxDataRecord)
				if err := writeRecord(bw, kindData, d[:n]); err != nil {
					return err
				}
				d = d[n:]
			}
			files++
		}
	}
	end := binary.BigEndian.AppendUint64(nil, uint64(len(entries)))
	end = binary.BigEndian.AppendUint64(end, files)
	if err := writeRecord(bw, kindEnd, end); err != nil {
		return err
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	return nil
}

func writeItem(w io.Writer, kind byte, it item.Item) error {
	it = it.Clone()
	it.ID, it.Revision, it.Attachments = "", 0, nil
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	defer secret.Wipe(b)
	if len(b) > MaxItemRecord {
		return fmt.Errorf("%w: %q is %d bytes of JSON, at most %d", ErrTooLarge, it.Title, len(b), MaxItemRecord)
	}
	return writeRecord(w, kind, b)
}

func writeRecord(w io.Writer, kind byte, body []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	return nil
}

func checkFileName(name string) error {
	if name == "" || len(name) > MaxFileName || !utf8.ValidString(name) || strings.ContainsAny(name, "/\\\x00\n") {
		return fmt.Errorf("attachment name %q must be a plain file name of 1 to %d bytes", name, MaxFileName)
	}
	return nil
}

// streamContext binds the preamble (magic, version, KDF header) into every
// chunk of the stream.
func streamContext(pre []byte) envelope.Context {
	return envelope.Context{Purpose: purpose, Field: string(pre)}
}

func deriveKey(password []byte, h kdf.Header, allowInsecure bool) (secret.Bytes, error) {
	keys, err := kdf.DeriveWith(password, nil, h.Params, h.Salts, allowInsecure)
	if err != nil {
		return nil, fmt.Errorf("archive: derive the key: %w", err)
	}
	defer keys.Wipe()
	return keys.Expand(keyLabel, envelope.KeySize), nil
}

// ReadPreamble reads and checks the preamble: the magic, the version and
// the KDF header (whose work factors must lie within kdf's bounds).
func ReadPreamble(r io.Reader) ([]byte, kdf.Header, error) {
	pre := make([]byte, PreambleSize)
	n, err := io.ReadFull(r, pre)
	if n < len(Magic) || string(pre[:len(Magic)]) != Magic {
		return nil, kdf.Header{}, ErrNotArchive
	}
	if n > len(Magic) && pre[len(Magic)] != Version {
		return nil, kdf.Header{}, fmt.Errorf("%w %d (this safe reads version %d): use the safe that wrote it", ErrVersion, pre[len(Magic)], Version)
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, kdf.Header{}, fmt.Errorf("%w: it ends inside its header", ErrTampered)
		}
		return nil, kdf.Header{}, fmt.Errorf("archive: read: %w", err)
	}
	if pre[len(Magic)+1] != 0 {
		return nil, kdf.Header{}, fmt.Errorf("%w: reserved header byte is %#02x", ErrTampered, pre[len(Magic)+1])
	}
	h, err := kdf.ParseHeader(pre[len(Magic)+2:])
	if err != nil {
		return nil, kdf.Header{}, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return pre, h, nil
}

// Read opens an archive with password and returns its entries. It reads
// and authenticates the whole stream before returning: any error means
// nothing of the archive should be used. Entries are named "item N" (with
// the title) in Where.
func Read(r io.Reader, password []byte, opts ReadOptions) (*importer.Result, error) {
	pre, h, err := ReadPreamble(r)
	if err != nil {
		return nil, err
	}
	if h.Params.InsecureTest && !opts.AllowInsecure {
		return nil, fmt.Errorf("archive: made with the insecure test KDF profile: %w", kdf.ErrInsecureNotAllowed)
	}
	key, err := deriveKey(password, h, opts.AllowInsecure)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	sr, err := envelope.NewReader(r, key, streamContext(pre))
	if err != nil {
		if errors.Is(err, envelope.ErrTruncated) {
			return nil, fmt.Errorf("%w: it ends before its first record", ErrTampered)
		}
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	limit := opts.MaxTotal
	if limit <= 0 {
		limit = DefaultMaxTotal
	}
	d := &decoder{r: &trackReader{r: sr}, left: limit}
	res, err := d.decode()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// trackReader tells whether any plaintext came out of the stream, so that
// an authentication failure of the first chunk reads as a wrong password
// and a later one as damage.
type trackReader struct {
	r    io.Reader
	some bool
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.some = true
	}
	return n, err
}

type decoder struct {
	r    *trackReader
	left int64 // plaintext bytes still allowed in memory
	hdr  [5]byte
}

// fail turns a stream error into the package's errors.
func (d *decoder) fail(err error) error {
	switch {
	case errors.Is(err, envelope.ErrAuth) && !d.r.some:
		return ErrWrongPassword
	case errors.Is(err, envelope.ErrAuth), errors.Is(err, envelope.ErrTruncated), errors.Is(err, envelope.ErrChunkSize):
		return fmt.Errorf("%w: a part does not authenticate (changed, reordered or cut short)", ErrTampered)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the records end without an END record", ErrTampered)
	}
	return fmt.Errorf("archive: read: %w", err)
}

func (d *decoder) record() (byte, []byte, error) {
	if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
		return 0, nil, d.fail(err)
	}
	kind, n := d.hdr[0], binary.BigEndian.Uint32(d.hdr[1:])
	var lim int
	switch kind {
	case kindItem, kindHistory:
		lim = MaxItemRecord
	case kindFile:
		lim = 8 + MaxFileName
	case kindData:
		lim = MaxDataRecord
	case kindEnd:
		lim = 16
	default:
		return 0, nil, fmt.Errorf("%w: unknown record kind %#02x", ErrTampered, kind)
	}
	if int64(n) > int64(lim) {
		return 0, nil, fmt.Errorf("%w: a record of kind %#02x claims %d bytes, at most %d", ErrTampered, kind, n, lim)
	}
	if int64(n) > d.left {
		return 0, nil, fmt.Errorf("%w: more than %d bytes of content", ErrTooLarge, d.left)
	}
	d.left -= int64(n)
	body := make([]byte, n)
	if _, err := io.ReadFull(d.r, body); err != nil {
		return 0, nil, d.fail(err)
	}
	return kind, body, nil
}

func (d *decoder) decode() (*importer.Result, error) {
	res := &importer.Result{}
	var cur *importer.Entry
	var file *importer.File
	var want uint64 // bytes of the current file still to come
	var files uint64
	names := map[string]bool{}
	for {
		kind, body, err := d.record()
		if err != nil {
			return nil, err
		}
		if want > 0 && kind != kindData {
			return nil, fmt.Errorf("%w: attachment %q of %s is cut short", ErrTampered, file.Name, cur.Where)
		}
		switch kind {
		case kindItem, kindHistory:
			it, err := item.Decode(body)
			secret.Wipe(body)
			if err != nil {
				return nil, fmt.Errorf("%w: item %d: %w", ErrTampered, len(res.Entries)+1, err)
			}
			if kind == kindItem {
				if len(res.Entries) == MaxEntries {
					return nil, fmt.Errorf("%w: more than %d items", ErrTooLarge, MaxEntries)
				}
				n := len(res.Entries) + 1
				res.Entries = append(res.Entries, importer.Entry{Item: it, Where: fmt.Sprintf("item %d (%q)", n, it.Title)})
				cur, file = &res.Entries[n-1], nil
				clear(names)
				continue
			}
			if cur == nil || len(cur.Attachments) > 0 {
				return nil, fmt.Errorf("%w: a HISTORY record out of place", ErrTampered)
			}
			if len(cur.History) == MaxHistory {
				return nil, fmt.Errorf("%w: %s has more than %d earlier versions", ErrTooLarge, cur.Where, MaxHistory)
			}
			cur.History = append(cur.History, it)
		case kindFile:
			if cur == nil {
				return nil, fmt.Errorf("%w: an attachment before any item", ErrTampered)
			}
			if len(body) < 8 {
				return nil, fmt.Errorf("%w: a FILE record of %d bytes", ErrTampered, len(body))
			}
			size, name := binary.BigEndian.Uint64(body), string(body[8:])
			if err := checkFileName(name); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrTampered, cur.Where, err)
			}
			if names[name] {
				return nil, fmt.Errorf("%w: %s has two attachments named %q", ErrTampered, cur.Where, name)
			}
			if len(cur.Attachments) == item.MaxAttachment {
				return nil, fmt.Errorf("%w: %s has more than %d attachments", ErrTooLarge, cur.Where, item.MaxAttachment)
			}
			if size > uint64(d.left) {
				return nil, fmt.Errorf("%w: attachment %q claims %d bytes", ErrTooLarge, name, size)
			}
			names[name] = true
			cur.Attachments = append(cur.Attachments, importer.File{Name: name, Data: make([]byte, 0, min(size, 4*MaxDataRecord))})
			file, want = &cur.Attachments[len(cur.Attachments)-1], size
			files++
		case kindData:
			if file == nil || want == 0 || len(body) == 0 || uint64(len(body)) > want {
				return nil, fmt.Errorf("%w: a DATA record out of place", ErrTampered)
			}
			// Canonical: every DATA record but a file's last is full.
			if uint64(len(body)) < want && len(body) != MaxDataRecord {
				return nil, fmt.Errorf("%w: a short DATA record inside an attachment", ErrTampered)
			}
			file.Data = append(file.Data, body...)
			want -= uint64(len(body))
		case kindEnd:
			if len(body) != 16 {
				return nil, fmt.Errorf("%w: an END record of %d bytes", ErrTampered, len(body))
			}
			if n, f := binary.BigEndian.Uint64(body), binary.BigEndian.Uint64(body[8:]); n != uint64(len(res.Entries)) || f != files {
				return nil, fmt.Errorf("%w: the END record counts %d items and %d attachments, the archive holds %d and %d", ErrTampered, n, f, len(res.Entries), files)
			}
			// Nothing may follow, and the stream must end here with its
			// final chunk (which is what authenticates its length).
			var one [1]byte
			n, err := io.ReadFull(d.r, one[:])
			if n != 0 {
				return nil, fmt.Errorf("%w: data after the END record", ErrTampered)
			}
			if !errors.Is(err, io.EOF) {
				return nil, d.fail(err)
			}
			return res, nil
		}
	}
}
