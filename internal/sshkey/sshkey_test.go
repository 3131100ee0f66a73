package sshkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// counter is a deterministic reader: 0, 1, 2, ...
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// rsa2048 is generated once: RSA key generation is the slow part.
var rsa2048 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func TestGenerateDeterministic(t *testing.T) {
	k1, err := Generate(&counter{}, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Generate(&counter{}, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	if k1.AuthorizedKey != k2.AuthorizedKey || k1.Fingerprint != k2.Fingerprint {
		t.Fatal("same seed, different keys")
	}
	// The key is Ed25519 of the seed 00 01 ... 1f.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	pub, _ := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
	want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " alice@laptop"
	if k1.AuthorizedKey != want {
		t.Fatalf("authorized key\n got %s\nwant %s", k1.AuthorizedKey, want)
	}
	if k1.Type != "ssh-ed25519" || k1.Comment != "alice@laptop" || k1.Fingerprint != ssh.FingerprintSHA256(pub) {
		t.Fatalf("bad metadata: %+v", k1)
	}
	if !bytes.HasPrefix(k1.PrivatePEM, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")) {
		t.Fatal("private key is not OpenSSH PEM")
	}
	line, err := PublicKey(k1.PrivatePEM, "alice@laptop")
	if err != nil || line != want {
		t.Fatalf("PublicKey: %q, %v", line, err)
	}
	fp, err := Fingerprint(k1.PrivatePEM)
	if err != nil || fp != k1.Fingerprint || !strings.HasPrefix(fp, "SHA256:") || len(fp) != 7+43 {
		t.Fatalf("Fingerprint: %q, %v", fp, err)
	}
	// The stored PEM signs with the same key.
	signer, err := ssh.ParsePrivateKey(k1.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, []byte("msg"))
	if err != nil || pub.Verify([]byte("msg"), sig) != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

func TestGenerateNoComment(t *testing.T) {
	k, err := Generate(rand.Reader, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(k.AuthorizedKey, " ") != 1 {
		t.Fatalf("unexpected comment: %q", k.AuthorizedKey)
	}
	if _, err := Generate(bytes.NewReader(make([]byte, 31)), ""); err == nil {
		t.Fatal("short reader accepted")
	}
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func mustMarshalOpenSSH(t *testing.T, key any, pass string) []byte {
	t.Helper()
	var b *pem.Block
	var err error
	if pass == "" {
		b, err = ssh.MarshalPrivateKey(key, "c")
	} else {
		b, err = ssh.MarshalPrivateKeyWithPassphrase(key, "c", []byte(pass))
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

func TestImportFormats(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rk := rsa2048()
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("PRIVATE KEY", der)
	}
	sec1, _ := x509.MarshalECPrivateKey(p256)
	cases := []struct {
		name, typ string
		data      []byte
		pass      string
		pub       any
	}{
		{"ed25519 openssh", "ssh-ed25519", mustMarshalOpenSSH(t, edPriv, ""), "", edPriv.Public()},
		{"ed25519 openssh encrypted", "ssh-ed25519", mustMarshalOpenSSH(t, edPriv, "pw"), "pw", edPriv.Public()},
		{"ed25519 pkcs8", "ssh-ed25519", pkcs8(edPriv), "", edPriv.Public()},
		{"rsa pkcs1", "ssh-rsa", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), "", rk.Public()},
		{"rsa pkcs8", "ssh-rsa", pkcs8(rk), "", rk.Public()},
		{"rsa openssh encrypted", "ssh-rsa", mustMarshalOpenSSH(t, rk, "secret words"), "secret words", rk.Public()},
		{"p256 sec1", "ecdsa-sha2-nistp256", pemOf("EC PRIVATE KEY", sec1), "", p256.Public()},
		{"p384 openssh", "ecdsa-sha2-nistp384", mustMarshalOpenSSH(t, p384, ""), "", p384.Public()},
		{"p521 pkcs8", "ecdsa-sha2-nistp521", pkcs8(p521), "ignored", p521.Public()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Import(tc.data, []byte(tc.pass), "me@host")
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := ssh.NewPublicKey(tc.pub)
			if k.Type != tc.typ || k.Fingerprint != ssh.FingerprintSHA256(pub) {
				t.Fatalf("got %s %s", k.Type, k.Fingerprint)
			}
			if !strings.HasSuffix(k.AuthorizedKey, " me@host") {
				t.Fatalf("comment missing: %s", k.AuthorizedKey)
			}
			// The stored form is always unencrypted OpenSSH and re-parses
			// to the same key.
			if !bytes.Contains(k.PrivatePEM, []byte("BEGIN OPENSSH PRIVATE KEY")) {
				t.Fatal("not normalised to OpenSSH")
			}
			again, err := Parse(k.PrivatePEM, "me@host")
			if err != nil || again.AuthorizedKey != k.AuthorizedKey {
				t.Fatalf("re-parse: %v", err)
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	enc := mustMarshalOpenSSH(t, edPriv, "right")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224der, _ := x509.MarshalPKCS8PrivateKey(p224)
	cases := []struct {
		name string
		data []byte
		pass string
		err  error
	}{
		{"too large", make([]byte, MaxKeySize+1), "", ErrTooLarge},
		{"no passphrase", enc, "", ErrPassphraseRequired},
		{"wrong passphrase", enc, "wrong", ErrWrongPassphrase},
		{"garbage", []byte("not a key"), "", ErrInvalid},
		{"public key", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"), "", ErrInvalid},
		{"truncated", enc[:len(enc)/2], "right", ErrInvalid},
		{"rsa 1024", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), "", ErrWeakKey},
		{"p224", pemOf("PRIVATE KEY", p224der), "", ErrUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(tc.data, []byte(tc.pass), "")
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
	for _, c := range []string{"a\nb", " lead", "trail ", strings.Repeat("x", MaxCommentLen+1), "\xff"} {
		if _, err := Generate(rand.Reader, c); !errors.Is(err, ErrComment) {
			t.Errorf("comment %q: %v", c, err)
		}
	}
}

func TestExport(t *testing.T) {
	k, err := Generate(rand.Reader, "exp")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Export(k.PrivatePEM, nil, "exp")
	if err != nil || !bytes.Equal(plain, k.PrivatePEM) {
		t.Fatalf("plain export: %v", err)
	}
	enc, err := Export(k.PrivatePEM, []byte("hunter2"), "exp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(enc, nil, ""); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("encrypted export opened without passphrase: %v", err)
	}
	back, err := Import(enc, []byte("hunter2"), "exp")
	if err != nil || back.AuthorizedKey != k.AuthorizedKey {
		t.Fatalf("re-import: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	k, err := Generate(rand.Reader, "x")
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%v %+v", k, k)
	if strings.Contains(s, "PRIVATE KEY") {
		t.Fatalf("private key printed: %s", s)
	}
}

// sshKeygen returns the path of ssh-keygen or skips the test.
func sshKeygen(t *testing.T) string {
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not on PATH (install openssh-client to run this cross-check)")
	}
	return p
}

func writeKey(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// firstTwo keeps "type base64" of an authorized_keys line.
func firstTwo(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	return f[0] + " " + f[1]
}

func TestSSHKeygenAgrees(t *testing.T) {
	bin := sshKeygen(t)
	k, err := Generate(rand.Reader, "test@safehold")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-y", "-f", writeKey(t, k.PrivatePEM)).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if firstTwo(string(out)) != firstTwo(k.AuthorizedKey) {
		t.Fatalf("ssh-keygen: %s\nours:       %s", out, k.AuthorizedKey)
	}
	out, err = exec.Command(bin, "-l", "-E", "sha256", "-f", writeKey(t, k.PrivatePEM)).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	if f := strings.Fields(string(out)); len(f) < 2 || f[1] != k.Fingerprint {
		t.Fatalf("fingerprint: ssh-keygen %q, ours %q", out, k.Fingerprint)
	}
	// An export with passphrase opens in ssh-keygen.
	enc, err := Export(k.PrivatePEM, []byte("pass phrase"), "test@safehold")
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "-y", "-P", "pass phrase", "-f", writeKey(t, enc)).Output()
	if err != nil || firstTwo(string(out)) != firstTwo(k.AuthorizedKey) {
		t.Fatalf("ssh-keygen on encrypted export: %v %s", err, out)
	}
}

func TestImportSSHKeygenKeys(t *testing.T) {
	bin := sshKeygen(t)
	for _, args := range [][]string{
		{"-t", "ed25519", "-N", "kdf pass", "-a", "4"},
		{"-t", "ecdsa", "-b", "384", "-N", ""},
		{"-t", "rsa", "-b", "2048", "-N", "", "-m", "PEM"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "k")
			cmd := exec.Command(bin, append(args, "-q", "-C", "kg", "-f", p)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
			data, _ := os.ReadFile(p)
			pub, _ := os.ReadFile(p + ".pub")
			pass := ""
			if args[3] == "kdf pass" {
				pass = "kdf pass"
			}
			k, err := Import(data, []byte(pass), "kg")
			if err != nil {
				t.Fatal(err)
			}
			if k.AuthorizedKey != strings.TrimSpace(string(pub)) {
				t.Fatalf("ours %s\nssh-keygen %s", k.AuthorizedKey, pub)
			}
		})
	}
}
