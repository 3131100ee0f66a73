package item

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Limits on the values a merge keeps in Conflicts. When they are passed,
// the oldest conflicts (by Seen) are dropped first, so that repeated
// merges cannot grow an item past MaxPayload.
const (
	MaxConflicts      = 128
	MaxConflictsBytes = 2 << 20 // sum of the kept values' lengths
)

// Merge3 merges two versions of an item that were both edited from base,
// field by field, the way a three-way text merge does line by line:
//
//   - A field that one side changed and the other did not takes the
//     changed value; a field both sides changed to the same value takes it.
//   - A field both sides changed to different values is a true conflict.
//     The side with the later Modified time wins (theirs on a tie); the
//     other value is kept in Conflicts as {Field, Value, Seen: now}, with
//     structured values (card, identity, ssh, vpn) as JSON, and
//     conflicted is true.
//   - URLs, tags and attachments (by blob id) are sets: what either side
//     added is kept, what either side removed is removed. The order is
//     theirs, then what ours added. An attachment removed on one side
//     stays removed even if the other side renamed it.
//   - Custom fields merge by name: one added on one side is added; one
//     removed on one side and unchanged on the other is removed; one
//     removed on one side and changed on the other keeps the change.
//   - Trashed merges like any field: trashed on one side and untouched on
//     the other is trashed, restored on one side and untouched on the
//     other is restored. It never counts as a conflict.
//   - Conflicts already on either side merge as a set, so a conflict that
//     one device resolved (removed) stays resolved.
//   - Created is base's; Modified is now; PasswordChanged comes with the
//     password from the side it was taken from; when neither side changed
//     the password, it merges like a field, the later of both winning.
//     ID and Revision are theirs (the merge is written on top of theirs).
//
// A zero base means the common ancestor is unknown: then every scalar or
// structured field that differs is a conflict, and sets are united.
// When a side changed nothing, the result is the other side with
// Modified set to now. If the merged lists would exceed the limits of
// Validate, what does not fit is kept in Conflicts. Inputs are not
// modified and share no memory with the result.
func Merge3(base, ours, theirs Item, now time.Time) (merged Item, conflicted bool) {
	hasBase := !reflect.ValueOf(base).IsZero()
	base, ours, theirs = deepClone(base), deepClone(ours), deepClone(theirs)
	m := merger{
		hasBase:    hasBase,
		theirsWins: !ours.Modified.After(theirs.Modified),
		now:        now,
	}
	out := Item{
		ID:       firstNonEmpty(theirs.ID, ours.ID, base.ID),
		Revision: theirs.Revision,
		Modified: now,
		Created:  base.Created,
	}
	if out.Created.IsZero() {
		out.Created = earliest(ours.Created, theirs.Created)
	}

	str := func(name string, b, o, t string) string {
		return scalar(&m, name, b, o, t, func(a, b string) bool { return a == b }, func(v string) string { return v })
	}
	out.Title = str("title", base.Title, ours.Title, theirs.Title)
	out.Username = str("username", base.Username, ours.Username, theirs.Username)
	out.Notes = str("notes", base.Notes, ours.Notes, theirs.Notes)
	out.TOTP = str("totp", base.TOTP, ours.TOTP, theirs.TOTP)
	out.Folder = str("folder", base.Folder, ours.Folder, theirs.Folder)
	out.Type = Type(str("type", string(base.Type), string(ours.Type), string(theirs.Type)))
	out.Favorite = scalar(&m, "favorite", base.Favorite, ours.Favorite, theirs.Favorite,
		func(a, b bool) bool { return a == b }, strconv.FormatBool)

	// The password carries its change time with it.
	var side source
	out.Password, side = scalarFrom(&m, "password", base.Password, ours.Password, theirs.Password,
		func(a, b string) bool { return a == b }, func(v string) string { return v })
	switch {
	case side == fromOurs:
		out.PasswordChanged = ours.PasswordChanged
	case side == fromTheirs:
		out.PasswordChanged = theirs.PasswordChanged
	case m.hasBase && ours.PasswordChanged.Equal(base.PasswordChanged):
		out.PasswordChanged = theirs.PasswordChanged
	case m.hasBase && theirs.PasswordChanged.Equal(base.PasswordChanged):
		out.PasswordChanged = ours.PasswordChanged
	default:
		out.PasswordChanged = latest(ours.PasswordChanged, theirs.PasswordChanged)
	}

	out.Card = scalar(&m, "card", base.Card, ours.Card, theirs.Card, ptrEqual[CardData], ptrJSON[CardData])
	out.Identity = scalar(&m, "identity", base.Identity, ours.Identity, theirs.Identity, ptrEqual[IdentityData], ptrJSON[IdentityData])
	out.SSH = scalar(&m, "ssh", base.SSH, ours.SSH, theirs.SSH, ptrEqual[SSHData], ptrJSON[SSHData])
	out.VPN = scalar(&m, "vpn", base.VPN, ours.VPN, theirs.VPN,
		func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }, func(v json.RawMessage) string { return string(v) })

	// Trash state is not user data: a disagreement picks the winner's
	// state, and what this merger records is dropped.
	trash := merger{hasBase: m.hasBase, theirsWins: m.theirsWins, now: now}
	out.Trashed = scalar(&trash, "trashed", base.Trashed, ours.Trashed, theirs.Trashed, timePtrEqual, func(*time.Time) string { return "" })

	same := func(a, b string) bool { return true }
	ident := func(s string) string { return s }
	out.URLs = mergeSet(&m, base.URLs, ours.URLs, theirs.URLs, ident, same, false, nil)
	out.Tags = mergeSet(&m, base.Tags, ours.Tags, theirs.Tags, ident, same, false, nil)
	out.Fields = mergeSet(&m, base.Fields, ours.Fields, theirs.Fields,
		func(f Field) string { return f.Name }, func(a, b Field) bool { return a == b }, false,
		func(o, t Field) Field {
			win, lose := pick(&m, o, t)
			v := lose.Value
			if v == win.Value {
				v = toJSON(lose) // only the kind differs
			}
			m.record(win.Name, v)
			return win
		})
	out.Attachments = mergeSet(&m, base.Attachments, ours.Attachments, theirs.Attachments,
		func(a Attachment) string { return a.ID }, attachmentEqual, true,
		func(o, t Attachment) Attachment { win, _ := pick(&m, o, t); return win })

	// Keep within Validate's limits; what does not fit is kept as a
	// conflict rather than dropped. Ours' additions come last, so they
	// are the ones moved.
	if len(out.URLs) > MaxURLs {
		m.record("urls", toJSON(out.URLs[MaxURLs:]))
		out.URLs = out.URLs[:MaxURLs:MaxURLs]
	}
	if len(out.Tags) > MaxTags {
		m.record("tags", toJSON(out.Tags[MaxTags:]))
		out.Tags = out.Tags[:MaxTags:MaxTags]
	}
	if len(out.Fields) > MaxFields {
		for _, f := range out.Fields[MaxFields:] {
			m.record(f.Name, f.Value)
		}
		out.Fields = out.Fields[:MaxFields:MaxFields]
	}
	if len(out.Attachments) > MaxAttachment {
		for _, a := range out.Attachments[MaxAttachment:] {
			m.record("attachments", toJSON(a))
		}
		out.Attachments = out.Attachments[:MaxAttachment:MaxAttachment]
	}

	conflictKey := func(c Conflict) string { return c.Field + "\x00" + c.Value }
	out.Conflicts = mergeSet(&m, base.Conflicts, ours.Conflicts, theirs.Conflicts, conflictKey,
		func(a, b Conflict) bool { return true }, false, nil)
	for _, c := range m.conflicts {
		if !slices.ContainsFunc(out.Conflicts, func(o Conflict) bool { return conflictKey(o) == conflictKey(c) }) {
			out.Conflicts = append(out.Conflicts, c)
		}
	}
	out.Conflicts = boundConflicts(out.Conflicts)
	return out, len(m.conflicts) > 0
}

// deepClone is clone with the attachments' keys copied too.
func deepClone(it Item) Item {
	c := it.clone()
	for i := range c.Attachments {
		c.Attachments[i].Key = bytes.Clone(c.Attachments[i].Key)
		c.Attachments[i].Header = bytes.Clone(c.Attachments[i].Header)
	}
	return c
}

// merger holds what one merge decides with and what it found.
type merger struct {
	hasBase    bool
	theirsWins bool // on a true conflict
	now        time.Time
	conflicts  []Conflict
}

func (m *merger) record(field, value string) {
	m.conflicts = append(m.conflicts, Conflict{Field: field, Value: value, Seen: m.now})
}

// pick returns the winner and the loser of a true conflict.
func pick[T any](m *merger, o, t T) (win, lose T) {
	if m.theirsWins {
		return t, o
	}
	return o, t
}

type source int

const (
	fromBoth   source = iota // both sides agree, or neither changed it
	fromOurs                 // only ours changed it, or ours won
	fromTheirs               // only theirs changed it, or theirs won
)

// scalar merges one value three ways; see scalarFrom.
func scalar[T any](m *merger, name string, b, o, t T, eq func(a, b T) bool, str func(T) string) T {
	v, _ := scalarFrom(m, name, b, o, t, eq, str)
	return v
}

// scalarFrom merges one value three ways and says which side it came
// from. On a true conflict it records the losing value under name.
func scalarFrom[T any](m *merger, name string, b, o, t T, eq func(a, b T) bool, str func(T) string) (T, source) {
	switch {
	case eq(o, t):
		return t, fromBoth
	case m.hasBase && eq(b, o):
		return t, fromTheirs
	case m.hasBase && eq(b, t):
		return o, fromOurs
	}
	win, lose := pick(m, o, t)
	m.record(name, str(lose))
	if m.theirsWins {
		return win, fromTheirs
	}
	return win, fromOurs
}

// mergeSet merges lists of elements identified by key, three ways. An
// element added on one side is added; one removed on one side and
// unchanged on the other is removed; one removed on one side and changed
// on the other is kept, unless removalWins. One present on both sides
// and changed differently goes to resolve (nil: take theirs). The order
// is theirs, then what only ours has. When one side left the list as it
// was in base, the result is the other side's list exactly. Elements with
// the same key in one list are told apart by their occurrence.
func mergeSet[T any](m *merger, b, o, t []T, key func(T) string, eq func(a, b T) bool, removalWins bool, resolve func(o, t T) T) []T {
	if m.hasBase && slices.EqualFunc(b, o, eq) && keysEqual(b, o, key) {
		return t
	}
	if m.hasBase && slices.EqualFunc(b, t, eq) && keysEqual(b, t, key) {
		return o
	}
	bi, oi, ti := index(b, key), index(o, key), index(t, key)
	var out []T
	for _, k := range ti.order {
		tv := ti.at[k]
		ov, inO := oi.at[k]
		bv, inB := bi.at[k]
		switch {
		case inO && eq(ov, tv):
			out = append(out, tv)
		case inO && inB && eq(bv, ov):
			out = append(out, tv)
		case inO && inB && eq(bv, tv):
			out = append(out, ov)
		case inO && resolve != nil:
			out = append(out, resolve(ov, tv))
		case inO:
			out = append(out, tv)
		case !inB: // added by theirs
			out = append(out, tv)
		case !eq(bv, tv) && !removalWins: // ours removed it, theirs changed it
			out = append(out, tv)
		}
	}
	for _, k := range oi.order {
		if _, inT := ti.at[k]; inT {
			continue
		}
		ov := oi.at[k]
		bv, inB := bi.at[k]
		switch {
		case !inB: // added by ours
			out = append(out, ov)
		case !eq(bv, ov) && !removalWins: // theirs removed it, ours changed it
			out = append(out, ov)
		}
	}
	return out
}

type indexed[T any] struct {
	order []string
	at    map[string]T
}

func index[T any](list []T, key func(T) string) indexed[T] {
	ix := indexed[T]{at: make(map[string]T, len(list))}
	seen := map[string]int{}
	for _, v := range list {
		k := key(v)
		if n := seen[k]; n > 0 {
			seen[k]++
			k += "\x00" + strconv.Itoa(n)
		} else {
			seen[k] = 1
		}
		ix.order = append(ix.order, k)
		ix.at[k] = v
	}
	return ix
}

func keysEqual[T any](a, b []T, key func(T) string) bool {
	return slices.EqualFunc(a, b, func(x, y T) bool { return key(x) == key(y) })
}

// boundConflicts drops the oldest conflicts until the list is within
// MaxConflicts and MaxConflictsBytes.
func boundConflicts(cs []Conflict) []Conflict {
	size := 0
	for _, c := range cs {
		size += len(c.Field) + len(c.Value)
	}
	for len(cs) > MaxConflicts || size > MaxConflictsBytes && len(cs) > 1 {
		oldest := 0
		for i, c := range cs {
			if c.Seen.Before(cs[oldest].Seen) {
				oldest = i
			}
		}
		size -= len(cs[oldest].Field) + len(cs[oldest].Value)
		cs = slices.Delete(cs, oldest, oldest+1)
	}
	return cs
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func timePtrEqual(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

func attachmentEqual(a, b Attachment) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Size == b.Size && a.Chunks == b.Chunks &&
		bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Header, b.Header) && a.Added.Equal(b.Added)
}

// toJSON is v in JSON, the form a structured value takes in a Conflict.
// The values merged here always marshal.
func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ptrJSON is the JSON of *v, or "" for nil.
func ptrJSON[T any](v *T) string {
	if v == nil {
		return ""
	}
	return toJSON(v)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
