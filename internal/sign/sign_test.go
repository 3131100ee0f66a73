package sign

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"testing"
)

func newTestKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	k := newTestKey(t)
	pub := k.Public()
	msg := []byte("hello")
	sig, err := k.Sign("test", msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != SignatureSize || sig[0] != AlgHybridV1 {
		t.Fatalf("signature of %d bytes, alg %d", len(sig), sig[0])
	}
	if err := pub.Verify("test", msg, sig); err != nil {
		t.Fatal(err)
	}
	again, _ := k.Sign("test", msg)
	if !bytes.Equal(sig, again) {
		t.Fatal("signing is not deterministic")
	}
	if err := pub.Verify("test2", msg, sig); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other context: %v", err)
	}
	if err := pub.Verify("test", []byte("hellO"), sig); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other message: %v", err)
	}
	if err := newTestKey(t).Public().Verify("test", msg, sig); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other key: %v", err)
	}
	for i := range sig {
		if err := pub.Verify("test", msg, flip(sig, i)); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("flipping signature byte %d: %v", i, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestContextBounds(t *testing.T) {
	k := newTestKey(t)
	for _, c := range []string{"", string(make([]byte, MaxContext+1))} {
		if _, err := k.Sign(c, nil); !errors.Is(err, ErrContext) {
			t.Errorf("Sign with %d-byte context: %v", len(c), err)
		}
		if err := k.Public().Verify(c, nil, make([]byte, SignatureSize)); !errors.Is(err, ErrContext) {
			t.Errorf("Verify with %d-byte context: %v", len(c), err)
		}
	}
	c := string(bytes.Repeat([]byte("x"), MaxContext))
	sig, err := k.Sign(c, nil)
	if err != nil || k.Public().Verify(c, nil, sig) != nil {
		t.Fatalf("context at the bound: %v", err)
	}
}

func TestKeyEncodings(t *testing.T) {
	k := newTestKey(t)
	priv := k.Bytes()
	defer priv.Wipe()
	if len(priv) != PrivateKeySize || priv[0] != AlgHybridV1 {
		t.Fatalf("private key encoding of %d bytes", len(priv))
	}
	k2, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Fatal("parsed private key has another public key")
	}
	pb, _ := k.Public().MarshalBinary()
	if len(pb) != PublicKeySize {
		t.Fatalf("public key of %d bytes", len(pb))
	}
	p2, err := ParsePublicKey(pb)
	if err != nil {
		t.Fatal(err)
	}
	if !p2.Equal(k.Public()) || !bytes.Equal(p2.Bytes(), pb) {
		t.Fatal("public key round trip differs")
	}
	for _, bad := range [][]byte{nil, priv[:PrivateKeySize-1], append(bytes.Clone(priv), 0), flip(priv, 0)} {
		if _, err := ParsePrivateKey(bad); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("ParsePrivateKey(%d bytes): %v", len(bad), err)
		}
	}
	if _, err := NewKeyFromSeed(make([]byte, 32)); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("32-byte seed: %v", err)
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 63))); err == nil {
		t.Error("GenerateKey with a short random source succeeded")
	}
	// The private key encoding prints redacted.
	if s := k.Bytes().String(); s != "[redacted]" {
		t.Errorf("private key prints as %q", s)
	}
}

func TestSeedSplit(t *testing.T) {
	seed := make([]byte, SeedSize)
	a, _ := NewKeyFromSeed(seed)
	seed[40] = 1 // only the ML-DSA half changes
	b, _ := NewKeyFromSeed(seed)
	pa, pb := a.Public().Bytes(), b.Public().Bytes()
	if !bytes.Equal(pa[1:33], pb[1:33]) || bytes.Equal(pa[33:], pb[33:]) {
		t.Fatal("seed bytes 32..63 must drive ML-DSA only")
	}
}

func TestWipe(t *testing.T) {
	k := newTestKey(t)
	pub := k.Public()
	k.Wipe()
	if _, err := k.Sign("test", nil); !errors.Is(err, ErrWiped) {
		t.Fatalf("Sign after Wipe: %v", err)
	}
	if pub.Fingerprint() == nil {
		t.Fatal("public key lost")
	}
}

func TestFingerprint(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	fa := a.Public().Fingerprint()
	if len(fa) != FingerprintSize {
		t.Fatalf("fingerprint of %d bytes", len(fa))
	}
	if bytes.Equal(fa, b.Public().Fingerprint()) {
		t.Fatal("two keys share a fingerprint")
	}
	s := a.Public().FingerprintString()
	if !regexp.MustCompile(`^\d{5}( \d{5}){5}$`).MatchString(s) {
		t.Fatalf("human fingerprint %q", s)
	}
	if HumanFingerprint(fa[:10]) != "" {
		t.Fatal("short fingerprint formatted")
	}
}

type vecFile struct {
	Comment string `json:"comment"`
	Keys    []struct {
		Name              string `json:"name"`
		Seed              []byte `json:"seed"`
		PrivateKey        []byte `json:"private_key"`
		PublicKey         []byte `json:"public_key"`
		Fingerprint       []byte `json:"fingerprint"`
		FingerprintString string `json:"fingerprint_string"`
	} `json:"keys"`
	PublicKeys []struct {
		Name      string `json:"name"`
		PublicKey []byte `json:"public_key"`
		Expect    string `json:"expect"`
	} `json:"public_keys"`
	Signatures []struct {
		Name      string `json:"name"`
		PublicKey []byte `json:"public_key"`
		Context   string `json:"context"`
		Message   []byte `json:"message"`
		Signature []byte `json:"signature"`
		Expect    string `json:"expect"`
	} `json:"signatures"`
}

var expectErr = map[string]error{
	"ok":                nil,
	"invalid signature": ErrInvalidSignature,
	"malformed key":     ErrMalformedKey,
	"context":           ErrContext,
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
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) == 0 || len(f.PublicKeys) == 0 || len(f.Signatures) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range f.Keys {
		t.Run("key "+v.Name, func(t *testing.T) {
			k, err := NewKeyFromSeed(v.Seed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.Bytes(), v.PrivateKey) || !bytes.Equal(k.Public().Bytes(), v.PublicKey) {
				t.Fatal("key encoding differs")
			}
			if !bytes.Equal(k.Public().Fingerprint(), v.Fingerprint) || k.Public().FingerprintString() != v.FingerprintString {
				t.Fatal("fingerprint differs")
			}
		})
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
	for _, v := range f.Signatures {
		t.Run("signature "+v.Name, func(t *testing.T) {
			p, err := ParsePublicKey(v.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			check(t, v.Expect, p.Verify(v.Context, v.Message, v.Signature))
		})
	}
	// Signing with the vector keys reproduces the valid signatures.
	for _, v := range f.Signatures {
		if v.Expect != "ok" {
			continue
		}
		for _, k := range f.Keys {
			if bytes.Equal(k.PublicKey, v.PublicKey) {
				priv, _ := NewKeyFromSeed(k.Seed)
				sig, err := priv.Sign(v.Context, v.Message)
				if err != nil || !bytes.Equal(sig, v.Signature) {
					t.Fatalf("%s: re-signing differs (err %v)", v.Name, err)
				}
			}
		}
	}
}
