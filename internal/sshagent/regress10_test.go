package sshagent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// trashVault is a Vault whose List leaves out "trashed" items while Get
// still returns them, as the unlock agent's get does for an item in the
// trash.
type trashVault struct {
	mu      sync.Mutex
	items   []item.Item
	trashed map[string]bool
}

func (v *trashVault) List(context.Context) ([]Entry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Entry
	for _, it := range v.items {
		if !v.trashed[it.ID] {
			out = append(out, Entry{ID: it.ID, Title: it.Title, Revision: it.Revision})
		}
	}
	return out, nil
}

func (v *trashVault) Get(_ context.Context, id string) (item.Item, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, it := range v.items {
		if it.ID == id {
			return it, nil
		}
	}
	return item.Item{}, ErrUnknownKey
}

// countConfirm refuses every question and counts them.
type countConfirm struct {
	mu sync.Mutex
	n  int
}

func (c *countConfirm) Confirm(context.Context, string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return false, nil
}

// The same key in two items (say a personal copy with
// ssh-agent-confirm: yes and a copy in a shared vault without it): the
// listed item's policy must hold for every signature. find picks the item
// by ranging over a map, so about half the signatures skip the question.
func TestRegress10DuplicateKeyLoosensPolicy(t *testing.T) {
	a1 := ed25519Item(t, "a1", "personal (confirm)")
	a1.Fields = []item.Field{{Name: FieldConfirm, Kind: item.KindText, Value: "yes"}}
	b2 := a1.Clone()
	b2.ID, b2.Title, b2.Fields = "b2", "shared copy", nil
	v := &fakeVault{items: []item.Item{a1, b2}}
	cc := &countConfirm{}
	a := New(context.Background(), v, Options{Confirmer: cc})
	keys, err := a.List()
	if err != nil || len(keys) != 1 {
		t.Fatalf("List: %v %v", keys, err)
	}
	pub := pubOf(t, a1)
	signed := 0
	for range 512 {
		if _, err := a.Sign(pub, []byte("data")); err == nil {
			signed++
		}
	}
	if signed > 0 {
		t.Fatalf("%d of 512 signatures were made without confirmation (asked %d times): the copy without ssh-agent-confirm was used", signed, cc.n)
	}

}

// As above for the lifetime.
func TestRegress10DuplicateKeyOutlivesLifetime(t *testing.T) {
	// Lifetime: c1 allows 1 minute; after it, a direct sign request (no
	// list first, as a forwarded-agent client can send) must still fail.
	c1 := ed25519Item(t, "c1", "short-lived")
	c1.Fields = []item.Field{{Name: FieldLifetime, Kind: item.KindText, Value: "1m"}}
	d2 := c1.Clone()
	d2.ID, d2.Title, d2.Fields = "d2", "copy", nil
	v2 := &fakeVault{items: []item.Item{c1, d2}}
	pub2 := pubOf(t, c1)
	// Each trial is a fresh agent: the first signature after expiry picks
	// c1 or d2 from a map; once c1 is picked the blob is marked expired,
	// so only fresh agents show the d2 path.
	signed := 0
	for range 256 {
		clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
		a2 := New(context.Background(), v2, Options{Now: clk.now})
		if keys, err := a2.List(); err != nil || len(keys) != 1 {
			t.Fatalf("List: %v %v", keys, err)
		}
		clk.add(2 * time.Minute)
		if _, err := a2.Sign(pub2, []byte("data")); err == nil {
			signed++
		}
	}
	if signed > 0 {
		t.Fatalf("%d of 256 agents signed after the key's 1m lifetime (item ssh-agent-lifetime) was over, using the copy without the field", signed)
	}
}

// A sign request is answered from the key cache of the last list without
// asking the vault whether the item is still there or still has the same
// policy. A client that skips REQUEST_IDENTITIES (a forwarded agent on a
// compromised host) keeps signing with a key the user trashed, and
// without the confirmation the user added to the item.
func TestRegress10SignUsesStaleCache(t *testing.T) {
	t.Run("trashed", func(t *testing.T) {
		k := ed25519Item(t, "a1", "revoked key")
		v := &trashVault{items: []item.Item{k}, trashed: map[string]bool{}}
		a := New(context.Background(), v, Options{})
		if keys, err := a.List(); err != nil || len(keys) != 1 {
			t.Fatalf("List: %v %v", keys, err)
		}
		v.mu.Lock()
		v.trashed["a1"] = true
		v.mu.Unlock()
		if _, err := a.Sign(pubOf(t, k), []byte("data")); err == nil {
			t.Fatal("signed with a key whose item is in the trash (not listed by the vault any more)")
		}
	})
	t.Run("confirm added", func(t *testing.T) {
		k := ed25519Item(t, "a1", "key")
		v := &fakeVault{items: []item.Item{k}}
		cc := &countConfirm{}
		a := New(context.Background(), v, Options{Confirmer: cc})
		if keys, err := a.List(); err != nil || len(keys) != 1 {
			t.Fatalf("List: %v %v", keys, err)
		}
		k2 := k.Clone()
		k2.Revision = 2
		k2.Fields = []item.Field{{Name: FieldConfirm, Kind: item.KindText, Value: "yes"}}
		v.set(k2)
		if _, err := a.Sign(pubOf(t, k), []byte("data")); err == nil {
			t.Fatalf("signed without confirmation although the item (revision 2) now asks for it (asked %d times)", cc.n)
		}
	})
}
