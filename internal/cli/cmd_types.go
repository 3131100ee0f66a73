package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/clipboard"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sshkey"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/wireguard"
)

// maxKeyFile bounds key and profile files read from disk.
const maxKeyFile = 1 << 20

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, withHint(ExitUsage, "check the file path", fmt.Errorf("open %s: %w", path, err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, failf(ExitInvalid, "", "%s is larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

// sshFlags fill an SSH key item.
type sshFlags struct {
	generate       bool
	importFile     string
	passphraseFile string
	comment        string
}

func (s *sshFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&s.generate, "ssh-generate", false, "ssh: generate an Ed25519 key pair")
	c.Flags().StringVar(&s.importFile, "import", "", "ssh: import an OpenSSH/PEM private key from `FILE`; vpn: import a wg-quick .conf")
	c.Flags().StringVar(&s.passphraseFile, "key-passphrase-file", "", "ssh: read the imported key's passphrase from `FILE`")
	c.Flags().StringVar(&s.comment, "comment", "", "ssh: key comment (like user@host)")
}

func (s *sshFlags) apply(a *app, c *cobra.Command, it *item.Item) error {
	if it.Type != item.SSHKey {
		if s.generate || s.passphraseFile != "" || s.comment != "" {
			return usageError{fmt.Errorf("--ssh-generate, --key-passphrase-file and --comment are for ssh items")}
		}
		return nil
	}
	// For ssh items, --generate means "generate a key pair".
	gen := s.generate || c.Flags().Changed("generate")
	if gen && s.importFile != "" {
		return usageError{fmt.Errorf("choose --generate or --import, not both")}
	}
	var key sshkey.Key
	switch {
	case gen:
		src, err := random.New()
		if err != nil {
			return err
		}
		if key, err = sshkey.Generate(src, s.comment); err != nil {
			return err
		}
	case s.importFile != "":
		data, err := readSmallFile(s.importFile)
		if err != nil {
			return err
		}
		defer secret.Wipe(data)
		var pass secret.Bytes
		if s.passphraseFile != "" {
			if pass, err = readSecretFile(s.passphraseFile); err != nil {
				return err
			}
			defer pass.Wipe()
		}
		key, err = sshkey.Import(data, pass, s.comment)
		if err != nil && pass == nil && a.stdinIsTerminal() && strings.Contains(err.Error(), "passphrase") {
			if pass, err = a.promptSecret("Key passphrase: ", "--key-passphrase-file FILE"); err != nil {
				return err
			}
			defer pass.Wipe()
			key, err = sshkey.Import(data, pass, s.comment)
		}
		if err != nil {
			return withHint(ExitInvalid, "give an OpenSSH or PEM private key (and its passphrase with --key-passphrase-file)", fmt.Errorf("import %s: %w", s.importFile, err))
		}
	default:
		return nil
	}
	it.SSH = &item.SSHData{PrivateKey: string(key.PrivatePEM), PublicKey: key.AuthorizedKey, Fingerprint: key.Fingerprint}
	key.PrivatePEM.Wipe()
	if it.Title == "" && key.Comment != "" {
		it.Title = key.Comment
	}
	return nil
}

// vpnFlags fill a WireGuard profile.
type vpnFlags struct {
	addresses, dns, allowed    []string
	peerKey, endpoint          string
	keepalive, listenPort, mtu int
}

func (v *vpnFlags) register(c *cobra.Command) {
	c.Flags().StringArrayVar(&v.addresses, "address", nil, "vpn: interface address, like 10.0.0.2/32 (repeatable)")
	c.Flags().StringArrayVar(&v.dns, "dns", nil, "vpn: DNS server (repeatable)")
	c.Flags().StringVar(&v.peerKey, "peer-key", "", "vpn: the peer's public key (base64)")
	c.Flags().StringVar(&v.endpoint, "endpoint", "", "vpn: the peer's host:port")
	c.Flags().StringArrayVar(&v.allowed, "allowed-ips", nil, "vpn: prefixes routed to the peer, like 0.0.0.0/0 (repeatable)")
	c.Flags().IntVar(&v.keepalive, "keepalive", 0, "vpn: persistent keepalive in seconds")
	c.Flags().IntVar(&v.listenPort, "listen-port", 0, "vpn: interface listen port")
	c.Flags().IntVar(&v.mtu, "mtu", 0, "vpn: interface MTU")
}

func (v *vpnFlags) apply(c *cobra.Command, it *item.Item) error {
	if it.Type != item.VPN {
		return nil
	}
	var p wireguard.Profile
	defer p.Wipe()
	if f := c.Flags().Lookup("import"); f != nil && f.Value.String() != "" {
		data, err := readSmallFile(f.Value.String())
		if err != nil {
			return err
		}
		defer secret.Wipe(data)
		if p, err = wireguard.ParseWGQuick(data); err != nil {
			return withHint(ExitInvalid, "fix the line named above", fmt.Errorf("import %s: %w", f.Value.String(), err))
		}
	} else if c.Flags().Changed("generate") {
		src, err := random.New()
		if err != nil {
			return err
		}
		if p.Interface.PrivateKey, err = wireguard.GenerateKey(src); err != nil {
			return err
		}
	} else {
		return usageError{fmt.Errorf("a vpn item needs --generate (new key pair) or --import wg0.conf")}
	}
	for _, s := range v.addresses {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return usageError{fmt.Errorf("--address %q: %v", s, err)}
		}
		p.Interface.Addresses = append(p.Interface.Addresses, pf)
	}
	p.Interface.DNS = append(p.Interface.DNS, v.dns...)
	if v.listenPort != 0 {
		p.Interface.ListenPort = uint16(v.listenPort)
	}
	if v.mtu != 0 {
		p.Interface.MTU = v.mtu
	}
	if v.peerKey != "" {
		k, err := wireguard.ParseKey(v.peerKey)
		if err != nil {
			return usageError{fmt.Errorf("--peer-key: %v", err)}
		}
		peer := wireguard.Peer{PublicKey: k, Endpoint: v.endpoint, PersistentKeepalive: v.keepalive}
		for _, s := range v.allowed {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				return usageError{fmt.Errorf("--allowed-ips %q: %v", s, err)}
			}
			peer.AllowedIPs = append(peer.AllowedIPs, pf)
		}
		p.Peers = append(p.Peers, peer)
	} else if v.endpoint != "" || len(v.allowed) > 0 {
		return usageError{fmt.Errorf("--endpoint and --allowed-ips describe a peer: add --peer-key")}
	}
	if err := p.Validate(); err != nil {
		return withHint(ExitInvalid, "check the addresses, keys and peers", err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	it.VPN = raw
	return nil
}

func (a *app) vpnCommand() *cobra.Command {
	c := &cobra.Command{Use: "vpn", Short: "VPN profiles: import WireGuard and OpenVPN, export, make WireGuard key pairs"}
	var out string
	export := &cobra.Command{
		Use:   "export NAME",
		Short: "Print the item's VPN profile: a wg-quick config, or the imported .ovpn (or write it 0600 with --out)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if len(it.VPN) == 0 {
				conf, ok, err := exportOpenVPN(it)
				if err != nil {
					return err
				}
				if !ok {
					return failf(ExitNotFound, "add one with `safe add vpn` or `safe vpn import FILE`", "%q has no VPN profile", it.Title)
				}
				defer conf.Wipe()
				return a.writeVPNConf(out, conf)
			}
			var p wireguard.Profile
			if err := json.Unmarshal(it.VPN, &p); err != nil {
				return failf(ExitInvalid, "", "%q: the stored profile does not parse: %v", it.Title, err)
			}
			defer p.Wipe()
			conf, err := wireguard.ExportWGQuick(p)
			if err != nil {
				return err
			}
			defer conf.Wipe()
			return a.writeVPNConf(out, conf)
		},
	}
	export.Flags().StringVar(&out, "out", "", "write to `FILE` (0600) instead of standard output")
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Generate a WireGuard key pair (private key on stdout's first line, public on the second)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			src, err := random.New()
			if err != nil {
				return err
			}
			priv, err := wireguard.GenerateKey(src)
			if err != nil {
				return err
			}
			defer priv.Wipe()
			pub, err := wireguard.PublicKeyOf(priv)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"private_key": wireguard.EncodePrivateKey(priv), "public_key": pub.String()})
			}
			a.printf("%s\n%s\n", wireguard.EncodePrivateKey(priv), pub)
			return nil
		},
	}
	a.vaultFlag(export)
	c.AddCommand(export, keygen, a.vpnImportCommand())
	return c
}

// writeVPNConf prints a VPN configuration, or writes it 0600 to out.
func (a *app) writeVPNConf(out string, conf []byte) error {
	if out == "" {
		return a.writeValue(conf)
	}
	if err := writeFileAtomic(out, conf); err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stderr, "Wrote %s (mode 0600).\n", out)
	return nil
}

// writeFileAtomic writes data to path (0600) through a temporary file and a
// rename, so a failure never leaves a half-written file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(dirOf(path), ".safe-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

func (a *app) sshCommand() *cobra.Command {
	c := &cobra.Command{Use: "ssh", Short: "SSH key items"}
	pub := &cobra.Command{
		Use:   "public-key NAME",
		Short: "Print the item's public key as an authorized_keys line",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if it.SSH == nil || it.SSH.PublicKey == "" {
				return failf(ExitNotFound, "add one with `safe add ssh --generate`", "%q has no SSH key", it.Title)
			}
			return a.writeValue([]byte(it.SSH.PublicKey + "\n"))
		},
	}
	a.vaultFlag(pub)
	c.AddCommand(pub)
	return c
}

func (a *app) copyCommand() *cobra.Command {
	var field string
	var clearAfter time.Duration
	c := &cobra.Command{
		Use:   "copy NAME",
		Short: "Copy a field (the password by default) to the clipboard; cleared after 45 s if unchanged",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			backend, err := clipboard.DetectSystem()
			if err != nil {
				return withHint(ExitError, "install wl-clipboard (Wayland), xclip or xsel (X11)", err)
			}
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			var value string
			if field == "totp-code" {
				now, err := currentCode(it)
				if err != nil {
					return err
				}
				value = now.code
			} else if value, _, err = it.Get(field); err != nil {
				return withHint(ExitNotFound, "`safe get "+args[0]+"` lists the item's fields", err)
			}
			if value == "" {
				return failf(ExitNotFound, "", "%q has no %s", it.Title, field)
			}
			v := []byte(value)
			defer secret.Wipe(v)
			if err := clipboard.Copy(a.ctx, backend, v); err != nil {
				return err
			}
			if clearAfter > 0 {
				src, err := random.New()
				if err != nil {
					return err
				}
				tok, err := clipboard.NewToken(src, v, clearAfter.Truncate(time.Millisecond))
				if err != nil {
					return usageError{err}
				}
				if err := clipboard.StartClearer(exec.Command(a.env.Exe, "clipboard-clear"), tok); err != nil {
					return err
				}
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"copied": field, "clear_after_seconds": int(clearAfter.Seconds())})
			}
			msg := fmt.Sprintf("Copied the %s of %q to the clipboard", field, textsafe.Clean(it.Title))
			if clearAfter > 0 {
				msg += fmt.Sprintf("; it is cleared in %s if still there", clearAfter)
			}
			fmt.Fprintln(a.env.Stderr, msg+".")
			return nil
		},
	}
	c.Flags().StringVar(&field, "field", "password", "field to copy (or totp-code for the current one-time code)")
	c.Flags().DurationVar(&clearAfter, "clear-after", 45*time.Second, "clear the clipboard after this long (0 keeps it)")
	a.vaultFlag(c)
	return c
}

// clipboardClearCommand is the hidden helper that copy starts: it reads a
// token on stdin, waits, and clears the clipboard only if it still holds the
// value the token was made for.
func (a *app) clipboardClearCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "clipboard-clear",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			backend, err := clipboard.DetectSystem()
			if err != nil {
				return err
			}
			_, err = clipboard.RunClearer(context.Background(), a.env.Stdin, backend)
			return err
		},
	}
}
