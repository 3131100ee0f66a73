package service

import (
	"context"
	"errors"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/vault"
)

// Organisation and shared-vault ops (docs/design.md §8.11): one per engine
// method. Those marked "progress" send progress frames (§8.6) while they
// re-encrypt a vault after a rotation.
const (
	OpIdentity     = "identity"
	OpOrgCreate    = "org_create"
	OpOrgs         = "orgs"
	OpOrgShow      = "org_show"
	OpOrgDelete    = "org_delete"
	OpOrgInvite    = "org_invite"
	OpOrgAccept    = "org_accept"
	OpOrgConfirm   = "org_confirm"
	OpOrgMembers   = "org_members"
	OpOrgRemove    = "org_remove" // progress
	OpOrgSetRole   = "org_set_role"
	OpGroupCreate  = "group_create"
	OpGroupAdd     = "group_add"
	OpGroupRemove  = "group_remove" // progress
	OpVaultCreate  = "vault_create"
	OpVaults       = "vaults"
	OpVaultShare   = "vault_share"
	OpVaultUnshare = "vault_unshare" // progress
	OpVaultMembers = "vault_members"
	OpMove         = "move"
	OpCopy         = "copy"
	OpAddTo        = "add_to"
	OpResolveIn    = "resolve_in"
)

// ProgressOps are the ops that send progress frames.
var ProgressOps = []string{OpOrgRemove, OpGroupRemove, OpVaultUnshare, OpDeviceRevoke, OpAudit}

// Error codes of organisation ops.
const (
	// CodeOrgFingerprint: a typed fingerprint does not match the key it
	// names (vault.ErrFingerprint); nothing was pinned or certified.
	CodeOrgFingerprint = "org_fingerprint"
	// CodeNotAllowed: the account's role does not allow the operation
	// (vault.ErrNotAllowed), or the server refused access to an
	// organisation or shared vault (remote.ErrForbidden).
	CodeNotAllowed = "not_allowed"
	// CodeNoOrg: no organisation, invitation, member, group or vault by
	// that name (vault.ErrNoOrg).
	CodeNoOrg = "no_org"
	// CodeNoOrgs: the remote does not host organisations (a folder).
	CodeNoOrgs = "no_orgs"
	// CodeOrgRefused: any other reason the engine gives for not doing an
	// organisation operation (a group that exists, a member who has not
	// accepted yet, a name that matches two organisations...); the
	// message says which.
	CodeOrgRefused = "org_refused"
)

func init() {
	codes = append(codes, []struct {
		err  error
		code string
		hint string
	}{
		{vault.ErrFingerprint, CodeOrgFingerprint, "nothing was pinned or certified: compare the code again with the other person over a channel you trust (in person, by phone); a different code can mean that the server substitutes keys"},
		{vault.ErrNotAllowed, CodeNotAllowed, "ask an owner or administrator of the organisation (or a manager of the vault)"},
		{vault.ErrRotationPending, CodeNotAllowed, "writing waits until the vault's key changes: a manager of the vault runs `safe sync` (it rotates the key), then you run `safe sync`"},
		{remote.ErrForbidden, CodeNotAllowed, "the server refused access: you may have been removed from the organisation or the vault; ask one of its administrators"},
		{vault.ErrNoOrg, CodeNoOrg, "`safe org ls` lists your organisations and invitations, `safe org members ORG` their members, `safe vault ls` your vaults"},
		{vault.ErrNoOrgs, CodeNoOrgs, "organisations live on a `safe serve` server: register the account there"},
	}...)
}

// Identity is this account's identity code.
type Identity struct {
	Fingerprint string `json:"fingerprint"`
}

// OrgArgs names an organisation (id, id prefix or name).
type OrgArgs struct {
	Org string `json:"org"`
}

// NameArgs names something new.
type NameArgs struct {
	Name string `json:"name"`
}

// MemberArgs names a member (or invitee) of an organisation by e-mail
// address.
type MemberArgs struct {
	Org   string `json:"org"`
	Email string `json:"email"`
}

// AcceptArgs accepts an invitation: Fingerprint is the organisation's root
// code as the inviter sees it.
type AcceptArgs struct {
	Org         string `json:"org"`
	Fingerprint string `json:"fingerprint"`
}

// ConfirmArgs certifies a member: Fingerprint is the member's identity
// code as the member sees it.
type ConfirmArgs struct {
	Org         string `json:"org"`
	Email       string `json:"email"`
	Fingerprint string `json:"fingerprint"`
}

// RoleArgs changes a member's role.
type RoleArgs struct {
	Org   string `json:"org"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// GroupArgs names a group, and for add and remove a member.
type GroupArgs struct {
	Org   string `json:"org"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// VaultCreateArgs makes a vault: personal without Org.
type VaultCreateArgs struct {
	Name string `json:"name"`
	Org  string `json:"org,omitempty"`
}

// VaultArgs names a vault (id, id prefix or name).
type VaultArgs struct {
	Vault string `json:"vault"`
}

// ShareArgs grants (share) or removes (unshare, without Access) a
// subject's access to a shared vault. Subject is an e-mail address or
// "group:NAME".
type ShareArgs struct {
	Vault   string `json:"vault"`
	Subject string `json:"subject"`
	Access  string `json:"access,omitempty"`
}

// MoveArgs moves or copies an item into a vault.
type MoveArgs struct {
	Ref   string `json:"ref"`
	Vault string `json:"vault"`
}

// AddToArgs adds items to a vault.
type AddToArgs struct {
	Vault string      `json:"vault"`
	Items []item.Item `json:"items"`
	// Import keeps the items' own creation, modification and
	// password-change times (vault.Import).
	Import bool `json:"import,omitempty"`
}

// ResolveArgs finds an item within one vault.
type ResolveArgs struct {
	Vault string `json:"vault"`
	Ref   string `json:"ref"`
}

// ItemID is an item's id.
type ItemID struct {
	ID string `json:"id"`
}

// none is the result of ops that return nothing.
type none = struct{}

// handleOrgs runs the organisation ops; ok is false for an unknown op.
// report, which may be nil, sends progress frames.
func (h *Handler) handleOrgs(ctx context.Context, req agent.Request, report func(done, total int64)) (res any, ok bool, err error) {
	switch req.Op {
	case OpIdentity:
		if !h.V.Unlocked() {
			return nil, true, vault.ErrLocked
		}
		return Identity{Fingerprint: h.V.IdentityFingerprint()}, true, nil
	case OpVaults:
		return orgResult(orEmpty(h.V.Vaults(ctx)))
	case OpMove, OpCopy:
		var a MoveArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		if req.Op == OpMove {
			return orgResult(h.V.MoveItem(ctx, a.Ref, a.Vault))
		}
		return orgResult(h.V.CopyItem(ctx, a.Ref, a.Vault))
	case OpAddTo:
		var a AddToArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		if a.Import {
			return orgResult(h.V.Import(ctx, a.Vault, a.Items))
		}
		return orgResult(h.V.AddTo(ctx, a.Vault, a.Items))
	case OpResolveIn:
		var a ResolveArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		id, err := h.V.ResolveIn(ctx, a.Vault, a.Ref)
		return orgResult(ItemID{ID: id}, err)
	case OpVaultCreate:
		var a VaultCreateArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		if a.Org == "" { // a personal vault needs no remote
			return orgResult(h.V.CreateVault(ctx, nil, a.Name, ""))
		}
	case OpOrgs:
		// Without a remote the list is what this device pinned.
		r, _, err := h.openRemote(ctx)
		if errors.Is(err, vault.ErrNoRemote) {
			return orgResult(orEmpty(h.V.Orgs(ctx, nil)))
		}
		if err != nil {
			return nil, true, err
		}
		defer r.Close()
		return orgResult(orEmpty(h.V.Orgs(ctx, r)))
	}
	fn, known, err := h.orgOp(req, progress(report))
	if !known || err != nil {
		return nil, known, err
	}
	r, _, err := h.openRemote(ctx)
	if err != nil {
		return nil, true, err
	}
	defer r.Close()
	return orgResult(fn(ctx, r))
}

// remoteCall is an organisation op's engine call on the remote.
type remoteCall func(context.Context, remote.Remote) (any, error)

// orgOp decodes the arguments of an op that needs the remote and returns
// the engine call to make with it; known is false for an unknown op.
func (h *Handler) orgOp(req agent.Request, p vault.Progress) (fn remoteCall, known bool, err error) {
	v := h.V
	switch req.Op {
	case OpOrgCreate:
		var a NameArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) { return v.CreateOrg(ctx, r, a.Name) }
	case OpOrgShow:
		var a OrgArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			d, err := v.OrgShow(ctx, r, a.Org)
			d.Groups, d.Members, d.Shared = nonNil(d.Groups), nonNil(d.Members), nonNil(d.Shared)
			return d, err
		}
	case OpOrgDelete:
		var a OrgArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) { return none{}, v.OrgDelete(ctx, r, a.Org) }
	case OpOrgMembers:
		var a OrgArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) { return orEmpty(v.OrgMembers(ctx, r, a.Org)) }
	case OpOrgInvite:
		var a MemberArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.OrgInvite(ctx, r, a.Org, a.Email)
		}
	case OpOrgRemove:
		var a MemberArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.OrgRemove(ctx, r, a.Org, a.Email, p)
		}
	case OpOrgAccept:
		var a AcceptArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return v.OrgAccept(ctx, r, a.Org, a.Fingerprint)
		}
	case OpOrgConfirm:
		var a ConfirmArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.OrgConfirm(ctx, r, a.Org, a.Email, a.Fingerprint)
		}
	case OpOrgSetRole:
		var a RoleArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.OrgSetRole(ctx, r, a.Org, a.Email, a.Role)
		}
	case OpGroupCreate:
		var a GroupArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.GroupCreate(ctx, r, a.Org, a.Name)
		}
	case OpGroupAdd:
		var a GroupArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.GroupAdd(ctx, r, a.Org, a.Name, a.Email)
		}
	case OpGroupRemove:
		var a GroupArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.GroupRemove(ctx, r, a.Org, a.Name, a.Email, p)
		}
	case OpVaultCreate:
		var a VaultCreateArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) { return v.CreateVault(ctx, r, a.Name, a.Org) }
	case OpVaultShare:
		var a ShareArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.ShareVault(ctx, r, a.Vault, a.Subject, a.Access)
		}
	case OpVaultUnshare:
		var a ShareArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return none{}, v.UnshareVault(ctx, r, a.Vault, a.Subject, p)
		}
	case OpVaultMembers:
		var a VaultArgs
		err = decode(req.Args, &a)
		fn = func(ctx context.Context, r remote.Remote) (any, error) {
			return orEmpty(v.VaultMembers(ctx, r, a.Vault))
		}
	default:
		return nil, false, nil
	}
	return fn, true, err
}

// progress adapts the agent's progress frames to the engine's callback.
func progress(report func(done, total int64)) vault.Progress {
	if report == nil {
		return nil
	}
	return func(done, total int) { report(int64(done), int64(total)) }
}

// orgResult finishes an organisation op. An error that no code covers is
// still the engine's reason for refusing (a group that exists, a member
// who has not accepted yet, a name that matches two organisations...):
// the user sees its message (code org_refused), not "internal error".
func orgResult[T any](res T, err error) (any, bool, error) {
	if err != nil {
		return nil, true, orgErr(err)
	}
	return res, true, nil
}

// orgErr is orgResult's treatment of an error.
func orgErr(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := toAgentError(err).(*agent.Error); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err // Handle reports it
	}
	return &agent.Error{Code: CodeOrgRefused, Message: err.Error()}
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
