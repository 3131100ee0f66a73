package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/vault"
)

// connect reaches a running agent. It does not start one: a command that
// needs the vault unlocked fails with "locked" when no agent runs.
func (a *app) connect() (*service.Client, *service.Info, error) {
	p, err := a.paths()
	if err != nil {
		return nil, nil, err
	}
	c, err := agent.DialContext(a.ctx, p.Socket)
	if errors.Is(err, agent.ErrNoAgent) {
		if _, serr := statVault(p.Vault); serr != nil {
			return nil, nil, serr
		}
		return nil, nil, withHint(ExitLocked, "run `safe unlock`", fmt.Errorf("the vault is locked (no agent is running)"))
	}
	if err != nil {
		return nil, nil, err
	}
	sc := &service.Client{C: c}
	info, err := sc.Info(a.ctx, false)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	a.insecureWarning(info.InsecureTestKDF)
	return sc, info, nil
}

// dial reaches a running agent without asking for its Info, which checks
// the vault file: lock and agent stop must work even when that check fails,
// so that keys are never stuck in an agent serving a tampered file.
func (a *app) dial() (*service.Client, error) {
	p, err := a.paths()
	if err != nil {
		return nil, err
	}
	c, err := agent.DialContext(a.ctx, p.Socket)
	if errors.Is(err, agent.ErrNoAgent) {
		return nil, withHint(ExitLocked, "run `safe unlock`", fmt.Errorf("the vault is locked (no agent is running)"))
	}
	if err != nil {
		return nil, err
	}
	return &service.Client{C: c}, nil
}

// unlocked connects and insists that the agent holds the keys.
func (a *app) unlocked() (*service.Client, error) {
	c, info, err := a.connect()
	if err != nil {
		return nil, err
	}
	if !info.Unlocked {
		c.C.Close()
		return nil, withHint(ExitLocked, "run `safe unlock`", fmt.Errorf("the vault is locked"))
	}
	return c, nil
}

// startAgent makes sure an agent serves this vault, starting one if needed.
func (a *app) startAgent(ctx context.Context, timeout string) (*service.Client, *service.Info, error) {
	p, err := a.paths()
	if err != nil {
		return nil, nil, err
	}
	if _, err := statVault(p.Vault); err != nil {
		return nil, nil, err
	}
	args := []string{"agent"}
	if p.Home != "" {
		args = append(args, "--home", p.Home)
	}
	if timeout != "" {
		args = append(args, "--timeout", timeout)
	}
	cmd := exec.Command(a.env.Exe, args...)
	l := agent.Launcher{LogPath: p.Log}
	if err := l.Start(ctx, p.Socket, cmd); err != nil {
		return nil, nil, fmt.Errorf("start the agent: %w", err)
	}
	sc, info, err := a.connect()
	if err == nil && info.InsecureTestKDF && !a.insecureKDF() {
		// An agent started with the switch keeps it; the switch must
		// still be set for each command that unlocks.
		sc.C.Close()
		return nil, nil, withHint(ExitInsecureKDF, "this vault was made for tests; set SAFE_INSECURE_TEST_KDF=1 to open it", vault.ErrInsecureKDF)
	}
	return sc, info, err
}

// Executable returns the path to start this program again (for the agent and
// the clipboard cleaner): os.Args[0] resolved through PATH when it has no
// slash, made absolute. It falls back to os.Executable.
func Executable() string {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		}
	}
	if abs, err := filepath.Abs(arg0); err == nil {
		if _, err := os.Stat(abs); err == nil {
			return abs
		}
	}
	exe, _ := os.Executable()
	return exe
}

// withItem connects to the unlocked agent and reads the item ref names. The
// caller closes the client.
func (a *app) withItem(ref string) (*service.Client, item.Item, error) {
	sc, err := a.unlocked()
	if err != nil {
		return nil, item.Item{}, err
	}
	ref, err = a.itemRef(sc, ref)
	if err != nil {
		sc.C.Close()
		return nil, item.Item{}, err
	}
	it, err := sc.Get(a.ctx, ref)
	if err != nil {
		sc.C.Close()
		return nil, item.Item{}, err
	}
	return sc, it, nil
}

// itemRef is what to send the agent for the item ref names: with --vault,
// the id of the item ref names within that vault; else ref as typed.
func (a *app) itemRef(sc *service.Client, ref string) (string, error) {
	if a.vault == "" {
		return ref, nil
	}
	return sc.ResolveIn(a.ctx, a.vault, ref)
}

// vaultFlag gives an item command --vault.
func (a *app) vaultFlag(c *cobra.Command) {
	c.Flags().StringVar(&a.vault, "vault", "", "the `VAULT` (id, id prefix or name; see `safe vault ls`) in which to find, add or list items")
}
