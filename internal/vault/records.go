package vault

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"hash"

	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/vlog"
)

// RecordVersion is the version of the JSON records (account, vault, head).
const RecordVersion = 1

// maxRecord bounds any record read back from the file.
const maxRecord = 1 << 20

// accountRecord is the account header, stored as canonical JSON (exactly
// what encoding/json produces for this struct; anything else is refused).
type accountRecord struct {
	Version         int          `json:"v"`
	Account         string       `json:"account"`
	SecurityVersion int          `json:"security_version"`
	Created         int64        `json:"created"`
	KDF             []byte       `json:"kdf"`
	InsecureTestKDF bool         `json:"insecure_test_kdf,omitempty"`
	PasswordWrap    []byte       `json:"password_wrap"`
	RecoverySalt    []byte       `json:"recovery_salt"`
	RecoveryWrap    []byte       `json:"recovery_wrap"`
	IdentityPublic  []byte       `json:"identity_public"`
	IdentitySealed  []byte       `json:"identity_private"`
	EncryptPublic   []byte       `json:"encryption_public"`
	EncryptSealed   []byte       `json:"encryption_private"`
	Devices         []deviceInfo `json:"devices"`
	// Revoked lists the ids of devices no longer trusted (§15.4); it only
	// grows. Their entries still verify; peers refuse them.
	Revoked []string `json:"revoked,omitempty"`
	// Epoch is the account-document epoch this record matches (§13.3);
	// absent for a vault that never synced.
	Epoch uint64 `json:"epoch,omitempty"`
	// SecretKey is the account's 16-byte Secret Key (§3.5), present once
	// the account is on a remote. Local only: never in the document.
	SecretKey []byte `json:"secret_key,omitempty"`
	MAC       []byte `json:"mac,omitempty"`
}

// deviceInfo is one device of the account. The device's signing key signs
// the log entries it writes; the identity key certifies the device key.
type deviceInfo struct {
	ID     string `json:"id"`
	Public []byte `json:"public"`
	Cert   []byte `json:"cert"`
	Sealed []byte `json:"private,omitempty"` // only for this device
}

// vaultRecord describes one vault: its sealed name and its key wrapped under
// the Master Key.
type vaultRecord struct {
	Version int    `json:"v"`
	Vault   string `json:"vault"`
	Created int64  `json:"created"`
	Name    []byte `json:"name"`
	Key     []byte `json:"key"`
	// Shared vaults (§14): the organisation, the generation of Key, and
	// the earlier generations 1..Gen-1 in order, each sealed under MK like
	// Key. Name is the organisation's sealed name (under generation 1).
	Org string   `json:"org,omitempty"`
	Gen uint32   `json:"gen,omitempty"`
	Old [][]byte `json:"old,omitempty"`
	MAC []byte   `json:"mac,omitempty"`
}

// headRecord pins the last log entry this device wrote or verified.
type headRecord struct {
	Version int    `json:"v"`
	Vault   string `json:"vault"`
	Seq     uint64 `json:"seq"`
	Hash    []byte `json:"hash"`
	MAC     []byte `json:"mac,omitempty"`
}

// encodeRecord is the canonical encoding: encoding/json's output.
func encodeRecord(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode record: %v", err)) // records hold only marshalable types
	}
	return b
}

// decodeRecord parses a record strictly: bounded, no unknown fields, no
// trailing data, and only the canonical encoding (re-encoding must give the
// same bytes), so that each record has exactly one accepted form.
func decodeRecord(data []byte, v any) error {
	if len(data) > maxRecord {
		return fmt.Errorf("record is %d bytes, more than %d", len(data), maxRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("record does not parse: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("record has trailing data")
	}
	if !bytes.Equal(encodeRecord(v), data) {
		return fmt.Errorf("record is not in canonical form")
	}
	return nil
}

// macKey derives the key that authenticates records from the Master Key.
func macKey(mk secret.Bytes) secret.Bytes {
	k, err := hkdf.Key(sha512.New, mk, nil, "safehold/v1 record-mac", 32)
	if err != nil {
		panic(err) // only fails for lengths far above 32
	}
	return k
}

// recordMAC authenticates a record with HMAC-SHA-256 and HMAC-SHA3-256 side
// by side, so that one broken hash alone forges nothing. kind separates the
// record types.
func recordMAC(key secret.Bytes, kind string, data []byte) []byte {
	out := make([]byte, 0, 64)
	for _, h := range []func() hash.Hash{sha256.New, func() hash.Hash { return sha3.New256() }} {
		m := hmac.New(h, key)
		m.Write([]byte(kind))
		m.Write([]byte{0})
		m.Write(data)
		out = m.Sum(out)
	}
	return out
}

// seal sets rec's MAC: the MAC over the canonical encoding with MAC empty.
func setMAC(key secret.Bytes, kind string, rec any, mac *[]byte) []byte {
	*mac = nil
	*mac = recordMAC(key, kind, encodeRecord(rec))
	return encodeRecord(rec)
}

// checkMAC verifies rec's MAC in constant time.
func checkMAC(key secret.Bytes, kind string, rec any, mac *[]byte) bool {
	got := *mac
	*mac = nil
	want := recordMAC(key, kind, encodeRecord(rec))
	*mac = got
	return subtle.ConstantTimeCompare(got, want) == 1
}

// digest is the payload digest a put entry records (vlog.PayloadDigest).
func digest(data []byte) []byte { return vlog.PayloadDigest(data) }
