package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/secret"
)

type pflagFlag = pflag.Flag

func sortStrings(s []string) { sort.Strings(s) }

// The editor form is a readable text rendering of an item:
//
//	# comments and blank lines are ignored
//	type: login
//	title: GitHub
//	username: alice
//	password: correct horse
//	url: https://github.com          (repeat for several)
//	tags: dev, work
//	favorite: yes
//	card.number: 4111 1111 1111 1111 (any standard field by name)
//	field hidden "Recovery PIN": 1234 (custom field: kind and quoted name)
//	notes: |
//	  every line indented by two spaces
//
// Attachments and VPN profiles are kept as they are and not shown.

const formHeader = `# Safehold item. Edit the values, save and quit; an empty file cancels.
# One "name: value" per line; "name: |" starts a block of lines indented by two spaces.
# Repeat "url:" for several URLs. Custom fields: field KIND "NAME": VALUE
# (KIND is text, hidden, url, totp or date). This file lives in a private
# directory and is wiped when the editor closes.
`

// renderForm writes an item as a form.
func renderForm(it item.Item) []byte {
	var b bytes.Buffer
	b.WriteString(formHeader)
	kv := func(k, v string) {
		if needsQuotes(v) {
			fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(v))
			return
		}
		if strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "%s: |\n", k)
			for _, l := range strings.Split(v, "\n") {
				fmt.Fprintf(&b, "  %s\n", l)
			}
			return
		}
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	kv("type", string(it.Type))
	kv("title", it.Title)
	std := map[item.Type][]string{
		item.Login:    {"username", "password", "totp"},
		item.Note:     {},
		item.Card:     {"card.holder", "card.brand", "card.number", "card.expiry", "card.cvv", "card.pin"},
		item.Identity: {"identity.first_name", "identity.last_name", "identity.email", "identity.phone", "identity.address", "identity.company", "identity.birthday", "identity.passport", "identity.license", "identity.national_id"},
		item.SSHKey:   {"ssh.private_key", "ssh.public_key", "ssh.passphrase"},
		item.TOTP:     {"totp"},
		item.VPN:      {},
	}
	shown := map[string]bool{"title": true}
	for _, name := range std[it.Type] {
		v, _, _ := it.Get(name)
		kv(name, v)
		shown[name] = true
	}
	for _, v := range it.Values() {
		if shown[v.Name] || v.Name == "tags" || strings.HasPrefix(v.Name, "url") || isCustom(it, v.Name) || v.Name == "notes" || v.Name == "folder" {
			continue
		}
		kv(v.Name, v.Value)
	}
	if len(it.URLs) == 0 && (it.Type == item.Login) {
		kv("url", "")
	}
	for _, u := range it.URLs {
		kv("url", u)
	}
	kv("folder", it.Folder)
	kv("tags", strings.Join(it.Tags, ", "))
	kv("favorite", yesNo(it.Favorite))
	for _, f := range it.Fields {
		kv(fmt.Sprintf("field %s %s", f.Kind, strconv.Quote(f.Name)), f.Value)
	}
	kv("notes", it.Notes)
	return b.Bytes()
}

func isCustom(it item.Item, name string) bool {
	for _, f := range it.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// parseForm reads a form back into a copy of base (which keeps what the
// form does not show: id, attachments, VPN profile, history stamps). Errors
// name the line.
func parseForm(data []byte, base item.Item) (item.Item, error) {
	it := base.Clone()
	it.Title, it.Username, it.Password, it.Notes, it.TOTP, it.Folder = "", "", "", "", "", ""
	it.URLs, it.Tags, it.Fields, it.Card, it.Identity, it.SSH, it.Favorite = nil, nil, nil, nil, nil, nil, false
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := lines[i]
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if strings.HasPrefix(line, "field ") {
			// field KIND "NAME": value — the name may hold a colon.
			rest := strings.TrimPrefix(line, "field ")
			kind, after, _ := strings.Cut(rest, " ")
			name, tail, err := unquotePrefix(after)
			if err != nil || !strings.HasPrefix(tail, ":") {
				return it, fmt.Errorf("%w: line %d: want field KIND \"NAME\": VALUE", item.ErrInvalid, n)
			}
			key, val, ok = "field", strings.TrimPrefix(tail, ":"), true
			v, next := blockValue(lines, i, val)
			i = next
			it.Fields = append(it.Fields, item.Field{Name: name, Kind: item.FieldKind(kind), Value: v})
			continue
		}
		if !ok || strings.HasPrefix(line, " ") {
			return it, fmt.Errorf("%w: line %d: %q is not \"name: value\"", item.ErrInvalid, n, strings.TrimSpace(line))
		}
		key = strings.TrimSpace(key)
		v, next := blockValue(lines, i, val)
		i = next
		switch key {
		case "type":
			t, err := item.ParseType(v)
			if err != nil {
				return it, fmt.Errorf("%w: line %d: %v", item.ErrInvalid, n, err)
			}
			it.Type = t
		case "url":
			if v != "" {
				it.URLs = append(it.URLs, v)
			}
		case "tags":
			it.Tags = nil
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					it.Tags = append(it.Tags, t)
				}
			}
		case "favorite", "favourite":
			switch strings.ToLower(v) {
			case "yes", "true", "y", "1":
				it.Favorite = true
			case "no", "false", "n", "0", "":
				it.Favorite = false
			default:
				return it, fmt.Errorf("%w: line %d: favorite is yes or no, not %q", item.ErrInvalid, n, v)
			}
		default:
			if _, _, err := it.Get(key); err != nil {
				return it, fmt.Errorf("%w: line %d: unknown field %q (custom fields are written: field text \"NAME\": VALUE)", item.ErrInvalid, n, key)
			}
			it.Set(key, v)
		}
	}
	it.Finish()
	return it, nil
}

// needsQuotes says whether a value would not survive the plain form: white
// space at either end (trimmed when read back), the block marker "|", a
// leading quote, control characters, or a multi-line value whose lines end
// in white space or which ends in a line break. Such values are written as
// Go-quoted strings and unquoted when read back.
func needsQuotes(v string) bool {
	if v == "" {
		return false
	}
	if v != strings.TrimSpace(v) || v == "|" || strings.HasPrefix(v, `"`) {
		return true
	}
	for _, r := range v {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return true
		}
	}
	if strings.Contains(v, "\n") {
		for _, l := range strings.Split(v, "\n") {
			if l != strings.TrimRight(l, " \t") {
				return true
			}
		}
	}
	return false
}

// blockValue returns a line's value, or for "|" the indented block after it,
// and the index of the last line consumed.
func blockValue(lines []string, i int, val string) (string, int) {
	v := strings.TrimSpace(val)
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.Unquote(v); err == nil {
			return u, i
		}
		return v, i // left as typed; a value may start with a quote
	}
	if v != "|" {
		return v, i
	}
	var block []string
	j := i + 1
	for ; j < len(lines); j++ {
		if !strings.HasPrefix(lines[j], "  ") && strings.TrimSpace(lines[j]) != "" {
			break
		}
		block = append(block, strings.TrimPrefix(lines[j], "  "))
	}
	for len(block) > 0 && strings.TrimSpace(block[len(block)-1]) == "" {
		block = block[:len(block)-1]
	}
	return strings.Join(block, "\n"), j - 1
}

func unquotePrefix(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	name, err := strconv.Unquote(q)
	return name, s[len(q):], err
}

// editForm opens $VISUAL or $EDITOR on the item's form and returns the
// edited item. The file lives in a fresh 0700 directory (in
// $XDG_RUNTIME_DIR or /dev/shm when available, so it stays off disk), is
// created 0600, and is overwritten with zeros and removed afterwards. A form
// that does not parse is offered again with the error on top, so nothing
// typed is lost.
func (a *app) editForm(it item.Item) (item.Item, error) {
	editor := a.env.Getenv("VISUAL")
	if editor == "" {
		editor = a.env.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	base := os.TempDir()
	for _, d := range []string{a.env.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if fi, err := os.Stat(d); d != "" && err == nil && fi.IsDir() {
			base = d
			break
		}
	}
	dir, err := os.MkdirTemp(base, "safe-edit-")
	if err != nil {
		return it, fmt.Errorf("make a private directory for the editor: %w", err)
	}
	path := filepath.Join(dir, "item.txt")
	defer func() {
		if fi, err := os.Stat(path); err == nil {
			if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				f.Write(make([]byte, fi.Size()))
				f.Sync()
				f.Close()
			}
		}
		os.RemoveAll(dir)
	}()
	content := renderForm(it)
	for {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return it, fmt.Errorf("write the form: %w", err)
		}
		secret.Wipe(content)
		words := strings.Fields(editor)
		cmd := exec.Command(words[0], append(words[1:], path)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = osFile(a.env.Stdin, os.Stdin), osFile(a.env.Stdout, os.Stdout), osFile(a.env.Stderr, os.Stderr)
		if err := cmd.Run(); err != nil {
			return it, withHint(ExitError, "set $EDITOR to an editor that exits with status 0", fmt.Errorf("editor %q failed: %w", editor, err))
		}
		edited, err := os.ReadFile(path)
		if err != nil {
			return it, fmt.Errorf("read the form back: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(edited))) == 0 {
			return it, failf(ExitError, "", "the form was emptied: nothing changed")
		}
		out, perr := parseForm(edited, it)
		if perr == nil {
			perr = out.Validate()
		}
		if perr == nil {
			secret.Wipe(edited)
			return out, nil
		}
		if !a.stdinIsTerminal() {
			return it, perr
		}
		a.eprintf("error: %v\nPress Enter to edit again (or empty the file to cancel).", perr)
		bufio.NewReader(a.env.Stdin).ReadString('\n')
		content = append([]byte("# ERROR: "+strings.ReplaceAll(perr.Error(), "\n", " ")+"\n"), edited...)
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

func osFile(w any, fallback *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return fallback
}
