package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressBar shows the progress frames of a long op (re-encrypting a
// vault after a rotation) on standard error: a bar redrawn in place on a
// terminal, a line every few seconds otherwise, nothing with --json (whose
// standard error holds at most one JSON document).
type progressBar struct {
	a     *app
	what  string // "re-encrypting"
	tty   bool
	start time.Time
	last  time.Time // the last line written (not a terminal)
	shown bool      // something was written
	done  int64
	total int64
}

// progressLineEvery is how often a progress line is written when standard
// error is not a terminal.
const progressLineEvery = 2 * time.Second

const barWidth = 30

func (a *app) progressBar(what string) *progressBar {
	f, ok := a.env.Stderr.(*os.File)
	return &progressBar{a: a, what: what, tty: ok && term.IsTerminal(int(f.Fd())), start: time.Now()}
}

// update is the agent's progress callback.
func (p *progressBar) update(done, total int64) {
	if p.a.jsonOut || total <= 0 {
		return
	}
	p.done, p.total = done, total
	if p.tty {
		filled := int(done * barWidth / total)
		fmt.Fprintf(p.a.env.Stderr, "\r%s [%s%s] %d/%d items", p.what,
			strings.Repeat("#", filled), strings.Repeat(" ", barWidth-filled), done, total)
		p.shown = true
		return
	}
	now := time.Now()
	if done == total && p.shown || now.Sub(p.start) >= progressLineEvery && now.Sub(p.last) >= progressLineEvery {
		fmt.Fprintf(p.a.env.Stderr, "%s: %d of %d items (%d%%)\n", p.what, done, total, done*100/total)
		p.last, p.shown = now, true
	}
}

// finish ends the bar's line on a terminal.
func (p *progressBar) finish() {
	if p.tty && p.shown {
		fmt.Fprintln(p.a.env.Stderr)
	}
}

// callAgentProgress is callAgent for an op that reports progress.
func callAgentProgress[T any](a *app, op string, args any, what string) (T, error) {
	var out T
	sc, err := a.unlocked()
	if err != nil {
		return out, err
	}
	defer sc.C.Close()
	p := a.progressBar(what)
	err = sc.C.CallProgress(a.ctx, op, args, &out, p.update)
	p.finish()
	return out, err
}
