package wireguard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/safehold/safehold/internal/secret"
)

const jsonVersion = 1

// Wire form of a Profile. Field order is the encoding order; every field is
// always present; lists are [] when empty, never null.
type wireProfile struct {
	V         int           `json:"v"`
	Interface wireInterface `json:"interface"`
	Peers     []wirePeer    `json:"peers"`
}

type wireInterface struct {
	PrivateKey string   `json:"private_key"`
	Addresses  []string `json:"addresses"`
	DNS        []string `json:"dns"`
	ListenPort int      `json:"listen_port"`
	MTU        int      `json:"mtu"`
}

type wirePeer struct {
	PublicKey           string   `json:"public_key"`
	PresharedKey        string   `json:"preshared_key"`
	Endpoint            string   `json:"endpoint"`
	AllowedIPs          []string `json:"allowed_ips"`
	PersistentKeepalive int      `json:"persistent_keepalive"`
}

// LogValue implements slog.LogValuer without any key material. Without it
// a JSON log handler would call MarshalJSON, which includes the keys.
func (p Profile) LogValue() slog.Value {
	pub, _ := p.Interface.PublicKey()
	return slog.GroupValue(
		slog.String("public_key", pub.String()),
		slog.Int("peers", len(p.Peers)),
	)
}

// MarshalJSON encodes p for storage inside an encrypted item. Unlike every
// other printing path it contains the private and preshared keys, in wg's
// base64. Example (one peer):
//
//	{"v":1,"interface":{"private_key":"<b64>","addresses":["10.0.0.2/32"],
//	"dns":["1.1.1.1"],"listen_port":0,"mtu":0},"peers":[{"public_key":"<b64>",
//	"preshared_key":"","endpoint":"vpn.example.com:51820",
//	"allowed_ips":["0.0.0.0/0"],"persistent_keepalive":25}]}
//
// (on one line). Unset values are "", 0 or [].
func (p Profile) MarshalJSON() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	in := p.Interface
	w := wireProfile{
		V: jsonVersion,
		Interface: wireInterface{
			PrivateKey: EncodePrivateKey(in.PrivateKey),
			Addresses:  prefixStrings(in.Addresses),
			DNS:        append([]string{}, in.DNS...),
			ListenPort: int(in.ListenPort),
			MTU:        in.MTU,
		},
		Peers: make([]wirePeer, 0, len(p.Peers)),
	}
	for _, peer := range p.Peers {
		wp := wirePeer{
			PublicKey:           peer.PublicKey.String(),
			Endpoint:            peer.Endpoint,
			AllowedIPs:          prefixStrings(peer.AllowedIPs),
			PersistentKeepalive: peer.PersistentKeepalive,
		}
		if peer.PresharedKey != nil {
			wp.PresharedKey = EncodePrivateKey(peer.PresharedKey)
		}
		w.Peers = append(w.Peers, wp)
	}
	return json.Marshal(w)
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// UnmarshalJSON accepts exactly the encoding MarshalJSON produces: after
// removing insignificant white space, the input must equal the re-encoding
// of the value it decodes to, and the value must validate.
func (p *Profile) UnmarshalJSON(data []byte) error {
	if len(data) > MaxConfigSize {
		return fmt.Errorf("%w: stored profile over %d bytes", ErrProfile, MaxConfigSize)
	}
	var w wireProfile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("%w: stored profile: %v", ErrProfile, redactJSONError(err))
	}
	if w.V != jsonVersion {
		return perr("stored profile version %d, want %d", w.V, jsonVersion)
	}
	np, err := w.profile()
	if err != nil {
		np.wipe()
		return err
	}
	again, err := np.MarshalJSON()
	if err != nil {
		np.wipe()
		return err
	}
	var compact bytes.Buffer
	cerr := json.Compact(&compact, data)
	same := cerr == nil && bytes.Equal(compact.Bytes(), again)
	secret.Wipe(compact.Bytes())
	secret.Wipe(again)
	if !same {
		np.wipe()
		return perr("stored profile is not in canonical form")
	}
	*p = np
	return nil
}

func (w wireProfile) profile() (Profile, error) {
	var p Profile
	if len(w.Peers) > MaxPeers || len(w.Interface.Addresses) > MaxAddresses ||
		len(w.Interface.DNS) > MaxDNS || w.Interface.ListenPort < 0 || w.Interface.ListenPort > 65535 {
		return p, perr("stored profile exceeds a bound")
	}
	var err error
	if p.Interface.PrivateKey, err = ParsePrivateKey(w.Interface.PrivateKey); err != nil {
		return p, err
	}
	if p.Interface.Addresses, err = parsePrefixes(w.Interface.Addresses); err != nil {
		return p, err
	}
	if len(w.Interface.DNS) > 0 {
		p.Interface.DNS = w.Interface.DNS
	}
	p.Interface.ListenPort = uint16(w.Interface.ListenPort)
	p.Interface.MTU = w.Interface.MTU
	for _, wp := range w.Peers {
		var peer Peer
		if peer.PublicKey, err = ParseKey(wp.PublicKey); err != nil {
			return p, err
		}
		if wp.PresharedKey != "" {
			if peer.PresharedKey, err = ParsePrivateKey(wp.PresharedKey); err != nil {
				return p, err
			}
		}
		peer.Endpoint = wp.Endpoint
		if len(wp.AllowedIPs) > MaxAllowedIPs {
			return p, perr("more than %d allowed IPs", MaxAllowedIPs)
		}
		if peer.AllowedIPs, err = parsePrefixes(wp.AllowedIPs); err != nil {
			return p, err
		}
		peer.PersistentKeepalive = wp.PersistentKeepalive
		p.Peers = append(p.Peers, peer)
	}
	return p, nil
}

// parsePrefixes parses canonical prefixes; nil for an empty list.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, perr("%q is not a prefix", s)
		}
		out = append(out, pfx)
	}
	return out, nil
}

// redactJSONError keeps the kind of a decoding error but never input text.
func redactJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("wrong type for field %q", e.Field)
	}
	return "malformed"
}
