package kdbx

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// xmlDecoder walks the KeePass XML document once, in order: protected
// values must be decrypted in document order because they share one key
// stream.
type xmlDecoder struct {
	d        *xml.Decoder
	stream   innerStream
	v4       bool
	binaries [][]byte          // KDBX 4: inner header attachments by index
	metaBins map[string][]byte // KDBX 3.1: Meta/Binaries by ID
	binTotal int64
	recycle  string // the recycle bin group's UUID (base64), if any
	depth    int
	items    int
	groups   int
}

type kv struct {
	key, value string
	protected  bool
}

type binRef struct {
	name, ref string
	data      []byte // an inline value (old files)
	inline    bool
}

type rawEntry struct {
	strs     []kv
	bins     []binRef
	tags     string
	created  time.Time
	modified time.Time
	expires  bool
	expiry   time.Time
	history  []*rawEntry
}

type pending struct {
	e        *rawEntry
	folder   string
	recycled bool
}

// decodeXML reads the document and maps it. binaries are the KDBX 4 inner
// header attachments (nil for KDBX 3.1, whose attachments are in Meta).
func decodeXML(r io.Reader, stream innerStream, binaries [][]byte, v4 bool) (*importer.Result, error) {
	d := xml.NewDecoder(r)
	d.Strict = true
	x := &xmlDecoder{d: d, stream: stream, v4: v4, binaries: binaries, metaBins: map[string][]byte{}}
	var found []pending
	sawRoot := false
	for {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "KeePassFile" {
			return nil, corrupt("XML document starts with <%s>, want <KeePassFile>", se.Name.Local)
		}
		if sawRoot {
			return nil, corrupt("XML has a second <KeePassFile>")
		}
		sawRoot = true
		if found, err = x.readFile(); err != nil {
			return nil, err
		}
	}
	if !sawRoot {
		return nil, corrupt("XML has no <KeePassFile> element")
	}
	return x.result(found), nil
}

// next returns the next token, bounding the nesting depth and turning
// decoder failures into ErrCorrupt.
func (x *xmlDecoder) next() (xml.Token, error) {
	tok, err := x.d.Token()
	if err != nil {
		if err == io.EOF {
			if x.depth != 0 {
				return nil, corrupt("XML ends inside an element")
			}
			return nil, io.EOF
		}
		return nil, payloadErr(err, "XML")
	}
	switch tok.(type) {
	case xml.StartElement:
		x.depth++
		if x.depth > MaxDepth {
			return nil, tooLarge("XML nests more than %d elements deep", MaxDepth)
		}
	case xml.EndElement:
		x.depth--
	}
	return tok, nil
}

func isProtected(se xml.StartElement) bool {
	for _, a := range se.Attr {
		if a.Name.Local == "Protected" {
			return strings.EqualFold(a.Value, "true")
		}
	}
	return false
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// value reads an element's text up to its end. Child elements are
// skipped. A Protected="True" value is base64-decoded and decrypted with
// the inner stream.
func (x *xmlDecoder) value(se xml.StartElement) ([]byte, bool, error) {
	var buf []byte
	for {
		tok, err := x.next()
		if err != nil {
			if err == io.EOF {
				err = corrupt("XML ends inside <%s>", se.Name.Local)
			}
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			buf = append(buf, t...)
		case xml.StartElement:
			if err := x.skip(t); err != nil {
				return nil, false, err
			}
		case xml.EndElement:
			if !isProtected(se) {
				return buf, false, nil
			}
			raw, err := base64.StdEncoding.AppendDecode(nil, bytes.TrimSpace(buf))
			if err != nil {
				return nil, false, corrupt("protected <%s> value is not base64", se.Name.Local)
			}
			x.stream.XORKeyStream(raw, raw)
			return raw, true, nil
		}
	}
}

func (x *xmlDecoder) text(se xml.StartElement) (string, error) {
	b, _, err := x.value(se)
	return string(b), err
}

// skip consumes an element we do not map, still decrypting any protected
// value inside so that the key stream stays in step.
func (x *xmlDecoder) skip(se xml.StartElement) error {
	if isProtected(se) {
		_, _, err := x.value(se)
		return err
	}
	for {
		tok, err := x.next()
		if err != nil {
			if err == io.EOF {
				err = corrupt("XML ends inside <%s>", se.Name.Local)
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := x.skip(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// children calls fn for each child element of the current element until
// its end. fn must consume the child (read, skip or descend).
func (x *xmlDecoder) children(parent string, fn func(xml.StartElement) error) error {
	for {
		tok, err := x.next()
		if err != nil {
			if err == io.EOF {
				err = corrupt("XML ends inside <%s>", parent)
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := fn(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

func (x *xmlDecoder) readFile() ([]pending, error) {
	var out []pending
	err := x.children("KeePassFile", func(se xml.StartElement) error {
		switch se.Name.Local {
		case "Meta":
			return x.readMeta()
		case "Root":
			return x.children("Root", func(se xml.StartElement) error {
				if se.Name.Local != "Group" {
					return x.skip(se)
				}
				_, _, found, err := x.readGroup()
				out = append(out, found...)
				return err
			})
		}
		return x.skip(se)
	})
	return out, err
}

func (x *xmlDecoder) readMeta() error {
	return x.children("Meta", func(se xml.StartElement) error {
		switch se.Name.Local {
		case "RecycleBinUUID":
			s, err := x.text(se)
			s = strings.TrimSpace(s)
			if s != "" && s != "AAAAAAAAAAAAAAAAAAAAAA==" {
				x.recycle = s
			}
			return err
		case "Binaries":
			return x.children("Binaries", func(se xml.StartElement) error {
				if se.Name.Local != "Binary" {
					return x.skip(se)
				}
				return x.readMetaBinary(se)
			})
		}
		return x.skip(se)
	})
}

// readMetaBinary reads a KDBX 3.1 attachment: base64, maybe gzip.
func (x *xmlDecoder) readMetaBinary(se xml.StartElement) error {
	id := attr(se, "ID")
	v, prot, err := x.value(se)
	if err != nil {
		return err
	}
	data := v
	if !prot {
		if data, err = base64.StdEncoding.AppendDecode(nil, bytes.TrimSpace(v)); err != nil {
			return corrupt("attachment %q in Meta is not base64", id)
		}
	}
	if strings.EqualFold(attr(se, "Compressed"), "true") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return corrupt("attachment %q does not decompress: %v", id, err)
		}
		data, err = io.ReadAll(&limitReader{r: zr, n: MaxBinaries - x.binTotal, what: fmt.Sprintf("attachments total more than %d bytes", MaxBinaries)})
		if err != nil {
			return payloadErr(err, fmt.Sprintf("attachment %q", id))
		}
	}
	x.binTotal += int64(len(data))
	if x.binTotal > MaxBinaries {
		return tooLarge("attachments total more than %d bytes", MaxBinaries)
	}
	if len(x.metaBins) >= MaxBinaryCount {
		return tooLarge("more than %d attachments", MaxBinaryCount)
	}
	x.metaBins[id] = data
	return nil
}

// readGroup reads a group. found holds its entries and its subgroups'
// entries in document order, with folders relative to this group.
func (x *xmlDecoder) readGroup() (name, uuid string, found []pending, err error) {
	x.groups++
	if x.groups > MaxGroups {
		return "", "", nil, tooLarge("more than %d groups", MaxGroups)
	}
	err = x.children("Group", func(se xml.StartElement) error {
		switch se.Name.Local {
		case "Name":
			s, err := x.text(se)
			name = s
			return err
		case "UUID":
			s, err := x.text(se)
			uuid = strings.TrimSpace(s)
			return err
		case "Entry":
			e, err := x.readEntry(false)
			if err != nil {
				return err
			}
			found = append(found, pending{e: e})
			return nil
		case "Group":
			cname, cuuid, sub, err := x.readGroup()
			if err != nil {
				return err
			}
			cname = strings.TrimSpace(cname)
			for i := range sub {
				sub[i].folder = joinFolder(cname, sub[i].folder)
				if x.recycle != "" && cuuid == x.recycle {
					sub[i].recycled = true
				}
			}
			found = append(found, sub...)
			return nil
		}
		return x.skip(se)
	})
	return name, uuid, found, err
}

func joinFolder(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

func (x *xmlDecoder) readEntry(inHistory bool) (*rawEntry, error) {
	x.items++
	if x.items > MaxItems {
		return nil, tooLarge("more than %d entries and history versions", MaxItems)
	}
	e := &rawEntry{}
	err := x.children("Entry", func(se xml.StartElement) error {
		switch se.Name.Local {
		case "String":
			var s kv
			err := x.children("String", func(se xml.StartElement) error {
				switch se.Name.Local {
				case "Key":
					k, err := x.text(se)
					s.key = k
					return err
				case "Value":
					v, prot, err := x.value(se)
					s.value, s.protected = string(v), prot
					return err
				}
				return x.skip(se)
			})
			e.strs = append(e.strs, s)
			return err
		case "Binary":
			var b binRef
			err := x.children("Binary", func(se xml.StartElement) error {
				switch se.Name.Local {
				case "Key":
					k, err := x.text(se)
					b.name = k
					return err
				case "Value":
					if ref := attr(se, "Ref"); ref != "" {
						b.ref = strings.TrimSpace(ref)
						return x.skip(se)
					}
					v, prot, err := x.value(se)
					if err != nil {
						return err
					}
					b.inline = true
					if prot {
						b.data = v
					} else if b.data, err = base64.StdEncoding.AppendDecode(nil, bytes.TrimSpace(v)); err != nil {
						return corrupt("inline attachment %q is not base64", b.name)
					}
					return nil
				}
				return x.skip(se)
			})
			e.bins = append(e.bins, b)
			return err
		case "Tags":
			t, err := x.text(se)
			e.tags = t
			return err
		case "Times":
			return x.children("Times", func(se xml.StartElement) error {
				s, err := x.text(se)
				if err != nil {
					return err
				}
				switch se.Name.Local {
				case "CreationTime":
					e.created = x.parseTime(s)
				case "LastModificationTime":
					e.modified = x.parseTime(s)
				case "ExpiryTime":
					e.expiry = x.parseTime(s)
				case "Expires":
					e.expires = strings.EqualFold(strings.TrimSpace(s), "true")
				}
				return nil
			})
		case "History":
			if inHistory {
				return x.skip(se)
			}
			return x.children("History", func(se xml.StartElement) error {
				if se.Name.Local != "Entry" {
					return x.skip(se)
				}
				h, err := x.readEntry(true)
				if err == nil {
					e.history = append(e.history, h)
				}
				return err
			})
		}
		// AutoType, icons, colours, CustomData and the rest have no
		// Safehold equivalent.
		return x.skip(se)
	})
	return e, err
}

// keepassEpoch is 0001-01-01T00:00:00Z in Unix seconds: KDBX 4 stores times
// as base64 of little-endian int64 seconds since then.
const keepassEpoch = -62135596800

// parseTime reads a KDBX 4 binary time or an ISO 8601 time. A time that
// does not parse is treated as unknown (zero).
func (x *xmlDecoder) parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if x.v4 && len(s) == 12 {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 8 {
			secs := int64(binary.LittleEndian.Uint64(b))
			// Year 1 to 9999.
			if secs < 0 || secs > 315537897599 {
				return time.Time{}
			}
			return time.Unix(secs+keepassEpoch, 0).UTC()
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// result maps every entry found.
func (x *xmlDecoder) result(found []pending) *importer.Result {
	res := &importer.Result{}
	for _, p := range found {
		where := describe(p.e, p.folder)
		if p.recycled {
			res.Skipped = append(res.Skipped, importer.Skipped{Where: where, Reason: "in the recycle bin"})
			continue
		}
		it := mapEntry(p.e, p.folder)
		if err := it.Validate(); err != nil {
			res.Skipped = append(res.Skipped, importer.Skipped{Where: where, Reason: err.Error()})
			continue
		}
		ent := importer.Entry{Item: it, Where: where}
		for _, b := range p.e.bins {
			data, ok := b.data, b.inline
			if !ok {
				data, ok = x.binary(b.ref)
			}
			if !ok {
				res.Skipped = append(res.Skipped, importer.Skipped{
					Where:  fmt.Sprintf("attachment '%s' of %s", b.name, where),
					Reason: fmt.Sprintf("refers to attachment %q, which the file does not contain", b.ref),
				})
				continue
			}
			if len(ent.Attachments) >= item.MaxAttachment {
				res.Skipped = append(res.Skipped, importer.Skipped{
					Where:  fmt.Sprintf("attachment '%s' of %s", b.name, where),
					Reason: fmt.Sprintf("more than %d attachments on one entry", item.MaxAttachment),
				})
				continue
			}
			ent.Attachments = append(ent.Attachments, importer.File{Name: b.name, Data: data})
		}
		hist := p.e.history
		if drop := len(hist) - MaxHistory; drop > 0 {
			res.Skipped = append(res.Skipped, importer.Skipped{
				Where:  fmt.Sprintf("history of %s", where),
				Reason: fmt.Sprintf("the %d oldest versions: more than %d versions", drop, MaxHistory),
			})
			hist = hist[drop:]
		}
		for i, h := range hist {
			hi := mapEntry(h, p.folder)
			if err := hi.Validate(); err != nil {
				res.Skipped = append(res.Skipped, importer.Skipped{
					Where:  fmt.Sprintf("history version %d of %s", i+1, where),
					Reason: err.Error(),
				})
				continue
			}
			ent.History = append(ent.History, hi)
		}
		ent.Item.PasswordChanged = passwordChanged(ent.Item, ent.History)
		res.Entries = append(res.Entries, ent)
	}
	return res
}

func (x *xmlDecoder) binary(ref string) ([]byte, bool) {
	if !x.v4 {
		b, ok := x.metaBins[ref]
		return b, ok
	}
	i, err := strconv.Atoi(ref)
	if err != nil || i < 0 || i >= len(x.binaries) {
		return nil, false
	}
	return x.binaries[i], true
}

// passwordChanged is when the current password was first seen: the oldest
// modification time of the unbroken run of versions, newest back, that
// have it.
func passwordChanged(cur item.Item, history []item.Item) time.Time {
	t := cur.Modified
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Password != cur.Password {
			break
		}
		if !history[i].Modified.IsZero() {
			t = history[i].Modified
		}
	}
	return t
}

func stringValue(e *rawEntry, key string) string {
	for _, s := range e.strs {
		if s.key == key {
			return s.value
		}
	}
	return ""
}

func describe(e *rawEntry, folder string) string {
	title := strings.TrimSpace(stringValue(e, "Title"))
	if title == "" {
		title = "(untitled)"
	}
	title = cleanTitle(title)
	if len(title) > 80 {
		title = title[:80] + "…"
	}
	if folder == "" {
		return fmt.Sprintf("entry '%s' at the top level", title)
	}
	return fmt.Sprintf("entry '%s' in group '%s'", title, folder)
}

// cleanTitle replaces line breaks and other control characters, which a
// title may not hold, with spaces.
func cleanTitle(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// mapEntry turns a KeePass entry into an item. It never drops a value:
// strings without a home become custom fields.
func mapEntry(e *rawEntry, folder string) item.Item {
	it := item.Item{Folder: folder, Created: e.created, Modified: e.modified}
	var seed, settings *kv
	otpSeen := false
	for i := range e.strs {
		s := &e.strs[i]
		switch s.key {
		case "Title":
			it.Title = cleanTitle(s.value)
			continue
		case "UserName":
			it.Username = s.value
			continue
		case "Password":
			it.Password = s.value
			continue
		case "Notes":
			it.Notes = s.value
			continue
		case "URL":
			if addURL(&it, s.value) {
				continue
			}
		case "otp":
			if !otpSeen {
				if t, ok := otpToURI(s.value, it.Title, it.Username); ok {
					it.TOTP, otpSeen = t, true
					continue
				}
			}
		case "TOTP Seed":
			seed = s
			continue
		case "TOTP Settings":
			settings = s
			continue
		default:
			if s.key == "KP2A_URL" || strings.HasPrefix(s.key, "KP2A_URL_") {
				if addURL(&it, s.value) {
					continue
				}
			}
		}
		it.Fields = append(it.Fields, field(s))
	}
	if seed != nil || settings != nil {
		uri, ok := "", false
		if !otpSeen && seed != nil {
			st := ""
			if settings != nil {
				st = settings.value
			}
			uri, ok = legacyTOTP(seed.value, st, it.Title, it.Username)
		}
		if ok {
			it.TOTP = uri
		} else {
			for _, s := range []*kv{seed, settings} {
				if s != nil {
					it.Fields = append(it.Fields, field(s))
				}
			}
		}
	}
	for _, t := range strings.FieldsFunc(e.tags, func(r rune) bool { return r == ';' || r == ',' }) {
		if t = strings.TrimSpace(t); t != "" {
			it.Tags = append(it.Tags, t)
		}
	}
	if e.expires && !e.expiry.IsZero() {
		it.Fields = append(it.Fields, item.Field{Name: "Expires", Kind: item.KindDate, Value: e.expiry.Format("2006-01-02")})
	}
	if strings.TrimSpace(it.Title) == "" {
		it.Title = fallbackTitle(it)
	}
	if it.Username != "" || it.Password != "" || len(it.URLs) > 0 {
		it.Type = item.Login
	} else {
		it.Type = item.Note
	}
	it.Normalize()
	return it
}

func field(s *kv) item.Field {
	kind := item.KindText
	if s.protected {
		kind = item.KindHidden
	}
	name := s.key
	if strings.TrimSpace(name) == "" {
		name = "(unnamed)"
	}
	return item.Field{Name: name, Kind: kind, Value: s.value}
}

// addURL adds u as a URL when it parses; false sends it to a custom field.
func addURL(it *item.Item, u string) bool {
	u = strings.TrimSpace(u)
	if u == "" {
		return true
	}
	if _, err := url.Parse(u); err != nil || len(u) > item.MaxValue || len(it.URLs) >= item.MaxURLs {
		return false
	}
	it.URLs = append(it.URLs, u)
	return true
}

func fallbackTitle(it item.Item) string {
	for _, u := range it.URLs {
		if p, err := url.Parse(u); err == nil && p.Hostname() != "" {
			return p.Hostname()
		}
	}
	if t := cleanTitle(strings.TrimSpace(it.Username)); t != "" && len(t) <= item.MaxTitle {
		return t
	}
	return "Untitled entry"
}

// otpToURI reads KeePassXC's otp attribute: an otpauth:// URI, or the
// KeeOtp form "key=SEED&step=30&size=6&otpHashMode=sha256".
func otpToURI(v, title, user string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) >= 8 && strings.EqualFold(v[:8], "otpauth:") {
		return v, true
	}
	q, err := url.ParseQuery(v)
	if err != nil || q.Get("key") == "" {
		return "", false
	}
	return buildOTPURI(q.Get("key"), q.Get("step"), q.Get("size"), q.Get("otpHashMode"), title, user)
}

// legacyTOTP reads the KeeTrayTOTP attributes "TOTP Seed" and "TOTP
// Settings" ("period;digits"). Steam codes ("30;S") have no otpauth form
// and stay custom fields.
func legacyTOTP(seed, settings, title, user string) (string, bool) {
	period, digits := "", ""
	if settings = strings.TrimSpace(settings); settings != "" {
		parts := strings.Split(settings, ";")
		period = parts[0]
		if len(parts) > 1 {
			digits = parts[1]
		}
	}
	return buildOTPURI(seed, period, digits, "", title, user)
}

func buildOTPURI(seed, period, digits, algo, title, user string) (string, bool) {
	seed = strings.ToUpper(strings.Join(strings.Fields(seed), ""))
	seed = strings.TrimRight(seed, "=")
	if seed == "" {
		return "", false
	}
	q := url.Values{}
	q.Set("secret", seed)
	for _, p := range []struct{ name, v string }{{"period", period}, {"digits", digits}} {
		if p.v = strings.TrimSpace(p.v); p.v != "" {
			if n, err := strconv.Atoi(p.v); err != nil || n <= 0 || n > 1000 {
				return "", false
			}
			q.Set(p.name, p.v)
		}
	}
	if algo = strings.TrimSpace(algo); algo != "" {
		switch strings.ToUpper(algo) {
		case "SHA1", "SHA256", "SHA512":
			q.Set("algorithm", strings.ToUpper(algo))
		default:
			return "", false
		}
	}
	return otpauthURI(q, title, user), true
}

// otpauthURI builds otpauth://totp/ISSUER:ACCOUNT?... with the issuer as
// the title.
func otpauthURI(q url.Values, title, user string) string {
	label := title
	if user != "" {
		label = title + ":" + user
	}
	if title != "" {
		q.Set("issuer", title)
	}
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + label, RawQuery: q.Encode()}
	return u.String()
}
