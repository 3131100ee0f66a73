package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// Bitwarden item types.
const (
	bwLogin    = 1
	bwNote     = 2
	bwCard     = 3
	bwIdentity = 4
	bwSSHKey   = 5
)

// Bitwarden custom field types.
const (
	bwText    = 0
	bwHidden  = 1
	bwBoolean = 2
	bwLinked  = 3
)

// bwExport is the top level of an unencrypted Bitwarden JSON export.
type bwExport struct {
	Encrypted         bool              `json:"encrypted"`
	PasswordProtected bool              `json:"passwordProtected,omitempty"`
	Folders           []bwFolder        `json:"folders,omitempty"`
	Collections       []bwFolder        `json:"collections,omitempty"`
	Items             []json.RawMessage `json:"items"`
}

type bwFolder struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type bwItem struct {
	ID              string          `json:"id,omitempty"`
	OrganizationID  *string         `json:"organizationId"`
	FolderID        *string         `json:"folderId"`
	Type            int             `json:"type"`
	Reprompt        int             `json:"reprompt"`
	Name            string          `json:"name"`
	Notes           *string         `json:"notes"`
	Favorite        bool            `json:"favorite"`
	Fields          []bwField       `json:"fields,omitempty"`
	Login           json.RawMessage `json:"login,omitempty"`
	SecureNote      json.RawMessage `json:"secureNote,omitempty"`
	Card            json.RawMessage `json:"card,omitempty"`
	Identity        json.RawMessage `json:"identity,omitempty"`
	SSHKey          json.RawMessage `json:"sshKey,omitempty"`
	PasswordHistory []bwHistory     `json:"passwordHistory,omitempty"`
	CollectionIDs   []string        `json:"collectionIds,omitempty"`
	RevisionDate    jsonTime        `json:"revisionDate"`
	CreationDate    jsonTime        `json:"creationDate"`
	DeletedDate     jsonTime        `json:"deletedDate"`
}

type bwField struct {
	Name     *string `json:"name"`
	Value    *string `json:"value"`
	Type     int     `json:"type"`
	LinkedID *int    `json:"linkedId"`
}

type bwHistory struct {
	LastUsedDate jsonTime `json:"lastUsedDate"`
	Password     string   `json:"password"`
}

type bwURI struct {
	Match *int   `json:"match"`
	URI   string `json:"uri"`
}

type bwLoginData struct {
	URIs                 []bwURI         `json:"uris,omitempty"`
	Username             string          `json:"username,omitempty"`
	Password             string          `json:"password,omitempty"`
	TOTP                 string          `json:"totp,omitempty"`
	PasswordRevisionDate jsonTime        `json:"passwordRevisionDate"`
	Fido2Credentials     json.RawMessage `json:"fido2Credentials,omitempty"`
}

type bwCardData struct {
	CardholderName string `json:"cardholderName,omitempty"`
	Brand          string `json:"brand,omitempty"`
	Number         string `json:"number,omitempty"`
	ExpMonth       string `json:"expMonth,omitempty"`
	ExpYear        string `json:"expYear,omitempty"`
	Code           string `json:"code,omitempty"`
}

type bwIdentityData struct {
	Title          string `json:"title,omitempty"`
	FirstName      string `json:"firstName,omitempty"`
	MiddleName     string `json:"middleName,omitempty"`
	LastName       string `json:"lastName,omitempty"`
	Address1       string `json:"address1,omitempty"`
	Address2       string `json:"address2,omitempty"`
	Address3       string `json:"address3,omitempty"`
	City           string `json:"city,omitempty"`
	State          string `json:"state,omitempty"`
	PostalCode     string `json:"postalCode,omitempty"`
	Country        string `json:"country,omitempty"`
	Company        string `json:"company,omitempty"`
	Email          string `json:"email,omitempty"`
	Phone          string `json:"phone,omitempty"`
	SSN            string `json:"ssn,omitempty"`
	Username       string `json:"username,omitempty"`
	PassportNumber string `json:"passportNumber,omitempty"`
	LicenseNumber  string `json:"licenseNumber,omitempty"`
}

type bwSSHKeyData struct {
	PrivateKey     string `json:"privateKey,omitempty"`
	PublicKey      string `json:"publicKey,omitempty"`
	KeyFingerprint string `json:"keyFingerprint,omitempty"`
}

// bwLinkedNames names the login fields a linked custom field points at.
var bwLinkedNames = map[int]string{100: "username", 101: "password"}

// BitwardenJSON reads an unencrypted Bitwarden JSON export (personal or
// organisation). Folders become Folder paths, login URIs URLs, password
// history earlier versions, and collections custom "collection" fields.
// An encrypted export is refused: export again choosing "JSON", not
// "JSON (Encrypted)".
func BitwardenJSON(r io.Reader) (*Result, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, fmt.Errorf("bitwarden json: %w", err)
	}
	var exp bwExport
	if err := json.Unmarshal(data, &exp); err != nil {
		return nil, jsonErr("bitwarden json", data, err)
	}
	if exp.Encrypted || exp.PasswordProtected {
		return nil, formatErr("bitwarden json: this export is encrypted; export again choosing the format \"JSON\", not \"JSON (Encrypted)\"")
	}
	if exp.Items == nil {
		return nil, formatErr("bitwarden json: no \"items\" list; is this a Bitwarden JSON export?")
	}
	if len(exp.Items) > MaxEntries {
		return nil, fmt.Errorf("bitwarden json: %w: %d items, more than %d; split the export", ErrTooLarge, len(exp.Items), MaxEntries)
	}
	folders := map[string]string{}
	for _, f := range exp.Folders {
		folders[f.ID] = f.Name
	}
	collections := map[string]string{}
	for _, c := range exp.Collections {
		collections[c.ID] = c.Name
	}
	var c collector
	for i, raw := range exp.Items {
		where := fmt.Sprintf("item %d", i+1)
		var named struct{ Name string }
		if json.Unmarshal(raw, &named) == nil && named.Name != "" {
			where = fmt.Sprintf("item %d %q", i+1, oneLine(named.Name))
		}
		var bi bwItem
		if err := json.Unmarshal(raw, &bi); err != nil {
			c.skip(where, "%s", jsonErr("", raw, err))
			continue
		}
		where = fmt.Sprintf("item %d %q", i+1, oneLine(bi.Name))
		e, err := bi.entry(folders, collections, &c, where)
		if err != nil {
			c.skip(where, "%v", err)
			continue
		}
		e.Where = where
		c.add(e)
	}
	return &c.res, nil
}

// jsonErr turns a decoding error into one that names the line and column
// (for a whole file, named by prefix) and never quotes the data.
func jsonErr(prefix string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var msg string
	// Within one entry (no prefix) the entry is named by the caller, and
	// a line inside it would mislead.
	at := func(off int64) string {
		if prefix == "" {
			return ""
		}
		line, col := position(data, off)
		return fmt.Sprintf("line %d, column %d: ", line, col)
	}
	switch {
	case errors.As(err, &se):
		msg = at(se.Offset) + se.Error()
	case errors.As(err, &te):
		where := te.Field
		if where == "" {
			where = "value"
		}
		msg = fmt.Sprintf("%s%s is a JSON %s, not %s", at(te.Offset), where, te.Value, jsonKind(te.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "the JSON ends early; the file is cut short"
	default:
		msg = err.Error()
	}
	if prefix == "" {
		return errors.New(msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrFormat, prefix, msg)
}

// jsonKind names what JSON a Go type wants.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "the expected kind"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a number"
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// decodeObject decodes a JSON object into v and returns the keys that v
// does not know and whose values are non-empty strings, sorted, so that
// they can become custom fields.
func decodeObject(raw json.RawMessage, v any, known func(string) bool) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	var extra [][2]string
	for k, rv := range all {
		if known(k) {
			continue
		}
		var s string
		if json.Unmarshal(rv, &s) == nil && s != "" {
			extra = append(extra, [2]string{k, s})
		}
	}
	slices.SortFunc(extra, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return extra, nil
}

func keys(names ...string) func(string) bool {
	return func(k string) bool { return slices.Contains(names, k) }
}

func (bi *bwItem) entry(folders, collections map[string]string, c *collector, where string) (Entry, error) {
	it := item.Item{
		Title:    bi.Name,
		Favorite: bi.Favorite,
	}
	if bi.Notes != nil {
		it.Notes = *bi.Notes
	}
	if bi.FolderID != nil && *bi.FolderID != "" {
		name, ok := folders[*bi.FolderID]
		if !ok {
			return Entry{}, fmt.Errorf("folderId %q is not in the folders list", *bi.FolderID)
		}
		it.Folder = name
	}
	it.Created, it.Modified = bi.CreationDate.Time, bi.RevisionDate.Time
	if !bi.DeletedDate.IsZero() {
		t := bi.DeletedDate.Time
		it.Trashed = &t
	}
	var extra [][2]string
	var err error
	switch bi.Type {
	case bwLogin:
		it.Type = item.Login
		var l bwLoginData
		extra, err = decodeObject(bi.Login, &l, keys("uris", "username", "password", "totp", "passwordRevisionDate", "fido2Credentials", "autofillOnPageLoad"))
		if err != nil {
			return Entry{}, fmt.Errorf("login: %s", jsonErr("", bi.Login, err))
		}
		for _, u := range l.URIs {
			it.URLs = append(it.URLs, u.URI)
		}
		it.Username, it.Password, it.TOTP = l.Username, l.Password, l.TOTP
		it.PasswordChanged = l.PasswordRevisionDate.Time
		if n := countJSONArray(l.Fido2Credentials); n > 0 {
			c.skip(where, "%d passkey(s) not imported: Safehold does not store passkeys; the rest of the item was imported", n)
		}
	case bwNote:
		it.Type = item.Note
	case bwCard:
		it.Type = item.Card
		var d bwCardData
		extra, err = decodeObject(bi.Card, &d, keys("cardholderName", "brand", "number", "expMonth", "expYear", "code"))
		if err != nil {
			return Entry{}, fmt.Errorf("card: %s", jsonErr("", bi.Card, err))
		}
		it.Card = &item.CardData{Holder: d.CardholderName, Brand: d.Brand, Number: d.Number, CVV: d.Code}
		it.Card.Expiry = expiry(&it, d.ExpMonth, d.ExpYear)
	case bwIdentity:
		it.Type = item.Identity
		var d bwIdentityData
		extra, err = decodeObject(bi.Identity, &d, keys("title", "firstName", "middleName", "lastName", "address1", "address2", "address3",
			"city", "state", "postalCode", "country", "company", "email", "phone", "ssn", "username", "passportNumber", "licenseNumber"))
		if err != nil {
			return Entry{}, fmt.Errorf("identity: %s", jsonErr("", bi.Identity, err))
		}
		it.Identity = &item.IdentityData{
			FirstName: d.FirstName, LastName: d.LastName, Email: d.Email, Phone: d.Phone,
			Company: d.Company, Passport: d.PassportNumber, License: d.LicenseNumber, NationalID: d.SSN,
			Address: joinAddress(d.Address1, d.Address2, d.Address3, d.City, d.State, d.PostalCode, d.Country),
		}
		it.Username = d.Username
		addField(&it, "name title", item.KindText, d.Title)
		addField(&it, "middle name", item.KindText, d.MiddleName)
	case bwSSHKey:
		it.Type = item.SSHKey
		var d bwSSHKeyData
		extra, err = decodeObject(bi.SSHKey, &d, keys("privateKey", "publicKey", "keyFingerprint"))
		if err != nil {
			return Entry{}, fmt.Errorf("ssh key: %s", jsonErr("", bi.SSHKey, err))
		}
		it.SSH = &item.SSHData{PrivateKey: d.PrivateKey, PublicKey: d.PublicKey, Fingerprint: d.KeyFingerprint}
	default:
		return Entry{}, fmt.Errorf("item type %d is not one Safehold knows (1 login, 2 note, 3 card, 4 identity, 5 ssh key)", bi.Type)
	}
	for _, kv := range extra {
		addField(&it, kv[0], item.KindText, kv[1])
	}
	for _, f := range bi.Fields {
		var name, value string
		if f.Name != nil {
			name = *f.Name
		}
		if f.Value != nil {
			value = *f.Value
		}
		var kind item.FieldKind
		switch f.Type {
		case bwText, bwBoolean:
			kind = textKind(value)
		case bwHidden:
			kind = item.KindHidden
			if isOTPAuth(value) {
				kind = item.KindTOTP
			}
		case bwLinked:
			kind = item.KindText
			target := "another field"
			if f.LinkedID != nil {
				if n, ok := bwLinkedNames[*f.LinkedID]; ok {
					target = n
				} else {
					target = "field " + strconv.Itoa(*f.LinkedID)
				}
			}
			value = "linked to " + target
		default:
			kind = item.KindText
		}
		if !claim(&it, name, kind, value) {
			it.Fields = append(it.Fields, item.Field{Name: name, Kind: kind, Value: value})
		}
	}
	for _, id := range bi.CollectionIDs {
		name := collections[id]
		if name == "" {
			name = id
		}
		addField(&it, "collection", item.KindText, name)
	}
	it.Title = titleFrom(it.Title, it.URLs...)
	e := Entry{Item: it}
	// Bitwarden lists password history newest first; Entry.History is
	// oldest first.
	for i := len(bi.PasswordHistory) - 1; i >= 0; i-- {
		h := bi.PasswordHistory[i]
		v := item.Item{Type: it.Type, Title: it.Title, Username: it.Username, Password: h.Password, Modified: h.LastUsedDate.Time}
		e.History = append(e.History, v)
	}
	return e, nil
}

// claim puts a custom field that WriteBitwardenJSON wrote for a value
// Bitwarden has no place for back into that place: "tag" text fields become
// tags, a card's hidden "PIN" its PIN, an identity's "birthday" its
// birthday, an SSH key's hidden "passphrase" its passphrase.
func claim(it *item.Item, name string, kind item.FieldKind, value string) bool {
	switch {
	case name == "tag" && kind != item.KindHidden && value != "" && !strings.ContainsAny(value, "\x00\r\n,") &&
		len(value) <= item.MaxTitle && len(it.Tags) < item.MaxTags:
		it.Tags = append(it.Tags, value)
	case it.Card != nil && name == "PIN" && kind == item.KindHidden && it.Card.PIN == "":
		it.Card.PIN = value
	case it.Identity != nil && name == "birthday" && it.Identity.Birthday == "" && kind != item.KindHidden:
		it.Identity.Birthday = value
	case it.SSH != nil && name == "passphrase" && kind == item.KindHidden && it.SSH.Passphrase == "":
		it.SSH.Passphrase = value
	default:
		return false
	}
	return true
}

// jsonTime is a Bitwarden time: RFC 3339, null or "". A time that does not
// parse is left zero rather than costing the item: it is metadata.
type jsonTime struct{ time.Time }

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil || *s == "" {
		return nil
	}
	if v, err := time.Parse(time.RFC3339Nano, *s); err == nil {
		t.Time = v.UTC()
	}
	return nil
}

// textKind tells what a Bitwarden text field holds: a TOTP URI, a web URL,
// a date, or text. Bitwarden has no URL, TOTP or date fields, so this is
// how those kinds survive a round trip through its format.
func textKind(v string) item.FieldKind {
	switch {
	case isOTPAuth(v):
		return item.KindTOTP
	case isWebURL(v):
		return item.KindURL
	case isDate(v):
		return item.KindDate
	}
	return item.KindText
}

func isOTPAuth(v string) bool { return strings.HasPrefix(v, "otpauth://") }

func isWebURL(v string) bool {
	return (strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://")) &&
		!strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' }) && host(v) != ""
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

func isDate(v string) bool {
	if !dateRE.MatchString(v) {
		return false
	}
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

// expiry builds MM/YYYY from a month and a year, or keeps what does not fit
// as custom fields.
func expiry(it *item.Item, month, year string) string {
	month, year = strings.TrimSpace(month), strings.TrimSpace(year)
	m, errM := strconv.Atoi(month)
	y, errY := strconv.Atoi(year)
	if errM == nil && errY == nil && m >= 1 && m <= 12 && y >= 0 && y <= 9999 {
		if len(year) == 2 {
			y += 2000
		}
		return fmt.Sprintf("%02d/%04d", m, y)
	}
	addField(it, "expiry month", item.KindText, month)
	addField(it, "expiry year", item.KindText, year)
	return ""
}

// joinAddress writes an address as lines: street lines, then "city, state
// postcode", then the country.
func joinAddress(a1, a2, a3, city, state, postal, country string) string {
	var lines []string
	for _, l := range []string{a1, a2, a3} {
		if l != "" {
			lines = append(lines, l)
		}
	}
	cityLine := city
	if state != "" {
		if cityLine != "" {
			cityLine += ", "
		}
		cityLine += state
	}
	if postal != "" {
		if cityLine != "" {
			cityLine += " "
		}
		cityLine += postal
	}
	if cityLine != "" {
		lines = append(lines, cityLine)
	}
	if country != "" {
		lines = append(lines, country)
	}
	return strings.Join(lines, "\n")
}

func countJSONArray(raw json.RawMessage) int {
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil {
		return 0
	}
	return len(a)
}
