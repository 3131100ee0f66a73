package vault

import (
	"context"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
)

// refresher stands for httpremote: its first call refreshes the session,
// and OnSession stores the new one in the vault (the agent's callback).
type refresher struct {
	remote.Remote
	v    *Vault
	done bool
}

func (r *refresher) Account(ctx context.Context) (api.Account, error) {
	if !r.done {
		r.done = true
		if err := r.v.SaveSession(context.Background(), []byte(`{"refresh":"NEW"}`)); err != nil {
			panic(err)
		}
	}
	return r.Remote.Account(ctx)
}

func TestRegressionAdoptClobbersRefreshedSession(t *testing.T) {
	a, _, r := syncPair(t) // B's join moved the document to epoch 2; A pins 1
	if err := a.SaveSession(ctx, []byte(`{"refresh":"OLD"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, &refresher{Remote: r, v: a})
	got, err := a.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"refresh":"NEW"}` {
		t.Errorf("stored session after sync: %s (the refreshed, single-use token was overwritten)", got)
	}
}
