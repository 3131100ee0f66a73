// Package sshkey handles SSH key items: generating Ed25519 keys, importing
// existing OpenSSH or PEM private keys, and deriving the authorized_keys line
// and SHA256 fingerprint that are shown to the user.
//
// A stored key is always the unencrypted OpenSSH private key PEM ("BEGIN
// OPENSSH PRIVATE KEY"), because the item that holds it is already
// encrypted; Export can add a passphrase when the key leaves the vault. All
// parsing is done by golang.org/x/crypto/ssh.
package sshkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/safehold/safehold/internal/secret"
)

// Bounds on attacker-controlled input.
const (
	// MaxKeySize bounds an imported private key file. A 16384-bit RSA key
	// in PEM is about 13 KiB.
	MaxKeySize = 64 << 10
	// MinRSABits and MaxRSABits bound imported RSA moduli. Below 2048 is
	// weak; above 16384 makes every signature needlessly slow.
	MinRSABits = 2048
	MaxRSABits = 16384
	// MaxCommentLen bounds the key comment, in bytes.
	MaxCommentLen = 256
)

// Errors wrapped by this package; match them with errors.Is.
var (
	ErrTooLarge           = errors.New("ssh key too large")
	ErrPassphraseRequired = errors.New("ssh key is encrypted: a passphrase is required")
	ErrWrongPassphrase    = errors.New("wrong passphrase for ssh key")
	ErrUnsupported        = errors.New("unsupported ssh key type")
	ErrWeakKey            = errors.New("ssh key too weak")
	ErrInvalid            = errors.New("invalid ssh key")
	ErrComment            = errors.New("invalid ssh key comment")
)

// Key is an SSH key item's content.
type Key struct {
	// PrivatePEM is the unencrypted OpenSSH private key, PEM-armoured,
	// carrying Comment. It is what the encrypted item stores.
	PrivatePEM secret.Bytes
	// AuthorizedKey is the public key as one authorized_keys line:
	// "<type> <base64>[ <comment>]", without a trailing newline.
	AuthorizedKey string
	// Fingerprint is "SHA256:" and the unpadded base64 SHA-256 of the
	// public key blob, as ssh-keygen -l prints it.
	Fingerprint string
	// Type is the SSH key type name: "ssh-ed25519", "ssh-rsa",
	// "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384" or "ecdsa-sha2-nistp521".
	Type string
	// Comment is the key comment (often user@host); may be empty.
	Comment string
}

// Generate makes a new Ed25519 key from 32 bytes of r (the seed).
func Generate(r io.Reader, comment string) (Key, error) {
	if err := checkComment(comment); err != nil {
		return Key{}, err
	}
	seed := make([]byte, ed25519.SeedSize)
	defer secret.Wipe(seed)
	if _, err := io.ReadFull(r, seed); err != nil {
		return Key{}, fmt.Errorf("read random source: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	defer secret.Wipe(priv)
	return fromKey(priv, comment)
}

// Import reads a private key in OpenSSH format or PEM (PKCS#1, PKCS#8,
// SEC 1), decrypting it with passphrase if it is encrypted. Supported: Ed25519,
// RSA of MinRSABits..MaxRSABits, ECDSA P-256/P-384/P-521. The comment is
// not recoverable from the file through x/crypto/ssh, so the caller passes
// the one to store.
func Import(data, passphrase []byte, comment string) (Key, error) {
	if len(data) > MaxKeySize {
		return Key{}, fmt.Errorf("%w: over %d bytes", ErrTooLarge, MaxKeySize)
	}
	if err := checkComment(comment); err != nil {
		return Key{}, err
	}
	raw, err := parseRaw(data, passphrase)
	if err != nil {
		return Key{}, err
	}
	key, err := normalize(raw)
	if err != nil {
		return Key{}, err
	}
	defer wipeKey(key)
	return fromKey(key, comment)
}

// parseRaw parses a private key and maps x/crypto/ssh errors to ours. A
// passphrase given for a key that is not encrypted is ignored.
func parseRaw(data, passphrase []byte) (any, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(data, passphrase)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, ErrWrongPassphrase
		}
	}
	if err != nil {
		// x/crypto/ssh errors describe the structure, never key bytes.
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return raw, nil
}

// normalize checks the key type and size and returns a value that
// ssh.MarshalPrivateKey accepts.
func normalize(raw any) (crypto.Signer, error) {
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	case *rsa.PrivateKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return nil, fmt.Errorf("%w: rsa key of %d bits, need at least %d", ErrWeakKey, bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return nil, fmt.Errorf("%w: rsa key of %d bits, at most %d supported", ErrUnsupported, bits, MaxRSABits)
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().Name {
		case "P-256", "P-384", "P-521":
			return k, nil
		}
		return nil, fmt.Errorf("%w: ecdsa curve %s", ErrUnsupported, k.Curve.Params().Name)
	}
	return nil, fmt.Errorf("%w: %T (want ed25519, rsa or ecdsa)", ErrUnsupported, raw)
}

// wipeKey clears what can be cleared of a private key.
func wipeKey(k crypto.Signer) {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		secret.Wipe(k)
	case *rsa.PrivateKey:
		k.D.SetInt64(0)
		for _, p := range k.Primes {
			p.SetInt64(0)
		}
	}
}

func fromKey(key crypto.Signer, comment string) (Key, error) {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	pemBytes := secret.Bytes(pem.EncodeToMemory(block))
	secret.Wipe(block.Bytes)
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		pemBytes.Wipe()
		return Key{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Key{
		PrivatePEM:    pemBytes,
		AuthorizedKey: authorizedLine(pub, comment),
		Fingerprint:   ssh.FingerprintSHA256(pub),
		Type:          pub.Type(),
		Comment:       comment,
	}, nil
}

func authorizedLine(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	if comment != "" {
		line += " " + comment
	}
	return line
}

// checkComment allows printable UTF-8 without control characters, at most
// MaxCommentLen bytes; spaces inside are fine (authorized_keys takes the
// rest of the line).
func checkComment(c string) error {
	if len(c) > MaxCommentLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrComment, MaxCommentLen)
	}
	if !utf8.ValidString(c) {
		return fmt.Errorf("%w: not valid UTF-8", ErrComment)
	}
	for _, r := range c {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q contains a control character", ErrComment, c)
		}
	}
	if strings.TrimSpace(c) != c {
		return fmt.Errorf("%w: %q has leading or trailing space", ErrComment, c)
	}
	return nil
}

// Parse re-reads a stored unencrypted private key PEM and returns the full
// Key with the given comment (stored alongside in the item).
func Parse(privatePEM []byte, comment string) (Key, error) {
	return Import(privatePEM, nil, comment)
}

// PublicKey returns the authorized_keys line for an unencrypted private key
// PEM, with comment appended when non-empty.
func PublicKey(privatePEM []byte, comment string) (string, error) {
	k, err := Parse(privatePEM, comment)
	if err != nil {
		return "", err
	}
	k.PrivatePEM.Wipe()
	return k.AuthorizedKey, nil
}

// Fingerprint returns the SHA256 fingerprint ("SHA256:...") of an
// unencrypted private key PEM.
func Fingerprint(privatePEM []byte) (string, error) {
	k, err := Parse(privatePEM, "")
	if err != nil {
		return "", err
	}
	k.PrivatePEM.Wipe()
	return k.Fingerprint, nil
}

// Export returns the private key PEM for writing to a file, encrypted with
// passphrase in the OpenSSH format (aes256-ctr, bcrypt KDF) when passphrase
// is non-empty, and unchanged otherwise. The bcrypt salt comes from
// crypto/rand inside x/crypto/ssh.
func Export(privatePEM, passphrase []byte, comment string) (secret.Bytes, error) {
	if len(passphrase) == 0 {
		return secret.Bytes(privatePEM).Clone(), nil
	}
	if len(privatePEM) > MaxKeySize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, MaxKeySize)
	}
	raw, err := parseRaw(privatePEM, nil)
	if err != nil {
		return nil, err
	}
	key, err := normalize(raw)
	if err != nil {
		return nil, err
	}
	defer wipeKey(key)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, comment, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return secret.Bytes(pem.EncodeToMemory(block)), nil
}
