// Package remote defines what a client syncs with: a Remote stores one
// account's KDF header, account document, vault records, vault logs and
// attachment blobs, and is trusted for none of them. Two implementations
// exist: remote/httpremote (a `safe serve` server over pinned TLS) and
// remote/folder (a plain directory: a NAS, Dropbox or Syncthing folder).
// Both pass one conformance suite, remote/remotetest.
//
// The contract describes honest behaviour. The client (package vault)
// verifies everything a Remote returns, so a Remote that lies is detected;
// a Remote's own checks are a second line only.
package remote

import (
	"context"
	"errors"
	"iter"

	"github.com/safehold/safehold/internal/api"
)

// Errors, matched with errors.Is.
var (
	// ErrStale: a write's base is not the remote's current state; pull,
	// merge and retry.
	ErrStale = errors.New("the remote changed since the last sync")
	// ErrNotFound: the account, vault or blob does not exist there.
	ErrNotFound = errors.New("not found on the remote")
	// ErrExists: register: the account or address already exists.
	ErrExists = errors.New("already exists on the remote")
	// ErrAuth: the credentials or the session were refused (log in again).
	ErrAuth = errors.New("the remote refused the login or session")
	// ErrTOTPRequired: the account has two-factor authentication.
	ErrTOTPRequired = errors.New("a two-factor code is required")
	// ErrRefused: the remote refused entries as breaking the log's rules
	// (an honest remote never does this to an honest client).
	ErrRefused = errors.New("the remote refused the entries")
	// ErrForbidden: the caller has no access (a shared vault or an
	// organisation it is not, or no longer, a member of).
	ErrForbidden = errors.New("the remote refused access")
	// ErrUnavailable: the remote cannot be reached now (offline); writes
	// stay queued.
	ErrUnavailable = errors.New("the remote is unreachable")
)

// ConditionalAccount is an optional capability of a Remote: the account
// without its document when the caller already has the current epoch's.
// A Remote that fetches cheaply (a folder) need not offer it.
type ConditionalAccount interface {
	AccountIfChanged(ctx context.Context, known uint64) (api.Account, error)
}

// Remote is one place an account syncs with. Methods are safe for
// concurrent use. Every method may return ErrUnavailable.
type Remote interface {
	// Prelogin returns the account's 80-byte KDF header.
	Prelogin(ctx context.Context, email string) ([]byte, error)
	// Register creates the account with its first document (epoch 1) and
	// first device, and logs that device in. ErrExists if taken.
	Register(ctx context.Context, r api.RegisterRequest) error
	// Login logs a device in (a folder checks nothing: it has no server).
	Login(ctx context.Context, r api.LoginRequest) error

	// Account returns the account's KDF header, document and epoch.
	Account(ctx context.Context) (api.Account, error)
	// UpdateAccount replaces the document if u.Base is the current epoch,
	// returning the new epoch (u.Base+1); ErrStale otherwise.
	UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error)

	// Vaults lists the account's vaults with their heads.
	Vaults(ctx context.Context) ([]api.Vault, error)
	// PutVault creates a vault or replaces its record.
	PutVault(ctx context.Context, vault string, record []byte) error

	// Pull returns entries after `since` (at most api.MaxPageLimit) and
	// the remote's head. A head below since is the remote's to report:
	// the caller detects the rollback.
	Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error)
	// Push appends entries base+1.. if base is the head, returning the new
	// head; ErrStale otherwise. All or nothing for one call.
	Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error)

	// PutBlob uploads an attachment's sealed chunks.
	PutBlob(ctx context.Context, vault, item, blob string, chunks iter.Seq2[[]byte, error]) error
	// GetBlob calls fn with each sealed chunk in order; ErrNotFound if
	// absent.
	GetBlob(ctx context.Context, vault, item, blob string, fn func(idx int, chunk []byte) error) error

	// Close releases connections.
	Close() error
}

// Orgs is the optional capability of a Remote that hosts organisations and
// shared vaults (a server; a folder does not). Shared vaults' logs and blobs
// go through the Remote's Pull, Push, PutBlob and GetBlob by vault id; the
// remote checks the caller's access (ErrForbidden).
type Orgs interface {
	// Orgs lists the organisations the account belongs to or is invited
	// to.
	Orgs(ctx context.Context) ([]api.Org, error)
	// CreateOrg creates an organisation with its first statements,
	// returning the head; ErrExists if the id is taken.
	CreateOrg(ctx context.Context, org string, entries []api.OrgEntry) (uint64, error)
	// PullOrg returns statements after since (at most api.MaxPageLimit)
	// and the head.
	PullOrg(ctx context.Context, org string, since uint64) (api.OrgLogPage, error)
	// PushOrg appends statements base+1.. if base is the head, returning
	// the new head; ErrStale otherwise, ErrRefused if the remote's own
	// replay refuses them.
	PushOrg(ctx context.Context, org string, base uint64, entries []api.OrgEntry) (uint64, error)
	// OrgVaults lists the organisation's shared vaults the caller may read,
	// with their heads (Record empty).
	OrgVaults(ctx context.Context, org string) ([]api.Vault, error)
	// PutOrgVault creates the shared vault's log (genesis head) once the
	// log names the vault.
	PutOrgVault(ctx context.Context, org, vault string) error
	// DeleteOrg dissolves the organisation (an owner only).
	DeleteOrg(ctx context.Context, org string) error
}
