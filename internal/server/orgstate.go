package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/server/storage"
)

// The server replays each organisation's log with package org, the same
// code clients run, to enforce who may read it, who may append what, and
// who may use its shared vaults (docs/api.md §2.22–2.29). Clients never
// rely on this: they replay the log from a pinned root themselves.

// maxCachedOrgs bounds the replayed states kept in memory.
const maxCachedOrgs = 256

// orgEntriesBatch is how many statements one store read returns while
// replaying a log.
const orgEntriesBatch = 4096

// orgCache keeps the replayed state of recently used organisations, so
// that a request replays only the statements appended since. A state in
// the cache is never changed: whoever wants to apply statements clones it
// first. The store stays the truth: every request reads the organisation's
// head from the store and uses a cached state only if it is at exactly
// that head (several server processes may share one database). The zero
// value is ready to use.
type orgCache struct {
	mu     sync.Mutex
	states map[string]*org.State
}

func (c *orgCache) get(id string) *org.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.states[id]
}

// put caches st, replacing an older state of the same organisation, and
// forgets some other organisation when the cache is full.
func (c *orgCache) put(st *org.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.states == nil {
		c.states = make(map[string]*org.State)
	}
	if old, ok := c.states[st.Org]; ok && old.Seq > st.Seq {
		return // a request that read later keeps its newer state
	}
	if _, ok := c.states[st.Org]; !ok && len(c.states) >= maxCachedOrgs {
		for id := range c.states {
			delete(c.states, id)
			break
		}
	}
	c.states[st.Org] = st
}

func (c *orgCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.states, id)
}

// orgState returns the organisation's state at the store's current head,
// and that head. The state is shared: callers must not change it (Clone
// it to Apply statements). An unknown organisation is 404.
func (s *Server) orgState(ctx context.Context, id string) (*org.State, error) {
	row, err := s.store.Org(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("organisation")
	}
	if err != nil {
		return nil, fmt.Errorf("look up organisation: %w", err)
	}
	atHead := func(st *org.State) bool {
		return st.Seq == row.Head && bytes.Equal(st.Head[:], row.HeadHash)
	}
	cached := s.orgs.get(id)
	if cached != nil && atHead(cached) {
		return cached, nil
	}
	var st *org.State
	if cached != nil && cached.Seq < row.Head {
		// Apply what was appended since. If that fails (the organisation
		// was dissolved and made again under the same id), replay it all.
		next := cached.Clone()
		err := s.orgEntries(ctx, id, cached.Seq, row.Head, func(e org.Entry) error { return next.Apply(e) })
		if err == nil && atHead(next) {
			st = next
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if st == nil {
		var entries []org.Entry
		err := s.orgEntries(ctx, id, 0, row.Head, func(e org.Entry) error {
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("organisation %s: read log: %w", id, err)
		}
		st, err = org.Replay(id, nil, entries)
		if err != nil {
			// The refusal may quote a statement's fields (an address):
			// the log gets only its kind.
			return nil, fmt.Errorf("organisation %s: the stored log does not replay (%w)", id, replayKind(err))
		}
		if !atHead(st) {
			return nil, fmt.Errorf("organisation %s: the stored log ends at %d, not at the stored head %d or its hash", id, st.Seq, row.Head)
		}
	}
	s.orgs.put(st)
	return st, nil
}

// replayKind is the sentinel a replay error wraps, without its detail.
func replayKind(err error) error {
	for _, k := range []error{org.ErrMalformed, org.ErrRefused} {
		if errors.Is(err, k) {
			return k
		}
	}
	return errors.New("unknown replay error")
}

// orgEntries calls fn with the stored statements since+1..head in order.
func (s *Server) orgEntries(ctx context.Context, id string, since, head uint64, fn func(org.Entry) error) error {
	for since < head {
		n := 0
		err := s.store.OrgEntries(ctx, id, since, int(min(head-since, orgEntriesBatch)), func(e storage.OrgEntry) error {
			if e.Seq != since+1 {
				return fmt.Errorf("the store returned statement %d after %d", e.Seq, since)
			}
			since = e.Seq
			n++
			return fn(org.Entry{Body: e.Body, Sig: e.Sig})
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("the log ends at %d, before its head %d", since, head)
		}
	}
	return nil
}

// viewerState is the caller's place in an organisation as the server reads
// its log: "active" or "accepted" for a member by account id, "invited" for
// an address with a pending invitation, "" for anyone else. A removed
// account sees nothing, even if its address is invited again.
func viewerState(st *org.State, p *principal) string {
	if m := st.Members[p.account.ID]; m != nil {
		switch m.State {
		case org.StateActive, org.StateAccepted:
			return m.State
		case org.StateRemoved:
			return ""
		}
	}
	if _, ok := st.Invites[p.account.Email]; ok {
		return org.StateInvited
	}
	return ""
}

// orgIndex is who may see the organisation: its active and accepted
// members by account id and address, and pending invitations by address.
func orgIndex(st *org.State) []storage.OrgIndex {
	var idx []storage.OrgIndex
	for acct, m := range st.Members {
		if m.State == org.StateActive || m.State == org.StateAccepted {
			idx = append(idx, storage.OrgIndex{Account: acct, Email: strings.ToLower(m.Email), State: m.State})
		}
	}
	for email := range st.Invites {
		idx = append(idx, storage.OrgIndex{Email: strings.ToLower(email), State: org.StateInvited})
	}
	slices.SortFunc(idx, func(a, b storage.OrgIndex) int {
		if c := strings.Compare(a.Email, b.Email); c != 0 {
			return c
		}
		return strings.Compare(a.Account, b.Account)
	})
	return idx
}

// noAccess is the 403 for a caller the organisation's log gives no (or
// not enough) access; rule "access" tells it apart from a 403 about the
// session (a disabled account, a revoked device).
func noAccess(format string, args ...any) *httpError {
	return &httpError{status: http.StatusForbidden, code: api.CodeForbidden, rule: api.RuleAccess, msg: fmt.Sprintf(format, args...)}
}

// orgRefused is the 422 for a statement the server's replay refuses.
func orgRefused(seq uint64, format string, args ...any) *httpError {
	return invalidEntry(seq, api.RuleOrg, "%s", plainText(fmt.Sprintf(format, args...)))
}

// maxRefusal bounds the explanation of a refused statement.
const maxRefusal = 300

// plainText drops control characters from a message that may quote a
// statement's fields, and bounds its length.
func plainText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxRefusal {
		cut := maxRefusal
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// vaultFor loads a vault the caller may use with at least the given
// access: a vault of its own account (any access), or a shared vault whose
// organisation's log gives it that access (403 otherwise). Another
// account's personal vault is "not found", like one that does not exist.
func (s *Server) vaultFor(ctx context.Context, p *principal, vault string, need org.Access) (storage.VaultRow, error) {
	row, err := s.store.Vault(ctx, vault)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.VaultRow{}, notFound("vault")
	}
	if err != nil {
		return storage.VaultRow{}, fmt.Errorf("look up vault: %w", err)
	}
	if row.Org == "" {
		if row.Account != p.account.ID {
			return storage.VaultRow{}, notFound("vault")
		}
		return row, nil
	}
	st, err := s.orgState(ctx, row.Org)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusNotFound {
		return storage.VaultRow{}, notFound("vault")
	}
	if err != nil {
		return storage.VaultRow{}, err
	}
	if got := st.Access(vault, p.account.ID); got.Rank() < need.Rank() {
		return storage.VaultRow{}, noAccess("this shared vault needs %s access in its organisation's log; you have %s", need, accessName(got))
	}
	return row, nil
}

func accessName(a org.Access) string {
	if a == org.None {
		return "none"
	}
	return string(a)
}
