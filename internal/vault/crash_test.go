package vault

// Crash safety: a child process (this test binary, re-executed) writes to a
// vault in a loop and the parent kills it with SIGKILL at a random instant.
// After every kill the parent copies what the child left, opens and unlocks
// the copy, runs Verify, and checks that the vault is in one of the two
// states a crash may leave: every acknowledged write applied, plus the one
// write in flight either wholly applied or not at all. The next child writes
// on to the original file, so damage would accumulate. The method and the
// figures are in docs/design/60-crash-safety.md.
//
// Default run:  go test -run TestCrash -v ./internal/vault/
// Soak run:     SAFEHOLD_CRASH_ITERATIONS=200 go test -run TestCrash -v -timeout 60m ./internal/vault/
//               (or -args -crash.iterations=200; replay with SAFEHOLD_CRASH_SEED or -crash.seed)

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
)

// The child is told what to do through the environment; it never sees a
// real secret (the two vault passwords below are test fixtures).
const (
	crashChildEnv      = "SAFEHOLD_CRASH_CHILD" // vault path; set only in the child
	crashChildSeedEnv  = "SAFEHOLD_CRASH_CHILD_SEED"
	crashChildModeEnv  = "SAFEHOLD_CRASH_CHILD_MODE" // "mix" or "big"
	crashIterationsEnv = "SAFEHOLD_CRASH_ITERATIONS"
	crashSeedEnv       = "SAFEHOLD_CRASH_SEED"
)

var (
	crashIterationsFlag = flag.Int("crash.iterations", 0, "iterations of TestCrashDuringWrites (default 40, 10 with -short or -race; env "+crashIterationsEnv+")")
	crashSeedFlag       = flag.Uint64("crash.seed", 0, "seed of TestCrashDuringWrites (default random; env "+crashSeedEnv+")")
)

// crashPasswords are the two passwords the child switches the vault between.
var crashPasswords = [2]string{"crash test password one", "crash test password two"}

const (
	crashBulk         = 50 // items in one bulk Add
	crashBigEvery     = 5  // every 5th iteration kills during a large attachment
	crashChildMaxLife = 30 * time.Second
	// crashBudget bounds the default run, so the package's tests stay
	// within their budget on a slow or busy machine; a count set with
	// SAFEHOLD_CRASH_ITERATIONS or -crash.iterations is always run in full.
	crashBudget = 12 * time.Second
)

// TestCrashChild is the child writer. It does nothing unless the parent
// started it with SAFEHOLD_CRASH_CHILD set; then it loops over writes until
// it is killed, printing "start ..." before and "ack ..." after each call.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		return
	}
	seed, err := strconv.ParseUint(os.Getenv(crashChildSeedEnv), 10, 64)
	if err != nil {
		crashSay("fail bad seed: %v", err)
		os.Exit(3)
	}
	if err := crashChild(path, seed, os.Getenv(crashChildModeEnv) == "big"); err != nil {
		crashSay("fail %v", err)
		os.Exit(3)
	}
	crashSay("done")
	os.Exit(0)
}

// crashSay writes one protocol line with a single Write: a pipe write of at
// most PIPE_BUF bytes is atomic, so the parent never sees half a line from a
// child killed while printing.
func crashSay(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	if len(line) > 4096 {
		panic("crash protocol line longer than PIPE_BUF")
	}
	os.Stdout.Write([]byte(line))
}

func crashLogin(title string) item.Item {
	return item.Item{Type: item.Login, Title: title, Username: "crash", Password: "p-" + title}
}

// crashContent is an attachment's deterministic content and its SHA-256.
func crashContent(name string, size int) (io.Reader, string) {
	seed := sha256.Sum256([]byte(name))
	h := sha256.New()
	io.Copy(h, io.LimitReader(rand.NewChaCha8(seed), int64(size)))
	return io.LimitReader(rand.NewChaCha8(seed), int64(size)), hex.EncodeToString(h.Sum(nil))
}

func crashChild(path string, seed uint64, big bool) error {
	v, err := Open(path, testOptions())
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	pw := 0
	err = v.Unlock(ctx, []byte(crashPasswords[pw]))
	if errors.Is(err, ErrWrongPassword) {
		pw = 1
		err = v.Unlock(ctx, []byte(crashPasswords[pw]))
	}
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	crashSay("ready %d", pw)
	rng := rand.New(rand.NewPCG(seed, 0xc7a5))
	tag := fmt.Sprintf("c%08x", uint32(seed))
	stop := time.Now().Add(crashChildMaxLife)
	// A big run adds an item, attaches several MiB to it, then trashes and
	// purges it (so that the file stays small), all while the parent waits
	// for the moment to kill; focus is that item.
	var forced []string
	var focus string
	if big {
		forced = []string{"add", "bigattach", "trash", "purge"}
	}
	for n := 0; time.Now().Before(stop); n++ {
		live, err := v.List(ctx, Filter{})
		if err != nil {
			return err
		}
		trash, err := v.List(ctx, Filter{Trash: true})
		if err != nil {
			return err
		}
		op := crashChooseOp(rng, len(live), len(trash))
		if len(forced) > 0 {
			op, forced = forced[0], forced[1:]
		} else {
			focus = ""
		}
		pick := func(l []Overview) Overview {
			if i := slices.IndexFunc(l, func(o Overview) bool { return o.ID == focus }); i >= 0 {
				return l[i]
			}
			return l[rng.IntN(len(l))]
		}
		title := fmt.Sprintf("%s-%d", tag, n)
		switch op {
		case "add":
			crashSay("start add - 0 %s", title)
			out, err := v.Add(ctx, []item.Item{crashLogin(title)})
			if err != nil {
				return fmt.Errorf("add: %w", err)
			}
			crashSay("ack add %s %d %s", out[0].ID, out[0].Revision, title)
			if len(forced) > 0 {
				focus = out[0].ID
			}
		case "addbulk":
			var items []item.Item
			for k := range crashBulk {
				items = append(items, crashLogin(fmt.Sprintf("%s-%02d", title, k)))
			}
			crashSay("start addbulk - 0 %s %d", title, crashBulk)
			out, err := v.Add(ctx, items)
			if err != nil {
				return fmt.Errorf("bulk add: %w", err)
			}
			ids := make([]string, len(out))
			for i, it := range out {
				ids[i] = it.ID
			}
			crashSay("ack addbulk %s %d %s %d", strings.Join(ids, ","), out[0].Revision, title, crashBulk)
		case "update":
			o := pick(live)
			cur, err := v.Get(ctx, o.ID)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			next := cur.Clone()
			next.Password = fmt.Sprintf("pw-%016x", rng.Uint64())
			crashSay("start update %s %d %s", o.ID, cur.Revision, next.Password)
			got, err := v.Update(ctx, o.ID, cur.Revision, next)
			if err != nil {
				return fmt.Errorf("update: %w", err)
			}
			crashSay("ack update %s %d %s", got.ID, got.Revision, got.Password)
		case "trash", "restore", "purge":
			from, do := live, v.Trash
			switch op {
			case "restore":
				from, do = trash, v.Restore
			case "purge":
				from, do = trash, v.Purge
			}
			o := pick(from)
			crashSay("start %s %s %d", op, o.ID, o.Revision)
			got, err := do(ctx, o.ID)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			crashSay("ack %s %s %d", op, got.ID, got.Revision)
		case "attach", "bigattach":
			o := pick(live)
			size := 64<<10 + rng.IntN(256<<10)
			if op == "bigattach" {
				size = 2<<20 + rng.IntN(2<<20)
			}
			name := title + ".bin"
			r, sum := crashContent(name, size)
			crashSay("start %s %s %d %s %d %s", op, o.ID, o.Revision, name, size, sum)
			t0 := time.Now()
			got, err := v.Attach(ctx, o.ID, name, r)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			crashSay("ack %s %s %d %s %d %s %d", op, got.ID, got.Revision, name, size, sum, time.Since(t0).Milliseconds())
		case "passwd":
			next := 1 - pw
			crashSay("start passwd - 0 %d", next)
			if err := v.ChangePassword(ctx, []byte(crashPasswords[pw]), []byte(crashPasswords[next]), kdf.Params{}); err != nil {
				return fmt.Errorf("change password: %w", err)
			}
			pw = next
			crashSay("ack passwd - 0 %d", next)
		}
	}
	return v.Close()
}

// crashChooseOp picks the next write. Bulk adds stop at a few hundred
// items and trashing speeds up beyond that, so that a long soak run keeps
// exercising the same paths on a vault of bounded size; below that, items
// mostly accumulate, which keeps the log (and so each Verify) short.
func crashChooseOp(rng *rand.Rand, live, trash int) string {
	type w struct {
		op string
		n  int
	}
	ws := []w{{"add", 16}, {"passwd", 2}}
	if live+trash < 350 {
		ws = append(ws, w{"addbulk", 3})
	}
	if live > 0 {
		trashW := 8
		if live > 250 {
			trashW = 60
		}
		ws = append(ws, w{"update", 30}, w{"trash", trashW}, w{"attach", 8})
	}
	if trash > 0 {
		purgeW := 5
		if trash > 30 {
			purgeW = 40
		}
		ws = append(ws, w{"restore", 4}, w{"purge", purgeW})
	}
	total := 0
	for _, x := range ws {
		total += x.n
	}
	r := rng.IntN(total)
	for _, x := range ws {
		if r < x.n {
			return x.op
		}
		r -= x.n
	}
	panic("unreachable")
}

// crashOp is one parsed "start" or "ack" line.
type crashOp struct {
	ack   bool
	kind  string
	ids   []string // one id; a bulk Add's ack lists all
	rev   uint64   // base revision in "start", stored revision in "ack"
	title string   // add, addbulk (the tag of the bulk titles)
	n     int      // addbulk
	pw    string   // update: the new password
	att   string   // attach: "name:size:sha256"
	pwIdx int      // passwd: the new password's index
	ms    int64    // bigattach ack: how long Attach took
}

func parseCrashLine(line string) (crashOp, error) {
	f := strings.Fields(line)
	if len(f) < 4 || (f[0] != "start" && f[0] != "ack") {
		return crashOp{}, fmt.Errorf("malformed line %q", line)
	}
	op := crashOp{ack: f[0] == "ack", kind: f[1]}
	if f[2] != "-" {
		op.ids = strings.Split(f[2], ",")
	}
	rev, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return op, fmt.Errorf("line %q: %v", line, err)
	}
	op.rev = rev
	rest := f[4:]
	need := map[string]int{"add": 1, "addbulk": 2, "update": 1, "trash": 0, "restore": 0, "purge": 0, "attach": 3, "bigattach": 3, "passwd": 1}
	k, ok := need[op.kind]
	if !ok || len(rest) < k {
		return op, fmt.Errorf("malformed line %q", line)
	}
	switch op.kind {
	case "add":
		op.title = rest[0]
	case "addbulk":
		op.title = rest[0]
		op.n, err = strconv.Atoi(rest[1])
	case "update":
		op.pw = rest[0]
	case "attach", "bigattach":
		op.att = rest[0] + ":" + rest[1] + ":" + rest[2]
		if op.ack && op.kind == "bigattach" && len(rest) > 3 {
			op.ms, err = strconv.ParseInt(rest[3], 10, 64)
		}
	case "passwd":
		op.pwIdx, err = strconv.Atoi(rest[0])
	}
	if err != nil {
		return op, fmt.Errorf("line %q: %v", line, err)
	}
	wantIDs := 1
	switch {
	case op.kind == "passwd", !op.ack && (op.kind == "add" || op.kind == "addbulk"):
		wantIDs = 0
	case op.kind == "addbulk":
		wantIDs = op.n
	}
	if len(op.ids) != wantIDs {
		return op, fmt.Errorf("line %q: %d ids, want %d", line, len(op.ids), wantIDs)
	}
	return op, nil
}

// titles are the titles a (bulk) Add creates.
func (op crashOp) titles() []string {
	if op.kind == "add" {
		return []string{op.title}
	}
	var out []string
	for k := range op.n {
		out = append(out, fmt.Sprintf("%s-%02d", op.title, k))
	}
	return out
}

// crashItem is what the parent compares of an item.
type crashItem struct {
	Rev      uint64
	Title    string
	Password string
	Trashed  bool
	Atts     string // sorted "name:size:sha256", comma-separated
}

// applyTo returns the item after op; gone means op purged it.
func (op crashOp) applyTo(it crashItem) (crashItem, bool) {
	if op.kind == "purge" {
		return crashItem{}, true
	}
	it.Rev++
	switch op.kind {
	case "update":
		it.Password = op.pw
	case "trash":
		it.Trashed = true
	case "restore":
		it.Trashed = false
	case "attach", "bigattach":
		atts := []string{op.att}
		if it.Atts != "" {
			atts = append(atts, strings.Split(it.Atts, ",")...)
		}
		sort.Strings(atts)
		it.Atts = strings.Join(atts, ",")
	}
	return it, false
}

// crashState is the state of the vault as the parent knows it.
type crashState struct {
	items   map[string]crashItem
	pw      int
	orphans int // attachment blobs whose chunks no item refers to
}

// applyAck folds one acknowledged write into the model, checking that the
// child saw the same state the model holds.
func (s *crashState) applyAck(op crashOp) error {
	switch op.kind {
	case "add", "addbulk":
		titles := op.titles()
		if len(titles) != len(op.ids) {
			return fmt.Errorf("ack %s names %d ids for %d items", op.kind, len(op.ids), len(titles))
		}
		for i, id := range op.ids {
			if _, ok := s.items[id]; ok {
				return fmt.Errorf("ack %s: item %s already exists", op.kind, id)
			}
			s.items[id] = crashItem{Rev: op.rev, Title: titles[i], Password: "p-" + titles[i]}
		}
		return nil
	case "passwd":
		s.pw = op.pwIdx
		return nil
	}
	id := op.ids[0]
	cur, ok := s.items[id]
	if !ok {
		return fmt.Errorf("ack %s of item %s, which the model does not hold", op.kind, id)
	}
	next, gone := op.applyTo(cur)
	want := next.Rev
	if gone {
		want = cur.Rev
	}
	if op.rev != want {
		return fmt.Errorf("ack %s of item %s at revision %d, the model expected %d", op.kind, id, op.rev, want)
	}
	if gone {
		delete(s.items, id)
	} else {
		s.items[id] = next
	}
	return nil
}

// crashOutcome is what became of the write in flight when the child died.
type crashOutcome int

const (
	outcomeNone crashOutcome = iota // nothing was in flight
	outcomeBefore
	outcomeAfter
)

// checkCrash compares what the vault holds after a crash with the model
// (every acknowledged write applied). The write in flight, if any, may be
// wholly there or wholly absent; nothing else may differ. It returns the
// vault's state, which the next iteration continues from, and whether the
// write in flight landed; chunksOnly reports an attachment whose chunks were
// committed but whose item revision was not.
func checkCrash(want *crashState, got *crashState, inflight *crashOp) (out crashOutcome, chunksOnly bool, err error) {
	var landed, absent int // votes of the in-flight write's effects
	if inflight != nil {
		switch inflight.kind {
		case "passwd":
			switch got.pw {
			case want.pw:
				absent++
			case inflight.pwIdx:
				landed++
			}
		}
	}
	if got.pw != want.pw && landed == 0 {
		return 0, false, fmt.Errorf("the vault opens with password %d, the last acknowledged change set %d", got.pw, want.pw)
	}
	targets := func(id string) bool {
		return inflight != nil && len(inflight.ids) == 1 && inflight.ids[0] == id && inflight.kind != "add"
	}
	for id, m := range want.items {
		a, ok := got.items[id]
		if targets(id) {
			after, gone := inflight.applyTo(m)
			switch {
			case ok && a == m:
				absent++
			case !ok && gone, ok && !gone && a == after:
				landed++
			case !ok:
				return 0, false, fmt.Errorf("item %s vanished during %s", id, inflight.kind)
			default:
				return 0, false, fmt.Errorf("item %s during %s is %+v: neither the state before %+v nor after %+v", id, inflight.kind, a, m, after)
			}
			continue
		}
		if !ok {
			return 0, false, fmt.Errorf("acknowledged item %s (%+v) is missing", id, m)
		}
		if a != m {
			return 0, false, fmt.Errorf("item %s is %+v, acknowledged state %+v", id, a, m)
		}
	}
	var extra []crashItem
	for id, a := range got.items {
		if _, ok := want.items[id]; !ok {
			extra = append(extra, a)
		}
	}
	if inflight != nil && (inflight.kind == "add" || inflight.kind == "addbulk") {
		if len(extra) == 0 {
			absent++
		} else {
			titles := inflight.titles()
			if len(extra) != len(titles) {
				return 0, false, fmt.Errorf("%s of %d items left %d of them: not atomic", inflight.kind, len(titles), len(extra))
			}
			for _, a := range extra {
				if !slices.Contains(titles, a.Title) || a != (crashItem{Rev: 1, Title: a.Title, Password: "p-" + a.Title}) {
					return 0, false, fmt.Errorf("unexpected new item %+v during %s", a, inflight.kind)
				}
			}
			landed++
		}
	} else if len(extra) > 0 {
		return 0, false, fmt.Errorf("%d items appeared that no write made, first %+v", len(extra), extra[0])
	}
	switch d := got.orphans - want.orphans; {
	case d == 0:
	case d == 1 && inflight != nil && (inflight.kind == "attach" || inflight.kind == "bigattach") && landed == 0:
		chunksOnly = true
	default:
		return 0, false, fmt.Errorf("unreferenced attachment blobs went from %d to %d (in flight: %v)", want.orphans, got.orphans, inflight)
	}
	switch {
	case inflight == nil:
		return outcomeNone, false, nil
	case landed > 0 && absent > 0:
		return 0, false, fmt.Errorf("%s in flight is partly applied", inflight.kind)
	case landed > 0:
		return outcomeAfter, chunksOnly, nil
	case absent > 0:
		return outcomeBefore, chunksOnly, nil
	}
	return 0, false, fmt.Errorf("%s in flight: its item is neither before nor after", inflight.kind)
}

// readCrashState opens and unlocks the vault (with whichever of the two
// passwords opens it), runs Verify, and reads every item, checking the
// content of attachments it has not seen before. shas caches blob id → hash.
func readCrashState(path string, shas map[string]string) (*crashState, Report, error) {
	v, err := Open(path, testOptions())
	if err != nil {
		return nil, Report{}, fmt.Errorf("open after crash: %w", err)
	}
	defer v.Close()
	st := &crashState{items: map[string]crashItem{}}
	err = v.Unlock(ctx, []byte(crashPasswords[0]))
	if errors.Is(err, ErrWrongPassword) {
		st.pw = 1
		err = v.Unlock(ctx, []byte(crashPasswords[1]))
	}
	if err != nil {
		return nil, Report{}, fmt.Errorf("unlock after crash: %w", err)
	}
	rep, err := v.Verify(ctx)
	if err != nil {
		return nil, rep, fmt.Errorf("verify after crash: %w (problems: %q)", err, rep.Problems)
	}
	if len(rep.Problems) != 0 || len(v.order) != 1 {
		return nil, rep, fmt.Errorf("verify after crash: %d vaults, problems %q", len(v.order), rep.Problems)
	}
	s := v.vaults[v.order[0]]
	refs := map[string]bool{}
	for id := range s.views {
		it, err := v.read(s, id)
		if err != nil {
			return nil, rep, err
		}
		var atts []string
		for _, a := range it.Attachments {
			refs[a.ID] = true
			sum, ok := shas[a.ID]
			if !ok {
				h := sha256.New()
				n, err := v.ReadAttachment(ctx, id, a.ID, h)
				if err != nil {
					return nil, rep, fmt.Errorf("read attachment %q of %s: %w", a.Name, id, err)
				}
				if n != a.Size {
					return nil, rep, fmt.Errorf("attachment %q of %s: read %d bytes, want %d", a.Name, id, n, a.Size)
				}
				sum = hex.EncodeToString(h.Sum(nil))
				shas[a.ID] = sum
			}
			atts = append(atts, fmt.Sprintf("%s:%d:%s", a.Name, a.Size, sum))
		}
		sort.Strings(atts)
		st.items[id] = crashItem{Rev: it.Revision, Title: it.Title, Password: it.Password, Trashed: it.Trashed != nil, Atts: strings.Join(atts, ",")}
	}
	// Blobs whose chunks are stored but that no item names: what a crash
	// between Attach's two transactions leaves behind.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, rep, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT DISTINCT blob_id FROM chunks")
	if err != nil {
		return nil, rep, err
	}
	defer rows.Close()
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, rep, err
		}
		if !refs[b] {
			st.orphans++
		}
	}
	return st, rep, rows.Err()
}

// crashRun is what one child run produced.
type crashRun struct {
	acks     []crashOp
	inflight *crashOp // started, never acknowledged
	killed   bool     // we killed it (rather than it exiting)
	delay    time.Duration
	inBig    bool // the child died with a large attachment in flight
}

// runCrashChild starts the child writer on path and kills it with SIGKILL
// delay after it is ready (mix) or after it starts the large attachment
// (big); pickBig chooses that delay once the attachment starts.
func runCrashChild(path string, seed uint64, big bool, delay time.Duration, pickBig func() time.Duration) (*crashRun, error) {
	mode := "mix"
	if big {
		mode = "big"
	}
	cmd := osexec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+path,
		crashChildSeedEnv+"="+strconv.FormatUint(seed, 10),
		crashChildModeEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	run := &crashRun{}
	var timer <-chan time.Time
	watchdog := time.NewTimer(2 * crashChildMaxLife)
	defer watchdog.Stop()
	var protoErr error
	var all []string
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			all = append(all, line)
			switch {
			case strings.HasPrefix(line, "ready "):
				if !big {
					run.delay = delay
					timer = time.After(delay)
				}
				continue
			case line == "done" || line == "PASS":
				continue
			case strings.HasPrefix(line, "fail "):
				protoErr = fmt.Errorf("child: %s", line)
				continue
			}
			op, err := parseCrashLine(line)
			if err != nil {
				protoErr = err
				continue
			}
			if !op.ack {
				if run.inflight != nil && protoErr == nil {
					protoErr = fmt.Errorf("child started %s before acknowledging %s", op.kind, run.inflight.kind)
				}
				run.inflight = &op
				if big && op.kind == "bigattach" && timer == nil && !run.killed {
					run.delay = pickBig()
					timer = time.After(run.delay)
				}
				continue
			}
			if run.inflight == nil || run.inflight.kind != op.kind {
				if protoErr == nil {
					protoErr = fmt.Errorf("ack %s without a matching start", op.kind)
				}
			}
			run.inflight = nil
			run.acks = append(run.acks, op)
		case <-timer:
			timer = nil
			if err := cmd.Process.Kill(); err == nil {
				run.killed = true
			}
		case <-watchdog.C:
			cmd.Process.Kill()
			protoErr = fmt.Errorf("child ran past its time limit")
		}
	}
	werr := cmd.Wait()
	run.inBig = run.killed && run.inflight != nil && run.inflight.kind == "bigattach"
	if protoErr == nil && !run.killed {
		protoErr = fmt.Errorf("child exited before it was killed: %v", werr)
	}
	if protoErr != nil {
		tail := all[max(0, len(all)-5):]
		return run, fmt.Errorf("%w\nlast lines: %q\nchild stderr:\n%s", protoErr, tail, stderr.String())
	}
	return run, nil
}

// raceEnabled reports a -race build, whose children run several times
// slower; the default run is shortened there to stay within the budget.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func crashSettings(t *testing.T) (iterations int, fixed bool, seed uint64) {
	iterations = 40
	if testing.Short() || raceEnabled() {
		iterations = 10
	}
	if s := os.Getenv(crashIterationsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashIterationsEnv, s)
		}
		iterations, fixed = n, true
	}
	if *crashIterationsFlag > 0 {
		iterations, fixed = *crashIterationsFlag, true
	}
	seed = uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a number", crashSeedEnv, s)
		}
		seed = n
	}
	if *crashSeedFlag != 0 {
		seed = *crashSeedFlag
	}
	return iterations, fixed, seed
}

// copyCrashed copies a killed writer's vault file, write-ahead log and
// shared-memory index as they are, so that the copy can be checked while the
// next child writes on to the original. A SIGKILL loses nothing the process
// had written (the kernel holds it), so the copy is exactly what the next
// process to open the file would find.
func copyCrashed(path, dir string) (string, error) {
	dst := filepath.Join(dir, filepath.Base(path))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := copyFile(path+suffix, dst+suffix); err != nil && (suffix == "" || !errors.Is(err, os.ErrNotExist)) {
			return "", err
		}
	}
	return dst, nil
}

// copyFile copies src to a new file dst (0600); io.Copy between two files
// lets the kernel do it (copy_file_range on Linux).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// crashCheck is the result of checking one crashed copy.
type crashCheck struct {
	got *crashState
	rep Report
	err error
	dur time.Duration
}

// TestCrashDuringWrites kills a writing process at random instants, over and
// over on the same vault file, and checks after each kill that the vault
// verifies and holds every acknowledged write, with the write in flight
// either wholly applied or wholly absent. Each crashed state is copied and
// checked while the next child already writes on to the original, which
// thus starts every time from a file its predecessor left mid-write.
func TestCrashDuringWrites(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the crash child")
	}
	iterations, fixed, seed := crashSettings(t)
	t.Logf("seed %d (rerun with %s=%d), %d iterations", seed, crashSeedEnv, seed, iterations)
	rng := rand.New(rand.NewPCG(seed, 0x5afe))
	tmp := t.TempDir()
	path := filepath.Join(tmp, "home", "vault.db")
	if _, err := Create(ctx, path, []byte(crashPasswords[0]), kdf.TestParams(), testOptions()); err != nil {
		t.Fatal(err)
	}

	shas := map[string]string{} // used only by the checking goroutine
	model := &crashState{items: map[string]crashItem{}}
	var (
		start                      = time.Now()
		kills, mixKills, acks, big int
		ackKinds                   = map[string]int{}
		landed, absent             = map[string]int{}, map[string]int{}
		idle, chunksOnly           int
		bigMid, bigDone            int
		bigEstimate                = 300 * time.Millisecond
		checkTime                  time.Duration
		rep                        Report
		minDelay, maxDelay, total  time.Duration
	)
	// settle folds one child run into the model and compares the model with
	// what the check of its crashed copy found.
	settle := func(i int, run *crashRun, childSeed uint64, res crashCheck) {
		t.Helper()
		for _, op := range run.acks {
			if err := model.applyAck(op); err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
			acks++
			ackKinds[op.kind]++
		}
		checkTime += res.dur
		where := fmt.Sprintf("iteration %d (child seed %d, killed %v after start, in flight %+v)", i, childSeed, run.delay, run.inflight)
		if res.err != nil {
			t.Fatalf("%s: %v", where, res.err)
		}
		rep = res.rep
		out, orphaned, err := checkCrash(model, res.got, run.inflight)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		switch out {
		case outcomeNone:
			idle++
		case outcomeBefore:
			absent[run.inflight.kind]++
		case outcomeAfter:
			landed[run.inflight.kind]++
		}
		if orphaned {
			chunksOnly++
		}
		model = res.got
		if (i+1)%50 == 0 {
			t.Logf("%d/%d iterations, %d acknowledged writes checked, %d log entries, %v", i+1, iterations, acks, res.rep.LogEntries, time.Since(start).Round(time.Second))
		}
	}

	var (
		checks   = make(chan crashCheck, 1)
		prevRun  *crashRun
		prevSeed uint64
	)
	for i := 0; i <= iterations; i++ {
		if i < iterations && i >= 10 && !fixed && time.Since(start) > crashBudget {
			t.Logf("stopping after %d of %d iterations: the default run's %v budget is spent (a slow or busy machine); set %s for a fixed count", i, iterations, crashBudget, crashIterationsEnv)
			iterations = i
		}
		var run *crashRun
		var childSeed uint64
		var snap string
		if i < iterations {
			isBig := i%crashBigEvery == crashBigEvery-1
			childSeed = rng.Uint64()
			delay := time.Duration(5+rng.IntN(146)) * time.Millisecond
			pickBig := func() time.Duration {
				return time.Duration(rng.Int64N(int64(bigEstimate) * 6 / 5))
			}
			var err error
			run, err = runCrashChild(path, childSeed, isBig, delay, pickBig)
			if err != nil {
				t.Fatalf("iteration %d (child seed %d): %v", i, childSeed, err)
			}
			kills++
			if isBig {
				big++
				if run.inBig {
					bigMid++
				} else {
					bigDone++
				}
			}
			if !isBig {
				if mixKills == 0 || run.delay < minDelay {
					minDelay = run.delay
				}
				maxDelay = max(maxDelay, run.delay)
				total += run.delay
				mixKills++
			}
			for _, op := range run.acks {
				if op.kind == "bigattach" && op.ms > 0 {
					bigEstimate = time.Duration(op.ms) * time.Millisecond
				}
			}
			dir := filepath.Join(tmp, fmt.Sprintf("crash%d", i%2))
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if snap, err = copyCrashed(path, dir); err != nil {
				t.Fatal(err)
			}
		}
		if i > 0 {
			settle(i-1, prevRun, prevSeed, <-checks)
		}
		if i < iterations {
			go func() {
				t0 := time.Now()
				got, rep, err := readCrashState(snap, shas)
				checks <- crashCheck{got: got, rep: rep, err: err, dur: time.Since(t0)}
			}()
			prevRun, prevSeed = run, childSeed
		}
	}
	elapsed := time.Since(start)

	var kinds []string
	for k, n := range ackKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	var inflight []string
	for _, k := range []string{"add", "addbulk", "update", "trash", "restore", "purge", "attach", "bigattach", "passwd"} {
		if landed[k]+absent[k] > 0 {
			inflight = append(inflight, fmt.Sprintf("%s %d/%d", k, landed[k], absent[k]))
		}
	}
	fi, _ := os.Stat(path)
	t.Logf("%d iterations, %d SIGKILLs: %d mixed-write iterations (kill %v..%v after ready, mean %v), %d large-attachment iterations (%d killed with the attachment in flight, %d after it)",
		iterations, kills, mixKills, minDelay.Round(time.Millisecond), maxDelay.Round(time.Millisecond), (total / time.Duration(max(1, mixKills))).Round(time.Millisecond), big, bigMid, bigDone)
	t.Logf("%d acknowledged writes checked: %s", acks, strings.Join(kinds, ", "))
	t.Logf("write in flight at the kill, landed/absent: %s; nothing in flight %d; attachment chunks committed without their item %d",
		strings.Join(inflight, ", "), idle, chunksOnly)
	t.Logf("final vault: %d items (%d trashed), %d log entries, %d history revisions, %d attachments, %d unreferenced blobs, %d bytes",
		rep.Items, rep.Trashed, rep.LogEntries, rep.Revisions, rep.Attachments, model.orphans, fi.Size())
	t.Logf("time %v (open+unlock+verify+compare of the copies, overlapped with the next child: %v)", elapsed.Round(time.Millisecond), checkTime.Round(time.Millisecond))
}
