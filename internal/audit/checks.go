package audit

import (
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"

	"github.com/safehold/safehold/internal/item"
)

// Score is the zxcvbn score (0..4) of password, with userInputs as an extra
// dictionary (words an attacker who knows the account would try first).
// Only the first maxPasswordScored bytes (whole runes) are scored.
func Score(password string, userInputs []string) int {
	if len(password) > maxPasswordScored {
		cut := maxPasswordScored
		for cut > 0 && !utf8.RuneStart(password[cut]) {
			cut--
		}
		password = password[:cut]
	}
	return zxcvbn.PasswordStrength(password, userInputs).Score
}

// UserInputs lists the words of an item that its password should not be
// built from: the username (whole, its local part and its words), the
// title's words, and each URL's host and host labels (without "www" and the
// top-level domain). They are lower-case and distinct.
func UserInputs(it item.Item) []string {
	var out []string
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	words := func(s string) {
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			add(w)
		}
	}
	if it.Username != "" {
		add(it.Username)
		if local, _, ok := strings.Cut(it.Username, "@"); ok {
			add(local)
		}
		words(it.Username)
	}
	words(it.Title)
	for _, raw := range it.URLs {
		host := urlHost(raw)
		if host == "" {
			continue
		}
		add(host)
		labels := strings.Split(host, ".")
		if len(labels) > 1 {
			labels = labels[:len(labels)-1]
		}
		for _, l := range labels {
			if l != "www" {
				add(l)
			}
		}
	}
	return out
}

// urlHost is the host of a URL as users type them, with or without a
// scheme ("github.com/login" too).
func urlHost(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// PasswordDate is when the item's password last changed: PasswordChanged,
// or failing that Created, or Modified; ok is false when none is set.
func PasswordDate(it item.Item) (t time.Time, from string, ok bool) {
	switch {
	case !it.PasswordChanged.IsZero():
		return it.PasswordChanged, FromPasswordChanged, true
	case !it.Created.IsZero():
		return it.Created, FromCreated, true
	case !it.Modified.IsZero():
		return it.Modified, FromModified, true
	}
	return time.Time{}, "", false
}

// MissingTOTP tells whether a login has a place for a TOTP seed but no
// usable seed: no `totp` value and no non-empty custom field of kind totp,
// while it has an empty custom field of kind totp (ReasonEmptyTOTPField),
// or an otpauth:// URI in a custom field of another kind
// (ReasonOTPAuthInField) or in its notes (ReasonOTPAuthInNotes), where
// `safe totp` does not find it. field names the field concerned.
func MissingTOTP(it item.Item) (reason, field string, ok bool) {
	if it.Type != item.Login || strings.TrimSpace(it.TOTP) != "" {
		return "", "", false
	}
	for _, f := range it.Fields {
		if f.Kind == item.KindTOTP && strings.TrimSpace(f.Value) != "" {
			return "", "", false
		}
	}
	for _, f := range it.Fields {
		if f.Kind == item.KindTOTP {
			return ReasonEmptyTOTPField, f.Name, true
		}
	}
	for _, f := range it.Fields {
		if hasOTPAuth(f.Value) {
			return ReasonOTPAuthInField, f.Name, true
		}
	}
	if hasOTPAuth(it.Notes) {
		return ReasonOTPAuthInNotes, "notes", true
	}
	return "", "", false
}

func hasOTPAuth(s string) bool {
	const scheme = "otpauth://totp/"
	for i := 0; i+len(scheme) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(scheme)], scheme) {
			return true
		}
	}
	return false
}
