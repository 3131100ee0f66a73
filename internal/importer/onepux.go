package importer

import (
	"archive/zip"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// MaxAttachmentSize bounds one attachment read from a 1PUX archive.
const MaxAttachmentSize = 64 << 20

// 1Password item categories that map onto Safehold types; the rest become
// notes or logins by what they hold.
var opCategories = map[string]item.Type{
	"001": item.Login,    // Login
	"002": item.Card,     // Credit Card
	"003": item.Note,     // Secure Note
	"004": item.Identity, // Identity
	"005": item.Login,    // Password
	"006": item.Note,     // Document
	"102": item.Login,    // Database
	"109": item.Login,    // Wireless Router
	"110": item.Login,    // Server
	"111": item.Login,    // Email Account
	"112": item.Login,    // API Credential
	"114": item.SSHKey,   // SSH Key
}

type opExport struct {
	Accounts []struct {
		Attrs struct {
			Name        string `json:"name"`
			AccountName string `json:"accountName"`
		} `json:"attrs"`
		Vaults []struct {
			Attrs struct {
				Name string `json:"name"`
			} `json:"attrs"`
			Items []json.RawMessage `json:"items"`
		} `json:"vaults"`
	} `json:"accounts"`
}

type opItem struct {
	FavIndex     int    `json:"favIndex"`
	CreatedAt    int64  `json:"createdAt"`
	UpdatedAt    int64  `json:"updatedAt"`
	Trashed      bool   `json:"trashed"`
	State        string `json:"state"`
	CategoryUUID string `json:"categoryUuid"`
	Details      struct {
		LoginFields []struct {
			Value       string `json:"value"`
			ID          string `json:"id"`
			Name        string `json:"name"`
			FieldType   string `json:"fieldType"`
			Designation string `json:"designation"`
		} `json:"loginFields"`
		NotesPlain string `json:"notesPlain"`
		Password   string `json:"password"`
		Sections   []struct {
			Title  string `json:"title"`
			Name   string `json:"name"`
			Fields []struct {
				Title string                     `json:"title"`
				ID    string                     `json:"id"`
				Value map[string]json.RawMessage `json:"value"`
			} `json:"fields"`
		} `json:"sections"`
		PasswordHistory    []opHistory `json:"passwordHistory"`
		DocumentAttributes *opFile     `json:"documentAttributes"`
	} `json:"details"`
	Overview struct {
		Title string `json:"title"`
		URL   string `json:"url"`
		URLs  []struct {
			Label string `json:"label"`
			URL   string `json:"url"`
		} `json:"urls"`
		Tags []string `json:"tags"`
	} `json:"overview"`
}

type opHistory struct {
	Value string `json:"value"`
	Time  int64  `json:"time"`
}

type opFile struct {
	FileName      string `json:"fileName"`
	DocumentID    string `json:"documentId"`
	DecryptedSize int64  `json:"decryptedSize"`
}

type opAddress struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	Country string `json:"country"`
	Zip     string `json:"zip"`
	State   string `json:"state"`
}

type opSSHKey struct {
	PrivateKey string `json:"privateKey"`
	Metadata   struct {
		PublicKey   string `json:"publicKey"`
		Fingerprint string `json:"fingerprint"`
	} `json:"metadata"`
}

// onePUXReader reads one archive within a budget of decompressed bytes.
type onePUXReader struct {
	zr     *zip.Reader
	files  map[string]*zip.File // documentId → member under files/
	budget int64
	c      collector
}

// OnePUX reads a 1Password 1PUX export: a zip holding export.data (JSON:
// accounts → vaults → items) and the attached files under files/. Vaults
// become folders (prefixed by the account name when there are several
// accounts); attachments become Entry.Attachments; password history
// becomes Entry.History. Every read from the archive is bounded: at most
// MaxZipFiles members, MaxAttachmentSize per attachment and MaxFileSize
// decompressed in all, counted as it is read rather than trusted from the
// archive's headers.
func OnePUX(r io.ReaderAt, size int64) (*Result, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: 1pux: not a zip archive (%v); export again from 1Password choosing 1PUX", ErrFormat, err)
	}
	if len(zr.File) > MaxZipFiles {
		return nil, fmt.Errorf("1pux: %w: %d files in the archive, more than %d", ErrTooLarge, len(zr.File), MaxZipFiles)
	}
	p := &onePUXReader{zr: zr, files: map[string]*zip.File{}, budget: MaxFileSize}
	var data *zip.File
	for _, f := range zr.File {
		switch {
		case f.Name == "export.data":
			data = f
		case strings.HasPrefix(f.Name, "files/"):
			id, _, ok := strings.Cut(strings.TrimPrefix(f.Name, "files/"), "__")
			if ok && id != "" {
				if _, dup := p.files[id]; !dup {
					p.files[id] = f
				}
			}
		}
	}
	if data == nil {
		return nil, formatErr("1pux: no export.data in the archive; is this a 1PUX export?")
	}
	raw, err := p.read(data, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("1pux: export.data: %w", err)
	}
	var exp opExport
	if err := json.Unmarshal(raw, &exp); err != nil {
		return nil, jsonErr("1pux: export.data", raw, err)
	}
	n := 0
	for _, a := range exp.Accounts {
		for _, v := range a.Vaults {
			n += len(v.Items)
		}
	}
	if n > MaxEntries {
		return nil, fmt.Errorf("1pux: %w: %d items, more than %d; export fewer vaults at a time", ErrTooLarge, n, MaxEntries)
	}
	for ai, a := range exp.Accounts {
		for vi, v := range a.Vaults {
			vault := v.Attrs.Name
			if vault == "" {
				vault = fmt.Sprintf("vault %d", vi+1)
			}
			folder := vault
			if len(exp.Accounts) > 1 {
				acct := a.Attrs.AccountName
				if acct == "" {
					acct = a.Attrs.Name
				}
				if acct == "" {
					acct = fmt.Sprintf("account %d", ai+1)
				}
				folder = strings.ReplaceAll(acct, "/", "-") + "/" + vault
			}
			for ii, rawItem := range v.Items {
				where := fmt.Sprintf("vault %q item %d", vault, ii+1)
				var named struct {
					Overview struct{ Title string }
				}
				if json.Unmarshal(rawItem, &named) == nil && named.Overview.Title != "" {
					where = fmt.Sprintf("vault %q item %d %q", vault, ii+1, oneLine(named.Overview.Title))
				}
				var oi opItem
				if err := json.Unmarshal(rawItem, &oi); err != nil {
					p.c.skip(where, "%s", jsonErr("", rawItem, err))
					continue
				}
				where = fmt.Sprintf("vault %q item %d %q", vault, ii+1, oneLine(oi.Overview.Title))
				e, err := p.entry(&oi, where)
				if errors.Is(err, ErrTooLarge) {
					return nil, fmt.Errorf("1pux: %s: %w", where, err)
				}
				if err != nil {
					p.c.skip(where, "%v", err)
					continue
				}
				e.Item.Folder = folder
				e.Where = where
				p.c.add(e)
			}
		}
	}
	return &p.c.res, nil
}

// read decompresses one member, at most limit bytes and within the budget
// left for the whole archive.
func (p *onePUXReader) read(f *zip.File, limit int64) ([]byte, error) {
	if limit > p.budget {
		limit = p.budget
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d left to read", ErrTooLarge, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	defer rc.Close()
	// The header's size is a hint; the limit is enforced on what is read.
	data, err := io.ReadAll(bounded(rc, limit))
	if err != nil {
		return nil, err
	}
	p.budget -= int64(len(data))
	return data, nil
}

func (p *onePUXReader) entry(oi *opItem, where string) (Entry, error) {
	d := &oi.Details
	typ, ok := opCategories[oi.CategoryUUID]
	if !ok {
		typ = item.Note
		for _, lf := range d.LoginFields {
			if lf.Designation == "password" && lf.Value != "" {
				typ = item.Login
			}
		}
	}
	it := item.Item{
		Type:     typ,
		Title:    oi.Overview.Title,
		Notes:    d.NotesPlain,
		Favorite: oi.FavIndex > 0,
		Created:  unixSec(oi.CreatedAt),
		Modified: unixSec(oi.UpdatedAt),
		Tags:     append([]string(nil), oi.Overview.Tags...),
	}
	if oi.Trashed || oi.State == "deleted" {
		t := it.Modified
		if t.IsZero() {
			t = time.Unix(0, 0).UTC()
		}
		it.Trashed = &t
	}
	if oi.State == "archived" {
		it.Tags = append(it.Tags, "archived")
	}
	switch typ {
	case item.Card:
		it.Card = &item.CardData{}
	case item.Identity:
		it.Identity = &item.IdentityData{}
	case item.SSHKey:
		it.SSH = &item.SSHData{}
	}
	for _, u := range oi.Overview.URLs {
		if u.URL == "" {
			continue
		}
		it.URLs = append(it.URLs, u.URL)
	}
	if u := oi.Overview.URL; u != "" && !slices.Contains(it.URLs, u) {
		it.URLs = append([]string{u}, it.URLs...)
	}
	for _, lf := range d.LoginFields {
		switch {
		case lf.Designation == "username" && it.Username == "":
			it.Username = lf.Value
		case lf.Designation == "password" && it.Password == "":
			it.Password = lf.Value
		default:
			name := lf.Name
			if name == "" {
				name = lf.Designation
			}
			kind := item.KindText
			if lf.FieldType == "P" {
				kind = item.KindHidden
			}
			addField(&it, name, kind, lf.Value)
		}
	}
	if d.Password != "" {
		if it.Password == "" {
			it.Password = d.Password
		} else if d.Password != it.Password {
			addField(&it, "password", item.KindHidden, d.Password)
		}
	}
	var files []opFile
	if d.DocumentAttributes != nil {
		files = append(files, *d.DocumentAttributes)
	}
	for _, s := range d.Sections {
		for _, f := range s.Fields {
			name := f.Title
			if name == "" {
				name = f.ID
			}
			if err := p.field(&it, f.ID, name, f.Value, &files); err != nil {
				return Entry{}, fmt.Errorf("field %q: %w", name, err)
			}
		}
	}
	e := Entry{Item: it}
	hist := slices.Clone(d.PasswordHistory)
	slices.SortStableFunc(hist, func(a, b opHistory) int { return cmp.Compare(a.Time, b.Time) })
	for _, h := range hist {
		e.History = append(e.History, item.Item{Type: it.Type, Title: titleFrom(it.Title, it.URLs...),
			Username: it.Username, Password: h.Value, Modified: unixSec(h.Time)})
	}
	for _, f := range files {
		if len(e.Attachments) >= item.MaxAttachment {
			p.c.skip(where, "attachment %q not imported: more than %d attachments", f.FileName, item.MaxAttachment)
			continue
		}
		zf, ok := p.files[f.DocumentID]
		if !ok {
			p.c.skip(where, "attachment %q is listed but not in the archive", f.FileName)
			continue
		}
		data, err := p.read(zf, MaxAttachmentSize)
		if errors.Is(err, ErrTooLarge) && p.budget >= MaxAttachmentSize {
			p.c.skip(where, "attachment %q not imported: larger than %d bytes", f.FileName, MaxAttachmentSize)
			continue
		}
		if err != nil {
			return Entry{}, fmt.Errorf("attachment %q: %w", f.FileName, err)
		}
		name := f.FileName
		if name == "" {
			_, name, _ = strings.Cut(zf.Name, "__")
		}
		e.Attachments = append(e.Attachments, File{Name: name, Data: data})
	}
	return e, nil
}

// field places one section field: into the item's own fields where the
// category has a place for it, else into a custom field of the matching
// kind. Empty values are left out.
func (p *onePUXReader) field(it *item.Item, id, name string, value map[string]json.RawMessage, files *[]opFile) error {
	for _, kind := range slices.Sorted(maps.Keys(value)) {
		raw := value[kind]
		if string(raw) == "null" {
			continue
		}
		var s string
		var num int64
		isStr := json.Unmarshal(raw, &s) == nil
		isNum := !isStr && json.Unmarshal(raw, &num) == nil
		switch kind {
		case "file":
			var f opFile
			if err := json.Unmarshal(raw, &f); err != nil {
				return err
			}
			*files = append(*files, f)
			continue
		case "date":
			if isNum {
				if t := unixSec(num); !t.IsZero() {
					if it.Identity != nil && id == "birthdate" && it.Identity.Birthday == "" {
						it.Identity.Birthday = t.Format("2006-01-02")
						continue
					}
					addField(it, name, item.KindDate, t.Format("2006-01-02"))
					continue
				}
			}
		case "monthYear":
			if isNum && num > 0 {
				s = fmt.Sprintf("%02d/%04d", num%100, num/100)
				isStr = true
			}
		case "address":
			var a opAddress
			if !isStr && json.Unmarshal(raw, &a) == nil {
				s, isStr = joinAddress(a.Street, "", "", a.City, a.State, a.Zip, a.Country), true
			}
		case "email":
			var em struct {
				Address string `json:"email_address"`
			}
			if !isStr && json.Unmarshal(raw, &em) == nil {
				s, isStr = em.Address, true
			}
		case "sshKey":
			var k opSSHKey
			if !isStr && json.Unmarshal(raw, &k) == nil {
				if it.SSH != nil && it.SSH.PrivateKey == "" {
					it.SSH.PrivateKey, it.SSH.PublicKey, it.SSH.Fingerprint = k.PrivateKey, k.Metadata.PublicKey, k.Metadata.Fingerprint
				} else {
					addField(it, name, item.KindHidden, k.PrivateKey)
					addField(it, name+" public key", item.KindText, k.Metadata.PublicKey)
				}
				continue
			}
		}
		if !isStr {
			if isNum {
				s = strconv.FormatInt(num, 10)
			} else {
				s = string(raw) // an unknown structure, kept as its JSON
			}
		}
		if s == "" || p.place(it, id, kind, s) {
			continue
		}
		switch kind {
		case "concealed", "creditCardNumber":
			addField(it, name, item.KindHidden, s)
		case "totp":
			if it.TOTP == "" {
				it.TOTP = s
			} else {
				addField(it, name, item.KindTOTP, s)
			}
		case "url":
			addField(it, name, item.KindURL, s)
		default:
			addField(it, name, item.KindText, s)
		}
	}
	return nil
}

// place puts a value with a known field id into the item's own fields.
func (p *onePUXReader) place(it *item.Item, id, kind, s string) bool {
	set := func(dst *string) bool {
		if *dst != "" {
			return false
		}
		*dst = s
		return true
	}
	if c := it.Card; c != nil {
		switch id {
		case "cardholder":
			return set(&c.Holder)
		case "type":
			return set(&c.Brand)
		case "ccnum":
			return set(&c.Number)
		case "cvv":
			return set(&c.CVV)
		case "expiry":
			return set(&c.Expiry)
		case "pin":
			return set(&c.PIN)
		}
	}
	if d := it.Identity; d != nil {
		switch id {
		case "firstname":
			return set(&d.FirstName)
		case "lastname":
			return set(&d.LastName)
		case "email":
			return set(&d.Email)
		case "company":
			return set(&d.Company)
		case "address":
			return set(&d.Address)
		case "defphone", "cellphone", "homephone", "busphone":
			return set(&d.Phone)
		case "username":
			return set(&it.Username)
		}
	}
	if kind == "totp" {
		return false
	}
	switch id {
	case "username":
		return it.Type == item.Login && set(&it.Username)
	case "password":
		return it.Type == item.Login && set(&it.Password)
	}
	return false
}
