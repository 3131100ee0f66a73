package vault

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/remote/folder"
)

// testdata/golden-remote-v1 is a folder remote (§13.8) holding the golden
// vault's account (document epoch 1 and the log its first sync sent),
// written by format version 1. A new device must still join from it with
// the golden password and this Secret Key and read every item: the test
// pins the account document, its MAC kind, the folder layout and the entry
// framing. A change that cannot read it is a format change.
const goldenSecretKey = "S1-76RJ-37SC-JE8T-A2N2-824K-ZQY7-JBWW-R65E"

// writeGoldenRemote registers a copy of the golden vault on a fresh folder
// remote in testdata. It runs only with -update-golden.
func writeGoldenRemote(t *testing.T, dir string) {
	os.RemoveAll(dir)
	data, err := os.ReadFile(filepath.Join("testdata", "golden-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "golden.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	opts := Options{Rand: random.NewDeterministic([]byte("safehold golden remote v1")), AllowInsecureKDF: true, Now: func() time.Time { return clock }}
	v, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Unlock(ctx, []byte(goldenPassword)); err != nil {
		t.Fatal(err)
	}
	r, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := v.Register(ctx, r, RemoteTarget{Name: "golden", Kind: RemoteFolder, URL: dir, Email: "golden@example.com"}, []byte(goldenPassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Sync(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s; secret key %s (put it in goldenSecretKey)", dir, sk)
}

func TestGoldenRemote(t *testing.T) {
	src := filepath.Join("testdata", "golden-remote-v1")
	if *updateGolden {
		writeGoldenRemote(t, src)
	}
	dir := filepath.Join(t.TempDir(), "remote")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// Files committed to git lose their 0600; the folder remote does not
	// care about modes it did not create.
	r, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	path := filepath.Join(t.TempDir(), "home", "vault.db")
	v, err := Join(ctx, path, r, JoinRequest{Target: RemoteTarget{Name: "golden", Kind: RemoteFolder, URL: dir, Email: "golden@example.com"}, Password: []byte(goldenPassword), SecretKey: goldenSecretKey}, testOptions())
	if err != nil {
		t.Fatalf("a new device no longer joins the golden remote: %v", err)
	}
	defer v.Close()
	if _, err := v.Sync(ctx, r); err != nil {
		t.Fatalf("the golden remote no longer syncs: %v", err)
	}
	got, err := v.Get(ctx, "GitHub")
	if err != nil || got.Password != "hunter3-golden" || got.Revision != 2 {
		t.Fatalf("GitHub: %v %+v", err, got)
	}
	revs, err := v.History(ctx, "GitHub")
	if err != nil || len(revs) != 2 || revs[0].Password != "hunter2-golden" {
		t.Fatalf("history: %v %+v", err, revs)
	}
	if _, err := v.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
