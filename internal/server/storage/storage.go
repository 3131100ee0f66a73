// Package storage is the server's persistence: one small interface, Store,
// with two implementations (storage/sqlite, the embedded default, and
// storage/postgres) that pass one conformance suite (storage/storagetest).
//
// The store holds only what the server may know: account ids, e-mail
// addresses, KDF headers, hashes of login keys and tokens, opaque account
// documents and vault records, log entries, payload and attachment
// ciphertexts, device ids and platforms, and login history. It never
// interprets a ciphertext. All rules about what may be appended are the
// server's (package server); the store gives it the atomicity it needs:
// Append is a compare-and-swap on the vault's head, AppendOrg on the
// organisation's.
package storage

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Errors, matched with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrStale    = errors.New("stale: the base is not the current state")
)

// Account is one registered account.
type Account struct {
	ID       string
	Email    string // lower-cased, trimmed
	KDF      []byte // 80-byte KDF header
	Verifier []byte // encoded hash of the login key (package server decides the format)
	Epoch    uint64 // account document epoch, from 1
	Document []byte
	Created  time.Time
	Disabled bool
	// Two-factor state. TOTPSecret is set by SetTOTP; TOTPEnabled only once
	// confirmed.
	TOTPSecret  string
	TOTPEnabled bool
}

// Credentials replace an account's KDF header and login-key verifier.
type Credentials struct {
	KDF      []byte
	Verifier []byte
}

// Device is one device of an account as the server sees it.
type Device struct {
	Account  string
	ID       string
	Platform string
	Created  time.Time
	LastSeen time.Time
	Revoked  time.Time // zero while active
}

// Session is one token. Only the SHA-256 hash of the token is stored.
type Session struct {
	Hash    []byte // 32 bytes
	Kind    string // "access" or "refresh"
	Account string
	Device  string
	Created time.Time
	Expires time.Time
	// Pair links an access token and the refresh token issued with it, so
	// that logout and refresh end both. It holds the other session's Hash
	// (or an id both sessions share; stores accept either).
	Pair []byte
}

// LoginEvent is one login attempt, kept for the account's history.
type LoginEvent struct {
	Account string
	Time    time.Time
	Device  string
	Address string
	OK      bool
	Reason  string
}

// Throttle is the failure state of one rate-limit key ("acct:ID" or
// "addr:IP").
type Throttle struct {
	Failures int
	Until    time.Time // no attempt before this time
}

// VaultRow is one vault of an account, or a shared vault of an
// organisation (Org set, Account empty).
type VaultRow struct {
	Vault    string
	Account  string
	Org      string
	Record   []byte
	Head     uint64
	HeadHash []byte // 64-byte chain hash after the head entry
}

// ItemState is what the log says of an item: its latest revision and
// whether that entry purged it.
type ItemState struct {
	Revision uint64
	Purged   bool
}

// Entry is one stored log entry. Op, Item and Revision are copies of what
// the body says (the server decodes the body before appending).
type Entry struct {
	Seq      uint64
	Op       byte // 1 put, 2 purge
	Item     string
	Revision uint64
	Body     []byte
	Sig      []byte
	Payload  []byte // nil for a purge, and for a put whose item was purged since
}

// OrgRow is one organisation: its log head.
type OrgRow struct {
	Org      string
	Head     uint64
	HeadHash []byte // 64-byte chain hash after the head statement
	Created  time.Time
}

// OrgEntry is one stored organisation statement (body and signature, as
// the client signed them).
type OrgEntry struct {
	Seq  uint64
	Body []byte
	Sig  []byte
}

// OrgIndex names who may see an organisation, as the server's replay of
// its log says: one row per member or pending invitation. Email is
// lower-cased; Account is empty for an invitation not yet accepted.
type OrgIndex struct {
	Account string
	Email   string
	State   string // "invited", "accepted", "active"
}

// OrgRef is one organisation an account or address appears in.
type OrgRef struct {
	Org   string
	Head  uint64
	State string
}

// Usage is what an account stores.
type Usage struct {
	Vaults   int       `json:"vaults"`
	Entries  int64     `json:"entries"`
	Bytes    int64     `json:"bytes"` // documents, records, entries, payloads and blobs
	Devices  int       `json:"devices"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// AccountSummary is one line of `safe admin users`.
type AccountSummary struct {
	Account Account
	Usage   Usage
}

// Store is the server's persistence. Every method is safe for concurrent
// use by many goroutines and by several server processes sharing one
// database (PostgreSQL), or one file (SQLite, one host).
//
// Further rules every implementation keeps (storagetest checks them):
//   - Times are kept to the microsecond and read back in UTC; the zero
//     time (Device.Revoked) stays zero.
//   - A method that names one account, device, vault or blob which does
//     not exist returns ErrNotFound: AccountBy*, UpdateDocument, SetTOTP,
//     SetDisabled, DeleteAccount, Usage, Device, RevokeDevice, Vault,
//     ItemStates, Append, Entries, PutBlob (unknown vault) and Blob, Org,
//     AppendOrg, OrgEntries, DeleteOrg and PutOrgVault (unknown
//     organisation). So do UpsertDevice, CreateSession, RecordLogin and
//     PutVault for an unknown account. Listing methods (Devices, Logins,
//     Vaults, OrgsFor, OrgVaults) return nothing for an unknown account or
//     organisation; UseRecoveryCode returns false; DeleteSession of an
//     unknown token does nothing.
//   - Append's entries and AppendOrg's statements are numbered base+1,
//     base+2, ..., and CreateOrg's 1, 2, ... (at least one; an error
//     otherwise, not ErrStale); Entries, OrgEntries and Logins want
//     limit >= 1.
//   - A shared vault (VaultRow.Org set) is no account's: Vaults, Usage and
//     Accounts leave it out, DeleteAccount leaves it alone, and PutVault
//     refuses its id (ErrExists). The methods that name a vault by id
//     work on it as on an account's vault.
//   - An entry's Payload and a blob's chunks are copied: the caller may
//     reuse its buffers once the method returns or the iterator resumes.
type Store interface {
	Close() error

	// Secret returns the server's 32-byte secret, creating it on first use
	// (exactly one value wins when several processes race).
	Secret(ctx context.Context) ([]byte, error)

	// CreateAccount stores a new account (Epoch 1) and its first device.
	// ErrExists if the id or the e-mail address is taken.
	CreateAccount(ctx context.Context, a Account, d Device) error
	AccountByEmail(ctx context.Context, email string) (Account, error)
	AccountByID(ctx context.Context, id string) (Account, error)
	// UpdateDocument replaces the document if the epoch is base (the new
	// epoch is base+1, returned); ErrStale otherwise. With cred, the KDF
	// header and verifier change in the same transaction.
	UpdateDocument(ctx context.Context, id string, base uint64, doc []byte, cred *Credentials) (uint64, error)
	// SetTOTP stores the TOTP secret and whether it is enabled, and
	// replaces the recovery-code hashes (nil clears them).
	SetTOTP(ctx context.Context, id, secret string, enabled bool, recoveryHashes [][]byte) error
	// UseRecoveryCode deletes a recovery-code hash if present and reports
	// whether it was (each code works once, even under concurrency).
	UseRecoveryCode(ctx context.Context, id string, hash []byte) (bool, error)
	SetDisabled(ctx context.Context, id string, disabled bool) error
	// DeleteAccount removes the account and everything it owns.
	DeleteAccount(ctx context.Context, id string) error
	Accounts(ctx context.Context) ([]AccountSummary, error)
	Usage(ctx context.Context, id string) (Usage, error)

	// UpsertDevice adds a device or updates its platform and LastSeen. A
	// revoked device stays revoked (ErrForbidden is the server's to say).
	UpsertDevice(ctx context.Context, d Device) error
	Device(ctx context.Context, account, id string) (Device, error)
	Devices(ctx context.Context, account string) ([]Device, error)
	// RevokeDevice marks the device revoked and deletes its sessions.
	RevokeDevice(ctx context.Context, account, id string, at time.Time) error

	CreateSession(ctx context.Context, s Session) error
	// Session finds an unexpired session by token hash; ErrNotFound
	// otherwise.
	Session(ctx context.Context, hash []byte, now time.Time) (Session, error)
	// DeleteSession deletes a session and its pair, and reports whether
	// this call deleted them (of concurrent calls for one token, exactly
	// one reports true: a refresh token works once).
	DeleteSession(ctx context.Context, hash []byte) (bool, error)
	// DeleteSessions deletes every session of the account (all devices).
	DeleteSessions(ctx context.Context, account string) error

	RecordLogin(ctx context.Context, e LoginEvent) error
	Logins(ctx context.Context, account string, limit int) ([]LoginEvent, error)

	// Throttle returns a key's failure state (zero if none).
	Throttle(ctx context.Context, key string) (Throttle, error)
	// Fail increments a key's failures and sets Until to now+backoff(n),
	// atomically, returning the new state.
	Fail(ctx context.Context, key string, now time.Time, backoff func(failures int) time.Duration) (Throttle, error)
	// ClearThrottle forgets a key's failures.
	ClearThrottle(ctx context.Context, key string) error

	// PutVault creates a vault (head 0, the given genesis hash) or, if it
	// exists and belongs to the account, replaces its record. ErrExists if
	// it belongs to another account.
	PutVault(ctx context.Context, account, vault string, record, genesis []byte) error
	Vaults(ctx context.Context, account string) ([]VaultRow, error)
	Vault(ctx context.Context, vault string) (VaultRow, error)
	// ItemStates returns the state of the named items (absent: never
	// written).
	ItemStates(ctx context.Context, vault string, items []string) (map[string]ItemState, error)
	// Append adds entries base+1.. and moves the head to (last seq,
	// headHash), atomically, if the head is still base; ErrStale
	// otherwise. A purge entry also deletes the payloads and blobs of its
	// item.
	Append(ctx context.Context, vault string, base uint64, entries []Entry, headHash []byte) error
	// Entries calls fn for entries after `since`, in order, at most limit.
	Entries(ctx context.Context, vault string, since uint64, limit int, fn func(Entry) error) error

	// PutBlob stores an attachment's sealed chunks, read from chunks until
	// it yields an error or ends, replacing any earlier upload of the same
	// blob, atomically: on error nothing of this upload remains.
	PutBlob(ctx context.Context, vault, item, blob string, chunks iter.Seq2[[]byte, error]) error
	// Blob calls fn for each chunk in order; ErrNotFound if absent.
	Blob(ctx context.Context, vault, item, blob string, fn func(idx int, chunk []byte) error) error

	// CreateOrg stores a new organisation with its first statements
	// (numbered 1..n), its head hash and its index; ErrExists if the id is
	// taken.
	CreateOrg(ctx context.Context, org string, entries []OrgEntry, headHash []byte, index []OrgIndex) error
	// AppendOrg adds statements base+1.. , moves the head and replaces
	// the index, atomically, if the head is still base; ErrStale
	// otherwise; ErrNotFound for an unknown organisation.
	AppendOrg(ctx context.Context, org string, base uint64, entries []OrgEntry, headHash []byte, index []OrgIndex) error
	Org(ctx context.Context, org string) (OrgRow, error)
	// OrgEntries calls fn for statements after since, in order, at most
	// limit (limit >= 1).
	OrgEntries(ctx context.Context, org string, since uint64, limit int, fn func(OrgEntry) error) error
	// OrgsFor lists the organisations whose index names the account id or
	// the e-mail address (an index row matches on either; addresses
	// compare lower-cased; an empty argument matches nothing), sorted by
	// id, each once with the best state it has there (active, then
	// accepted, then invited).
	OrgsFor(ctx context.Context, account, email string) ([]OrgRef, error)
	// DeleteOrg removes the organisation, its statements, index and
	// shared vaults (with their logs, payloads and blobs).
	DeleteOrg(ctx context.Context, org string) error
	// PutOrgVault creates a shared vault of the organisation (head 0, the
	// given genesis hash, empty record); nothing if it exists in the same
	// organisation; ErrExists if the id is any other vault's;
	// ErrNotFound for an unknown organisation.
	PutOrgVault(ctx context.Context, org, vault string, genesis []byte) error
	// OrgVaults lists the organisation's shared vaults.
	OrgVaults(ctx context.Context, org string) ([]VaultRow, error)
}
