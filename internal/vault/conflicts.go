package vault

import (
	"context"
	"slices"

	"github.com/safehold/safehold/internal/item"
)

// ConflictItem is an item that a merge flagged: it keeps values that lost.
type ConflictItem struct {
	Overview
	Conflicts []item.Conflict `json:"conflicts"`
}

// Conflicts lists the items that hold conflicting values from a merge
// (§13.6). It opens every current item, so it costs as much as a full
// read of the vault.
func (v *Vault) Conflicts(ctx context.Context) ([]ConflictItem, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	var out []ConflictItem
	for _, vid := range v.order {
		s := v.vaults[vid]
		for id, o := range s.views {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			it, err := v.read(s, id)
			if err != nil {
				return nil, err
			}
			if len(it.Conflicts) > 0 {
				out = append(out, ConflictItem{Overview: o.Slim(), Conflicts: it.Conflicts})
			}
		}
	}
	slices.SortFunc(out, func(a, b ConflictItem) int { return byTitle(&a.Overview, &b.Overview) })
	return out, nil
}
