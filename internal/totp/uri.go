package totp

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ignoredParams are otpauth parameters some issuers add for presentation
// only. They carry nothing Safehold uses and are dropped; any other unknown
// parameter is an error.
var ignoredParams = map[string]bool{"image": true, "color": true}

// parseURI parses otpauth://totp/LABEL?secret=...&issuer=...&algorithm=...
// &digits=...&period=... (the Google Authenticator key URI format).
//
// Rules: the type must be totp (hotp counters are not supported); secret is
// required; every parameter at most once; algorithm is SHA1, SHA256 or
// SHA512 (any case); digits and period are decimal without sign or leading
// zeros; LABEL is "issuer:account" or "account" (a space after the colon
// is allowed); if both the label and the issuer parameter name an issuer
// they must be equal.
func parseURI(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrURI, redactURLError(err))
	}
	if !strings.EqualFold(u.Scheme, "otpauth") || u.Opaque != "" || u.User != nil || u.Port() != "" || u.Fragment != "" {
		return Config{}, fmt.Errorf("%w: want otpauth://totp/label?secret=...", ErrURI)
	}
	if strings.EqualFold(u.Host, "hotp") {
		return Config{}, fmt.Errorf("%w: hotp (counter-based) codes are not supported", ErrURI)
	}
	if !strings.EqualFold(u.Host, "totp") {
		return Config{}, fmt.Errorf("%w: type %q, want totp", ErrURI, u.Host)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("%w: bad query", ErrURI)
	}
	c := Config{Algorithm: SHA1, Digits: DefaultDigits, Period: DefaultPeriod}
	issuerParam, haveIssuerParam := "", false
	for k, v := range q {
		if len(v) != 1 {
			return Config{}, fmt.Errorf("%w: parameter %q repeated", ErrURI, k)
		}
		switch k {
		case "secret":
			// Decoded below, after every other check, so that errors
			// about other parameters never follow a decoded seed.
		case "issuer":
			issuerParam, haveIssuerParam = v[0], true
		case "algorithm":
			c.Algorithm = Algorithm(strings.ToUpper(v[0]))
			if _, err := c.Algorithm.otp(); err != nil {
				return Config{}, err
			}
		case "digits":
			if c.Digits, err = parseSmall(k, v[0]); err != nil {
				return Config{}, err
			}
		case "period":
			if c.Period, err = parseSmall(k, v[0]); err != nil {
				return Config{}, err
			}
		default:
			if !ignoredParams[k] {
				return Config{}, fmt.Errorf("%w: unknown parameter %q", ErrURI, k)
			}
		}
	}
	label := strings.TrimPrefix(u.Path, "/")
	if i := strings.IndexByte(label, ':'); i >= 0 {
		c.Issuer = label[:i]
		c.Account = strings.TrimPrefix(label[i+1:], " ")
	} else {
		c.Account = label
	}
	if haveIssuerParam {
		if c.Issuer != "" && c.Issuer != issuerParam {
			return Config{}, fmt.Errorf("%w: label issuer %q differs from issuer parameter %q", ErrURI, c.Issuer, issuerParam)
		}
		c.Issuer = issuerParam
	}
	sv, ok := q["secret"]
	if !ok {
		return Config{}, fmt.Errorf("%w: missing secret parameter", ErrURI)
	}
	// Check everything but the seed first.
	c.Secret = make([]byte, MinSeedLen)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if c.Secret, err = DecodeSeed(sv[0]); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseSmall parses a canonical decimal in 1..999.
func parseSmall(name, v string) (int, error) {
	if len(v) == 0 || len(v) > 3 || v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %s %q is not a small decimal number", ErrURI, name, v)
	}
	n, _ := strconv.Atoi(v)
	return n, nil
}

// redactURLError drops the URL (which holds the seed) from a url.Error.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// URI returns the canonical otpauth URI for c:
//
//	otpauth://totp/ISSUER:ACCOUNT?secret=S&issuer=ISSUER&algorithm=A&digits=D&period=P
//
// with the label path-escaped, "ISSUER:" and "&issuer=..." omitted when the
// issuer is empty, S the canonical base32 seed (upper case, no padding), and
// every other parameter always present. The result contains the seed.
func (c Config) URI() (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if c.Issuer != "" {
		b.WriteString(url.PathEscape(c.Issuer))
		b.WriteByte(':')
	}
	b.WriteString(url.PathEscape(c.Account))
	b.WriteString("?secret=")
	b.WriteString(b32.EncodeToString(c.Secret))
	if c.Issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(url.QueryEscape(c.Issuer))
	}
	fmt.Fprintf(&b, "&algorithm=%s&digits=%d&period=%d", c.Algorithm, c.Digits, c.Period)
	return b.String(), nil
}
