package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/vault"
)

// Handler runs vault operations inside the agent. It owns the open vault.
type Handler struct {
	V           *vault.Vault
	IdleTimeout time.Duration
	// Stop is called (in its own goroutine) when a client asks the agent
	// to exit.
	Stop func()
	// LockedMemory reports whether keys sit in locked memory.
	LockedMemory func() bool
	// Stall bounds how long an attachment transfer may make no progress;
	// zero means StallTimeout.
	Stall time.Duration
	// RunLocked runs background work (automatic sync) as the handler's
	// only user and reports whether it ran (agent.Server.Exclusive): the
	// work's context ends when the agent interrupts it (lock, stop, idle
	// timeout, shutdown). Nil disables automatic sync.
	RunLocked func(func(ctx context.Context)) bool

	sync syncer
}

func (h *Handler) stall(f *os.File) stallFile {
	if h.Stall > 0 {
		return stallFile{f, h.Stall}
	}
	return stallFile{f, StallTimeout}
}

var _ agent.ProgressHandler = (*Handler)(nil)

// InterruptOps are the ops that cut short a running sync instead of
// waiting for it (agent.Options.InterruptOps): a remote that is slow or
// never answers must not keep the keys in memory past `safe lock`.
var InterruptOps = []string{OpLock, OpStop}

// decode parses args strictly into v (agent.DecodeArgs: one value, no
// unknown fields, nothing after it).
func decode(raw json.RawMessage, v any) error { return agent.DecodeArgs(raw, v) }

// Handle implements agent.Handler: HandleProgress without progress frames.
func (h *Handler) Handle(ctx context.Context, req agent.Request, files []*os.File) (any, error) {
	return h.HandleProgress(ctx, req, files, nil)
}

// HandleProgress implements agent.ProgressHandler: the ops of ProgressOps
// pass their progress to report (nil: none is reported).
func (h *Handler) HandleProgress(ctx context.Context, req agent.Request, files []*os.File, report func(done, total int64)) (any, error) {
	if !slices.Contains(ProgressOps, req.Op) {
		report = nil // only the ops documented to send progress frames do (design §8.6)
	}
	res, err := h.handle(ctx, req, files, report)
	if err != nil {
		if interrupted(ctx, err) {
			return nil, &agent.Error{Code: agent.CodeInterrupted, Message: "interrupted: the vault is being locked or the agent is stopping", Hint: "nothing is lost (changes not yet sent stay queued): run it again after `safe unlock`"}
		}
		return nil, toAgentError(err)
	}
	h.scheduleSync(req.Op)
	return res, nil
}

// interrupted tells whether err is the agent cutting an op short (ctx
// ended) rather than the op's own failure. A cancelled remote call may
// surface as the remote being unreachable.
func interrupted(ctx context.Context, err error) bool {
	if ctx.Err() == nil {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, remote.ErrUnavailable)
}

// OnIdle forgets the keys and stops the agent: the next `safe unlock`
// starts a new one, so no idle process is left behind.
func (h *Handler) OnIdle() {
	h.cancelAutoSync()
	h.lock()
	if h.Stop != nil {
		go h.Stop()
	}
}

// lock wipes the keys, then returns the heap pages the garbage collector
// finds wholly free to the kernel (which zeroes them before any reuse).
// Go does not wipe freed objects: copies that the standard library's
// hashes and ciphers made of a key (a SHA-512 block buffer in HKDF, an AES
// key schedule) stay in freed memory until reused. This removes those on
// pages that are now free; copies next to live objects remain (design
// §9.9).
func (h *Handler) lock() {
	h.V.Lock()
	debug.FreeOSMemory()
}

func (h *Handler) info(ctx context.Context) (*Info, error) { return h.infoWith(ctx, true) }

// infoWith describes the agent; counting items walks the whole index, so
// the info every command asks for first leaves it out.
func (h *Handler) infoWith(ctx context.Context, counts bool) (*Info, error) {
	in := &Info{
		PID: os.Getpid(), Unlocked: h.V.Unlocked(), VaultPath: h.V.Path(), Account: h.V.Account(),
		InsecureTestKDF: h.V.InsecureTestKDF(), IdleTimeout: h.IdleTimeout.String(),
	}
	if p, err := h.V.Params(); err == nil {
		in.KDF = p
	}
	if h.LockedMemory != nil {
		in.LockedMemory = h.LockedMemory()
	}
	if in.Unlocked && counts {
		n, trashed, err := h.V.Counts(ctx)
		if err != nil {
			return nil, err
		}
		in.Items, in.Trashed = n, trashed
	}
	return in, nil
}

func (h *Handler) handle(ctx context.Context, req agent.Request, files []*os.File, report func(done, total int64)) (any, error) {
	switch req.Op {
	case OpInfo:
		var a InfoArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.infoWith(ctx, a.Counts)
	case OpUnlock:
		var a UnlockArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		defer secret.Wipe(a.Password)
		if err := h.V.Unlock(ctx, a.Password); err != nil {
			return nil, err
		}
		return h.info(ctx)
	case OpRecover:
		var a RecoverArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		defer secret.Wipe(a.Password)
		defer secret.Wipe(a.RecoveryKey)
		if err := h.V.Recover(ctx, string(a.RecoveryKey), a.Password, kdfZero); err != nil {
			return nil, err
		}
		return h.info(ctx)
	case OpPasswd:
		var a PasswdArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		defer secret.Wipe(a.Old)
		defer secret.Wipe(a.New)
		if err := h.V.ChangePassword(ctx, a.Old, a.New, a.Params); err != nil {
			return nil, err
		}
		return h.info(ctx)
	case OpLock:
		h.cancelAutoSync()
		h.lock()
		return h.info(ctx)
	case OpStop:
		h.cancelAutoSync()
		h.lock()
		if h.Stop != nil {
			go h.Stop()
		}
		return struct{}{}, nil
	case OpAdd:
		var a AddArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.Add(ctx, a.Items)
	case OpGet:
		var a RefArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.Get(ctx, a.Ref)
	case OpList:
		var a ListArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		list, err := h.V.List(ctx, a.Filter)
		if a.Slim {
			for i := range list {
				list[i] = list[i].Slim()
			}
		}
		return orEmpty(list, err)
	case OpFind:
		var a FindArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return orEmpty(h.V.Find(ctx, a.Query, a.Filter))
	case OpUpdate:
		var a UpdateArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.Update(ctx, a.Ref, a.Base, a.Item)
	case OpTrash, OpRestore, OpPurge:
		var a RefArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		switch req.Op {
		case OpTrash:
			return h.V.Trash(ctx, a.Ref)
		case OpRestore:
			return h.V.Restore(ctx, a.Ref)
		}
		return h.V.Purge(ctx, a.Ref)
	case OpEmptyTrash:
		n, err := h.V.EmptyTrash(ctx)
		return Count{N: int64(n)}, err
	case OpHistory:
		var a RefArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.History(ctx, a.Ref)
	case OpRestoreRevision:
		var a RevisionArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.RestoreRevision(ctx, a.Ref, a.Revision)
	case OpVerify:
		rep, err := h.V.Verify(ctx)
		var ie *vault.IntegrityError
		if errors.As(err, &ie) {
			return rep, nil // the report carries the problems
		}
		return rep, err
	case OpAttach, OpReadAttachment:
		var a AttachArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		if len(files) != 1 {
			return nil, &agent.Error{Code: agent.CodeBadRequest, Message: fmt.Sprintf("%s wants one passed file, got %d", req.Op, len(files))}
		}
		if req.Op == OpAttach {
			return h.V.Attach(ctx, a.Ref, a.Name, h.stall(files[0]))
		}
		n, err := h.V.ReadAttachment(ctx, a.Ref, a.Name, h.stall(files[0]))
		return Count{N: n}, err
	case OpDetach:
		var a AttachArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, err
		}
		return h.V.Detach(ctx, a.Ref, a.Name)
	}
	if res, ok, err := h.handleSync(ctx, req, report); ok {
		return res, err
	}
	if res, ok, err := h.handleOrgs(ctx, req, report); ok {
		return res, err
	}
	if res, ok, err := h.handleAudit(ctx, req, report); ok {
		return res, err
	}
	return nil, &agent.Error{Code: agent.CodeBadRequest, Message: fmt.Sprintf("unknown op %q", req.Op), Hint: "the agent is older than this safe: run `safe agent stop` and retry"}
}

func orEmpty[T any](v []T, err error) ([]T, error) {
	if v == nil && err == nil {
		v = []T{}
	}
	return v, err
}
