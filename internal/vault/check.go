package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// checkVault reads a vault's log and item rows and checks that they agree:
//
//   - the head record's MAC verifies (so the log was not truncated or rolled
//     back as a whole without the Master Key);
//   - log entries are numbered 1..n without gaps, each links to the one
//     before through the SHA-256+SHA3-256 chain, and the chain ends at the
//     head; with full, every entry's hybrid signature is verified too;
//   - every item row is at the revision and digest the log names for it,
//     every item the log says exists has a row, and every row opens under the
//     vault key with its vault, item and revision as additional data.
//
// It rebuilds s.index and s.views. With problems non-nil it collects every
// problem instead of stopping at the first.
func (v *Vault) checkVault(ctx context.Context, s *vaultState, full bool, problems *[]string) error {
	report := func(format string, args ...any) error {
		msg := fmt.Sprintf("vault %q: ", s.name) + fmt.Sprintf(format, args...)
		if problems != nil {
			*problems = append(*problems, msg)
			return nil
		}
		return &IntegrityError{Problems: []string{msg}}
	}
	raw, err := v.st.Head(s.id)
	if errors.Is(err, store.ErrNotFound) {
		return report("the log head record is missing")
	} else if err != nil {
		return err
	}
	var h headRecord
	if err := decodeRecord(raw, &h); err != nil {
		return report("log head record: %v", err)
	}
	if h.Vault != s.id || !checkMAC(v.macKey, "head", &h, &h.MAC) {
		return report("the log head record was modified (its MAC does not verify)")
	}

	s.index = map[string]*entryInfo{}
	running := genesis(s.id)
	var seq uint64
	err = v.st.Log(s.id, 0, func(r store.LogRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		seq++
		if r.Seq != seq {
			return report("log entry %d is missing (found %d next): entries were deleted", seq, r.Seq)
		}
		e, err := vlog.Decode(r.Entry)
		if err != nil {
			return report("log entry %d: %v", r.Seq, err)
		}
		if e.Seq != r.Seq || e.Vault != s.id || e.Item != r.Item || e.Revision != r.Revision {
			return report("log entry %d was moved or its columns edited", r.Seq)
		}
		if !e.Prev.Equal(running) {
			return report("log entry %d does not link to the entry before it: the log was edited or reordered", r.Seq)
		}
		if full {
			pub, ok := v.devices[e.Device]
			if !ok {
				return report("log entry %d was written by unknown device %s", r.Seq, e.Device)
			}
			if err := e.Verify(pub); err != nil {
				return report("log entry %d: %v", r.Seq, err)
			}
		}
		running = vlog.Next(running, r.Entry)
		s.index[e.Item] = &entryInfo{seq: e.Seq, op: e.Op, revision: e.Revision, digest: bytes.Clone(e.Digest[:])}
		return nil
	})
	if err != nil {
		return err
	}
	if seq != h.Seq || subtle.ConstantTimeCompare(running[:], h.Hash) != 1 {
		if seq < h.Seq {
			if err := report("the log ends at entry %d but its head says %d: entries were removed (rollback)", seq, h.Seq); err != nil {
				return err
			}
		} else if err := report("the log (%d entries) does not end at its recorded head (entry %d)", seq, h.Seq); err != nil {
			return err
		}
	}
	s.seq, s.head = seq, running
	return v.checkItems(ctx, s, report)
}

// checkItems checks every item row against the index and rebuilds views.
func (v *Vault) checkItems(ctx context.Context, s *vaultState, report func(string, ...any) error) error {
	s.views = map[string]*Overview{}
	err := v.st.Items(s.id, func(r store.ItemRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := v.openRow(s, r)
		if err != nil {
			return report("%v", err)
		}
		s.views[r.Item] = overviewOf(s.id, it)
		return nil
	})
	if err != nil {
		return err
	}
	for id, e := range s.index {
		if e.op == vlog.OpPut {
			if _, ok := s.views[id]; !ok {
				if err := report("item %s (revision %d) is in the log but its row is gone: it was deleted behind safe's back", id, e.revision); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// openRow authenticates one current item row against the log and opens it.
func (v *Vault) openRow(s *vaultState, r store.ItemRow) (item.Item, error) {
	e, ok := s.index[r.Item]
	switch {
	case !ok:
		return item.Item{}, fmt.Errorf("item row %s is not in the log: it was injected", r.Item)
	case e.op != vlog.OpPut:
		return item.Item{}, fmt.Errorf("item row %s was purged according to the log but is present", r.Item)
	case r.Revision != e.revision:
		return item.Item{}, fmt.Errorf("item %s is at revision %d but the log says %d: the row was rolled back or replaced", r.Item, r.Revision, e.revision)
	case subtle.ConstantTimeCompare(digest(r.Payload), e.digest) != 1:
		return item.Item{}, fmt.Errorf("item %s ciphertext is not the one the log recorded: it was modified or swapped", r.Item)
	}
	return v.openPayload(s, r)
}

// openPayload decrypts a payload bound to its vault, item and revision.
func (v *Vault) openPayload(s *vaultState, r store.ItemRow) (item.Item, error) {
	pt, err := envelope.Open(s.key, itemContext(v.acct.Account, s.id, r.Item, r.Revision), r.Payload)
	if err != nil {
		return item.Item{}, fmt.Errorf("item %s revision %d does not open (%v): it was modified or moved", r.Item, r.Revision, err)
	}
	it, err := item.Decode(pt)
	wipeBytes(pt)
	if err != nil {
		return item.Item{}, fmt.Errorf("item %s revision %d: %v", r.Item, r.Revision, err)
	}
	if it.ID != r.Item {
		return item.Item{}, fmt.Errorf("item %s holds the payload of item %s", r.Item, it.ID)
	}
	it.Revision = r.Revision
	return it, nil
}

func itemContext(acct, vault, id string, rev uint64) envelope.Context {
	return envelope.Context{Purpose: purposeItem, Account: acct, Vault: vault, Item: id, Revision: rev}
}

// Equal is chain.Hash's comparison; kept here for readability above.
var _ = chain.Hash{}
