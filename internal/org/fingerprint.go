package org

import (
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"strings"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/sign"
)

// idEncoding is the engine's id alphabet (docs/design.md §6.3).
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// idLen is the length of an encoded 16-byte id.
const idLen = 26

// ID derives an organisation's id from its root public key: the first 16
// bytes of SHA-256(u8(len(IDLabel)) || IDLabel || root public key), in the
// engine's id alphabet (26 lower-case base32 characters, like vault ids).
// A root key swapped after creation therefore no longer matches the id.
func ID(root *sign.PublicKey) string {
	e := make([]byte, 0, 1+len(IDLabel)+sign.PublicKeySize)
	e = append(e, byte(len(IDLabel)))
	e = append(e, IDLabel...)
	e = append(e, root.Bytes()...)
	h := sha256.Sum256(e)
	return idEncoding.EncodeToString(h[:16])
}

// validID reports whether s is the canonical encoding of a 16-byte id:
// 26 characters of the alphabet, the two unused bits of the last one zero.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	b, err := idEncoding.DecodeString(s)
	return err == nil && len(b) == 16 && idEncoding.EncodeToString(b) == s
}

// Genesis chain hash of an organisation's log.
func Genesis(org string) chain.Hash { return chain.Genesis(ChainDomain, []byte(org)) }

// WrapContext is the envelope context of a vault key generation wrapped to
// a member: Purpose WrapPurpose, Account org, Vault vault, Revision gen,
// Field recipient account id.
func WrapContext(org, vault, recipient string, gen uint32) envelope.Context {
	return envelope.Context{Purpose: WrapPurpose, Account: org, Vault: vault, Revision: uint64(gen), Field: recipient}
}

// rootContext is the envelope context of Genesis.RootSealed.
func rootContext(org string) envelope.Context {
	return envelope.Context{Purpose: RootPurpose, Account: org}
}

// Fingerprint is the root key's short comparable code: six groups of five
// digits joined by '-' ("01234-56789-..."), from root.Fingerprint().
func Fingerprint(root *sign.PublicKey) string {
	return dashed(sign.HumanFingerprint(root.Fingerprint()))
}

// MemberFingerprint is a member's comparable code over its account id,
// identity and encryption public keys (same form as Fingerprint). With
//
//	E = u8(len(MemberLabel)) || MemberLabel || u32(len(account)) || account ||
//	    u32(len(identity)) || identity || u32(len(encryption)) || encryption
//
// the code is formed from SHA-256(E)[:16] || SHA3-256(E)[:16] as
// sign.HumanFingerprint does.
func MemberFingerprint(account string, identity, encryption []byte) string {
	e := make([]byte, 0, 13+len(MemberLabel)+len(account)+len(identity)+len(encryption))
	e = append(e, byte(len(MemberLabel)))
	e = append(e, MemberLabel...)
	e = binary.BigEndian.AppendUint32(e, uint32(len(account)))
	e = append(e, account...)
	e = binary.BigEndian.AppendUint32(e, uint32(len(identity)))
	e = append(e, identity...)
	e = binary.BigEndian.AppendUint32(e, uint32(len(encryption)))
	e = append(e, encryption...)
	a, b := sha256.Sum256(e), sha3.Sum256(e)
	return dashed(sign.HumanFingerprint(append(a[:16:16], b[:16]...)))
}

func dashed(human string) string { return strings.ReplaceAll(human, " ", "-") }

// SameFingerprint compares a code typed by a person with an expected one,
// ignoring spaces, '-' and case, in constant time.
func SameFingerprint(typed, want string) bool {
	t, w := normalFingerprint(typed), normalFingerprint(want)
	if len(w) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(t, w) == 1
}

func normalFingerprint(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '-':
		case 'A' <= c && c <= 'Z':
			out = append(out, c+'a'-'A')
		default:
			out = append(out, c)
		}
	}
	return out
}
