package importer

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/safehold/safehold/internal/item"
)

// Bounds on what any parser in this package reads. Values that break an
// item's own limits (item.MaxValue, item.MaxFields...) are not truncated:
// the entry is listed in Result.Skipped with the reason.
const (
	// MaxFileSize bounds an export file, and the decompressed size of
	// everything read from a 1PUX archive.
	MaxFileSize = 256 << 20
	// MaxEntries bounds the entries of one export.
	MaxEntries = 200_000
	// MaxZipFiles bounds the members of a 1PUX archive.
	MaxZipFiles = 100_000
	// MaxStoreFiles bounds the files a pass store may hold.
	MaxStoreFiles = 200_000
	// MaxHistory bounds the earlier versions kept per entry (Bitwarden and
	// 1PUX password history): the newest are kept and the rest are listed
	// in Result.Skipped, as the KeePass reader does.
	MaxHistory = 1000
)

// ErrTooLarge means an input is larger than this package reads.
var ErrTooLarge = errors.New("input too large")

// ErrFormat means an input is not the format it was read as, or is broken
// as a whole (not just one entry).
var ErrFormat = errors.New("malformed export")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// limitedReader reads at most n bytes and then fails with ErrTooLarge,
// rather than ending quietly as io.LimitReader does.
type limitedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// One more byte tells a file of exactly n bytes from a longer one.
		var b [1]byte
		if k, err := l.r.Read(b[:]); k > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max)
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

func bounded(r io.Reader, n int64) io.Reader { return &limitedReader{r: r, n: n, max: n} }

// readAll reads a whole export, bounded by MaxFileSize.
func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(bounded(r, MaxFileSize))
	if err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	return data, nil
}

// collector gathers a Result, validating every entry on the way in.
type collector struct {
	res Result
}

func (c *collector) skip(where, format string, args ...any) {
	c.res.Skipped = append(c.res.Skipped, Skipped{Where: where, Reason: fmt.Sprintf(format, args...)})
}

// full reports whether one more entry would pass MaxEntries.
func (c *collector) full() error {
	if len(c.res.Entries)+len(c.res.Skipped) >= MaxEntries {
		return fmt.Errorf("%w: more than %d entries; split the export", ErrTooLarge, MaxEntries)
	}
	return nil
}

// add tidies an entry, validates it and its history, and keeps it or lists
// it as skipped with the validation error as the reason.
func (c *collector) add(e Entry) {
	tidy(&e.Item)
	if err := e.Item.Validate(); err != nil {
		c.skip(e.Where, "%v", err)
		return
	}
	// History is oldest first: keep the newest MaxHistory versions.
	all, first := e.History, 0
	if drop := len(all) - MaxHistory; drop > 0 {
		c.skip("history of "+e.Where, "the %d oldest versions: more than %d versions", drop, MaxHistory)
		first = drop
	}
	hist := all[:0:0]
	for i := first; i < len(all); i++ {
		h := all[i]
		tidy(&h)
		if err := h.Validate(); err != nil {
			c.skip(fmt.Sprintf("%s, version %d", e.Where, i+1), "earlier version not kept: %v", err)
			continue
		}
		hist = append(hist, h)
	}
	if len(hist) == 0 {
		hist = nil
	}
	e.History = hist
	c.res.Entries = append(c.res.Entries, e)
}

// tidy makes the small repairs that keep a value rather than lose the item:
// line breaks in a title become spaces, a missing title comes from the
// first URL's host, URLs and tags that Safehold cannot hold become custom
// fields, and custom field names lose control characters.
func tidy(it *item.Item) {
	it.Title = oneLine(it.Title)
	if strings.TrimSpace(it.Title) == "" {
		it.Title = titleFrom("", it.URLs...)
	}
	var urls []string
	for _, u := range it.URLs {
		if _, err := url.Parse(strings.TrimSpace(u)); err != nil {
			it.Fields = append(it.Fields, item.Field{Name: "url", Kind: item.KindText, Value: u})
			continue
		}
		urls = append(urls, u)
	}
	it.URLs = urls
	var tags []string
	for _, t := range it.Tags {
		if strings.ContainsAny(t, "\x00\r\n,") {
			it.Fields = append(it.Fields, item.Field{Name: "tag", Kind: item.KindText, Value: t})
			continue
		}
		tags = append(tags, t)
	}
	it.Tags = tags
	for i := range it.Fields {
		it.Fields[i].Name = fieldName(it.Fields[i].Name)
	}
	it.Finish()
}

// oneLine replaces line breaks and NULs with spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\x00\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == 0 || r == '\r' || r == '\n' }), " ")
}

// fieldName makes a usable custom field name: control characters become
// spaces, and an empty name becomes "field".
func fieldName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s = strings.TrimSpace(s); s == "" {
		return "field"
	}
	return s
}

// titleFrom returns title, or else the host of the first URL that has one,
// or else the first URL, or else "Untitled".
func titleFrom(title string, urls ...string) string {
	if t := strings.TrimSpace(oneLine(title)); t != "" {
		return t
	}
	for _, u := range urls {
		if h := host(u); h != "" {
			return h
		}
	}
	for _, u := range urls {
		if t := strings.TrimSpace(oneLine(u)); t != "" && len(t) <= item.MaxTitle {
			return t
		}
	}
	return "Untitled"
}

// host returns the host name of a URL, or "".
func host(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// addField appends a custom field unless its value is empty.
func addField(it *item.Item, name string, kind item.FieldKind, value string) {
	if value == "" {
		return
	}
	it.Fields = append(it.Fields, item.Field{Name: name, Kind: kind, Value: value})
}

// unixMilli turns milliseconds since the epoch into a time, or the zero
// time for zero or nonsense.
func unixMilli(ms int64) time.Time {
	if ms <= 0 || ms > 1<<50 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// unixSec turns seconds since the epoch into a time, or the zero time.
func unixSec(s int64) time.Time {
	if s <= 0 || s > 1<<40 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
