package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/vlog"
)

// pathOrg returns the {org} of the path if it is a valid id.
func pathOrg(r *http.Request) (string, error) {
	o := r.PathValue("org")
	if !validID(o) {
		return "", badRequest("organisation id is not a 26-character id")
	}
	return o, nil
}

// orgEntriesOf checks the size of a list of statements and converts it.
func orgEntriesOf(in []api.OrgEntry) ([]org.Entry, error) {
	if len(in) == 0 {
		return nil, badRequest("no statements to append")
	}
	if len(in) > api.MaxAppend {
		return nil, tooLarge(fmt.Sprintf("%d statements, more than %d in one append", len(in), api.MaxAppend))
	}
	out := make([]org.Entry, len(in))
	for i, e := range in {
		out[i] = org.Entry{Body: e.Body, Sig: e.Sig}
	}
	return out, nil
}

// storedOrgEntries numbers statements base+1.. for the store.
func storedOrgEntries(base uint64, in []org.Entry) []storage.OrgEntry {
	out := make([]storage.OrgEntry, len(in))
	for i, e := range in {
		out[i] = storage.OrgEntry{Seq: base + 1 + uint64(i), Body: e.Body, Sig: e.Sig}
	}
	return out
}

// handleOrgs lists the organisations whose log names the caller: as a
// member by account id, or as an invited address.
func (s *Server) handleOrgs(w http.ResponseWriter, r *http.Request, p *principal) error {
	refs, err := s.store.OrgsFor(r.Context(), p.account.ID, p.account.Email)
	if err != nil {
		return fmt.Errorf("list organisations: %w", err)
	}
	out := api.Orgs{Orgs: make([]api.Org, 0, len(refs))}
	for _, o := range refs {
		out.Orgs = append(out.Orgs, api.Org{Org: o.Org, Head: o.Head, State: o.State})
	}
	writeJSON(w, out)
	return nil
}

// handleOrgCreate creates an organisation from its first statements: they
// must replay from the genesis, the genesis must name the caller as the
// creator, and after them the caller must be an active owner.
func (s *Server) handleOrgCreate(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req api.OrgCreate
	if err := decodeJSON(w, r, api.MaxJSONBody, &req); err != nil {
		return err
	}
	if !validID(req.Org) {
		return badRequest("organisation id is not a 26-character id")
	}
	entries, err := orgEntriesOf(req.Entries)
	if err != nil {
		return err
	}
	var st *org.State
	for i, e := range entries {
		seq := uint64(i) + 1
		stmt, err := org.Decode(e)
		if err != nil {
			return orgRefused(seq, "the statement does not decode: %v", err)
		}
		// The creator holds the root key (it is sealed to it in the
		// genesis), so it may push root statements here.
		if stmt.By != org.ByRoot && stmt.By != p.account.ID {
			return orgRefused(seq, "it is signed by another account than the session's")
		}
		if i == 0 {
			if stmt.Type != org.TypeGenesis {
				return orgRefused(seq, "the first statement is a %q, not a genesis", stmt.Type)
			}
			if stmt.Account != p.account.ID {
				return orgRefused(seq, "the genesis names another creator than the session's account")
			}
			if st, err = org.Replay(req.Org, nil, entries[:1]); err != nil {
				return orgRefused(seq, "%v", err)
			}
			continue
		}
		if err := st.Apply(e); err != nil {
			return orgRefused(seq, "%v", err)
		}
	}
	if st.Role(p.account.ID) != org.Owner {
		return orgRefused(st.Seq, "after these statements the session's account is not an active owner (send the genesis and the creator's owner certificate)")
	}
	err = s.store.CreateOrg(r.Context(), req.Org, storedOrgEntries(0, entries), st.Head[:], orgIndex(st))
	if errors.Is(err, storage.ErrExists) {
		return &httpError{status: http.StatusConflict, code: api.CodeExists, msg: "an organisation with this id exists"}
	}
	if err != nil {
		return fmt.Errorf("create organisation: %w", err)
	}
	s.orgs.put(st)
	writeJSON(w, api.OrgAppended{Head: st.Seq})
	return nil
}

// handleOrgLogGet answers the statements after ?since=N, at most ?limit=M,
// to a member (active or accepted) or an invited address.
func (s *Server) handleOrgLogGet(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathOrg(r)
	if err != nil {
		return err
	}
	since, limit, err := pageQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.orgState(ctx, id)
	if err != nil {
		return err
	}
	if viewerState(st, p) == "" {
		return noAccess("the organisation's log does not name you as a member or invitee")
	}
	head := st.Seq
	page := api.OrgLogPage{Head: head, Entries: []api.OrgEntry{}}
	if since < head {
		limit = min(limit, head-since)
		size := 64
		errFull := errors.New("page full")
		err := s.store.OrgEntries(ctx, id, since, int(limit), func(e storage.OrgEntry) error {
			n := 32 + b64len(len(e.Body)) + b64len(len(e.Sig))
			if size+n > api.MaxJSONBody && len(page.Entries) > 0 {
				return errFull
			}
			size += n
			page.Entries = append(page.Entries, api.OrgEntry{Body: e.Body, Sig: e.Sig})
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			return fmt.Errorf("read organisation log: %w", err)
		}
	}
	writeJSON(w, page)
	return nil
}

// handleOrgAppend appends statements Base+1.. if Base is the head. Each
// must be signed by the session's account, or by the root key when the
// session's account is an active owner, and must apply on the state the
// log (and the statements before it) describe.
func (s *Server) handleOrgAppend(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathOrg(r)
	if err != nil {
		return err
	}
	var req api.OrgAppend
	if err := decodeJSON(w, r, api.MaxJSONBody, &req); err != nil {
		return err
	}
	entries, err := orgEntriesOf(req.Entries)
	if err != nil {
		return err
	}
	ctx := r.Context()
	cur, err := s.orgState(ctx, id)
	if err != nil {
		return err
	}
	if viewerState(cur, p) == "" {
		return noAccess("the organisation's log does not name you as a member or invitee")
	}
	if req.Base != cur.Seq {
		return stale(cur.Seq, req.Base)
	}
	next := cur.Clone()
	for i, e := range entries {
		seq := req.Base + 1 + uint64(i)
		stmt, err := org.Decode(e)
		if err != nil {
			return orgRefused(seq, "the statement does not decode: %v", err)
		}
		switch {
		case stmt.By == p.account.ID:
		case stmt.By == org.ByRoot && next.Role(p.account.ID) == org.Owner:
		case stmt.By == org.ByRoot:
			return orgRefused(seq, "a statement signed by the root key may only be pushed by an owner")
		default:
			return orgRefused(seq, "it is signed by another account than the session's")
		}
		// An invitation is found by the address the account logs in
		// with; nobody accepts another address's.
		if stmt.Type == org.TypeAccept && stmt.Email != p.account.Email {
			return orgRefused(seq, "it accepts the invitation of another address than the session account's")
		}
		if err := next.Apply(e); err != nil {
			return orgRefused(seq, "%v", err)
		}
	}
	// Heads signed into a statement (where someone's write access ends)
	// must be the vaults' current heads: an entry appended since would be
	// refused by every client for ever. The client syncs and signs again.
	for _, e := range entries {
		stmt, err := org.Decode(e)
		if err != nil {
			continue
		}
		for vid, h := range stmt.Heads {
			row, err := s.store.Vault(ctx, vid)
			if err != nil || row.Org != id {
				continue // the rules already checked the vault is the organisation's
			}
			if row.Head != h {
				return &httpError{status: http.StatusConflict, code: api.CodeStale, head: cur.Seq,
					msg: fmt.Sprintf("statement %d signs head %d of vault %s, which is now at %d: sync the vault and sign again", stmt.Seq, h, vid, row.Head)}
			}
		}
	}
	// A new shared vault's log exists before any statement naming it is
	// visible, so that nobody can claim its id first (as a personal vault)
	// between the append and the creator's PUT. A row left by an append
	// that then fails is harmless: the same organisation may take it.
	for _, e := range entries {
		if stmt, err := org.Decode(e); err == nil && stmt.Type == org.TypeVault {
			g := vlog.Genesis(stmt.Vault)
			err := s.store.PutOrgVault(ctx, id, stmt.Vault, g[:])
			if errors.Is(err, storage.ErrExists) {
				return orgRefused(stmt.Seq, "vault id %s is taken", stmt.Vault)
			}
			if err != nil {
				return fmt.Errorf("create shared vault: %w", err)
			}
		}
	}
	err = s.store.AppendOrg(ctx, id, req.Base, storedOrgEntries(req.Base, entries), next.Head[:], orgIndex(next))
	switch {
	case errors.Is(err, storage.ErrStale):
		row, err := s.store.Org(ctx, id)
		if err != nil {
			return fmt.Errorf("look up organisation: %w", err)
		}
		return stale(row.Head, req.Base)
	case errors.Is(err, storage.ErrNotFound):
		return notFound("organisation")
	case err != nil:
		return fmt.Errorf("append to organisation log: %w", err)
	}
	s.orgs.put(next)
	writeJSON(w, api.OrgAppended{Head: next.Seq})
	return nil
}

// handleOrgVaults lists the organisation's shared vaults the caller may
// read, with their heads. A shared vault has no record: its name and keys
// are in the organisation's log.
func (s *Server) handleOrgVaults(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathOrg(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.orgState(ctx, id)
	if err != nil {
		return err
	}
	if viewerState(st, p) == "" {
		return noAccess("the organisation's log does not name you as a member or invitee")
	}
	rows, err := s.store.OrgVaults(ctx, id)
	if err != nil {
		return fmt.Errorf("list shared vaults: %w", err)
	}
	out := api.Vaults{Vaults: []api.Vault{}}
	for _, v := range rows {
		if st.Access(v.Vault, p.account.ID).Rank() >= org.Read.Rank() {
			out.Vaults = append(out.Vaults, api.Vault{Vault: v.Vault, Record: []byte{}, Head: v.Head})
		}
	}
	writeJSON(w, out)
	return nil
}

// handleOrgVaultPut creates a shared vault's log once the organisation's
// log names the vault; the caller must have manage access to it.
func (s *Server) handleOrgVaultPut(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathOrg(r)
	if err != nil {
		return err
	}
	vault, err := pathVault(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.orgState(ctx, id)
	if err != nil {
		return err
	}
	if viewerState(st, p) == "" {
		return noAccess("the organisation's log does not name you as a member or invitee")
	}
	if st.Vaults[vault] == nil {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "the organisation's log names no such vault; append its vault statement first"}
	}
	if got := st.Access(vault, p.account.ID); got != org.Manage {
		return noAccess("creating a shared vault needs manage access in the organisation's log; you have %s", accessName(got))
	}
	g := vlog.Genesis(vault)
	err = s.store.PutOrgVault(ctx, id, vault, g[:])
	switch {
	case errors.Is(err, storage.ErrExists):
		return &httpError{status: http.StatusConflict, code: api.CodeExists, msg: "the vault id is another vault's"}
	case errors.Is(err, storage.ErrNotFound):
		return notFound("organisation")
	case err != nil:
		return fmt.Errorf("put shared vault: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleOrgDelete dissolves an organisation with its log and shared
// vaults; only an active owner may.
func (s *Server) handleOrgDelete(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathOrg(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.orgState(ctx, id)
	if err != nil {
		return err
	}
	if st.Role(p.account.ID) != org.Owner {
		return noAccess("only an owner may dissolve the organisation")
	}
	err = s.store.DeleteOrg(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete organisation: %w", err)
	}
	s.orgs.drop(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
