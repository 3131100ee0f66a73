package vault

import (
	"slices"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
)

// TestFreezeIsNotDetectedButRollbackIs demonstrates the documented limit
// of §13.10 (security.md §2 row 5): a remote may withhold new entries from
// a device that has not seen them, serving an older head that is a
// consistent prefix of the log, and the device cannot tell (freeze, not
// defended). Once the device has verified a newer head, serving less is a
// rollback and is refused.
func TestFreezeIsNotDetectedButRollbackIs(t *testing.T) {
	t.Run("folder", func(t *testing.T) {
		a, b, r := syncPair(t)
		l := &liar{Remote: r}
		freeze(t, a, b, r, l, l)
	})
	t.Run("server", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a server")
		}
		// B's client talks to the lying proxy, whose hooks are l's.
		a, b, ra, rb, l := httpPair(t)
		freeze(t, a, b, ra, rb, l)
	})
}

// freeze runs the demonstration: A writes through ra, B syncs through rb,
// whose answers l's hooks rewrite.
func freeze(t *testing.T, a, b *Vault, ra, rb remote.Remote, l *liar) {
	t.Helper()
	vault := b.order[0]
	pinned := b.vaults[vault].seq
	prepareAttack(t, a, b, ra) // A adds One and Two and edits Mail: entries pinned+1..pinned+3
	before := titles(t, b)
	if !slices.Equal(before, []string{"Bank", "Mail"}) {
		t.Fatalf("B before: %v", before)
	}

	// 1. Freeze at pinned+1: the remote serves B the first new entry
	// and says that is its whole log. B accepts it and sees nothing wrong.
	l.pull = func(_ string, p *api.LogPage) { freezeAt(p, pinned+1) }
	res, err := b.Sync(ctx, rb)
	if err != nil {
		t.Fatalf("a frozen log was noticed: %v", err)
	}
	if res.Pulled != 1 || b.vaults[vault].seq != pinned+1 {
		t.Fatalf("pulled %d, head %d; want 1 and %d", res.Pulled, b.vaults[vault].seq, pinned+1)
	}
	if got := titles(t, b); !slices.Equal(got, []string{"Bank", "Mail", "One"}) {
		t.Fatalf("B under freeze: %v", got)
	}
	if mail, _ := b.Get(ctx, "Mail"); mail.Notes == "edited" {
		t.Fatal("B got the edit the remote withheld")
	}
	// Still frozen on the next sync: still not noticed.
	if _, err := b.Sync(ctx, rb); err != nil {
		t.Fatalf("a frozen log was noticed: %v", err)
	}

	// 2. The freeze ends: B pulls the rest and pins pinned+3.
	l.pull = nil
	mustSync(t, b, rb)
	if got := titles(t, b); !slices.Equal(got, []string{"Bank", "Mail", "One", "Two"}) || b.vaults[vault].seq != pinned+3 {
		t.Fatalf("B after the freeze: %v at %d", got, b.vaults[vault].seq)
	}
	if mail, _ := b.Get(ctx, "Mail"); mail.Notes != "edited" {
		t.Fatal("B did not get the edit")
	}

	// 3. The same withholding now goes below what B verified: refused as
	// a rollback, nothing changes.
	l.pull = func(_ string, p *api.LogPage) { freezeAt(p, pinned+1) }
	refused(t, b, rb, ErrRemoteTampered, "rolled it back")
}

// freezeAt rewrites a page as a remote whose log ends at head would serve
// it: entries after head dropped, the head lowered.
func freezeAt(p *api.LogPage, head uint64) {
	if p.Head <= head {
		return
	}
	since := p.Head - uint64(len(p.Entries)) // pages here are whole: the log fits one
	keep := 0
	if head > since {
		keep = int(head - since)
	}
	p.Entries = p.Entries[:min(keep, len(p.Entries))]
	p.Head = head
}
