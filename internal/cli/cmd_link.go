package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/link"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// Exit codes of device links.
const (
	ExitLinkFailed  = 18 // the code did not match, or the link was tampered with
	ExitLinkExpired = 19 // nobody joined before the code expired
)

func init() { agentCodes[service.CodePeerRefused] = ExitNotAllowed }

// linkHello is what a joining device sends once the code is confirmed.
type linkHello struct {
	Public   []byte `json:"public"`
	Platform string `json:"platform"`
}

// linkOptions reads the link's network settings: --addr, and the
// discovery port from SAFE_LINK_PORT.
func (a *app) linkOptions(addr string, expiry time.Duration) (link.Options, error) {
	src, err := random.New()
	if err != nil {
		return link.Options{}, err
	}
	o := link.Options{Addr: addr, Expiry: expiry, Rand: src}
	if p := a.env.Getenv("SAFE_LINK_PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return o, usageError{fmt.Errorf("SAFE_LINK_PORT=%q is not a port number", p)}
		}
		o.DiscoveryPort = n
	}
	return o, nil
}

func (a *app) deviceLinkCommand() *cobra.Command {
	var addr string
	var expiry time.Duration
	c := &cobra.Command{
		Use:   "link",
		Short: "Show a one-time code that enrols a new device of this account",
		Long: `Prints a short one-time code on the first line, then waits. On the new device,
run ` + "`safe device join CODE`" + ` on the same network. The devices agree on a key from
the code (CPace) and only then exchange anything: the new device's key, which
this device certifies, and the account's details and keys back. A wrong code
ends the attempt; the code expires after --timeout.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts, err := a.linkOptions(addr, expiry)
			if err != nil {
				return err
			}
			// The agent must be unlocked before a code is shown.
			if _, err := callAgent[service.AccountStatus](a, service.OpAccountStatus, nil); err != nil {
				return err
			}
			offer, err := link.NewOffer(a.ctx, opts)
			if err != nil {
				return err
			}
			defer offer.Close()
			a.printf("%s\n", offer.Code())
			if f, ok := a.env.Stdout.(*os.File); ok {
				f.Sync()
			}
			fmt.Fprintf(a.env.Stderr, "On the new device, run: safe device join %s\nWaiting (the code expires at %s)...\n", offer.Code(), offer.Expires().Local().Format(time.TimeOnly))
			var device string
			_, err = offer.Serve(a.ctx, func(ctx context.Context, raw []byte, local net.Addr) ([]byte, error) {
				var h linkHello
				if err := json.Unmarshal(raw, &h); err != nil {
					return nil, fmt.Errorf("the new device's hello is malformed: %w", err)
				}
				b, err := callAgent[vault.LinkBundle](a, service.OpDeviceCertify, service.CertifyArgs{Public: h.Public})
				if err != nil {
					return nil, err
				}
				defer b.Wipe()
				device = b.Device
				if b.Target.Kind == vault.RemoteFolder {
					// A folder path means nothing to another machine: if
					// `safe peer listen` serves it, the new device syncs
					// through this one.
					if p, err := a.paths(); err == nil {
						if raw, err := os.ReadFile(filepath.Join(p.Data, peerAddrFile)); err == nil {
							if _, port, err := net.SplitHostPort(string(raw)); err == nil {
								host, _, _ := net.SplitHostPort(local.String())
								b.Target = vault.RemoteTarget{Name: "peer", Kind: vault.RemotePeer, URL: net.JoinHostPort(host, port), Email: b.Target.Email}
							}
						}
					}
				}
				fmt.Fprintf(a.env.Stderr, "Certified the new device %s (%s); it is joining...\n", b.Device, textsafe.Truncate(textsafe.Clean(h.Platform), 60))
				return json.Marshal(b)
			})
			if err != nil {
				if device != "" {
					// Certified, but the new device did not finish: it is
					// not left trusted.
					if _, ferr := callAgent[struct{}](a, service.OpDeviceForget, service.DeviceArgs{ID: device}); ferr != nil {
						a.warnf("could not withdraw the certificate of device %s: %v; revoke it with `safe device revoke %s`", device, ferr, device)
					}
				}
				return linkError(err)
			}
			// Publish the new device in the account document now.
			if _, err := callAgent[json.RawMessage](a, service.OpSync, nil); err != nil {
				a.warnf("the device joined, but this device could not sync: %v", err)
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"device": device})
			}
			a.printf("Device %s joined the account.\n", device)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "listen for the new device on `HOST:PORT` (default: every interface, any port)")
	c.Flags().DurationVar(&expiry, "timeout", link.DefaultExpiry, "the code expires after `DURATION`")
	return c
}

func (a *app) deviceJoinCommand() *cobra.Command {
	var addr, pwFile, totp, name string
	c := &cobra.Command{
		Use:   "join [CODE]",
		Short: "Set up this device from another one showing `safe device link`",
		Long: `Joins the account of the device that shows the code: the server (or folder)
and its fingerprint, the Secret Key and the Master Key come through the link;
you type only the account password, which is checked against them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := a.paths()
			if err != nil {
				return err
			}
			if _, err := os.Stat(p.Vault); err == nil {
				return fmt.Errorf("%w: %s; a device joins once (use another SAFE_HOME)", vault.ErrExists, p.Vault)
			}
			var code string
			if len(args) == 1 {
				code = args[0]
			} else {
				// Typed, the code stays off the command line, where other
				// users of this machine could read it.
				raw, err := a.promptSecret("Code shown on the other device: ", "the code as an argument")
				if err != nil {
					return err
				}
				code = string(raw)
				raw.Wipe()
			}
			if _, err := link.ParseCode(code); err != nil {
				return usageError{err}
			}
			opts, err := a.linkOptions(addr, 0)
			if err != nil {
				return err
			}
			var pw secret.Bytes
			defer func() { pw.Wipe() }()
			key, err := sign.GenerateKey(opts.Rand)
			if err != nil {
				return err
			}
			defer key.Wipe()
			pub, err := key.Public().MarshalBinary()
			if err != nil {
				return err
			}
			hello, _ := json.Marshal(linkHello{Public: pub, Platform: service.Platform()})
			var res *vault.SyncResult
			var joined *vault.LinkBundle
			err = link.Join(a.ctx, code, opts, hello, func(ctx context.Context, raw []byte) error {
				// The password is asked once the code proved right.
				if pw, err = a.password(pwFile, "Account password: "); err != nil {
					return err
				}
				var b vault.LinkBundle
				if err := json.Unmarshal(raw, &b); err != nil {
					return fmt.Errorf("the bundle from the linking device is malformed: %w", err)
				}
				defer b.Wipe()
				t := b.Target
				t.Platform = service.Platform()
				if name != "" {
					t.Name = name
				}
				r, err := a.setUpDevice(p.Vault, vault.JoinRequest{Target: t, Password: pw, SecretKey: b.SecretKey, TOTP: totp,
					Linked: &vault.LinkedDevice{Key: key, Bundle: &b}})
				if err != nil {
					return err
				}
				res, joined = r, &vault.LinkBundle{Target: t, Device: b.Device}
				return nil
			})
			if err != nil {
				return linkError(err)
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"device": joined.Device, "remote": joined.Target.URL, "email": joined.Target.Email, "pulled": res.Pulled})
			}
			a.printf("This device (%s) joined %s on %s: %d entries received.\n", joined.Device, textsafe.Clean(joined.Target.Email), textsafe.Clean(joined.Target.URL), res.Pulled)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "reach the linking device at `HOST:PORT` instead of discovering it on the network")
	c.Flags().StringVar(&pwFile, "password-file", "", "read the account password from `FILE` (or fd:N) instead of prompting")
	c.Flags().StringVar(&totp, "totp", "", "the current two-factor `CODE`, if the account has one")
	c.Flags().StringVar(&name, "name", "", "a short `NAME` for the remote (default: the linking device's)")
	return c
}

// linkError gives a link failure its exit code and hint.
func linkError(err error) error {
	switch {
	case errors.Is(err, link.ErrWrongCode):
		return withHint(ExitLinkFailed, "the code is spent: run `safe device link` again and type the new code exactly", err)
	case errors.Is(err, link.ErrExpired):
		return withHint(ExitLinkExpired, "", err)
	case errors.Is(err, link.ErrNotFound):
		return withHint(ExitLinkFailed, "both devices must be on the same network (or pass --addr HOST:PORT)", err)
	case errors.Is(err, link.ErrProtocol), errors.Is(err, link.ErrRefused):
		return withHint(ExitLinkFailed, "run `safe device link` again for a new code", err)
	}
	return err
}
