package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/sshagent"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

func (a *app) sshAgentCommand() *cobra.Command {
	var (
		socket         string
		confirm        bool
		lifetime       time.Duration
		confirmTimeout time.Duration
	)
	c := &cobra.Command{
		Use:   "ssh-agent --socket PATH",
		Short: "Serve the vault's SSH keys to ssh, ssh-add and git over the SSH agent protocol (foreground)",
		Long: `Serve the SSH key items of the unlocked vault over the SSH agent protocol
on a Unix socket, until interrupted (Ctrl-C, SIGTERM). The first line on
standard output is the shell line that points SSH_AUTH_SOCK at the socket.

The agent is read-only: ssh-add cannot add or remove keys (add them with
` + "`safe add ssh --import FILE`" + `). Private keys are read from the vault for each
signature and wiped after it; when the vault locks, the agent lists no keys
until ` + "`safe unlock`" + `.

--confirm asks on the controlling terminal (/dev/tty) before every signature;
no answer within --confirm-timeout is a no. --lifetime limits how long each
key is served, counted from when the agent first saw it in the vault (as
ssh-add -t). An item's custom fields ssh-agent-lifetime (like 30m) and
ssh-agent-confirm (yes) can only tighten these for that key; a key held by
several items gets the strictest policy of them all. Each signature reads the
vault again, so a trashed item's key is refused at once.`,
		Example: `  eval "$(safe ssh-agent --socket ~/.ssh/safehold/agent.sock &)"   # or run it in its own terminal
  SSH_AUTH_SOCK=~/.ssh/safehold/agent.sock ssh-add -l
  safe ssh-agent --socket /run/user/1000/safehold-ssh/agent.sock --confirm --lifetime 8h`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if socket == "" {
				return usageError{errors.New("--socket PATH is required")}
			}
			if a.env.Getenv("GOGC") == "" && a.env.Getenv("GOMEMLIMIT") == "" {
				// Main turns the collector off for short commands; this
				// one runs for days.
				debug.SetGCPercent(100)
				debug.SetMemoryLimit(math.MaxInt64)
			}
			if lifetime < 0 || confirmTimeout < 0 {
				return usageError{errors.New("--lifetime and --confirm-timeout must not be negative")}
			}
			path, err := filepath.Abs(socket)
			if err != nil {
				return usageError{fmt.Errorf("--socket %q: %w", socket, err)}
			}
			// Fail now, not at the first ssh, when the vault is locked.
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			sc.C.Close()
			p, err := a.paths()
			if err != nil {
				return err
			}
			tty := sshagent.TTY{Timeout: confirmTimeout}
			var confirmer sshagent.Confirmer
			if err := tty.Check(); err == nil {
				confirmer = tty
			} else if confirm {
				return withHint(ExitUsage, "run safe ssh-agent in a terminal, or leave out --confirm", fmt.Errorf("--confirm: %w", err))
			}
			// Private keys pass through this process: no core dumps, no
			// ptrace by other processes of the user.
			if err := agent.Harden(); err != nil {
				return err
			}
			// x/crypto/ssh/agent reports each failed request with
			// log.Printf; this process reports its own events instead.
			log.SetOutput(io.Discard)
			l, err := sshagent.Listen(path)
			if err != nil {
				return withHint(ExitError, "choose a socket in a private (0700) directory of yours; a stale socket is replaced, anything else is not", err)
			}
			ctx, stop := signal.NotifyContext(a.ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			v := &sshVault{socket: p.Socket, filter: vault.Filter{Type: item.SSHKey, Vault: a.vault}}
			sa := sshagent.New(ctx, v, sshagent.Options{
				Lifetime:  lifetime,
				Confirm:   confirm,
				Confirmer: confirmer,
				Log: func(msg string) {
					fmt.Fprintf(a.env.Stderr, "%s ssh-agent: %s\n", time.Now().Format("15:04:05"), textsafe.Clean(msg))
				},
			})
			if a.jsonOut {
				// One line, so that a script reads it with one read.
				if err := json.NewEncoder(a.env.Stdout).Encode(map[string]any{"socket": path, "pid": syscall.Getpid()}); err != nil {
					l.Close()
					return err
				}
			} else {
				a.printf("SSH_AUTH_SOCK=%s; export SSH_AUTH_SOCK;\n", shellQuote(path))
			}
			policy := "no lifetime"
			if lifetime > 0 {
				policy = "lifetime " + lifetime.String()
			}
			if confirm {
				policy += ", confirm each use"
			}
			fmt.Fprintf(a.env.Stderr, "Serving the vault's SSH keys on %s (%s); Ctrl-C stops.\n", path, policy)
			if err := sshagent.Serve(ctx, l, sa); err != nil {
				return fmt.Errorf("ssh agent: %w", err)
			}
			fmt.Fprintln(a.env.Stderr, "Stopped; the socket is removed.")
			return nil
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "the Unix socket `PATH` to listen on (its directory is made 0700)")
	c.Flags().BoolVar(&confirm, "confirm", false, "ask on the terminal before each use of a key")
	c.Flags().DurationVar(&confirmTimeout, "confirm-timeout", sshagent.DefaultConfirmTimeout, "how long a confirmation waits for an answer (then: no)")
	c.Flags().DurationVar(&lifetime, "lifetime", 0, "serve each key for at most this long after first loading it (0: no limit)")
	a.vaultFlag(c)
	return c
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '_' || r == '-' || r == '+' || r == ':' || r == '@') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// sshVault reads SSH items through the unlock agent, one connection per
// request, so that the ssh agent's goroutines share nothing.
type sshVault struct {
	socket string
	filter vault.Filter
}

var _ sshagent.Vault = (*sshVault)(nil)

func (v *sshVault) dial(ctx context.Context) (*service.Client, error) {
	c, err := agent.DialContext(ctx, v.socket)
	if errors.Is(err, agent.ErrNoAgent) {
		return nil, fmt.Errorf("the vault is locked (no agent is running): run `safe unlock`")
	}
	if err != nil {
		return nil, err
	}
	return &service.Client{C: c}, nil
}

func (v *sshVault) List(ctx context.Context) ([]sshagent.Entry, error) {
	sc, err := v.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer sc.C.Close()
	ovs, err := sc.List(ctx, v.filter, false)
	if err != nil {
		return nil, err
	}
	out := make([]sshagent.Entry, 0, len(ovs))
	for _, o := range ovs {
		out = append(out, sshagent.Entry{ID: o.ID, Title: o.Title, Revision: o.Revision})
	}
	return out, nil
}

func (v *sshVault) Get(ctx context.Context, id string) (item.Item, error) {
	sc, err := v.dial(ctx)
	if err != nil {
		return item.Item{}, err
	}
	defer sc.C.Close()
	return sc.Get(ctx, id)
}
