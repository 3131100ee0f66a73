package cli

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/audit"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
)

// ExitAuditFindings: `safe audit` ran and found at least one problem
// (docs/cli.md). Scripts test for it; 0 means a clean vault.
const ExitAuditFindings = 20

func (a *app) auditCommand() *cobra.Command {
	var (
		breachFile, breachAPI, old string
		noBreach                   bool
		minScore                   int
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "Check the vault's health: breached, reused, weak and old passwords, logins missing TOTP",
		Long: `Check every item outside the trash, inside the agent (passwords never leave it):

  breached  the password is in the Pwned Passwords corpus: asked of the range
            API with only the first 5 hex digits of its SHA-1 (--breach-api),
            or looked up in a downloaded list (--breach-file), or not at all
            (--no-breach)
  reused    several items share the password
  weak      zxcvbn score below --min-score (0..4; the item's title, user name
            and URL hosts count as known words)
  old       the password has not changed for longer than --old
  no_totp   a login has an empty custom field of kind totp, or an otpauth://
            URI in another field or its notes, and no seed where safe totp
            looks

Exit code 0: no findings; 20: findings (listed on standard output).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			args, where, err := auditArgs(c, breachFile, breachAPI, old, noBreach, minScore)
			if err != nil {
				return err
			}
			args.Vault = a.vault
			rep, err := callAgentProgress[*audit.Report](a, service.OpAudit, args, "auditing")
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printAudit(rep, where)
			}
			return auditResult(rep)
		},
	}
	fl := c.Flags()
	fl.StringVar(&breachFile, "breach-file", "", "look passwords up in this downloaded Pwned Passwords `FILE` (SHA-1, ordered by hash) instead of the range API")
	fl.StringVar(&breachAPI, "breach-api", audit.DefaultRangeAPI, "base `URL` of the Pwned Passwords range API (https; http only to localhost)")
	fl.BoolVar(&noBreach, "no-breach", false, "skip the breach check (nothing leaves the machine)")
	fl.StringVar(&old, "old", "365d", "report passwords unchanged for longer than this `DURATION` (like 90d or 2160h; 0 turns the check off)")
	fl.IntVar(&minScore, "min-score", audit.DefaultMinScore, "report passwords whose zxcvbn score (0..4) is below this (0 turns the check off)")
	a.vaultFlag(c)
	return c
}

// auditArgs checks the flags and builds the agent's arguments; where
// describes the breach check for the report.
func auditArgs(c *cobra.Command, breachFile, breachAPI, old string, noBreach bool, minScore int) (service.AuditArgs, string, error) {
	var args service.AuditArgs
	if minScore < 0 || minScore > 4 {
		return args, "", usageError{fmt.Errorf("--min-score %d is not 0..4", minScore)}
	}
	age, err := parseAge(old)
	if err != nil {
		return args, "", usageError{fmt.Errorf("--old %q: %w", old, err)}
	}
	args.MinScore, args.OldAfterSeconds = minScore, int64(age/time.Second)
	fileSet, apiSet := c.Flags().Changed("breach-file"), c.Flags().Changed("breach-api")
	switch {
	case noBreach && (fileSet || apiSet):
		return args, "", usageError{errors.New("--no-breach with --breach-file or --breach-api: choose one")}
	case fileSet && apiSet:
		return args, "", usageError{errors.New("--breach-file and --breach-api: choose one")}
	case noBreach:
		args.Breach = service.BreachOff
		return args, "off", nil
	case fileSet:
		abs, err := filepath.Abs(breachFile)
		if err != nil {
			return args, "", usageError{fmt.Errorf("--breach-file %q: %w", breachFile, err)}
		}
		f, err := os.Open(abs)
		if err != nil {
			return args, "", withHint(ExitUsage, "give the downloaded Pwned Passwords SHA-1 list (ordered by hash)", fmt.Errorf("cannot read --breach-file: %w", err))
		}
		f.Close()
		args.Breach, args.BreachFile = service.BreachFile, abs
		return args, "local list " + abs, nil
	}
	args.Breach, args.BreachAPI = service.BreachAPI, breachAPI
	host := breachAPI
	if u, err := url.Parse(breachAPI); err == nil && u.Host != "" {
		host = u.Host
	}
	return args, "range API at " + host + " (5-digit SHA-1 prefixes only)", nil
}

// parseAge reads a duration in days ("365d") or as Go writes durations
// ("2160h", "90m"); "0" is zero.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return 0, errors.New("days must be a whole number from 0 to 36500")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration: write it like 365d or 2160h")
	}
	if d < 0 || d > 36500*24*time.Hour || d > 0 && d < time.Second {
		return 0, errors.New("out of range (0, or 1s to 36500d)")
	}
	return d, nil
}

// auditResult is nil for a clean report, else the exit-20 error that
// summarises it.
func auditResult(rep *audit.Report) error {
	s := rep.Summary
	if s.Findings == 0 {
		return nil
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{s.Breached, "breached"}, {s.Reused, "reused"}, {s.Weak, "weak"}, {s.Old, "old"}, {s.NoTOTP, "without TOTP"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return withHint(ExitAuditFindings,
		"change breached and reused passwords first (`safe edit NAME --generate`); the exit code is 20 while findings remain",
		fmt.Errorf("%d finding(s) in %d items: %s", s.Findings, rep.Items, strings.Join(parts, ", ")))
}

// printAudit writes the report as one table per kind of finding.
func (a *app) printAudit(rep *audit.Report, where string) {
	bw := bufio.NewWriter(a.env.Stdout)
	defer bw.Flush()
	s := rep.Summary
	fmt.Fprintf(bw, "Audited %d items (%d with a password); breach check: %s.\n", rep.Items, s.Passwords, textsafe.Clean(where))
	if s.Findings == 0 {
		fmt.Fprintln(bw, "No problems found.")
		return
	}
	by := map[audit.Kind][]audit.Finding{}
	for _, f := range rep.Findings {
		by[f.Kind] = append(by[f.Kind], f)
	}
	sections := []struct {
		kind   audit.Kind
		title  string
		header string
		detail func(f audit.Finding) string
	}{
		{audit.Breached, "BREACHED: in known data breaches; change these first", "SEEN", func(f audit.Finding) string {
			return fmt.Sprintf("%d times", f.BreachCount)
		}},
		{audit.Reused, fmt.Sprintf("REUSED: one password in several items (%s)", auditPlural(s.ReuseGroups, "group")), "GROUP", func(f audit.Finding) string {
			return fmt.Sprintf("%d (%d items)", f.Group, f.GroupSize)
		}},
		{audit.Weak, fmt.Sprintf("WEAK: zxcvbn score below %d of 4", s.MinScore), "SCORE", func(f audit.Finding) string {
			return fmt.Sprintf("%d/4", auditDeref(f.Score))
		}},
		{audit.Old, fmt.Sprintf("OLD: not changed for more than %s", auditAge(s.OldAfterSeconds)), "CHANGED", func(f audit.Finding) string {
			d := ""
			if f.Changed != nil {
				d = f.Changed.Local().Format("2006-01-02")
			}
			if f.ChangedFrom != audit.FromPasswordChanged {
				d += " (" + f.ChangedFrom + ")"
			}
			return fmt.Sprintf("%s, %d days ago", d, auditDeref(f.AgeDays))
		}},
		{audit.NoTOTP, "NO TOTP: a place for a one-time code but no seed where `safe totp` looks", "WHY", func(f audit.Finding) string {
			switch f.Reason {
			case audit.ReasonEmptyTOTPField:
				return fmt.Sprintf("totp field %q is empty", textsafe.Clean(f.Field))
			case audit.ReasonOTPAuthInField:
				return fmt.Sprintf("otpauth:// URI in field %q", textsafe.Clean(f.Field))
			case audit.ReasonOTPAuthInNotes:
				return "otpauth:// URI in the notes"
			}
			return f.Reason
		}},
	}
	for _, sec := range sections {
		list := by[sec.kind]
		if len(list) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s (%d)\n", sec.title, len(list))
		w := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "  ID\tTITLE\tUSERNAME\t%s\n", sec.header)
		for _, f := range list {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", auditShortID(f.Item), textsafe.Clean(f.Title), textsafe.Clean(f.Username), sec.detail(f))
		}
		w.Flush()
	}
}

func auditAge(seconds int64) string {
	const day = 24 * 3600
	switch {
	case seconds == day:
		return "1 day"
	case seconds%day == 0:
		return fmt.Sprintf("%d days", seconds/day)
	}
	return (time.Duration(seconds) * time.Second).String()
}

func auditPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func auditDeref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func auditShortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
