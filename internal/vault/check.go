package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

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
	h, err := v.readHead(s, report)
	if err != nil || h == nil {
		return err
	}
	if !full && problems == nil {
		if ok, err := v.fromSnapshot(ctx, s, h, report); ok || err != nil {
			return err
		}
	}
	s.index = map[string]*entryInfo{}
	if _, err := v.replay(ctx, s, 0, genesis(s.id), h, full, report); err != nil {
		return err
	}
	return v.checkItems(ctx, s, report)
}

// readHead reads and authenticates a vault's head record. It returns nil
// and report's result when the record is missing or was modified.
func (v *Vault) readHead(s *vaultState, report func(string, ...any) error) (*headRecord, error) {
	raw, err := v.st.Head(s.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, report("the log head record is missing")
	} else if err != nil {
		return nil, err
	}
	var h headRecord
	if err := decodeRecord(raw, &h); err != nil {
		return nil, report("log head record: %v", err)
	}
	if h.Version != RecordVersion || h.Vault != s.id || !checkMAC(v.macKey, "head", &h, &h.MAC) {
		return nil, report("the log head record was modified (its MAC does not verify)")
	}
	return &h, nil
}

// checkChain re-hashes a vault's whole log (bodies, not signatures) from
// its genesis to its authenticated head, without touching s. Reads that
// trust old log entries (history) call it first: an unlock from a snapshot
// does not re-hash the entries before the snapshot.
func (v *Vault) checkChain(ctx context.Context, s *vaultState) error {
	report := func(format string, args ...any) error {
		return &IntegrityError{Problems: []string{fmt.Sprintf("vault %q: ", s.name) + fmt.Sprintf(format, args...)}}
	}
	h, err := v.readHead(s, report)
	if err != nil || h == nil {
		return err
	}
	tmp := &vaultState{id: s.id, name: s.name, index: map[string]*entryInfo{}}
	_, err = v.replay(ctx, tmp, 0, genesis(s.id), h, false, report)
	return err
}

// replay reads the log after entry `after` (whose chain hash is start),
// checks each entry as checkVault describes, updates s.index, and checks
// that the log ends at the head. It returns the items the entries named.
func (v *Vault) replay(ctx context.Context, s *vaultState, after uint64, start chain.Hash, h *headRecord, full bool, report func(string, ...any) error) ([]string, error) {
	running := start
	seq := after
	var touched []string
	err := v.st.Log(s.id, after, full, func(r store.LogRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		seq++
		if r.Seq != seq {
			return report("log entry %d is missing (found %d next): entries were deleted", seq, r.Seq)
		}
		e, err := vlog.DecodeBody(r.Body)
		if err != nil {
			return report("log entry %d: %v", r.Seq, err)
		}
		e.Sig = r.Sig
		if e.Seq != r.Seq || e.Vault != s.id || e.Item != r.Item || e.Revision != r.Revision {
			return report("log entry %d was moved or its columns edited", r.Seq)
		}
		if !e.Prev.Equal(running) {
			return report("log entry %d does not link to the entry before it: the log was edited or reordered", r.Seq)
		}
		if full {
			pub, err := v.writerKey(s, e)
			if err != nil {
				if err := report("log %v", err); err != nil {
					return err
				}
			} else if err := e.Verify(pub); s.org == "" && err != nil {
				// Reported, then the entry is still followed so that one
				// bad signature does not cascade into other problems.
				if err := report("log entry %d: %v", r.Seq, err); err != nil {
					return err
				}
			}
		}
		running = vlog.Next(running, r.Body)
		s.index[e.Item] = &entryInfo{seq: e.Seq, op: e.Op, revision: e.Revision, digest: bytes.Clone(e.Digest[:])}
		touched = append(touched, e.Item)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seq != h.Seq || subtle.ConstantTimeCompare(running[:], h.Hash) != 1 {
		if seq < h.Seq {
			if err := report("the log ends at entry %d but its head says %d: entries were removed (rollback)", seq, h.Seq); err != nil {
				return nil, err
			}
		} else if err := report("the log (%d entries) does not end at its recorded head (entry %d)", seq, h.Seq); err != nil {
			return nil, err
		}
	}
	s.seq, s.head = seq, running
	return touched, nil
}

// checkItems checks every item row against the index and rebuilds views.
// Rows are read first (the store has one connection) and opened by one
// worker per CPU: opening is the bulk of an unlock.
func (v *Vault) checkItems(ctx context.Context, s *vaultState, report func(string, ...any) error) error {
	var rows []store.ItemRow
	if err := v.st.Items(s.id, func(r store.ItemRow) error { rows = append(rows, r); return ctx.Err() }); err != nil {
		return err
	}
	views := make([]*Overview, len(rows))
	errs := make([]error, len(rows))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(rows)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(rows); i += workers {
				it, err := v.openRow(s, rows[i])
				if err != nil {
					errs[i] = err
					continue
				}
				views[i] = overviewOf(s.id, it)
			}
		})
	}
	wg.Wait()
	s.views = make(map[string]*Overview, len(rows))
	s.titles = nil
	for i, r := range rows {
		if errs[i] != nil {
			if err := report("%v", errs[i]); err != nil {
				return err
			}
			continue
		}
		s.views[r.Item] = views[i]
	}
	for id, e := range s.index {
		if e.op == vlog.OpPut {
			if _, ok := s.views[id]; !ok {
				if slices.ContainsFunc(rows, func(r store.ItemRow) bool { return r.Item == id }) {
					continue // its row is there but failed; already reported
				}
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
	ctx := itemContext(s.acct, s.id, r.Item, r.Revision)
	pt, err := envelope.Open(s.key, ctx, r.Payload)
	// A shared vault's older revisions stay under the key generation that
	// was current when they were written; authentication picks the one.
	for g := s.gen; err != nil && g > 1; g-- {
		if k, ok := s.old[g-1]; ok {
			pt, err = envelope.Open(k, ctx, r.Payload)
		}
	}
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
