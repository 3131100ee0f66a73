package pke

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/safehold/safehold/internal/envelope"
)

var testCtx = envelope.Context{Purpose: "vault-key-share", Account: "a1", Vault: "v1"}

func newTestKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := newTestKey(t)
	for _, n := range []int{0, 1, 32, 5000} {
		pt := make([]byte, n)
		rand.Read(pt)
		ct, err := Seal(rand.Reader, k.Public(), testCtx, pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != n+Overhead {
			t.Fatalf("ciphertext of %d bytes, want %d", len(ct), n+Overhead)
		}
		got, err := Open(k, testCtx, ct)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatal("round trip differs")
		}
	}
	ct1, _ := Seal(rand.Reader, k.Public(), testCtx, []byte("x"))
	ct2, _ := Seal(rand.Reader, k.Public(), testCtx, []byte("x"))
	if bytes.Equal(ct1[HeaderSize:HeaderSize+EncSize], ct2[HeaderSize:HeaderSize+EncSize]) {
		t.Fatal("two encapsulations are equal")
	}
}

func TestOpenFailures(t *testing.T) {
	k, other := newTestKey(t), newTestKey(t)
	ct, _ := Seal(rand.Reader, k.Public(), testCtx, []byte("vault key"))
	if _, err := Open(other, testCtx, ct); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong recipient: %v", err)
	}
	c := testCtx
	c.Vault = "v2"
	if _, err := Open(k, c, ct); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong context: %v", err)
	}
	for i := HeaderSize; i < len(ct); i += 37 {
		b := bytes.Clone(ct)
		b[i] ^= 0x10
		if _, err := Open(k, testCtx, b); err == nil {
			t.Fatalf("flipping byte %d still opens", i)
		}
	}
	if _, err := Open(k, envelope.Context{}, ct); !errors.Is(err, envelope.ErrContext) {
		t.Fatalf("empty context: %v", err)
	}
	if _, err := Seal(rand.Reader, k.Public(), envelope.Context{}, nil); !errors.Is(err, envelope.ErrContext) {
		t.Fatalf("Seal with empty context: %v", err)
	}
	k.Wipe()
	if _, err := Open(k, testCtx, ct); err == nil {
		t.Fatal("wiped key decrypted")
	}
}

func TestKeyEncodings(t *testing.T) {
	k := newTestKey(t)
	priv := k.Bytes()
	defer priv.Wipe()
	if len(priv) != PrivateKeySize || priv[0] != AlgXWingV1 {
		t.Fatalf("private key encoding of %d bytes", len(priv))
	}
	k2, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Fatal("parsed private key has another public key")
	}
	pb := k.Public().Bytes()
	if len(pb) != PublicKeySize {
		t.Fatalf("public key of %d bytes", len(pb))
	}
	p, err := ParsePublicKey(pb)
	if err != nil || !p.Equal(k.Public()) {
		t.Fatalf("public key round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, priv[:5], append(bytes.Clone(priv), 1)} {
		if _, err := ParsePrivateKey(bad); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("ParsePrivateKey(%d bytes): %v", len(bad), err)
		}
	}
	wrongAlg := bytes.Clone(priv)
	wrongAlg[0] = 2
	if _, err := ParsePrivateKey(wrongAlg); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("private key with alg 2: %v", err)
	}
	if len(k.Public().Fingerprint()) != FingerprintSize || bytes.Equal(k.Public().Fingerprint(), newTestKey(t).Public().Fingerprint()) {
		t.Fatal("bad fingerprint")
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("GenerateKey with a short random source succeeded")
	}
}

type vecFile struct {
	Comment string `json:"comment"`
	Keys    []struct {
		Name        string `json:"name"`
		Seed        []byte `json:"seed"`
		PublicKey   []byte `json:"public_key"`
		Fingerprint []byte `json:"fingerprint"`
	} `json:"keys"`
	PublicKeys []struct {
		Name      string `json:"name"`
		PublicKey []byte `json:"public_key"`
		Expect    string `json:"expect"`
	} `json:"public_keys"`
	Vectors []struct {
		Name       string           `json:"name"`
		Recipient  string           `json:"recipient"`
		Context    envelope.Context `json:"context"`
		Ciphertext []byte           `json:"ciphertext"`
		Plaintext  []byte           `json:"plaintext"`
		Expect     string           `json:"expect"`
	} `json:"vectors"`
}

var expectErr = map[string]error{
	"ok":              nil,
	"auth":            ErrAuth,
	"truncated":       ErrTruncated,
	"bad magic":       ErrBadMagic,
	"unknown version": ErrUnknownVersion,
	"unknown suite":   ErrUnknownSuite,
	"malformed key":   ErrMalformedKey,
}

func check(t *testing.T, expect string, err error) {
	t.Helper()
	want, ok := expectErr[expect]
	switch {
	case !ok:
		t.Fatalf("unknown expectation %q", expect)
	case want == nil && err != nil:
		t.Fatalf("got %v, want success", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("got %v, want %v", err, want)
	}
}

func TestVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vecFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) == 0 || len(f.PublicKeys) == 0 || len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	keys := map[string]*PrivateKey{}
	for _, v := range f.Keys {
		k, err := NewKeyFromSeed(v.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.Public().Bytes(), v.PublicKey) {
			t.Fatalf("key %s: public key differs from the generator's (circl X-Wing)", v.Name)
		}
		if !bytes.Equal(k.Public().Fingerprint(), v.Fingerprint) {
			t.Fatalf("key %s: fingerprint differs", v.Name)
		}
		keys[v.Name] = k
	}
	for _, v := range f.PublicKeys {
		t.Run("public key "+v.Name, func(t *testing.T) {
			p, err := ParsePublicKey(v.PublicKey)
			check(t, v.Expect, err)
			if err == nil && !bytes.Equal(p.Bytes(), v.PublicKey) {
				t.Fatal("re-encoding differs")
			}
		})
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := Open(keys[v.Recipient], v.Context, v.Ciphertext)
			check(t, v.Expect, err)
			if err == nil && !bytes.Equal(pt, v.Plaintext) {
				t.Fatal("plaintext differs")
			}
		})
	}
}
