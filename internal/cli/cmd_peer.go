package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/peerauth"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// peerAddrFile, in SAFE_HOME, holds the address `safe peer listen` listens
// on while it runs, so that `safe device link` can send it to a new device.
const peerAddrFile = "peer-listen"

func (a *app) peerCommand() *cobra.Command {
	c := &cobra.Command{Use: "peer", Short: "Sync directly with another device of the account, without a server"}
	c.AddCommand(a.peerListenCommand(), a.peerSyncCommand())
	return c
}

func (a *app) peerListenCommand() *cobra.Command {
	var addr, pwFile, email string
	c := &cobra.Command{
		Use:   "listen",
		Short: "Serve this account's store to its other devices (foreground)",
		Long: `Listens on --addr for the account's other devices and serves them the store
this vault syncs with: its folder, or, for a vault without a remote, a store
made in SAFE_HOME/hub (asked for the password once). Only devices certified by
the account and not revoked get past the handshake (Noise XX with ML-KEM-768;
docs/design.md §16). A vault that syncs with a server cannot serve peers.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := callAgent[service.AccountStatus](a, service.OpAccountStatus, nil)
			var ae *agent.Error
			if errors.As(err, &ae) && ae.Code == service.CodeNoRemote {
				err = nil
			}
			if err != nil {
				return err
			}
			p, err := a.paths()
			if err != nil {
				return err
			}
			if st.Remote == nil {
				if st.Remote, err = a.makeHub(filepath.Join(p.Data, "hub"), pwFile, email); err != nil {
					return err
				}
			}
			switch st.Remote.Kind {
			case vault.RemoteFolder:
			case vault.RemoteServer:
				return withHint(ExitInvalid, "sync with the server instead (`safe sync`); peers serve accounts kept on a folder or a peer",
					fmt.Errorf("this vault syncs with the server %s, so it has no store of its own to serve", st.Remote.URL))
			default:
				return withHint(ExitInvalid, "run `safe peer listen` on the device this one syncs with",
					fmt.Errorf("this vault syncs through the peer %s", st.Remote.URL))
			}
			if st.Device == "" {
				if st, err = callAgent[service.AccountStatus](a, service.OpAccountStatus, nil); err != nil {
					return err
				}
			}
			store := service.FolderPath(st.Remote.URL)
			var lc net.ListenConfig
			ln, err := lc.Listen(a.ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			defer ln.Close()
			addrPath := filepath.Join(p.Data, peerAddrFile)
			if err := os.WriteFile(addrPath, []byte(ln.Addr().String()), 0o600); err != nil {
				return err
			}
			defer os.Remove(addrPath)
			a.printf("Listening on %s for this account's devices (serving %s).\n", ln.Addr(), store)
			if f, ok := a.env.Stdout.(*os.File); ok {
				f.Sync()
			}
			return peerauth.Serve(a.ctx, ln, st.Device, a.agentSigner(), a.agentTrusted(),
				func() (remote.Remote, error) { return folder.Open(store) },
				func(s peerauth.Session) {
					who := s.Device
					if who == "" {
						who = "an unknown device"
					}
					if s.Err != nil && !errors.Is(s.Err, context.Canceled) {
						a.eprintf("%s peer %s (%s): refused or failed: %s\n", time.Now().Format(time.TimeOnly), textsafe.Clean(who), textsafe.Clean(s.Remote), textsafe.Clean(s.Err.Error()))
						return
					}
					// Take in what the peer sent.
					if _, err := callAgent[vault.SyncResult](a, service.OpSync, nil); err != nil {
						a.eprintf("%s synced with %s, but this device's own sync failed: %s\n", time.Now().Format(time.TimeOnly), textsafe.Clean(who), textsafe.Clean(err.Error()))
						return
					}
					a.eprintf("%s synced with device %s (%s)\n", time.Now().Format(time.TimeOnly), textsafe.Clean(who), textsafe.Clean(s.Remote))
				})
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:7479", "listen on `HOST:PORT` (0.0.0.0:PORT for the local network)")
	c.Flags().StringVar(&pwFile, "password-file", "", "for a vault without a remote: read the password from `FILE` (or fd:N)")
	c.Flags().StringVar(&email, "email", "me@safehold.local", "for a vault without a remote: the account's label in the new store")
	return c
}

// makeHub puts a vault without a remote on a new folder store at dir, the
// store `peer listen` then serves.
func (a *app) makeHub(dir, pwFile, email string) (*vault.RemoteInfo, error) {
	pw, err := a.password(pwFile, "Password (to put the account on its peer store): ")
	if err != nil {
		return nil, err
	}
	defer pw.Wipe()
	reg, err := callAgent[service.Registered](a, service.OpAccountRegister, service.RegisterArgs{Name: "hub", URL: dir, Email: email, Password: pw})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.env.Stderr, "This vault now syncs with the store %s, which `safe peer listen` serves.\nSecret Key (needed with the password by a device that logs in without a link): %s\n", dir, reg.SecretKey)
	return reg.Remote, nil
}

func (a *app) peerSyncCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sync ADDRESS",
		Short: "Sync now through the device listening at ADDRESS (HOST:PORT)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if _, _, err := net.SplitHostPort(args[0]); err != nil {
				return usageError{fmt.Errorf("%q is not HOST:PORT: %w", args[0], err)}
			}
			res, err := callAgent[vault.SyncResult](a, service.OpPeerSync, service.PeerSyncArgs{Addr: args[0]})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printSync("Synced with "+args[0], &res)
			return nil
		},
	}
}

// agentSigner proves this device's identity through the agent, which
// holds the device key.
func (a *app) agentSigner() peerauth.Signer {
	return func(role string, binding []byte) (string, []byte, error) {
		p, err := callAgent[service.Proof](a, service.OpPeerProve, service.ProveArgs{Role: role, Binding: binding})
		return p.Device, p.Signature, err
	}
}

// agentTrusted asks the agent for the account's trusted devices.
func (a *app) agentTrusted() peerauth.Trusted {
	return func() (map[string]*sign.PublicKey, error) {
		list, err := callAgent[[]service.TrustedDevice](a, service.OpPeerTrusted, nil)
		if err != nil {
			return nil, err
		}
		m := make(map[string]*sign.PublicKey, len(list))
		for _, d := range list {
			pub, err := sign.ParsePublicKey(d.Public)
			if err != nil {
				return nil, fmt.Errorf("trusted device %s: %w", d.ID, err)
			}
			m[d.ID] = pub
		}
		return m, nil
	}
}

// dialRemote opens a remote of a kind other than server and folder for a
// device being set up: a peer, trusted as the device that linked this one.
func (a *app) dialRemote(t vault.RemoteTarget, linked *vault.LinkedDevice) (remote.Remote, error) {
	if t.Kind != vault.RemotePeer || linked == nil {
		return nil, fmt.Errorf("cannot set up from a remote of kind %q", t.Kind)
	}
	b := linked.Bundle
	linker, err := sign.ParsePublicKey(b.LinkerPublic)
	if err != nil {
		return nil, fmt.Errorf("the linking device's key: %w", err)
	}
	self := func(role string, binding []byte) (string, []byte, error) {
		sig, err := linked.Key.Sign(peerauth.Context, peerauth.Message(role, binding))
		return b.Device, sig, err
	}
	trusted := func() (map[string]*sign.PublicKey, error) {
		return map[string]*sign.PublicKey{b.Linker: linker}, nil
	}
	return peerauth.Dial(a.ctx, t.URL, b.Device, self, trusted)
}
