package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/audit"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/vault"
)

// OpAudit checks the health of the unlocked vault's items (design
// "Vault health"): weak, reused, old and breached passwords, logins with an
// empty TOTP slot. It reports progress (§8.6) in items and, with the range
// API, waits on the network, so it is in ProgressOps and InterruptibleOps.
// The result (an audit.Report) names items, never passwords or hashes.
const OpAudit = "audit"

// CodeBreachCheck: the breach check could not be done (the range API
// failed or answered something else; the local list is unreadable, not
// sorted or not the SHA-1 list). Nothing else of the audit is reported.
const CodeBreachCheck = "breach_check"

// Breach check modes of AuditArgs.
const (
	BreachAPI  = "api"
	BreachFile = "file"
	BreachOff  = "off"
)

// maxAuditPath bounds AuditArgs' strings.
const maxAuditPath = 4096

// apiWorkers bounds the range API requests in flight (and the passwords
// being scored meanwhile): the requests wait on the network, not the CPU.
const apiWorkers = 16

// AuditArgs configure an audit.
type AuditArgs struct {
	// MinScore: passwords with a lower zxcvbn score are weak (0..4; 0
	// turns the check off).
	MinScore int `json:"min_score"`
	// OldAfterSeconds: passwords unchanged for longer are old (0 turns the
	// check off).
	OldAfterSeconds int64 `json:"old_after_seconds"`
	// Breach is "api", "file" or "off".
	Breach string `json:"breach"`
	// BreachAPI is the range API's base URL for "api" ("" for the public
	// service).
	BreachAPI string `json:"breach_api,omitempty"`
	// BreachFile is the absolute path of the local list for "file"; the
	// agent opens it.
	BreachFile string `json:"breach_file,omitempty"`
	// Vault narrows the audit to one vault (id, id prefix or name).
	Vault string `json:"vault,omitempty"`
}

// handleAudit runs OpAudit; ok is false for any other op.
func (h *Handler) handleAudit(ctx context.Context, req agent.Request, report func(done, total int64)) (any, bool, error) {
	if req.Op != OpAudit {
		return nil, false, nil
	}
	var a AuditArgs
	if err := decode(req.Args, &a); err != nil {
		return nil, true, err
	}
	rep, err := h.audit(ctx, a, report)
	return rep, true, err
}

func (h *Handler) audit(ctx context.Context, a AuditArgs, report func(done, total int64)) (*audit.Report, error) {
	if a.MinScore < 0 || a.MinScore > 4 || a.OldAfterSeconds < 0 || a.OldAfterSeconds > int64(100*365*24*time.Hour/time.Second) ||
		len(a.BreachAPI) > maxAuditPath || len(a.BreachFile) > maxAuditPath || len(a.Vault) > maxAuditPath {
		return nil, &agent.Error{Code: CodeInvalid, Message: "audit: minimum score not 0..4, age out of range, or an argument too long", Hint: "run `safe audit --help`"}
	}
	if !h.V.Unlocked() {
		return nil, vault.ErrLocked
	}
	opts := audit.Options{MinScore: a.MinScore, OldAfter: time.Duration(a.OldAfterSeconds) * time.Second, Breach: a.Breach}
	switch a.Breach {
	case BreachOff:
	case BreachAPI:
		base := a.BreachAPI
		if base == "" {
			base = audit.DefaultRangeAPI
		}
		api, err := audit.NewRangeAPI(base, nil)
		if err != nil {
			return nil, &agent.Error{Code: CodeInvalid, Message: err.Error(), Hint: "give --breach-api as https://HOST[/PATH] (http only to localhost)"}
		}
		opts.Breaches = api
		opts.Workers = apiWorkers
	case BreachFile:
		if !filepath.IsAbs(a.BreachFile) {
			return nil, &agent.Error{Code: CodeInvalid, Message: fmt.Sprintf("breach file %q is not an absolute path", a.BreachFile), Hint: "give the agent an absolute path"}
		}
		f, err := audit.OpenFile(a.BreachFile)
		if err != nil {
			return nil, breachError(err)
		}
		defer f.Close()
		opts.Breaches = f
	default:
		return nil, &agent.Error{Code: CodeInvalid, Message: fmt.Sprintf("audit: breach check %q is not api, file or off", a.Breach), Hint: "run `safe audit --help`"}
	}
	items, err := h.auditItems(ctx, a.Vault)
	if err != nil {
		return nil, err
	}
	rep, err := audit.Run(ctx, items, opts, report)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // HandleProgress reports the interruption
		}
		return nil, breachError(err)
	}
	return rep, nil
}

// auditItems reads every item outside the trash (of one vault, or all).
func (h *Handler) auditItems(ctx context.Context, vaultRef string) ([]item.Item, error) {
	list, err := h.V.List(ctx, vault.Filter{Vault: vaultRef})
	if err != nil {
		return nil, err
	}
	items := make([]item.Item, 0, len(list))
	for _, o := range list {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, err := h.V.Get(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// breachError turns a failed breach check into an agent error. The audit
// package's errors name the host or the file and byte offset, never a
// password, hash or prefix.
func breachError(err error) error {
	hint := "check the network and --breach-api, or check against a downloaded list with --breach-file FILE, or skip the check with --no-breach"
	if errors.Is(err, audit.ErrBreachFile) {
		hint = "use the SHA-1 list ordered by hash, as the Pwned Passwords downloader writes it (`haveibeenpwned-downloader`), or skip the check with --no-breach"
	} else if !errors.Is(err, audit.ErrBreachAPI) {
		hint = "check that the breach list is readable, or skip the check with --no-breach"
	}
	return &agent.Error{Code: CodeBreachCheck, Message: "breach check: " + err.Error(), Hint: hint}
}

// Audit runs OpAudit, passing progress frames to progress.
func (c *Client) Audit(ctx context.Context, a AuditArgs, progress func(done, total int64)) (*audit.Report, error) {
	var out *audit.Report
	err := c.C.CallProgress(ctx, OpAudit, a, &out, progress)
	return out, err
}
