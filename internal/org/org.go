// Package org is an organisation's graph of trust: a signed, hash-chained
// log of statements (docs/design.md §14) and the state it implies. It does
// no I/O. The client (package vault) replays an organisation's log from a
// pinned root key before it encrypts anything to anyone or believes any
// role; the server (package server) replays the same log with the same code
// to enforce roles as a second line.
//
// Who may sign what:
//   - the root key signs the genesis statement and the certificates of
//     owners and administrators, and removes them;
//   - administrators (and owners) sign invitations, member certificates,
//     groups, vaults, grants and key wraps, and remove members;
//   - a member with the manage role on a vault signs grants and key wraps
//     for that vault;
//   - an invitee signs its own acceptance (with the identity key it
//     presents); a member signs its own device certificates.
//
// No statement names a new root key, so nobody can sign one.
package org

import (
	"errors"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/sign"
)

// Version is the statement format version (Statement.V).
const Version = 1

// Limits.
const (
	MaxStatement = 64 << 10 // bytes of one statement body
	MaxSig       = 8192     // bytes of one signature
	MaxName      = 200      // bytes of an organisation or group name
	MaxEntries   = 1 << 20  // statements in one organisation's log
)

// Signature and chain contexts.
const (
	SignContext = "safehold/v1 org-statement"
	ChainDomain = "safehold/v1 org-log"
	IDLabel     = "safehold/v1 org-id"
	MemberLabel = "safehold/v1 org-member"
	ByRoot      = "root" // Statement.By for statements the root key signs
	GroupPrefix = "group:"
	WrapPurpose = "org-vault-key" // envelope.Context.Purpose of a key wrap
	RootPurpose = "org-root-key"  // envelope.Context.Purpose of Genesis.RootSealed
	NamePurpose = "vault-name"    // the vault name, sealed under generation 1
	ItemPurpose = "item"          // (for reference: items use the engine's purposes)
)

// Statement types.
const (
	TypeGenesis      = "genesis"       // root: the organisation exists
	TypeMember       = "member"        // root (owner/admin) or admin (member): certifies keys and org role
	TypeInvite       = "invite"        // admin: an e-mail address may accept
	TypeAccept       = "accept"        // invitee, self-signed: its account id and keys
	TypeRemove       = "remove"        // admin (root for an owner or admin): a member leaves
	TypeDevice       = "device"        // member: one of its own device certificates
	TypeDeviceRevoke = "device-revoke" // member (or admin): a device of that member is revoked
	TypeGroup        = "group"         // admin: a group and its full member list
	TypeVault        = "vault"         // admin: a shared vault exists
	TypeGrant        = "grant"         // admin or vault manager: subject's access to a vault ("" revokes)
	TypeKey          = "key"           // admin or vault manager: a vault key generation wrapped to a member
)

// Role is a member's role in the organisation.
type Role string

const (
	Owner  Role = "owner"
	Admin  Role = "admin"
	Member Role = "member"
)

// Access is a subject's role on a shared vault, ordered None < Read <
// Write < Manage.
type Access string

const (
	None   Access = ""
	Read   Access = "read"
	Write  Access = "write"
	Manage Access = "manage"
)

// Rank orders accesses: None 0, Read 1, Write 2, Manage 3, anything else -1.
func (a Access) Rank() int {
	switch a {
	case None:
		return 0
	case Read:
		return 1
	case Write:
		return 2
	case Manage:
		return 3
	}
	return -1
}

// Member states.
const (
	StateInvited  = "invited"  // an invitation names the address; no acceptance yet
	StateAccepted = "accepted" // accepted; waiting for an administrator to confirm
	StateActive   = "active"   // certified
	StateRemoved  = "removed"
)

// Errors, matched with errors.Is. Every refusal wraps ErrRefused and says
// which statement (seq) broke which rule.
var (
	ErrMalformed = errors.New("org: malformed statement")
	ErrRefused   = errors.New("org: statement refused")
)

// Statement is one entry's body: canonical JSON (the output of
// encoding/json for this struct; fields omitted when empty), at most
// MaxStatement bytes, re-encoding to the same bytes. Which optional fields a
// type uses is in docs/design.md §14.3; a statement carrying a field its
// type does not use is malformed.
type Statement struct {
	V    int    `json:"v"`
	Org  string `json:"org"`
	Seq  uint64 `json:"seq"`  // from 1
	Prev []byte `json:"prev"` // 64-byte chain hash before this statement
	Time int64  `json:"time"` // Unix milliseconds, the signer's clock
	Type string `json:"type"`
	By   string `json:"by"` // ByRoot or the signer's account id

	Name       string            `json:"name,omitempty"`        // genesis: org name; group: group name
	Root       []byte            `json:"root,omitempty"`        // genesis: root sign public key
	RootSealed []byte            `json:"root_sealed,omitempty"` // genesis: root private key, pke-sealed to the creator
	Account    string            `json:"account,omitempty"`     // genesis: creator; member, accept, remove, device, device-revoke, key (recipient)
	Email      string            `json:"email,omitempty"`       // member, invite, accept
	Identity   []byte            `json:"identity,omitempty"`    // member, accept: sign public key
	Encryption []byte            `json:"encryption,omitempty"`  // member, accept: pke public key
	Role       Role              `json:"role,omitempty"`        // member
	Device     string            `json:"device,omitempty"`      // device, device-revoke
	Public     []byte            `json:"public,omitempty"`      // device: device sign public key
	Cert       []byte            `json:"cert,omitempty"`        // device: certificate by the member's identity key (design §2.3)
	Members    []string          `json:"members,omitempty"`     // group: account ids, sorted, unique
	Vault      string            `json:"vault,omitempty"`       // vault, grant, key
	SealedName []byte            `json:"sealed_name,omitempty"` // vault: name sealed under generation 1
	Subject    string            `json:"subject,omitempty"`     // grant: account id or "group:NAME"
	Access     Access            `json:"access,omitempty"`      // grant: "" revokes
	Gen        uint32            `json:"gen,omitempty"`         // key: key generation, from 1
	Wrapped    []byte            `json:"wrapped,omitempty"`     // key: the vault key pke-sealed to the recipient
	Heads      map[string]uint64 `json:"heads,omitempty"`       // remove, grant, device-revoke, member, group: vault log heads when it took effect (required for every vault where someone loses write)
}

// Entry is one signed statement.
type Entry struct {
	Body []byte `json:"body"` // canonical JSON of a Statement
	Sig  []byte `json:"sig"`  // hybrid signature over Body, context SignContext
}

// MemberInfo is one member as the log describes it.
type MemberInfo struct {
	Account    string
	Email      string
	Identity   []byte            // sign public key (accept, then certificate)
	Encryption []byte            // pke public key
	Role       Role              // "" until certified
	State      string            // StateInvited, StateAccepted, StateActive, StateRemoved
	Devices    map[string][]byte // device id → device sign public key (certified by Identity)
	Revoked    map[string]bool   // revoked device ids
	// RemovedAt maps vault → the vault log head when the member lost
	// write access there (removal, downgrade or revocation); entries after
	// it written by this member are refused.
	RemovedAt map[string]uint64
	// RevokedAt maps a revoked device → vault → the vault log head when it
	// was revoked (the device-revoke statement's Heads, for the vaults
	// where the member could write then); entries after it written by
	// that device are refused, entries at or before it stand.
	RevokedAt map[string]map[string]uint64
}

// VaultInfo is one shared vault as the log describes it.
type VaultInfo struct {
	ID         string
	SealedName []byte
	Created    int64             // Statement.Time of the vault statement
	Grants     map[string]Access // subject (account id or "group:NAME") → access
	Gen        uint32            // the newest key generation
	// Keys maps recipient account → generation → wrapped key, from key
	// statements whose signer was authorised when it signed.
	Keys map[string]map[uint32][]byte
	// KeyBy maps recipient → generation → who signed that wrap.
	KeyBy map[string]map[uint32]string
	// Rotate is true when someone lost access (removal, revocation,
	// downgrade to none, device revocation) after generation Gen was made:
	// a manager must make generation Gen+1 before anyone writes.
	Rotate bool
}

// State is what an organisation's log says after its last statement.
type State struct {
	Org        string
	Name       string // as signed; sanitise before display
	Root       *sign.PublicKey
	RootSealed []byte
	Creator    string
	Created    int64
	Seq        uint64
	Head       chain.Hash
	Members    map[string]*MemberInfo // by account id
	Invites    map[string]string      // e-mail (lower-case) → inviter account id, for pending invitations
	Groups     map[string][]string    // group name → member account ids
	Vaults     map[string]*VaultInfo
}
