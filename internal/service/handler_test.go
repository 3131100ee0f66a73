package service

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/vault"
)

var ctx = context.Background()

func newHandler(t *testing.T) *Handler {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	opts := vault.Options{Rand: rand.Reader, AllowInsecureKDF: true}
	if _, err := vault.Create(ctx, path, []byte("correct horse battery"), kdf.TestParams(), opts); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return &Handler{V: v, Stall: 200 * time.Millisecond}
}

func handle(t *testing.T, h *Handler, op string, args any, files ...*os.File) (any, error) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	if args == nil {
		raw = nil
	}
	return h.Handle(ctx, agent.Request{Op: op, Args: raw}, files)
}

func code(err error) string {
	var ae *agent.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "(not an agent error: " + err.Error() + ")"
}

func TestErrorsBecomeCodesWithHints(t *testing.T) {
	h := newHandler(t)
	if _, err := handle(t, h, OpGet, RefArgs{Ref: "x"}); code(err) != CodeLocked {
		t.Fatalf("get while locked: %v", err)
	}
	if _, err := handle(t, h, OpUnlock, UnlockArgs{Password: []byte("wrong password")}); code(err) != CodeWrongPassword {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := handle(t, h, OpUnlock, UnlockArgs{Password: []byte("correct horse battery")}); err != nil {
		t.Fatal(err)
	}
	items := []item.Item{{Type: item.Login, Title: "Git one"}, {Type: item.Login, Title: "Git two"}}
	if _, err := handle(t, h, OpAdd, AddArgs{Items: items}); err != nil {
		t.Fatal(err)
	}
	_, err := handle(t, h, OpGet, RefArgs{Ref: "git"})
	var ae *agent.Error
	if !errors.As(err, &ae) || ae.Code != CodeAmbiguous || ae.Hint == "" {
		t.Fatalf("ambiguous: %v", err)
	}
	if _, err := handle(t, h, OpGet, RefArgs{Ref: "nothing"}); code(err) != CodeNotFound {
		t.Fatalf("not found: %v", err)
	}
	if _, err := handle(t, h, OpAdd, AddArgs{Items: []item.Item{{Type: "boat", Title: "x"}}}); code(err) != CodeInvalid {
		t.Fatalf("invalid item: %v", err)
	}
	if _, err := handle(t, h, "frobnicate", nil); code(err) != agent.CodeBadRequest {
		t.Fatalf("unknown op: %v", err)
	}
	raw := json.RawMessage(`{"ref":"git one","extra":1}`)
	if _, err := h.Handle(ctx, agent.Request{Op: OpGet, Args: raw}, nil); code(err) != agent.CodeBadRequest {
		t.Fatalf("unknown argument field: %v", err)
	}
	info, err := handle(t, h, OpInfo, InfoArgs{Counts: true})
	if err != nil || info.(*Info).Items != 2 || !info.(*Info).Unlocked {
		t.Fatalf("info: %+v %v", info, err)
	}
	if _, err := handle(t, h, OpLock, nil); err != nil {
		t.Fatal(err)
	}
	if h.V.Unlocked() {
		t.Fatal("still unlocked after lock")
	}
}

// A transfer that makes no progress is cancelled, so that the vault can
// still lock.
func TestStalledTransferIsCancelled(t *testing.T) {
	h := newHandler(t)
	if _, err := handle(t, h, OpUnlock, UnlockArgs{Password: []byte("correct horse battery")}); err != nil {
		t.Fatal(err)
	}
	if _, err := handle(t, h, OpAdd, AddArgs{Items: []item.Item{{Type: item.Note, Title: "N"}}}); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe() // nobody writes to w
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	start := time.Now()
	_, err = handle(t, h, OpAttach, AttachArgs{Ref: "N", Name: "never"}, r)
	if code(err) != CodeStalled {
		t.Fatalf("stalled attach: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to give up", d)
	}
	it, err := h.V.Get(ctx, "N")
	if err != nil || len(it.Attachments) != 0 {
		t.Fatalf("after a cancelled attach: %+v %v", it, err)
	}
}
