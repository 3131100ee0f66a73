// Package audit checks the health of a vault's items (`safe audit`): weak
// passwords (zxcvbn score), passwords reused across items, passwords not
// changed for a long time, logins whose one-time-password slot is empty,
// and passwords found in the Pwned Passwords breach corpus, either through
// the k-anonymity range API (only a 5-hex-digit SHA-1 prefix leaves the
// machine) or in a local copy of the list, binary-searched in place.
//
// It runs inside the unlock agent, which holds the decrypted items; its
// Report names items and findings but never holds a password, a hash of one
// or a hash prefix. docs/design.md ("Vault health") is the specification.
package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// Kind is the kind of a finding.
type Kind string

// Finding kinds, in the order reports list them (most urgent first).
const (
	Breached Kind = "breached" // the password is in the breach corpus
	Reused   Kind = "reused"   // other items have the same password
	Weak     Kind = "weak"     // zxcvbn score below Options.MinScore
	Old      Kind = "old"      // the password has not changed for Options.OldAfter
	NoTOTP   Kind = "no_totp"  // a login has a place for a TOTP seed but no seed
)

// Kinds lists the kinds in report order.
var Kinds = []Kind{Breached, Reused, Weak, Old, NoTOTP}

// Reasons of a NoTOTP finding.
const (
	// ReasonEmptyTOTPField: the login has a custom field of kind totp
	// whose value is empty, and no seed anywhere else.
	ReasonEmptyTOTPField = "empty_totp_field"
	// ReasonOTPAuthInField: an otpauth:// URI sits in a custom field of
	// another kind, where `safe totp` does not look.
	ReasonOTPAuthInField = "otpauth_in_field"
	// ReasonOTPAuthInNotes: an otpauth:// URI sits in the notes.
	ReasonOTPAuthInNotes = "otpauth_in_notes"
)

// Where an Old finding's date comes from.
const (
	FromPasswordChanged = "password_changed"
	FromCreated         = "created"
	FromModified        = "modified"
)

// Defaults of the command line.
const (
	DefaultMinScore = 3
	DefaultOldAfter = 365 * 24 * time.Hour
)

// Options configure a run. The zero value checks nothing but reuse and
// TOTP.
type Options struct {
	// Now is the time ages are measured against; zero means time.Now.
	Now time.Time
	// MinScore: a password whose zxcvbn score (0..4) is below it is weak;
	// 0 turns the check off.
	MinScore int
	// OldAfter: a password unchanged for longer is old; 0 turns the check
	// off.
	OldAfter time.Duration
	// Breaches looks up SHA-1 sums; nil turns the check off. Breach names
	// it in the report ("api", "file").
	Breaches Breaches
	Breach   string
	// Workers bounds the goroutines that score passwords and look them
	// up; 0 means max(GOMAXPROCS, 8) (lookups wait on the network).
	Workers int
}

// Breaches looks passwords up in a breach corpus by their SHA-1 sums.
//
// Contract: the sums of one call share their first 20 bits (5 hex digits,
// one range-API prefix) and are distinct; Counts sets counts[i] (len(counts)
// == len(sums)) to how often sums[i] occurs in the corpus, 0 when it does
// not. An implementation is safe for concurrent use, returns ctx's error
// (wrapped) when ctx ends, and never puts the sums, or anything derived
// from them other than the 5-digit prefix it may send, in errors or logs.
type Breaches interface {
	Counts(ctx context.Context, sums [][sha1.Size]byte, counts []int64) error
}

// Finding is one problem with one item. Which detail fields are present
// depends on Kind.
type Finding struct {
	Item     string    `json:"item"`
	Title    string    `json:"title"`
	Type     item.Type `json:"type"`
	Username string    `json:"username,omitempty"`
	Kind     Kind      `json:"kind"`

	// Weak: the zxcvbn score, 0..4.
	Score *int `json:"score,omitempty"`
	// Reused: the group (1, 2...) of items sharing one password, and how
	// many items it has.
	Group     int `json:"group,omitempty"`
	GroupSize int `json:"group_size,omitempty"`
	// Old: when the password last changed (or, failing that, when the item
	// was created or modified: ChangedFrom says which), and how many whole
	// days ago.
	Changed     *time.Time `json:"changed,omitempty"`
	ChangedFrom string     `json:"changed_from,omitempty"`
	AgeDays     *int       `json:"age_days,omitempty"`
	// NoTOTP: why (a Reason... constant) and the field concerned.
	Reason string `json:"reason,omitempty"`
	Field  string `json:"field,omitempty"`
	// Breached: how often the password occurs in the corpus.
	BreachCount int64 `json:"breach_count,omitempty"`
}

// Summary counts the findings.
type Summary struct {
	Passwords   int `json:"passwords"` // items with a password
	Findings    int `json:"findings"`  // all findings
	Breached    int `json:"breached"`
	Reused      int `json:"reused"` // items in a reuse group
	ReuseGroups int `json:"reuse_groups"`
	Weak        int `json:"weak"`
	Old         int `json:"old"`
	NoTOTP      int `json:"no_totp"`
	// Scores counts passwords by zxcvbn score 0..4 (all zero when the weak
	// check is off).
	Scores [5]int `json:"scores"`
	// The settings the run used.
	MinScore        int    `json:"min_score"`
	OldAfterSeconds int64  `json:"old_after_seconds"`
	Breach          string `json:"breach"` // "api", "file" or "off"
}

// Report is the result of a run (the JSON of `safe audit --json`).
type Report struct {
	Items    int       `json:"items"`
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
}

// maxPasswordScored bounds the bytes zxcvbn sees: its matching grows
// quadratically with the length, and a longer password is not weaker.
const maxPasswordScored = 100

// Run audits items (trashed ones are skipped). progress, if not nil, is
// called with the number of items done of the total; it must be safe for
// concurrent use.
func Run(ctx context.Context, items []item.Item, opts Options, progress func(done, total int64)) (*Report, error) {
	if opts.MinScore < 0 || opts.MinScore > 4 {
		return nil, fmt.Errorf("audit: minimum score %d is not 0..4", opts.MinScore)
	}
	if opts.OldAfter < 0 {
		return nil, fmt.Errorf("audit: negative age %v", opts.OldAfter)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = max(runtime.GOMAXPROCS(0), 8)
	}
	live := make([]*item.Item, 0, len(items))
	for i := range items {
		if items[i].Trashed == nil {
			live = append(live, &items[i])
		}
	}
	rep := &Report{Items: len(live), Findings: []Finding{}}
	rep.Summary.MinScore = opts.MinScore
	rep.Summary.OldAfterSeconds = int64(opts.OldAfter / time.Second)
	rep.Summary.Breach = "off"
	if opts.Breaches != nil {
		rep.Summary.Breach = cmp.Or(opts.Breach, "on")
	}

	// Per-item state. The password-derived values stay in this function
	// and are wiped before it returns.
	st := make([]itemState, len(live))
	defer func() {
		for i := range st {
			clear(st[i].mac[:])
			clear(st[i].sha[:])
		}
	}()
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	defer clear(key[:])
	mac := hmac.New(sha256.New, key[:])
	var withPW []int
	for i, it := range live {
		if it.Password == "" {
			continue
		}
		withPW = append(withPW, i)
		mac.Reset()
		mac.Write([]byte(it.Password))
		mac.Sum(st[i].mac[:0])
		if opts.Breaches != nil {
			st[i].sha = sha1.Sum([]byte(it.Password))
		}
	}
	rep.Summary.Passwords = len(withPW)

	// The slow work (zxcvbn, breach lookups) runs in jobs: with a breach
	// check, one per SHA-1 prefix (so that each prefix is asked for once),
	// otherwise one per item.
	var jobs [][]int
	if opts.Breaches != nil {
		order := slices.Clone(withPW)
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(st[a].sha[:], st[b].sha[:]) })
		for i, idx := range order {
			if i == 0 || prefix20(st[idx].sha) != prefix20(st[order[i-1]].sha) {
				jobs = append(jobs, nil)
			}
			jobs[len(jobs)-1] = append(jobs[len(jobs)-1], idx)
		}
	} else if opts.MinScore > 0 {
		for _, idx := range withPW {
			jobs = append(jobs, []int{idx})
		}
	}
	total := int64(len(live))
	var done atomic.Int64
	done.Store(total - int64(countItems(jobs)))
	if progress != nil {
		progress(done.Load(), total)
	}
	if err := runJobs(ctx, jobs, workers, func(ctx context.Context, job []int) error {
		if opts.MinScore > 0 {
			for _, idx := range job {
				st[idx].score = Score(live[idx].Password, UserInputs(*live[idx]))
			}
		}
		if opts.Breaches != nil {
			if err := lookup(ctx, opts.Breaches, job, st); err != nil {
				return err
			}
		}
		n := done.Add(int64(len(job)))
		if progress != nil {
			progress(n, total)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// Findings.
	add := func(it *item.Item, k Kind) *Finding {
		rep.Findings = append(rep.Findings, Finding{Item: it.ID, Title: it.Title, Type: it.Type, Username: it.Username, Kind: k})
		return &rep.Findings[len(rep.Findings)-1]
	}
	for _, idx := range withPW {
		it, s := live[idx], &st[idx]
		if s.breaches > 0 {
			add(it, Breached).BreachCount = s.breaches
		}
		if opts.MinScore > 0 {
			rep.Summary.Scores[s.score]++
			if s.score < opts.MinScore {
				score := s.score
				add(it, Weak).Score = &score
			}
		}
		if opts.OldAfter > 0 {
			if changed, from, ok := PasswordDate(*it); ok && now.Sub(changed) > opts.OldAfter {
				days := int(now.Sub(changed) / (24 * time.Hour))
				f := add(it, Old)
				f.Changed, f.ChangedFrom, f.AgeDays = &changed, from, &days
			}
		}
	}
	for _, it := range live {
		if reason, field, ok := MissingTOTP(*it); ok {
			f := add(it, NoTOTP)
			f.Reason, f.Field = reason, field
		}
	}
	for _, g := range reuseGroups(live, withPW, st) {
		for _, idx := range g.members {
			f := add(live[idx], Reused)
			f.Group, f.GroupSize = g.n, len(g.members)
		}
		rep.Summary.ReuseGroups++
	}
	sortFindings(rep.Findings)
	for _, f := range rep.Findings {
		switch f.Kind {
		case Breached:
			rep.Summary.Breached++
		case Reused:
			rep.Summary.Reused++
		case Weak:
			rep.Summary.Weak++
		case Old:
			rep.Summary.Old++
		case NoTOTP:
			rep.Summary.NoTOTP++
		}
	}
	rep.Summary.Findings = len(rep.Findings)
	return rep, nil
}

type itemState struct {
	mac      [sha256.Size]byte // HMAC of the password under a key of this run
	sha      [sha1.Size]byte   // SHA-1 of the password (breach check only)
	score    int
	breaches int64
}

func prefix20(s [sha1.Size]byte) uint32 { return uint32(s[0])<<12 | uint32(s[1])<<4 | uint32(s[2])>>4 }

func countItems(jobs [][]int) int {
	n := 0
	for _, j := range jobs {
		n += len(j)
	}
	return n
}

// lookup asks b about the distinct sums of one prefix job and stores the
// counts.
func lookup(ctx context.Context, b Breaches, job []int, st []itemState) error {
	var sums [][sha1.Size]byte
	for i, idx := range job { // job is sorted by sum
		if i == 0 || st[idx].sha != st[job[i-1]].sha {
			sums = append(sums, st[idx].sha)
		}
	}
	defer func() {
		for i := range sums {
			clear(sums[i][:])
		}
	}()
	counts := make([]int64, len(sums))
	if err := b.Counts(ctx, sums, counts); err != nil {
		return err
	}
	k := 0
	for _, idx := range job {
		for sums[k] != st[idx].sha {
			k++
		}
		st[idx].breaches = counts[k]
	}
	return nil
}

// runJobs runs do on every job with at most workers at a time and returns
// the first error (which cancels the rest).
func runJobs(ctx context.Context, jobs [][]int, workers int, do func(context.Context, []int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan []int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for job := range next {
				if err := do(ctx, job); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		})
	}
feed:
	for _, job := range jobs {
		select {
		case next <- job:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

type reuseGroup struct {
	n       int
	members []int
}

// reuseGroups finds the passwords that several items share (equal keyed
// hashes), each group's members sorted by title, groups by their first
// member, numbered from 1.
func reuseGroups(live []*item.Item, withPW []int, st []itemState) []reuseGroup {
	by := make(map[[sha256.Size]byte][]int)
	for _, idx := range withPW {
		by[st[idx].mac] = append(by[st[idx].mac], idx)
	}
	var groups []reuseGroup
	for _, m := range by {
		if len(m) > 1 {
			slices.SortFunc(m, func(a, b int) int { return byTitle(live[a], live[b]) })
			groups = append(groups, reuseGroup{members: m})
		}
	}
	slices.SortFunc(groups, func(a, b reuseGroup) int { return byTitle(live[a.members[0]], live[b.members[0]]) })
	for i := range groups {
		groups[i].n = i + 1
	}
	return groups
}

func byTitle(a, b *item.Item) int {
	return cmp.Or(strings.Compare(strings.ToLower(a.Title), strings.ToLower(b.Title)), strings.Compare(a.ID, b.ID))
}

// sortFindings orders by kind (Kinds), then reuse group, then title, id.
func sortFindings(fs []Finding) {
	rank := func(k Kind) int { return slices.Index(Kinds, k) }
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(rank(a.Kind), rank(b.Kind)),
			cmp.Compare(a.Group, b.Group),
			strings.Compare(strings.ToLower(a.Title), strings.ToLower(b.Title)),
			strings.Compare(a.Item, b.Item),
		)
	})
}
