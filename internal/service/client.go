package service

import (
	"context"
	"os"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/vault"
)

var kdfZero kdf.Params

// Client is the typed face of the agent for the command line.
type Client struct{ C *agent.Client }

func call[T any](ctx context.Context, c *Client, op string, args any, files ...*os.File) (T, error) {
	var out T
	err := c.C.Call(ctx, op, args, &out, files...)
	return out, err
}

// Info describes the agent and vault.
func (c *Client) Info(ctx context.Context, counts bool) (*Info, error) {
	return call[*Info](ctx, c, OpInfo, InfoArgs{Counts: counts})
}

// Unlock sends the password.
func (c *Client) Unlock(ctx context.Context, pw []byte) (*Info, error) {
	return call[*Info](ctx, c, OpUnlock, UnlockArgs{Password: pw})
}

// Recover sends the Recovery Key and the new password.
func (c *Client) Recover(ctx context.Context, rk, pw []byte) (*Info, error) {
	return call[*Info](ctx, c, OpRecover, RecoverArgs{RecoveryKey: rk, Password: pw})
}

// Passwd changes the password (and optionally the KDF parameters).
func (c *Client) Passwd(ctx context.Context, old, next []byte, p kdf.Params) (*Info, error) {
	return call[*Info](ctx, c, OpPasswd, PasswdArgs{Old: old, New: next, Params: p})
}

// Lock makes the agent forget its keys.
func (c *Client) Lock(ctx context.Context) (*Info, error) { return call[*Info](ctx, c, OpLock, nil) }

// Stop makes the agent forget its keys and exit.
func (c *Client) Stop(ctx context.Context) error {
	_, err := call[struct{}](ctx, c, OpStop, nil)
	return err
}

// Add stores new items.
func (c *Client) Add(ctx context.Context, items []item.Item) ([]item.Item, error) {
	return call[[]item.Item](ctx, c, OpAdd, AddArgs{Items: items})
}

// Get reads one item.
func (c *Client) Get(ctx context.Context, ref string) (item.Item, error) {
	return call[item.Item](ctx, c, OpGet, RefArgs{Ref: ref})
}

// List lists overviews; slim asks for only what a table shows.
func (c *Client) List(ctx context.Context, f vault.Filter, slim bool) ([]vault.Overview, error) {
	return call[[]vault.Overview](ctx, c, OpList, ListArgs{Filter: f, Slim: slim})
}

// Find searches.
func (c *Client) Find(ctx context.Context, q string, f vault.Filter) ([]vault.Match, error) {
	return call[[]vault.Match](ctx, c, OpFind, FindArgs{Query: q, Filter: f})
}

// Update replaces an item if it is still at base.
func (c *Client) Update(ctx context.Context, ref string, base uint64, it item.Item) (item.Item, error) {
	return call[item.Item](ctx, c, OpUpdate, UpdateArgs{Ref: ref, Base: base, Item: it})
}

// RefOp runs trash, restore or purge.
func (c *Client) RefOp(ctx context.Context, op, ref string) (item.Item, error) {
	return call[item.Item](ctx, c, op, RefArgs{Ref: ref})
}

// EmptyTrash purges the trash.
func (c *Client) EmptyTrash(ctx context.Context) (int64, error) {
	n, err := call[Count](ctx, c, OpEmptyTrash, nil)
	return n.N, err
}

// History lists revisions.
func (c *Client) History(ctx context.Context, ref string) ([]vault.Revision, error) {
	return call[[]vault.Revision](ctx, c, OpHistory, RefArgs{Ref: ref})
}

// RestoreRevision makes an earlier revision current.
func (c *Client) RestoreRevision(ctx context.Context, ref string, rev uint64) (item.Item, error) {
	return call[item.Item](ctx, c, OpRestoreRevision, RevisionArgs{Ref: ref, Revision: rev})
}

// Verify runs the full check.
func (c *Client) Verify(ctx context.Context) (vault.Report, error) {
	return call[vault.Report](ctx, c, OpVerify, nil)
}

// Attach streams f into a new attachment.
func (c *Client) Attach(ctx context.Context, ref, name string, f *os.File) (item.Item, error) {
	return call[item.Item](ctx, c, OpAttach, AttachArgs{Ref: ref, Name: name}, f)
}

// ReadAttachment streams an attachment into f.
func (c *Client) ReadAttachment(ctx context.Context, ref, name string, f *os.File) (int64, error) {
	n, err := call[Count](ctx, c, OpReadAttachment, AttachArgs{Ref: ref, Name: name}, f)
	return n.N, err
}

// Detach removes an attachment.
func (c *Client) Detach(ctx context.Context, ref, name string) (item.Item, error) {
	return call[item.Item](ctx, c, OpDetach, AttachArgs{Ref: ref, Name: name})
}

// AddTo stores new items in a vault (id, id prefix or name).
func (c *Client) AddTo(ctx context.Context, vault string, items []item.Item) ([]item.Item, error) {
	return call[[]item.Item](ctx, c, OpAddTo, AddToArgs{Vault: vault, Items: items})
}

// Import stores imported items in a vault ("" for the personal one),
// keeping the dates they carry.
func (c *Client) Import(ctx context.Context, vault string, items []item.Item) ([]item.Item, error) {
	return call[[]item.Item](ctx, c, OpAddTo, AddToArgs{Vault: vault, Items: items, Import: true})
}

// ResolveIn returns the id of the item ref names within a vault.
func (c *Client) ResolveIn(ctx context.Context, vault, ref string) (string, error) {
	id, err := call[ItemID](ctx, c, OpResolveIn, ResolveArgs{Vault: vault, Ref: ref})
	return id.ID, err
}

// Move moves an item into a vault (OpMove) or copies it there (OpCopy)
// and returns the item as stored there.
func (c *Client) Move(ctx context.Context, op, ref, vault string) (item.Item, error) {
	return call[item.Item](ctx, c, op, MoveArgs{Ref: ref, Vault: vault})
}
