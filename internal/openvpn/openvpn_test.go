package openvpn

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/client.ovpn")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFixture(t *testing.T) {
	data := fixture(t)
	p, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range p.Blocks {
		got = append(got, b.Tag)
	}
	if strings.Join(got, ",") != "ca,cert,key,tls-crypt" {
		t.Fatalf("blocks %v", got)
	}
	for _, b := range p.Blocks {
		if want := b.Tag == "key" || b.Tag == "tls-crypt"; Secret(b.Tag) != want {
			t.Errorf("Secret(%s) = %v", b.Tag, !want)
		}
	}
	if bytes.Contains(p.Skeleton, []byte("PRIVATE KEY")) || bytes.Contains(p.Skeleton, []byte("Static key")) {
		t.Fatalf("key material in the skeleton:\n%s", p.Skeleton)
	}
	if !bytes.Contains(p.Skeleton, []byte("<key>\n</key>\n")) {
		t.Fatalf("skeleton lost the block tags:\n%s", p.Skeleton)
	}
	out, err := p.Export()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("export differs from the file:\n%s", out)
	}
	// CRLF line ends, indentation and a <connection> block survive too.
	crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	crlf = append([]byte("<connection>\r\nremote a.example 1194\r\n</connection>\r\n  \t\r\n"), crlf...)
	crlf = bytes.Replace(crlf, []byte("<ca>"), []byte("  <ca>  "), 1)
	p2, err := Parse(crlf)
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := p2.Export()
	if !bytes.Equal(out2, crlf) {
		t.Fatal("CRLF profile does not round-trip")
	}
}

func TestParseErrors(t *testing.T) {
	data := string(fixture(t))
	cut := func(tag string) string { // the fixture without one block
		i := strings.Index(data, "<"+tag+">")
		j := strings.Index(data, "</"+tag+">\n")
		return data[:i] + data[j+len(tag)+4:]
	}
	const mark = "SECRETMARK"
	cases := []struct{ name, in, want string }{
		{"unknown block", data + "<foo>\nx\n</foo>\n", `line 69: unknown inline block "<foo>"`},
		{"second block", data + "<ca>\n" + strings.SplitN(strings.SplitN(data, "<ca>\n", 2)[1], "</ca>", 2)[0] + "</ca>\n", "second <ca> block"},
		{"unclosed", cut("tls-crypt") + "<tls-crypt>\n#\n", "<tls-crypt> is not closed by </tls-crypt>"},
		{"stray close", "remote x 1\n</key>\n", "line 2: </key> without <key>"},
		{"hook", "remote x 1\nscript-security 2\nup /etc/openvpn/update-resolv-conf\n", "line 3: up runs a command"},
		{"plugin", "remote x 1\nplugin /usr/lib/x.so\n", "plugin runs a command"},
		{"file ref", "remote x 1\nca ca.crt\n", `line 2: ca refers to the file "ca.crt": put its contents inline`},
		{"auth file", "remote x 1\nauth-user-pass creds.txt\n", "auth-user-pass refers to the file"},
		{"empty", "remote x 1\n<key>\n \n</key>\n", "line 2: <key> is empty"},
		{"bad cert", "remote x 1\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n", "<ca>: certificate does not parse"},
		{"not pem", "remote x 1\n<cert>\nhello\n</cert>\n", "<cert> does not hold PEM certificates"},
		{"bad key", "remote x 1\n<key>\n" + mark + "\n</key>\n", "<key> does not hold one PEM private key"},
		{"bad static", "remote x 1\n<tls-auth>\n-----BEGIN OpenVPN Static key V1-----\n" + mark + "\n-----END OpenVPN Static key V1-----\n</tls-auth>\n", "<tls-auth> does not hold an OpenVPN static key"},
		{"short static", "remote x 1\n<secret>\n-----BEGIN OpenVPN Static key V1-----\n00ff\n-----END OpenVPN Static key V1-----\n</secret>\n", "<secret> does not hold"},
		{"userpass", "remote x 1\n<auth-user-pass>\nann\n" + mark + "\nthird\n</auth-user-pass>\n", "a user name line and a password line"},
		{"pkcs12", "remote x 1\n<pkcs12>\n" + mark + "!\n</pkcs12>\n", "base64 PKCS#12"},
		{"no remote", cut("ca")[strings.Index(data, "verb 3"):], "no remote directive"},
		{"wireguard", "[Interface]\nPrivateKey = x\n", "no remote directive"},
		{"long line", "remote x 1\n" + strings.Repeat("x", MaxLineLen+1) + "\n", "line 2: longer than"},
		{"big block", "remote x 1\n<key>\n" + strings.Repeat(strings.Repeat("A", 63)+"\n", MaxBlockSize/64+1) + "</key>\n", "<key> is larger than"},
		{"huge", strings.Repeat("#\n", MaxConfigSize), "larger than"},
		{"binary", "remote x 1\x00\n", "not UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), mark) {
				t.Fatalf("block content in the error: %v", err)
			}
		})
	}
}

func TestExportMismatch(t *testing.T) {
	p, err := Parse(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	q := p
	q.Blocks = p.Blocks[:3]
	if _, err := q.Export(); err == nil || !strings.Contains(err.Error(), "no stored body for <tls-crypt>") {
		t.Fatalf("missing block: %v", err)
	}
	q.Blocks = append([]Block{p.Blocks[1]}, p.Blocks...)
	if _, err := q.Export(); err == nil {
		t.Fatal("blocks out of order exported")
	}
	q.Blocks = append(append([]Block{}, p.Blocks...), Block{Tag: "dh", Body: []byte("x\n")})
	if _, err := q.Export(); err == nil || !strings.Contains(err.Error(), "no place") {
		t.Fatalf("extra block: %v", err)
	}
}

// FuzzParse checks that whatever parses exports byte for byte, and that
// the skeleton and blocks parse again to the same profile.
func FuzzParse(f *testing.F) {
	f.Add(fixture(f))
	f.Add([]byte("remote a 1\n<connection>\nremote b 2\n</connection>\n<auth-user-pass>\nann\npw\n</auth-user-pass>"))
	f.Add([]byte("remote a 1\r\n<key>\r\n-----BEGIN PRIVATE KEY-----\r\nAAAA\r\n-----END PRIVATE KEY-----\r\n</key>\r\n"))
	f.Add([]byte("remote a 1\n<pkcs12>\nAAAA\n</pkcs12>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		out, err := p.Export()
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("export differs:\n%q\n%q", data, out)
		}
		p2, err := Parse(out)
		if err != nil {
			t.Fatalf("export does not parse: %v", err)
		}
		if !bytes.Equal(p2.Skeleton, p.Skeleton) || len(p2.Blocks) != len(p.Blocks) {
			t.Fatal("parse of the export differs")
		}
		for i := range p.Blocks {
			if p.Blocks[i].Tag != p2.Blocks[i].Tag || !bytes.Equal(p.Blocks[i].Body, p2.Blocks[i].Body) {
				t.Fatalf("block %d differs", i)
			}
		}
	})
}

func TestTokenize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`remote a.example 1194`, "remote|a.example|1194"},
		{`"up" /x`, "up|/x"},
		{`'down' '/a b'`, "down|/a b"},
		{`a\ b "c\"d" 'e\f'`, `a b|c"d|e\f`},
		{`remote x # comment "`, "remote|x"},
		{`  ; all comment`, ""},
		{`auth "a;b" ;c`, "auth|a;b"},
		{`x\\y`, `x\y`},
	} {
		got, err := tokenize(c.in)
		if err != nil || strings.Join(got, "|") != c.want {
			t.Errorf("tokenize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{`u\p`, `"up`, `'up`, `up\`, `"a\b"`} {
		if got, err := tokenize(in); err == nil {
			t.Errorf("tokenize(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseRefusesDisguisedDirectives(t *testing.T) {
	for line, want := range map[string]string{
		`setenv opt up /x`:              "up runs a command",
		`setenv opt setenv opt down /x`: "down runs a command",
		`"up" /x`:                       "up runs a command",
		`'--down' /x`:                   "down runs a command",
		`u\p /x`:                        "backslash",
		"\ufeffup /x":                   "up runs a command",
		`iproute /x`:                    "iproute runs a command",
		`config more.conf`:              "config runs a command",
		`engine /x.so`:                  "engine runs a command",
		`log /etc/passwd`:               "log writes a file",
		`setenv opt status /x`:          "status writes a file",
		`writepid /x`:                   "writepid writes a file",
		`script-security 2`:             "line 1: script-security above 1",
		`script-security 3 execve`:      "script-security above 1",
		`"<up>"`:                        "without quotes",
		`<ca> # x`:                      "without quotes",
		`<up>`:                          "unknown inline block",
		`</connection>x`:                "block tag alone",
	} {
		_, err := Parse([]byte(line + "\nremote x 1\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", line, err, want)
		}
	}
	for _, ok := range []string{"script-security 1", "setenv FOO bar", "# up /x", "remote-cert-tls server"} {
		if _, err := Parse([]byte(ok + "\nremote x 1\n")); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestParseBlockEnds(t *testing.T) {
	data := string(fixture(t))
	for name, c := range map[string]struct{ from, to, want string }{
		"text after close":   {"</ca>\n", "</ca>x\n", "</ca> or </connection> inside <ca>"},
		"close mid-line":     {"-----END CERTIFICATE-----\n</ca>", "-----END CERTIFICATE----- </ca>\n</ca>", "inside <ca>"},
		"connection in body": {"-----END CERTIFICATE-----\n</ca>", "-----END CERTIFICATE-----\n</connection>\n</ca>", "inside <ca>"},
		"text before pem":    {"<ca>\n", "<ca>\nhello\n", "<ca> does not hold PEM certificates"},
		"text after pem":     {"-----END CERTIFICATE-----\n</ca>", "-----END CERTIFICATE-----\nhello\n</ca>", "<ca> does not hold PEM certificates"},
	} {
		in := strings.Replace(data, c.from, c.to, 1)
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	// Indented close tags are still close tags.
	in := strings.Replace(data, "</ca>\n", "  </ca> \n", 1)
	if _, err := Parse([]byte(in)); err != nil {
		t.Fatal(err)
	}
}
