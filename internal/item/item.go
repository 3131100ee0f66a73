// Package item defines what a Safehold item is: its types, its fields, the
// JSON form that users read and write (safe add --json, safe get --json), and
// the rules a valid item follows. It knows nothing of encryption or storage:
// the whole Item is the plaintext that the vault seals into one envelope.
package item

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/wireguard"
)

// Type is the kind of an item.
type Type string

// The item types.
const (
	Login    Type = "login"
	Note     Type = "note"
	Card     Type = "card"
	Identity Type = "identity"
	SSHKey   Type = "ssh"
	TOTP     Type = "totp"
	VPN      Type = "vpn"
)

// Types lists every item type in display order.
var Types = []Type{Login, Note, Card, Identity, SSHKey, TOTP, VPN}

// ParseType accepts a type name and a few common aliases.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "login", "password":
		return Login, nil
	case "note", "secure-note", "securenote":
		return Note, nil
	case "card", "credit-card":
		return Card, nil
	case "identity", "id":
		return Identity, nil
	case "ssh", "ssh-key", "sshkey":
		return SSHKey, nil
	case "totp", "otp":
		return TOTP, nil
	case "vpn", "wireguard":
		return VPN, nil
	}
	return "", fmt.Errorf("unknown item type %q (known: login, note, card, identity, ssh, totp, vpn)", s)
}

// FieldKind is the kind of a custom field.
type FieldKind string

// Custom field kinds.
const (
	KindText   FieldKind = "text"
	KindHidden FieldKind = "hidden"
	KindURL    FieldKind = "url"
	KindTOTP   FieldKind = "totp"
	KindDate   FieldKind = "date"
)

// Field is a custom field.
type Field struct {
	Name  string    `json:"name"`
	Kind  FieldKind `json:"kind"`
	Value string    `json:"value"`
}

// CardData holds a payment card.
type CardData struct {
	Holder string `json:"holder,omitempty"`
	Brand  string `json:"brand,omitempty"`
	Number string `json:"number,omitempty"`
	Expiry string `json:"expiry,omitempty"` // MM/YYYY
	CVV    string `json:"cvv,omitempty"`
	PIN    string `json:"pin,omitempty"`
}

// IdentityData holds a person's details.
type IdentityData struct {
	FirstName  string `json:"first_name,omitempty"`
	LastName   string `json:"last_name,omitempty"`
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Address    string `json:"address,omitempty"`
	Company    string `json:"company,omitempty"`
	Birthday   string `json:"birthday,omitempty"`
	Passport   string `json:"passport,omitempty"`
	License    string `json:"license,omitempty"`
	NationalID string `json:"national_id,omitempty"`
}

// SSHData holds an SSH key pair in OpenSSH formats.
type SSHData struct {
	PrivateKey  string `json:"private_key,omitempty"` // OpenSSH PEM
	PublicKey   string `json:"public_key,omitempty"`  // authorized_keys line
	Fingerprint string `json:"fingerprint,omitempty"` // SHA256:...
	Passphrase  string `json:"passphrase,omitempty"`
}

// Attachment describes a file stored beside the item. The key and stream
// header are what it takes to read the encrypted chunks; they live only
// inside the sealed item payload.
type Attachment struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Size   int64     `json:"size"`
	Chunks int64     `json:"chunks"`
	Key    []byte    `json:"key,omitempty"`
	Header []byte    `json:"header,omitempty"`
	Added  time.Time `json:"added"`
}

// Item is one secret and everything a user typed about it.
type Item struct {
	ID          string          `json:"id,omitempty"`
	Type        Type            `json:"type"`
	Title       string          `json:"title"`
	Username    string          `json:"username,omitempty"`
	Password    string          `json:"password,omitempty"`
	URLs        []string        `json:"urls,omitempty"`
	Notes       string          `json:"notes,omitempty"`
	TOTP        string          `json:"totp,omitempty"` // base32 seed or otpauth:// URI
	Card        *CardData       `json:"card,omitempty"`
	Identity    *IdentityData   `json:"identity,omitempty"`
	SSH         *SSHData        `json:"ssh,omitempty"`
	VPN         json.RawMessage `json:"vpn,omitempty"` // a wireguard.Profile
	Fields      []Field         `json:"fields,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Folder      string          `json:"folder,omitempty"`
	Favorite    bool            `json:"favorite,omitempty"`
	Attachments []Attachment    `json:"attachments,omitempty"`

	Created  time.Time  `json:"created,omitzero"`
	Modified time.Time  `json:"modified,omitzero"`
	Trashed  *time.Time `json:"trashed,omitempty"`
	// PasswordChanged records when the password last changed, for audits.
	PasswordChanged time.Time `json:"password_changed,omitzero"`
	// Conflicts keeps values that a merge could not reconcile, so that
	// nothing a user wrote is lost.
	Conflicts []Conflict `json:"conflicts,omitempty"`

	// Revision is the stored revision. It lives outside the payload (it is
	// bound by the envelope's additional data) and is filled on read.
	Revision uint64 `json:"revision,omitempty"`
}

// Conflict is a value that lost a merge, kept beside the winner.
type Conflict struct {
	Field string    `json:"field"`
	Value string    `json:"value"`
	Seen  time.Time `json:"seen"`
}

// Limits on what an item may hold. They bound what any decoder accepts.
const (
	MaxTitle      = 1024
	MaxValue      = 64 << 10
	MaxNotes      = 1 << 20
	MaxFields     = 256
	MaxURLs       = 64
	MaxTags       = 64
	MaxAttachment = 1 << 10 // attachments per item
	MaxPayload    = 4 << 20 // encoded JSON of one item
)

// ErrInvalid marks an item that breaks a rule; the message says which.
var ErrInvalid = errors.New("invalid item")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Normalize trims surrounding white space where it carries no meaning,
// removes duplicate tags and empty URLs, and fills a missing type with login.
func (it *Item) Normalize() {
	if it.Type == "" {
		it.Type = Login
	}
	it.Title = strings.TrimSpace(it.Title)
	it.Folder = strings.Trim(strings.TrimSpace(it.Folder), "/")
	var urls []string
	for _, u := range it.URLs {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	it.URLs = urls
	var tags []string
	for _, t := range it.Tags {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	it.Tags = tags
}

// Validate checks an item against the rules; the error names the field.
func (it *Item) Validate() error {
	if _, err := ParseType(string(it.Type)); err != nil || string(it.Type) != strings.ToLower(string(it.Type)) {
		return invalid("type %q is not one of login, note, card, identity, ssh, totp, vpn", it.Type)
	}
	if it.Title == "" {
		return invalid("title is empty: every item needs a title")
	}
	checks := []struct {
		name string
		v    string
		max  int
	}{
		{"title", it.Title, MaxTitle},
		{"username", it.Username, MaxValue},
		{"password", it.Password, MaxValue},
		{"notes", it.Notes, MaxNotes},
		{"totp", it.TOTP, MaxValue},
		{"folder", it.Folder, MaxTitle},
	}
	for _, c := range checks {
		if len(c.v) > c.max {
			return invalid("%s is %d bytes, more than the %d allowed", c.name, len(c.v), c.max)
		}
		if !utf8.ValidString(c.v) {
			return invalid("%s is not valid UTF-8", c.name)
		}
	}
	if strings.ContainsAny(it.Title, "\x00\r\n") {
		return invalid("title contains a line break or NUL")
	}
	if len(it.URLs) > MaxURLs {
		return invalid("%d URLs, more than the %d allowed", len(it.URLs), MaxURLs)
	}
	for _, u := range it.URLs {
		if len(u) > MaxValue {
			return invalid("url longer than %d bytes", MaxValue)
		}
		if _, err := url.Parse(u); err != nil {
			return invalid("url %q does not parse: %v", u, err)
		}
	}
	if len(it.Tags) > MaxTags {
		return invalid("%d tags, more than the %d allowed", len(it.Tags), MaxTags)
	}
	for _, t := range it.Tags {
		if len(t) > MaxTitle || !utf8.ValidString(t) || strings.ContainsAny(t, "\x00\r\n,") {
			return invalid("tag %q is too long or contains a comma, line break or NUL", t)
		}
	}
	if len(it.Fields) > MaxFields {
		return invalid("%d custom fields, more than the %d allowed", len(it.Fields), MaxFields)
	}
	for i, f := range it.Fields {
		if strings.TrimSpace(f.Name) == "" {
			return invalid("custom field %d has no name", i+1)
		}
		if strings.ContainsFunc(f.Name, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
			return invalid("custom field name %q contains control characters", f.Name)
		}
		switch f.Kind {
		case KindText, KindHidden, KindURL, KindTOTP, KindDate:
		default:
			return invalid("custom field %q has kind %q (known: text, hidden, url, totp, date)", f.Name, f.Kind)
		}
		if f.Kind == KindDate && f.Value != "" {
			if _, err := time.Parse("2006-01-02", f.Value); err != nil {
				return invalid("custom field %q: date %q is not YYYY-MM-DD", f.Name, f.Value)
			}
		}
		if len(f.Name) > MaxTitle || len(f.Value) > MaxValue || !utf8.ValidString(f.Name) || !utf8.ValidString(f.Value) {
			return invalid("custom field %q is too long or not valid UTF-8", f.Name)
		}
	}
	if len(it.Attachments) > MaxAttachment {
		return invalid("%d attachments, more than the %d allowed", len(it.Attachments), MaxAttachment)
	}
	if len(it.VPN) > MaxValue {
		return invalid("vpn profile larger than %d bytes", MaxValue)
	}
	if len(it.VPN) > 0 {
		var p wireguard.Profile
		if err := json.Unmarshal(it.VPN, &p); err != nil {
			return invalid("vpn profile: %v", err)
		}
		err := p.Validate()
		p.Wipe()
		if err != nil {
			return invalid("vpn profile: %v", err)
		}
	}
	return nil
}

// Decode parses one item from JSON strictly: unknown fields are an error
// naming them, and the size is bounded.
func Decode(data []byte) (Item, error) {
	if len(data) > MaxPayload {
		return Item{}, invalid("item is %d bytes, more than the %d allowed", len(data), MaxPayload)
	}
	var it Item
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		return Item{}, invalid("%v", err)
	}
	if dec.More() {
		return Item{}, invalid("trailing data after the item")
	}
	return it, nil
}

// DecodeInput parses what a user gives `safe add --json`: one item object or
// an array of them.
func DecodeInput(data []byte) ([]Item, error) {
	trimmed := strings.TrimSpace(string(data))
	if trimmed == "" {
		return nil, invalid("no JSON on standard input")
	}
	if trimmed[0] != '[' {
		it, err := Decode([]byte(trimmed))
		if err != nil {
			return nil, err
		}
		return []Item{it}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(trimmed), &raws); err != nil {
		return nil, invalid("%v", err)
	}
	items := make([]Item, 0, len(raws))
	for i, r := range raws {
		it, err := Decode(r)
		if err != nil {
			return nil, fmt.Errorf("item %d of %d: %w", i+1, len(raws), err)
		}
		items = append(items, it)
	}
	return items, nil
}
