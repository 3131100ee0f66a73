package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertFileName is the file in the data directory holding the self-signed
// certificate and its private key (PEM, mode 0600).
const CertFileName = "tls.pem"

// certValidity is how long a self-signed certificate is valid. Clients pin
// its fingerprint, not a chain, so a long life costs nothing.
const certValidity = 20 * 365 * 24 * time.Hour

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER (64
// characters): what `safe serve` prints and clients pin.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// LoadCert loads an operator-supplied certificate chain and key (PEM) and
// returns the leaf's fingerprint.
func LoadCert(certFile, keyFile string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: load certificate %q and key %q: %w", certFile, keyFile, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

// LoadOrCreateCert loads the self-signed certificate from dataDir, making
// it on first use: ECDSA P-256, for 127.0.0.1, ::1, localhost and the host
// name. The file is created with mode 0600 (the directory 0700) and
// atomically, so that two servers starting at once agree on one
// certificate.
func LoadOrCreateCert(dataDir string) (tls.Certificate, string, error) {
	path := filepath.Join(dataDir, CertFileName)
	if cert, fp, err := loadCertFile(path); err == nil {
		return cert, fp, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: create data directory: %w", err)
	}
	pemBytes, err := newSelfSigned()
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmp, err := os.CreateTemp(dataDir, ".tls-*.pem")
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	if _, err := tmp.Write(pemBytes); err != nil {
		tmp.Close()
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	// Link, unlike rename, fails if the name exists: a server that loses
	// the race uses the winner's certificate.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return tls.Certificate{}, "", fmt.Errorf("server: write certificate: %w", err)
	}
	return loadCertFile(path)
}

// loadCertFile reads a PEM file holding a certificate and its key.
func loadCertFile(path string) (tls.Certificate, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: read certificate: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: read certificate: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, "", fmt.Errorf("server: %s holds a private key but has mode %v; run chmod 600 on it", path, fi.Mode().Perm())
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("server: parse %s: %w (delete it to make a new certificate; clients will then need the new fingerprint)", path, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

// newSelfSigned returns a PEM certificate followed by its PEM key.
func newSelfSigned() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server: generate certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("server: generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "safehold server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" && validHostname(h) {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("server: make certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("server: encode certificate key: %w", err)
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return buf.Bytes(), nil
}

// validHostname reports whether h can be a DNS SAN.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
