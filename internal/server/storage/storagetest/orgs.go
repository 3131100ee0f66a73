package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

// Organisations: a log of statements under a compare-and-swap head, an
// index naming who may see it, and shared vaults whose logs and blobs are
// kept as an account's vaults' are.

func orgID(name string) string { return id("org " + name) }

func orgHead(org string, seq uint64) []byte {
	return fill(fmt.Sprintf("org head %s %d", org, seq), 64)
}

// orgEntry makes a plausible statement.
func orgEntry(seq uint64, tag string) storage.OrgEntry {
	return storage.OrgEntry{
		Seq:  seq,
		Body: fill(fmt.Sprintf("org body %d %s", seq, tag), 180),
		Sig:  fill(fmt.Sprintf("org sig %d %s", seq, tag), 96),
	}
}

// orgLog makes statements from..to (inclusive).
func orgLog(from, to uint64, tag string) []storage.OrgEntry {
	var out []storage.OrgEntry
	for seq := from; seq <= to; seq++ {
		out = append(out, orgEntry(seq, tag))
	}
	return out
}

func active(a storage.Account) storage.OrgIndex {
	return storage.OrgIndex{Account: a.ID, Email: a.Email, State: "active"}
}

func invited(email string) storage.OrgIndex {
	return storage.OrgIndex{Email: email, State: "invited"}
}

// mustOrg creates an organisation with statements 1..n.
func mustOrg(t *testing.T, s storage.Store, name string, n uint64, index ...storage.OrgIndex) string {
	t.Helper()
	org := orgID(name)
	if err := s.CreateOrg(t.Context(), org, orgLog(1, n, name), orgHead(org, n), index); err != nil {
		t.Fatalf("CreateOrg(%s): %v", name, err)
	}
	return org
}

func mustOrgVault(t *testing.T, s storage.Store, org, name string) string {
	t.Helper()
	v := id("shared vault " + name)
	if err := s.PutOrgVault(t.Context(), org, v, genesis(v)); err != nil {
		t.Fatalf("PutOrgVault(%s): %v", name, err)
	}
	return v
}

func readOrgLog(t *testing.T, s storage.Store, org string, since uint64, limit int) []storage.OrgEntry {
	t.Helper()
	var out []storage.OrgEntry
	if err := s.OrgEntries(t.Context(), org, since, limit, func(e storage.OrgEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("OrgEntries(since %d, limit %d): %v", since, limit, err)
	}
	return out
}

func checkOrgLog(t *testing.T, got, want []storage.OrgEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d statements, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Body, want[i].Body) || !bytes.Equal(got[i].Sig, want[i].Sig) {
			t.Fatalf("statement %d: got seq %d, want seq %d (or bytes differ)", i, got[i].Seq, want[i].Seq)
		}
	}
}

func checkOrgHead(t *testing.T, s storage.Store, org string, head uint64) {
	t.Helper()
	got, err := s.Org(t.Context(), org)
	if err != nil {
		t.Fatalf("Org: %v", err)
	}
	if got.Org != org || got.Head != head || !bytes.Equal(got.HeadHash, orgHead(org, head)) {
		t.Fatalf("Org = %s at head %d; want %s at head %d with its hash", got.Org, got.Head, org, head)
	}
}

func checkOrgsFor(t *testing.T, s storage.Store, account, email string, want ...storage.OrgRef) {
	t.Helper()
	got, err := s.OrgsFor(t.Context(), account, email)
	if err != nil {
		t.Fatalf("OrgsFor(%q, %q): %v", account, email, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("OrgsFor(%q, %q) = %+v, want %+v", account, email, got, want)
	}
}

// sortedRefs sorts refs by organisation id, the order OrgsFor keeps.
func sortedRefs(refs ...storage.OrgRef) []storage.OrgRef {
	slices.SortFunc(refs, func(a, b storage.OrgRef) int { return bytes.Compare([]byte(a.Org), []byte(b.Org)) })
	return refs
}

func vaultIDs(rows []storage.VaultRow) []string {
	var out []string
	for _, v := range rows {
		out = append(out, v.Vault)
	}
	slices.Sort(out)
	return out
}

func sameUsage(a, b storage.Usage) bool {
	return a.Vaults == b.Vaults && a.Entries == b.Entries && a.Bytes == b.Bytes &&
		a.Devices == b.Devices && a.LastSeen.Equal(b.LastSeen)
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func testCreateOrg(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	before := time.Now()
	org := mustOrg(t, s, "acme", 3, active(a))
	after := time.Now()

	got, err := s.Org(ctx, org)
	if err != nil {
		t.Fatalf("Org: %v", err)
	}
	if got.Org != org || got.Head != 3 || !bytes.Equal(got.HeadHash, orgHead(org, 3)) {
		t.Fatalf("Org = %+v; want head 3 with its hash", got)
	}
	// The store stamps the creation, to the microsecond, in UTC.
	if got.Created.Location() != time.UTC || got.Created.Before(before.Add(-time.Minute)) || got.Created.After(after.Add(time.Minute)) ||
		!got.Created.Equal(got.Created.Truncate(time.Microsecond)) {
		t.Fatalf("Org created %v; want a UTC time to the microsecond between %v and %v", got.Created, before, after)
	}
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), orgLog(1, 3, "acme"))
	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: org, Head: 3, State: "active"})

	// The id is taken: nothing changes.
	err = s.CreateOrg(ctx, org, orgLog(1, 2, "again"), orgHead(org, 2), []storage.OrgIndex{invited("mallory@example.com")})
	wantErr(t, "CreateOrg of an existing id", err, storage.ErrExists)
	checkOrgHead(t, s, org, 3)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), orgLog(1, 3, "acme"))
	checkOrgsFor(t, s, "", "mallory@example.com")

	// Statements are numbered from 1, without gaps; none is no log.
	other := orgID("other")
	for name, log := range map[string][]storage.OrgEntry{
		"none":         nil,
		"from 2":       orgLog(2, 3, "x"),
		"gap":          {orgEntry(1, "x"), orgEntry(3, "x")},
		"out of order": {orgEntry(2, "x"), orgEntry(1, "x")},
	} {
		if err := s.CreateOrg(ctx, other, log, orgHead(other, 3), nil); err == nil {
			t.Fatalf("CreateOrg accepted a log numbered %s", name)
		}
		_, err := s.Org(ctx, other)
		wantErr(t, "Org after a refused CreateOrg ("+name+")", err, storage.ErrNotFound)
	}
	// An organisation with a one-statement log and an empty index.
	single := mustOrg(t, s, "single", 1)
	checkOrgHead(t, s, single, 1)
	checkOrgLog(t, readOrgLog(t, s, single, 0, 100), orgLog(1, 1, "single"))

	_, err = s.Org(ctx, orgID("nowhere"))
	wantErr(t, "Org unknown", err, storage.ErrNotFound)
}

func testAppendOrg(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	b, _ := mustCreate(t, s, "bob")
	org := mustOrg(t, s, "acme", 3, active(a))
	log := orgLog(1, 3, "acme")

	// Two statements; the index now has bob's invitation as well.
	index := []storage.OrgIndex{active(a), invited(b.Email)}
	if err := s.AppendOrg(ctx, org, 3, orgLog(4, 5, "more"), orgHead(org, 5), index); err != nil {
		t.Fatalf("AppendOrg: %v", err)
	}
	log = append(log, orgLog(4, 5, "more")...)
	checkOrgHead(t, s, org, 5)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), log)
	checkOrgsFor(t, s, b.ID, b.Email, storage.OrgRef{Org: org, Head: 5, State: "invited"})

	// A stale base, behind or ahead, changes nothing: not the head, the
	// log or the index.
	for _, base := range []uint64{0, 3, 4, 6, 10} {
		err := s.AppendOrg(ctx, org, base, []storage.OrgEntry{orgEntry(base+1, "stale")}, orgHead(org, 99), nil)
		wantErr(t, fmt.Sprintf("AppendOrg(base %d at head 5)", base), err, storage.ErrStale)
	}
	checkOrgHead(t, s, org, 5)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), log)
	checkOrgsFor(t, s, b.ID, b.Email, storage.OrgRef{Org: org, Head: 5, State: "invited"})

	// Statements must continue from base; an empty append is refused.
	for name, bad := range map[string][]storage.OrgEntry{
		"none":   nil,
		"gap":    {orgEntry(7, "gap")},
		"repeat": {orgEntry(5, "repeat")},
		"order":  {orgEntry(7, "order"), orgEntry(6, "order")},
	} {
		err := s.AppendOrg(ctx, org, 5, bad, orgHead(org, 7), nil)
		if err == nil || errors.Is(err, storage.ErrStale) {
			t.Fatalf("AppendOrg of statements numbered %s: %v; want an error other than ErrStale", name, err)
		}
	}
	checkOrgHead(t, s, org, 5)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), log)
	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: org, Head: 5, State: "active"})

	// A failure after the head moved undoes all of it: an index row of no
	// known state is refused with the statements before it.
	bad := []storage.OrgIndex{active(a), {Account: b.ID, Email: b.Email, State: "owner"}}
	if err := s.AppendOrg(ctx, org, 5, orgLog(6, 6, "bad index"), orgHead(org, 6), bad); err == nil || errors.Is(err, storage.ErrStale) {
		t.Fatalf("AppendOrg with an index row in state \"owner\": %v; want an error other than ErrStale", err)
	}
	checkOrgHead(t, s, org, 5)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 100), log)
	checkOrgsFor(t, s, b.ID, b.Email, storage.OrgRef{Org: org, Head: 5, State: "invited"})

	err := s.AppendOrg(ctx, orgID("nowhere"), 0, orgLog(1, 1, "x"), orgHead(org, 1), nil)
	wantErr(t, "AppendOrg to an unknown organisation", err, storage.ErrNotFound)
	err = s.AppendOrg(ctx, orgID("nowhere"), 5, orgLog(6, 6, "x"), orgHead(org, 6), nil)
	wantErr(t, "AppendOrg to an unknown organisation", err, storage.ErrNotFound)

	// Racing appends from one base: exactly one wins; the log and the
	// index are its own.
	const n = 20
	errs := make([]error, n)
	race(n, func(i int) {
		tag := fmt.Sprintf("race %d", i)
		index := []storage.OrgIndex{active(a), {Account: id(tag), Email: tag + "@example.com", State: "accepted"}}
		errs[i] = s.AppendOrg(ctx, org, 5, orgLog(6, 7, tag), orgHead(org, 7), index)
	})
	winner := oneWinner(t, "racing AppendOrg", errs, storage.ErrStale)
	tag := fmt.Sprintf("race %d", winner)
	checkOrgLog(t, readOrgLog(t, s, org, 5, 100), orgLog(6, 7, tag))
	checkOrgHead(t, s, org, 7)
	for i := range n {
		other := fmt.Sprintf("race %d", i)
		var want []storage.OrgRef
		if i == winner {
			want = []storage.OrgRef{{Org: org, Head: 7, State: "accepted"}}
		}
		checkOrgsFor(t, s, id(other), "", want...)
		checkOrgsFor(t, s, "", other+"@example.com", want...)
	}
}

// oneWinner checks that exactly one of errs is nil and the others are
// lost, and returns the winner.
func oneWinner(t *testing.T, what string, errs []error, lost error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: both %d and %d won", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lost):
			t.Fatalf("%s: %v", what, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: nobody won", what)
	}
	return winner
}

// orgAppendRace has writers goroutines, spread over stores, each append
// perEach statements to one organisation, one at a time from the head
// they last read, retrying on ErrStale; then checks the log has every
// statement once, in an unbroken sequence, and the index is the last
// writer's.
func orgAppendRace(t *testing.T, writers, perEach int, stores ...storage.Store) {
	ctx := t.Context()
	org := mustOrg(t, stores[0], "raced", 1)
	errs := make([]error, writers)
	race(writers, func(w int) {
		s := stores[w%len(stores)]
		for k := 0; k < perEach; {
			row, err := s.Org(ctx, org)
			if err != nil {
				errs[w] = err
				return
			}
			tag := fmt.Sprintf("w%d k%d", w, k)
			index := []storage.OrgIndex{{Account: id(tag), Email: tag + "@example.com", State: "active"}}
			err = s.AppendOrg(ctx, org, row.Head, []storage.OrgEntry{orgEntry(row.Head+1, tag)}, orgHead(org, row.Head+1), index)
			switch {
			case err == nil:
				k++
			case !errors.Is(err, storage.ErrStale):
				errs[w] = err
				return
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("racing organisation appends: %v", err)
		}
	}
	last := stores[len(stores)-1]
	total := uint64(writers*perEach) + 1
	checkOrgHead(t, last, org, total)
	got := readOrgLog(t, last, org, 1, int(total)+10)
	if uint64(len(got)) != total-1 {
		t.Fatalf("after racing organisation appends: %d statements, want %d", len(got), total-1)
	}
	seen := make(map[string]bool)
	var lastTag string
	for i, e := range got {
		if e.Seq != uint64(i+2) {
			t.Fatalf("after racing organisation appends: statement %d has seq %d", i, e.Seq)
		}
		tag := ""
		for w := range writers {
			for k := range perEach {
				cand := fmt.Sprintf("w%d k%d", w, k)
				if bytes.Equal(e.Body, orgEntry(e.Seq, cand).Body) && bytes.Equal(e.Sig, orgEntry(e.Seq, cand).Sig) {
					tag = cand
				}
			}
		}
		if tag == "" || seen[tag] {
			t.Fatalf("after racing organisation appends: statement %d is no writer's, or a repeat", e.Seq)
		}
		seen[tag], lastTag = true, tag
	}
	// The index is the one the last append gave, and only that.
	for tag := range seen {
		var want []storage.OrgRef
		if tag == lastTag {
			want = []storage.OrgRef{{Org: org, Head: total, State: "active"}}
		}
		checkOrgsFor(t, last, id(tag), tag+"@example.com", want...)
	}
}

func testOrgAppendRace(t *testing.T, s storage.Store) { orgAppendRace(t, 8, 6, s) }

func testOrgEntries(t *testing.T, s storage.Store) {
	ctx := t.Context()
	org := mustOrg(t, s, "acme", 10)
	if err := s.AppendOrg(ctx, org, 10, orgLog(11, 25, "acme"), orgHead(org, 25), nil); err != nil {
		t.Fatalf("AppendOrg: %v", err)
	}
	other := mustOrg(t, s, "other", 3)
	all := append(orgLog(1, 10, "acme"), orgLog(11, 25, "acme")...)

	checkOrgLog(t, readOrgLog(t, s, org, 0, 1000), all)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 1), all[:1])
	checkOrgLog(t, readOrgLog(t, s, org, 0, 5), all[:5])
	checkOrgLog(t, readOrgLog(t, s, org, 5, 5), all[5:10])
	checkOrgLog(t, readOrgLog(t, s, org, 20, 100), all[20:])
	checkOrgLog(t, readOrgLog(t, s, org, 25, 100), nil)
	checkOrgLog(t, readOrgLog(t, s, org, 1000, 100), nil)
	checkOrgLog(t, readOrgLog(t, s, other, 0, 100), orgLog(1, 3, "other"))
	var paged []storage.OrgEntry
	for since := uint64(0); ; {
		page := readOrgLog(t, s, org, since, 7)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		since = page[len(page)-1].Seq
	}
	checkOrgLog(t, paged, all)

	// The caller may keep what it was given.
	var kept []storage.OrgEntry
	if err := s.OrgEntries(ctx, org, 0, 100, func(e storage.OrgEntry) error {
		kept = append(kept, e)
		return nil
	}); err != nil {
		t.Fatalf("OrgEntries: %v", err)
	}
	checkOrgLog(t, kept, all)

	stop := errors.New("enough")
	calls := 0
	err := s.OrgEntries(ctx, org, 0, 100, func(storage.OrgEntry) error {
		if calls++; calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("OrgEntries with a failing fn: %v after %d calls; want the fn's error after 3", err, calls)
	}
	for _, limit := range []int{0, -1} {
		if err := s.OrgEntries(ctx, org, 0, limit, func(storage.OrgEntry) error { return nil }); err == nil {
			t.Fatalf("OrgEntries accepted limit %d", limit)
		}
	}
	err = s.OrgEntries(ctx, orgID("nowhere"), 0, 100, func(storage.OrgEntry) error { return nil })
	wantErr(t, "OrgEntries of an unknown organisation", err, storage.ErrNotFound)
}

func testOrgsFor(t *testing.T, s storage.Store) {
	a, _ := mustCreate(t, s, "alice")
	b, _ := mustCreate(t, s, "bob")
	c, _ := mustCreate(t, s, "carol")
	acme := mustOrg(t, s, "acme", 4,
		active(a),
		invited(b.Email),
		storage.OrgIndex{Account: c.ID, Email: c.Email, State: "accepted"})
	// Bob appears twice in beta (a member, and his address's invitation),
	// and carol under another address: the best state counts, and an
	// index row matches on either the account or the address.
	beta := mustOrg(t, s, "beta", 2,
		invited(b.Email),
		storage.OrgIndex{Account: b.ID, Email: b.Email, State: "active"},
		storage.OrgIndex{Account: c.ID, Email: "carol.work@example.com", State: "accepted"},
		invited("dave@example.com"))
	gamma := mustOrg(t, s, "gamma", 7,
		storage.OrgIndex{Account: c.ID, Email: c.Email, State: "accepted"},
		invited(c.Email),
		storage.OrgIndex{Account: c.ID, Email: c.Email, State: "active"})
	mustOrg(t, s, "nobody's", 1, invited("erin@example.com"))

	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: acme, Head: 4, State: "active"})
	checkOrgsFor(t, s, b.ID, b.Email, sortedRefs(
		storage.OrgRef{Org: acme, Head: 4, State: "invited"},
		storage.OrgRef{Org: beta, Head: 2, State: "active"})...)
	// By account alone, and by address alone.
	checkOrgsFor(t, s, b.ID, "", storage.OrgRef{Org: beta, Head: 2, State: "active"})
	checkOrgsFor(t, s, "", b.Email, sortedRefs(
		storage.OrgRef{Org: acme, Head: 4, State: "invited"},
		storage.OrgRef{Org: beta, Head: 2, State: "active"})...)
	checkOrgsFor(t, s, c.ID, "", sortedRefs(
		storage.OrgRef{Org: acme, Head: 4, State: "accepted"},
		storage.OrgRef{Org: beta, Head: 2, State: "accepted"},
		storage.OrgRef{Org: gamma, Head: 7, State: "active"})...)
	checkOrgsFor(t, s, "", "carol.work@example.com", storage.OrgRef{Org: beta, Head: 2, State: "accepted"})
	checkOrgsFor(t, s, id("account dave"), "dave@example.com", storage.OrgRef{Org: beta, Head: 2, State: "invited"})
	// Addresses compare lower-cased.
	checkOrgsFor(t, s, "", "Dave@Example.COM", storage.OrgRef{Org: beta, Head: 2, State: "invited"})
	// Nothing matches nothing: not an invitation's empty account.
	checkOrgsFor(t, s, "", "")
	checkOrgsFor(t, s, id("nobody"), "nobody@example.com")

	// Each append replaces the index and moves the head OrgsFor reports.
	ctx := t.Context()
	index := []storage.OrgIndex{active(a), {Account: b.ID, Email: b.Email, State: "accepted"}}
	if err := s.AppendOrg(ctx, acme, 4, orgLog(5, 6, "accept"), orgHead(acme, 6), index); err != nil {
		t.Fatalf("AppendOrg: %v", err)
	}
	checkOrgsFor(t, s, b.ID, b.Email, sortedRefs(
		storage.OrgRef{Org: acme, Head: 6, State: "accepted"},
		storage.OrgRef{Org: beta, Head: 2, State: "active"})...)
	checkOrgsFor(t, s, c.ID, c.Email, sortedRefs(
		storage.OrgRef{Org: beta, Head: 2, State: "accepted"},
		storage.OrgRef{Org: gamma, Head: 7, State: "active"})...)
	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: acme, Head: 6, State: "active"})
	// An empty index leaves nobody.
	if err := s.AppendOrg(ctx, acme, 6, orgLog(7, 7, "empty"), orgHead(acme, 7), nil); err != nil {
		t.Fatalf("AppendOrg: %v", err)
	}
	checkOrgsFor(t, s, a.ID, a.Email)
	checkOrgsFor(t, s, b.ID, b.Email, storage.OrgRef{Org: beta, Head: 2, State: "active"})
}

func testOrgVaults(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	own := mustVault(t, s, a.ID, "alice's")
	acme := mustOrg(t, s, "acme", 2, active(a))
	beta := mustOrg(t, s, "beta", 1, active(a))
	usage, err := s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}

	v1 := mustOrgVault(t, s, acme, "one")
	v2 := mustOrgVault(t, s, acme, "two")
	vb := mustOrgVault(t, s, beta, "beta's")
	got, err := s.Vault(ctx, v1)
	if err != nil {
		t.Fatalf("Vault(shared): %v", err)
	}
	if got.Vault != v1 || got.Org != acme || got.Account != "" || len(got.Record) != 0 ||
		got.Head != 0 || !bytes.Equal(got.HeadHash, genesis(v1)) {
		t.Fatalf("Vault(shared) = %+v; want the organisation's, no account, no record, head 0 at genesis", got)
	}
	if got, _ := s.Vault(ctx, own); got.Org != "" || got.Account != a.ID {
		t.Fatalf("Vault(account's) = %+v; want the account's and no organisation", got)
	}

	// Creating it again changes nothing, not even after entries.
	mustAppend(t, s, v1, 0, entry(1, opPut, id("item"), 1, "shared"))
	if err := s.PutOrgVault(ctx, acme, v1, genesis("ignored")); err != nil {
		t.Fatalf("PutOrgVault again: %v", err)
	}
	if got, _ := s.Vault(ctx, v1); got.Org != acme || got.Head != 1 || !bytes.Equal(got.HeadHash, headHash(v1, 1)) {
		t.Fatalf("PutOrgVault again changed the vault: %+v", got)
	}
	// Any other vault's id is taken, and stays as it was.
	wantErr(t, "PutOrgVault on another organisation's vault", s.PutOrgVault(ctx, beta, v1, genesis(v1)), storage.ErrExists)
	wantErr(t, "PutOrgVault on an account's vault", s.PutOrgVault(ctx, acme, own, genesis(own)), storage.ErrExists)
	wantErr(t, "PutVault on a shared vault", s.PutVault(ctx, a.ID, v1, fill("evil", 10), genesis(v1)), storage.ErrExists)
	if got, _ := s.Vault(ctx, v1); got.Org != acme || got.Account != "" || len(got.Record) != 0 || got.Head != 1 {
		t.Fatalf("a refused Put changed the shared vault: %+v", got)
	}
	if got, _ := s.Vault(ctx, own); got.Org != "" || got.Account != a.ID || !bytes.Equal(got.Record, fill("record alice's", 120)) {
		t.Fatalf("a refused PutOrgVault changed the account's vault: %+v", got)
	}
	wantErr(t, "PutOrgVault for an unknown organisation",
		s.PutOrgVault(ctx, orgID("nowhere"), id("shared vault new"), genesis("new")), storage.ErrNotFound)
	if _, err := s.Vault(ctx, id("shared vault new")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("PutOrgVault for an unknown organisation made the vault (%v)", err)
	}

	list, err := s.OrgVaults(ctx, acme)
	if err != nil || !slices.Equal(vaultIDs(list), sorted(v1, v2)) {
		t.Fatalf("OrgVaults = %v, %v; want %v", vaultIDs(list), err, sorted(v1, v2))
	}
	for _, v := range list {
		if v.Org != acme || v.Account != "" {
			t.Fatalf("OrgVaults lists %+v", v)
		}
	}
	if list, err := s.OrgVaults(ctx, beta); err != nil || !slices.Equal(vaultIDs(list), []string{vb}) {
		t.Fatalf("OrgVaults(beta) = %v, %v", vaultIDs(list), err)
	}
	if list, err := s.OrgVaults(ctx, orgID("nowhere")); err != nil || len(list) != 0 {
		t.Fatalf("OrgVaults of an unknown organisation = %d, %v; want none", len(list), err)
	}

	// Shared vaults are no account's: not listed, not counted.
	if list, err := s.Vaults(ctx, a.ID); err != nil || !slices.Equal(vaultIDs(list), []string{own}) {
		t.Fatalf("Vaults(alice) = %v, %v; want only her own", vaultIDs(list), err)
	}
	if list, err := s.Vaults(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("Vaults of no account = %v, %v; want none", vaultIDs(list), err)
	}
	if err := s.PutBlob(ctx, v2, id("item"), id("blob"), chunks(blobData("shared", 2, 500), nil)); err != nil {
		t.Fatalf("PutBlob(shared): %v", err)
	}
	if u, err := s.Usage(ctx, a.ID); err != nil || !sameUsage(u, usage) {
		t.Fatalf("Usage with shared vaults = %+v, %v; want %+v as before", u, err, usage)
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 1 || !sameUsage(list[0].Usage, usage) {
		t.Fatalf("Accounts with shared vaults = %+v, %v", list, err)
	}
}

// A shared vault's log and blobs work as an account's vault's do.
func testSharedVaultLog(t *testing.T, s storage.Store) {
	ctx := t.Context()
	org := mustOrg(t, s, "acme", 1)
	v := mustOrgVault(t, s, org, "one")
	x, y := id("item x"), id("item y")
	log := []storage.Entry{entry(1, opPut, x, 1, ""), entry(2, opPut, y, 1, ""), entry(3, opPut, x, 2, "")}
	mustAppend(t, s, v, 0, log...)
	if got, _ := s.Vault(ctx, v); got.Head != 3 || !bytes.Equal(got.HeadHash, headHash(v, 3)) || got.Org != org {
		t.Fatalf("after Append: %+v; want head 3 with its hash", got)
	}
	err := s.Append(ctx, v, 1, []storage.Entry{entry(2, opPut, x, 9, "stale")}, headHash(v, 2))
	wantErr(t, "Append(stale) to a shared vault", err, storage.ErrStale)
	checkEntries(t, entries(t, s, v, 0, 100), log)
	checkEntries(t, entries(t, s, v, 1, 1), log[1:2])

	states, err := s.ItemStates(ctx, v, []string{x, y, id("never")})
	if err != nil || len(states) != 2 || states[x] != (storage.ItemState{Revision: 2}) || states[y] != (storage.ItemState{Revision: 1}) {
		t.Fatalf("ItemStates of a shared vault = %v, %v", states, err)
	}

	bx, by := blobData("x", 3, 700), blobData("y", 2, 300)
	if err := s.PutBlob(ctx, v, x, id("blob"), chunks(bx, nil)); err != nil {
		t.Fatalf("PutBlob(shared): %v", err)
	}
	if err := s.PutBlob(ctx, v, y, id("blob"), chunks(by, nil)); err != nil {
		t.Fatalf("PutBlob(shared): %v", err)
	}
	checkBlob(t, s, v, x, id("blob"), bx)
	checkBlob(t, s, v, y, id("blob"), by)

	// A purge in a shared vault clears its item's payloads and blobs.
	mustAppend(t, s, v, 3, entry(4, opPurge, x, 3, ""))
	log[0].Payload, log[2].Payload = nil, nil
	log = append(log, entry(4, opPurge, x, 3, ""))
	checkEntries(t, entries(t, s, v, 0, 100), log)
	noBlob(t, s, v, x, id("blob"))
	checkBlob(t, s, v, y, id("blob"), by)
}

func testDeleteOrg(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	own := mustVault(t, s, a.ID, "alice's")
	mustAppend(t, s, own, 0, entry(1, opPut, id("item"), 1, "own"))
	type world struct {
		org    string
		vaults []string
	}
	build := func(name string) world {
		w := world{org: mustOrg(t, s, name, 3, active(a), invited("bob@example.com"))}
		for i := range 2 {
			v := mustOrgVault(t, s, w.org, fmt.Sprintf("%s %d", name, i))
			mustAppend(t, s, v, 0, entry(1, opPut, id("item"), 1, name), entry(2, opPut, id("item"), 2, name))
			if err := s.PutBlob(ctx, v, id("item"), id("blob"), chunks(blobData(name, 2, 200), nil)); err != nil {
				t.Fatalf("PutBlob: %v", err)
			}
			w.vaults = append(w.vaults, v)
		}
		return w
	}
	gone, kept := build("acme"), build("beta")
	if err := s.DeleteOrg(ctx, gone.org); err != nil {
		t.Fatalf("DeleteOrg: %v", err)
	}

	_, err := s.Org(ctx, gone.org)
	wantErr(t, "Org after delete", err, storage.ErrNotFound)
	err = s.OrgEntries(ctx, gone.org, 0, 10, func(storage.OrgEntry) error { return nil })
	wantErr(t, "OrgEntries after delete", err, storage.ErrNotFound)
	err = s.AppendOrg(ctx, gone.org, 3, orgLog(4, 4, "late"), orgHead(gone.org, 4), nil)
	wantErr(t, "AppendOrg after delete", err, storage.ErrNotFound)
	if list, err := s.OrgVaults(ctx, gone.org); err != nil || len(list) != 0 {
		t.Fatalf("OrgVaults after delete = %d, %v", len(list), err)
	}
	for _, v := range gone.vaults {
		_, err := s.Vault(ctx, v)
		wantErr(t, "Vault after DeleteOrg", err, storage.ErrNotFound)
		err = s.Entries(ctx, v, 0, 10, func(storage.Entry) error { return nil })
		wantErr(t, "Entries after DeleteOrg", err, storage.ErrNotFound)
		_, err = s.ItemStates(ctx, v, []string{id("item")})
		wantErr(t, "ItemStates after DeleteOrg", err, storage.ErrNotFound)
		noBlob(t, s, v, id("item"), id("blob"))
	}
	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: kept.org, Head: 3, State: "active"})
	checkOrgsFor(t, s, "", "bob@example.com", storage.OrgRef{Org: kept.org, Head: 3, State: "invited"})

	// The other organisation and the account's own vault are whole.
	checkOrgHead(t, s, kept.org, 3)
	checkOrgLog(t, readOrgLog(t, s, kept.org, 0, 10), orgLog(1, 3, "beta"))
	if list, err := s.OrgVaults(ctx, kept.org); err != nil || !slices.Equal(vaultIDs(list), sorted(kept.vaults...)) {
		t.Fatalf("OrgVaults of the other organisation = %v, %v", vaultIDs(list), err)
	}
	for _, v := range kept.vaults {
		if e := entries(t, s, v, 0, 10); len(e) != 2 {
			t.Fatalf("the other organisation's vault has %d entries, want 2", len(e))
		}
		checkBlob(t, s, v, id("item"), id("blob"), blobData("beta", 2, 200))
	}
	if e := entries(t, s, own, 0, 10); len(e) != 1 {
		t.Fatalf("the account's vault has %d entries, want 1", len(e))
	}

	// The ids are free again, and start empty.
	again := mustOrg(t, s, "acme", 1)
	checkOrgLog(t, readOrgLog(t, s, again, 0, 10), orgLog(1, 1, "acme"))
	checkOrgsFor(t, s, a.ID, a.Email, storage.OrgRef{Org: kept.org, Head: 3, State: "active"})
	if list, _ := s.OrgVaults(ctx, again); len(list) != 0 {
		t.Fatalf("a re-created organisation has %d old vaults", len(list))
	}
	if err := s.PutOrgVault(ctx, again, gone.vaults[0], genesis(gone.vaults[0])); err != nil {
		t.Fatalf("PutOrgVault after delete: %v", err)
	}
	if e := entries(t, s, gone.vaults[0], 0, 10); len(e) != 0 {
		t.Fatalf("a re-created shared vault has %d old entries", len(e))
	}
	noBlob(t, s, gone.vaults[0], id("item"), id("blob"))
	if err := s.PutVault(ctx, a.ID, gone.vaults[1], fill("record", 10), genesis(gone.vaults[1])); err != nil {
		t.Fatalf("PutVault of a deleted shared vault's id: %v", err)
	}

	wantErr(t, "DeleteOrg of an unknown organisation", s.DeleteOrg(ctx, orgID("nowhere")), storage.ErrNotFound)
}

// Deleting an account deletes its own vaults, not the shared vaults of
// its organisations.
func testDeleteAccountKeepsOrgs(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	b, _ := mustCreate(t, s, "bob")
	own := mustVault(t, s, a.ID, "alice's")
	org := mustOrg(t, s, "acme", 2, active(a), active(b))
	v := mustOrgVault(t, s, org, "shared")
	mustAppend(t, s, v, 0, entry(1, opPut, id("item"), 1, "shared"))
	if err := s.PutBlob(ctx, v, id("item"), id("blob"), chunks(blobData("shared", 2, 100), nil)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.Vault(ctx, own)
	wantErr(t, "Vault of the deleted account", err, storage.ErrNotFound)
	got, err := s.Vault(ctx, v)
	if err != nil || got.Org != org || got.Head != 1 {
		t.Fatalf("shared vault after DeleteAccount = %+v, %v", got, err)
	}
	checkEntries(t, entries(t, s, v, 0, 10), []storage.Entry{entry(1, opPut, id("item"), 1, "shared")})
	checkBlob(t, s, v, id("item"), id("blob"), blobData("shared", 2, 100))
	checkOrgHead(t, s, org, 2)
	checkOrgLog(t, readOrgLog(t, s, org, 0, 10), orgLog(1, 2, "acme"))
	checkOrgsFor(t, s, b.ID, b.Email, storage.OrgRef{Org: org, Head: 2, State: "active"})
	if list, err := s.OrgVaults(ctx, org); err != nil || !slices.Equal(vaultIDs(list), []string{v}) {
		t.Fatalf("OrgVaults after DeleteAccount = %v, %v", vaultIDs(list), err)
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 1 || list[0].Account.ID != b.ID || list[0].Usage.Vaults != 0 {
		t.Fatalf("Accounts after DeleteAccount = %+v, %v", list, err)
	}
}

// Racing CreateOrg of one id on two stores: exactly one wins.
func testSharedCreateOrg(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	stores := []storage.Store{a, b}
	org := orgID("acme")
	errs := make([]error, 10)
	race(10, func(i int) {
		tag := fmt.Sprintf("creator %d", i)
		errs[i] = stores[i%2].CreateOrg(ctx, org, orgLog(1, 2, tag), orgHead(org, 2),
			[]storage.OrgIndex{{Account: id(tag), Email: tag + "@example.com", State: "active"}})
	})
	winner := oneWinner(t, "racing CreateOrg", errs, storage.ErrExists)
	tag := fmt.Sprintf("creator %d", winner)
	for _, s := range stores {
		checkOrgHead(t, s, org, 2)
		checkOrgLog(t, readOrgLog(t, s, org, 0, 10), orgLog(1, 2, tag))
		checkOrgsFor(t, s, id(tag), "", storage.OrgRef{Org: org, Head: 2, State: "active"})
	}
}

// Racing AppendOrg from one base on two stores: exactly one wins, and
// both stores see its statements and index.
func testSharedAppendOrg(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	stores := []storage.Store{a, b}
	org := mustOrg(t, a, "acme", 3)
	const n = 20
	errs := make([]error, n)
	race(n, func(i int) {
		tag := fmt.Sprintf("race %d", i)
		errs[i] = stores[i%2].AppendOrg(ctx, org, 3, orgLog(4, 5, tag), orgHead(org, 5),
			[]storage.OrgIndex{{Account: id(tag), Email: tag + "@example.com", State: "active"}})
	})
	winner := oneWinner(t, "racing AppendOrg on two stores", errs, storage.ErrStale)
	tag := fmt.Sprintf("race %d", winner)
	for _, s := range stores {
		checkOrgHead(t, s, org, 5)
		checkOrgLog(t, readOrgLog(t, s, org, 3, 10), orgLog(4, 5, tag))
		for i := range n {
			other := fmt.Sprintf("race %d", i)
			var want []storage.OrgRef
			if i == winner {
				want = []storage.OrgRef{{Org: org, Head: 5, State: "active"}}
			}
			checkOrgsFor(t, s, id(other), other+"@example.com", want...)
		}
	}
	orgAppendRace(t, 8, 6, a, b)
}

// Racing PutOrgVault of one vault id by two organisations on two stores:
// one organisation gets it, and its creations all succeed.
func testSharedPutOrgVault(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	stores := []storage.Store{a, b}
	orgs := []string{mustOrg(t, a, "acme", 1), mustOrg(t, a, "beta", 1)}
	v := id("shared vault contested")
	errs := make([]error, 20)
	race(20, func(i int) { errs[i] = stores[i%2].PutOrgVault(ctx, orgs[(i/2)%2], v, genesis(v)) })
	got, err := b.Vault(ctx, v)
	if err != nil {
		t.Fatalf("Vault: %v", err)
	}
	for i, err := range errs {
		switch org := orgs[(i/2)%2]; {
		case org == got.Org && err != nil:
			t.Fatalf("racing PutOrgVault: the owner's call %d failed: %v", i, err)
		case org != got.Org && !errors.Is(err, storage.ErrExists):
			t.Fatalf("racing PutOrgVault: the other organisation's call %d: %v, want ErrExists", i, err)
		}
	}
	if got.Head != 0 || !bytes.Equal(got.HeadHash, genesis(v)) || got.Account != "" {
		t.Fatalf("racing PutOrgVault made %+v", got)
	}
}
