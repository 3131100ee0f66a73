package item

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Mask replaces a secret value in output that was not asked to reveal it.
const Mask = "********"

// ErrNoField means an item has no field of the given name.
var ErrNoField = errors.New("no such field")

// Value is one named value of an item, in display order.
type Value struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// accessor reaches one standard field of an item.
type accessor struct {
	name   string
	secret bool
	get    func(*Item) *string
}

func card(it *Item) *CardData {
	if it.Card == nil {
		it.Card = &CardData{}
	}
	return it.Card
}

func ident(it *Item) *IdentityData {
	if it.Identity == nil {
		it.Identity = &IdentityData{}
	}
	return it.Identity
}

func ssh(it *Item) *SSHData {
	if it.SSH == nil {
		it.SSH = &SSHData{}
	}
	return it.SSH
}

// standard lists the standard fields, in display order. Secret ones are
// masked unless the user asks to reveal them.
var standard = []accessor{
	{"title", false, func(it *Item) *string { return &it.Title }},
	{"username", false, func(it *Item) *string { return &it.Username }},
	{"password", true, func(it *Item) *string { return &it.Password }},
	{"totp", true, func(it *Item) *string { return &it.TOTP }},
	{"folder", false, func(it *Item) *string { return &it.Folder }},
	{"card.holder", false, func(it *Item) *string { return &card(it).Holder }},
	{"card.brand", false, func(it *Item) *string { return &card(it).Brand }},
	{"card.number", true, func(it *Item) *string { return &card(it).Number }},
	{"card.expiry", false, func(it *Item) *string { return &card(it).Expiry }},
	{"card.cvv", true, func(it *Item) *string { return &card(it).CVV }},
	{"card.pin", true, func(it *Item) *string { return &card(it).PIN }},
	{"identity.first_name", false, func(it *Item) *string { return &ident(it).FirstName }},
	{"identity.last_name", false, func(it *Item) *string { return &ident(it).LastName }},
	{"identity.email", false, func(it *Item) *string { return &ident(it).Email }},
	{"identity.phone", false, func(it *Item) *string { return &ident(it).Phone }},
	{"identity.address", false, func(it *Item) *string { return &ident(it).Address }},
	{"identity.company", false, func(it *Item) *string { return &ident(it).Company }},
	{"identity.birthday", false, func(it *Item) *string { return &ident(it).Birthday }},
	{"identity.passport", true, func(it *Item) *string { return &ident(it).Passport }},
	{"identity.license", true, func(it *Item) *string { return &ident(it).License }},
	{"identity.national_id", true, func(it *Item) *string { return &ident(it).NationalID }},
	{"ssh.public_key", false, func(it *Item) *string { return &ssh(it).PublicKey }},
	{"ssh.fingerprint", false, func(it *Item) *string { return &ssh(it).Fingerprint }},
	{"ssh.private_key", true, func(it *Item) *string { return &ssh(it).PrivateKey }},
	{"ssh.passphrase", true, func(it *Item) *string { return &ssh(it).Passphrase }},
	{"notes", false, func(it *Item) *string { return &it.Notes }},
}

var aliases = map[string]string{
	"user": "username", "login": "username", "pass": "password", "otp": "totp",
	"note": "notes", "number": "card.number", "cvv": "card.cvv", "pin": "card.pin",
	"email": "identity.email", "public_key": "ssh.public_key", "private_key": "ssh.private_key",
}

func canonicalName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		return a
	}
	return n
}

// resolveName is canonicalName, except that a custom field named exactly
// like an alias ("PIN" on a login) is that field, not the aliased standard
// field of another type.
func (it *Item) resolveName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if _, ok := aliases[n]; ok && slices.ContainsFunc(it.Fields, func(f Field) bool { return strings.EqualFold(f.Name, name) }) {
		return name
	}
	return canonicalName(name)
}

// Values lists every non-empty field in display order: standard fields,
// URLs, tags, custom fields. It does not mask; callers decide.
func (it Item) Values() []Value {
	c := it.clone()
	var out []Value
	for _, a := range standard {
		if strings.HasPrefix(a.name, "card.") && it.Card == nil ||
			strings.HasPrefix(a.name, "identity.") && it.Identity == nil ||
			strings.HasPrefix(a.name, "ssh.") && it.SSH == nil {
			continue
		}
		if v := *a.get(&c); v != "" {
			out = append(out, Value{a.name, v, a.secret})
		}
	}
	for i, u := range it.URLs {
		name := "url"
		if i > 0 {
			name = fmt.Sprintf("url%d", i+1)
		}
		out = append(out, Value{name, u, false})
	}
	if len(it.Tags) > 0 {
		out = append(out, Value{"tags", strings.Join(it.Tags, ", "), false})
	}
	for _, f := range it.Fields {
		out = append(out, Value{f.Name, f.Value, f.Kind == KindHidden || f.Kind == KindTOTP})
	}
	return out
}

// Get returns the value of one field by name: a standard field ("password",
// "card.number"), "url" (the first URL), "urls" (one per line), "tags", "vpn",
// or a custom field's name. secret says whether it is masked by default.
func (it Item) Get(name string) (value string, secret bool, err error) {
	n := it.resolveName(name)
	c := it.clone()
	for _, a := range standard {
		if a.name == n {
			return *a.get(&c), a.secret, nil
		}
	}
	switch n {
	case "url":
		if len(it.URLs) == 0 {
			return "", false, nil
		}
		return it.URLs[0], false, nil
	case "urls":
		return strings.Join(it.URLs, "\n"), false, nil
	case "tags":
		return strings.Join(it.Tags, ","), false, nil
	case "id":
		return it.ID, false, nil
	case "type":
		return string(it.Type), false, nil
	case "vpn":
		return string(it.VPN), true, nil
	}
	for _, f := range it.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, f.Kind == KindHidden || f.Kind == KindTOTP, nil
		}
	}
	return "", false, fmt.Errorf("%w %q in item %q", ErrNoField, name, it.Title)
}

// Set assigns one field by name, creating a custom text field when the name
// is not a standard one. "url" replaces the URL list with one URL; "tags"
// takes a comma-separated list.
func (it *Item) Set(name, value string) {
	n := it.resolveName(name)
	for _, a := range standard {
		if a.name == n {
			*a.get(it) = value
			return
		}
	}
	switch n {
	case "url", "urls":
		it.URLs = nil
		for _, u := range strings.Split(value, "\n") {
			it.URLs = append(it.URLs, u)
		}
		return
	case "tags":
		it.Tags = strings.Split(value, ",")
		return
	}
	for i := range it.Fields {
		if strings.EqualFold(it.Fields[i].Name, name) {
			it.Fields[i].Value = value
			return
		}
	}
	it.Fields = append(it.Fields, Field{Name: name, Kind: KindText, Value: value})
}

// Masked returns a copy in which every secret value is replaced by Mask.
func (it Item) Masked() Item {
	c := it.clone()
	for _, a := range standard {
		if !a.secret {
			continue
		}
		if p := a.get(&c); *p != "" {
			*p = Mask
		}
	}
	c.dropEmpty()
	for i, f := range c.Fields {
		if (f.Kind == KindHidden || f.Kind == KindTOTP) && f.Value != "" {
			c.Fields[i].Value = Mask
		}
	}
	if len(c.VPN) > 0 {
		c.VPN = []byte(`"` + Mask + `"`)
	}
	for i := range c.Attachments {
		c.Attachments[i].Key, c.Attachments[i].Header = nil, nil
	}
	// A value that lost a merge is as secret as the field it was for.
	for i, cf := range c.Conflicts {
		if _, secret, err := it.Get(cf.Field); (err != nil || secret) && cf.Value != "" {
			c.Conflicts[i].Value = Mask
		}
	}
	return c
}

// dropEmpty removes the sub-structures that accessors created empty.
func (it *Item) dropEmpty() {
	if it.Card != nil && *it.Card == (CardData{}) {
		it.Card = nil
	}
	if it.Identity != nil && *it.Identity == (IdentityData{}) {
		it.Identity = nil
	}
	if it.SSH != nil && *it.SSH == (SSHData{}) {
		it.SSH = nil
	}
}

// clone copies an item deeply enough that changes to the copy never reach
// the original.
func (it Item) clone() Item {
	c := it
	if it.Card != nil {
		v := *it.Card
		c.Card = &v
	}
	if it.Identity != nil {
		v := *it.Identity
		c.Identity = &v
	}
	if it.SSH != nil {
		v := *it.SSH
		c.SSH = &v
	}
	c.URLs = append([]string(nil), it.URLs...)
	c.Tags = append([]string(nil), it.Tags...)
	c.Fields = append([]Field(nil), it.Fields...)
	c.Attachments = append([]Attachment(nil), it.Attachments...)
	c.Conflicts = append([]Conflict(nil), it.Conflicts...)
	c.VPN = append([]byte(nil), it.VPN...)
	if it.Trashed != nil {
		v := *it.Trashed
		c.Trashed = &v
	}
	return c
}

// Clone returns a deep copy.
func (it Item) Clone() Item { return it.clone() }

// Finish prepares an item before it is sealed: normalises it and drops empty
// sub-structures.
func (it *Item) Finish() {
	it.Normalize()
	it.dropEmpty()
}
