package cli

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/vault"
)

// `safe git-credential get|store|erase`: a git credential helper
// (gitcredentials(7), git-credential(1)). Git writes key=value lines and a
// blank line on standard input; for get, the helper answers with
// username= and password= lines on standard output and nothing else.

// Limits on what git sends.
const (
	maxCredInput = 1 << 20  // bytes in all
	maxCredLine  = 64 << 10 // bytes in one line
	maxCredLines = 1024
)

// gitRejected is the tag erase puts on an item whose password a server
// refused; get skips such items and store clears the tag.
const gitRejected = "git-rejected"

// gitCred is the part of a credential description the helper uses. Other
// keys (capability[], wwwauth[], password_expiry_utc...) are ignored, as
// the protocol asks.
type gitCred struct {
	Protocol, Host, Path, Username, Password string
}

// errCredSyntax marks input that is not a credential description.
var errCredSyntax = errors.New("malformed git credential input")

// parseGitCred reads a credential description: key=value lines up to a
// blank line or the end. A later key replaces an earlier one; url= sets
// the parts it holds (as git does).
func parseGitCred(r io.Reader) (gitCred, error) {
	var c gitCred
	sc := bufio.NewScanner(io.LimitReader(r, maxCredInput+1))
	sc.Buffer(make([]byte, 0, 4096), maxCredLine)
	total, lines := 0, 0
	for sc.Scan() {
		line := sc.Text()
		total += len(line) + 1
		if total > maxCredInput {
			return gitCred{}, fmt.Errorf("%w: more than %d bytes", errCredSyntax, maxCredInput)
		}
		if line == "" {
			return c, nil
		}
		if lines++; lines > maxCredLines {
			return gitCred{}, fmt.Errorf("%w: more than %d lines", errCredSyntax, maxCredLines)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return gitCred{}, fmt.Errorf("%w: line %d is not key=value", errCredSyntax, lines)
		}
		if strings.IndexByte(line, 0) >= 0 {
			return gitCred{}, fmt.Errorf("%w: line %d holds a NUL byte", errCredSyntax, lines)
		}
		switch key {
		case "protocol":
			c.Protocol = value
		case "host":
			c.Host = value
		case "path":
			c.Path = value
		case "username":
			c.Username = value
		case "password":
			c.Password = value
		case "url":
			if err := c.setURL(value); err != nil {
				return gitCred{}, fmt.Errorf("%w: line %d: %w", errCredSyntax, lines, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return gitCred{}, fmt.Errorf("%w: line %d is longer than %d bytes", errCredSyntax, lines+1, maxCredLine)
		}
		return gitCred{}, fmt.Errorf("read git's request: %w", err)
	}
	return c, nil
}

// setURL fills the parts of a url= line, as git's credential_from_url
// does: the parts the URL has replace the ones before.
func (c *gitCred) setURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return errors.New("url is not scheme://host/path")
	}
	c.Protocol, c.Host = u.Scheme, u.Host
	c.Path = strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		c.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			c.Password = p
		}
	}
	return nil
}

// writeGitCred writes an answer. A value git cannot take (a line break or
// NUL) is an error, and nothing is written.
func writeGitCred(w io.Writer, username, password string) error {
	var b bytes.Buffer
	for _, kv := range [][2]string{{"username", username}, {"password", password}} {
		if kv[1] == "" {
			continue
		}
		if strings.ContainsAny(kv[1], "\n\x00") {
			return fmt.Errorf("the %s holds a line break or NUL, which git's credential protocol cannot carry", kv[0])
		}
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// credURL is the URL a stored item gets: protocol://host[/path].
func (c gitCred) credURL() string {
	u := c.Protocol + "://" + c.Host
	if p := strings.Trim(c.Path, "/"); p != "" {
		u += "/" + p
	}
	return u
}

// matchScore says how well an item URL fits the request: -1 for not at
// all, more for a closer fit. The scheme and host (with its port; a
// default port is the same as none) must be equal; an item URL without a
// scheme counts as https. The item's path, if it has one, must be the
// request's path or a parent of it; when git sends no path (the default,
// credential.useHttpPath off) any path fits, a URL without one best.
func matchScore(itemURL string, req gitCred) int {
	s := strings.TrimSpace(itemURL)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return -1
	}
	if !strings.EqualFold(u.Scheme, req.Protocol) || normHost(u.Scheme, u.Host) != normHost(req.Protocol, req.Host) {
		return -1
	}
	ip := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	rp := strings.TrimSuffix(strings.Trim(req.Path, "/"), ".git")
	switch {
	case ip == "":
		return 1
	case rp == "":
		return 0
	case ip == rp:
		return exactPath + len(ip)
	case strings.HasPrefix(rp, ip+"/"):
		return 2 + len(ip)
	}
	return -1
}

// exactPath is the score of an item URL whose path is the request's; any
// parent path scores less.
const exactPath = 1 << 20

func normHost(scheme, host string) string {
	h := strings.ToLower(host)
	switch strings.ToLower(scheme) {
	case "https":
		h = strings.TrimSuffix(h, ":443")
	case "http":
		h = strings.TrimSuffix(h, ":80")
	}
	return h
}

// credCandidate is a login item that fits a request.
type credCandidate struct {
	o     vault.Overview
	score int
}

// credCandidates lists the login items whose URLs fit the request (and
// whose username is the request's, when it names one), best first: the
// closest URL, then the most recently changed.
func (a *app) credCandidates(sc *service.Client, req gitCred) ([]credCandidate, error) {
	if req.Protocol == "" || req.Host == "" {
		return nil, nil
	}
	list, err := sc.List(a.ctx, vault.Filter{Type: item.Login, Vault: a.vault}, false)
	if err != nil {
		return nil, err
	}
	var out []credCandidate
	for _, o := range list {
		if req.Username != "" && o.Username != req.Username {
			continue
		}
		best := -1
		for _, u := range o.URLs {
			best = max(best, matchScore(u, req))
		}
		if best >= 0 {
			out = append(out, credCandidate{o, best})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].score != out[j].score {
			return out[i].score > out[j].score
		}
		if !out[i].o.Modified.Equal(out[j].o.Modified) {
			return out[i].o.Modified.After(out[j].o.Modified)
		}
		return out[i].o.ID < out[j].o.ID
	})
	return out, nil
}

func (a *app) gitCredentialCommand() *cobra.Command {
	var readOnly bool
	c := &cobra.Command{
		Use:   "git-credential get|store|erase",
		Short: "A git credential helper backed by the vault",
		Long: `A git credential helper (see gitcredentials(7)). Set it up with

  git config --global credential.helper '!safe git-credential'

(the leading ! makes git run the words as a command). The vault must be
unlocked; when it is not, the helper says so on standard error and git asks
for the credentials as it would without it.

get     prints the username and password of the login item whose URL fits
        the server (protocol, host and port; the path too when
        credential.useHttpPath is set) and whose username is git's, if git
        names one. Nothing fits: nothing is printed, exit status 0.
store   runs after a server accepted credentials: it saves them in the
        login item for that server and username (changing the password if
        it differs), or adds one titled after the host, tagged "git".
        Storing is on by default; --read-only turns store and erase off.
erase   runs after a server refused credentials: a login item whose
        password is the refused one is tagged "` + gitRejected + `", so that get
        skips it (and git asks again); the next store updates it and removes
        the tag. Nothing is deleted.

Other actions are ignored, as the protocol asks. Only get writes to
standard output.`,
		Example: `  git config --global credential.helper '!safe git-credential'
  git config --global credential.https://git.example.com.helper '!safe git-credential --vault Work'`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			action := args[0]
			if action != "get" && action != "store" && action != "erase" {
				return nil
			}
			req, err := parseGitCred(a.env.Stdin)
			if err != nil {
				return withHint(ExitInvalid, "git-credential reads what git writes; see git-credential(1)", err)
			}
			if action != "get" && readOnly {
				return nil
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			switch action {
			case "get":
				return a.credGet(sc, req)
			case "store":
				return a.credStore(sc, req)
			}
			return a.credErase(sc, req)
		},
	}
	c.Flags().BoolVar(&readOnly, "read-only", false, "answer get, but never change the vault on store or erase")
	a.vaultFlag(c)
	return c
}

func (a *app) credGet(sc *service.Client, req gitCred) error {
	cands, err := a.credCandidates(sc, req)
	if err != nil {
		return err
	}
	for _, cand := range cands {
		if slices.Contains(cand.o.Tags, gitRejected) {
			continue
		}
		it, err := sc.Get(a.ctx, cand.o.ID)
		if err != nil {
			return err
		}
		if it.Password == "" {
			continue
		}
		user := it.Username
		if req.Username != "" {
			user = "" // git knows it; answer only what it asked
		}
		if err := writeGitCred(a.env.Stdout, user, it.Password); err != nil {
			a.warnf("item %s: %v; skipped", it.ID, err)
			continue
		}
		return nil
	}
	return nil
}

func (a *app) credStore(sc *service.Client, req gitCred) error {
	if req.Protocol == "" || req.Host == "" || req.Username == "" || req.Password == "" {
		return nil
	}
	if strings.ContainsAny(req.Host, "/?#@ \t\r") {
		return nil // not a host a URL can hold
	}
	cands, err := a.credCandidates(sc, req)
	if err != nil {
		return err
	}
	for _, cand := range cands {
		// Only an item for this very place: a host-wide item, or one
		// whose path is the request's, not a parent path's.
		if cand.o.Username != req.Username || (req.Path != "" && cand.score != 1 && cand.score < exactPath) {
			continue
		}
		it, err := sc.Get(a.ctx, cand.o.ID)
		if err != nil {
			return err
		}
		rejected := slices.Contains(it.Tags, gitRejected)
		if it.Password == req.Password && !rejected {
			return nil
		}
		next := it.Clone()
		next.Password = req.Password
		next.Tags = removeFold(next.Tags, gitRejected)
		_, err = sc.Update(a.ctx, it.ID, it.Revision, next)
		return err
	}
	it := item.Item{
		Type: item.Login, Title: req.Host, Username: req.Username, Password: req.Password,
		URLs: []string{req.credURL()}, Tags: []string{"git"},
	}
	if a.vault != "" {
		_, err = sc.AddTo(a.ctx, a.vault, []item.Item{it})
	} else {
		_, err = sc.Add(a.ctx, []item.Item{it})
	}
	return err
}

func (a *app) credErase(sc *service.Client, req gitCred) error {
	if req.Password == "" {
		return nil // never erase without knowing which password failed
	}
	cands, err := a.credCandidates(sc, req)
	if err != nil {
		return err
	}
	for _, cand := range cands {
		if slices.Contains(cand.o.Tags, gitRejected) {
			continue
		}
		it, err := sc.Get(a.ctx, cand.o.ID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(it.Password), []byte(req.Password)) != 1 {
			continue
		}
		next := it.Clone()
		next.Tags = append(next.Tags, gitRejected)
		if _, err := sc.Update(a.ctx, it.ID, it.Revision, next); err != nil {
			return err
		}
	}
	return nil
}
