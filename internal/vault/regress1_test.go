package vault

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
)

// lostAck forwards Push and then reports a failure (the acknowledgement is lost).
type lostAck struct {
	remote.Remote
	drop bool
}

func (l *lostAck) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	h, err := l.Remote.Push(ctx, vault, base, entries)
	if err == nil && l.drop {
		return 0, remote.ErrUnavailable
	}
	return h, err
}

func reopen(t *testing.T, v *Vault) error {
	path := v.Path()
	v.Close()
	v2, err := Open(path, testOptions())
	if err != nil {
		return err
	}
	defer v2.Close()
	return v2.Unlock(ctx, []byte(syncPassword))
}

// Two own entries whose ack was lost, then another device writes: false fork.
func TestRegressionLostAckTwoEntriesFalseFork(t *testing.T) {
	a, b, r := syncPair(t)
	addLogin(t, a, "X1", "1")
	addLogin(t, a, "X2", "2")
	la := &lostAck{Remote: r, drop: true}
	if _, err := a.Sync(ctx, la); err == nil {
		t.Fatal("expected lost ack")
	}
	// A syncs again with nothing new elsewhere: confirms its own entries.
	if _, err := a.Sync(ctx, r); err != nil {
		t.Fatalf("confirm own: %v", err)
	}
	addLogin(t, b, "FromB", "3")
	mustSync(t, b, r)
	if _, err := a.Sync(ctx, r); err != nil {
		t.Fatalf("A after B wrote: %v", err)
	}
}

// Two own entries whose ack was lost, and another device wrote meanwhile:
// the fast-forward writes a head record that does not match the chain.
func TestRegressionLostAckTwoEntriesCorruptsHead(t *testing.T) {
	a, b, r := syncPair(t)
	addLogin(t, a, "X1", "1")
	addLogin(t, a, "X2", "2")
	la := &lostAck{Remote: r, drop: true}
	if _, err := a.Sync(ctx, la); err == nil {
		t.Fatal("expected lost ack")
	}
	addLogin(t, b, "FromB", "3")
	mustSync(t, b, r)
	_, err := a.Sync(ctx, r)
	t.Logf("A sync: %v", err)
	if rep, err := a.Verify(ctx); err != nil {
		t.Errorf("A no longer verifies: %v %v", err, rep.Problems)
	}
	if err := reopen(t, a); err != nil {
		t.Fatalf("A no longer unlocks: %v", err)
	}
}

var _ = errors.Is
var _ = filepath.Join
var _ = strings.Contains
