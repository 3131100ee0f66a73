package org

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/sign"
)

// maxEmail bounds an e-mail address, as the server does.
const maxEmail = 254

// Optional fields, as bits: which ones a statement carries (non-empty) and
// which ones its type requires or allows.
type fields uint32

const (
	fName fields = 1 << iota
	fRoot
	fRootSealed
	fAccount
	fEmail
	fIdentity
	fEncryption
	fRole
	fDevice
	fPublic
	fCert
	fMembers
	fVault
	fSealedName
	fSubject
	fAccess
	fGen
	fWrapped
	fHeads
	fieldCount = iota
)

// fieldNames are the JSON names, in bit order.
var fieldNames = [fieldCount]string{
	"name", "root", "root_sealed", "account", "email", "identity", "encryption", "role",
	"device", "public", "cert", "members", "vault", "sealed_name", "subject", "access",
	"gen", "wrapped", "heads",
}

// shape is what a statement type requires and what else it may carry.
type shape struct{ required, optional fields }

// shapes lists every statement type (docs/design.md §14.3). Heads may come
// with every statement that can take write access away from someone.
var shapes = map[string]shape{
	TypeGenesis:      {required: fName | fRoot | fRootSealed | fAccount},
	TypeMember:       {required: fAccount | fEmail | fIdentity | fEncryption | fRole, optional: fHeads},
	TypeInvite:       {required: fEmail},
	TypeAccept:       {required: fAccount | fEmail | fIdentity | fEncryption},
	TypeRemove:       {required: fAccount, optional: fHeads},
	TypeDevice:       {required: fAccount | fDevice | fPublic | fCert},
	TypeDeviceRevoke: {required: fAccount | fDevice, optional: fHeads},
	TypeGroup:        {required: fName, optional: fMembers | fHeads},
	TypeVault:        {required: fVault | fSealedName},
	TypeGrant:        {required: fVault | fSubject, optional: fAccess | fHeads},
	TypeKey:          {required: fVault | fAccount | fGen | fWrapped},
}

// present returns the optional fields st carries: exactly those its
// encoding contains.
func (st *Statement) present() fields {
	var f fields
	set := func(bit fields, on bool) {
		if on {
			f |= bit
		}
	}
	set(fName, st.Name != "")
	set(fRoot, len(st.Root) > 0)
	set(fRootSealed, len(st.RootSealed) > 0)
	set(fAccount, st.Account != "")
	set(fEmail, st.Email != "")
	set(fIdentity, len(st.Identity) > 0)
	set(fEncryption, len(st.Encryption) > 0)
	set(fRole, st.Role != "")
	set(fDevice, st.Device != "")
	set(fPublic, len(st.Public) > 0)
	set(fCert, len(st.Cert) > 0)
	set(fMembers, len(st.Members) > 0)
	set(fVault, st.Vault != "")
	set(fSealedName, len(st.SealedName) > 0)
	set(fSubject, st.Subject != "")
	set(fAccess, st.Access != "")
	set(fGen, st.Gen != 0)
	set(fWrapped, len(st.Wrapped) > 0)
	set(fHeads, len(st.Heads) > 0)
	return f
}

// firstField names the lowest field in f.
func firstField(f fields) string {
	for i := range fieldCount {
		if f&(1<<i) != 0 {
			return fieldNames[i]
		}
	}
	return ""
}

// where is the prefix of an error about st: "statement 7 (key): ".
func where(st *Statement) string {
	if st == nil {
		return ""
	}
	if _, known := shapes[st.Type]; !known {
		return fmt.Sprintf("statement %d: ", st.Seq)
	}
	return fmt.Sprintf("statement %d (%s): ", st.Seq, st.Type)
}

func malformed(st *Statement, format string, args ...any) error {
	return fmt.Errorf("%w: %s%s", ErrMalformed, where(st), fmt.Sprintf(format, args...))
}

// Decode parses an entry's body strictly (ErrMalformed): size, unknown
// fields, trailing bytes, non-canonical encoding, version, id and field
// bounds, fields the type does not use. It does not check signatures.
func Decode(e Entry) (*Statement, error) {
	if len(e.Body) > MaxStatement {
		return nil, malformed(nil, "body is %d bytes, more than %d", len(e.Body), MaxStatement)
	}
	if len(e.Sig) > MaxSig {
		return nil, malformed(nil, "signature is %d bytes, more than %d", len(e.Sig), MaxSig)
	}
	st := new(Statement)
	dec := json.NewDecoder(bytes.NewReader(e.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, malformed(nil, "body does not parse: %v", err)
	}
	if dec.More() {
		return nil, malformed(nil, "body has trailing data")
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	if b, err := json.Marshal(st); err != nil || !bytes.Equal(b, e.Body) {
		return nil, malformed(st, "body is not in canonical form")
	}
	return st, nil
}

// Encode returns the canonical body of st. It refuses (ErrMalformed) a
// statement Decode would refuse.
func Encode(st *Statement) ([]byte, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, malformed(st, "%v", err)
	}
	if len(b) > MaxStatement {
		return nil, malformed(st, "body is %d bytes, more than %d", len(b), MaxStatement)
	}
	return b, nil
}

// check validates everything a statement says on its own, without the
// state: common fields, the type's shape and every field's form.
func (st *Statement) check() error {
	if st.V != Version {
		return malformed(st, "version %d, want %d", st.V, Version)
	}
	sh, ok := shapes[st.Type]
	if !ok {
		return malformed(nil, "statement %d: unknown type %.40q", st.Seq, st.Type)
	}
	if !validID(st.Org) {
		return malformed(st, "organisation id %.40q is not an id", st.Org)
	}
	if st.Seq == 0 {
		return malformed(st, "seq 0; positions start at 1")
	}
	if len(st.Prev) != chain.Size {
		return malformed(st, "prev is %d bytes, want %d", len(st.Prev), chain.Size)
	}
	if st.Time < 0 {
		return malformed(st, "negative time")
	}
	if st.By != ByRoot && !validID(st.By) {
		return malformed(st, "signer %.40q is neither %q nor an account id", st.By, ByRoot)
	}
	have := st.present()
	if extra := have &^ (sh.required | sh.optional); extra != 0 {
		return malformed(st, "field %q is not used by this type", firstField(extra))
	}
	if missing := sh.required &^ have; missing != 0 {
		return malformed(st, "field %q is missing", firstField(missing))
	}
	return st.checkFields(have)
}

// checkFields checks the form of every optional field st carries.
func (st *Statement) checkFields(have fields) error {
	if have&fName != 0 && !validName(st.Name, st.Type == TypeGroup) {
		if st.Type == TypeGroup {
			return malformed(st, "group name must be 1..%d bytes of UTF-8 without ':'", MaxName)
		}
		return malformed(st, "name must be 1..%d bytes of UTF-8", MaxName)
	}
	if have&fRoot != 0 {
		if _, err := sign.ParsePublicKey(st.Root); err != nil {
			return malformed(st, "root key: %v", err)
		}
	}
	if have&fIdentity != 0 {
		if _, err := sign.ParsePublicKey(st.Identity); err != nil {
			return malformed(st, "identity key: %v", err)
		}
	}
	if have&fEncryption != 0 {
		if _, err := pke.ParsePublicKey(st.Encryption); err != nil {
			return malformed(st, "encryption key: %v", err)
		}
	}
	if have&fPublic != 0 {
		if _, err := sign.ParsePublicKey(st.Public); err != nil {
			return malformed(st, "device key: %v", err)
		}
	}
	for _, f := range []struct {
		bit  fields
		name string
		v    string
	}{{fAccount, "account", st.Account}, {fDevice, "device", st.Device}, {fVault, "vault", st.Vault}} {
		if have&f.bit != 0 && !validID(f.v) {
			return malformed(st, "%s %.40q is not an id", f.name, f.v)
		}
	}
	if have&fEmail != 0 && !validEmail(st.Email) {
		return malformed(st, "e-mail address %.60q is not a lower-case address of at most %d bytes", st.Email, maxEmail)
	}
	if have&fRole != 0 && st.Role != Owner && st.Role != Admin && st.Role != Member {
		return malformed(st, "unknown role %.20q", st.Role)
	}
	for i, m := range st.Members {
		if !validID(m) {
			return malformed(st, "group member %.40q is not an account id", m)
		}
		if i > 0 && st.Members[i-1] >= m {
			return malformed(st, "group members are not sorted and unique")
		}
	}
	if have&fSubject != 0 {
		if name, ok := strings.CutPrefix(st.Subject, GroupPrefix); ok {
			if !validName(name, true) {
				return malformed(st, "subject %.60q does not name a group", st.Subject)
			}
		} else if !validID(st.Subject) {
			return malformed(st, "subject %.60q is neither an account id nor %q+name", st.Subject, GroupPrefix)
		}
	}
	if have&fAccess != 0 && st.Access.Rank() <= 0 {
		return malformed(st, "unknown access %.20q", st.Access)
	}
	for v := range st.Heads {
		if !validID(v) {
			return malformed(st, "heads name %.40q, which is not a vault id", v)
		}
	}
	return nil
}

// validName reports whether s is 1..MaxName bytes of UTF-8; group names
// also have no ':'. Names are kept as signed: whoever displays one
// sanitises it.
func validName(s string, group bool) bool {
	return s != "" && len(s) <= MaxName && utf8.ValidString(s) && !(group && strings.Contains(s, ":"))
}

// validEmail reports whether s is an address as the server keeps them:
// lower-case, at most maxEmail bytes, one '@' with something on both
// sides, printable, no space.
func validEmail(s string) bool {
	if len(s) < 3 || len(s) > maxEmail || !utf8.ValidString(s) || strings.ToLower(s) != s {
		return false
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
