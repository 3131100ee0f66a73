package vault

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// Overview is what lists and searches show of an item: nothing secret.
type Overview struct {
	ID          string    `json:"id"`
	Vault       string    `json:"vault,omitempty"`
	Type        item.Type `json:"type"`
	Title       string    `json:"title"`
	Username    string    `json:"username,omitempty"`
	URLs        []string  `json:"urls,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	Folder      string    `json:"folder,omitempty"`
	Favorite    bool      `json:"favorite,omitempty"`
	Trashed     bool      `json:"trashed,omitempty"`
	HasTOTP     bool      `json:"has_totp,omitempty"`
	Attachments int       `json:"attachments,omitempty"`
	Conflicts   int       `json:"conflicts,omitempty"`
	Modified    time.Time `json:"modified,omitzero"`
	Revision    uint64    `json:"revision,omitempty"`

	// lower holds the searched text lower-cased once, when the overview is
	// built, so that lists, lookups and searches do not lower-case every
	// item on every call.
	lower lowerText
}

type lowerText struct{ title, username, folder, tags, urls string }

func overviewOf(vault string, it item.Item) *Overview {
	hasTOTP := it.TOTP != ""
	for _, f := range it.Fields {
		hasTOTP = hasTOTP || f.Kind == item.KindTOTP
	}
	o := &Overview{
		ID: it.ID, Vault: vault, Type: it.Type, Title: it.Title, Username: it.Username,
		URLs: it.URLs, Tags: it.Tags, Folder: it.Folder, Favorite: it.Favorite,
		Trashed: it.Trashed != nil, HasTOTP: hasTOTP, Attachments: len(it.Attachments),
		Conflicts: len(it.Conflicts), Modified: it.Modified, Revision: it.Revision,
	}
	o.setLower()
	return o
}

// setLower fills o.lower from o's fields.
func (o *Overview) setLower() {
	o.lower = lowerText{
		title: strings.ToLower(o.Title), username: strings.ToLower(o.Username),
		folder: strings.ToLower(o.Folder), tags: strings.ToLower(strings.Join(o.Tags, " ")),
		urls: strings.ToLower(strings.Join(o.URLs, " ")),
	}
}

// byTitle orders overviews by lower-cased title, then id.
func byTitle(a, b *Overview) int {
	if c := strings.Compare(a.lower.title, b.lower.title); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Slim returns the overview with only what a listing table shows: id,
// type, title, username, folder, tags, favourite and trash state.
func (o Overview) Slim() Overview {
	return Overview{ID: o.ID, Type: o.Type, Title: o.Title, Username: o.Username, Folder: o.Folder,
		Tags: o.Tags, Favorite: o.Favorite, Trashed: o.Trashed}
}

// Filter narrows lists and searches.
type Filter struct {
	Type     item.Type `json:"type,omitempty"`
	Tag      string    `json:"tag,omitempty"`
	Folder   string    `json:"folder,omitempty"`
	Favorite bool      `json:"favorite,omitempty"`
	// Trash selects items in the trash instead of the others.
	Trash bool `json:"trash,omitempty"`
	// Vault narrows to one vault (id, id prefix or name).
	Vault string `json:"vault,omitempty"`
}

func (f Filter) match(o *Overview) bool {
	if o.Trashed != f.Trash {
		return false
	}
	if f.Type != "" && o.Type != f.Type {
		return false
	}
	if f.Tag != "" && !slices.ContainsFunc(o.Tags, func(t string) bool { return strings.EqualFold(t, f.Tag) }) {
		return false
	}
	if f.Folder != "" {
		want := strings.Trim(f.Folder, "/")
		if !strings.EqualFold(o.Folder, want) && !strings.HasPrefix(strings.ToLower(o.Folder), strings.ToLower(want)+"/") {
			return false
		}
	}
	if f.Favorite && !o.Favorite {
		return false
	}
	return true
}

// List returns the overviews that pass the filter, sorted by title.
func (v *Vault) List(ctx context.Context, f Filter) ([]Overview, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	order := v.order
	if f.Vault != "" {
		s, err := v.findVault(f.Vault)
		if err != nil {
			return nil, err
		}
		order = []string{s.id}
	}
	var hits []*Overview
	for _, id := range order {
		for _, o := range v.vaults[id].views {
			if f.match(o) {
				hits = append(hits, o)
			}
		}
	}
	slices.SortFunc(hits, byTitle)
	out := make([]Overview, len(hits))
	for i, o := range hits {
		out[i] = *o
	}
	return out, nil
}

// Counts returns how many items there are, outside and inside the trash.
func (v *Vault) Counts(ctx context.Context) (items, trashed int, err error) {
	if err := v.refresh(ctx); err != nil {
		return 0, 0, err
	}
	for _, s := range v.vaults {
		for _, o := range s.views {
			if o.Trashed {
				trashed++
			} else {
				items++
			}
		}
	}
	return items, trashed, nil
}

// Match is a search hit.
type Match struct {
	Overview
	Score int `json:"score"`
}

// Find searches titles, usernames, URLs, tags and folders with a fuzzy
// match and returns hits best first.
func (v *Vault) Find(ctx context.Context, query string, f Filter) ([]Match, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	words := strings.Fields(strings.ToLower(query))
	var out []Match
	for _, id := range v.order {
		for _, o := range v.vaults[id].views {
			if !f.match(o) {
				continue
			}
			if s := scoreOverview(words, o); s > 0 {
				out = append(out, Match{*o, s})
			}
		}
	}
	slices.SortFunc(out, func(a, b Match) int {
		if a.Score != b.Score {
			return b.Score - a.Score
		}
		return byTitle(&a.Overview, &b.Overview)
	})
	return out, nil
}

// resolve finds the one item a reference names: an id, an id prefix of at
// least four characters, a title (case-insensitive), or failing those a
// unique title substring. Two matches are an error listing both.
func (v *Vault) resolve(ctx context.Context, ref string, trash bool) (*vaultState, *Overview, error) {
	return v.resolveIn(ctx, ref, trash, "")
}

// resolveIn is resolve limited to one vault (by id) when only is not "".
func (v *Vault) resolveIn(ctx context.Context, ref string, trash bool, only string) (*vaultState, *Overview, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, nil, err
	}
	order := v.order
	if only != "" {
		order = []string{only}
	}
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, nil, fmt.Errorf("%w: empty name", ErrNotFound)
	}
	type hit struct {
		s *vaultState
		o *Overview
	}
	// decide turns the hits of one rule into an answer: one hit is it, two
	// or more are ambiguous, none passes to the next rule.
	decide := func(hits []hit) (*vaultState, *Overview, bool, error) {
		switch len(hits) {
		case 0:
			return nil, nil, false, nil
		case 1:
			return hits[0].s, hits[0].o, true, nil
		}
		e := &AmbiguousError{Query: ref}
		for _, h := range hits {
			e.Candidates = append(e.Candidates, Candidate{ID: h.o.ID, Title: h.o.Title, Type: string(h.o.Type)})
		}
		sort.Slice(e.Candidates, func(i, j int) bool { return e.Candidates[i].ID < e.Candidates[j].ID })
		return nil, nil, true, e
	}
	scan := func(match func(id string, o *Overview) bool) []hit {
		var hits []hit
		for _, vid := range order {
			s := v.vaults[vid]
			for id, o := range s.views {
				if o.Trashed == trash && match(id, o) {
					hits = append(hits, hit{s, o})
				}
			}
		}
		return hits
	}
	lref := strings.ToLower(ref)
	// The rules in order: the id, an id prefix of four or more characters,
	// the title, a part of the title. The first two rules are map and
	// index lookups, so a lookup by id or exact title does not walk every
	// item.
	var byID, byTitle []hit
	for _, vid := range order {
		s := v.vaults[vid]
		if o, ok := s.views[lref]; ok && o.Trashed == trash {
			byID = append(byID, hit{s, o})
		}
	}
	if s, o, done, err := decide(byID); done {
		return s, o, err
	}
	if len(lref) >= 4 && idLike(lref) {
		if s, o, done, err := decide(scan(func(id string, _ *Overview) bool { return strings.HasPrefix(id, lref) })); done {
			return s, o, err
		}
	}
	for _, vid := range order {
		s := v.vaults[vid]
		for _, o := range s.titleIndex()[lref] {
			if o.Trashed == trash {
				byTitle = append(byTitle, hit{s, o})
			}
		}
	}
	if s, o, done, err := decide(byTitle); done {
		return s, o, err
	}
	if s, o, done, err := decide(scan(func(_ string, o *Overview) bool { return strings.Contains(o.lower.title, lref) })); done {
		return s, o, err
	}
	where := ""
	if trash {
		where = " in the trash"
	}
	return nil, nil, fmt.Errorf("%w: nothing%s matches %q", ErrNotFound, where, ref)
}

// idLike says whether s could be (part of) an item id: ids use the
// lower-case base32 alphabet of newID.
func idLike(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// titleIndex maps each lower-cased title to its overviews. It is built on
// first use and dropped whenever the views change.
func (s *vaultState) titleIndex() map[string][]*Overview {
	if s.titles == nil {
		s.titles = make(map[string][]*Overview, len(s.views))
		for _, o := range s.views {
			s.titles[o.lower.title] = append(s.titles[o.lower.title], o)
		}
	}
	return s.titles
}

// Get returns the current revision of the item ref names, read back from the
// file and authenticated against the log.
func (v *Vault) Get(ctx context.Context, ref string) (item.Item, error) {
	s, o, err := v.resolve(ctx, ref, false)
	if errors.Is(err, ErrNotFound) {
		// Fall back to the trash, but report a miss there as a miss
		// everywhere, not as "nothing in the trash matches".
		if ts, to, terr := v.resolve(ctx, ref, true); !errors.Is(terr, ErrNotFound) {
			s, o, err = ts, to, terr
		}
	}
	if err != nil {
		return item.Item{}, err
	}
	return v.read(s, o.ID)
}

func (v *Vault) read(s *vaultState, id string) (item.Item, error) {
	r, err := v.st.Item(s.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return item.Item{}, tampered("item %s is in the log but its row is gone: it was deleted behind safe's back", id)
	}
	if err != nil {
		return item.Item{}, err
	}
	it, err := v.openRow(s, r)
	if err != nil {
		return item.Item{}, &IntegrityError{Problems: []string{err.Error()}}
	}
	return it, nil
}

// Add stores new items in one transaction and returns them with their ids
// and revisions. Items must not carry ids.
func (v *Vault) Add(ctx context.Context, items []item.Item) ([]item.Item, error) {
	return v.AddTo(ctx, "", items)
}

// AddTo adds items to the named vault (ref: id, id prefix or name; ""
// means the personal vault).
func (v *Vault) AddTo(ctx context.Context, vault string, items []item.Item) ([]item.Item, error) {
	return v.add(ctx, vault, items, false)
}

// Import is AddTo for items that come from another password manager: the
// creation, modification and password-change times they carry are kept
// (a time in the future, or none, becomes now), so that `safe audit`
// sees how old an imported password really is.
func (v *Vault) Import(ctx context.Context, vault string, items []item.Item) ([]item.Item, error) {
	return v.add(ctx, vault, items, true)
}

func (v *Vault) add(ctx context.Context, vault string, items []item.Item, keepDates bool) ([]item.Item, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	s := v.vaults[v.order[0]]
	if vault != "" {
		var err error
		if s, err = v.findVault(vault); err != nil {
			return nil, err
		}
	}
	now := v.opts.now().UTC()
	var out []item.Item
	for i := range items {
		it := items[i].Clone()
		it.Finish()
		if it.ID != "" {
			return nil, fmt.Errorf("item %d: %w: new items get their id from safe; remove \"id\"", i+1, item.ErrInvalid)
		}
		if err := it.Validate(); err != nil {
			if len(items) > 1 {
				return nil, fmt.Errorf("item %d (%q): %w", i+1, it.Title, err)
			}
			return nil, err
		}
		id, err := newID(v.opts.Rand)
		if err != nil {
			return nil, err
		}
		created, modified, changed := now, now, now
		if keepDates {
			created, modified, changed = pastOr(it.Created, now), pastOr(it.Modified, now), pastOr(it.PasswordChanged, now)
		}
		it.ID, it.Created, it.Modified, it.Revision = id, created, modified, 0
		// Attachments come only through Attach (their chunks must exist),
		// and the stamps are safe's to set (an import's are kept).
		it.Attachments, it.Conflicts, it.PasswordChanged = nil, nil, time.Time{}
		if it.Password != "" {
			it.PasswordChanged = changed
		}
		it.Trashed = nil
		out = append(out, it)
	}
	if err := v.write(ctx, s, out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// pastOr returns t in UTC if it is set and not after now, else now.
func pastOr(t, now time.Time) time.Time {
	if t.IsZero() || t.After(now) {
		return now
	}
	return t.UTC()
}

// Update replaces the item ref names with next, provided the item is still
// at revision base (0 skips the check). It returns the stored item.
func (v *Vault) Update(ctx context.Context, ref string, base uint64, next item.Item) (item.Item, error) {
	s, o, err := v.resolve(ctx, ref, false)
	if err != nil {
		return item.Item{}, err
	}
	cur, err := v.read(s, o.ID)
	if err != nil {
		return item.Item{}, err
	}
	if base != 0 && base != cur.Revision {
		return item.Item{}, fmt.Errorf("%w: %q is at revision %d, the edit was based on %d; read it again and redo the edit", ErrConflict, cur.Title, cur.Revision, base)
	}
	next = next.Clone()
	next.Finish()
	next.ID, next.Created, next.Revision, next.Trashed = cur.ID, cur.Created, cur.Revision, cur.Trashed
	next.Attachments = cur.Attachments
	next.PasswordChanged = cur.PasswordChanged
	if next.Password != cur.Password {
		next.PasswordChanged = v.opts.now().UTC()
	}
	if err := next.Validate(); err != nil {
		return item.Item{}, err
	}
	next.Modified = v.opts.now().UTC()
	items := []item.Item{next}
	if err := v.write(ctx, s, items, nil); err != nil {
		return item.Item{}, err
	}
	return items[0], nil
}

// Trash moves an item to the trash; Restore brings it back.
func (v *Vault) Trash(ctx context.Context, ref string) (item.Item, error) {
	return v.setTrashed(ctx, ref, true)
}

// Restore takes an item out of the trash.
func (v *Vault) Restore(ctx context.Context, ref string) (item.Item, error) {
	return v.setTrashed(ctx, ref, false)
}

func (v *Vault) setTrashed(ctx context.Context, ref string, trash bool) (item.Item, error) {
	s, o, err := v.resolve(ctx, ref, !trash)
	if err != nil {
		return item.Item{}, err
	}
	it, err := v.read(s, o.ID)
	if err != nil {
		return item.Item{}, err
	}
	now := v.opts.now().UTC()
	if trash {
		it.Trashed = &now
	} else {
		it.Trashed = nil
	}
	it.Modified = now
	items := []item.Item{it}
	if err := v.write(ctx, s, items, nil); err != nil {
		return item.Item{}, err
	}
	return items[0], nil
}

// Purge deletes a trashed item for good: its rows, its history and its
// attachments. The log keeps a signed purge entry.
func (v *Vault) Purge(ctx context.Context, ref string) (item.Item, error) {
	s, o, err := v.resolve(ctx, ref, true)
	if errors.Is(err, ErrNotFound) {
		if _, _, err2 := v.resolve(ctx, ref, false); err2 == nil {
			return item.Item{}, fmt.Errorf("%w: move it there first with `safe rm %s`", ErrNotInTrash, ref)
		}
	}
	if err != nil {
		return item.Item{}, err
	}
	it, err := v.read(s, o.ID)
	if err != nil {
		return item.Item{}, err
	}
	doomed, err := v.withAllAttachments(s, it)
	if err != nil {
		return item.Item{}, err
	}
	return it, v.write(ctx, s, nil, []item.Item{doomed})
}

// withAllAttachments returns a copy of it listing the attachments of every
// revision, so that purging removes chunks that only history referred to.
func (v *Vault) withAllAttachments(s *vaultState, it item.Item) (item.Item, error) {
	out := it.Clone()
	rows, err := v.st.History(s.id, it.ID)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		old, err := v.openPayload(s, r)
		if err != nil {
			return out, &IntegrityError{Problems: []string{err.Error()}}
		}
		for _, a := range old.Attachments {
			if !slices.ContainsFunc(out.Attachments, func(b item.Attachment) bool { return b.ID == a.ID }) {
				out.Attachments = append(out.Attachments, a)
			}
		}
	}
	return out, nil
}

// EmptyTrash purges every trashed item and returns how many.
func (v *Vault) EmptyTrash(ctx context.Context) (int, error) {
	if err := v.refresh(ctx); err != nil {
		return 0, err
	}
	n := 0
	for _, vid := range v.order {
		s := v.vaults[vid]
		var doomed []item.Item
		for id, o := range s.views {
			if o.Trashed {
				it, err := v.read(s, id)
				if err != nil {
					return n, err
				}
				if it, err = v.withAllAttachments(s, it); err != nil {
					return n, err
				}
				doomed = append(doomed, it)
			}
		}
		if len(doomed) == 0 {
			continue
		}
		if err := v.write(ctx, s, nil, doomed); err != nil {
			return n, err
		}
		n += len(doomed)
	}
	return n, nil
}

// Revision is one revision of an item.
type Revision struct {
	item.Item
	Current bool `json:"current"`
}

// History returns every revision of an item, oldest first, each
// authenticated against the log.
func (v *Vault) History(ctx context.Context, ref string) ([]Revision, error) {
	s, o, err := v.resolve(ctx, ref, false)
	if errors.Is(err, ErrNotFound) {
		s, o, err = v.resolve(ctx, ref, true)
	}
	if err != nil {
		return nil, err
	}
	if err := v.checkChain(ctx, s); err != nil {
		return nil, err
	}
	digests, err := v.logDigests(s.id, o.ID)
	if err != nil {
		return nil, err
	}
	since, err := v.revisionsSincePurge(s.id, o.ID)
	if err != nil {
		return nil, err
	}
	rows, err := v.st.History(s.id, o.ID)
	if err != nil {
		return nil, err
	}
	cur, err := v.read(s, o.ID)
	if err != nil {
		return nil, err
	}
	have := map[uint64]bool{}
	for _, r := range rows {
		have[r.Revision] = true
	}
	for rev := range since {
		if rev < cur.Revision && !have[rev] {
			return nil, tampered("revision %d of item %s is missing from its history: it was deleted behind safe's back", rev, o.ID)
		}
	}
	var out []Revision
	for _, r := range rows {
		want, ok := digests[r.Revision]
		if !ok || !equalDigest(digest(r.Payload), want) {
			return nil, tampered("history of item %s revision %d is not the one the log recorded", o.ID, r.Revision)
		}
		it, err := v.openPayload(s, r)
		if err != nil {
			return nil, &IntegrityError{Problems: []string{err.Error()}}
		}
		out = append(out, Revision{Item: it})
	}
	return append(out, Revision{Item: cur, Current: true}), nil
}

// revisionsSincePurge lists the put revisions of an item logged after its
// last purge: the ones its history must hold.
func (v *Vault) revisionsSincePurge(vault, id string) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	err := v.st.ItemLog(vault, id, func(r store.LogRow) error {
		e, err := vlog.DecodeBody(r.Body)
		if err != nil {
			return tampered("log entry %d: %v", r.Seq, err)
		}
		if e.Op == vlog.OpPurge {
			clear(out)
		} else {
			out[e.Revision] = true
		}
		return nil
	})
	return out, err
}

// logDigests maps each logged revision of an item to its payload digest.
func (v *Vault) logDigests(vault, id string) (map[uint64][]byte, error) {
	out := map[uint64][]byte{}
	err := v.st.ItemLog(vault, id, func(r store.LogRow) error {
		e, err := vlog.DecodeBody(r.Body)
		if err != nil {
			return tampered("log entry %d: %v", r.Seq, err)
		}
		if e.Item != id || e.Revision != r.Revision || e.Seq != r.Seq {
			return tampered("log entry %d was moved or its columns edited", r.Seq)
		}
		if e.Op == vlog.OpPut {
			out[e.Revision] = append([]byte(nil), e.Digest[:]...)
		}
		return nil
	})
	return out, err
}

// RestoreRevision makes an earlier revision's content current again, as a
// new revision; nothing is lost, the revision it replaces stays in history.
func (v *Vault) RestoreRevision(ctx context.Context, ref string, rev uint64) (item.Item, error) {
	revs, err := v.History(ctx, ref)
	if err != nil {
		return item.Item{}, err
	}
	var old *item.Item
	for i := range revs {
		if revs[i].Revision == rev {
			old = &revs[i].Item
		}
	}
	if old == nil {
		return item.Item{}, fmt.Errorf("%w: %q has no revision %d; see `safe history %s`", ErrNotFound, ref, rev, ref)
	}
	cur := revs[len(revs)-1].Item
	next := old.Clone()
	next.Revision, next.Trashed = cur.Revision, cur.Trashed
	// The old revision's attachments come back (their chunks are kept until
	// the item is purged), and the current ones stay: nothing disappears.
	for _, a := range cur.Attachments {
		if !slices.ContainsFunc(next.Attachments, func(b item.Attachment) bool { return b.ID == a.ID || b.Name == a.Name }) {
			next.Attachments = append(next.Attachments, a)
		}
	}
	next.Modified = v.opts.now().UTC()
	if next.Password != cur.Password {
		next.PasswordChanged = next.Modified
	}
	s, err := v.vaultOf(cur.ID)
	if err != nil {
		return item.Item{}, err
	}
	items := []item.Item{next}
	if err := v.write(ctx, s, items, nil); err != nil {
		return item.Item{}, err
	}
	return items[0], nil
}

// vaultOf finds the vault that holds an item.
func (v *Vault) vaultOf(id string) (*vaultState, error) {
	for _, vid := range v.order {
		if _, ok := v.vaults[vid].views[id]; ok {
			return v.vaults[vid], nil
		}
	}
	return nil, fmt.Errorf("%w: item %s", ErrNotFound, id)
}

// write stores new revisions of puts and purges the items in purges, with
// their log entries and the new head, in one transaction. On success it
// fills each put's Revision and updates the in-memory index.
// written clears the pending marks of attachment blobs that this write
// makes reachable.
func (v *Vault) write(ctx context.Context, s *vaultState, puts, purges []item.Item, written ...string) error {
	if v.mk == nil {
		return ErrLocked
	}
	if s.org != "" && (len(puts) > 0 || len(purges) > 0) {
		if err := v.mayWriteShared(s); err != nil {
			return err
		}
	}
	if v.vaults[s.id] != s {
		// The vault was reloaded (and its old key freed) since s was
		// looked up: never seal under a key that may have been wiped.
		return fmt.Errorf("vault %s was reloaded during the write; try again", s.id)
	}
	type change struct {
		row    store.ItemRow
		old    *store.ItemRow
		entry  *signedEntry
		info   *entryInfo
		it     *item.Item
		purged bool
	}
	seq, head := s.seq, s.head
	now := v.opts.now().UnixMilli()
	var changes []change
	logEntry := func(op byte, id string, rev uint64, payload []byte) (*signedEntry, *entryInfo, error) {
		seq++
		e := &vlog.Entry{Op: op, Seq: seq, Time: now, Prev: head, Revision: rev, Vault: s.id, Item: id, Device: v.device.ID}
		if payload != nil {
			copy(e.Digest[:], digest(payload))
		}
		// The chain links bodies, not signatures: sign after the loop,
		// on every core (a key rotation signs thousands of entries).
		body, err := e.Body()
		if err != nil {
			return nil, nil, err
		}
		head = vlog.Next(head, body)
		return &signedEntry{body: body}, &entryInfo{seq: seq, op: op, revision: rev, digest: append([]byte(nil), e.Digest[:]...)}, nil
	}
	for i := range puts {
		it := &puts[i]
		var old *store.ItemRow
		if it.Revision > 0 {
			r, err := v.st.Item(s.id, it.ID)
			if err != nil {
				return fmt.Errorf("read item %s before writing: %w", it.ID, err)
			}
			old = &r
		}
		rev := it.Revision + 1
		payloadItem := it.Clone()
		payloadItem.Revision = 0
		pt, err := encodeItem(payloadItem)
		if err != nil {
			return err
		}
		payload, err := envelope.Seal(v.opts.Rand, s.key, itemContext(s.acct, s.id, it.ID, rev), pt)
		wipeBytes(pt)
		if err != nil {
			return err
		}
		enc, info, err := logEntry(vlog.OpPut, it.ID, rev, payload)
		if err != nil {
			return err
		}
		changes = append(changes, change{row: store.ItemRow{Vault: s.id, Item: it.ID, Revision: rev, Payload: payload}, old: old, entry: enc, info: info, it: it})
	}
	for i := range purges {
		it := &purges[i]
		enc, info, err := logEntry(vlog.OpPurge, it.ID, it.Revision, nil)
		if err != nil {
			return err
		}
		changes = append(changes, change{row: store.ItemRow{Vault: s.id, Item: it.ID, Revision: it.Revision}, entry: enc, info: info, it: it, purged: true})
	}
	entries := make([]*signedEntry, len(changes))
	for i := range changes {
		entries[i] = changes[i].entry
	}
	if err := v.signEntries(entries); err != nil {
		return err
	}
	hr := &headRecord{Version: RecordVersion, Vault: s.id, Seq: seq, Hash: head[:]}
	headRaw := setMAC(v.macKey, "head", hr, &hr.MAC)
	err := v.st.Update(ctx, func(tx *store.Tx) error {
		for _, c := range changes {
			if c.purged {
				var blobs []string
				for _, a := range c.it.Attachments {
					blobs = append(blobs, a.ID)
				}
				if err := tx.DeleteItem(s.id, c.row.Item, blobs); err != nil {
					return err
				}
			} else {
				if c.old != nil {
					if err := tx.PutHistory(*c.old); err != nil {
						return err
					}
				}
				if err := tx.PutItem(c.row); err != nil {
					return err
				}
			}
			if err := tx.AppendLog(store.LogRow{Vault: s.id, Seq: c.info.seq, Item: c.row.Item, Revision: c.info.revision, Body: c.entry.body, Sig: c.entry.sig}); err != nil {
				return err
			}
		}
		for _, b := range written {
			if err := tx.ClearPending(s.id, b); err != nil {
				return err
			}
		}
		return tx.PutHead(s.id, headRaw)
	})
	if err != nil {
		return err
	}
	s.seq, s.head = seq, head
	defer func() {
		if s.seq-s.snapSeq >= snapshotEvery {
			v.saveSnapshot(ctx, s)
		}
	}()
	for _, c := range changes {
		s.index[c.row.Item] = c.info
		if c.purged {
			delete(s.views, c.row.Item)
			s.titles = nil
			continue
		}
		c.it.Revision = c.row.Revision
		s.views[c.row.Item] = overviewOf(s.id, *c.it)
		s.titles = nil
	}
	return nil
}

// signedEntry is a log entry's body and signature, as the store keeps them.
type signedEntry struct{ body, sig []byte }

// signEntries signs each entry's body with this device's key, spread over
// the cores (signatures are deterministic and the key is read-only).
func (v *Vault) signEntries(entries []*signedEntry) error {
	workers := min(runtime.GOMAXPROCS(0), len(entries))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(entries); i += workers {
				sig, err := v.signer.Sign(vlog.SignContext, entries[i].body)
				if err != nil {
					errs[w] = fmt.Errorf("sign log entry: %w", err)
					return
				}
				entries[i].sig = sig
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
