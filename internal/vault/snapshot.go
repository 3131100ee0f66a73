package vault

import (
	"bytes"
	"context"
	"errors"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// snapshotEvery is how many log entries may follow the snapshot before a
// write refreshes it. Locking the vault also refreshes a stale snapshot.
const snapshotEvery = 1024

const purposeSnapshot = "index-snapshot"

// snapshot is the verified index of one vault as of log entry Seq: what
// the log says of every item, and every current item's overview. It is
// sealed under the vault key with Seq in the additional data.
// Its encoding is in snapcodec.go.
type snapshot struct {
	Version int
	Vault   string
	Seq     uint64
	Head    []byte
	Entries []snapshotEntry
	Views   []*Overview
}

type snapshotEntry struct {
	Item     string
	Seq      uint64
	Op       byte
	Revision uint64
	Digest   []byte
}

func snapshotContext(acct, vault string, seq uint64) envelope.Context {
	return envelope.Context{Purpose: purposeSnapshot, Account: acct, Vault: vault, Revision: seq}
}

// fromSnapshot loads s from its snapshot and the log entries after it. It
// reports false (and no error) when there is no usable snapshot, so that
// the caller checks everything instead: the snapshot is a cache, and one
// that is missing, stale beyond the head, or does not open is not trusted.
// Rows are not read here except for the items named after the snapshot;
// every read checks its row against the index.
func (v *Vault) fromSnapshot(ctx context.Context, s *vaultState, h *headRecord, report func(string, ...any) error) (bool, error) {
	seq, sealed, err := v.st.Snapshot(s.id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if seq > h.Seq {
		return false, nil
	}
	// The chain before the snapshot is not re-hashed here, but a log with
	// entries removed or added is still caught at once, for one query.
	if n, last, err := v.st.LogExtent(s.id); err != nil {
		return false, err
	} else if last < h.Seq {
		return true, report("the log ends at entry %d but its head says %d: entries were removed (rollback)", last, h.Seq)
	} else if n != h.Seq || last != h.Seq {
		return true, report("log entries are missing or were added: %d entries up to %d, head %d", n, last, h.Seq)
	}
	pt, err := envelope.Open(s.key, snapshotContext(s.acct, s.id, seq), sealed)
	if err != nil {
		return false, nil
	}
	snap, err := decodeSnapshot(pt)
	wipeBytes(pt)
	if err != nil || snap.Vault != s.id || snap.Seq != seq {
		return false, nil
	}
	head, err := chain.Parse(snap.Head)
	if err != nil {
		return false, nil
	}
	s.index = make(map[string]*entryInfo, len(snap.Entries))
	for _, e := range snap.Entries {
		s.index[e.Item] = &entryInfo{seq: e.Seq, op: e.Op, revision: e.Revision, digest: e.Digest}
	}
	s.views = make(map[string]*Overview, len(snap.Views))
	s.titles = nil
	for _, o := range snap.Views {
		s.views[o.ID] = o
	}
	touched, err := v.replay(ctx, s, seq, head, h, false, report)
	if err != nil {
		return true, err
	}
	for _, id := range touched {
		e := s.index[id]
		if e.op != vlog.OpPut {
			delete(s.views, id)
			s.titles = nil
			continue
		}
		if o, ok := s.views[id]; ok && o.Revision == e.revision {
			continue
		}
		r, err := v.st.Item(s.id, id)
		if errors.Is(err, store.ErrNotFound) {
			return true, report("item %s (revision %d) is in the log but its row is gone: it was deleted behind safe's back", id, e.revision)
		}
		if err != nil {
			return true, err
		}
		it, err := v.openRow(s, r)
		if err != nil {
			return true, report("%v", err)
		}
		s.views[id] = overviewOf(s.id, it)
		s.titles = nil
	}
	s.snapSeq = seq
	return true, nil
}

// saveSnapshot seals and stores s's index as of its head. Failing to save
// a cache is not an error worth failing a command for: the next unlock
// checks more instead.
func (v *Vault) saveSnapshot(ctx context.Context, s *vaultState) {
	if v.mk == nil || !v.verified || s.snapSeq == s.seq {
		return
	}
	snap := snapshot{Version: 1, Vault: s.id, Seq: s.seq, Head: bytes.Clone(s.head[:])}
	snap.Entries = make([]snapshotEntry, 0, len(s.index))
	for id, e := range s.index {
		snap.Entries = append(snap.Entries, snapshotEntry{Item: id, Seq: e.seq, Op: e.op, Revision: e.revision, Digest: e.digest})
	}
	snap.Views = make([]*Overview, 0, len(s.views))
	for _, o := range s.views {
		snap.Views = append(snap.Views, o)
	}
	pt := encodeSnapshot(&snap)
	sealed, err := envelope.Seal(v.opts.Rand, s.key, snapshotContext(s.acct, s.id, s.seq), pt)
	wipeBytes(pt)
	if err != nil {
		return
	}
	if v.st.Update(ctx, func(tx *store.Tx) error { return tx.PutSnapshot(s.id, s.seq, sealed) }) == nil {
		s.snapSeq = s.seq
	}
}

// saveSnapshots refreshes every stale snapshot.
func (v *Vault) saveSnapshots(ctx context.Context) {
	for _, s := range v.vaults {
		v.saveSnapshot(ctx, s)
	}
}
