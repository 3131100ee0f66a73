package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/safehold/safehold/internal/item"
)

// MaxPassFile bounds the decrypted content of one pass entry.
const MaxPassFile = item.MaxPayload

// GPG decrypts one file of a pass store. Decrypt returns the plaintext of
// the file at path, failing rather than returning more than max bytes. It
// must not put secrets on a command line or in its errors.
type GPG interface {
	Decrypt(ctx context.Context, path string, max int64) ([]byte, error)
}

// ExecGPG decrypts by running the user's gpg: gpg --batch --quiet
// --decrypt FILE, with the user's environment, so that gpg-agent and its
// pinentry do what they always do. Only the file name is on the command
// line; the plaintext comes back on a pipe.
type ExecGPG struct {
	// Program is the gpg binary; empty means "gpg" on PATH.
	Program string
	// Homedir, when set, is passed as --homedir; otherwise GNUPGHOME or
	// ~/.gnupg applies as usual.
	Homedir string
}

var _ GPG = ExecGPG{}

// capWriter keeps at most max bytes and fails the write that would pass.
type capWriter struct {
	buf  bytes.Buffer
	max  int64
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len()+len(p)) > w.max {
		w.over = true
		return 0, ErrTooLarge
	}
	return w.buf.Write(p)
}

// Decrypt implements GPG.
func (g ExecGPG) Decrypt(ctx context.Context, path string, max int64) ([]byte, error) {
	prog := g.Program
	if prog == "" {
		prog = "gpg"
	}
	args := []string{"--batch", "--quiet"}
	if g.Homedir != "" {
		args = append(args, "--homedir", g.Homedir)
	}
	args = append(args, "--decrypt", "--", path)
	cmd := exec.CommandContext(ctx, prog, args...)
	out := &capWriter{max: max}
	errOut := &capWriter{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	err := cmd.Run()
	if out.over {
		return nil, fmt.Errorf("%w: decrypted content is more than %d bytes", ErrTooLarge, max)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// gpg's diagnostics name keys and files, never the plaintext.
			return nil, fmt.Errorf("gpg failed (%v): %s", err, lastLine(errOut.buf.String()))
		}
		return nil, fmt.Errorf("run gpg: %w; is GnuPG installed?", err)
	}
	return out.buf.Bytes(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if l == "" {
		return "no message"
	}
	return l
}

// Pass reads a pass (passwordstore.org) or gopass store: every *.gpg file
// under dir, decrypted through gpg. The directory must be a store's root,
// holding a .gpg-id file; .git and other dot-directories are skipped. In
// each file the first line is the password; "key: value" lines fill the
// username (username, login, user), URLs (url) or a custom field; an
// otpauth:// URI (alone or as a value) is the TOTP; every other line goes
// to the notes. The file's directory is the folder and its name the title.
func Pass(ctx context.Context, dir string, gpg GPG) (*Result, error) {
	if gpg == nil {
		gpg = ExecGPG{}
	}
	if _, err := os.Stat(filepath.Join(dir, ".gpg-id")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, formatErr("pass: %s has no .gpg-id file, so it is not the root of a pass store; give the store's directory (usually ~/.password-store)", dir)
		}
		return nil, fmt.Errorf("pass: %w", err)
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".gpg") {
			if len(files) >= MaxStoreFiles {
				return fmt.Errorf("%w: more than %d entries in the store", ErrTooLarge, MaxStoreFiles)
			}
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pass: %w", err)
	}
	var c collector
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return nil, fmt.Errorf("pass: %w", err)
		}
		rel = filepath.ToSlash(strings.TrimSuffix(rel, ".gpg"))
		info, err := os.Lstat(path)
		if err != nil {
			c.skip(rel, "%v", err)
			continue
		}
		if !info.Mode().IsRegular() {
			c.skip(rel, "not a regular file (a link or device); copy the file into the store to import it")
			continue
		}
		data, err := gpg.Decrypt(ctx, path, MaxPassFile)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.skip(rel, "%v", err)
			continue
		}
		e := passEntry(rel, data)
		clear(data)
		c.add(e)
	}
	return &c.res, nil
}

// hiddenKeys are the keys whose values become hidden custom fields.
var hiddenKeys = map[string]bool{
	"password": true, "pass": true, "pin": true, "secret": true, "passphrase": true,
	"token": true, "apikey": true, "api_key": true, "api-key": true, "cvv": true, "recovery": true,
}

// passEntry parses one decrypted pass file named rel (slash-separated,
// without .gpg).
func passEntry(rel string, data []byte) Entry {
	folder, title := "", rel
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		folder, title = rel[:i], rel[i+1:]
	}
	it := item.Item{Type: item.Login, Title: titleFrom(title), Folder: folder}
	lines := strings.Split(string(data), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	it.Password = lines[0]
	var notes []string
	for i, l := range lines[1:] {
		if i == 0 && l == "---" { // gopass separates the password from the body
			continue
		}
		if isOTPAuth(strings.TrimSpace(l)) {
			setTOTP(&it, "totp", strings.TrimSpace(l))
			continue
		}
		key, value, ok := passKeyValue(l)
		if !ok {
			notes = append(notes, l)
			continue
		}
		switch lk := strings.ToLower(key); {
		case isOTPAuth(value):
			setTOTP(&it, key, value)
		case (lk == "username" || lk == "login" || lk == "user") && it.Username == "":
			it.Username = value
		case lk == "url" && isWebURLish(value):
			it.URLs = append(it.URLs, value)
		case hiddenKeys[lk]:
			it.Fields = append(it.Fields, item.Field{Name: key, Kind: item.KindHidden, Value: value})
		default:
			it.Fields = append(it.Fields, item.Field{Name: key, Kind: item.KindText, Value: value})
		}
	}
	it.Notes = strings.TrimRight(strings.Join(notes, "\n"), "\n")
	return Entry{Item: it, Where: rel}
}

// passKeyValue splits a "key: value" line. The key is short, starts with
// no space, and the colon is not the one of a URL scheme.
func passKeyValue(l string) (key, value string, ok bool) {
	key, value, ok = strings.Cut(l, ":")
	if !ok || key == "" || len(key) > 64 || strings.TrimSpace(key) != key || strings.HasPrefix(value, "//") {
		return "", "", false
	}
	return key, strings.TrimSpace(value), true
}

func isWebURLish(v string) bool { return v != "" && !strings.ContainsAny(v, " \t") }

func setTOTP(it *item.Item, name, v string) {
	if it.TOTP == "" {
		it.TOTP = v
		return
	}
	it.Fields = append(it.Fields, item.Field{Name: name, Kind: item.KindTOTP, Value: v})
}
