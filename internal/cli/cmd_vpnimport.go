package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/openvpn"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/wireguard"
)

// Field names of an OpenVPN profile kept in a vpn item: the profile
// without its inline blocks, and one field per block ("openvpn.ca",
// "openvpn.key", ...), hidden when the block holds a secret.
const (
	ovpnConfigField = "openvpn.config"
	ovpnFieldPrefix = "openvpn."
)

// vpnImportCommand is `safe vpn import FILE`.
func (a *app) vpnImportCommand() *cobra.Command {
	var title, format string
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a WireGuard wg-quick .conf or an OpenVPN .ovpn profile (inline keys) as a vpn item",
		Long: `Import a VPN profile as a vpn item.

A WireGuard wg-quick configuration becomes the item's WireGuard profile: its
private and preshared keys are never shown unless asked for, and
` + "`safe vpn export NAME`" + ` writes the configuration back (in canonical form: a
file with comments or unusual spacing is exported without them, and import
says so).

An OpenVPN profile must have its certificates and keys inline (<ca>, <cert>,
<key>, <tls-auth>, <tls-crypt>, ...). The profile without its inline blocks
becomes the field openvpn.config, each block a field openvpn.TAG; key blocks
(key, tls-auth, tls-crypt, tls-crypt-v2, secret, pkcs12, auth-user-pass) are
hidden fields. ` + "`safe vpn export NAME`" + ` writes the .ovpn back byte for byte.
Commands that OpenVPN would run (up, down, ...), code or configuration it would
load (plugin, config, ...), files it would write (log, status, ...),
script-security above 1 and keys in separate files are refused; lines are read
as OpenVPN reads them (quotes, escapes, "setenv opt"). Export checks the
profile again, so fields edited since import cannot add any of these.

The format is found from the content (a [Interface] section is WireGuard);
--format chooses it. The title defaults to the file name without extension.`,
		Example: `  safe vpn import wg0.conf
  safe vpn import ~/Downloads/office.ovpn --title "Office VPN"`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			if title == "" {
				title = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
			}
			data, err := readSmallFile(path)
			if err != nil {
				return err
			}
			defer secret.Wipe(data)
			switch format {
			case "":
				format = "openvpn"
				if looksWireGuard(data) {
					format = "wireguard"
				}
			case "wireguard", "wg", "wg-quick":
				format = "wireguard"
			case "openvpn", "ovpn":
				format = "openvpn"
			default:
				return usageError{fmt.Errorf("--format %q: want wireguard or openvpn", format)}
			}
			it := item.Item{Type: item.VPN, Title: title}
			var summary, note string
			if format == "wireguard" {
				p, err := wireguard.ParseWGQuick(data)
				if err != nil {
					return withHint(ExitInvalid, "fix the line named above", fmt.Errorf("import %s: %w", path, err))
				}
				defer p.Wipe()
				raw, err := json.Marshal(p)
				if err != nil {
					return err
				}
				it.VPN = raw
				canon, err := wireguard.ExportWGQuick(p)
				if err != nil {
					return err
				}
				if !bytes.Equal(canon, data) {
					note = "the stored profile is the canonical form of the file (comments, spacing and key order are not kept); `safe vpn export` prints that form"
				}
				canon.Wipe()
				summary = fmt.Sprintf("WireGuard profile, %d peer(s); the private and preshared keys are hidden", len(p.Peers))
			} else {
				p, err := openvpn.Parse(data)
				if err != nil {
					return withHint(ExitInvalid, "fix the line named above", fmt.Errorf("import %s: %w", path, err))
				}
				defer p.Wipe()
				it.Fields = ovpnFields(p)
				var shown, hidden []string
				for _, b := range p.Blocks {
					if openvpn.Secret(b.Tag) {
						hidden = append(hidden, b.Tag)
					} else {
						shown = append(shown, b.Tag)
					}
				}
				summary = fmt.Sprintf("OpenVPN profile; inline blocks as fields: %s; hidden: %s", listOrNone(shown), listOrNone(hidden))
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			var added []item.Item
			if a.vault != "" {
				added, err = sc.AddTo(a.ctx, a.vault, []item.Item{it})
			} else {
				added, err = sc.Add(a.ctx, []item.Item{it})
			}
			if err != nil {
				return err
			}
			got := added[0]
			if a.jsonOut {
				out := map[string]any{"id": got.ID, "title": got.Title, "type": got.Type, "revision": got.Revision, "format": format}
				if note != "" {
					out["note"] = note
				}
				return a.printJSON(out)
			}
			a.printf("Added vpn %q (%s): %s.\n", textsafe.Clean(got.Title), got.ID, summary)
			if note != "" {
				a.eprintf("note: %s\n", textsafe.Clean(note))
			}
			return nil
		},
	}
	c.Flags().StringVar(&title, "title", "", "the item's `TITLE` (default: the file name without extension)")
	c.Flags().StringVar(&format, "format", "", "`wireguard` or openvpn (default: found from the content)")
	a.vaultFlag(c)
	return c
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// looksWireGuard reports whether the first line that is not blank or a
// comment is a wg-quick section header.
func looksWireGuard(data []byte) bool {
	for _, l := range bytes.Split(data, []byte("\n")) {
		if i := bytes.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		s := strings.ToLower(string(l))
		return s == "[interface]" || s == "[peer]"
	}
	return false
}

// ovpnFields turns a parsed profile into item fields.
func ovpnFields(p openvpn.Profile) []item.Field {
	fields := []item.Field{{Name: ovpnConfigField, Kind: item.KindText, Value: string(p.Skeleton)}}
	for _, b := range p.Blocks {
		kind := item.KindText
		if openvpn.Secret(b.Tag) {
			kind = item.KindHidden
		}
		fields = append(fields, item.Field{Name: ovpnFieldPrefix + b.Tag, Kind: kind, Value: string(b.Body)})
	}
	return fields
}

// exportOpenVPN rebuilds the .ovpn file of an item made by `safe vpn
// import`. ok is false when the item holds no OpenVPN profile.
func exportOpenVPN(it item.Item) (conf secret.Bytes, ok bool, err error) {
	p := openvpn.Profile{}
	byTag := map[string]string{}
	for _, f := range it.Fields {
		switch {
		case f.Name == ovpnConfigField:
			p.Skeleton = []byte(f.Value)
			ok = true
		case strings.HasPrefix(f.Name, ovpnFieldPrefix):
			byTag[strings.TrimPrefix(f.Name, ovpnFieldPrefix)] = f.Value
		}
	}
	if !ok {
		return nil, false, nil
	}
	// The blocks go back in the order the skeleton names them.
	for _, l := range bytes.Split(p.Skeleton, []byte("\n")) {
		t := strings.TrimSpace(string(l))
		if len(t) < 3 || t[0] != '<' || t[1] == '/' || t[len(t)-1] != '>' {
			continue
		}
		tag := t[1 : len(t)-1]
		if body, found := byTag[tag]; found {
			p.Blocks = append(p.Blocks, openvpn.Block{Tag: tag, Body: secret.Bytes(body)})
		}
	}
	conf, err = p.Export()
	p.Wipe()
	if err != nil {
		return nil, true, withHint(ExitInvalid, "the item's openvpn.* fields were edited; fix them or import the profile again", fmt.Errorf("%q: %w", it.Title, err))
	}
	return conf, true, nil
}
