package wireguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/safehold/safehold/internal/secret"
)

// Bounds on a profile. They are far above real configurations and exist so
// that a hostile file cannot make us allocate without limit.
const (
	MaxPeers           = 1024
	MaxAddresses       = 64
	MaxDNS             = 32
	MaxAllowedIPs      = 1024
	MinMTU             = 576
	MaxMTU             = 65535
	MaxKeepalive       = 65535
	MaxHostnameLen     = 253
	MaxConfigSize      = 512 << 10 // wg-quick text and JSON alike
	maxHostnameLabelLn = 63
)

// ErrProfile is wrapped by every validation error.
var ErrProfile = errors.New("invalid wireguard profile")

// Profile is a wg-quick configuration: one interface and its peers.
type Profile struct {
	Interface Interface
	Peers     []Peer
}

// Interface is the [Interface] section.
type Interface struct {
	// PrivateKey is 32 bytes (required).
	PrivateKey secret.Bytes
	// Addresses are the interface addresses with their prefix length
	// (host bits kept, as wg-quick passes them to ip address add).
	Addresses []netip.Prefix
	// DNS holds resolver IP addresses and search domains, in order.
	DNS []string
	// ListenPort is the UDP port; 0 means unset (a random port).
	ListenPort uint16
	// MTU of the interface; 0 means unset (wg-quick picks one).
	MTU int
}

// Peer is a [Peer] section.
type Peer struct {
	// PublicKey of the peer (required).
	PublicKey Key
	// PresharedKey is nil or 32 bytes.
	PresharedKey secret.Bytes
	// Endpoint is "" or host:port, host being an IP address (IPv6 in
	// brackets) or a DNS name.
	Endpoint string
	// AllowedIPs are masked prefixes (no host bits set).
	AllowedIPs []netip.Prefix
	// PersistentKeepalive in seconds; 0 means off.
	PersistentKeepalive int
}

// PublicKey derives the interface's public key.
func (i Interface) PublicKey() (Key, error) { return PublicKeyOf(i.PrivateKey) }

func perr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProfile}, a...)...)
}

// Validate checks every bound and canonical-form rule. The JSON and
// wg-quick encoders refuse a profile that does not validate.
func (p Profile) Validate() error {
	in := p.Interface
	if len(in.PrivateKey) != KeySize {
		return perr("interface private key must be %d bytes", KeySize)
	}
	if len(in.Addresses) > MaxAddresses {
		return perr("more than %d interface addresses", MaxAddresses)
	}
	for _, a := range in.Addresses {
		if err := checkPrefix(a, false); err != nil {
			return perr("address %s: %v", a, err)
		}
	}
	if len(in.DNS) > MaxDNS {
		return perr("more than %d DNS entries", MaxDNS)
	}
	for _, d := range in.DNS {
		if err := checkDNS(d); err != nil {
			return err
		}
	}
	if in.MTU != 0 && (in.MTU < MinMTU || in.MTU > MaxMTU) {
		return perr("mtu %d not between %d and %d", in.MTU, MinMTU, MaxMTU)
	}
	if len(p.Peers) > MaxPeers {
		return perr("more than %d peers", MaxPeers)
	}
	seen := make(map[Key]bool, len(p.Peers))
	for i, peer := range p.Peers {
		if err := peer.validate(); err != nil {
			return fmt.Errorf("peer %d: %w", i+1, err)
		}
		if seen[peer.PublicKey] {
			return perr("peer %d: public key %s appears twice", i+1, peer.PublicKey)
		}
		seen[peer.PublicKey] = true
	}
	return nil
}

func (peer Peer) validate() error {
	if peer.PublicKey.IsZero() {
		return perr("public key missing")
	}
	if peer.PresharedKey != nil && len(peer.PresharedKey) != KeySize {
		return perr("preshared key must be %d bytes", KeySize)
	}
	if peer.Endpoint != "" {
		if canon, err := canonicalEndpoint(peer.Endpoint); err != nil {
			return err
		} else if canon != peer.Endpoint {
			return perr("endpoint %q is not in canonical form %q", peer.Endpoint, canon)
		}
	}
	if len(peer.AllowedIPs) > MaxAllowedIPs {
		return perr("more than %d allowed IPs", MaxAllowedIPs)
	}
	for _, a := range peer.AllowedIPs {
		if err := checkPrefix(a, true); err != nil {
			return perr("allowed IP %s: %v", a, err)
		}
	}
	if peer.PersistentKeepalive < 0 || peer.PersistentKeepalive > MaxKeepalive {
		return perr("persistent keepalive %d not between 0 and %d", peer.PersistentKeepalive, MaxKeepalive)
	}
	return nil
}

func checkPrefix(p netip.Prefix, masked bool) error {
	if !p.IsValid() {
		return errors.New("not a valid prefix")
	}
	if p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return errors.New("zones and IPv4-mapped IPv6 addresses are not allowed")
	}
	if masked && p != p.Masked() {
		return fmt.Errorf("host bits set (did you mean %s?)", p.Masked())
	}
	return nil
}

// checkDNS accepts a canonical IP address or a search domain.
func checkDNS(d string) error {
	if a, err := netip.ParseAddr(d); err == nil {
		if a.Zone() != "" || a.String() != d || a.Is4In6() {
			return perr("dns server %q is not a canonical address", d)
		}
		return nil
	}
	if err := checkHostname(d); err != nil {
		return perr("dns entry %q: %v", d, err)
	}
	return nil
}

// checkHostname accepts LDH names: dot-separated labels of letters, digits
// and hyphens, 1 to 63 characters, not starting or ending with a hyphen; at
// most 253 characters; no trailing dot; not all-numeric in the last label
// (that would be a malformed IP address).
func checkHostname(h string) error {
	if h == "" || len(h) > MaxHostnameLen {
		return errors.New("hostname empty or too long")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > maxHostnameLabelLn || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("not a valid hostname")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("not a valid hostname")
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("not a valid hostname or IP address")
	}
	return nil
}

// canonicalEndpoint validates host:port and returns its canonical form:
// IP hosts in netip's canonical text (IPv6 in brackets), DNS names as
// given, the port in decimal without leading zeros.
func canonicalEndpoint(e string) (string, error) {
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return "", perr("endpoint %q is not host:port", e)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", perr("endpoint %q: port must be 1 to 65535", e)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || a.Is4In6() {
			return "", perr("endpoint %q: zones and IPv4-mapped addresses are not allowed", e)
		}
		host = a.String()
	} else if err := checkHostname(host); err != nil {
		return "", perr("endpoint %q: %v", e, err)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}
