// Package kdbx reads and writes KeePass databases (KDBX files) as KeePass
// 2.x and KeePassXC write them.
//
// Read opens KDBX 3.1 and KDBX 4.0/4.1 files: AES-KDF, Argon2d and Argon2id
// key derivation; AES-256-CBC, ChaCha20 and Twofish-CBC outer ciphers;
// Salsa20 and ChaCha20 inner streams for protected values; gzip or no
// compression. It maps groups, entries, custom strings, attachments, TOTP
// settings and history onto importer.Entry values.
//
// Write produces KDBX 4.0 (Argon2id by default, AES-256 or ChaCha20) that
// KeePassXC opens.
//
// Every size, count and work factor an attacker controls is bounded before
// it is used: see the Max* constants. Secrets never appear in errors.
// Cryptographic primitives come from the Go standard library and
// golang.org/x/crypto (and github.com/tobischo/argon2 for Argon2d).
package kdbx

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// Errors returned by Read, matched with errors.Is. The message says what
// failed and what to do.
var (
	// ErrWrongPassword: the password or key file does not open the file.
	ErrWrongPassword = errors.New("wrong password or key file")
	// ErrCorrupt: the file is damaged, truncated or not a KDBX file.
	ErrCorrupt = errors.New("corrupt KeePass file")
	// ErrUnsupported: a valid file using a feature this reader lacks
	// (KeePass 1.x .kdb, KDBX 2, ArcFour inner stream, Argon2 1.0).
	ErrUnsupported = errors.New("unsupported KeePass file")
	// ErrTooLarge: a size, count or work factor above this package's
	// limits (the Max* constants).
	ErrTooLarge = errors.New("KeePass file exceeds a limit")
)

// Limits on what Read accepts. Write refuses options outside them so that
// it never produces a file Read would refuse.
const (
	// MaxHeader bounds the outer header; MaxHeaderField one field of it.
	MaxHeader      = 4 << 20
	MaxHeaderField = 1 << 20
	// MaxBlock bounds one HMAC (KDBX 4) or hashed (KDBX 3.1) block.
	MaxBlock = 64 << 20
	// MaxXML bounds the decompressed XML document (a gzip bomb stops here).
	MaxXML = 256 << 20
	// MaxBinaries bounds the attachments' total size and MaxBinaryCount
	// their number.
	MaxBinaries    = 256 << 20
	MaxBinaryCount = 1 << 16
	// MaxItems bounds entries plus history versions; MaxGroups the groups;
	// MaxDepth the nesting of XML elements (groups included).
	MaxItems  = 500_000
	MaxGroups = 100_000
	MaxDepth  = 128
	// MaxHistory bounds the history versions kept per entry (the newest
	// are kept; the rest are reported in Result.Skipped).
	MaxHistory = 1024
	// MaxKeyFile bounds a key file.
	MaxKeyFile = 16 << 20

	// Key derivation bounds. Argon2 memory is in bytes as in the file.
	MaxAESRounds        = 1 << 31
	MaxArgon2Memory     = 4 << 30
	MinArgon2Memory     = 8 << 10
	MaxArgon2Iterations = 1 << 20
	// MaxArgon2Work bounds memory × iterations (1 TiB: minutes of work).
	MaxArgon2Work    = 1 << 40
	MaxArgon2Threads = 255
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// compositeKey is SHA-256 over the concatenated key components: SHA-256 of
// the password, then the key file's 32-byte key. A nil password with a key
// file means "key file only"; a non-nil empty password is the empty
// password, as KeePass distinguishes them (Read tries both). Without a key
// file the password is always a component (nil counts as empty).
func compositeKey(password, keyFile []byte) ([]byte, error) {
	h := sha256.New()
	if password != nil || keyFile == nil {
		p := sha256.Sum256(password)
		h.Write(p[:])
		clear(p[:])
	}
	if keyFile != nil {
		k, err := keyFileKey(keyFile)
		if err != nil {
			return nil, err
		}
		h.Write(k)
		clear(k)
	}
	return h.Sum(nil), nil
}

// keyFileKey turns a key file into its 32-byte key: KeePass XML key files
// (version 1.0: base64 data; version 2.0: hex data with a 4-byte SHA-256
// check), 32 raw bytes, 64 hex digits, or else SHA-256 of the whole file.
func keyFileKey(data []byte) ([]byte, error) {
	if len(data) > MaxKeyFile {
		return nil, tooLarge("key file is %d bytes, more than the %d allowed", len(data), MaxKeyFile)
	}
	if k, ok, err := xmlKeyFile(data); ok || err != nil {
		return k, err
	}
	if len(data) == 32 {
		return bytes.Clone(data), nil
	}
	if len(data) == 64 {
		if k, err := hex.DecodeString(string(data)); err == nil {
			return k, nil
		}
	}
	s := sha256.Sum256(data)
	return s[:], nil
}

type keyFileXML struct {
	XMLName xml.Name `xml:"KeyFile"`
	Version string   `xml:"Meta>Version"`
	Data    struct {
		Hash string `xml:"Hash,attr"`
		Text string `xml:",chardata"`
	} `xml:"Key>Data"`
}

// xmlKeyFile parses a KeePass XML key file. ok is false when data is not
// one (then the file is hashed as any other file).
func xmlKeyFile(data []byte) (key []byte, ok bool, err error) {
	trimmed := bytes.TrimLeft(data, "\xef\xbb\xbf \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("<")) {
		return nil, false, nil
	}
	var kf keyFileXML
	if xml.Unmarshal(trimmed, &kf) != nil || kf.Data.Text == "" {
		return nil, false, nil
	}
	text := strings.Join(strings.Fields(kf.Data.Text), "")
	switch {
	case strings.HasPrefix(kf.Version, "1."):
		k, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, true, fmt.Errorf("key file version 1.0: data is not base64: %w", ErrWrongPassword)
		}
		return k, true, nil
	case strings.HasPrefix(kf.Version, "2."):
		k, err := hex.DecodeString(text)
		if err != nil {
			return nil, true, fmt.Errorf("key file version 2.0: data is not hex: %w", ErrWrongPassword)
		}
		if kf.Data.Hash != "" {
			want, err := hex.DecodeString(strings.Join(strings.Fields(kf.Data.Hash), ""))
			sum := sha256.Sum256(k)
			if err != nil || len(want) == 0 || len(want) > len(sum) || !bytes.Equal(want, sum[:len(want)]) {
				clear(k)
				return nil, true, fmt.Errorf("key file version 2.0: its data does not match its hash (the key file is damaged): %w", ErrWrongPassword)
			}
		}
		return k, true, nil
	}
	return nil, true, unsupported("key file version %q (known: 1.0, 2.0)", kf.Version)
}
