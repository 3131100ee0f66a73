package server

import (
	"encoding/base32"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/api"
)

// idEncoding is the id alphabet of docs/design.md §6.3.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// idLen is the length of an encoded 16-byte id.
const idLen = 26

// validID reports whether s is the canonical encoding of a 16-byte id.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	b, err := idEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return false
	}
	// The last character carries two unused bits, which must be zero for
	// the encoding to be canonical.
	return idEncoding.EncodeToString(b) == s
}

// normalizeEmail trims and lower-cases an address and checks its shape:
// at most api.MaxEmail bytes, one '@' with something on both sides, no
// space or control character. The server never sends mail; the address is
// a login name.
func normalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 3 || len(s) > api.MaxEmail || !utf8.ValidString(s) {
		return "", false
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return "", false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", false
		}
	}
	return s, true
}

// maxPlatform bounds DeviceHello.Platform.
const maxPlatform = 128

// validPlatform reports whether a device's platform string is short,
// valid UTF-8 and free of control characters (clients show it as data).
func validPlatform(s string) bool {
	if len(s) > maxPlatform || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// checkDevice validates a DeviceHello.
func checkDevice(d api.DeviceHello) error {
	if !validID(d.ID) {
		return badRequest("device id is not a 26-character id")
	}
	if !validPlatform(d.Platform) {
		return badRequest("device platform must be at most %d bytes of UTF-8 without control characters", maxPlatform)
	}
	return nil
}

// clientAddr is the request's peer address without the port. The server
// does not trust forwarding headers.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttleAddr is the rate-limit key of the peer: its IPv4 address, or its
// IPv6 /64 (one host usually owns a whole /64).
func throttleAddr(r *http.Request) string {
	ip := net.ParseIP(clientAddr(r))
	if ip == nil {
		return "addr:" + clientAddr(r)
	}
	if v4 := ip.To4(); v4 != nil {
		return "addr:" + v4.String()
	}
	return "addr:" + (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
