// Package openvpn reads OpenVPN client profiles (.ovpn files) whose
// certificates and keys are inline, and writes them back byte for byte.
//
// A profile is split into a skeleton, the file with the body of every
// inline block removed (the <tag> and </tag> lines stay), and the blocks
// themselves, in file order. Export puts the bodies back; for every file
// that Parse accepts, Export(Parse(f)) == f. Safehold stores the skeleton
// and each block as a field of a vpn item, the key blocks as hidden fields
// (see Secret).
//
// Parsing is strict where safety is at stake and lenient elsewhere: the
// skeleton's directives are not interpreted beyond refusing commands that
// OpenVPN would run (up, down and the other script hooks), refusing key
// material kept in separate files (the vault would hold an incomplete
// profile), and asking for a remote directive; block bodies are checked to
// be what their tag says (PEM certificates, static keys, ...). Errors name
// the line and never quote a block body.
package openvpn

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/secret"
)

// Bounds on attacker-controlled input.
const (
	// MaxConfigSize bounds a whole .ovpn file.
	MaxConfigSize = 256 << 10
	// MaxBlockSize bounds one inline block body; a certificate chain is a
	// few KiB. It equals the item field value limit.
	MaxBlockSize = 64 << 10
	// MaxSkeletonSize bounds the profile without its blocks.
	MaxSkeletonSize = 64 << 10
	// MaxLineLen bounds a directive line (OpenVPN's own limit is 256;
	// block bodies are bounded by MaxBlockSize instead).
	MaxLineLen = 4096
)

// ErrSyntax is wrapped by every Parse and Export error.
var ErrSyntax = errors.New("invalid openvpn profile")

// Block is one inline block: <Tag>Body</Tag>.
type Block struct {
	// Tag is the option name, like "ca" or "tls-crypt".
	Tag string
	// Body is exactly what lies between the <tag> line and the </tag>
	// line, line ends included.
	Body secret.Bytes
}

// Profile is a parsed .ovpn file.
type Profile struct {
	// Skeleton is the file with every block body removed.
	Skeleton []byte
	// Blocks are the inline blocks in file order; each tag appears once.
	Blocks []Block
}

// tags lists the inline blocks OpenVPN knows and whether each holds a
// secret.
var tags = map[string]bool{
	"ca":                   false,
	"cert":                 false,
	"extra-certs":          false,
	"dh":                   false,
	"crl-verify":           false,
	"key":                  true,
	"pkcs12":               true,
	"secret":               true,
	"tls-auth":             true,
	"tls-crypt":            true,
	"tls-crypt-v2":         true,
	"auth-user-pass":       true,
	"http-proxy-user-pass": true,
}

// Tags returns the inline block tags this package accepts, sorted.
func Tags() []string {
	out := make([]string, 0, len(tags))
	for t := range tags {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func known(tag string) bool {
	_, ok := tags[tag]
	return ok
}

// Secret reports whether a block of this tag holds a secret (a private or
// static key, or a user name and password).
func Secret(tag string) bool { return tags[tag] }

// scriptDirectives make OpenVPN run a command, load code or read more
// configuration; a stored profile must not carry one into a root process
// unseen.
var scriptDirectives = map[string]bool{
	"up": true, "down": true, "route-up": true, "route-pre-down": true,
	"ipchange": true, "tls-verify": true, "auth-user-pass-verify": true,
	"client-connect": true, "client-disconnect": true, "learn-address": true,
	"tls-crypt-v2-verify": true, "iproute": true,
	"plugin": true, "pkcs11-providers": true, "engine": true, "providers": true,
	"config": true,
}

// fileDirectives make OpenVPN (as root) write to a file the profile names.
var fileDirectives = map[string]bool{
	"log": true, "log-append": true, "status": true, "writepid": true,
	"tls-export-cert": true, "replay-persist": true, "ifconfig-pool-persist": true,
}

func synerr(line int, format string, a ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrSyntax, line, fmt.Sprintf(format, a...))
}

// Wipe clears the block bodies.
func (p *Profile) Wipe() {
	for i := range p.Blocks {
		p.Blocks[i].Body.Wipe()
	}
}

// nextLine returns the line of data starting at off, with its '\n' (the
// last line may lack one).
func nextLine(data []byte, off int) []byte {
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		return data[off : off+i+1]
	}
	return data[off:]
}

// tagOf returns the tag of a "<tag>" or "</tag>" line.
func tagOf(text string) (tag string, closing, ok bool) {
	if len(text) < 3 || text[0] != '<' || text[len(text)-1] != '>' {
		return "", false, false
	}
	tag = text[1 : len(text)-1]
	if strings.HasPrefix(tag, "/") {
		return tag[1:], true, true
	}
	return tag, false, true
}

// Parse reads a .ovpn profile. The input is at most MaxConfigSize bytes of
// UTF-8 without NUL; "\n" and "\r\n" line ends are kept as they are.
//
// A line that is, apart from white space, "<tag>" opens a block for a tag
// of Tags(); the block ends at the next line that is "</tag>". Each tag may
// appear once; bodies are non-empty and checked against their tag. The
// lines "<connection>" and "</connection>" are kept in the skeleton; any
// other "<...>" line is an error. Outside blocks, empty lines and comments
// ('#' or ';') are kept unread; a directive is refused if it runs a command
// (up, down, ...), or names a file for an option that can be inlined
// (ca ca.crt: inline it instead; "[inline]" is fine, and auth-user-pass
// without an argument asks at connect time). There must be a remote
// directive. Lines outside blocks are at most MaxLineLen bytes.
func Parse(data []byte) (Profile, error) {
	if len(data) > MaxConfigSize {
		return Profile{}, fmt.Errorf("%w: larger than %d bytes", ErrSyntax, MaxConfigSize)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return Profile{}, fmt.Errorf("%w: not UTF-8 text", ErrSyntax)
	}
	var p Profile
	fail := func(err error) (Profile, error) {
		p.Wipe()
		return Profile{}, err
	}
	var skel bytes.Buffer
	open, openLine, bodyStart := "", 0, 0 // the open block
	seen := map[string]bool{}
	remote := false
	n := 0
	scriptSecurity := 0 // the line of a script-security directive that allows scripts
	for off := 0; off < len(data); {
		raw := nextLine(data, off)
		start := off
		off += len(raw)
		n++
		if open != "" {
			// OpenVPN ends the block at the first line that starts
			// (after white space, in newer versions) with "</tag>",
			// whatever follows it, and reads lines of at most 255 bytes
			// at a time; so "</tag>" may only appear as a line of its own.
			switch closes(raw, open) {
			case closeNone:
				if start+len(raw)-bodyStart > MaxBlockSize {
					return fail(synerr(openLine, "<%s> is larger than %d bytes", open, MaxBlockSize))
				}
				continue
			case closeBad:
				return fail(synerr(n, "</%s> or </connection> inside <%s> but not alone on its line (OpenVPN would end the block there)", open, open))
			}
			body := data[bodyStart:start]
			if err := checkBody(open, body, openLine); err != nil {
				return fail(err)
			}
			p.Blocks = append(p.Blocks, Block{Tag: open, Body: secret.Bytes(body).Clone()})
			skel.Write(raw)
			open = ""
			continue
		}
		if len(raw) > MaxLineLen {
			return fail(synerr(n, "longer than %d bytes", MaxLineLen))
		}
		skel.Write(raw)
		line := string(raw)
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF") // OpenVPN skips a UTF-8 BOM
		}
		text := strings.TrimSpace(line)
		f, err := tokenize(text)
		if err != nil {
			return fail(synerr(n, "%v", err))
		}
		if len(f) == 0 { // empty or a comment
			continue
		}
		if strings.HasPrefix(f[0], "<") {
			// OpenVPN opens an inline block for a line whose only
			// token (after unquoting) is "<...>".
			tag, closing, ok := tagOf(f[0])
			if !ok || len(f) != 1 {
				return fail(synerr(n, "a line that starts with '<' must be a block tag alone on its line"))
			}
			if text != f[0] {
				return fail(synerr(n, "write the tag %s alone on its line, without quotes, escapes or comments", f[0]))
			}
			switch {
			case tag == "connection":
			case closing && known(tag):
				return fail(synerr(n, "</%s> without <%s>", tag, tag))
			case known(tag) && !closing:
				if seen[tag] {
					return fail(synerr(n, "second <%s> block", tag))
				}
				seen[tag] = true
				open, openLine, bodyStart = tag, n, off
			default:
				return fail(synerr(n, "unknown inline block %q (known: %s)", text, strings.Join(Tags(), ", ")))
			}
			continue
		}
		name, args, err := checkDirective(n, f)
		if err != nil {
			return fail(err)
		}
		if name == "script-security" && scriptSecurity == 0 && (len(args) != 1 || (args[0] != "0" && args[0] != "1")) {
			scriptSecurity = n
		}
		remote = remote || name == "remote"
	}
	if open != "" {
		return fail(synerr(openLine, "<%s> is not closed by </%s>", open, open))
	}
	if scriptSecurity != 0 {
		return fail(synerr(scriptSecurity, "script-security above 1 lets OpenVPN run scripts: Safehold does not import it (remove the line or use script-security 1)"))
	}
	if !remote {
		return fail(fmt.Errorf("%w: no remote directive: this is not an OpenVPN client profile", ErrSyntax))
	}
	if skel.Len() > MaxSkeletonSize {
		return fail(fmt.Errorf("%w: more than %d bytes outside the inline blocks", ErrSyntax, MaxSkeletonSize))
	}
	p.Skeleton = skel.Bytes()
	return p, nil
}

// checkDirective refuses script hooks, directives that write files and
// key material in files. f is the line tokenised as OpenVPN does; name and
// args are the option OpenVPN sees: a leading "--" is dropped, and so is
// "setenv opt" (which makes the rest of the line an option).
func checkDirective(n int, f []string) (name string, args []string, err error) {
	for len(f) >= 2 && f[0] == "setenv" && f[1] == "opt" {
		f = f[2:]
	}
	if len(f) == 0 {
		return "", nil, synerr(n, "setenv opt without an option")
	}
	name, args = f[0], f[1:]
	if len(name) >= 3 && strings.HasPrefix(name, "--") {
		name = name[2:]
	}
	if scriptDirectives[name] {
		return "", nil, synerr(n, "%s runs a command: Safehold does not import commands that OpenVPN would run (remove the line)", name)
	}
	if fileDirectives[name] {
		return "", nil, synerr(n, "%s writes a file: Safehold does not import directives that make OpenVPN write files (remove the line)", name)
	}
	if known(name) && len(args) > 0 && args[0] != "[inline]" {
		return "", nil, synerr(n, "%s refers to the file %q: put its contents inline between <%s> and </%s>, so that the vault holds the whole profile", name, args[0], name, name)
	}
	return name, args, nil
}

// tokenize splits a directive line as OpenVPN's parse_line does: white
// space separates tokens; a token may be in double quotes (in which a
// backslash escapes the next character) or single quotes (no escapes);
// outside single quotes a backslash may only escape a backslash, a double
// quote or white space; a token that starts with '#' or ';' starts a
// comment. OpenVPN refuses (or skips) a line with an unclosed quote or
// another backslash; so does tokenize.
func tokenize(line string) ([]string, error) {
	const (
		initial = iota
		unquoted
		dquoted
		squoted
	)
	var (
		out   []string
		tok   strings.Builder
		state = initial
		bs    = false
	)
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	// A final NUL ends the last token, as in parse_line.
	for i := 0; i <= len(line); i++ {
		var c byte // 0 at the end
		if i < len(line) {
			c = line[i]
		}
		end := i == len(line)
		if !bs && c == '\\' && state != squoted && !end {
			bs = true
			continue
		}
		var emit bool
		var ch byte
		done := false
		switch state {
		case initial:
			if end || space(c) {
				break
			}
			if c == '#' || c == ';' {
				return out, nil
			}
			switch {
			case !bs && c == '"':
				state = dquoted
			case !bs && c == '\'':
				state = squoted
			default:
				ch, emit, state = c, true, unquoted
			}
		case unquoted:
			if end || (!bs && space(c)) {
				done = true
			} else {
				ch, emit = c, true
			}
		case dquoted:
			if end {
				return nil, errors.New("no closing quotation (\")")
			}
			if !bs && c == '"' {
				done = true
			} else {
				ch, emit = c, true
			}
		case squoted:
			if end {
				return nil, errors.New("no closing single quotation (')")
			}
			if c == '\'' {
				done = true
			} else {
				ch, emit = c, true
			}
		}
		if bs && emit && !(ch == '\\' || ch == '"' || space(ch)) {
			return nil, errors.New("a backslash may only escape a backslash, a double quote or white space")
		}
		if bs && end {
			return nil, errors.New("a backslash at the end of the line")
		}
		bs = false
		if emit {
			tok.WriteByte(ch)
		}
		if done {
			out = append(out, tok.String())
			tok.Reset()
			state = initial
		}
	}
	return out, nil
}

// Results of closes.
const (
	closeNone = iota // an ordinary body line
	closeOK          // the line "</tag>"
	closeBad         // "</tag>" (or "</connection>") elsewhere on the line
)

// closes tells whether raw, a line inside a <tag> block, ends it, without
// making a string of a line that may hold key material.
func closes(raw []byte, tag string) int {
	end := "</" + tag + ">"
	t := bytes.TrimSpace(raw)
	if len(t) == len(end) && string(t) == end {
		return closeOK
	}
	if bytes.Contains(raw, []byte(end)) || bytes.Contains(raw, []byte("</connection>")) {
		return closeBad
	}
	return closeNone
}

// checkBody checks that a block holds what its tag says. Errors name the
// block and its line, never its content.
func checkBody(tag string, body []byte, line int) error {
	bad := func(what string) error { return synerr(line, "<%s> does not hold %s", tag, what) }
	if len(bytes.TrimSpace(body)) == 0 {
		return synerr(line, "<%s> is empty", tag)
	}
	switch tag {
	case "ca", "cert", "extra-certs":
		blocks, ok := pemBlocks(body)
		if !ok {
			return bad("PEM certificates")
		}
		for _, b := range blocks {
			if b.Type != "CERTIFICATE" {
				return bad("PEM certificates")
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return synerr(line, "<%s>: certificate does not parse: %v", tag, err)
			}
		}
		if tag == "cert" && len(blocks) != 1 {
			return bad("exactly one certificate")
		}
	case "key":
		blocks, ok := pemBlocks(body)
		if !ok || len(blocks) != 1 || !strings.HasSuffix(blocks[0].Type, "PRIVATE KEY") {
			return bad("one PEM private key")
		}
		secret.Wipe(blocks[0].Bytes)
	case "dh":
		if blocks, ok := pemBlocks(body); !ok || len(blocks) != 1 || blocks[0].Type != "DH PARAMETERS" {
			return bad("PEM DH parameters")
		}
	case "crl-verify":
		if blocks, ok := pemBlocks(body); !ok || len(blocks) != 1 || blocks[0].Type != "X509 CRL" {
			return bad("a PEM CRL")
		}
	case "tls-auth", "tls-crypt", "secret":
		if !staticKey(body) {
			return bad("an OpenVPN static key (openvpn --genkey)")
		}
	case "tls-crypt-v2":
		blocks, ok := pemBlocks(body)
		if !ok || len(blocks) != 1 || blocks[0].Type != "OpenVPN tls-crypt-v2 client key" {
			return bad("an OpenVPN tls-crypt-v2 client key")
		}
		secret.Wipe(blocks[0].Bytes)
	case "pkcs12":
		b, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
		if err != nil || len(b) == 0 {
			return bad("base64 PKCS#12 data")
		}
		secret.Wipe(b)
	case "auth-user-pass", "http-proxy-user-pass":
		ls := bytes.Split(bytes.TrimRight(body, "\r\n"), []byte("\n"))
		if len(ls) > 2 || len(bytes.TrimSpace(ls[0])) == 0 {
			return bad("a user name line and a password line")
		}
	}
	return nil
}

// pemBlocks decodes body as PEM blocks separated only by white space: any
// other text before, between or after the blocks is refused (pem.Decode
// would skip it, but OpenVPN could read it as something else).
func pemBlocks(body []byte) ([]*pem.Block, bool) {
	var out []*pem.Block
	rest := bytes.TrimSpace(body)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, false
		}
		b, r := pem.Decode(rest)
		if b == nil {
			return nil, false
		}
		out = append(out, b)
		rest = bytes.TrimSpace(r)
	}
	return out, len(out) > 0
}

// staticKey checks an "OpenVPN Static key V1" block: 2048 bits in hex
// between its BEGIN and END lines (comment lines before BEGIN are allowed,
// as openvpn --genkey writes them).
func staticKey(body []byte) bool {
	const begin, end = "-----BEGIN OpenVPN Static key V1-----", "-----END OpenVPN Static key V1-----"
	var hexd []byte
	state := 0 // 0 before BEGIN, 1 inside, 2 after END
	for _, l := range bytes.Split(body, []byte("\n")) {
		l = bytes.TrimSpace(l)
		switch {
		case len(l) == 0:
		case state == 0 && string(l) == begin:
			state = 1
		case state == 0 && l[0] == '#':
		case state == 1 && string(l) == end:
			state = 2
		case state == 1:
			hexd = append(hexd, l...)
		default:
			return false
		}
	}
	if state != 2 || len(hexd) != 512 {
		secret.Wipe(hexd)
		return false
	}
	k := make([]byte, 256)
	_, err := hex.Decode(k, hexd)
	secret.Wipe(k)
	secret.Wipe(hexd)
	return err == nil
}

// Export writes the profile: the skeleton with each block's body put back
// after its <tag> line. Blocks must come in the skeleton's order.
func (p Profile) Export() (secret.Bytes, error) {
	if len(p.Skeleton) > MaxSkeletonSize {
		return nil, fmt.Errorf("%w: skeleton larger than %d bytes", ErrSyntax, MaxSkeletonSize)
	}
	size := len(p.Skeleton)
	for _, b := range p.Blocks {
		if len(b.Body) > MaxBlockSize {
			return nil, fmt.Errorf("%w: <%s> is larger than %d bytes", ErrSyntax, b.Tag, MaxBlockSize)
		}
		size += len(b.Body)
	}
	// Sized once, so that no partial copy of a key is left behind by a
	// growing slice.
	out := make(secret.Bytes, 0, size)
	next := 0
	n := 0
	for off := 0; off < len(p.Skeleton); {
		raw := nextLine(p.Skeleton, off)
		off += len(raw)
		n++
		out = append(out, raw...)
		tag, closing, ok := tagOf(strings.TrimSpace(string(raw)))
		if !ok || closing || !known(tag) {
			continue
		}
		if next >= len(p.Blocks) || p.Blocks[next].Tag != tag {
			out.Wipe()
			return nil, synerr(n, "no stored body for <%s>", tag)
		}
		out = append(out, p.Blocks[next].Body...)
		next++
	}
	if next != len(p.Blocks) {
		out.Wipe()
		return nil, fmt.Errorf("%w: %d stored blocks have no place in the profile", ErrSyntax, len(p.Blocks)-next)
	}
	// The skeleton and the bodies may have been edited since they were
	// parsed: write only what Parse accepts, and only if it reads back as
	// the same skeleton and blocks (a body cannot close its block).
	q, err := Parse(out)
	if err != nil {
		out.Wipe()
		return nil, err
	}
	defer q.Wipe()
	same := bytes.Equal(q.Skeleton, p.Skeleton) && len(q.Blocks) == len(p.Blocks)
	for i := 0; same && i < len(q.Blocks); i++ {
		same = q.Blocks[i].Tag == p.Blocks[i].Tag && bytes.Equal(q.Blocks[i].Body, p.Blocks[i].Body)
	}
	if !same {
		out.Wipe()
		return nil, fmt.Errorf("%w: the stored blocks do not read back as the same blocks (a block body holds a tag line)", ErrSyntax)
	}
	return out, nil
}
