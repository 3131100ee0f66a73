package wireguard

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/secret"
)

// ErrSyntax is wrapped by ParseWGQuick errors, which always name the line.
var ErrSyntax = errors.New("invalid wg-quick configuration")

// unsupportedKeys are wg-quick settings Safehold refuses to import, with the
// reason given to the user. Hooks run arbitrary shell commands as root when
// the tunnel comes up; the others change host routing or persistence.
var unsupportedKeys = map[string]string{
	"preup":      "shell hooks are not imported",
	"postup":     "shell hooks are not imported",
	"predown":    "shell hooks are not imported",
	"postdown":   "shell hooks are not imported",
	"table":      "routing table settings are not supported",
	"saveconfig": "SaveConfig is not supported",
	"fwmark":     "FwMark is not supported",
}

type lineError struct {
	line int
	msg  string
}

func synerr(line int, format string, a ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrSyntax, line, fmt.Sprintf(format, a...))
}

// ParseWGQuick parses a wg-quick configuration file.
//
// Accepted syntax, as wg(8) and wg-quick(8) read it: '#' starts a comment
// to the end of the line; blank lines are ignored; "[Interface]" and
// "[Peer]" (any case) start sections; other lines are "Key = Value" with
// keys matched case-insensitively and white space around key, value and
// list items ignored. Address, DNS and AllowedIPs take comma-separated lists
// and may repeat (the lists are concatenated); every other key may appear
// once per section. An Address without a prefix length gets /32 or /128;
// AllowedIPs are masked to their prefix; PersistentKeepalive accepts "off".
//
// Everything else is an error naming the line: text before the first
// section, a second [Interface], unknown or unsupported keys (PostUp and the
// other hooks), a key in the wrong section, empty values or list items,
// malformed keys, addresses, ports or names, and any bound of
// Profile.Validate. The input is at most MaxConfigSize bytes of UTF-8
// without NUL; CRLF line ends are accepted.
func ParseWGQuick(data []byte) (Profile, error) {
	if len(data) > MaxConfigSize {
		return Profile{}, fmt.Errorf("%w: larger than %d bytes", ErrSyntax, MaxConfigSize)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return Profile{}, fmt.Errorf("%w: not UTF-8 text", ErrSyntax)
	}
	var p Profile
	fail := func(err error) (Profile, error) {
		p.wipe()
		return Profile{}, err
	}
	const (
		none = iota
		inIface
		inPeer
	)
	section := none
	sawIface := false
	seen := map[string]bool{} // single-valued keys set in the current section
	var peer *Peer
	// The input is handled as []byte so that the secret keys in it are
	// never copied into strings that cannot be wiped.
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSuffix(line, []byte("\r"))
		if j := bytes.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] == '[' {
			switch strings.ToLower(string(line)) {
			case "[interface]":
				if sawIface {
					return fail(synerr(n, "second [Interface] section"))
				}
				sawIface = true
				section = inIface
			case "[peer]":
				if len(p.Peers) == MaxPeers {
					return fail(synerr(n, "more than %d peers", MaxPeers))
				}
				p.Peers = append(p.Peers, Peer{})
				peer = &p.Peers[len(p.Peers)-1]
				section = inPeer
			default:
				return fail(synerr(n, "unknown section %q", line))
			}
			clear(seen)
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq < 0 {
			return fail(synerr(n, "want Key = Value"))
		}
		key := string(bytes.TrimSpace(line[:eq]))
		val := bytes.TrimSpace(line[eq+1:])
		lk := strings.ToLower(key)
		if why, ok := unsupportedKeys[lk]; ok {
			return fail(synerr(n, "%s: %s", key, why))
		}
		if section == none {
			return fail(synerr(n, "%q before [Interface] or [Peer]", key))
		}
		if len(val) == 0 {
			return fail(synerr(n, "%s has no value", key))
		}
		var err error
		switch section {
		case inIface:
			err = p.Interface.set(lk, val, seen)
		case inPeer:
			err = peer.set(lk, val, seen)
		}
		if err != nil {
			var le *lineError
			if errors.As(err, &le) {
				return fail(synerr(n, "%s", le.msg))
			}
			return fail(synerr(n, "%s: %v", key, err))
		}
	}
	if !sawIface {
		return fail(fmt.Errorf("%w: no [Interface] section", ErrSyntax))
	}
	if len(p.Interface.PrivateKey) == 0 {
		return fail(fmt.Errorf("%w: [Interface] has no PrivateKey", ErrSyntax))
	}
	for i := range p.Peers {
		if p.Peers[i].PublicKey.IsZero() {
			return fail(fmt.Errorf("%w: peer %d has no PublicKey", ErrSyntax, i+1))
		}
	}
	if err := p.Validate(); err != nil {
		return fail(err)
	}
	return p, nil
}

func (e *lineError) Error() string { return e.msg }

// once records a single-valued key and fails if it was already set.
func once(seen map[string]bool, key string) error {
	if seen[key] {
		return &lineError{msg: fmt.Sprintf("%s set twice in one section", key)}
	}
	seen[key] = true
	return nil
}

func unknownKey(key, section string) error {
	return &lineError{msg: fmt.Sprintf("unknown key %q in [%s]", key, section)}
}

// splitList splits a comma-separated list, refusing empty items.
func splitList(v string) ([]string, error) {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
		if parts[i] == "" {
			return nil, errors.New("empty list item")
		}
	}
	return parts, nil
}

func (in *Interface) set(key string, bval []byte, seen map[string]bool) error {
	if key == "privatekey" {
		if err := once(seen, "PrivateKey"); err != nil {
			return err
		}
		k := make(secret.Bytes, KeySize)
		if err := decodeKeyBytes(k, bval); err != nil {
			return err
		}
		in.PrivateKey = k
		return nil
	}
	val := string(bval)
	switch key {
	case "address":
		items, err := splitList(val)
		if err != nil {
			return err
		}
		for _, it := range items {
			pfx, err := parseAddress(it)
			if err != nil {
				return err
			}
			if len(in.Addresses) == MaxAddresses {
				return fmt.Errorf("more than %d addresses", MaxAddresses)
			}
			in.Addresses = append(in.Addresses, pfx)
		}
	case "dns":
		items, err := splitList(val)
		if err != nil {
			return err
		}
		for _, it := range items {
			if a, err := netip.ParseAddr(it); err == nil {
				it = a.String()
			}
			if err := checkDNS(it); err != nil {
				return err
			}
			if len(in.DNS) == MaxDNS {
				return fmt.Errorf("more than %d DNS entries", MaxDNS)
			}
			in.DNS = append(in.DNS, it)
		}
	case "listenport":
		if err := once(seen, "ListenPort"); err != nil {
			return err
		}
		n, err := parseUint(val, 65535)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port (1 to 65535)", val)
		}
		in.ListenPort = uint16(n)
	case "mtu":
		if err := once(seen, "MTU"); err != nil {
			return err
		}
		n, err := parseUint(val, MaxMTU)
		if err != nil || n < MinMTU {
			return fmt.Errorf("%q is not between %d and %d", val, MinMTU, MaxMTU)
		}
		in.MTU = n
	default:
		return unknownKey(key, "Interface")
	}
	return nil
}

func (peer *Peer) set(key string, bval []byte, seen map[string]bool) error {
	if key == "presharedkey" {
		if err := once(seen, "PresharedKey"); err != nil {
			return err
		}
		k := make(secret.Bytes, KeySize)
		if err := decodeKeyBytes(k, bval); err != nil {
			return err
		}
		peer.PresharedKey = k
		return nil
	}
	val := string(bval)
	switch key {
	case "publickey":
		if err := once(seen, "PublicKey"); err != nil {
			return err
		}
		k, err := ParseKey(val)
		if err != nil {
			return err
		}
		if k.IsZero() {
			return errors.New("all-zero public key")
		}
		peer.PublicKey = k
	case "endpoint":
		if err := once(seen, "Endpoint"); err != nil {
			return err
		}
		e, err := canonicalEndpoint(val)
		if err != nil {
			return err
		}
		peer.Endpoint = e
	case "allowedips":
		items, err := splitList(val)
		if err != nil {
			return err
		}
		for _, it := range items {
			pfx, err := netip.ParsePrefix(it)
			if err != nil {
				return fmt.Errorf("%q is not a prefix", it)
			}
			if len(peer.AllowedIPs) == MaxAllowedIPs {
				return fmt.Errorf("more than %d allowed IPs", MaxAllowedIPs)
			}
			peer.AllowedIPs = append(peer.AllowedIPs, pfx.Masked())
		}
	case "persistentkeepalive":
		if err := once(seen, "PersistentKeepalive"); err != nil {
			return err
		}
		if strings.EqualFold(val, "off") {
			peer.PersistentKeepalive = 0
			return nil
		}
		n, err := parseUint(val, MaxKeepalive)
		if err != nil {
			return fmt.Errorf("%q is not off or 0 to %d", val, MaxKeepalive)
		}
		peer.PersistentKeepalive = n
	default:
		return unknownKey(key, "Peer")
	}
	return nil
}

// parseAddress accepts "ip/bits" or a bare "ip" (a host address).
func parseAddress(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address with prefix", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseUint parses a decimal of at most 5 digits without sign, <= max.
func parseUint(s string, max int) (int, error) {
	if len(s) == 0 || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	n, _ := strconv.Atoi(s)
	if n > max {
		return 0, errors.New("too large")
	}
	return n, nil
}

// ExportWGQuick writes p as a wg-quick .conf in canonical form:
//
//	[Interface]
//	PrivateKey = <base64>
//	Address = <prefix>, <prefix>      (omitted when empty)
//	DNS = <entry>, <entry>            (omitted when empty)
//	ListenPort = <port>               (omitted when 0)
//	MTU = <mtu>                       (omitted when 0)
//
//	[Peer]
//	PublicKey = <base64>
//	PresharedKey = <base64>           (omitted when nil)
//	Endpoint = <host:port>            (omitted when empty)
//	AllowedIPs = <prefix>, <prefix>   (omitted when empty)
//	PersistentKeepalive = <seconds>   (omitted when 0)
//
// with one blank line before each [Peer], LF line ends and a final LF. The
// result holds the private key: the caller writes it to a file with mode
// 0600 and wipes it.
func ExportWGQuick(p Profile) (secret.Bytes, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	in := p.Interface
	// Size the buffer up front so that it never grows: growing would leave
	// an unwiped copy of the private key behind.
	size := 128 + 64*len(in.Addresses) + 8*MaxHostnameLen + len(in.DNS)*(MaxHostnameLen+2)
	for _, peer := range p.Peers {
		size += 256 + len(peer.Endpoint) + 64*len(peer.AllowedIPs)
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	b.WriteString("[Interface]\nPrivateKey = ")
	b.WriteString(EncodePrivateKey(in.PrivateKey))
	b.WriteByte('\n')
	writePrefixes(b, "Address", in.Addresses)
	if len(in.DNS) > 0 {
		b.WriteString("DNS = " + strings.Join(in.DNS, ", ") + "\n")
	}
	if in.ListenPort != 0 {
		fmt.Fprintf(b, "ListenPort = %d\n", in.ListenPort)
	}
	if in.MTU != 0 {
		fmt.Fprintf(b, "MTU = %d\n", in.MTU)
	}
	for _, peer := range p.Peers {
		b.WriteString("\n[Peer]\nPublicKey = " + peer.PublicKey.String() + "\n")
		if peer.PresharedKey != nil {
			b.WriteString("PresharedKey = " + EncodePrivateKey(peer.PresharedKey) + "\n")
		}
		if peer.Endpoint != "" {
			b.WriteString("Endpoint = " + peer.Endpoint + "\n")
		}
		writePrefixes(b, "AllowedIPs", peer.AllowedIPs)
		if peer.PersistentKeepalive != 0 {
			fmt.Fprintf(b, "PersistentKeepalive = %d\n", peer.PersistentKeepalive)
		}
	}
	return secret.Bytes(b.Bytes()), nil
}

func writePrefixes(b *bytes.Buffer, key string, ps []netip.Prefix) {
	if len(ps) == 0 {
		return
	}
	b.WriteString(key + " = ")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	b.WriteByte('\n')
}

// wipe clears the secret keys held by p.
func (p *Profile) wipe() {
	p.Interface.PrivateKey.Wipe()
	for i := range p.Peers {
		p.Peers[i].PresharedKey.Wipe()
	}
}

// Wipe clears the private and preshared keys held by p.
func (p *Profile) Wipe() { p.wipe() }
