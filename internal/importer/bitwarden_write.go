package importer

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// bwTime is how Bitwarden writes times: UTC with milliseconds.
const bwTime = "2006-01-02T15:04:05.000Z"

type bwOutExport struct {
	Encrypted bool        `json:"encrypted"`
	Folders   []bwFolder  `json:"folders"`
	Items     []bwOutItem `json:"items"`
}

type bwOutItem struct {
	PasswordHistory []bwOutHistory  `json:"passwordHistory"`
	RevisionDate    *string         `json:"revisionDate"`
	CreationDate    *string         `json:"creationDate"`
	DeletedDate     *string         `json:"deletedDate"`
	ID              string          `json:"id"`
	OrganizationID  *string         `json:"organizationId"`
	FolderID        *string         `json:"folderId"`
	Type            int             `json:"type"`
	Reprompt        int             `json:"reprompt"`
	Name            string          `json:"name"`
	Notes           *string         `json:"notes"`
	Favorite        bool            `json:"favorite"`
	Fields          []bwOutField    `json:"fields,omitempty"`
	Login           *bwOutLogin     `json:"login,omitempty"`
	SecureNote      *bwOutNote      `json:"secureNote,omitempty"`
	Card            *bwCardData     `json:"card,omitempty"`
	Identity        *bwIdentityData `json:"identity,omitempty"`
	SSHKey          *bwSSHKeyData   `json:"sshKey,omitempty"`
	CollectionIDs   []string        `json:"collectionIds"`
}

type bwOutField struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Type     int    `json:"type"`
	LinkedID *int   `json:"linkedId"`
}

type bwOutHistory struct {
	LastUsedDate *string `json:"lastUsedDate"`
	Password     string  `json:"password"`
}

type bwOutLogin struct {
	URIs                 []bwURI `json:"uris"`
	Username             *string `json:"username"`
	Password             *string `json:"password"`
	TOTP                 *string `json:"totp"`
	PasswordRevisionDate *string `json:"passwordRevisionDate,omitempty"`
}

type bwOutNote struct {
	Type int `json:"type"`
}

var expiryRE = regexp.MustCompile(`^(0[1-9]|1[0-2])/(\d{4})$`)

// WriteBitwardenJSON writes entries as an unencrypted Bitwarden JSON export
// that Bitwarden imports and BitwardenJSON reads back. What Bitwarden has no
// place for goes into custom fields: tags ("tag"), a card's PIN ("PIN"), an
// identity's birthday ("birthday"), an SSH key's passphrase ("passphrase");
// BitwardenJSON reads those back into their places. A VPN profile
// becomes a note with a hidden "vpn profile" field holding its JSON, and
// values that lost a merge ("conflict: FIELD"). Attachments are not written: Bitwarden's JSON
// export has no place for them, so callers should say so. TOTP items become
// logins, URL and date fields text fields, TOTP fields hidden fields.
func WriteBitwardenJSON(w io.Writer, entries []Entry) error {
	exp := bwOutExport{Folders: []bwFolder{}, Items: make([]bwOutItem, 0, len(entries))}
	folderIDs := map[string]string{}
	for _, e := range entries {
		f := e.Item.Folder
		if f == "" || folderIDs[f] != "" {
			continue
		}
		id, err := newUUID()
		if err != nil {
			return err
		}
		folderIDs[f] = id
		exp.Folders = append(exp.Folders, bwFolder{ID: id, Name: f})
	}
	for _, e := range entries {
		bi, err := bwOut(e, folderIDs)
		if err != nil {
			return err
		}
		exp.Items = append(exp.Items, bi)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(exp); err != nil {
		return fmt.Errorf("write bitwarden json: %w", err)
	}
	return nil
}

func bwOut(e Entry, folderIDs map[string]string) (bwOutItem, error) {
	it := e.Item
	id, err := newUUID()
	if err != nil {
		return bwOutItem{}, err
	}
	o := bwOutItem{
		PasswordHistory: []bwOutHistory{},
		ID:              id,
		Name:            it.Title,
		Favorite:        it.Favorite,
		RevisionDate:    timeStr(it.Modified),
		CreationDate:    timeStr(it.Created),
	}
	if it.Trashed != nil {
		o.DeletedDate = timeStr(*it.Trashed)
	}
	if it.Notes != "" {
		o.Notes = &it.Notes
	}
	if id, ok := folderIDs[it.Folder]; ok {
		o.FolderID = &id
	}
	field := func(name string, typ int, value string) {
		if value != "" {
			o.Fields = append(o.Fields, bwOutField{Name: name, Value: value, Type: typ})
		}
	}
	// loginParts writes a login's parts as custom fields on types that have
	// no login.
	loginParts := func() {
		for _, u := range it.URLs {
			field("url", bwText, u)
		}
		field("username", bwText, it.Username)
		field("password", bwHidden, it.Password)
		field("totp", bwHidden, it.TOTP)
	}
	switch it.Type {
	case item.Login, item.TOTP, "":
		o.Type = bwLogin
		l := &bwOutLogin{URIs: []bwURI{}, Username: strPtr(it.Username), Password: strPtr(it.Password), TOTP: strPtr(it.TOTP)}
		for _, u := range it.URLs {
			l.URIs = append(l.URIs, bwURI{URI: u})
		}
		l.PasswordRevisionDate = timeStr(it.PasswordChanged)
		o.Login = l
	case item.Note, item.VPN:
		o.Type = bwNote
		o.SecureNote = &bwOutNote{}
		loginParts()
		if len(it.VPN) > 0 {
			field("vpn profile", bwHidden, string(it.VPN))
		}
	case item.Card:
		o.Type = bwCard
		d := &bwCardData{}
		if c := it.Card; c != nil {
			d.CardholderName, d.Brand, d.Number, d.Code = c.Holder, c.Brand, c.Number, c.CVV
			if m := expiryRE.FindStringSubmatch(c.Expiry); m != nil {
				month, _ := strconv.Atoi(m[1])
				d.ExpMonth, d.ExpYear = strconv.Itoa(month), m[2]
			} else {
				field("expiry", bwText, c.Expiry)
			}
		}
		o.Card = d
		loginParts()
		if it.Card != nil {
			field("PIN", bwHidden, it.Card.PIN)
		}
	case item.Identity:
		o.Type = bwIdentity
		d := &bwIdentityData{Username: it.Username}
		if id := it.Identity; id != nil {
			d.FirstName, d.LastName, d.Email, d.Phone = id.FirstName, id.LastName, id.Email, id.Phone
			d.Address1, d.Company = id.Address, id.Company
			d.PassportNumber, d.LicenseNumber, d.SSN = id.Passport, id.License, id.NationalID
		}
		o.Identity = d
		for _, u := range it.URLs {
			field("url", bwText, u)
		}
		field("password", bwHidden, it.Password)
		field("totp", bwHidden, it.TOTP)
		if it.Identity != nil {
			field("birthday", bwText, it.Identity.Birthday)
		}
	case item.SSHKey:
		o.Type = bwSSHKey
		d := &bwSSHKeyData{}
		if s := it.SSH; s != nil {
			d.PrivateKey, d.PublicKey, d.KeyFingerprint = s.PrivateKey, s.PublicKey, s.Fingerprint
		}
		o.SSHKey = d
		loginParts()
		if it.SSH != nil {
			field("passphrase", bwHidden, it.SSH.Passphrase)
		}
	default:
		return bwOutItem{}, fmt.Errorf("write bitwarden json: item %q has unknown type %q", it.Title, it.Type)
	}
	for _, f := range it.Fields {
		typ := bwText
		if f.Kind == item.KindHidden || f.Kind == item.KindTOTP {
			typ = bwHidden
		}
		o.Fields = append(o.Fields, bwOutField{Name: f.Name, Value: f.Value, Type: typ})
	}
	for _, t := range it.Tags {
		field("tag", bwText, t)
	}
	for _, c := range it.Conflicts {
		field("conflict: "+c.Field, bwHidden, c.Value)
	}
	// History is oldest first; Bitwarden lists newest first and keeps only
	// the passwords.
	for i := len(e.History) - 1; i >= 0; i-- {
		h := e.History[i]
		when := h.Modified
		if when.IsZero() {
			when = h.PasswordChanged
		}
		o.PasswordHistory = append(o.PasswordHistory, bwOutHistory{LastUsedDate: timeStr(when), Password: h.Password})
	}
	return o, nil
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timeStr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(bwTime)
	return &s
}

// newUUID returns a random version 4 UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("write bitwarden json: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := fmt.Sprintf("%x", b[:])
	return strings.Join([]string{s[:8], s[8:12], s[12:16], s[16:20], s[20:]}, "-"), nil
}
