// Package cli is the `safe` command line: one file per command group, each
// building its cobra command and calling a run function. Commands that touch
// an unlocked vault talk to the unlock agent through internal/service;
// `init`, `kdf` and `agent` work on the vault file directly.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// Exit codes. They are stable and documented in docs/cli.md.
const (
	ExitOK            = 0
	ExitError         = 1  // anything not listed below
	ExitUsage         = 2  // bad flags or arguments
	ExitWrongPassword = 3  // wrong password or Recovery Key
	ExitNotFound      = 4  // no item, field or attachment by that name
	ExitAmbiguous     = 5  // a name matched more than one item
	ExitLocked        = 6  // the vault is locked (no agent, or agent locked)
	ExitTampered      = 7  // an integrity check failed
	ExitConflict      = 8  // the item changed since it was read
	ExitNoVault       = 9  // no vault here: run safe init
	ExitExists        = 10 // a vault already exists here
	ExitInvalid       = 11 // invalid input (item JSON, form, parameters)
	ExitInsecureKDF   = 12 // the test KDF profile without its switch
)

// Env is what a command sees of the world: streams, environment and the
// process's identity. Tests build their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Exe is the path of the safe binary, used to start the agent and the
	// clipboard cleaner.
	Exe string
}

// app carries the global flags and the environment through one run.
type app struct {
	env      Env
	jsonOut  bool
	home     string
	ctx      context.Context
	insecure bool // the vault uses the test KDF profile (warned once)
	// vault is --vault of item commands: the vault in which item names
	// are resolved, items added and listed ("" for all, or for the first
	// vault when adding).
	vault string
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	longLived := slices.Contains(args, "agent") || slices.Contains(args, "serve") || slices.Contains(args, "bench")
	if !longLived && env.Getenv("GOGC") == "" && env.Getenv("GOMEMLIMIT") == "" {
		// A command lives for milliseconds: collecting garbage only costs
		// it time (a seventh of a 10,000-item ls). The limit still bounds
		// memory. The agent, the server and the load generator, which
		// live long, keep the defaults.
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(256 << 20)
	}
	a := &app{env: env, ctx: ctx}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		if a.insecure && a.jsonOut {
			fmt.Fprintln(env.Stderr, insecureText)
		}
		return ExitOK
	}
	return a.report(err)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "safe",
		Short: "Safehold: an end-to-end encrypted safe for passwords and secrets",
		Long: `Safehold keeps passwords and other secrets in an encrypted vault file.
Everything you type is sealed with AES-256-GCM inside XChaCha20-Poly1305 under
keys that only your password (or your Recovery Key) unlocks.

Start with:  safe init    then  safe add login --title Example --generate`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.Args = cobra.NoArgs
	root.RunE = groupHelp
	root.PersistentFlags().StringVar(&a.home, "home", "", "directory for all client state (default $SAFE_HOME, else the XDG directories)")
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print machine-readable JSON")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	for _, c := range []*cobra.Command{
		a.initCommand(), a.unlockCommand(), a.lockCommand(), a.statusCommand(),
		a.addCommand(), a.editCommand(), a.getCommand("get"), a.getCommand("show"),
		a.lsCommand(), a.findCommand(), a.rmCommand(), a.restoreCommand(), a.purgeCommand(),
		a.historyCommand(), a.generateCommand(), a.totpCommand(), a.copyCommand(),
		a.passwdCommand(), a.recoverCommand(), a.verifyCommand(), a.kdfCommand(),
		a.versionCommand(), a.agentCommand(), a.attachCommand(), a.vpnCommand(),
		a.sshCommand(), a.sshAgentCommand(), a.clipboardClearCommand(),
		a.accountCommand(), a.syncCommand(), a.remoteCommand(), a.deviceCommand(), a.peerCommand(),
		a.twoFACommand(), a.conflictsCommand(), a.kitCommand(), a.serveCommand(), a.adminCommand(), a.benchCommand(),
		a.orgCommand(), a.vaultCommand(), a.moveCommand("mv"), a.moveCommand("cp"),
		a.importCommand(), a.exportCommand(),
		a.readCommand(), a.runCommand(), a.injectCommand(), a.gitCredentialCommand(), a.auditCommand(),
	} {
		root.AddCommand(c)
	}
	groupsNeedSubcommands(root)
	usageArgs(root)
	return root
}

// groupHelp runs for a command group given no subcommand: it shows the help.
// (An unknown subcommand is an argument, refused by NoArgs as a usage error.)
func groupHelp(c *cobra.Command, _ []string) error { return c.Help() }

// groupsNeedSubcommands makes every command group refuse an unknown
// subcommand with exit 2 instead of printing help and exiting 0.
func groupsNeedSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if sub.HasSubCommands() && sub.Run == nil && sub.RunE == nil {
			sub.Args = cobra.NoArgs
			sub.RunE = groupHelp
		}
		groupsNeedSubcommands(sub)
	}
}

// usageArgs makes argument errors (a wrong count, an extra word) usage
// errors, exit 2, as flag errors are.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// usageError marks bad flags or arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// hintError carries a hint line and an exit code with an error.
type hintError struct {
	err  error
	hint string
	code int
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(code int, hint string, err error) error {
	return &hintError{err: err, hint: hint, code: code}
}

func failf(code int, hint, format string, args ...any) error {
	return withHint(code, hint, fmt.Errorf(format, args...))
}

// agentCodes maps the agent's error codes to exit codes.
var agentCodes = map[string]int{
	service.CodeWrongPassword: ExitWrongPassword,
	service.CodeRecoveryKey:   ExitWrongPassword,
	service.CodeNotFound:      ExitNotFound,
	service.CodeAmbiguous:     ExitAmbiguous,
	service.CodeLocked:        ExitLocked,
	service.CodeTampered:      ExitTampered,
	service.CodeConflict:      ExitConflict,
	service.CodeNoVault:       ExitNoVault,
	service.CodeInvalid:       ExitInvalid,
	service.CodeInsecureKDF:   ExitInsecureKDF,
	service.CodeNotInTrash:    ExitNotFound,
}

// classify finds the exit code and hint for an error.
func classify(err error) (int, string) {
	var he *hintError
	if errors.As(err, &he) {
		return he.code, he.hint
	}
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage, "run the command with --help for its usage"
	}
	var ae *agent.Error
	if errors.As(err, &ae) {
		if c, ok := agentCodes[ae.Code]; ok {
			return c, ae.Hint
		}
		return ExitError, ae.Hint
	}
	if code, hint, ok := classifyRemote(err); ok {
		return code, hint
	}
	switch {
	case errors.Is(err, vault.ErrWrongPassword):
		return ExitWrongPassword, "check the password; a forgotten password can be replaced with `safe recover`"
	case errors.Is(err, vault.ErrRecoveryKey):
		return ExitWrongPassword, "type the Recovery Key exactly as printed when the vault was made"
	case errors.Is(err, vault.ErrTampered):
		return ExitTampered, "the vault file was changed outside safe; restore it from a backup"
	case errors.Is(err, vault.ErrNoVault), errors.Is(err, store.ErrNotExist):
		return ExitNoVault, "run `safe init` to create a vault"
	case errors.Is(err, vault.ErrExists):
		return ExitExists, "use the vault that is there, or choose another --home"
	case errors.Is(err, vault.ErrInsecureKDF):
		return ExitInsecureKDF, ""
	case errors.Is(err, vault.ErrNewerFormat), errors.Is(err, store.ErrTooNew):
		return ExitError, "upgrade safe to a version that knows this vault format; it never falls back to an older one"
	case errors.Is(err, item.ErrInvalid):
		return ExitInvalid, ""
	case errors.Is(err, agent.ErrNoAgent):
		return ExitLocked, "run `safe unlock`"
	case errors.Is(err, store.ErrNotVault), errors.Is(err, store.ErrPermission):
		return ExitError, ""
	}
	return ExitError, ""
}

// report prints an error as "error:" and "hint:" lines (or JSON) and returns
// the exit code.
func (a *app) report(err error) int {
	var child exitStatus
	if errors.As(err, &child) {
		return child.code // safe run: the command's own status, nothing printed
	}
	code, hint := classify(err)
	if a.jsonOut {
		out := map[string]any{"error": err.Error(), "exit_code": code}
		if hint != "" {
			out["hint"] = hint
		}
		if a.insecure {
			out["warning"] = insecureText
		}
		writeJSON(a.env.Stderr, out, true)
		return code
	}
	// The message and the hint may quote a server, an item title, a name
	// another member chose.
	fmt.Fprintf(a.env.Stderr, "error: %s\n", textsafe.CleanLines(err.Error()))
	if hint != "" {
		fmt.Fprintf(a.env.Stderr, "hint: %s\n", textsafe.CleanLines(hint))
	}
	return code
}

// printJSON writes v as indented JSON on stdout.
func (a *app) printJSON(v any) error { return writeJSON(a.env.Stdout, v, false) }

// writeJSON writes v as indented JSON in one write. Strings keep their exact
// values; the characters a terminal acts on that encoding/json leaves raw
// (C1 controls, DEL, bidirectional overrides) are \u-escaped too
// (textsafe.EscapeJSON), so JSON shown on a terminal is as inert as the
// human output.
func writeJSON(w io.Writer, v any, escapeHTML bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(textsafe.EscapeJSON(buf.Bytes()))
	return err
}

// printf prints a message for people on stdout. Everything it prints is
// cleaned (textsafe.CleanLines): a name or title formatted into it cannot
// act on the terminal. Values that programs read (a password, a filled
// template) go through writeValue instead.
func (a *app) printf(format string, args ...any) {
	io.WriteString(a.env.Stdout, textsafe.CleanLines(fmt.Sprintf(format, args...)))
}

// eprintf is printf on standard error.
func (a *app) eprintf(format string, args ...any) {
	io.WriteString(a.env.Stderr, textsafe.CleanLines(fmt.Sprintf(format, args...)))
}

// warnf prints a "warning:" line on standard error, cleaned like printf's.
func (a *app) warnf(format string, args ...any) {
	a.eprintf("warning: "+format+"\n", args...)
}

// writeValue writes a value that programs read (a field's value, a filled
// template, a public key, a configuration file) byte for byte. On a
// terminal it is shown to a person instead, and a value another member of
// a shared vault wrote must not act on the terminal: it is cleaned like
// any other text (textsafe.CleanLines), with a warning when that changed
// it. Redirected to a file or a pipe it stays exact.
func (a *app) writeValue(v []byte) error {
	if a.stdoutIsTerminal() {
		if c := textsafe.CleanLines(string(v)); c != string(v) {
			a.warnf("the value holds control characters or terminal escape sequences, left out on this terminal; redirect the output to a file or a pipe to get it byte for byte")
			v = []byte(c)
		}
	}
	_, err := a.env.Stdout.Write(v)
	return err
}

// insecureWarning is printed by every command on a vault made with the
// test KDF profile.
// With --json it is held back so that standard error stays one JSON
// document: it goes into the error object, or on its own line after a
// successful command.
func (a *app) insecureWarning(insecure bool) {
	if !insecure || a.insecure {
		return
	}
	a.insecure = true
	if !a.jsonOut {
		fmt.Fprintln(a.env.Stderr, insecureText)
	}
}

const insecureText = "WARNING: this vault uses the INSECURE TEST KDF profile (SAFE_INSECURE_TEST_KDF=1): its password can be guessed quickly. Never keep real secrets in it."

// stdinIsTerminal says whether prompts are possible.
func (a *app) stdinIsTerminal() bool {
	f, ok := a.env.Stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// stdoutIsTerminal says whether standard output is shown to a person as it
// is written.
func (a *app) stdoutIsTerminal() bool {
	f, ok := a.env.Stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
