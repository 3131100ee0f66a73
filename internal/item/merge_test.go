package item

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	t0  = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now = t0.Add(48 * time.Hour)
)

func mergeBase() Item {
	return Item{
		ID: "item1", Type: Login, Title: "Bank", Username: "alice", Password: "old-pw",
		URLs:  []string{"https://bank.example", "https://m.bank.example"},
		Notes: "branch 12", Folder: "money", Tags: []string{"finance", "daily"},
		Fields: []Field{
			{Name: "PIN", Kind: KindHidden, Value: "1234"},
			{Name: "Customer no", Kind: KindText, Value: "C-1"},
			{Name: "Branch", Kind: KindText, Value: "North"},
		},
		Attachments: []Attachment{
			{ID: "blob-a", Name: "contract.pdf", Size: 10, Chunks: 1, Key: []byte{1}, Header: []byte{2}, Added: t0},
			{ID: "blob-b", Name: "card.png", Size: 20, Chunks: 1, Key: []byte{3}, Header: []byte{4}, Added: t0},
		},
		Created: t0, Modified: t0, PasswordChanged: t0, Revision: 7,
	}
}

// edited returns a clone of it changed by f and modified at t0+d.
func edited(it Item, d time.Duration, f func(*Item)) Item {
	c := it.Clone()
	f(&c)
	c.Modified = t0.Add(d)
	return c
}

// content is the item as the vault would seal it, without the fields a
// merge always sets.
func content(t *testing.T, it Item) string {
	t.Helper()
	it.Modified, it.Revision = time.Time{}, 0
	b, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hasConflict(it Item, field, value string) bool {
	return slices.ContainsFunc(it.Conflicts, func(c Conflict) bool { return c.Field == field && c.Value == value })
}

func fieldValue(it Item, name string) (string, bool) {
	for _, f := range it.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

func attachmentIDs(it Item) []string {
	var ids []string
	for _, a := range it.Attachments {
		ids = append(ids, a.ID)
	}
	return ids
}

func TestMerge3(t *testing.T) {
	b := mergeBase()
	hour := time.Hour
	cases := []struct {
		name           string
		ours, theirs   Item
		wantConflicted bool
		check          func(t *testing.T, m Item)
	}{
		{
			name:   "disjoint fields",
			ours:   edited(b, hour, func(it *Item) { it.Title = "My bank"; it.Notes = "branch 14" }),
			theirs: edited(b, 2*hour, func(it *Item) { it.Password = "new-pw"; it.PasswordChanged = t0.Add(2 * hour) }),
			check: func(t *testing.T, m Item) {
				if m.Title != "My bank" || m.Notes != "branch 14" || m.Password != "new-pw" {
					t.Errorf("got title %q notes %q password %q", m.Title, m.Notes, m.Password)
				}
				if !m.PasswordChanged.Equal(t0.Add(2 * hour)) {
					t.Errorf("password_changed %v, want theirs", m.PasswordChanged)
				}
			},
		},
		{
			name:   "same change on both sides",
			ours:   edited(b, hour, func(it *Item) { it.Username = "alice2"; it.Favorite = true }),
			theirs: edited(b, 2*hour, func(it *Item) { it.Username = "alice2"; it.Favorite = true }),
			check: func(t *testing.T, m Item) {
				if m.Username != "alice2" || !m.Favorite || len(m.Conflicts) != 0 {
					t.Errorf("got %q %v %v", m.Username, m.Favorite, m.Conflicts)
				}
			},
		},
		{
			name: "password conflict, ours later",
			ours: edited(b, 3*hour, func(it *Item) { it.Password = "ours-pw"; it.PasswordChanged = t0.Add(3 * hour) }),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Password = "theirs-pw"
				it.PasswordChanged = t0.Add(2 * hour)
			}),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Password != "ours-pw" || !hasConflict(m, "password", "theirs-pw") || len(m.Conflicts) != 1 {
					t.Errorf("password %q conflicts %v", m.Password, m.Conflicts)
				}
				if !m.PasswordChanged.Equal(t0.Add(3*hour)) || !m.Conflicts[0].Seen.Equal(now) {
					t.Errorf("password_changed %v seen %v", m.PasswordChanged, m.Conflicts[0].Seen)
				}
				if mm := m.Masked(); mm.Conflicts[0].Value != Mask {
					t.Errorf("a losing password is shown by Masked: %q", mm.Conflicts[0].Value)
				}
			},
		},
		{
			name:           "title conflict, theirs later",
			ours:           edited(b, hour, func(it *Item) { it.Title = "Ours" }),
			theirs:         edited(b, 2*hour, func(it *Item) { it.Title = "Theirs" }),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Title != "Theirs" || !hasConflict(m, "title", "Ours") {
					t.Errorf("title %q conflicts %v", m.Title, m.Conflicts)
				}
			},
		},
		{
			name:           "conflict on a tie goes to theirs",
			ours:           edited(b, hour, func(it *Item) { it.Folder = "a" }),
			theirs:         edited(b, hour, func(it *Item) { it.Folder = "b" }),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Folder != "b" || !hasConflict(m, "folder", "a") {
					t.Errorf("folder %q conflicts %v", m.Folder, m.Conflicts)
				}
			},
		},
		{
			name:           "cleared on one side, changed on the other",
			ours:           edited(b, 2*hour, func(it *Item) { it.Notes = "" }),
			theirs:         edited(b, hour, func(it *Item) { it.Notes = "branch 99" }),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Notes != "" || !hasConflict(m, "notes", "branch 99") {
					t.Errorf("notes %q conflicts %v", m.Notes, m.Conflicts)
				}
			},
		},
		{
			name: "url and tag sets",
			ours: edited(b, hour, func(it *Item) {
				it.URLs = []string{"https://m.bank.example", "https://ours.example"}
				it.Tags = []string{"daily", "ours"}
			}),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.URLs = append(it.URLs, "https://theirs.example")
				it.Tags = []string{"theirs", "finance", "daily"}
			}),
			check: func(t *testing.T, m Item) {
				wantURLs := []string{"https://m.bank.example", "https://theirs.example", "https://ours.example"}
				if !slices.Equal(m.URLs, wantURLs) {
					t.Errorf("urls %q, want %q", m.URLs, wantURLs)
				}
				if want := []string{"theirs", "daily", "ours"}; !slices.Equal(m.Tags, want) {
					t.Errorf("tags %q, want %q", m.Tags, want)
				}
			},
		},
		{
			name: "custom fields by name",
			ours: edited(b, hour, func(it *Item) {
				it.Fields = []Field{
					{Name: "PIN", Kind: KindHidden, Value: "9999"},       // changed, theirs removed it
					{Name: "Customer no", Kind: KindText, Value: "C-1"},  // unchanged
					{Name: "Branch", Kind: KindText, Value: "South"},     // changed on both
					{Name: "Ours new", Kind: KindText, Value: "o"},       // added
					{Name: "Both new", Kind: KindText, Value: "same"},    // added on both, same
					{Name: "Both new 2", Kind: KindText, Value: "ours2"}, // added on both, differently
				}
			}),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Fields = []Field{
					{Name: "Branch", Kind: KindText, Value: "East"},
					{Name: "Theirs new", Kind: KindURL, Value: "https://t.example"},
					{Name: "Both new", Kind: KindText, Value: "same"},
					{Name: "Both new 2", Kind: KindText, Value: "theirs2"},
				} // and removed "Customer no" and "PIN"
			}),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				var names []string
				for _, f := range m.Fields {
					names = append(names, f.Name+"="+f.Value)
				}
				want := []string{"Branch=East", "Theirs new=https://t.example", "Both new=same", "Both new 2=theirs2", "PIN=9999", "Ours new=o"}
				if !slices.Equal(names, want) {
					t.Errorf("fields %q, want %q", names, want)
				}
				if !hasConflict(m, "Branch", "South") || !hasConflict(m, "Both new 2", "ours2") || len(m.Conflicts) != 2 {
					t.Errorf("conflicts %v", m.Conflicts)
				}
			},
		},
		{
			name:           "custom field kind changed on both sides",
			ours:           edited(b, hour, func(it *Item) { it.Fields[1].Kind = KindHidden }),
			theirs:         edited(b, 2*hour, func(it *Item) { it.Fields[1].Kind = KindURL }),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Fields[1].Kind != KindURL || !hasConflict(m, "Customer no", `{"name":"Customer no","kind":"hidden","value":"C-1"}`) {
					t.Errorf("fields %v conflicts %v", m.Fields, m.Conflicts)
				}
			},
		},
		{
			name: "trash on one side, edit on the other",
			ours: edited(b, hour, func(it *Item) { tr := t0.Add(hour); it.Trashed = &tr }),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Title = "Bank (old)"
			}),
			check: func(t *testing.T, m Item) {
				if m.Trashed == nil || !m.Trashed.Equal(t0.Add(hour)) || m.Title != "Bank (old)" {
					t.Errorf("trashed %v title %q", m.Trashed, m.Title)
				}
			},
		},
		{
			name: "restore on one side, edit on the other",
			ours: edited(b, 3*hour, func(it *Item) { it.Trashed = nil; it.Notes = "restored" }),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Username = "bob"
			}),
			check: func(t *testing.T, m Item) {
				if m.Trashed != nil || m.Notes != "restored" || m.Username != "bob" {
					t.Errorf("trashed %v notes %q username %q", m.Trashed, m.Notes, m.Username)
				}
			},
		},
		{
			name: "attachments",
			ours: edited(b, hour, func(it *Item) {
				it.Attachments[1].Name = "renamed.png" // theirs removed it: stays removed
				it.Attachments = append(it.Attachments, Attachment{ID: "blob-o", Name: "o.txt", Added: t0})
			}),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Attachments = []Attachment{it.Attachments[0], {ID: "blob-t", Name: "t.txt", Added: t0}}
			}),
			check: func(t *testing.T, m Item) {
				if got, want := attachmentIDs(m), []string{"blob-a", "blob-t", "blob-o"}; !slices.Equal(got, want) {
					t.Errorf("attachments %q, want %q", got, want)
				}
			},
		},
		{
			name: "card edited on both sides",
			ours: edited(b, 2*hour, func(it *Item) {
				it.Card = &CardData{Holder: "A", Number: "4111111111111111", CVV: "123"}
			}),
			theirs: edited(b, hour, func(it *Item) {
				it.Card = &CardData{Holder: "A", Number: "5500000000000004"}
			}),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Card == nil || m.Card.Number != "4111111111111111" ||
					!hasConflict(m, "card", `{"holder":"A","number":"5500000000000004"}`) {
					t.Errorf("card %+v conflicts %v", m.Card, m.Conflicts)
				}
				if mm := m.Masked(); mm.Conflicts[0].Value != Mask {
					t.Errorf("a losing card is shown by Masked")
				}
			},
		},
		{
			name:           "type changed on both sides",
			ours:           edited(b, hour, func(it *Item) { it.Type = Note }),
			theirs:         edited(b, 2*hour, func(it *Item) { it.Type = Card }),
			wantConflicted: true,
			check: func(t *testing.T, m Item) {
				if m.Type != Card || !hasConflict(m, "type", "note") {
					t.Errorf("type %q conflicts %v", m.Type, m.Conflicts)
				}
			},
		},
		{
			name: "existing conflicts",
			ours: edited(b, hour, func(it *Item) {
				it.Conflicts = []Conflict{{Field: "notes", Value: "x", Seen: t0}, {Field: "title", Value: "dup", Seen: t0}}
			}),
			theirs: edited(b, 2*hour, func(it *Item) {
				it.Conflicts = []Conflict{{Field: "title", Value: "dup", Seen: t0.Add(hour)}, {Field: "username", Value: "y", Seen: t0}}
			}),
			check: func(t *testing.T, m Item) {
				if len(m.Conflicts) != 3 || !hasConflict(m, "notes", "x") || !hasConflict(m, "title", "dup") || !hasConflict(m, "username", "y") {
					t.Errorf("conflicts %v", m.Conflicts)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := []string{content(t, b), content(t, c.ours), content(t, c.theirs)}
			m, conflicted := Merge3(b, c.ours, c.theirs, now)
			if conflicted != c.wantConflicted {
				t.Errorf("conflicted = %v, want %v (conflicts %v)", conflicted, c.wantConflicted, m.Conflicts)
			}
			c.check(t, m)
			if err := m.Validate(); err != nil {
				t.Errorf("merged item does not validate: %v", err)
			}
			if !m.Modified.Equal(now) || !m.Created.Equal(t0) || m.ID != "item1" {
				t.Errorf("modified %v created %v id %q", m.Modified, m.Created, m.ID)
			}
			// The inputs are untouched and share nothing with the result.
			scribble(&m)
			if after := []string{content(t, b), content(t, c.ours), content(t, c.theirs)}; !slices.Equal(before, after) {
				t.Errorf("Merge3 changed its inputs")
			}
		})
	}
}

// scribble overwrites every element of every list and sub-structure.
func scribble(it *Item) {
	for i := range it.URLs {
		it.URLs[i] = "x"
	}
	for i := range it.Tags {
		it.Tags[i] = "x"
	}
	for i := range it.Fields {
		it.Fields[i].Value = "x"
	}
	for i := range it.Attachments {
		it.Attachments[i].Name = "x"
		clear(it.Attachments[i].Key)
	}
	for i := range it.Conflicts {
		it.Conflicts[i].Value = "x"
	}
	if it.Card != nil {
		it.Card.Number = "x"
	}
	if it.Trashed != nil {
		*it.Trashed = time.Time{}
	}
	clear(it.VPN)
}

func TestMerge3ResolvedConflictStaysResolved(t *testing.T) {
	b := mergeBase()
	b.Conflicts = []Conflict{{Field: "title", Value: "Old", Seen: t0}}
	ours := edited(b, time.Hour, func(it *Item) { it.Conflicts = nil; it.Notes = "n" })
	theirs := edited(b, 2*time.Hour, func(it *Item) { it.Username = "u" })
	m, conflicted := Merge3(b, ours, theirs, now)
	if conflicted || len(m.Conflicts) != 0 || m.Notes != "n" || m.Username != "u" {
		t.Errorf("conflicted %v conflicts %v", conflicted, m.Conflicts)
	}
}

func TestMerge3VPN(t *testing.T) {
	b := mergeBase()
	ours := edited(b, 2*time.Hour, func(it *Item) { it.VPN = json.RawMessage(`{"a":1}`) })
	theirs := edited(b, time.Hour, func(it *Item) { it.VPN = json.RawMessage(`{"a":2}`) })
	m, conflicted := Merge3(b, ours, theirs, now)
	if !conflicted || string(m.VPN) != `{"a":1}` || !hasConflict(m, "vpn", `{"a":2}`) {
		t.Errorf("vpn %s conflicts %v", m.VPN, m.Conflicts)
	}
	m, conflicted = Merge3(b, b, theirs, now)
	if conflicted || string(m.VPN) != `{"a":2}` {
		t.Errorf("one-sided vpn change: %s %v", m.VPN, conflicted)
	}
}

func TestMerge3WithoutBase(t *testing.T) {
	b := mergeBase()
	ours := edited(b, time.Hour, func(it *Item) {
		it.Notes = ""
		it.URLs = []string{"https://ours.example"}
		it.Fields = append(it.Fields, Field{Name: "Ours", Kind: KindText, Value: "o"})
		it.Created = t0.Add(-time.Hour)
	})
	theirs := edited(b, 2*time.Hour, func(it *Item) { it.Title = "Theirs" })
	m, conflicted := Merge3(Item{}, ours, theirs, now)
	if !conflicted {
		t.Fatal("differing fields without a base are not a conflict")
	}
	// Theirs is later: its values win, ours' differing ones are kept.
	if m.Title != "Theirs" || !hasConflict(m, "title", "Bank") || m.Notes != b.Notes || !hasConflict(m, "notes", "") {
		t.Errorf("title %q notes %q conflicts %v", m.Title, m.Notes, m.Conflicts)
	}
	if want := append(slices.Clone(b.URLs), "https://ours.example"); !slices.Equal(m.URLs, want) {
		t.Errorf("urls %q, want the union %q", m.URLs, want)
	}
	if v, ok := fieldValue(m, "Ours"); !ok || v != "o" {
		t.Errorf("a field only ours has is lost")
	}
	if !m.Created.Equal(t0.Add(-time.Hour)) {
		t.Errorf("created %v, want the earlier of both", m.Created)
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
	// Identical sides without a base: nothing to merge.
	if m, conflicted := Merge3(Item{}, theirs, theirs, now); conflicted || content(t, m) != content(t, theirs) {
		t.Errorf("identical sides without a base: conflicted %v", conflicted)
	}
}

func TestMerge3Limits(t *testing.T) {
	b := mergeBase()
	add := func(prefix string, n int) func(*Item) {
		return func(it *Item) {
			for i := range n {
				it.URLs = append(it.URLs, fmt.Sprintf("https://%s%d.example", prefix, i))
				it.Tags = append(it.Tags, fmt.Sprintf("%s%d", prefix, i))
				it.Fields = append(it.Fields, Field{Name: fmt.Sprintf("%s%d", prefix, i), Kind: KindText, Value: "v"})
			}
		}
	}
	ours := edited(b, time.Hour, add("o", 60))
	theirs := edited(b, 2*time.Hour, add("t", 60))
	for i := range 190 {
		theirs.Fields = append(theirs.Fields, Field{Name: fmt.Sprintf("extra%d", i), Kind: KindText, Value: "e"})
	}
	for _, it := range []Item{ours, theirs} {
		if err := it.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	m, conflicted := Merge3(b, ours, theirs, now)
	if !conflicted {
		t.Error("overflow not reported")
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("merged item does not validate: %v", err)
	}
	// Nothing is lost: what did not fit is in Conflicts.
	var dropped []string
	for _, c := range m.Conflicts {
		if c.Field == "urls" {
			if err := json.Unmarshal([]byte(c.Value), &dropped); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(m.URLs)+len(dropped) != 2+120 {
		t.Errorf("%d URLs kept, %d in conflicts, want 122 in all", len(m.URLs), len(dropped))
	}
	if !hasConflict(m, "o59", "v") {
		t.Errorf("a custom field that did not fit is not kept in conflicts")
	}
}

func TestMerge3BoundsConflicts(t *testing.T) {
	b := mergeBase()
	ours := edited(b, time.Hour, func(it *Item) {
		for i := range MaxConflicts {
			it.Conflicts = append(it.Conflicts, Conflict{Field: "notes", Value: strconv.Itoa(i), Seen: t0.Add(time.Duration(i) * time.Second)})
		}
		it.Notes = strings.Repeat("o", MaxNotes)
	})
	theirs := edited(b, 2*time.Hour, func(it *Item) {
		it.Conflicts = []Conflict{{Field: "notes", Value: strings.Repeat("x", MaxNotes), Seen: t0}}
		it.Notes = strings.Repeat("t", MaxNotes)
	})
	m, _ := Merge3(b, ours, theirs, now)
	size := 0
	for _, c := range m.Conflicts {
		size += len(c.Field) + len(c.Value)
	}
	if len(m.Conflicts) > MaxConflicts || size > MaxConflictsBytes {
		t.Fatalf("%d conflicts of %d bytes kept", len(m.Conflicts), size)
	}
	if !hasConflict(m, "notes", ours.Notes) {
		t.Errorf("the newest conflict was dropped")
	}
	if hasConflict(m, "notes", "0") {
		t.Errorf("the oldest conflict was kept")
	}
}

// randomEditor makes random edits from small pools of values, so that
// two sides sometimes make the same change.
type randomEditor struct {
	r   *rand.Rand
	seq int
}

func (e *randomEditor) pick(pool ...string) string { return pool[e.r.IntN(len(pool))] }
func (e *randomEditor) maybe() bool                { return e.r.IntN(4) == 0 }

func (e *randomEditor) edit(b Item) Item {
	it := b.Clone()
	it.Modified = b.Modified.Add(time.Duration(1+e.r.IntN(1000)) * time.Second)
	if e.maybe() {
		it.Title = e.pick("Bank", "Bank 2", "Shop", "Mail")
	}
	if e.maybe() {
		it.Username = e.pick("", "alice", "bob")
	}
	if e.maybe() {
		it.Password = e.pick("", "pw1", "pw2", "pw3")
		it.PasswordChanged = it.Modified
	}
	if e.maybe() {
		it.Notes = e.pick("", "n1", "n2")
	}
	if e.maybe() {
		it.TOTP = e.pick("", "JBSWY3DPEHPK3PXP")
	}
	if e.maybe() {
		it.Folder = e.pick("", "a", "a/b")
	}
	if e.maybe() {
		it.Favorite = !it.Favorite
	}
	if e.maybe() {
		it.Type = Types[e.r.IntN(len(Types)-1)] // not vpn: it would need a profile
	}
	if e.maybe() && len(it.URLs) > 0 {
		it.URLs = slices.Delete(it.URLs, 0, 1)
	}
	if e.maybe() {
		if u := "https://" + e.pick("a", "b", "c", "d") + ".example"; !slices.Contains(it.URLs, u) {
			it.URLs = append(it.URLs, u)
		}
	}
	if e.maybe() && len(it.Tags) > 0 {
		it.Tags = slices.Delete(it.Tags, len(it.Tags)-1, len(it.Tags))
	}
	if e.maybe() {
		if tag := e.pick("t1", "t2", "t3"); !slices.Contains(it.Tags, tag) {
			it.Tags = append(it.Tags, tag)
		}
	}
	if e.maybe() && len(it.Fields) > 0 {
		i := e.r.IntN(len(it.Fields))
		switch e.r.IntN(3) {
		case 0:
			it.Fields = slices.Delete(it.Fields, i, i+1)
		case 1:
			it.Fields[i].Value = e.pick("v1", "v2", "v3")
		case 2:
			it.Fields[i].Kind = FieldKind(e.pick(string(KindText), string(KindHidden)))
		}
	}
	if e.maybe() {
		if name := e.pick("f1", "f2", "f3"); !slices.ContainsFunc(it.Fields, func(f Field) bool { return f.Name == name }) {
			it.Fields = append(it.Fields, Field{Name: name, Kind: KindText, Value: e.pick("v1", "v2")})
		}
	}
	if e.maybe() {
		switch e.r.IntN(3) {
		case 0:
			it.Card = nil
		case 1:
			it.Card = &CardData{Number: e.pick("4111", "5500")}
		case 2:
			it.Card = &CardData{Number: "4111", Holder: e.pick("A", "B")}
		}
	}
	if e.maybe() && len(it.Attachments) > 0 {
		it.Attachments = slices.Delete(it.Attachments, 0, 1)
	}
	if e.maybe() && len(it.Attachments) > 0 {
		it.Attachments[len(it.Attachments)-1].Name = e.pick("x.txt", "y.txt")
	}
	if e.maybe() {
		e.seq++
		it.Attachments = append(it.Attachments, Attachment{ID: fmt.Sprintf("blob-%d", e.seq), Name: "n", Added: it.Modified})
	}
	if e.maybe() {
		if it.Trashed == nil {
			tr := it.Modified
			it.Trashed = &tr
		} else {
			it.Trashed = nil
		}
	}
	if e.maybe() && len(it.Conflicts) > 0 {
		it.Conflicts = it.Conflicts[1:]
	}
	return it
}

// randomBase is a valid item with a bit of everything.
func randomBase(e *randomEditor) Item {
	b := mergeBase()
	b.Conflicts = []Conflict{{Field: "title", Value: "Old", Seen: t0}}
	for range 3 {
		b = e.edit(b)
	}
	b.Modified = t0
	return b
}

// TestMerge3Properties checks, on random edits: a side that changed
// nothing yields the other side; identical sides yield that side; the
// result validates; nothing either side wrote is lost; and the winner of
// each scalar field does not depend on which side is "ours".
func TestMerge3Properties(t *testing.T) {
	e := &randomEditor{r: rand.New(rand.NewPCG(1, 2))}
	for i := range 2000 {
		b := randomBase(e)
		x, y := e.edit(b), e.edit(b)
		if err := x.Validate(); err != nil {
			t.Fatalf("generator made an invalid item: %v", err)
		}
		if m, c := Merge3(b, x, b, now); c || content(t, m) != content(t, x) || !m.Modified.Equal(now) {
			t.Fatalf("case %d: Merge3(b, x, b) != x:\n%s\n%s", i, content(t, m), content(t, x))
		}
		if m, c := Merge3(b, b, y, now); c || content(t, m) != content(t, y) {
			t.Fatalf("case %d: Merge3(b, b, y) != y:\n%s\n%s", i, content(t, m), content(t, y))
		}
		if m, c := Merge3(b, x, x, now); c || content(t, m) != content(t, x) {
			t.Fatalf("case %d: Merge3(b, x, x) != x", i)
		}
		mxy, _ := Merge3(b, x, y, now)
		if err := mxy.Validate(); err != nil {
			t.Fatalf("case %d: merge does not validate: %v", i, err)
		}
		for _, side := range []Item{x, y} {
			noLoss(t, i, b, side, mxy)
		}
		if !x.Modified.Equal(y.Modified) {
			myx, _ := Merge3(b, y, x, now)
			if scalars(t, mxy) != scalars(t, myx) {
				t.Fatalf("case %d: the winner depends on the argument order:\n%s\n%s", i, scalars(t, mxy), scalars(t, myx))
			}
		}
	}
}

// scalars is the JSON of an item's non-list fields.
func scalars(t *testing.T, it Item) string {
	it.URLs, it.Tags, it.Fields, it.Attachments, it.Conflicts = nil, nil, nil, nil, nil
	return content(t, it)
}

// noLoss checks that every value side changed from b is in m or in m's
// conflicts.
func noLoss(t *testing.T, i int, b, side, m Item) {
	t.Helper()
	for _, f := range []struct {
		name       string
		b, side, m string
	}{
		{"title", b.Title, side.Title, m.Title},
		{"username", b.Username, side.Username, m.Username},
		{"password", b.Password, side.Password, m.Password},
		{"notes", b.Notes, side.Notes, m.Notes},
		{"totp", b.TOTP, side.TOTP, m.TOTP},
		{"folder", b.Folder, side.Folder, m.Folder},
		{"type", string(b.Type), string(side.Type), string(m.Type)},
		{"favorite", strconv.FormatBool(b.Favorite), strconv.FormatBool(side.Favorite), strconv.FormatBool(m.Favorite)},
		{"card", ptrJSON(b.Card), ptrJSON(side.Card), ptrJSON(m.Card)},
	} {
		if f.side != f.b && f.side != f.m && !hasConflict(m, f.name, f.side) {
			t.Fatalf("case %d: %s %q written on one side is lost (merged %q, conflicts %v)", i, f.name, f.side, f.m, m.Conflicts)
		}
	}
	for _, u := range side.URLs {
		if !slices.Contains(b.URLs, u) && !slices.Contains(m.URLs, u) {
			t.Fatalf("case %d: added url %q lost", i, u)
		}
	}
	for _, tag := range side.Tags {
		if !slices.Contains(b.Tags, tag) && !slices.Contains(m.Tags, tag) {
			t.Fatalf("case %d: added tag %q lost", i, tag)
		}
	}
	for _, f := range side.Fields {
		if slices.Contains(b.Fields, f) || slices.Contains(m.Fields, f) {
			continue
		}
		if !hasConflict(m, f.Name, f.Value) && !hasConflict(m, f.Name, toJSON(f)) {
			t.Fatalf("case %d: custom field %+v lost: %+v %v", i, f, m.Fields, m.Conflicts)
		}
	}
	for _, a := range side.Attachments {
		if !slices.ContainsFunc(b.Attachments, func(x Attachment) bool { return x.ID == a.ID }) &&
			!slices.ContainsFunc(m.Attachments, func(x Attachment) bool { return x.ID == a.ID }) {
			t.Fatalf("case %d: added attachment %q lost", i, a.ID)
		}
	}
}
