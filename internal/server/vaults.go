package server

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/vlog"
)

// MaxPayload bounds one payload ciphertext: an item's encoded JSON
// (item.MaxPayload, 4 MiB) plus envelope overhead.
const MaxPayload = 4<<20 + 1<<10

// handleVaults lists the account's vaults and their heads.
func (s *Server) handleVaults(w http.ResponseWriter, r *http.Request, p *principal) error {
	rows, err := s.store.Vaults(r.Context(), p.account.ID)
	if err != nil {
		return fmt.Errorf("list vaults: %w", err)
	}
	out := api.Vaults{Vaults: make([]api.Vault, 0, len(rows))}
	for _, v := range rows {
		out.Vaults = append(out.Vaults, api.Vault{Vault: v.Vault, Record: v.Record, Head: v.Head})
	}
	writeJSON(w, out)
	return nil
}

// pathVault returns the {vault} of the path if it is a valid id.
func pathVault(r *http.Request) (string, error) {
	v := r.PathValue("vault")
	if !validID(v) {
		return "", badRequest("vault id is not a 26-character id")
	}
	return v, nil
}

// handleVaultPut creates a vault (its log starts at vlog.Genesis) or
// replaces its record.
func (s *Server) handleVaultPut(w http.ResponseWriter, r *http.Request, p *principal) error {
	vault, err := pathVault(r)
	if err != nil {
		return err
	}
	var req api.VaultPut
	if err := decodeJSON(w, r, docBody, &req); err != nil {
		return err
	}
	if len(req.Record) == 0 {
		return badRequest("the vault record is empty")
	}
	if len(req.Record) > api.MaxDocument {
		return tooLarge(fmt.Sprintf("the vault record is %d bytes, more than %d", len(req.Record), api.MaxDocument))
	}
	g := vlog.Genesis(vault)
	err = s.store.PutVault(r.Context(), p.account.ID, vault, req.Record, g[:])
	if errors.Is(err, storage.ErrExists) {
		return forbidden("the vault id belongs to another account")
	}
	if err != nil {
		return fmt.Errorf("put vault: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleLogGet answers the entries after ?since=N, at most ?limit=M
// (default and maximum api.MaxPageLimit), never past the head read at the
// start, and fewer if the page would pass api.MaxJSONBody. A client that
// asks past the head gets the head and no entries (it decides whether that
// is a rollback).
func (s *Server) handleLogGet(w http.ResponseWriter, r *http.Request, p *principal) error {
	vault, err := pathVault(r)
	if err != nil {
		return err
	}
	since, limit, err := pageQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	row, err := s.vaultFor(ctx, p, vault, org.Read)
	if err != nil {
		return err
	}
	page := api.LogPage{Head: row.Head, Entries: []api.Entry{}}
	if since < row.Head {
		limit = min(limit, row.Head-since)
		size := 64
		errFull := errors.New("page full")
		err := s.store.Entries(ctx, vault, since, int(limit), func(e storage.Entry) error {
			n := 64 + b64len(len(e.Body)) + b64len(len(e.Sig)) + b64len(len(e.Payload))
			if size+n > api.MaxJSONBody && len(page.Entries) > 0 {
				return errFull
			}
			size += n
			page.Entries = append(page.Entries, api.Entry{Body: e.Body, Sig: e.Sig, Payload: e.Payload})
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			return fmt.Errorf("read log: %w", err)
		}
	}
	writeJSON(w, page)
	return nil
}

func b64len(n int) int { return base64.StdEncoding.EncodedLen(n) }

// pageQuery parses a log page's ?since=N (default 0) and ?limit=M
// (default and maximum api.MaxPageLimit).
func pageQuery(r *http.Request) (since, limit uint64, err error) {
	q := r.URL.Query()
	since, err = queryUint(q.Get("since"), 0)
	if err != nil {
		return 0, 0, badRequest("since: %v", err)
	}
	limit, err = queryUint(q.Get("limit"), api.MaxPageLimit)
	if err != nil || limit < 1 || limit > api.MaxPageLimit {
		return 0, 0, badRequest("limit must be 1..%d", api.MaxPageLimit)
	}
	return since, limit, nil
}

// queryUint parses an optional decimal query parameter.
func queryUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a non-negative decimal integer")
	}
	return v, nil
}

// invalidEntry is the 422 for an entry that breaks a rule.
func invalidEntry(seq uint64, rule, format string, args ...any) *httpError {
	return &httpError{
		status: http.StatusUnprocessableEntity,
		code:   api.CodeInvalidEntry,
		seq:    seq,
		rule:   rule,
		msg:    fmt.Sprintf("entry %d breaks rule %q: %s", seq, rule, fmt.Sprintf(format, args...)),
	}
}

// handleLogAppend appends entries Base+1.. if Base is the head.
//
// The server checks what keeps the log well-formed: each body decodes
// strictly and names this vault, the next seq, the chain hash of the
// entry before and the session's device; a put carries the payload its
// digest names (unless a later entry of the same append purges the item),
// at revision current+1; a purge names the current revision of a live
// item. It does NOT verify signatures: the server holds no
// device keys it could trust, and clients verify every entry against keys
// they pinned, whatever the server says (docs/design.md, Sync).
func (s *Server) handleLogAppend(w http.ResponseWriter, r *http.Request, p *principal) error {
	vault, err := pathVault(r)
	if err != nil {
		return err
	}
	var req api.LogAppend
	if err := decodeJSON(w, r, api.MaxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Entries) == 0 {
		return badRequest("no entries to append")
	}
	if len(req.Entries) > api.MaxAppend {
		return tooLarge(fmt.Sprintf("%d entries, more than %d in one append", len(req.Entries), api.MaxAppend))
	}
	ctx := r.Context()
	row, err := s.vaultFor(ctx, p, vault, org.Write)
	if err != nil {
		return err
	}
	if req.Base != row.Head {
		return stale(row.Head, req.Base)
	}
	prev, err := chain.Parse(row.HeadHash)
	if err != nil {
		return fmt.Errorf("vault %s: stored head hash: %w", vault, err)
	}

	// First the rules that need no item state, in order; the chain hash
	// moves along.
	decoded := make([]*vlog.Entry, len(req.Entries))
	var items []string
	seen := map[string]bool{}
	for i, in := range req.Entries {
		seq := req.Base + 1 + uint64(i)
		e, err := vlog.DecodeBody(in.Body)
		switch {
		case err != nil:
			return invalidEntry(seq, api.RuleMalformed, "the body does not decode")
		case len(in.Sig) == 0 || len(in.Sig) > vlog.MaxSig:
			return invalidEntry(seq, api.RuleMalformed, "the signature is %d bytes (want 1..%d)", len(in.Sig), vlog.MaxSig)
		case e.Vault != vault:
			return invalidEntry(seq, api.RuleVault, "it names another vault")
		case e.Seq != seq:
			return invalidEntry(seq, api.RuleSeq, "it says seq %d", e.Seq)
		case !e.Prev.Equal(prev):
			return invalidEntry(seq, api.RulePrev, "prev is not the chain hash after entry %d", seq-1)
		case e.Device != p.device.ID:
			return invalidEntry(seq, api.RuleDevice, "it was written by another device than this session's")
		case !validID(e.Item):
			return invalidEntry(seq, api.RuleItem, "the item id is not a 26-character id")
		}
		prev = vlog.Next(prev, in.Body)
		decoded[i] = e
		if !seen[e.Item] {
			seen[e.Item] = true
			items = append(items, e.Item)
		}
	}

	// Then the revision rules, against the items' states as the batch
	// changes them.
	states, err := s.store.ItemStates(ctx, vault, items)
	if err != nil {
		return fmt.Errorf("read item states: %w", err)
	}
	if states == nil {
		states = map[string]storage.ItemState{}
	}
	// A put whose item a later entry of the batch purges may come without
	// its payload: the purge would delete it at once, and a client that
	// purged the item before syncing no longer has it.
	lastPurge := map[string]int{}
	for i, e := range decoded {
		if e.Op == vlog.OpPurge {
			lastPurge[e.Item] = i
		}
	}
	out := make([]storage.Entry, len(req.Entries))
	for i, in := range req.Entries {
		seq := req.Base + 1 + uint64(i)
		e := decoded[i]
		st := states[e.Item]
		se := storage.Entry{Seq: seq, Op: e.Op, Item: e.Item, Revision: e.Revision, Body: in.Body, Sig: in.Sig}
		switch e.Op {
		case vlog.OpPut:
			if j, ok := lastPurge[e.Item]; ok && j > i && len(in.Payload) == 0 {
				if e.Revision != st.Revision+1 {
					return invalidEntry(seq, api.RuleRevision, "put of revision %d, want %d", e.Revision, st.Revision+1)
				}
				states[e.Item] = storage.ItemState{Revision: e.Revision}
				out[i] = se
				continue
			}
			if len(in.Payload) == 0 {
				return invalidEntry(seq, api.RulePayload, "a put carries no payload (only a put purged later in the same append may)")
			}
			if len(in.Payload) > MaxPayload {
				return invalidEntry(seq, api.RulePayload, "the payload is %d bytes, more than %d", len(in.Payload), MaxPayload)
			}
			if e.Revision != st.Revision+1 {
				return invalidEntry(seq, api.RuleRevision, "put of revision %d, want %d", e.Revision, st.Revision+1)
			}
			if subtle.ConstantTimeCompare(vlog.PayloadDigest(in.Payload), e.Digest[:]) != 1 {
				return invalidEntry(seq, api.RuleDigest, "the payload does not match the digest")
			}
			se.Payload = in.Payload
			st = storage.ItemState{Revision: e.Revision}
		case vlog.OpPurge:
			if len(in.Payload) != 0 {
				return invalidEntry(seq, api.RulePayload, "a purge carries a payload")
			}
			if st.Revision == 0 || st.Purged {
				return invalidEntry(seq, api.RulePurged, "purge of an item that is absent or already purged")
			}
			if e.Revision != st.Revision {
				return invalidEntry(seq, api.RuleRevision, "purge of revision %d, the item is at %d", e.Revision, st.Revision)
			}
			if !bytes.Equal(e.Digest[:], make([]byte, vlog.DigestLen)) {
				return invalidEntry(seq, api.RuleDigest, "a purge names a payload digest")
			}
			st = storage.ItemState{Revision: e.Revision, Purged: true}
		default:
			// DecodeBody refuses unknown ops; keep the switch total.
			return invalidEntry(seq, api.RuleMalformed, "unknown op %d", e.Op)
		}
		states[e.Item] = st
		out[i] = se
	}

	err = s.store.Append(ctx, vault, req.Base, out, prev[:])
	if errors.Is(err, storage.ErrStale) {
		cur, err := s.store.Vault(ctx, vault)
		if err != nil {
			return fmt.Errorf("look up vault: %w", err)
		}
		return stale(cur.Head, req.Base)
	}
	if err != nil {
		return fmt.Errorf("append to log: %w", err)
	}
	writeJSON(w, api.LogAppended{Head: req.Base + uint64(len(out))})
	return nil
}

func stale(head, base uint64) *httpError {
	return &httpError{status: http.StatusConflict, code: api.CodeStale, head: head,
		msg: fmt.Sprintf("the log head is %d, not %d; fetch the new entries, merge and retry", head, base)}
}
