package importer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// table reads a CSV export whose first record names the columns. Columns
// are found by name, so their order does not matter; columns a format does
// not know become custom text fields, so nothing is dropped.
type table struct {
	format string
	r      *csv.Reader
	header []string
	col    map[string]int
	known  map[string]bool
}

// openTable reads the header. It strips a UTF-8 byte order mark and checks
// that the required columns are there.
func openTable(r io.Reader, format string, required, optional []string) (*table, error) {
	br := bufio.NewReader(bounded(r, MaxFileSize))
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	t := &table{format: format, r: cr, col: map[string]int{}, known: map[string]bool{}}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, formatErr("%s: the file is empty; export again from the source", format)
	}
	if err != nil {
		return nil, t.readErr(err)
	}
	t.header = header
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := t.col[h]; !dup && h != "" {
			t.col[h] = i
		}
	}
	for _, c := range required {
		if _, ok := t.col[c]; !ok {
			// The first line may be data (a file with no header row,
			// or the wrong format chosen), so it is never quoted: only
			// its column count and the missing name are reported.
			return nil, formatErr("%s: line 1: no %q column among its %d columns; is this a %s export with its header row?",
				format, c, len(header), format)
		}
		t.known[c] = true
	}
	for _, c := range optional {
		t.known[c] = true
	}
	return t, nil
}

func (t *table) readErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// ParseError names the line and column; it never quotes the data.
		return fmt.Errorf("%w: %s: %w", ErrFormat, t.format, err)
	}
	return fmt.Errorf("%s: %w", t.format, err)
}

// row is one record with the line it starts on.
type row struct {
	t     *table
	rec   []string
	line  int
	where string
}

// next returns the next record; io.EOF at the end. A record whose field
// count differs from the header's comes back with a non-empty bad reason.
func (t *table) next() (*row, string, error) {
	rec, err := t.r.Read()
	if err == io.EOF {
		return nil, "", io.EOF
	}
	if err != nil {
		return nil, "", t.readErr(err)
	}
	line, _ := t.r.FieldPos(0)
	r := &row{t: t, rec: rec, line: line, where: "line " + strconv.Itoa(line)}
	if len(rec) != len(t.header) {
		return r, fmt.Sprintf("has %d fields but the header has %d; check for an unquoted comma", len(rec), len(t.header)), nil
	}
	return r, "", nil
}

// get returns a column's value, or "" when the column is absent.
func (r *row) get(name string) string {
	i, ok := r.t.col[name]
	if !ok || i >= len(r.rec) {
		return ""
	}
	return r.rec[i]
}

// extras appends every column the format does not know as a custom text
// field named by its header.
func (r *row) extras(it *item.Item) {
	for i, h := range r.t.header {
		key := strings.ToLower(strings.TrimSpace(h))
		if r.t.known[key] || r.t.col[key] != i || i >= len(r.rec) {
			continue
		}
		addField(it, h, item.KindText, r.rec[i])
	}
}

// readTable runs one function per good record, collecting the result.
func readTable(r io.Reader, format string, required, optional []string, entry func(*row) (Entry, error)) (*Result, error) {
	t, err := openTable(r, format, required, optional)
	if err != nil {
		return nil, err
	}
	var c collector
	for {
		rw, bad, err := t.next()
		if err == io.EOF {
			return &c.res, nil
		}
		if err != nil {
			return nil, err
		}
		if err := c.full(); err != nil {
			return nil, fmt.Errorf("%s: %w", format, err)
		}
		if bad != "" {
			c.skip(rw.where, "%s", bad)
			continue
		}
		e, err := entry(rw)
		if err != nil {
			c.skip(rw.where, "%v", err)
			continue
		}
		e.Where = rw.where
		c.add(e)
	}
}

// ChromeCSV reads the password export of Chrome, Chromium, Edge and other
// Chromium browsers: name,url,username,password and, in newer versions,
// note.
func ChromeCSV(r io.Reader) (*Result, error) {
	return readTable(r, "chrome csv", []string{"url", "username", "password"}, []string{"name", "note"},
		func(rw *row) (Entry, error) {
			it := item.Item{
				Type:     item.Login,
				Title:    titleFrom(rw.get("name"), rw.get("url")),
				Username: rw.get("username"),
				Password: rw.get("password"),
				Notes:    rw.get("note"),
			}
			if u := rw.get("url"); u != "" {
				it.URLs = []string{u}
			}
			rw.extras(&it)
			return Entry{Item: it}, nil
		})
}

// FirefoxCSV reads Firefox's "Export Logins" file. The title is the host of
// the URL; timePasswordChanged (milliseconds since the epoch) becomes
// PasswordChanged and timeCreated becomes Created.
func FirefoxCSV(r io.Reader) (*Result, error) {
	return readTable(r, "firefox csv", []string{"url", "username", "password"},
		[]string{"httprealm", "formactionorigin", "guid", "timecreated", "timelastused", "timepasswordchanged"},
		func(rw *row) (Entry, error) {
			u := rw.get("url")
			it := item.Item{
				Type:     item.Login,
				Title:    titleFrom("", u),
				Username: rw.get("username"),
				Password: rw.get("password"),
			}
			if u != "" {
				it.URLs = []string{u}
			}
			addField(&it, "HTTP realm", item.KindText, rw.get("httprealm"))
			if fa := rw.get("formactionorigin"); fa != "" && fa != u {
				addField(&it, "form action", item.KindURL, fa)
			}
			var err error
			if it.Created, err = msColumn(rw, "timecreated"); err != nil {
				return Entry{}, err
			}
			if it.PasswordChanged, err = msColumn(rw, "timepasswordchanged"); err != nil {
				return Entry{}, err
			}
			if _, err = msColumn(rw, "timelastused"); err != nil {
				return Entry{}, err
			}
			rw.extras(&it)
			return Entry{Item: it}, nil
		})
}

func msColumn(rw *row, name string) (t time.Time, err error) {
	s := strings.TrimSpace(rw.get(name))
	if s == "" {
		return t, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return t, fmt.Errorf("%s is not a number of milliseconds", name)
	}
	return unixMilli(ms), nil
}

// BitwardenCSV reads Bitwarden's CSV export (personal:
// folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,
// login_password,login_totp; organisation exports have collections instead
// of folder). Multiple URIs in login_uri are comma-separated; fields holds
// "name: value" lines, imported as hidden fields because the CSV does not
// say which were hidden.
func BitwardenCSV(r io.Reader) (*Result, error) {
	return readTable(r, "bitwarden csv", []string{"type", "name", "login_uri", "login_username", "login_password"},
		[]string{"folder", "favorite", "notes", "fields", "reprompt", "login_totp", "collections"},
		func(rw *row) (Entry, error) {
			it := item.Item{
				Title:    rw.get("name"),
				Notes:    rw.get("notes"),
				Folder:   rw.get("folder"),
				Favorite: rw.get("favorite") == "1" || strings.EqualFold(rw.get("favorite"), "true"),
			}
			switch typ := strings.ToLower(strings.TrimSpace(rw.get("type"))); typ {
			case "", "login":
				it.Type = item.Login
			case "note", "securenote":
				it.Type = item.Note
			default:
				return Entry{}, fmt.Errorf("type %q is not login or note; export this item as JSON", typ)
			}
			uris, err := splitURIs(rw.get("login_uri"))
			if err != nil {
				return Entry{}, err
			}
			login := struct{ user, pass, totp string }{rw.get("login_username"), rw.get("login_password"), rw.get("login_totp")}
			if it.Type == item.Login {
				it.URLs, it.Username, it.Password, it.TOTP = uris, login.user, login.pass, login.totp
			} else {
				for _, u := range uris {
					addField(&it, "url", item.KindURL, u)
				}
				addField(&it, "username", item.KindText, login.user)
				addField(&it, "password", item.KindHidden, login.pass)
				addField(&it, "totp", item.KindTOTP, login.totp)
			}
			it.Title = titleFrom(it.Title, uris...)
			for _, l := range strings.Split(strings.ReplaceAll(rw.get("fields"), "\r\n", "\n"), "\n") {
				if strings.TrimSpace(l) == "" {
					continue
				}
				name, value, _ := strings.Cut(l, ": ")
				it.Fields = append(it.Fields, item.Field{Name: name, Kind: item.KindHidden, Value: value})
			}
			for _, col := range splitList(rw.get("collections")) {
				addField(&it, "collection", item.KindText, col)
			}
			rw.extras(&it)
			return Entry{Item: it}, nil
		})
}

// splitURIs splits Bitwarden's login_uri column, which holds one URI or
// several as one CSV row.
func splitURIs(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if !strings.Contains(s, ",") {
		return []string{s}, nil
	}
	cr := csv.NewReader(strings.NewReader(s))
	cr.LazyQuotes = true
	rec, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("login_uri does not split into URIs")
	}
	var out []string
	for _, u := range rec {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
