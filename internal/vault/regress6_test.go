package vault

import (
	"fmt"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/item"
)

// A put and the purge of the same item, a few large entries apart: the
// size cut of a push batch sends the put without its payload and leaves
// the purge for the next batch. The server refuses, every time.
func TestRegressionPushSizeCutSplitsPutAndPurge(t *testing.T) {
	a, _, ra, _, _ := httpPair(t)
	x := addLogin(t, a, "Doomed", "x")
	for i := range 12 {
		if _, err := a.Add(ctx, []item.Item{{Type: item.Note, Title: fmt.Sprintf("Big %d", i), Notes: strings.Repeat("n", item.MaxNotes)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Trash(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Purge(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := a.Sync(ctx, ra); err != nil {
			t.Errorf("sync %d: %v", i, err)
		}
	}
}
