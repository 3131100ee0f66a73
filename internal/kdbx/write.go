package kdbx

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// KDF selects the key derivation function Write uses.
type KDF int

// Key derivation functions.
const (
	Argon2id KDF = iota // the default
	Argon2d             // KeePassXC's default for new databases
	AESKDF              // for old readers only: far weaker against GPUs
)

// Cipher selects the outer cipher Write uses.
type Cipher int

// Outer ciphers.
const (
	AES256   Cipher = iota // AES-256-CBC, the default, as KeePassXC
	ChaCha20               // ChaCha20 (RFC 7539 with a 96-bit nonce)
)

// Write defaults. Argon2id with 64 MiB and 10 passes takes about half a
// second on a current laptop; a reader with less memory can still open it.
const (
	DefaultMemory      = 64 << 20
	DefaultIterations  = 10
	DefaultParallelism = 2
	DefaultAESRounds   = 20_000_000
)

// WriteOptions tune Write. The zero value is Argon2id with the defaults and
// AES-256.
type WriteOptions struct {
	KDF         KDF
	Cipher      Cipher
	Memory      uint64 // Argon2 memory in bytes (default DefaultMemory)
	Iterations  uint64 // Argon2 passes (default DefaultIterations)
	Parallelism uint32 // Argon2 lanes (default DefaultParallelism)
	AESRounds   uint64 // AES-KDF rounds (default DefaultAESRounds)
	// DatabaseName is shown by KeePassXC (default "Safehold export").
	DatabaseName string
	// Rand supplies seeds, IVs and UUIDs (default crypto/rand); tests
	// set it for reproducible files.
	Rand io.Reader
	// Now is the time recorded for the database and for items without
	// times (default time.Now).
	Now func() time.Time
}

func (o *WriteOptions) fill() error {
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.Iterations == 0 {
		o.Iterations = DefaultIterations
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.AESRounds == 0 {
		o.AESRounds = DefaultAESRounds
	}
	if o.DatabaseName == "" {
		o.DatabaseName = "Safehold export"
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.Cipher {
	case AES256, ChaCha20:
	default:
		return fmt.Errorf("kdbx: unknown cipher %d", o.Cipher)
	}
	switch o.KDF {
	case Argon2id, Argon2d, AESKDF:
	default:
		return fmt.Errorf("kdbx: unknown KDF %d", o.KDF)
	}
	return nil
}

// kdf builds and checks the KDF parameters with a fresh seed.
func (o *WriteOptions) kdf() (kdfParams, error) {
	seed := make([]byte, 32)
	if _, err := io.ReadFull(o.Rand, seed); err != nil {
		return kdfParams{}, fmt.Errorf("kdbx: random seed: %w", err)
	}
	k := kdfParams{seed: seed, version: 0x13, memory: o.Memory, iterations: o.Iterations, parallelism: o.Parallelism}
	switch o.KDF {
	case Argon2id:
		k.uuid = kdfArgon2id
	case Argon2d:
		k.uuid = kdfArgon2d
	case AESKDF:
		k = kdfParams{uuid: kdfAES, seed: seed, rounds: o.AESRounds}
	}
	if err := k.check(); err != nil {
		return kdfParams{}, fmt.Errorf("kdbx: write options: %w", err)
	}
	return k, nil
}

func (k *kdfParams) dict() []byte {
	w := newVDWriter()
	w.add(vdBytes, "$UUID", k.uuid[:])
	if k.isAES() {
		w.uint64("R", k.rounds)
		w.add(vdBytes, "S", k.seed)
		return w.bytes()
	}
	w.uint64("I", k.iterations)
	w.uint64("M", k.memory)
	w.uint32("P", k.parallelism)
	w.add(vdBytes, "S", k.seed)
	w.uint32("V", k.version)
	return w.bytes()
}

// Write writes entries as a KDBX 4.0 database protected by password. Items
// keep their folders (as groups), tags, times, custom fields (hidden ones
// protected), TOTP (KeePassXC's otp attribute), attachments and history;
// typed data of cards, identities, SSH keys and VPN profiles becomes named
// strings; trashed items go to the recycle bin group.
func Write(w io.Writer, entries []importer.Entry, password []byte, opts WriteOptions) error {
	if err := opts.fill(); err != nil {
		return err
	}
	k, err := opts.kdf()
	if err != nil {
		return err
	}
	h := &header{major: 4, kdf: k, compressed: true}
	rnd := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(opts.Rand, b)
		return b, err
	}
	if h.masterSeed, err = rnd(32); err != nil {
		return fmt.Errorf("kdbx: random: %w", err)
	}
	switch opts.Cipher {
	case ChaCha20:
		h.cipher = cipherChaCha20
		h.iv, err = rnd(12)
	default:
		h.cipher = cipherAES256
		h.iv, err = rnd(16)
	}
	if err != nil {
		return fmt.Errorf("kdbx: random: %w", err)
	}
	streamKey, err := rnd(64)
	if err != nil {
		return fmt.Errorf("kdbx: random: %w", err)
	}
	defer clear(streamKey)
	stream, err := newInnerStream(streamChaCha20, streamKey)
	if err != nil {
		return err
	}
	doc, bins, err := buildXML(entries, &opts, stream, true)
	if err != nil {
		return err
	}
	// The XML holds every unprotected value (titles, user names, URLs,
	// notes); wipe it once it is compressed and sealed.
	defer wipeAll(doc)

	// Inner header, then the XML, gzip-compressed.
	var payload bytes.Buffer
	defer func() { wipeAll(payload.Bytes()) }()
	zw := gzip.NewWriter(&payload)
	innerField(zw, ihStreamID, binary.LittleEndian.AppendUint32(nil, streamChaCha20))
	innerField(zw, ihStreamKy, streamKey)
	for _, b := range bins {
		// The attachment bytes are the caller's; the prefixed copy is ours.
		field := append([]byte{0}, b...)
		innerField(zw, ihBinary, field)
		clear(field)
	}
	innerField(zw, ihEnd, nil)
	if _, err := zw.Write(doc); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}

	composite, err := compositeKey(password, nil)
	if err != nil {
		return err
	}
	encKey, hmacBase := h.keys(composite)
	clear(composite)
	defer clear(encKey)
	defer clear(hmacBase)
	ct, err := encrypt(h.cipher, encKey, h.iv, payload.Bytes())
	if err != nil {
		return err
	}

	var out bytes.Buffer
	hdr := h.encodeV4()
	out.Write(hdr)
	sum := sha256.Sum256(hdr)
	out.Write(sum[:])
	m := hmac.New(sha256.New, hmacBlockKey(hmacBase, ^uint64(0)))
	m.Write(hdr)
	out.Write(m.Sum(nil))
	if err := writeHMACBlocks(&out, hmacBase, ct, 1<<20); err != nil {
		return err
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return fmt.Errorf("kdbx: writing the database: %w", err)
	}
	return nil
}

// wipeAll zeroes b up to its capacity (a bytes.Buffer's spare room may
// still hold plaintext from before a reset).
func wipeAll(b []byte) { clear(b[:cap(b)]) }

func innerField(w io.Writer, id byte, data []byte) {
	var pre [5]byte
	pre[0] = id
	binary.LittleEndian.PutUint32(pre[1:], uint32(len(data)))
	w.Write(pre[:])
	w.Write(data)
}

func (h *header) encodeV4() []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, []uint32{sig1, sig2, version40})
	field := func(id byte, data []byte) {
		b.WriteByte(id)
		_ = binary.Write(&b, binary.LittleEndian, uint32(len(data)))
		b.Write(data)
	}
	field(hCipherID, h.cipher[:])
	comp := uint32(0)
	if h.compressed {
		comp = 1
	}
	field(hCompression, binary.LittleEndian.AppendUint32(nil, comp))
	field(hMasterSeed, h.masterSeed)
	field(hEncryptionIV, h.iv)
	field(hKDFParameters, h.kdf.dict())
	field(hEnd, []byte("\r\n\r\n"))
	return b.Bytes()
}

// xmlWriter writes the KeePass XML document.
type xmlWriter struct {
	b      bytes.Buffer
	stream innerStream
	v4     bool
	opts   *WriteOptions
	bins   [][]byte
	binIdx map[[32]byte]int
	now    time.Time
}

type groupNode struct {
	name     string
	entries  []*importer.Entry
	children []*groupNode
	byName   map[string]*groupNode
}

func (g *groupNode) child(name string) *groupNode {
	if c, ok := g.byName[name]; ok {
		return c
	}
	c := &groupNode{name: name, byName: map[string]*groupNode{}}
	g.byName[name] = c
	g.children = append(g.children, c)
	return c
}

// buildXML renders entries. v4 selects KDBX 4 (binary times, attachments
// returned for the inner header) over KDBX 3.1 (ISO times, attachments in
// Meta/Binaries; used by tests).
func buildXML(entries []importer.Entry, opts *WriteOptions, stream innerStream, v4 bool) ([]byte, [][]byte, error) {
	x := &xmlWriter{stream: stream, v4: v4, opts: opts, binIdx: map[[32]byte]int{}, now: opts.Now().UTC()}
	root := &groupNode{name: "Root", byName: map[string]*groupNode{}}
	var bin *groupNode
	histMax := 10
	for i := range entries {
		e := &entries[i]
		histMax = max(histMax, len(e.History))
		if e.Item.Trashed != nil {
			if bin == nil {
				bin = &groupNode{name: "Recycle Bin", byName: map[string]*groupNode{}}
			}
			bin.entries = append(bin.entries, e)
			continue
		}
		g := root
		for _, part := range strings.Split(strings.Trim(e.Item.Folder, "/"), "/") {
			if part = strings.TrimSpace(part); part != "" {
				g = g.child(part)
			}
		}
		g.entries = append(g.entries, e)
	}
	binUUID := make([]byte, 16)
	if bin != nil {
		var err error
		if binUUID, err = x.uuid(); err != nil {
			return nil, nil, err
		}
	}

	// The Root element first: it collects the attachments that KDBX 3.1
	// lists in Meta, which comes before it.
	x.open("Root")
	if err := x.group(root, bin, binUUID); err != nil {
		return nil, nil, err
	}
	x.open("DeletedObjects")
	x.close("DeletedObjects")
	x.close("Root")
	rootXML := x.b
	x.b = bytes.Buffer{}

	x.b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	x.open("KeePassFile")
	x.open("Meta")
	x.elem("Generator", "Safehold")
	x.elem("DatabaseName", opts.DatabaseName)
	x.timeElem("DatabaseNameChanged", x.now)
	x.elem("DatabaseDescription", "")
	x.elem("DefaultUserName", "")
	x.elem("MaintenanceHistoryDays", "365")
	x.open("MemoryProtection")
	x.elem("ProtectTitle", "False")
	x.elem("ProtectUserName", "False")
	x.elem("ProtectPassword", "True")
	x.elem("ProtectURL", "False")
	x.elem("ProtectNotes", "False")
	x.close("MemoryProtection")
	x.elem("RecycleBinEnabled", "True")
	x.elem("RecycleBinUUID", base64.StdEncoding.EncodeToString(binUUID))
	x.elem("HistoryMaxItems", strconv.Itoa(histMax))
	x.elem("HistoryMaxSize", "-1")
	if !v4 && len(x.bins) > 0 {
		x.open("Binaries")
		for i, b := range x.bins {
			fmt.Fprintf(&x.b, `<Binary ID="%d" Compressed="False">%s</Binary>`, i, base64.StdEncoding.EncodeToString(b))
		}
		x.close("Binaries")
	}
	x.close("Meta")
	x.b.Write(rootXML.Bytes())
	wipeAll(rootXML.Bytes())
	x.close("KeePassFile")
	return x.b.Bytes(), x.bins, nil
}

func (x *xmlWriter) uuid() ([]byte, error) {
	u := make([]byte, 16)
	if _, err := io.ReadFull(x.opts.Rand, u); err != nil {
		return nil, fmt.Errorf("kdbx: random: %w", err)
	}
	return u, nil
}

func (x *xmlWriter) open(name string)  { x.b.WriteString("<" + name + ">") }
func (x *xmlWriter) close(name string) { x.b.WriteString("</" + name + ">") }

func (x *xmlWriter) elem(name, text string) {
	x.open(name)
	xml.EscapeText(&x.b, []byte(text))
	x.close(name)
}

func (x *xmlWriter) timeElem(name string, t time.Time) {
	if t.IsZero() {
		t = x.now
	}
	t = t.UTC().Truncate(time.Second)
	if x.v4 {
		secs := t.Unix() - keepassEpoch
		x.elem(name, base64.StdEncoding.EncodeToString(binary.LittleEndian.AppendUint64(nil, uint64(secs))))
		return
	}
	x.elem(name, t.Format(time.RFC3339))
}

func (x *xmlWriter) times(created, modified time.Time) {
	x.open("Times")
	x.timeElem("CreationTime", created)
	x.timeElem("LastModificationTime", modified)
	x.timeElem("LastAccessTime", modified)
	x.timeElem("ExpiryTime", x.now)
	x.elem("Expires", "False")
	x.elem("UsageCount", "0")
	x.timeElem("LocationChanged", modified)
	x.close("Times")
}

func (x *xmlWriter) group(g, bin *groupNode, binUUID []byte) error {
	u, err := x.uuid()
	if err != nil {
		return err
	}
	x.open("Group")
	x.elem("UUID", base64.StdEncoding.EncodeToString(u))
	x.elem("Name", g.name)
	x.elem("Notes", "")
	x.elem("IconID", "48")
	x.times(x.now, x.now)
	x.elem("IsExpanded", "True")
	for _, e := range g.entries {
		if err := x.entry(e); err != nil {
			return err
		}
	}
	for _, c := range g.children {
		if err := x.group(c, nil, nil); err != nil {
			return err
		}
	}
	if bin != nil {
		x.open("Group")
		x.elem("UUID", base64.StdEncoding.EncodeToString(binUUID))
		x.elem("Name", bin.name)
		x.elem("IconID", "43")
		x.times(x.now, x.now)
		x.elem("EnableAutoType", "false")
		x.elem("EnableSearching", "false")
		for _, e := range bin.entries {
			if err := x.entry(e); err != nil {
				return err
			}
		}
		x.close("Group")
	}
	x.close("Group")
	return nil
}

func (x *xmlWriter) entry(e *importer.Entry) error {
	u, err := x.uuid()
	if err != nil {
		return err
	}
	uuid := base64.StdEncoding.EncodeToString(u)
	x.entryBody(uuid, &e.Item, e.Attachments)
	if len(e.History) > 0 {
		x.open("History")
		for i := range e.History {
			x.entryBody(uuid, &e.History[i], nil)
			x.close("Entry")
		}
		x.close("History")
	}
	x.close("Entry")
	return nil
}

// entryBody writes an <Entry> up to (not including) its History and end
// tag.
func (x *xmlWriter) entryBody(uuid string, it *item.Item, files []importer.File) {
	x.open("Entry")
	x.elem("UUID", uuid)
	x.elem("IconID", "0")
	x.elem("ForegroundColor", "")
	x.elem("BackgroundColor", "")
	x.elem("OverrideURL", "")
	x.elem("Tags", strings.Join(it.Tags, ";"))
	modified := it.Modified
	if modified.IsZero() {
		modified = it.Created
	}
	x.times(it.Created, modified)
	for _, s := range entryStrings(it) {
		x.open("String")
		x.elem("Key", s.key)
		x.value(s.value, s.protected)
		x.close("String")
	}
	used := map[string]bool{}
	for _, f := range files {
		name := uniqueName(f.Name, used)
		sum := sha256.Sum256(f.Data)
		idx, ok := x.binIdx[sum]
		if !ok {
			idx = len(x.bins)
			x.bins = append(x.bins, f.Data)
			x.binIdx[sum] = idx
		}
		x.open("Binary")
		x.elem("Key", name)
		fmt.Fprintf(&x.b, `<Value Ref="%d"/>`, idx)
		x.close("Binary")
	}
	x.open("AutoType")
	x.elem("Enabled", "True")
	x.elem("DataTransferObfuscation", "0")
	x.close("AutoType")
}

// value writes a <Value>, protected (encrypted with the inner stream,
// base64) when asked or when the text holds characters XML 1.0 cannot
// carry.
func (x *xmlWriter) value(v string, protected bool) {
	if !protected && !xmlSafe(v) {
		protected = true
	}
	if !protected {
		x.elem("Value", v)
		return
	}
	b := []byte(v)
	x.stream.XORKeyStream(b, b)
	x.b.WriteString(`<Value Protected="True">`)
	x.b.WriteString(base64.StdEncoding.EncodeToString(b))
	x.b.WriteString(`</Value>`)
}

func xmlSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		ok := r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000
		if !ok {
			return false
		}
	}
	return true
}

// standardKeys are the string keys KeePass gives a meaning to, and the
// ones this writer uses; custom fields with these names get a suffix.
var standardKeys = map[string]bool{"Title": true, "UserName": true, "Password": true, "URL": true, "Notes": true, "otp": true}

// entryStrings lists an item's strings in KeePass form.
func entryStrings(it *item.Item) []kv {
	used := map[string]bool{}
	for k := range standardKeys {
		used[k] = true
	}
	first := ""
	if len(it.URLs) > 0 {
		first = it.URLs[0]
	}
	out := []kv{
		{key: "Title", value: it.Title},
		{key: "UserName", value: it.Username},
		{key: "Password", value: it.Password, protected: true},
		{key: "URL", value: first},
		{key: "Notes", value: it.Notes},
	}
	add := func(key, value string, protected bool) {
		if value == "" {
			return
		}
		out = append(out, kv{key: uniqueName(key, used), value: value, protected: protected})
	}
	for i, u := range it.URLs[min(1, len(it.URLs)):] {
		add("KP2A_URL_"+strconv.Itoa(i+1), u, false)
	}
	if it.TOTP != "" {
		out = append(out, kv{key: "otp", value: otpValue(it), protected: true})
	}
	if c := it.Card; c != nil {
		add("Card Holder", c.Holder, false)
		add("Card Brand", c.Brand, false)
		add("Card Number", c.Number, true)
		add("Card Expiry", c.Expiry, false)
		add("Card CVV", c.CVV, true)
		add("Card PIN", c.PIN, true)
	}
	if d := it.Identity; d != nil {
		for _, f := range []struct{ k, v string }{
			{"First Name", d.FirstName}, {"Last Name", d.LastName}, {"Email", d.Email},
			{"Phone", d.Phone}, {"Address", d.Address}, {"Company", d.Company},
			{"Birthday", d.Birthday}, {"Passport", d.Passport}, {"License", d.License},
			{"National ID", d.NationalID},
		} {
			add(f.k, f.v, false)
		}
	}
	if s := it.SSH; s != nil {
		add("SSH Private Key", s.PrivateKey, true)
		add("SSH Public Key", s.PublicKey, false)
		add("SSH Fingerprint", s.Fingerprint, false)
		add("SSH Passphrase", s.Passphrase, true)
	}
	if len(it.VPN) > 0 {
		add("VPN Profile", string(json.RawMessage(it.VPN)), true)
	}
	for _, f := range it.Fields {
		add(f.Name, f.Value, f.Kind == item.KindHidden || f.Kind == item.KindTOTP)
	}
	return out
}

// uniqueName returns name, or name with " (2)", " (3)"... when taken, and
// marks the result taken.
func uniqueName(name string, used map[string]bool) string {
	n := name
	for i := 2; used[n]; i++ {
		n = fmt.Sprintf("%s (%d)", name, i)
	}
	used[n] = true
	return n
}

// otpValue is the item's TOTP as an otpauth:// URI, which KeePassXC reads
// from the otp attribute. A bare base32 seed gets the default settings.
func otpValue(it *item.Item) string {
	t := strings.TrimSpace(it.TOTP)
	if len(t) >= 8 && strings.EqualFold(t[:8], "otpauth:") {
		return t
	}
	seed := strings.TrimRight(strings.ToUpper(strings.Join(strings.Fields(t), "")), "=")
	q := url.Values{}
	q.Set("secret", seed)
	q.Set("period", "30")
	q.Set("digits", "6")
	return otpauthURI(q, it.Title, it.Username)
}
