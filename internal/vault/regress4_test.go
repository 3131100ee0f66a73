package vault

import (
	"testing"

	"github.com/safehold/safehold/internal/kdf"
)

// Concurrent password changes, one of them raising the parameters: the
// later writer pushes weaker parameters and the first device can never
// adopt the document again.
func TestRegressionConcurrentPasswdStrongerParams(t *testing.T) {
	a, b, r := syncPair(t)
	mustSync(t, a, r) // A adopts the document B published when it joined
	strong := kdf.TestParams()
	strong.Argon2Time++
	if err := a.ChangePassword(ctx, []byte(syncPassword), []byte("pw from a"), strong); err != nil {
		t.Fatal(err)
	}
	if err := b.ChangePassword(ctx, []byte(syncPassword), []byte("pw from b"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	if _, err := b.Sync(ctx, r); err != nil {
		t.Fatalf("B: %v", err)
	}
	if _, err := a.Sync(ctx, r); err != nil {
		t.Errorf("A can no longer sync: %v", err)
	}
}

// A device behind by one document epoch raises its parameters locally:
// adoption compares the remote's document with the unpublished local KDF.
func TestRegressionPasswdStrongerWhileBehind(t *testing.T) {
	a, _, r := syncPair(t) // B's join published epoch 2; A still pins 1
	strong := kdf.TestParams()
	strong.Argon2Time++
	if err := a.ChangePassword(ctx, []byte(syncPassword), []byte("pw from a"), strong); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, r); err != nil {
		t.Errorf("A can no longer sync: %v", err)
	}
}
