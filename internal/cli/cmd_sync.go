package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/keycode"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// Exit codes of sync commands (docs/cli.md).
const (
	ExitRemote     = 13 // the remote failed verification: sync stopped, nothing changed locally
	ExitOffline    = 14 // the remote is unreachable; writes stay queued
	ExitRemoteAuth = 15 // the remote refused the login or session
)

func init() {
	agentCodes[service.CodeRemoteTampered] = ExitRemote
	agentCodes[service.CodeFingerprint] = ExitRemote
	agentCodes[service.CodePrelogin] = ExitRemote
	agentCodes[service.CodeOffline] = ExitOffline
	agentCodes[service.CodeRemoteAuth] = ExitRemoteAuth
	agentCodes[service.CodeTOTPRequired] = ExitRemoteAuth
	agentCodes[service.CodeNoRemote] = ExitUsage
	agentCodes[service.CodeRemoteExists] = ExitExists
}

// classifyRemote maps in-process remote errors (account login on a new
// device runs without an agent).
func classifyRemote(err error) (int, string, bool) {
	switch {
	case errors.Is(err, vault.ErrRemoteTampered), errors.Is(err, httpremote.ErrFingerprint), errors.Is(err, vault.ErrPrelogin):
		return ExitRemote, "nothing was changed; the server (or someone between) served data that fails verification", true
	case errors.Is(err, remote.ErrUnavailable):
		return ExitOffline, "check the server address and that it is running", true
	case errors.Is(err, remote.ErrTOTPRequired):
		return ExitRemoteAuth, "pass --totp CODE (or --recovery-code CODE)", true
	case errors.Is(err, remote.ErrAuth):
		return ExitRemoteAuth, "check the e-mail address, password and Secret Key", true
	}
	return 0, "", false
}

// remoteFlags are the flags that name a remote account.
type remoteFlags struct {
	server, email, fingerprint, pwFile, name string
	manual                                   bool
}

func (f *remoteFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.server, "server", "", "the server's `URL` (https://host:port), or a folder path for a folder remote")
	c.Flags().StringVar(&f.email, "email", "", "the account's e-mail `ADDRESS`")
	c.Flags().StringVar(&f.fingerprint, "fingerprint", "", "the server certificate's SHA-256 `FINGERPRINT` (printed by `safe serve`); asked for when absent")
	c.Flags().StringVar(&f.pwFile, "password-file", "", "read the password from `FILE` (or fd:N) instead of prompting")
	c.Flags().BoolVar(&f.manual, "manual", false, "sync only when asked (`safe sync`), not after every change")
}

// pinFingerprint returns the fingerprint to pin for a server: the flag's, or
// the one the server shows, after the user accepts it on a terminal.
func (a *app) pinFingerprint(f *remoteFlags) (string, error) {
	if service.RemoteKind(f.server) != vault.RemoteServer {
		return "", nil
	}
	fp := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(f.fingerprint), ":", ""))
	if fp != "" {
		if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
			return "", failf(ExitUsage, "copy the 64 hexadecimal digits `safe serve` prints", "--fingerprint %q is not a SHA-256 fingerprint", f.fingerprint)
		}
		return fp, nil
	}
	seen, err := httpremote.Probe(a.ctx, f.server)
	if err != nil {
		return "", fmt.Errorf("reach %s: %w", f.server, err)
	}
	if !a.stdinIsTerminal() {
		return "", failf(ExitUsage, "compare it with the one the server's operator sees, then pass --fingerprint "+seen,
			"the server %s presents certificate fingerprint %s, which is not pinned yet", f.server, seen)
	}
	fmt.Fprintf(a.env.Stderr, "The server presents this certificate fingerprint:\n\n    %s\n\nCompare it with the one `safe serve` printed. Trust it? [y/N] ", seen)
	line, err := a.readLine()
	if err != nil || !strings.EqualFold(strings.TrimSpace(line), "y") {
		return "", failf(ExitError, "pass --fingerprint once you have checked it", "the fingerprint was not accepted")
	}
	return seen, nil
}

func (f *remoteFlags) need() error {
	if f.server == "" || f.email == "" {
		return failf(ExitUsage, "pass --server URL and --email ADDRESS", "the server and the e-mail address are needed")
	}
	if !strings.Contains(f.email, "@") {
		return failf(ExitUsage, "", "%q is not an e-mail address", f.email)
	}
	return nil
}

func (a *app) accountCommand() *cobra.Command {
	c := &cobra.Command{Use: "account", Short: "Register, log in and manage the account on a sync server"}
	c.AddCommand(a.registerCommand("register"), a.loginCommand(), a.logoutCommand(), a.accountStatusCommand(), a.secretKeyCommand(), a.loginsCommand(), a.fingerprintCommand())
	return c
}

func (a *app) loginsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logins",
		Short: "Show the account's login history on the server, newest first",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := callAgent[[]api.Login](a, service.OpLogins, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "TIME\tDEVICE\tADDRESS\tRESULT\n")
			for _, l := range list {
				result := "ok"
				if !l.OK {
					result = "refused: " + l.Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", time.Unix(l.Time, 0).Local().Format(time.DateTime), textsafe.Clean(l.Device), textsafe.Clean(l.Address), textsafe.Clean(result))
			}
			return tw.Flush()
		},
	}
}

func (a *app) registerCommand(use string) *cobra.Command {
	var f remoteFlags
	c := &cobra.Command{
		Use:   use,
		Short: "Put this vault's account on a server (or folder) and sync",
		Long: `Register the account on a sync server, or on a plain folder (NAS, Dropbox,
Syncthing), and sync this vault there. Without a vault here, one is created first
and its Recovery Key printed.

The account gets a Secret Key, printed at the end: it is needed with the
password on every new device, and is never sent to the server. Keep it in the
recovery kit (` + "`safe kit --out kit.pdf`" + `).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := f.need(); err != nil {
				return err
			}
			return a.register(&f)
		},
	}
	f.add(c)
	c.Flags().StringVar(&f.name, "name", "origin", "a short `NAME` for the remote")
	return c
}

func (a *app) register(f *remoteFlags) error {
	p, err := a.paths()
	if err != nil {
		return err
	}
	fp, err := a.pinFingerprint(f)
	if err != nil {
		return err
	}
	pw, err := a.password(f.pwFile, "Password: ")
	if err != nil {
		return err
	}
	defer pw.Wipe()
	if fp != "" {
		// Check the pin before anything is created or sent.
		seen, err := httpremote.Probe(a.ctx, f.server)
		if err != nil {
			return fmt.Errorf("reach %s: %w", f.server, err)
		}
		if seen != fp {
			return withHint(ExitRemote, "compare the fingerprint with the one `safe serve` prints on the server; someone may be in between",
				fmt.Errorf("the server %s presents certificate fingerprint %s, not the one given (%s)", f.server, seen, fp))
		}
	}
	var recoveryKey string
	if _, err := os.Stat(p.Vault); errors.Is(err, os.ErrNotExist) {
		if recoveryKey, err = a.createForRegister(p.Vault, pw); err != nil {
			return err
		}
	} else if err := a.unlockWith(pw, ""); err != nil {
		return err
	}
	out, err := callAgent[service.Registered](a, service.OpAccountRegister, service.RegisterArgs{
		Name: f.name, URL: f.server, Fingerprint: fp, Email: strings.TrimSpace(f.email), Password: pw, Manual: f.manual,
	})
	if err != nil {
		return err
	}
	if a.jsonOut {
		return a.printJSON(struct {
			service.Registered
			RecoveryKey string `json:"recovery_key,omitempty"`
		}{out, recoveryKey})
	}
	a.printf("Registered %s on %s.\n\n", f.email, out.Remote.URL)
	a.printf("Your Secret Key:\n\n    %s\n\n", out.SecretKey)
	a.printf("A new device needs it together with your password. It is never sent to the\nserver: keep it in your recovery kit (`safe kit --out kit.pdf`).\n")
	if out.SyncError != "" {
		a.warnf("the first sync did not complete: %s (run `safe sync`)", textsafe.CleanLines(out.SyncError))
	} else if out.Sync != nil {
		a.printf("Synced: %d entries sent.\n", out.Sync.Pushed)
	}
	return nil
}

// createForRegister makes a vault for an account registered from a fresh
// home, like init, and returns its Recovery Key (printed here unless the
// output is JSON, where the caller includes it).
func (a *app) createForRegister(path string, pw secret.Bytes) (string, error) {
	if n := len([]rune(string(pw))); n < minPassword {
		return "", failf(ExitInvalid, "", "the password has %d characters; use at least %d", n, minPassword)
	}
	params := kdf.Defaults()
	if a.insecureKDF() {
		params = kdf.TestParams()
	} else if tuned, _, err := kdf.Tune(time.Second, 1<<20); err == nil {
		params = tuned
	}
	opts, err := a.vaultOptions()
	if err != nil {
		return "", err
	}
	created, err := vault.Create(a.ctx, path, pw, params, opts)
	if err != nil {
		return "", err
	}
	a.insecureWarning(params.InsecureTest)
	if !a.jsonOut {
		a.printf("Created a vault at %s\n\nYour Recovery Key (shown only this once):\n\n    %s\n\n", created.Path, created.RecoveryKey)
	}
	return created.RecoveryKey, a.unlockWith(pw, "")
}

func (a *app) loginCommand() *cobra.Command {
	var f remoteFlags
	var skFile, totp, recoveryCode string
	c := &cobra.Command{
		Use:   "login",
		Short: "Log in: set up this device from an account, or renew its session",
		Long: `On a new device (no vault here), log in with the password and the Secret Key
(from the recovery kit): the account is fetched, verified and synced.
On a device that has the vault already, log in again when the session ended.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.paths()
			if err != nil {
				return err
			}
			if _, err := os.Stat(p.Vault); err == nil {
				pw, err := a.password(f.pwFile, "Password: ")
				if err != nil {
					return err
				}
				defer pw.Wipe()
				if err := a.unlockWith(pw, ""); err != nil {
					return err
				}
				st, err := callAgent[service.AccountStatus](a, service.OpAccountLogin, service.LoginArgs{Password: pw, TOTP: totp, RecoveryCode: recoveryCode})
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(st)
				}
				a.printf("Logged in to %s as %s.\n", st.Remote.URL, st.Remote.Email)
				return nil
			}
			if err := f.need(); err != nil {
				return err
			}
			return a.join(p.Vault, &f, skFile, totp, recoveryCode)
		},
	}
	f.add(c)
	c.Flags().StringVar(&skFile, "secret-key-file", "", "read the Secret Key from `FILE` (or fd:N) instead of prompting")
	c.Flags().StringVar(&totp, "totp", "", "the current two-factor `CODE`, if the account has one")
	c.Flags().StringVar(&recoveryCode, "recovery-code", "", "a two-factor recovery `CODE` (works once)")
	c.Flags().StringVar(&f.name, "name", "origin", "a short `NAME` for the remote")
	return c
}

// join sets up this device from an account on a remote.
func (a *app) join(path string, f *remoteFlags, skFile, totp, recoveryCode string) error {
	fp, err := a.pinFingerprint(f)
	if err != nil {
		return err
	}
	pw, err := a.password(f.pwFile, "Password: ")
	if err != nil {
		return err
	}
	defer pw.Wipe()
	var sk secret.Bytes
	if skFile != "" {
		sk, err = readSecretFile(skFile)
	} else {
		sk, err = a.promptSecret("Secret Key: ", "--secret-key-file FILE")
	}
	if err != nil {
		return err
	}
	defer sk.Wipe()
	// A mistyped Secret Key is caught by its checksum here, before anything
	// is derived or sent, and reported like a mistyped Recovery Key.
	parsed, err := keycode.ParseSecretKey(string(sk))
	if err != nil {
		return withHint(ExitWrongPassword, "type the Secret Key exactly as printed in the recovery kit: S1- and eight groups of four", fmt.Errorf("the Secret Key was not accepted: %w", err))
	}
	parsed.Wipe()
	kind := service.RemoteKind(f.server)
	u := f.server
	if kind == vault.RemoteFolder {
		u = service.FolderPath(u)
	}
	t := vault.RemoteTarget{Name: f.name, Kind: kind, URL: u, Fingerprint: fp, Email: strings.TrimSpace(f.email), Manual: f.manual, Platform: service.Platform()}
	res, err := a.setUpDevice(path, vault.JoinRequest{Target: t, Password: pw, SecretKey: strings.TrimSpace(string(sk)), TOTP: totp, RecoveryCode: recoveryCode})
	if err != nil {
		return err
	}
	if a.jsonOut {
		return a.printJSON(res)
	}
	a.printf("This device is set up for %s on %s: %d entries received.\n", f.email, u, res.Pulled)
	return nil
}

// setUpDevice makes this device's vault at path from the account on
// j.Target, syncs it and unlocks it (account login on a new device, and
// device join).
func (a *app) setUpDevice(path string, j vault.JoinRequest) (*vault.SyncResult, error) {
	opts, err := a.vaultOptions()
	if err != nil {
		return nil, err
	}
	var r remote.Remote
	var hc *httpremote.Client
	switch j.Target.Kind {
	case vault.RemoteFolder:
		if r, err = folder.Open(j.Target.URL); err != nil {
			return nil, err
		}
	case vault.RemoteServer:
		if hc, err = httpremote.New(j.Target.URL, j.Target.Fingerprint, httpremote.Options{}); err != nil {
			return nil, err
		}
		r = hc
	default:
		if r, err = a.dialRemote(j.Target, j.Linked); err != nil {
			return nil, err
		}
	}
	defer r.Close()
	v, err := vault.Join(a.ctx, path, r, j, opts)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	if hc != nil {
		if s := hc.Session(); s != nil {
			raw, _ := json.Marshal(s)
			if err := v.SaveSession(a.ctx, raw); err != nil {
				return nil, err
			}
			secret.Wipe(raw)
		}
	}
	res, err := v.Sync(a.ctx, r)
	if err != nil {
		return nil, fmt.Errorf("the device was set up but the first sync failed: %w", err)
	}
	v.Close()
	if err := a.unlockWith(secret.Bytes(j.Password), ""); err != nil {
		a.warnf("set up, but could not unlock: %v", err)
	}
	return res, nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End this device's session on the server (local data stays)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := callAgent[service.AccountStatus](a, service.OpAccountLogout, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(st)
			}
			a.printf("Logged out of %s. Local data stays; `safe account login` starts a new session.\n", st.Remote.URL)
			return nil
		},
	}
}

func (a *app) accountStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the remote, this device and what waits to be sent",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := callAgent[service.AccountStatus](a, service.OpAccountStatus, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(st)
			}
			r := st.Remote
			a.printf("remote:       %s (%s) %s\n", textsafe.Clean(r.Name), textsafe.Clean(string(r.Kind)), textsafe.Clean(r.URL))
			if r.Fingerprint != "" {
				a.printf("fingerprint:  %s\n", r.Fingerprint)
			}
			a.printf("account:      %s\n", textsafe.Clean(r.Email))
			a.printf("device:       %s\n", textsafe.Clean(st.Device))
			if st.Identity != "" {
				a.printf("identity:     %s\n", st.Identity)
			}
			a.printf("logged in:    %s\n", yesNo(st.LoggedIn))
			a.printf("auto sync:    %s\n", yesNo(r.Auto))
			a.printf("pending:      %d local changes not yet sent\n", r.Pending)
			if !st.LastSync.IsZero() {
				a.printf("last sync:    %s\n", st.LastSync.Local().Format(time.DateTime))
			}
			if st.LastError != "" {
				a.printf("last error:   %s\n", textsafe.Clean(st.LastError))
			}
			return nil
		},
	}
}

func (a *app) fingerprintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint",
		Short: "Print your identity code, which an organisation's administrator compares to confirm you",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			id, err := callAgent[service.Identity](a, service.OpIdentity, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(id)
			}
			a.printf("%s\n", id.Fingerprint)
			return nil
		},
	}
}

func (a *app) secretKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "secret-key",
		Short: "Print the account's Secret Key (needed with the password on a new device)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sk, err := callAgent[service.SecretKey](a, service.OpSecretKey, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(sk)
			}
			a.printf("%s\n", sk.SecretKey)
			return nil
		},
	}
}

func (a *app) syncCommand() *cobra.Command {
	var auto string
	var acceptReset bool
	c := &cobra.Command{
		Use:   "sync",
		Short: "Send local changes to the remote and fetch the others', verifying everything",
		Long: `Sync the vault with its remote: local changes queued while offline are sent,
changes from other devices are fetched, verified (signatures, hash chain, no
rollback, fork or swap) and merged field by field. A remote that fails any check
stops the sync with exit code 13 and a message naming what was seen; nothing
local changes.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if auto != "" {
				if auto != "on" && auto != "off" {
					return failf(ExitUsage, "use --auto on or --auto off", "bad --auto %q", auto)
				}
				if err := sc.C.Call(a.ctx, service.OpAutoSync, service.AutoArgs{Auto: auto == "on"}, nil); err != nil {
					return err
				}
				if !a.jsonOut {
					a.printf("Automatic sync is %s.\n", auto)
				}
				return nil
			}
			op := service.OpSync
			if acceptReset {
				op = service.OpAcceptReset
			}
			var res vault.SyncResult
			if err := sc.C.Call(a.ctx, op, nil, &res); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printSync("Synced", &res)
			return nil
		},
	}
	c.Flags().BoolVar(&acceptReset, "accept-reset", false, "accept a remote that lost recent data (restored from a backup) and send it again; a remote whose log differs (a fork) is still refused")
	c.Flags().StringVar(&auto, "auto", "", "turn automatic sync after every change `on` or off (and do not sync now)")
	return c
}

func (a *app) remoteCommand() *cobra.Command {
	c := &cobra.Command{Use: "remote", Short: "Manage where the vault syncs (one server or folder)"}
	add := a.registerCommand("add NAME URL")
	add.Short = "Add a remote: a server URL or a folder path (registers the account there)"
	add.Args = cobra.ExactArgs(2)
	inner := add.RunE
	add.RunE = func(c *cobra.Command, args []string) error {
		c.Flags().Set("name", args[0])
		c.Flags().Set("server", args[1])
		if c.Flags().Lookup("email").Value.String() == "" {
			return failf(ExitUsage, "pass --email ADDRESS", "the account's e-mail address is needed")
		}
		return inner(c, nil)
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the remote",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			var st service.AccountStatus
			err = sc.C.Call(a.ctx, service.OpAccountStatus, nil, &st)
			if ae := (*agent.Error)(nil); errors.As(err, &ae) && ae.Code == service.CodeNoRemote {
				if a.jsonOut {
					return a.printJSON([]any{})
				}
				a.printf("No remote: the vault is local only.\n")
				return nil
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON([]*vault.RemoteInfo{st.Remote})
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "NAME\tKIND\tURL\tACCOUNT\tPENDING\n")
			r := st.Remote
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", textsafe.Clean(r.Name), textsafe.Clean(string(r.Kind)), textsafe.Clean(r.URL), textsafe.Clean(r.Email), r.Pending)
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm [NAME]",
		Short: "Stop syncing with the remote (nothing is deleted, here or there)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if len(args) == 1 {
				var st service.AccountStatus
				if err := sc.C.Call(a.ctx, service.OpAccountStatus, nil, &st); err != nil {
					return err
				}
				if st.Remote.Name != args[0] {
					return failf(ExitNotFound, "`safe remote ls` lists it", "no remote named %q", args[0])
				}
			}
			if err := sc.C.Call(a.ctx, service.OpRemoteRemove, nil, nil); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("The vault no longer syncs. Local data is unchanged.\n")
			}
			return nil
		},
	}
	c.AddCommand(add, ls, rm)
	return c
}

func (a *app) deviceCommand() *cobra.Command {
	c := &cobra.Command{Use: "device", Short: "Link, list and revoke the account's devices"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the devices the server knows for the account",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := callAgent[[]api.Device](a, service.OpDevices, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ID\tPLATFORM\tLAST SEEN\tSTATE\n")
			for _, d := range list {
				state := "active"
				if d.Revoked != 0 {
					state = "revoked"
				}
				if d.Current {
					state += " (this device)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", textsafe.Clean(d.ID), textsafe.Clean(d.Platform), time.Unix(d.LastSeen, 0).Local().Format(time.DateTime), state)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a device: its sessions end and it cannot log in again",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := callAgentProgress[struct{}](a, service.OpDeviceRevoke, service.DeviceArgs{ID: args[0]}, "re-encrypting"); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Device %s revoked.\n", args[0])
			}
			return nil
		},
	}
	c.AddCommand(ls, revoke, a.deviceLinkCommand(), a.deviceJoinCommand())
	return c
}

func (a *app) twoFACommand() *cobra.Command {
	c := &cobra.Command{Use: "2fa", Short: "Turn the server login's two-factor authentication (TOTP) on or off"}
	var code string
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Enable TOTP: shows a secret for your authenticator, then confirms a code",
		Long: `Without --code: asks the server for a new TOTP secret and shows it (add it to an
authenticator app), then asks for the current code on a terminal. Without a
terminal, run again with --code CODE to confirm. On success, ten one-time
recovery codes are printed: keep them apart from your devices.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if code == "" {
				var setup api.TOTPSetup
				if err := sc.C.Call(a.ctx, service.OpTOTPSetup, nil, &setup); err != nil {
					return err
				}
				if a.jsonOut && !a.stdinIsTerminal() {
					return a.printJSON(setup)
				}
				a.printf("Add this secret to your authenticator app:\n\n    %s\n    %s\n\n", setup.Secret, setup.URI)
				if !a.stdinIsTerminal() {
					a.printf("Then confirm with: safe 2fa enable --code CODE\n")
					return nil
				}
				fmt.Fprint(a.env.Stderr, "Current code: ")
				if code, err = a.readLine(); err != nil {
					return err
				}
			}
			var rc api.RecoveryCodes
			if err := sc.C.Call(a.ctx, service.OpTOTPEnable, service.TOTPArgs{Code: strings.TrimSpace(code)}, &rc); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(rc)
			}
			a.printf("Two-factor authentication is on. One-time recovery codes (shown once):\n\n")
			for _, rcode := range rc.Codes {
				a.printf("    %s\n", rcode)
			}
			return nil
		},
	}
	enable.Flags().StringVar(&code, "code", "", "the current `CODE` from the authenticator, to confirm")
	var dcode, drecovery string
	disable := &cobra.Command{
		Use:   "disable",
		Short: "Disable TOTP (needs a current code or a recovery code)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dcode == "" && drecovery == "" {
				return failf(ExitUsage, "pass --code CODE or --recovery-code CODE", "a current code or a recovery code is needed")
			}
			if _, err := callAgent[struct{}](a, service.OpTOTPDisable, service.TOTPArgs{Code: dcode, RecoveryCode: drecovery}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Two-factor authentication is off.\n")
			}
			return nil
		},
	}
	disable.Flags().StringVar(&dcode, "code", "", "the current `CODE`")
	disable.Flags().StringVar(&drecovery, "recovery-code", "", "a recovery `CODE`")
	c.AddCommand(enable, disable)
	return c
}

func (a *app) conflictsCommand() *cobra.Command {
	var reveal bool
	c := &cobra.Command{
		Use:   "conflicts",
		Short: "List items whose merge kept two values",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := callAgent[[]vault.ConflictItem](a, service.OpConflicts, nil)
			if err != nil {
				return err
			}
			if !reveal {
				for i := range list {
					for j := range list[i].Conflicts {
						list[i].Conflicts[j].Value = ""
					}
				}
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				a.printf("No conflicts.\n")
				return nil
			}
			for _, ci := range list {
				a.printf("%s  %s\n", ci.ID, textsafe.Clean(ci.Title))
				for _, cf := range ci.Conflicts {
					if reveal {
						a.printf("    %s: kept other value %q (%s)\n", textsafe.Clean(cf.Field), cf.Value, cf.Seen.Local().Format(time.DateTime))
					} else {
						a.printf("    %s: another value was kept (%s)\n", textsafe.Clean(cf.Field), cf.Seen.Local().Format(time.DateTime))
					}
				}
			}
			a.printf("\n`safe conflicts resolve ITEM` clears the marks once you have chosen.\n")
			return nil
		},
	}
	c.Flags().BoolVar(&reveal, "reveal", false, "show the kept values")
	resolve := &cobra.Command{
		Use:   "resolve ITEM",
		Short: "Clear an item's conflict marks (its current values stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if len(it.Conflicts) == 0 {
				if !a.jsonOut {
					a.printf("%s has no conflicts.\n", textsafe.Clean(it.Title))
				}
				return nil
			}
			it.Conflicts = nil
			if _, err := sc.Update(a.ctx, it.ID, it.Revision, it); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Cleared the conflicts of %s.\n", textsafe.Clean(it.Title))
			}
			return nil
		},
	}
	a.vaultFlag(resolve)
	c.AddCommand(resolve)
	return c
}

// callAgent sends one op to the unlocked agent and decodes its result.
func callAgent[T any](a *app, op string, args any) (T, error) {
	var out T
	sc, err := a.unlocked()
	if err != nil {
		return out, err
	}
	defer sc.C.Close()
	err = sc.C.Call(a.ctx, op, args, &out)
	return out, err
}

// printSync reports a sync's outcome.
func (a *app) printSync(what string, res *vault.SyncResult) {
	a.printf("%s: %d received, %d sent.\n", what, res.Pulled, res.Pushed)
	if len(res.Merged) > 0 {
		a.printf("Merged changes made on two devices: %d item(s).\n", len(res.Merged))
	}
	if len(res.Conflicts) > 0 {
		a.printf("Conflicts kept both values: %d item(s); see `safe conflicts`.\n", len(res.Conflicts))
	}
	for _, n := range res.Notes {
		a.printf("note: %s\n", textsafe.CleanLines(n))
	}
}
