package vault

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/safehold/safehold/internal/kdf"
)

// A device that joined (doc_dirty, no pending login) adopts a newer
// document with a password change and reverts the password wrap.
func TestRegressionJoinRevertsPasswordChange(t *testing.T) {
	a, _, r := syncPair(t)
	sk, _ := a.SecretKey(ctx)
	target := RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: "x", Email: "alice@example.com"}
	path := filepath.Join(t.TempDir(), "c", "vault.db")
	c, err := Join(ctx, path, r, JoinRequest{Target: target, Password: []byte(syncPassword), SecretKey: sk}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Before C's first sync, A changes the password and pushes it.
	if err := a.ChangePassword(ctx, []byte(syncPassword), []byte("the new password"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mustSync(t, c, r)
	mustSync(t, a, r)
	apath := a.Path()
	a.Close()
	a2, err := Open(apath, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if err := a2.Unlock(ctx, []byte("the new password")); err != nil {
		t.Errorf("A with the new password: %v", err)
	}
	if err := a2.Unlock(ctx, []byte(syncPassword)); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("A with the OLD password: %v (want wrong password)", err)
	}
}
