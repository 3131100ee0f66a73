package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/agent/lockedmem"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// insecureKDF reads the loud test-profile switch.
func (a *app) insecureKDF() bool { return a.env.Getenv("SAFE_INSECURE_TEST_KDF") == "1" }

func statVault(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(ExitNoVault, "run `safe init` to create one (or point SAFE_HOME at the right directory)", fmt.Errorf("no vault at %s", path))
	}
	return fi, err
}

func (a *app) vaultOptions() (vault.Options, error) {
	src, err := random.New()
	if err != nil {
		return vault.Options{}, fmt.Errorf("set up randomness: %w", err)
	}
	return vault.Options{Rand: src, AllowInsecureKDF: a.insecureKDF()}, nil
}

func (a *app) initCommand() *cobra.Command {
	var pwFile string
	var target time.Duration
	var noUnlock bool
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a new vault and print its Recovery Key once",
		Long: `Create a new vault protected by a password you choose.

The KDF parameters are tuned on this machine to take about --kdf-target per
unlock (floors: Argon2id 64 MiB and 2 passes, PBKDF2 100,000 iterations).
The Recovery Key printed at the end is shown only once: write it down and keep
it somewhere safe. It replaces a forgotten password with ` + "`safe recover`" + `.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.paths()
			if err != nil {
				return err
			}
			if _, err := os.Stat(p.Vault); err == nil {
				return withHint(ExitExists, "use `safe unlock`, or choose another --home / SAFE_HOME", fmt.Errorf("a vault already exists at %s", p.Vault))
			}
			pw, err := a.newPassword(pwFile, "--password-file")
			if err != nil {
				return err
			}
			defer pw.Wipe()
			params := kdf.Defaults()
			if a.insecureKDF() {
				params = kdf.TestParams()
			} else {
				if !a.jsonOut {
					fmt.Fprintf(a.env.Stderr, "Tuning the key derivation for about %s on this machine...\n", target)
				}
				tuned, _, err := kdf.Tune(target, 1<<20)
				if err != nil {
					return fmt.Errorf("tune the key derivation: %w", err)
				}
				params = tuned
			}
			opts, err := a.vaultOptions()
			if err != nil {
				return err
			}
			created, err := vault.Create(a.ctx, p.Vault, pw, params, opts)
			if err != nil {
				return err
			}
			a.insecureWarning(params.InsecureTest)
			if !noUnlock {
				if err := a.unlockWith(pw, ""); err != nil {
					a.warnf("the vault was created but could not be unlocked: %v", err)
				}
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{
					"recovery_key": created.RecoveryKey, "account": created.Account,
					"vault": created.Vault, "path": created.Path, "kdf": created.KDF,
					"unlocked": !noUnlock,
				})
			}
			a.printf("Created a vault at %s\n\n", created.Path)
			a.printf("Your Recovery Key (shown only this once):\n\n    %s\n\n", created.RecoveryKey)
			a.printf("Write it down and keep it apart from your devices. With it, `safe recover`\nsets a new password if you forget yours; without both, nobody can open the vault.\n")
			if a.stdinIsTerminal() {
				return a.confirmRecoveryKey(created.RecoveryKey)
			}
			return nil
		},
	}
	c.Flags().StringVar(&pwFile, "password-file", "", "read the new password from `FILE` (or fd:N) instead of prompting")
	c.Flags().DurationVar(&target, "kdf-target", time.Second, "unlock time to tune the key derivation for")
	c.Flags().BoolVar(&noUnlock, "no-unlock", false, "leave the new vault locked")
	return c
}

// confirmRecoveryKey asks the user to type the last group back, so that a
// Recovery Key that was not written down is noticed now.
func (a *app) confirmRecoveryKey(rk string) error {
	groups := strings.Split(rk, "-")
	last := groups[len(groups)-1]
	for tries := 0; tries < 3; tries++ {
		fmt.Fprintf(a.env.Stderr, "\nTo confirm you wrote it down, type its last group: ")
		line, err := a.readLine()
		if err != nil {
			return fmt.Errorf("read confirmation: %w", err)
		}
		if strings.EqualFold(strings.TrimSpace(line), last) {
			fmt.Fprintln(a.env.Stderr, "Confirmed.")
			return nil
		}
		fmt.Fprintln(a.env.Stderr, "That is not it; look at the key above again.")
	}
	return failf(ExitError, "the vault exists; if the Recovery Key is lost, make a new vault and move your items", "the Recovery Key was not confirmed")
}

func (a *app) unlockWith(pw secret.Bytes, timeout string) error {
	c, _, err := a.startAgent(a.ctx, timeout)
	if err != nil {
		return err
	}
	defer c.C.Close()
	// Sent even when the agent is unlocked already: unlock must say when
	// the password is wrong (a wrong one leaves the agent as it was).
	_, err = c.Unlock(a.ctx, pw)
	return err
}

func (a *app) unlockCommand() *cobra.Command {
	var pwFile, timeout string
	c := &cobra.Command{
		Use:   "unlock",
		Short: "Unlock the vault: the agent keeps the keys until it is locked or idle",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.paths()
			if err != nil {
				return err
			}
			if _, err := statVault(p.Vault); err != nil {
				return err
			}
			pw, err := a.password(pwFile, "Password: ")
			if err != nil {
				return err
			}
			defer pw.Wipe()
			if err := a.unlockWith(pw, timeout); err != nil {
				return err
			}
			return a.showStatus(false)
		},
	}
	c.Flags().StringVar(&pwFile, "password-file", "", "read the password from `FILE` (or fd:N)")
	c.Flags().StringVar(&timeout, "timeout", "", "lock after this much idle time (default 15m), when this starts the agent")
	return c
}

func (a *app) lockCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "lock",
		Short: "Make the agent forget the keys now",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.dial()
			var ce *hintError
			if errors.As(err, &ce) && ce.code == ExitLocked {
				return a.lockedResult()
			}
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if _, err := sc.Lock(a.ctx); err != nil {
				return err
			}
			return a.lockedResult()
		},
	}
}

func (a *app) lockedResult() error {
	if a.jsonOut {
		return a.printJSON(map[string]any{"unlocked": false})
	}
	a.printf("Locked.\n")
	return nil
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Say whether the vault is unlocked, where it is, and how it is protected",
		Args:  cobra.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return a.showStatus(true) },
	}
}

func (a *app) showStatus(full bool) error {
	p, err := a.paths()
	if err != nil {
		return err
	}
	sc, info, err := a.connect()
	if err != nil {
		var he *hintError
		if !errors.As(err, &he) || he.code != ExitLocked {
			return err
		}
		// No agent: report from the file.
		opts, oerr := a.vaultOptions()
		if oerr != nil {
			return oerr
		}
		v, oerr := vault.Open(p.Vault, opts)
		if oerr != nil {
			return oerr
		}
		defer v.Close()
		params, _ := v.Params()
		a.insecureWarning(v.InsecureTestKDF())
		info = &service.Info{VaultPath: p.Vault, Account: v.Account(), InsecureTestKDF: v.InsecureTestKDF(), KDF: params}
	} else {
		defer sc.C.Close()
		if info.Unlocked {
			if info, err = sc.Info(a.ctx, true); err != nil {
				return err
			}
		}
	}
	if a.jsonOut {
		return a.printJSON(info)
	}
	state := "locked"
	if info.Unlocked {
		state = "unlocked"
	}
	a.printf("Vault:    %s (%s)\n", info.VaultPath, state)
	if !full {
		return nil
	}
	if info.PID != 0 {
		a.printf("Agent:    pid %d, locks after %s idle; keys in locked memory: %s\n", info.PID, info.IdleTimeout, yesNo(info.LockedMemory))
	} else {
		a.printf("Agent:    not running\n")
	}
	if info.Unlocked {
		a.printf("Items:    %d (%d in the trash)\n", info.Items, info.Trashed)
	}
	a.printf("KDF:      %s\n", describeParams(info.KDF))
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func describeParams(p kdf.Params) string {
	s := fmt.Sprintf("Argon2id %d MiB, t=%d, p=%d + PBKDF2-HMAC-SHA512 %d iterations", p.Argon2Memory/1024, p.Argon2Time, p.Argon2Threads, p.PBKDF2Iterations)
	if p.Argon2Memory < 1024 {
		s = fmt.Sprintf("Argon2id %d KiB, t=%d, p=%d + PBKDF2-HMAC-SHA512 %d iterations", p.Argon2Memory, p.Argon2Time, p.Argon2Threads, p.PBKDF2Iterations)
	}
	if p.InsecureTest {
		s += "  [INSECURE TEST PROFILE]"
	}
	return s
}

func (a *app) passwdCommand() *cobra.Command {
	var oldFile, newFile string
	c := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password (re-wraps the Master Key only)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			old, err := a.password(oldFile, "Current password: ")
			if err != nil {
				return err
			}
			defer old.Wipe()
			next, err := a.newPassword(newFile, "--new-password-file")
			if err != nil {
				return err
			}
			defer next.Wipe()
			if _, err := sc.Passwd(a.ctx, old, next, kdf.Params{}); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"changed": true})
			}
			a.printf("Password changed. The Recovery Key is unchanged.\n")
			return nil
		},
	}
	c.Flags().StringVar(&oldFile, "password-file", "", "read the current password from `FILE` (or fd:N)")
	c.Flags().StringVar(&newFile, "new-password-file", "", "read the new password from `FILE` (or fd:N)")
	return c
}

func (a *app) recoverCommand() *cobra.Command {
	var rkFile, pwFile string
	c := &cobra.Command{
		Use:   "recover",
		Short: "Set a new password with the Recovery Key",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var rk secret.Bytes
			var err error
			if rkFile != "" {
				rk, err = readSecretFile(rkFile)
			} else {
				rk, err = a.promptSecret("Recovery Key: ", "--recovery-key-file FILE")
			}
			if err != nil {
				return err
			}
			defer rk.Wipe()
			pw, err := a.newPassword(pwFile, "--password-file")
			if err != nil {
				return err
			}
			defer pw.Wipe()
			sc, _, err := a.startAgent(a.ctx, "")
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if _, err := sc.Recover(a.ctx, rk, pw); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"recovered": true, "unlocked": true})
			}
			a.printf("New password set; the vault is unlocked. The Recovery Key stays the same.\n")
			return nil
		},
	}
	c.Flags().StringVar(&rkFile, "recovery-key-file", "", "read the Recovery Key from `FILE` (or fd:N)")
	c.Flags().StringVar(&pwFile, "password-file", "", "read the new password from `FILE` (or fd:N)")
	return c
}

func (a *app) verifyCommand() *cobra.Command {
	var pwFile string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check every record, log entry, signature and row of the vault",
		Long: `Check the whole vault file: the account and vault records' MACs, every log
entry's hash-chain link and hybrid signature, and every current and earlier
revision of every item against the log. Exits with code 7 if anything was
tampered with.

With the vault unlocked it asks the agent. Otherwise (or with
--password-file) it opens the file itself, which also works on a vault too
damaged to unlock, and lists every problem.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var rep vault.Report
			var sc *service.Client
			var err error
			if pwFile == "" {
				sc, err = a.unlocked()
			} else {
				// With the password, check the file here: this works
				// whatever state an agent is in.
				err = withHint(ExitLocked, "", errors.New("checking the file directly"))
			}
			var he *hintError
			switch {
			case err == nil:
				defer sc.C.Close()
				if rep, err = sc.Verify(a.ctx); err != nil {
					return err
				}
			case errors.As(err, &he) && he.code == ExitLocked:
				if rep, err = a.verifyFile(pwFile); err != nil {
					return err
				}
			default:
				return err
			}
			if a.jsonOut {
				if rep.Problems == nil {
					rep.Problems = []string{}
				}
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printf("Checked %d vault(s): %d items (%d in the trash), %d earlier revisions, %d log entries, %d attachments.\n",
					rep.Vaults, rep.Items, rep.Trashed, rep.Revisions, rep.LogEntries, rep.Attachments)
				for _, p := range rep.Problems {
					a.printf("PROBLEM: %s\n", textsafe.Clean(p))
				}
				if len(rep.Problems) == 0 {
					a.printf("No problems found.\n")
				}
			}
			if len(rep.Problems) > 0 {
				return withHint(ExitTampered, "restore the vault file from a backup; safe refuses the damaged rows", fmt.Errorf("the vault failed verification with %d problem(s)", len(rep.Problems)))
			}
			return nil
		},
	}
	c.Flags().StringVar(&pwFile, "password-file", "", "open the vault file directly with the password from `FILE` (or fd:N)")
	return c
}

// verifyFile verifies the vault file in this process, with the password.
func (a *app) verifyFile(pwFile string) (vault.Report, error) {
	p, err := a.paths()
	if err != nil {
		return vault.Report{}, err
	}
	if _, err := statVault(p.Vault); err != nil {
		return vault.Report{}, err
	}
	pw, err := a.password(pwFile, "Password: ")
	if err != nil {
		return vault.Report{}, err
	}
	defer pw.Wipe()
	opts, err := a.vaultOptions()
	if err != nil {
		return vault.Report{}, err
	}
	v, err := vault.Open(p.Vault, opts)
	if err != nil {
		return vault.Report{}, err
	}
	defer v.Close()
	a.insecureWarning(v.InsecureTestKDF())
	rep, err := v.VerifyWithPassword(a.ctx, pw)
	var ie *vault.IntegrityError
	if errors.As(err, &ie) {
		if len(rep.Problems) == 0 {
			// Found before any report was made (the account record).
			rep.Problems = ie.Problems
		}
		return rep, nil // the report carries the problems
	}
	return rep, err
}

func (a *app) kdfCommand() *cobra.Command {
	c := &cobra.Command{Use: "kdf", Short: "Show or tune the password key derivation"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the vault's KDF parameters, floors and ceilings",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.paths()
			if err != nil {
				return err
			}
			if _, err := statVault(p.Vault); err != nil {
				return err
			}
			opts, err := a.vaultOptions()
			if err != nil {
				return err
			}
			v, err := vault.Open(p.Vault, opts)
			if err != nil {
				return err
			}
			defer v.Close()
			params, err := v.Params()
			if err != nil {
				return err
			}
			a.insecureWarning(params.InsecureTest)
			floors := kdf.Params{Argon2Memory: kdf.MinArgon2MemoryKiB, Argon2Time: kdf.MinArgon2Time, Argon2Threads: 1, PBKDF2Iterations: kdf.MinPBKDF2Iterations}
			ceilings := kdf.Params{Argon2Memory: kdf.MaxArgon2MemoryKiB, Argon2Time: kdf.MaxArgon2Time, Argon2Threads: kdf.MaxArgon2Threads, PBKDF2Iterations: kdf.MaxPBKDF2Iterations}
			if a.jsonOut {
				return a.printJSON(map[string]any{"params": params, "floors": floors, "ceilings": ceilings})
			}
			a.printf("Vault:     %s\nKDF:       %s\nFloors:    %s\nCeilings:  %s\n", p.Vault, describeParams(params), describeParams(floors), describeParams(ceilings))
			return nil
		},
	}
	var target time.Duration
	var maxMem uint32
	var apply bool
	var pwFile string
	tune := &cobra.Command{
		Use:   "tune",
		Short: "Measure this machine and pick parameters for a target unlock time",
		Long: `Measure Argon2id and PBKDF2 on this machine and print the parameters that
reach --target. With --apply, re-wrap the Master Key under the current
password with those parameters (the vault must be unlocked).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			params, m, err := kdf.Tune(target, maxMem*1024)
			if err != nil {
				return withHint(ExitUsage, "choose a --target between 100ms and 30s", err)
			}
			if apply {
				sc, err := a.unlocked()
				if err != nil {
					return err
				}
				defer sc.C.Close()
				pw, err := a.password(pwFile, "Password: ")
				if err != nil {
					return err
				}
				defer pw.Wipe()
				if _, err := sc.Passwd(a.ctx, pw, pw, params); err != nil {
					return err
				}
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"params": params, "measured_unlock_ms": m.Elapsed.Milliseconds(), "at_floor": m.AtFloor, "applied": apply})
			}
			a.printf("Parameters: %s\nMeasured:   %s per unlock on this machine\n", describeParams(params), m.Elapsed.Round(time.Millisecond))
			if m.AtFloor {
				a.printf("The floors alone take longer than %s here; the floors were chosen.\n", target)
			}
			if apply {
				a.printf("Applied: the Master Key is now wrapped with these parameters.\n")
			} else {
				a.printf("Run with --apply to use them for this vault.\n")
			}
			return nil
		},
	}
	tune.Flags().DurationVar(&target, "target", time.Second, "target unlock time")
	tune.Flags().Uint32Var(&maxMem, "max-memory", 1024, "largest Argon2id memory to consider, in MiB")
	tune.Flags().BoolVar(&apply, "apply", false, "re-wrap the Master Key with the tuned parameters")
	tune.Flags().StringVar(&pwFile, "password-file", "", "read the password from `FILE` (or fd:N), with --apply")
	c.AddCommand(show, tune)
	return c
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			info := map[string]string{"version": Version, "format": "vault schema 1, envelope suite 1, log entry v1"}
			if bi, ok := debug.ReadBuildInfo(); ok {
				info["go"] = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info["commit"] = s.Value
					}
				}
			}
			if a.jsonOut {
				return a.printJSON(info)
			}
			a.printf("safe %s (%s, %s)\n", info["version"], info["go"], info["format"])
			return nil
		},
	}
}

func (a *app) agentCommand() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run the unlock agent in the foreground (started on demand by `safe unlock`)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.runAgent(timeout)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", agent.DefaultIdleTimeout, "forget the keys after this much idle time")
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Lock the vault and stop the agent",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := a.dial()
			var he *hintError
			if errors.As(err, &he) && he.code == ExitLocked {
				a.printf("No agent is running.\n")
				return nil
			}
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if err := sc.Stop(a.ctx); err != nil {
				return err
			}
			// The agent answers before it shuts down. Wait (briefly) until
			// it no longer accepts connections, so that the next command
			// does not reach it while it closes.
			if p, err := a.paths(); err == nil {
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					c, err := agent.DialContext(a.ctx, p.Socket)
					if err != nil {
						break
					}
					c.Close()
				}
			}
			a.printf("Agent stopped.\n")
			return nil
		},
	}
	c.AddCommand(stop)
	return c
}

// runAgent serves the vault until it is stopped or idle while locked.
func (a *app) runAgent(timeout time.Duration) error {
	if err := agent.Harden(); err != nil {
		a.warnf("agent hardening incomplete: %v", err)
	}
	p, err := a.paths()
	if err != nil {
		return err
	}
	opts, err := a.vaultOptions()
	if err != nil {
		return err
	}
	keys := &lockedKeys{}
	opts.Keep = keys.keep
	v, err := vault.Open(p.Vault, opts)
	if err != nil {
		return err
	}
	ln, err := agent.Listen(p.Socket)
	if err != nil {
		v.Close()
		return fmt.Errorf("listen on %s: %w", p.Socket, err)
	}
	ctx, cancel := signal.NotifyContext(a.ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	h := &service.Handler{V: v, IdleTimeout: timeout, Stop: cancel, LockedMemory: keys.locked}
	srv := agent.NewServer(h, agent.Options{
		IdleTimeout: timeout, OnIdle: h.OnIdle, PassiveOps: service.PassiveOps,
		InterruptOps: service.InterruptOps, InterruptibleOps: service.InterruptibleOps,
	})
	h.RunLocked = srv.Exclusive
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-done:
		if err != nil && !errors.Is(err, agent.ErrServerClosed) {
			serveErr = err
		}
	}
	// No automatic sync from now on. Shutdown interrupts a running sync
	// and waits for requests, an automatic sync and the idle action
	// alike; none starts after it, so closing the vault below wipes no
	// key in use.
	h.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		// A request is still running and may be using the keys: wiping
		// them under it could seal data under a zeroed key. Exit instead;
		// the kernel discards the process's memory, locked pages included.
		a.warnf("agent: a request did not finish; exiting without waiting for it")
		return serveErr
	}
	v.Close() // locks: keys wiped
	keys.destroy()
	return serveErr
}

// lockedKeys moves the vault's long-lived keys into mlocked, guarded pages.
type lockedKeys struct {
	bufs      []*lockedmem.Buffer
	allLocked bool
	any       bool
}

func (k *lockedKeys) keep(b secret.Bytes) (secret.Bytes, func()) {
	buf, err := lockedmem.Alloc(len(b))
	if err != nil {
		return b, func() { b.Wipe() }
	}
	copy(buf.Bytes(), b)
	b.Wipe()
	if !k.any {
		k.allLocked = true
		k.any = true
	}
	k.allLocked = k.allLocked && buf.Locked()
	k.bufs = append(k.bufs, buf)
	return buf.Bytes(), func() {
		buf.Destroy()
		k.bufs = slices.DeleteFunc(k.bufs, func(b *lockedmem.Buffer) bool { return b == buf })
	}
}

func (k *lockedKeys) locked() bool { return k.any && k.allLocked }

func (k *lockedKeys) destroy() {
	for _, b := range k.bufs {
		b.Destroy()
	}
	k.bufs = nil
}
