package kit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rsc.io/qr"

	"github.com/safehold/safehold/internal/keycode"
)

const testFP = "3f2a9c0b1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"

// testKeys makes a Secret Key and a Recovery Key from a fixed seed.
func testKeys(t testing.TB, seed uint64) (sk, rk string) {
	t.Helper()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 's', 'h'})
	s, err := keycode.NewSecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keycode.NewRecoveryKey(r)
	if err != nil {
		t.Fatal(err)
	}
	return s.Reveal(), k.Reveal()
}

func testKit(t testing.TB) Kit {
	sk, _ := testKeys(t, 1)
	return Kit{
		Email:       "alice@example.com",
		Server:      "https://vault.example.com:8443",
		Fingerprint: testFP,
		Account:     "acct_01J8ZK3Q",
		SecretKey:   sk,
		Created:     time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC),
	}
}

func writePDF(t *testing.T, k Kit) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WritePDF(&b, k); err != nil {
		t.Fatalf("WritePDF: %v", err)
	}
	return b.Bytes()
}

func TestWritePDFOnePage(t *testing.T) {
	k := testKit(t)
	data := writePDF(t, k)
	f := parsePDF(t, data)
	if len(f.pages) != 1 {
		t.Fatalf("%d pages without a Recovery Key, want 1", len(f.pages))
	}
	text := pageText(t, f.pages[0])
	for _, want := range []string{
		"Safehold Recovery Kit", k.Email, k.Server, k.Account, k.SecretKey, "2025-03-14",
		"Master password",
		"3f2a 9c0b 1d4e 5f60 7182 93a4 b5c6 d7e8",
		"f90a 1b2c 3d4e 5f60 7182 93a4 b5c6 d7e8",
		"safe account login --server " + k.Server + " --email " + k.Email,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page 1 does not show %q; it shows:\n%s", want, text)
		}
	}
	if !strings.Contains(text, testFP) {
		t.Errorf("the login command does not carry the whole fingerprint")
	}
	if bytes.Contains(data, []byte("R1-")) || strings.Contains(text, "Page 2") {
		t.Errorf("a kit without a Recovery Key mentions one or its page")
	}
	if !bytes.Equal(data, writePDF(t, k)) {
		t.Errorf("two runs on the same kit differ")
	}
}

func TestWritePDFRecoveryKeyOnPage2(t *testing.T) {
	k := testKit(t)
	_, k.RecoveryKey = testKeys(t, 1)
	f := parsePDF(t, writePDF(t, k))
	if len(f.pages) != 2 {
		t.Fatalf("%d pages with a Recovery Key, want 2", len(f.pages))
	}
	p1, p2 := pageText(t, f.pages[0]), pageText(t, f.pages[1])
	if strings.Contains(p1, k.RecoveryKey) || strings.Contains(p1, "R1-") {
		t.Errorf("page 1 shows the Recovery Key")
	}
	if !strings.Contains(p2, k.RecoveryKey) {
		t.Errorf("page 2 does not show the Recovery Key:\n%s", p2)
	}
	if strings.Contains(p2, k.SecretKey) {
		t.Errorf("page 2 shows the Secret Key")
	}
	for _, want := range []string{"Warning", "safe recover", "page 2 of 2"} {
		if !strings.Contains(p2, want) {
			t.Errorf("page 2 lacks %q", want)
		}
	}
	if !strings.Contains(p1, "page 1 of 2") {
		t.Errorf("page 1 footer does not say 1 of 2")
	}
	// The QR code is the same as without a Recovery Key: it never holds it.
	if strings.Contains(k.SetupURI(), strings.ReplaceAll(k.RecoveryKey, "-", "")) ||
		strings.Contains(k.SetupURI(), k.RecoveryKey) {
		t.Errorf("the setup URI holds the Recovery Key")
	}
}

// TestQRCodeIsTheSetupURI rebuilds the module grid from the drawn
// rectangles and compares it with the QR encoding of the setup URI.
func TestQRCodeIsTheSetupURI(t *testing.T) {
	for _, k := range []Kit{testKit(t), longestKit(t)} {
		f := parsePDF(t, writePDF(t, k))
		uri := k.SetupURI()
		code, err := qr.Encode(uri, qr.M)
		if err != nil {
			t.Fatal(err)
		}
		grid := qrModules(t, f.pages[0], code.Size)
		for y := range code.Size {
			for x := range code.Size {
				if grid[y][x] != code.Black(x, y) {
					t.Fatalf("module (%d,%d) drawn %v, QR has %v", x, y, grid[y][x], code.Black(x, y))
				}
			}
		}
		server, email, fp, sk, err := ParseSetupURI(uri)
		if err != nil || server != k.Server || email != k.Email || fp != testFP || sk != k.SecretKey {
			t.Fatalf("ParseSetupURI(SetupURI()) = %q %q %q, %v", server, email, fp, err)
		}
	}
}

// longestKit has every field at its limit and characters that escaping
// triples, to check the layout and the QR code hold the worst case.
func longestKit(t testing.TB) Kit {
	k := testKit(t)
	host := strings.Repeat("h", MaxServer-len("https://")-len(":8443/a/b")-len(".example")) + ".example"
	k.Server = "https://" + host + ":8443/a/b"
	k.Email = strings.Repeat("+", 64) + "@" + strings.Repeat("d", MaxEmail-65-4) + ".org"
	k.Account = strings.Repeat("W", 400)
	_, k.RecoveryKey = testKeys(t, 2)
	if len(k.Server) != MaxServer || len(k.Email) != MaxEmail {
		t.Fatalf("test kit is not at the limits: %d %d", len(k.Server), len(k.Email))
	}
	return k
}

func TestWritePDFLongestFields(t *testing.T) {
	k := longestKit(t)
	if n := len(k.SetupURI()); n > MaxSetupURI {
		t.Fatalf("setup URI of the longest kit is %d bytes, more than MaxSetupURI", n)
	}
	f := parsePDF(t, writePDF(t, k))
	text := strings.ReplaceAll(pageText(t, f.pages[0]), "\n", "")
	if !strings.Contains(text, k.Server) || !strings.Contains(text, k.Email) {
		t.Errorf("wrapped server or e-mail not shown in full")
	}
	if !strings.Contains(text, strings.Repeat("W", MaxAccount)+"…") {
		t.Errorf("a long account id is not cut with an ellipsis")
	}
}

func TestWritePDFCleansText(t *testing.T) {
	k := testKit(t)
	k.Account = "id\x1b[2J\r\n) Tj ET BT (\u202eevil\\"
	data := writePDF(t, k)
	f := parsePDF(t, data)
	text := pageText(t, f.pages[0])
	if !strings.Contains(text, "id[2J) Tj ET BT (evil\\") {
		t.Errorf("account id not drawn as cleaned text:\n%s", text)
	}
	if bytes.ContainsAny(data, "\x1b\r") {
		t.Errorf("a control character reached the file")
	}
}

func TestWritePDFNormalizes(t *testing.T) {
	k := testKit(t)
	want := k.SetupURI()
	k.Fingerprint = strings.ToUpper(groupColons(testFP))
	k.SecretKey = strings.ToLower(strings.ReplaceAll(k.SecretKey, "-", " "))
	if got := k.SetupURI(); got != want {
		t.Errorf("SetupURI of a kit in another spelling:\n got %s\nwant %s", got, want)
	}
	text := pageText(t, parsePDF(t, writePDF(t, k)).pages[0])
	if !strings.Contains(text, testKit(t).SecretKey) || !strings.Contains(text, "3f2a 9c0b") {
		t.Errorf("the kit does not show the canonical forms")
	}
}

func groupColons(hex string) string {
	var parts []string
	for i := 0; i < len(hex); i += 2 {
		parts = append(parts, hex[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestWritePDFRefusesInvalid(t *testing.T) {
	sk, rk := testKeys(t, 1)
	for name, mutate := range map[string]func(*Kit){
		"no email":            func(k *Kit) { k.Email = "" },
		"email without @":     func(k *Kit) { k.Email = "alice.example.com" },
		"email with newline":  func(k *Kit) { k.Email = "alice@example.com\nBcc: x" },
		"email too long":      func(k *Kit) { k.Email = strings.Repeat("a", MaxEmail) + "@x" },
		"http server":         func(k *Kit) { k.Server = "http://vault.example.com" },
		"server with query":   func(k *Kit) { k.Server = "https://vault.example.com/?a=b" },
		"server with user":    func(k *Kit) { k.Server = "https://u:p@vault.example.com" },
		"server no host":      func(k *Kit) { k.Server = "https:///x" },
		"server too long":     func(k *Kit) { k.Server = "https://" + strings.Repeat("h", MaxServer) },
		"short fingerprint":   func(k *Kit) { k.Fingerprint = testFP[:62] },
		"fingerprint non-hex": func(k *Kit) { k.Fingerprint = "zz" + testFP[2:] },
		"no secret key":       func(k *Kit) { k.SecretKey = "" },
		"mistyped secret key": func(k *Kit) { k.SecretKey = mistype(sk) },
		"recovery as secret":  func(k *Kit) { k.SecretKey = rk },
		"secret as recovery":  func(k *Kit) { k.RecoveryKey = sk },
		"mistyped recovery":   func(k *Kit) { k.RecoveryKey = mistype(rk) },
	} {
		t.Run(name, func(t *testing.T) {
			k := testKit(t)
			mutate(&k)
			var b bytes.Buffer
			err := WritePDF(&b, k)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("WritePDF = %v, want ErrInvalid", err)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written for an invalid kit", b.Len())
			}
			if strings.Contains(err.Error(), sk) || strings.Contains(err.Error(), rk) {
				t.Errorf("error shows a key: %v", err)
			}
		})
	}
}

// mistype changes the last character of a key, breaking its checksum.
func mistype(key string) string {
	last := key[len(key)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return key[:len(key)-1] + string(repl)
}

func TestKitRedacts(t *testing.T) {
	k := testKit(t)
	_, k.RecoveryKey = testKeys(t, 1)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("kit", "kit", k)
	j, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v %+v %#v %s %q", k, k, k, k, k) + k.String() + string(j) + logs.String()
	for _, secret := range []string{k.SecretKey, k.RecoveryKey, k.SecretKey[3:], k.RecoveryKey[3:]} {
		if strings.Contains(out, secret) {
			t.Fatalf("a key is printed: %s", out)
		}
	}
	if !strings.Contains(out, k.Email) {
		t.Errorf("the redacted form lost the e-mail address: %s", out)
	}
}

func TestSetupURIRoundTrip(t *testing.T) {
	for _, k := range []Kit{
		testKit(t),
		longestKit(t),
		func() Kit {
			k := testKit(t)
			k.Email = "zoë+vault@exämple.de"
			k.Server = "https://[::1]:9443/safehold"
			return k
		}(),
	} {
		uri := k.SetupURI()
		server, email, fp, sk, err := ParseSetupURI(uri)
		if err != nil {
			t.Fatalf("ParseSetupURI(%q): %v", uri, err)
		}
		if server != k.Server || email != k.Email || fp != testFP || sk != k.SecretKey {
			t.Fatalf("round trip of %q gave %q %q %q", uri, server, email, fp)
		}
	}
	want := "safehold://setup?v=1&server=https%3A%2F%2Fvault.example.com%3A8443&email=alice%40example.com&fingerprint=" +
		testFP + "&secret_key=" + testKit(t).SecretKey
	if got := testKit(t).SetupURI(); got != want {
		t.Errorf("SetupURI:\n got %s\nwant %s", got, want)
	}
}

func TestParseSetupURIRefuses(t *testing.T) {
	k := testKit(t)
	good := k.SetupURI()
	sk, rk := testKeys(t, 1)
	esc := url.QueryEscape
	build := func(server, email, fp, key string) string {
		return "safehold://setup?v=1&server=" + esc(server) + "&email=" + esc(email) + "&fingerprint=" + fp + "&secret_key=" + key
	}
	cases := map[string]string{
		"empty":                "",
		"other scheme":         strings.Replace(good, "safehold://", "https://", 1),
		"upper-case scheme":    strings.Replace(good, "safehold://", "SAFEHOLD://", 1),
		"other host":           strings.Replace(good, "//setup?", "//login?", 1),
		"version 2":            strings.Replace(good, "v=1", "v=2", 1),
		"no version":           strings.Replace(good, "v=1&", "", 1),
		"missing secret key":   good[:strings.Index(good, "&secret_key=")],
		"extra parameter":      good + "&password=hunter2",
		"duplicate parameter":  good + "&email=mallory%40example.com",
		"reordered":            strings.Replace(build(k.Server, k.Email, testFP, sk), "v=1&server=", "server=", 1) + "&v=1",
		"empty value":          build(k.Server, "", testFP, sk),
		"http server":          build("http://vault.example.com", k.Email, testFP, sk),
		"server with fragment": build("https://vault.example.com#x", k.Email, testFP, sk),
		"server with query":    build("https://vault.example.com?x=1", k.Email, testFP, sk),
		"email without @":      build(k.Server, "alice", testFP, sk),
		"email with newline":   build(k.Server, "alice@example.com\r\nx", testFP, sk),
		"short fingerprint":    build(k.Server, k.Email, testFP[:63], sk),
		"upper-case fp":        build(k.Server, k.Email, strings.ToUpper(testFP), sk),
		"colon fingerprint":    build(k.Server, k.Email, esc(groupColons(testFP)), sk),
		"mistyped secret key":  build(k.Server, k.Email, testFP, mistype(sk)),
		"recovery key":         build(k.Server, k.Email, testFP, rk),
		"lower-case key":       build(k.Server, k.Email, testFP, strings.ToLower(sk)),
		"lower-case escape":    strings.Replace(good, "%3A", "%3a", 1),
		"needless escape":      strings.Replace(good, "vault", "%76ault", 1),
		"bad escape":           strings.Replace(good, "%3A", "%3", 1),
		"fragment":             good + "#frag",
		"too long":             good + strings.Repeat("x", MaxSetupURI),
	}
	for name, uri := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, _, _, err := ParseSetupURI(uri)
			if !errors.Is(err, ErrSetupURI) {
				t.Fatalf("ParseSetupURI = %v, want ErrSetupURI", err)
			}
			if strings.Contains(err.Error(), sk) || strings.Contains(err.Error(), rk) {
				t.Errorf("error shows a key: %v", err)
			}
		})
	}
	if _, _, _, _, err := ParseSetupURI(build(k.Server, k.Email, testFP, rk)); !errors.Is(err, keycode.ErrWrongKind) {
		t.Errorf("a Recovery Key as secret_key: %v, want keycode.ErrWrongKind", err)
	}
}

func FuzzParseSetupURI(f *testing.F) {
	k := testKit(f)
	f.Add(k.SetupURI())
	f.Add(longestKit(f).SetupURI())
	f.Add(strings.Replace(k.SetupURI(), "v=1", "v=2", 1))
	f.Add("safehold://setup?v=1&server=&email=&fingerprint=&secret_key=")
	f.Fuzz(func(t *testing.T, s string) {
		server, email, fp, sk, err := ParseSetupURI(s)
		if err != nil {
			return
		}
		// Whatever parses is canonical: it re-encodes byte for byte.
		k := Kit{Server: server, Email: email, Fingerprint: fp, SecretKey: sk}
		if got := k.SetupURI(); got != s {
			t.Fatalf("ParseSetupURI(%q) re-encodes as %q", s, got)
		}
		var b bytes.Buffer
		if err := WritePDF(&b, k); err != nil {
			t.Fatalf("a kit from a valid setup URI does not print: %v", err)
		}
	})
}

// TestPdftotext checks the text a real PDF reader extracts, when
// poppler's pdftotext is installed.
func TestPdftotext(t *testing.T) {
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext (poppler-utils) is not installed")
	}
	k := testKit(t)
	_, k.RecoveryKey = testKeys(t, 1)
	path := filepath.Join(t.TempDir(), "kit.pdf")
	if err := os.WriteFile(path, writePDF(t, k), 0o600); err != nil {
		t.Fatal(err)
	}
	extract := func(page string) string {
		out, err := exec.Command(bin, "-f", page, "-l", page, "-layout", path, "-").CombinedOutput()
		if err != nil {
			t.Fatalf("pdftotext: %v\n%s", err, out)
		}
		return string(out)
	}
	p1, p2 := extract("1"), extract("2")
	for _, want := range []string{"Safehold Recovery Kit", k.Email, k.Server, k.SecretKey, "3f2a 9c0b 1d4e", "Master password", "page 1 of 2"} {
		if !strings.Contains(p1, want) {
			t.Errorf("pdftotext page 1 lacks %q:\n%s", want, p1)
		}
	}
	if strings.Contains(p1, k.RecoveryKey) || !strings.Contains(p2, k.RecoveryKey) {
		t.Errorf("pdftotext: the Recovery Key is not on page 2 alone")
	}
}

// TestQRDecodes renders page 1 and decodes the QR code with zbarimg,
// when poppler's pdftoppm and zbar are installed.
func TestQRDecodes(t *testing.T) {
	ppm, err1 := exec.LookPath("pdftoppm")
	zbar, err2 := exec.LookPath("zbarimg")
	if err1 != nil || err2 != nil {
		t.Skip("pdftoppm (poppler-utils) or zbarimg (zbar-tools) is not installed")
	}
	for i, k := range []Kit{testKit(t), longestKit(t)} {
		dir := t.TempDir()
		path := filepath.Join(dir, "kit.pdf")
		if err := os.WriteFile(path, writePDF(t, k), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(ppm, "-r", "300", "-png", "-f", "1", "-l", "1", "-singlefile", path, filepath.Join(dir, "p")).CombinedOutput(); err != nil {
			t.Fatalf("pdftoppm: %v\n%s", err, out)
		}
		out, err := exec.Command(zbar, "-q", "--raw", filepath.Join(dir, "p.png")).Output()
		if err != nil {
			t.Fatalf("kit %d: zbarimg found no QR code: %v", i, err)
		}
		if got := strings.TrimSpace(string(out)); got != k.SetupURI() {
			t.Fatalf("kit %d: QR code reads %q, want %q", i, got, k.SetupURI())
		}
	}
}
