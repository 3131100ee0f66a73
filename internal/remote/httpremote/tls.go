package httpremote

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/remote"
)

// FingerprintSize is the size of a decoded fingerprint (SHA-256).
const FingerprintSize = sha256.Size

// Fingerprint returns the lower-case hex SHA-256 of a certificate's DER:
// the form `safe serve` prints (server.Fingerprint) and clients pin.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint decodes a fingerprint as people paste it: 64 hex
// digits in either case, optionally separated by colons or spaces.
func ParseFingerprint(s string) ([FingerprintSize]byte, error) {
	var fp [FingerprintSize]byte
	clean := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(strings.ToLower(clean))
	if err != nil || len(b) != FingerprintSize {
		return fp, fmt.Errorf("invalid certificate fingerprint %q: want 64 hex digits, the SHA-256 that `safe serve` prints", s)
	}
	copy(fp[:], b)
	return fp, nil
}

// parseBase checks a server address: https only, a host, no credentials,
// query or fragment. A path is kept as a prefix (a server behind a
// reverse proxy).
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("invalid server address %q: %w", raw, err)
	}
	switch {
	case u.Scheme == "http":
		return nil, fmt.Errorf("refusing server address %q: use https:// (safe serve always speaks TLS, and a plain connection would expose the session)", raw)
	case u.Scheme != "https":
		return nil, fmt.Errorf("invalid server address %q: want https://host[:port]", raw)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("invalid server address %q: want https://host[:port]", raw)
	case u.User != nil:
		return nil, fmt.Errorf("invalid server address %q: it must not hold a user name or password", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("invalid server address %q: it must not hold a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// pinnedConfig accepts exactly the certificate whose SHA-256 is pin.
// Chain and name checks are off: the pin is the whole of the trust, as
// for an SSH host key. VerifyConnection runs on every handshake, resumed
// ones included.
func pinnedConfig(serverName string, pin [FingerprintSize]byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         serverName,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], pin[:]) != 1 {
				return &FingerprintError{Pinned: hex.EncodeToString(pin[:]), Got: hex.EncodeToString(got[:])}
			}
			return nil
		},
	}
}

// probeTimeout bounds Probe when ctx has no earlier deadline.
const probeTimeout = 15 * time.Second

// Probe connects to the server without trusting it and returns the
// fingerprint of its certificate, for the user to compare with what the
// server's operator sees before pinning it. Nothing is sent but the TLS
// handshake.
func Probe(ctx context.Context, baseURL string) (string, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: dialTimeout},
		Config: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			ServerName:         u.Hostname(),
			InsecureSkipVerify: true, // we only read the certificate
		},
	}
	conn, err := d.DialContext(ctx, "tcp", hostPort(u))
	if err != nil {
		return "", fmt.Errorf("%w: connect to %s: %v", remote.ErrUnavailable, u.Host, err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%s presented no certificate", u.Host)
	}
	return Fingerprint(cs.PeerCertificates[0].Raw), nil
}
