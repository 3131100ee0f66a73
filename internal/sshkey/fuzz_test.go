package sshkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"testing"
)

// FuzzImport checks that Import never panics on arbitrary input and that any
// key it accepts is stored in a form that re-parses to the same public key.
func FuzzImport(f *testing.F) {
	k, err := Generate(&counter{}, "seed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(k.PrivatePEM))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), &counter{})
	der, _ := x509.MarshalECPrivateKey(ec)
	f.Add(pemOf("EC PRIVATE KEY", der))
	f.Add(pemOf("OPENSSH PRIVATE KEY", []byte("openssh-key-v1\x00")))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Import(data, []byte("pw"), "c")
		if err != nil {
			return
		}
		again, err := Parse(k.PrivatePEM, "c")
		if err != nil {
			t.Fatalf("stored key does not re-parse: %v", err)
		}
		if again.AuthorizedKey != k.AuthorizedKey || again.Fingerprint != k.Fingerprint || again.Type != k.Type {
			t.Fatal("stored key re-parses to a different key")
		}
	})
}
