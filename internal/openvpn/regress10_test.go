package openvpn

import (
	"strings"
	"testing"
)

// OpenVPN's own config parser (options.c parse_line / add_option) accepts
// quoted and backslash-escaped option names, the "setenv opt" prefix (which
// makes the rest of the line an option), and several directives that run
// a program or load code or more configuration. Each line below makes
// `openvpn --config` run or load something of the file author's choosing;
// Parse must refuse all of them.
func TestRegress10ScriptDirectivesAccepted(t *testing.T) {
	for _, line := range []string{
		`setenv opt up /tmp/evil.sh`,          // "setenv opt X" is option X
		`setenv opt route-up /tmp/evil.sh`,    //
		`"up" /tmp/evil.sh`,                   // quoted option name
		`'down' /tmp/evil.sh`,                 // single quotes too
		`u\p /tmp/evil.sh`,                    // backslash escape
		`iproute /tmp/evil`,                   // runs this instead of ip(8)
		`config /tmp/more.conf`,               // includes another file (with its own up)
		`tls-crypt-v2-verify /tmp/evil.sh`,    // a verify script
		`pkcs11-providers /tmp/evil.so`,       // dlopens a library
		`plugin /tmp/evil.so`,                 // (already refused: control)
		`--route-pre-down /tmp/evil.sh`,       // (already refused: control)
		`setenv opt plugin /tmp/evil.so init`, // plugin behind setenv opt
	} {
		t.Run(line, func(t *testing.T) {
			conf := "client\nremote vpn.example.com 1194\nscript-security 2\n" + line + "\n"
			if _, err := Parse([]byte(conf)); err == nil {
				t.Fatalf("Parse accepted a profile with %q, which OpenVPN runs or loads", line)
			}
		})
	}
}

// OpenVPN ends an inline block at the first line that *starts* with
// "</tag>" (read_inline_file uses strncmp on the close tag), while Parse
// ends it only at a line that is exactly "</tag>". Lines between are, for
// OpenVPN, ordinary directives, and Parse never checks them: pem.Decode
// skips the text before a PEM block, so checkBody is satisfied too.
func TestRegress10DirectiveSmuggledInBlock(t *testing.T) {
	p, err := Parse(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	var cert string
	for _, b := range p.Blocks {
		if b.Tag == "ca" {
			cert = string(b.Body)
		}
	}
	if cert == "" {
		t.Fatal("fixture has no <ca>")
	}
	conf := "client\nremote vpn.example.com 1194\nscript-security 2\n" +
		"<ca>\n" + cert +
		"</ca>x\n" + // OpenVPN: end of <ca>
		"up /tmp/evil.sh\n" + // OpenVPN: a directive
		"<extra-certs>\n" + cert +
		"</ca>\n" + // Parse: end of <ca>; OpenVPN: inside <extra-certs>
		"</extra-certs>x\n" // OpenVPN: end of <extra-certs>; Parse: a directive
	if _, err := Parse([]byte(conf)); err == nil {
		t.Fatal("Parse accepted a profile in which OpenVPN sees `up /tmp/evil.sh` outside any block")
	}
}

// Export writes whatever skeleton and bodies the item holds. The item's
// fields can be edited (safe edit), synced from another device or written
// by another member of a shared vault, so export must not write a profile
// that Parse would refuse.
func TestRegress10ExportDoesNotRecheck(t *testing.T) {
	p, err := Parse(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wipe()
	edited := Profile{Skeleton: append([]byte("up /tmp/evil.sh\n"), p.Skeleton...), Blocks: p.Blocks}
	if out, err := edited.Export(); err == nil && strings.Contains(string(out), "up /tmp/evil.sh") {
		t.Fatal("Export wrote a profile with an up script")
	}
	// A body that closes its block and adds a directive.
	inj := Profile{Skeleton: p.Skeleton, Blocks: append([]Block(nil), p.Blocks...)}
	for i, b := range inj.Blocks {
		if b.Tag == "ca" {
			inj.Blocks[i].Body = append(append([]byte(nil), b.Body...), "</ca>\nup /tmp/evil.sh\n<extra-certs>\n"...)
		}
	}
	if out, err := inj.Export(); err == nil {
		if _, perr := Parse(out); perr != nil {
			t.Fatalf("Export wrote a profile that Parse refuses (%v)", perr)
		}
	}
}
