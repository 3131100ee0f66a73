package audit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeBreaches is a corpus in memory that checks the Breaches contract.
type fakeBreaches struct {
	t      *testing.T
	counts map[[sha1.Size]byte]int64
	err    error

	mu    sync.Mutex
	calls int
}

func (f *fakeBreaches) Counts(ctx context.Context, sums [][sha1.Size]byte, counts []int64) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if len(sums) == 0 || len(sums) != len(counts) {
		f.t.Errorf("Counts with %d sums, %d counts", len(sums), len(counts))
	}
	for i, s := range sums {
		if prefix20(s) != prefix20(sums[0]) {
			f.t.Errorf("sums of one call with different prefixes")
		}
		if i > 0 && s == sums[i-1] {
			f.t.Errorf("the same sum twice in one call")
		}
	}
	if f.err != nil {
		return f.err
	}
	for i, s := range sums {
		counts[i] = f.counts[s]
	}
	return nil
}

func breached(t *testing.T, pw map[string]int64) *fakeBreaches {
	f := &fakeBreaches{t: t, counts: make(map[[sha1.Size]byte]int64)}
	for p, n := range pw {
		f.counts[sha1.Sum([]byte(p))] = n
	}
	return f
}

func login(id, title, user, pw string) item.Item {
	return item.Item{ID: id, Type: item.Login, Title: title, Username: user, Password: pw,
		Created: now.Add(-time.Hour), Modified: now.Add(-time.Hour), PasswordChanged: now.Add(-time.Hour)}
}

// kinds lists "id:kind" of the findings, in report order.
func kinds(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Item+":"+string(f.Kind))
	}
	return out
}

func run(t *testing.T, items []item.Item, opts Options) *Report {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = now
	}
	r, err := Run(context.Background(), items, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWeak(t *testing.T) {
	items := []item.Item{
		login("a", "Bank", "ann", "password"),
		login("b", "Mail", "ann", "pw-4242-Zq8vN2kLm4Xr"),
		login("c", "Shop", "ann", "Summer2019!"),
		// Strong alone, weak once the title's words are known.
		login("d", "Zymurgical Foobaz", "", "zymurgicalfoobaz"),
		{ID: "e", Type: item.Note, Title: "No password"},
	}
	r := run(t, items, Options{MinScore: 3})
	if got := kinds(r); !slices.Equal(got, []string{"a:weak", "c:weak", "d:weak"}) {
		t.Fatalf("findings %v", got)
	}
	scores := map[string]int{}
	for _, f := range r.Findings {
		scores[f.Item] = *f.Score
	}
	if scores["a"] != 0 || scores["c"] != 2 || scores["d"] != 1 {
		t.Fatalf("scores %v", scores)
	}
	if Score("zymurgicalfoobaz", nil) != 4 {
		t.Fatal("the user inputs made no difference")
	}
	if r.Summary.Passwords != 4 || r.Summary.Weak != 3 || r.Summary.Scores != [5]int{1, 1, 1, 0, 1} || r.Items != 5 {
		t.Fatalf("summary %+v", r.Summary)
	}
	// --min-score 1 keeps only score 0; 0 turns the check off.
	if got := kinds(run(t, items, Options{MinScore: 1})); !slices.Equal(got, []string{"a:weak"}) {
		t.Fatalf("min score 1: %v", got)
	}
	if got := kinds(run(t, items, Options{})); len(got) != 0 {
		t.Fatalf("check off: %v", got)
	}
	if _, err := Run(context.Background(), items, Options{MinScore: 5}, nil); err == nil {
		t.Fatal("min score 5 accepted")
	}
}

func TestUserInputs(t *testing.T) {
	it := item.Item{Title: "My GitHub (work)", Username: "Ann.Lee@Example.org",
		URLs: []string{"https://www.github.com/login", "gitlab.example.co.uk/x", "::bad"}}
	want := []string{"ann.lee@example.org", "ann.lee", "ann", "lee", "example", "org", "my", "github", "work",
		"www.github.com", "gitlab.example.co.uk", "gitlab", "co"}
	if got := UserInputs(it); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// Long passwords are scored on their first 100 bytes, cut at a rune.
func TestScoreLong(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	if Score(long, nil) != Score(strings.Repeat("é", 50), nil) {
		t.Fatal("not cut at 100 bytes")
	}
}

func TestReused(t *testing.T) {
	items := []item.Item{
		login("1", "b", "", "same"), login("2", "A", "", "same"), login("3", "c", "", "other"),
		login("4", "d", "", "other"), login("5", "e", "", "same"), login("6", "f", "", "unique"),
		login("7", "g", "", ""), login("8", "h", "", ""),
	}
	r := run(t, items, Options{})
	if got := kinds(r); !slices.Equal(got, []string{"2:reused", "1:reused", "5:reused", "3:reused", "4:reused"}) {
		t.Fatalf("findings %v", got)
	}
	groups := map[string][2]int{}
	for _, f := range r.Findings {
		groups[f.Item] = [2]int{f.Group, f.GroupSize}
	}
	if groups["2"] != [2]int{1, 3} || groups["5"] != [2]int{1, 3} || groups["3"] != [2]int{2, 2} {
		t.Fatalf("groups %v", groups)
	}
	if r.Summary.Reused != 5 || r.Summary.ReuseGroups != 2 {
		t.Fatalf("summary %+v", r.Summary)
	}
}

func TestOld(t *testing.T) {
	year := 365 * 24 * time.Hour
	old := login("1", "Old", "", "x1")
	old.PasswordChanged = now.Add(-year - 24*time.Hour)
	old.Modified = now // edited lately, password untouched
	recent := login("2", "Recent", "", "x2")
	recent.Created = now.Add(-5 * year) // created long ago, password changed lately
	noStamp := login("3", "Created only", "", "x3")
	noStamp.PasswordChanged = time.Time{}
	noStamp.Created = now.Add(-2 * year)
	modOnly := item.Item{ID: "4", Type: item.Login, Title: "Modified only", Password: "x4", Modified: now.Add(-400 * 24 * time.Hour)}
	none := item.Item{ID: "5", Type: item.Login, Title: "No dates", Password: "x5"}
	exactly := login("6", "Exactly a year", "", "x6")
	exactly.PasswordChanged = now.Add(-year)
	noPW := item.Item{ID: "7", Type: item.Login, Title: "No password", Created: now.Add(-9 * year)}
	r := run(t, []item.Item{old, recent, noStamp, modOnly, none, exactly, noPW}, Options{OldAfter: year})
	if got := kinds(r); !slices.Equal(got, []string{"3:old", "4:old", "1:old"}) {
		t.Fatalf("findings %v", got)
	}
	for _, f := range r.Findings {
		want := map[string]string{"1": FromPasswordChanged, "3": FromCreated, "4": FromModified}[f.Item]
		days := map[string]int{"1": 366, "3": 730, "4": 400}[f.Item]
		if f.ChangedFrom != want || *f.AgeDays != days || f.Changed == nil {
			t.Fatalf("%s: from %q, %d days", f.Item, f.ChangedFrom, *f.AgeDays)
		}
	}
	if r.Summary.OldAfterSeconds != 365*24*3600 {
		t.Fatalf("summary %+v", r.Summary)
	}
}

func TestMissingTOTP(t *testing.T) {
	field := func(name string, k item.FieldKind, v string) item.Field {
		return item.Field{Name: name, Kind: k, Value: v}
	}
	cases := []struct {
		it     item.Item
		reason string
		field  string
	}{
		{item.Item{Type: item.Login, Fields: []item.Field{field("one-time password", item.KindTOTP, "")}}, ReasonEmptyTOTPField, "one-time password"},
		{item.Item{Type: item.Login, Fields: []item.Field{field("2fa", item.KindHidden, "otpauth://totp/X?secret=JBSWY3DPEHPK3PXP")}}, ReasonOTPAuthInField, "2fa"},
		{item.Item{Type: item.Login, Notes: "backup: OTPAUTH://TOTP/x?secret=AAAA"}, ReasonOTPAuthInNotes, "notes"},
		// A seed somewhere safe totp looks: nothing to report.
		{item.Item{Type: item.Login, TOTP: "JBSWY3DPEHPK3PXP", Fields: []item.Field{field("otp", item.KindTOTP, "")}}, "", ""},
		{item.Item{Type: item.Login, Fields: []item.Field{field("a", item.KindTOTP, ""), field("b", item.KindTOTP, "JBSWY3DPEHPK3PXP")}}, "", ""},
		// No place for a seed: a login without 2FA is not reported.
		{item.Item{Type: item.Login, Password: "x"}, "", ""},
		// Only logins.
		{item.Item{Type: item.Note, Fields: []item.Field{field("otp", item.KindTOTP, "")}}, "", ""},
		{item.Item{Type: item.TOTP, Notes: "otpauth://totp/x"}, "", ""},
	}
	for i, c := range cases {
		reason, f, ok := MissingTOTP(c.it)
		if reason != c.reason || f != c.field || ok != (c.reason != "") {
			t.Errorf("case %d: %q %q %v", i, reason, f, ok)
		}
	}
	r := run(t, []item.Item{{ID: "x", Type: item.Login, Title: "X", Fields: []item.Field{field("otp", item.KindTOTP, "")}}}, Options{})
	if got := kinds(r); !slices.Equal(got, []string{"x:no_totp"}) || r.Findings[0].Reason != ReasonEmptyTOTPField || r.Summary.NoTOTP != 1 {
		t.Fatalf("findings %+v", r.Findings)
	}
}

func TestBreached(t *testing.T) {
	items := []item.Item{
		login("1", "A", "", "password"), login("2", "B", "", "password"), login("3", "C", "", "hunter2"),
		login("4", "D", "", "not in any list 8c1f"), {ID: "5", Type: item.Note, Title: "note"},
	}
	b := breached(t, map[string]int64{"password": 9545824, "hunter2": 17})
	r := run(t, items, Options{Breaches: b, Breach: "file"})
	want := []string{"1:breached", "2:breached", "3:breached", "1:reused", "2:reused"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings %v", got)
	}
	if r.Findings[0].BreachCount != 9545824 || r.Findings[2].BreachCount != 17 {
		t.Fatalf("counts %+v", r.Findings)
	}
	if b.calls != 3 { // three distinct prefixes; "password" twice is one lookup
		t.Fatalf("%d lookups", b.calls)
	}
	if r.Summary.Breach != "file" || r.Summary.Breached != 3 {
		t.Fatalf("summary %+v", r.Summary)
	}
	// An error of the source fails the run.
	b.err = errors.New("offline")
	if _, err := Run(context.Background(), items, Options{Breaches: b}, nil); err == nil || err.Error() != "offline" {
		t.Fatalf("source error: %v", err)
	}
}

// Passwords sharing a prefix are one job and one lookup.
func TestBreachedSharedPrefix(t *testing.T) {
	// Find two passwords whose SHA-1 sums share 20 bits (a search of a
	// few thousand candidates).
	seen := map[uint32]string{}
	var p1, p2 string
	for i := 0; p2 == ""; i++ {
		p := "pw-" + strconv.Itoa(i)
		k := prefix20(sha1.Sum([]byte(p)))
		if q, ok := seen[k]; ok {
			p1, p2 = q, p
		}
		seen[k] = p
	}
	b := breached(t, map[string]int64{p2: 4})
	r := run(t, []item.Item{login("1", "A", "", p1), login("2", "B", "", p2)}, Options{Breaches: b})
	if got := kinds(r); !slices.Equal(got, []string{"2:breached"}) || b.calls != 1 {
		t.Fatalf("findings %v, %d lookups", got, b.calls)
	}
}

// Trashed items are not audited; progress ends at the total; the report
// (as JSON) holds no password and no hash of one.
func TestReportHoldsNoSecrets(t *testing.T) {
	pw := "letmein"
	items := []item.Item{login("1", "A", "ann", pw), login("2", "B", "ann", pw), login("3", "C", "", "Summer2019!")}
	gone := login("9", "Trashed", "", "trashed-password-xyz")
	gone.Trashed = &now
	items = append(items, gone)
	var mu sync.Mutex
	var last [2]int64
	progress := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done < last[0] || done > total {
			t.Errorf("progress %d of %d after %d", done, total, last[0])
		}
		last = [2]int64{done, total}
	}
	r, err := Run(context.Background(), items, Options{Now: now, MinScore: 3, OldAfter: time.Minute, Breaches: breached(t, map[string]int64{pw: 1})}, progress)
	if err != nil {
		t.Fatal(err)
	}
	if last != [2]int64{3, 3} || r.Items != 3 {
		t.Fatalf("progress %v, items %d", last, r.Items)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(pw))
	hex := string(appendUpperHex(nil, sum[:]))
	for _, bad := range []string{pw, "Summer2019", "trashed", hex[:5], strings.ToLower(hex[:5])} {
		if bytes.Contains(js, []byte(bad)) {
			t.Fatalf("the report holds %q: %s", bad, js)
		}
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || back.Summary != r.Summary || len(back.Findings) != len(r.Findings) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	items := []item.Item{login("1", "A", "", "password")}
	if _, err := Run(ctx, items, Options{MinScore: 3}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
