package vault

import (
	"path/filepath"
	"testing"
)

// Two devices join; the second to sync can never adopt the document the
// first one published, because its own (unpublished) device is not in it.
func TestRegressionTwoJoinsSecondStuck(t *testing.T) {
	a, _, r := syncPair(t)
	sk, _ := a.SecretKey(ctx)
	target := RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: "x", Email: "alice@example.com"}
	mk := func(name string) *Vault {
		v, err := Join(ctx, filepath.Join(t.TempDir(), name, "vault.db"), r, JoinRequest{Target: target, Password: []byte(syncPassword), SecretKey: sk}, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		return v
	}
	c, d := mk("c"), mk("d")
	mustSync(t, d, r)
	for i := range 3 {
		if _, err := c.Sync(ctx, r); err != nil {
			t.Errorf("C sync %d: %v", i, err)
		}
	}
}
