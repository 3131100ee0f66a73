package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/secretref"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/totp"
)

// Secret references (safe://VAULT/ITEM/FIELD) in the tools people use:
// `safe read`, `safe run` and `safe inject`. The syntax lives in
// internal/secretref; this file resolves references through the agent and
// puts the values where they are wanted.

// concealed replaces a secret in the output of a `safe run` child.
const concealed = "<concealed by safehold>"

// minMasked is the length below which safe run warns that masking a value
// will hide unrelated output too. Such values are masked all the same.
const minMasked = 4

// Limits of inject.
const (
	maxTemplate = 16 << 20 // bytes of template
	maxRefs     = 10000    // references in one template
)

// exitStatus ends safe with a child's exit status (safe run). It is wrapped
// in a hintError with the same code, so that the status is right even where
// it is not recognised; report prints nothing for it.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("the command exited with status %d", e.code) }

// refHint is the hint for a malformed reference.
const refHint = "a reference is safe://VAULT/ITEM/FIELD; write / inside a name as %2F and % as %25"

// resolver turns references into values through one agent connection. It
// reads each item once.
type resolver struct {
	a     *app
	sc    *service.Client
	items map[[2]string]item.Item
}

func (a *app) newResolver() (*resolver, error) {
	sc, err := a.unlocked()
	if err != nil {
		return nil, err
	}
	return &resolver{a: a, sc: sc, items: map[[2]string]item.Item{}}, nil
}

func (r *resolver) close() { r.sc.C.Close() }

// resolve returns the value a reference names. Errors name the reference
// (never the value).
func (r *resolver) resolve(ref secretref.Ref) (string, error) {
	it, err := r.item(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	v, err := fieldValue(it, ref.Field)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return v, nil
}

func (r *resolver) item(ref secretref.Ref) (item.Item, error) {
	key := [2]string{strings.ToLower(ref.Vault), ref.Item}
	if it, ok := r.items[key]; ok {
		return it, nil
	}
	id, err := r.sc.ResolveIn(r.a.ctx, ref.Vault, ref.Item)
	if err != nil {
		return item.Item{}, err
	}
	it, err := r.sc.Get(r.a.ctx, id)
	if err != nil {
		return item.Item{}, err
	}
	// The vault finds items by a part of the title too; a reference must
	// not quietly follow a rename to whatever else matches.
	lref := strings.ToLower(strings.TrimSpace(ref.Item))
	byID := it.ID == lref || (len(lref) >= 4 && strings.HasPrefix(it.ID, lref))
	if !byID && !strings.EqualFold(it.Title, strings.TrimSpace(ref.Item)) {
		return item.Item{}, failf(ExitNotFound, "a reference names an item by its exact title or its id (see `safe ls --vault "+quoteArg(ref.Vault)+"`)",
			"no item titled %q in vault %q (the nearest is %q)", ref.Item, ref.Vault, textsafe.Clean(it.Title))
	}
	if it.Trashed != nil {
		return item.Item{}, failf(ExitNotFound, "take it out of the trash with `safe restore "+it.ID+"`, or point the reference at another item",
			"item %q is in the trash", textsafe.Clean(it.Title))
	}
	r.items[key] = it
	return it, nil
}

// fieldValue is the value of one field for a reference: "totp" (or "otp")
// is the current one-time code, as is a custom field of kind totp named by
// its name; anything else is what `safe get --field` prints. An empty value
// is not found: a reference that yields nothing is a mistake to report, not
// a value to pass on.
func fieldValue(it item.Item, field string) (string, error) {
	hasCustom := func(name string) (item.Field, bool) {
		for _, f := range it.Fields {
			if strings.EqualFold(f.Name, name) {
				return f, true
			}
		}
		return item.Field{}, false
	}
	n := strings.ToLower(strings.TrimSpace(field))
	if _, custom := hasCustom(field); !custom && (n == "totp" || n == "otp") {
		now, err := currentCode(it)
		if err != nil {
			return "", err
		}
		return now.code, nil
	}
	v, _, err := it.Get(field)
	if err != nil {
		return "", withHint(ExitNotFound, "`safe get "+quoteArg(it.Title)+"` lists the item's fields", err)
	}
	if f, ok := hasCustom(field); ok && f.Kind == item.KindTOTP && addressesCustom(it, field) {
		cfg, err := totp.Parse(f.Value)
		if err != nil {
			return "", withHint(ExitInvalid, "fix the seed with `safe edit`", fmt.Errorf("%q: the TOTP seed in field %q does not parse: %w", it.Title, f.Name, err))
		}
		defer cfg.Secret.Wipe()
		code, _, err := totp.Code(cfg, time.Now())
		return code, err
	}
	if v == "" {
		return "", failf(ExitNotFound, "`safe get "+quoteArg(it.Title)+"` lists the item's fields", "field %q of %q is empty", field, textsafe.Clean(it.Title))
	}
	return v, nil
}

// addressesCustom says whether item.Get(name) reads the custom field of
// that name rather than a standard field: it changes the custom field in a
// copy and sees whether Get follows.
func addressesCustom(it item.Item, name string) bool {
	c := it.Clone()
	const probe = "\x00probe\x00"
	for i := range c.Fields {
		if strings.EqualFold(c.Fields[i].Name, name) {
			c.Fields[i].Value = probe
			break
		}
	}
	v, _, err := c.Get(name)
	return err == nil && v == probe
}

// quoteArg quotes a title for a command shown in a hint when it needs it.
func quoteArg(s string) string {
	s = textsafe.Clean(s)
	if s != "" && !strings.ContainsAny(s, " \t'\"\\$`!*?[](){}<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func parseRef(s string, code int) (secretref.Ref, error) {
	ref, err := secretref.Parse(s)
	if err != nil {
		return ref, withHint(code, refHint, err)
	}
	return ref, nil
}

func (a *app) readCommand() *cobra.Command {
	var noNewline bool
	c := &cobra.Command{
		Use:   "read REFERENCE",
		Short: "Print the value a secret reference (safe://VAULT/ITEM/FIELD) names",
		Long: `Print the value of one field of one item, named by a secret reference:

  safe://VAULT/ITEM/FIELD

VAULT is a vault's name or id (see ` + "`safe vault ls`" + `; the personal vault is
"Personal"), ITEM an item's exact title or id, FIELD password, username,
notes, url, totp (the current one-time code), card.number and the other
fields ` + "`safe get --field`" + ` knows, or a custom field's name. Write "/" inside a
name as %2F, "%" as %25, "?" as %3F and "#" as %23; spaces may be written
as they are or as %20.

The value is printed followed by a newline (none with --no-newline).`,
		Example: `  safe read safe://Personal/GitHub/password
  safe read 'safe://Work/db%2Fprod/connection string' --no-newline
  export TOKEN="$(safe read safe://Personal/API/token)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := parseRef(args[0], ExitUsage)
			if err != nil {
				return err
			}
			r, err := a.newResolver()
			if err != nil {
				return err
			}
			defer r.close()
			v, err := r.resolve(ref)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"reference": ref.String(), "value": v})
			}
			if !noNewline {
				v += "\n"
			}
			return a.writeValue([]byte(v))
		},
	}
	c.Flags().BoolVarP(&noNewline, "no-newline", "n", false, "print the value without a newline after it")
	return c
}

func (a *app) runCommand() *cobra.Command {
	var noMasking bool
	c := &cobra.Command{
		Use:   "run [--no-masking] -- COMMAND [ARGS...]",
		Short: "Run a command with secret references in its environment resolved",
		Long: `Run COMMAND with the environment of safe, in which every variable whose whole
value is a secret reference (safe://VAULT/ITEM/FIELD, see ` + "`safe read --help`" + `)
holds the value it names instead. Secrets reach the command only through its
environment, never its command line.

Every resolved value is masked in what the command writes to standard output
and standard error: it is replaced by "` + concealed + `", even when
it arrives in several pieces. Masking holds back at most one byte less than
the longest value while a value may be starting, and matches the exact bytes
only (not an encoded or partial form). Values of any length are masked,
however short. --no-masking connects the command straight to the terminal.

SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to the command (SIGINT and
SIGQUIT not when safe runs in the terminal's foreground, where a key press
reaches the command directly), and safe exits with the command's status
(128+N when a signal N ended it).`,
		Example: `  DB_PASSWORD=safe://Personal/Postgres/password safe run -- ./migrate
  export GITHUB_TOKEN=safe://Work/GitHub/token
  safe run -- gh repo list`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			env, secrets, err := a.resolveEnv(os.Environ())
			if err != nil {
				return err
			}
			return a.runChild(args, env, secrets, !noMasking)
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().BoolVar(&noMasking, "no-masking", false, "do not mask secret values in the command's output (connect it to the terminal)")
	return c
}

// resolveEnv replaces every reference value in an environment list and
// returns the values it put in.
func (a *app) resolveEnv(environ []string) ([]string, []string, error) {
	out := append([]string(nil), environ...)
	var secrets []string
	var r *resolver
	defer func() {
		if r != nil {
			r.close()
		}
	}()
	for i, kv := range out {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !secretref.HasScheme(val) {
			continue
		}
		ref, err := secretref.Parse(val)
		if err != nil {
			return nil, nil, withHint(ExitInvalid, refHint, fmt.Errorf("environment variable %s: %w", name, err))
		}
		if r == nil {
			if r, err = a.newResolver(); err != nil {
				return nil, nil, err
			}
		}
		v, err := r.resolve(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("environment variable %s: %w", name, err)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, nil, failf(ExitInvalid, "use `safe inject` to put the value in a file", "environment variable %s: %s holds a NUL byte, which an environment cannot carry", name, ref)
		}
		if len(v) < minMasked {
			a.warnf("the value of %s is shorter than %d bytes: masking hides every occurrence of it in the output", name, minMasked)
		}
		out[i] = name + "=" + v
		secrets = append(secrets, v)
	}
	return out, secrets, nil
}

// runChild runs the command with the environment, passes signals on, and
// returns its exit status as an exitStatus error.
func (a *app) runChild(args, env, secrets []string, mask bool) error {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return withHint(127, "check the command's name and $PATH", fmt.Errorf("cannot run %q: %w", args[0], err))
	}
	cmd := &exec.Cmd{Path: path, Args: args, Env: env, Stdin: a.env.Stdin, Stdout: a.env.Stdout, Stderr: a.env.Stderr}
	var outs []*masker
	if mask && len(secrets) > 0 {
		mo, me := newMasker(a.env.Stdout, secrets), newMasker(a.env.Stderr, secrets)
		cmd.Stdout, cmd.Stderr = mo, me
		outs = []*masker{mo, me}
	}
	// Catch the signals before the child starts, so that none ends safe
	// without reaching the child.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return withHint(126, "check that the command is an executable file", fmt.Errorf("cannot run %q: %w", args[0], err))
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if (s == syscall.SIGINT || s == syscall.SIGQUIT) && keyboardReachesChild() {
					continue // the terminal sent it to the child too
				}
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	for _, m := range outs {
		m.Flush()
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run %q: %w", args[0], err)
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code <= 0 {
		code = ExitError
	}
	return withHint(code, "", exitStatus{code})
}

// keyboardReachesChild says whether safe runs in the foreground process
// group of its controlling terminal. The child shares that group, so a
// SIGINT or SIGQUIT typed at the keyboard has reached it already: passing
// it on would deliver it twice, which many programs take as "stop now,
// without cleaning up".
func keyboardReachesChild() bool {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	defer f.Close()
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// masker writes through to w with every secret replaced by concealed. A
// secret split across writes is still caught: bytes that may start a
// secret are held back until the secret completes or cannot (at most
// len(longest secret)-1 bytes). Flush writes what is held once the output
// ends.
type masker struct {
	w       io.Writer
	secrets [][]byte // longest first
	first   [256]bool
	pending []byte
	out     []byte
	err     error
}

func newMasker(w io.Writer, secrets []string) *masker {
	m := &masker{w: w}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		m.secrets = append(m.secrets, []byte(s))
		m.first[s[0]] = true
	}
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Write consumes all of p; it reports an error of the writer below once,
// and from then on drops output.
func (m *masker) Write(p []byte) (int, error) {
	if m.err != nil {
		return len(p), nil
	}
	m.pending = append(m.pending, p...)
	keep := m.scan(false)
	m.emit()
	m.pending = m.pending[:copy(m.pending, m.pending[keep:])]
	return len(p), nil
}

// Flush writes out whatever is held back.
func (m *masker) Flush() error {
	if m.err == nil {
		m.scan(true)
		m.emit()
	}
	m.pending = m.pending[:0]
	return m.err
}

func (m *masker) emit() {
	if len(m.out) > 0 && m.err == nil {
		_, m.err = m.w.Write(m.out)
	}
	m.out = m.out[:0]
}

// scan moves the masked form of pending into out and returns the offset
// from which pending must be held back. With final, nothing is held.
func (m *masker) scan(final bool) int {
	buf := m.pending
	start := 0
	for i := 0; i < len(buf); {
		if !m.first[buf[i]] {
			i++
			continue
		}
		matched := 0
		for _, s := range m.secrets {
			if len(s) > len(buf)-i {
				// Longer than what is there: it may still complete.
				if !final && bytes.HasPrefix(s, buf[i:]) {
					m.out = append(m.out, buf[start:i]...)
					return i
				}
				continue
			}
			if bytes.Equal(buf[i:i+len(s)], s) {
				matched = len(s)
				break
			}
		}
		if matched == 0 {
			i++
			continue
		}
		m.out = append(m.out, buf[start:i]...)
		m.out = append(m.out, concealed...)
		i += matched
		start = i
	}
	m.out = append(m.out, buf[start:]...)
	return len(buf)
}

func (a *app) injectCommand() *cobra.Command {
	var in, out string
	var force bool
	c := &cobra.Command{
		Use:   "inject [-i TEMPLATE] [-o FILE] [--force]",
		Short: "Fill the secret references in a template and write the result",
		Long: `Copy a template, replacing every {{ safe://VAULT/ITEM/FIELD }} in it with the
value the reference names (see ` + "`safe read --help`" + `). White space inside the
braces is allowed; {{ followed by anything else is copied as it is. Every
reference is resolved before anything is written: one that does not resolve
is an error naming its line, and nothing is written.

The template comes from -i FILE (or standard input, without -i or with -i -).
The result goes to -o FILE, created with mode 0600 through a temporary file
in the same directory and a rename, so that no other user can read it and no
reader sees half of it; an existing FILE is replaced only with --force.
Without -o (or with -o -) the result goes to standard output.`,
		Example: `  safe inject -i config.yml.tpl -o config.yml
  echo 'password: {{ safe://Personal/Postgres/password }}' | safe inject`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			toFile := out != "" && out != "-"
			if toFile && !force {
				if _, err := os.Lstat(out); err == nil {
					return failf(ExitExists, "pass --force to replace it", "%s exists", out)
				}
			}
			tpl, err := a.readTemplate(in)
			if err != nil {
				return err
			}
			spans, err := scanTemplate(tpl)
			if err != nil {
				return err
			}
			var result []byte
			if len(spans) == 0 {
				result = tpl
			} else {
				r, err := a.newResolver()
				if err != nil {
					return err
				}
				result, err = fillTemplate(tpl, spans, r)
				r.close()
				if err != nil {
					return err
				}
			}
			if !toFile {
				return a.writeValue(result)
			}
			if err := writePrivate(out, result, force); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"file": out, "references": len(spans)})
			}
			a.printf("%s\n", textsafe.Clean(out))
			return nil
		},
	}
	c.Flags().StringVarP(&in, "in-file", "i", "", "read the template from `TEMPLATE` (default, or -: standard input)")
	c.Flags().StringVarP(&out, "out-file", "o", "", "write the result to `FILE`, mode 0600 (default, or -: standard output)")
	c.Flags().BoolVarP(&force, "force", "f", false, "replace FILE if it exists")
	return c
}

func (a *app) readTemplate(in string) ([]byte, error) {
	var r io.Reader = a.env.Stdin
	name := "standard input"
	if in != "" && in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return nil, withHint(ExitNotFound, "check the template's path", fmt.Errorf("open the template: %w", err))
		}
		defer f.Close()
		r, name = f, in
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTemplate+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxTemplate {
		return nil, failf(ExitInvalid, "split the template", "%s is larger than %d bytes", name, maxTemplate)
	}
	return b, nil
}

// span is one {{ reference }} in a template: bytes [start, end).
type span struct {
	start, end, line int
	ref              secretref.Ref
}

// scanTemplate finds the references in a template. "{{", optional spaces
// or tabs, "safe://" starts one; it ends at the next "}}" on the same line.
func scanTemplate(b []byte) ([]span, error) {
	var spans []span
	line, lineFrom := 1, 0
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("{{"))
		if k < 0 {
			return spans, nil
		}
		open := i + k
		line += bytes.Count(b[lineFrom:open], []byte("\n"))
		lineFrom = open
		j := open + 2
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		if !bytes.HasPrefix(b[j:], []byte(secretref.Scheme)) {
			i = open + 2
			continue
		}
		endLine := bytes.IndexByte(b[j:], '\n')
		if endLine < 0 {
			endLine = len(b) - j
		}
		end := bytes.Index(b[j:j+endLine], []byte("}}"))
		if end < 0 {
			return nil, failf(ExitInvalid, "close the reference with }} on the same line", "line %d: a reference opened with {{ is not closed", line)
		}
		text := strings.TrimRight(string(b[j:j+end]), " \t")
		ref, err := secretref.Parse(text)
		if err != nil {
			return nil, withHint(ExitInvalid, refHint, fmt.Errorf("line %d: %w", line, err))
		}
		if len(spans) == maxRefs {
			return nil, failf(ExitInvalid, "split the template", "line %d: more than %d references", line, maxRefs)
		}
		spans = append(spans, span{start: open, end: j + end + 2, line: line, ref: ref})
		i = j + end + 2
	}
}

// fillTemplate resolves every reference, then builds the result.
func fillTemplate(tpl []byte, spans []span, r *resolver) ([]byte, error) {
	values := make([]string, len(spans))
	size := len(tpl)
	for i, s := range spans {
		v, err := r.resolve(s.ref)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", s.line, err)
		}
		values[i] = v
		size += len(v)
	}
	out := make([]byte, 0, size)
	at := 0
	for i, s := range spans {
		out = append(out, tpl[at:s.start]...)
		out = append(out, values[i]...)
		at = s.end
	}
	return append(out, tpl[at:]...), nil
}

// writePrivate writes data to path with mode 0600, atomically: a temporary
// file in the same directory, synced, then linked (refusing an existing
// file) or, with force, renamed over path.
func writePrivate(path string, data []byte, force bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return withHint(ExitError, "check that the directory exists and is writable", fmt.Errorf("create a file next to %s: %w", path, err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if force {
		if err = os.Rename(tmp, path); err != nil {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	} else {
		// link fails if path exists, closing the gap between the check
		// before resolving and now.
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return failf(ExitExists, "pass --force to replace it", "%s exists", path)
		}
		if err != nil {
			// A file system without hard links: check, then rename.
			if _, serr := os.Lstat(path); serr == nil {
				return failf(ExitExists, "pass --force to replace it", "%s exists", path)
			}
			if err = os.Rename(tmp, path); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		} else {
			os.Remove(tmp)
		}
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
