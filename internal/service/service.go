// Package service is the vault's request protocol on top of the agent
// transport: the operations a `safe` command asks of the unlock agent, their
// arguments and results, the agent-side Handler that runs them on an open
// vault, and the typed Client the command line uses.
//
// Every op, its arguments and its result are documented in docs/design.md
// ("Agent operations"). Passwords and recovery keys travel as JSON byte
// strings (base64) so that both ends hold them in []byte and can wipe them.
package service

import (
	"errors"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vault"
)

// Op names.
const (
	OpInfo            = "info"
	OpUnlock          = "unlock"
	OpRecover         = "recover"
	OpPasswd          = "passwd"
	OpLock            = "lock"
	OpStop            = "stop"
	OpAdd             = "add"
	OpGet             = "get"
	OpList            = "list"
	OpFind            = "find"
	OpUpdate          = "update"
	OpTrash           = "trash"
	OpRestore         = "restore"
	OpPurge           = "purge"
	OpEmptyTrash      = "empty_trash"
	OpHistory         = "history"
	OpRestoreRevision = "restore_revision"
	OpVerify          = "verify"
	OpAttach          = "attach"
	OpReadAttachment  = "read_attachment"
	OpDetach          = "detach"
)

// PassiveOps do not keep an idle agent awake: asking for status must not
// stop the idle lock. (Lock is not passive: it re-arms the timer, so a
// locked agent still stops after the idle timeout.)
var PassiveOps = []string{OpInfo, OpStop}

// Info describes the agent and its vault.
type Info struct {
	PID             int        `json:"pid"`
	Unlocked        bool       `json:"unlocked"`
	VaultPath       string     `json:"vault_path"`
	Account         string     `json:"account"`
	InsecureTestKDF bool       `json:"insecure_test_kdf"`
	KDF             kdf.Params `json:"kdf"`
	Items           int        `json:"items"`   // with InfoArgs.Counts
	Trashed         int        `json:"trashed"` // with InfoArgs.Counts
	IdleTimeout     string     `json:"idle_timeout"`
	LockedMemory    bool       `json:"locked_memory"`
}

// InfoArgs asks for the item counts too (status does; other commands
// don't need them).
type InfoArgs struct {
	Counts bool `json:"counts,omitempty"`
}

// UnlockArgs carries the password.
type UnlockArgs struct {
	Password []byte `json:"password"`
}

// RecoverArgs carries the Recovery Key and the new password.
type RecoverArgs struct {
	RecoveryKey []byte `json:"recovery_key"`
	Password    []byte `json:"password"`
}

// PasswdArgs carries the current and new passwords, and optionally new KDF
// parameters (zero keeps the current ones).
type PasswdArgs struct {
	Old    []byte     `json:"old"`
	New    []byte     `json:"new"`
	Params kdf.Params `json:"params"`
}

// AddArgs carries new items.
type AddArgs struct {
	Items []item.Item `json:"items"`
}

// RefArgs names one item.
type RefArgs struct {
	Ref string `json:"ref"`
}

// ListArgs filters a list. Slim asks for only the fields a table shows
// (vault.Overview.Slim), which halves a long listing.
type ListArgs struct {
	Filter vault.Filter `json:"filter"`
	Slim   bool         `json:"slim,omitempty"`
}

// FindArgs is a search.
type FindArgs struct {
	Query  string       `json:"query"`
	Filter vault.Filter `json:"filter"`
}

// UpdateArgs replaces an item, if it is still at Base.
type UpdateArgs struct {
	Ref  string    `json:"ref"`
	Base uint64    `json:"base"`
	Item item.Item `json:"item"`
}

// RevisionArgs names one revision of an item.
type RevisionArgs struct {
	Ref      string `json:"ref"`
	Revision uint64 `json:"revision"`
}

// AttachArgs names an attachment; the data travels as a passed file.
type AttachArgs struct {
	Ref  string `json:"ref"`
	Name string `json:"name"`
}

// Count is a number of things done.
type Count struct {
	N int64 `json:"n"`
}

// Error codes the handler returns; the CLI maps them to exit codes.
const (
	CodeWrongPassword = "wrong_password"
	CodeLocked        = "locked"
	CodeNotFound      = "not_found"
	CodeAmbiguous     = "ambiguous"
	CodeTampered      = "tampered"
	CodeConflict      = "conflict"
	CodeInsecureKDF   = "insecure_kdf"
	CodeNoVault       = "no_vault"
	CodeRecoveryKey   = "recovery_key"
	CodeInvalid       = "invalid"
	CodeNotInTrash    = "not_in_trash"
	CodeNewerFormat   = "newer_format"
	CodeStalled       = "stalled"
)

// codes maps vault errors to codes and hints.
var codes = []struct {
	err  error
	code string
	hint string
}{
	{vault.ErrWrongPassword, CodeWrongPassword, "check the password; a forgotten password can be replaced with `safe recover`"},
	{vault.ErrLocked, CodeLocked, "run `safe unlock`"},
	{vault.ErrAmbiguous, CodeAmbiguous, "use the item id (or a longer part of the title)"},
	{vault.ErrNotFound, CodeNotFound, "`safe find WORDS` searches titles, usernames, URLs and tags"},
	{vault.ErrTampered, CodeTampered, "the vault file was changed outside safe: `safe verify --password-file FILE` lists every problem, even while it cannot be unlocked; restore the file from a backup"},
	{vault.ErrConflict, CodeConflict, "read the item again and redo the edit"},
	{vault.ErrInsecureKDF, CodeInsecureKDF, "this vault was made for tests; set SAFE_INSECURE_TEST_KDF=1 to open it"},
	{vault.ErrNoVault, CodeNoVault, "run `safe init` to create a vault"},
	{vault.ErrRecoveryKey, CodeRecoveryKey, "type the Recovery Key exactly as printed when the vault was made"},
	{vault.ErrNotInTrash, CodeNotInTrash, "move it to the trash first with `safe rm`"},
	{vault.ErrNewerFormat, CodeNewerFormat, "upgrade safe to a version that knows this vault format; it never falls back to an older one"},
	{store.ErrTooNew, CodeNewerFormat, "upgrade safe to a version that knows this vault format"},
	{item.ErrInvalid, CodeInvalid, "fix the item and try again"},
	{ErrStalled, CodeStalled, "keep the transfer moving (read the output, or attach from a file)"},
	{item.ErrNoField, CodeNotFound, "`safe get NAME` lists the item's fields"},
}

// toAgentError turns an engine error into the error object sent back.
func toAgentError(err error) error {
	var ae *agent.Error
	if errors.As(err, &ae) {
		return ae
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &agent.Error{Code: c.code, Message: err.Error(), Hint: c.hint}
		}
	}
	if errors.Is(err, kdf.ErrBelowFloor) || errors.Is(err, kdf.ErrAboveCeiling) {
		return &agent.Error{Code: CodeInvalid, Message: err.Error(), Hint: "choose parameters between the floors and ceilings shown by `safe kdf show`"}
	}
	if ae := remoteRefused(err); ae != nil {
		return ae
	}
	return err
}
