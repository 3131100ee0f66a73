package vault

import (
	"fmt"
	"testing"

	"github.com/safehold/safehold/internal/item"
)

// Sharing and rotation at 10,000 items (issue 4's targets: share < 2 s,
// rotate after a removal < 10 s). Each iteration builds its world outside
// the timer; run with -benchtime=1x (docs/benchmarks.md).

const benchSharedItems = 10_000

// bigSharedWorld is Acme with Bob enrolled and vault Team holding n items,
// pushed to the server, not yet shared with Bob.
func bigSharedWorld(b *testing.B, n int) (*orgWorld, string) {
	b.Helper()
	w := newOrgWorld(b)
	a := w.alice
	sum, err := a.v.CreateOrg(ctx, a.r, "Acme")
	if err != nil {
		b.Fatal(err)
	}
	w.enrol(b, sum.ID, w.bob)
	vi, err := a.v.CreateVault(ctx, a.r, "Team", sum.ID)
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < n; start += 1000 {
		var batch []item.Item
		for i := start; i < min(start+1000, n); i++ {
			batch = append(batch, item.Item{Type: item.Login, Title: fmt.Sprintf("item %05d", i), Username: "u", Password: fmt.Sprintf("pw-%d", i), URLs: []string{"https://example.com"}})
		}
		if _, err := a.v.AddTo(ctx, vi.ID, batch); err != nil {
			b.Fatal(err)
		}
	}
	mustSync(b, a.v, a.r)
	return w, vi.ID
}

// BenchmarkShareVault10k: the administrator's `safe vault share` of a
// 10,000-item vault (a grant and one key wrap per generation; no item is
// touched).
func BenchmarkShareVault10k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		w, team := bigSharedWorld(b, benchSharedItems)
		b.StartTimer()
		if err := w.alice.v.ShareVault(ctx, w.alice.r, team, w.bob.email, "write"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinSharedVault10k: the new member's first sync of a shared
// 10,000-item vault (pull, verify every signature, decrypt, store).
func BenchmarkJoinSharedVault10k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		w, team := bigSharedWorld(b, benchSharedItems)
		if err := w.alice.v.ShareVault(ctx, w.alice.r, team, w.bob.email, "write"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		mustSync(b, w.bob.v, w.bob.r)
		b.StopTimer()
		if got := len(titlesIn(b, w.bob.v, team)); got != benchSharedItems {
			b.Fatalf("bob has %d items", got)
		}
		b.StartTimer()
	}
}

// BenchmarkRotateAfterRemoval10k: `safe org remove` of a member who could
// read a 10,000-item vault: new key generation, every item re-encrypted
// and signed as a new revision, pushed to the server.
func BenchmarkRotateAfterRemoval10k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		w, team := bigSharedWorld(b, benchSharedItems)
		if err := w.alice.v.ShareVault(ctx, w.alice.r, team, w.bob.email, "read"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := w.alice.v.OrgRemove(ctx, w.alice.r, "Acme", w.bob.email, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if s := w.alice.v.vaults[team]; s.gen != 2 || s.seq != 2*benchSharedItems {
			b.Fatalf("after rotation: generation %d, %d entries", s.gen, s.seq)
		}
		b.StartTimer()
	}
}
