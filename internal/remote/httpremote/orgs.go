package httpremote

import (
	"context"
	"fmt"
	"net/http"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
)

var _ remote.Orgs = (*Client)(nil)

// Organisations and shared vaults (docs/api.md §2.22–2.29). The server
// replays each organisation's log to decide who may read and append; the
// client replays it itself from a pinned root (package vault), so nothing
// here is trusted beyond its shape.

// maxOrgs bounds the organisations one listing may name.
const maxOrgs = 10000

// Orgs lists the organisations the account belongs to or is invited to.
func (c *Client) Orgs(ctx context.Context) ([]api.Org, error) {
	var out api.Orgs
	if err := c.call(ctx, http.MethodGet, api.PathOrgs, nil, &out, true); err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	if len(out.Orgs) > maxOrgs {
		return nil, fmt.Errorf("list organisations: the server named %d organisations, more than %d", len(out.Orgs), maxOrgs)
	}
	for i := range out.Orgs {
		o := &out.Orgs[i]
		if !validID(o.Org) {
			return nil, fmt.Errorf("list organisations: the server sent an invalid organisation id %q", sanitize(o.Org))
		}
		switch o.State {
		case "invited", "accepted", "active":
		default:
			return nil, fmt.Errorf("list organisations: the server sent an unknown membership state %q", sanitize(o.State))
		}
	}
	return out.Orgs, nil
}

// CreateOrg creates an organisation with its first statements.
func (c *Client) CreateOrg(ctx context.Context, org string, entries []api.OrgEntry) (uint64, error) {
	if err := checkIDs("organisation", org); err != nil {
		return 0, err
	}
	if len(entries) == 0 || len(entries) > api.MaxAppend {
		return 0, fmt.Errorf("create organisation %s: %d statements (want 1..%d)", org, len(entries), api.MaxAppend)
	}
	var out api.OrgAppended
	if err := c.call(ctx, http.MethodPost, api.PathOrgs, api.OrgCreate{Org: org, Entries: entries}, &out, true); err != nil {
		return 0, fmt.Errorf("create organisation %s: %w", org, err)
	}
	if want := uint64(len(entries)); out.Head != want {
		return 0, fmt.Errorf("create organisation %s: the server reports head %d, want %d", org, out.Head, want)
	}
	return out.Head, nil
}

// PullOrg returns the statements after since (at most api.MaxPageLimit;
// the server may send fewer) and the head.
func (c *Client) PullOrg(ctx context.Context, org string, since uint64) (api.OrgLogPage, error) {
	if err := checkIDs("organisation", org); err != nil {
		return api.OrgLogPage{}, err
	}
	var p api.OrgLogPage
	path := fmt.Sprintf("%s/%s/log?since=%d&limit=%d", api.PathOrgs, org, since, api.MaxPageLimit)
	if err := c.call(ctx, http.MethodGet, path, nil, &p, true); err != nil {
		return api.OrgLogPage{}, fmt.Errorf("pull organisation %s: %w", org, err)
	}
	if len(p.Entries) > api.MaxPageLimit {
		return api.OrgLogPage{}, fmt.Errorf("pull organisation %s: the server sent %d statements, more than %d", org, len(p.Entries), api.MaxPageLimit)
	}
	return p, nil
}

// PushOrg appends statements base+1.. if base is the head (at most
// api.MaxAppend: one push is one atomic append).
func (c *Client) PushOrg(ctx context.Context, org string, base uint64, entries []api.OrgEntry) (uint64, error) {
	if err := checkIDs("organisation", org); err != nil {
		return 0, err
	}
	if len(entries) == 0 || len(entries) > api.MaxAppend {
		return 0, fmt.Errorf("push organisation %s: %d statements (want 1..%d per push)", org, len(entries), api.MaxAppend)
	}
	var out api.OrgAppended
	if err := c.call(ctx, http.MethodPost, api.PathOrgs+"/"+org+"/log", api.OrgAppend{Base: base, Entries: entries}, &out, true); err != nil {
		return 0, fmt.Errorf("push organisation %s: %w", org, err)
	}
	if want := base + uint64(len(entries)); out.Head != want {
		return 0, fmt.Errorf("push organisation %s: the server reports head %d after the append, want %d", org, out.Head, want)
	}
	return out.Head, nil
}

// OrgVaults lists the organisation's shared vaults the caller may read,
// with their heads.
func (c *Client) OrgVaults(ctx context.Context, org string) ([]api.Vault, error) {
	if err := checkIDs("organisation", org); err != nil {
		return nil, err
	}
	var out api.Vaults
	if err := c.call(ctx, http.MethodGet, api.PathOrgs+"/"+org+"/vaults", nil, &out, true); err != nil {
		return nil, fmt.Errorf("list shared vaults of %s: %w", org, err)
	}
	for _, v := range out.Vaults {
		if !validID(v.Vault) {
			return nil, fmt.Errorf("list shared vaults of %s: the server sent an invalid vault id %q", org, sanitize(v.Vault))
		}
	}
	return out.Vaults, nil
}

// PutOrgVault creates a shared vault's log once the organisation's log
// names the vault.
func (c *Client) PutOrgVault(ctx context.Context, org, vault string) error {
	if err := checkIDs("organisation", org, "vault", vault); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodPut, api.PathOrgs+"/"+org+"/vaults/"+vault, nil, nil, true); err != nil {
		return fmt.Errorf("create shared vault %s: %w", vault, err)
	}
	return nil
}

// DeleteOrg dissolves the organisation (an owner only).
func (c *Client) DeleteOrg(ctx context.Context, org string) error {
	if err := checkIDs("organisation", org); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodDelete, api.PathOrgs+"/"+org, nil, nil, true); err != nil {
		return fmt.Errorf("dissolve organisation %s: %w", org, err)
	}
	return nil
}
