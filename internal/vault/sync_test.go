package vault

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
)

const syncPassword = "correct horse battery"

// syncPair makes vault A, registers it on a fresh folder remote, syncs, and
// joins a second device B from the folder.
func syncPair(t *testing.T) (a, b *Vault, r remote.Remote) {
	t.Helper()
	p := newFolderPair(t)
	return p.a, p.b, p.r
}

// folderPair is what syncPair makes, with the remote's target, directory
// and the account's Secret Key, for tests that join or rebuild devices.
type folderPair struct {
	a, b   *Vault
	r      remote.Remote
	target RemoteTarget
	sk     string
	dir    string
}

func newFolderPair(t *testing.T) folderPair {
	t.Helper()
	a, _, _ := newVault(t)
	addLogin(t, a, "Mail", "pw-one")
	addLogin(t, a, "Bank", "pw-two")
	dir := filepath.Join(t.TempDir(), "remote")
	r, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	target := RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: dir, Email: "alice@example.com"}
	sk, err := a.Register(ctx, r, target, []byte(syncPassword))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sk, "S1-") {
		t.Fatalf("secret key %q", sk)
	}
	if _, err := a.Sync(ctx, r); err != nil {
		t.Fatal(err)
	}
	b := join(t, r, target, sk)
	return folderPair{a: a, b: b, r: r, target: target, sk: sk, dir: dir}
}

func join(t testing.TB, r remote.Remote, target RemoteTarget, sk string) *Vault {
	t.Helper()
	path := filepath.Join(t.TempDir(), "home", "vault.db")
	v, err := Join(ctx, path, r, JoinRequest{Target: target, Password: []byte(syncPassword), SecretKey: sk}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if _, err := v.Sync(ctx, r); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustSync(t testing.TB, v *Vault, r remote.Remote) *SyncResult {
	t.Helper()
	res, err := v.Sync(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func titles(t *testing.T, v *Vault) []string {
	t.Helper()
	list, err := v.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list {
		out = append(out, o.Title)
	}
	slices.Sort(out)
	return out
}

func TestSyncJoinAndPropagate(t *testing.T) {
	a, b, r := syncPair(t)
	if got := titles(t, b); !slices.Equal(got, []string{"Bank", "Mail"}) {
		t.Fatalf("B after join: %v", got)
	}
	addLogin(t, b, "Shop", "pw-three")
	mustSync(t, b, r)
	res := mustSync(t, a, r)
	if res.Pulled == 0 {
		t.Fatalf("A pulled nothing: %+v", res)
	}
	if got := titles(t, a); !slices.Equal(got, []string{"Bank", "Mail", "Shop"}) {
		t.Fatalf("A after sync: %v", got)
	}
	// Both devices verify in full afterwards, including B's entries on A.
	for _, v := range []*Vault{a, b} {
		rep, err := v.Verify(ctx)
		if err != nil {
			t.Fatalf("verify: %v %+v", err, rep)
		}
	}
	// A reopened vault unlocks with the password (and its Secret Key).
	path := b.Path()
	b.Close()
	b2, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Unlock(ctx, []byte(syncPassword)); err != nil {
		t.Fatal(err)
	}
}

func TestSyncOfflineEditsMergeFieldByField(t *testing.T) {
	a, b, r := syncPair(t)
	mail, err := a.Get(ctx, "Mail")
	if err != nil {
		t.Fatal(err)
	}
	ea := mail.Clone()
	ea.Username = "alice@new.example"
	if _, err := a.Update(ctx, mail.ID, mail.Revision, ea); err != nil {
		t.Fatal(err)
	}
	mb, err := b.Get(ctx, mail.ID)
	if err != nil {
		t.Fatal(err)
	}
	eb := mb.Clone()
	eb.Password = "changed-on-b"
	if _, err := b.Update(ctx, mb.ID, mb.Revision, eb); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	res := mustSync(t, b, r)
	if !slices.Contains(res.Merged, mail.ID) || len(res.Conflicts) != 0 {
		t.Fatalf("B's sync: %+v", res)
	}
	mustSync(t, a, r)
	for _, v := range []*Vault{a, b} {
		got, err := v.Get(ctx, mail.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "alice@new.example" || got.Password != "changed-on-b" {
			t.Fatalf("merged item: username %q password %q", got.Username, got.Password)
		}
	}
}

func TestSyncTrueConflictKeepsBoth(t *testing.T) {
	a, b, r := syncPair(t)
	mail, _ := a.Get(ctx, "Mail")
	ea := mail.Clone()
	ea.Password = "from-a"
	if _, err := a.Update(ctx, mail.ID, mail.Revision, ea); err != nil {
		t.Fatal(err)
	}
	mb, _ := b.Get(ctx, mail.ID)
	eb := mb.Clone()
	eb.Password = "from-b"
	if _, err := b.Update(ctx, mb.ID, mb.Revision, eb); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	res := mustSync(t, b, r)
	if !slices.Contains(res.Conflicts, mail.ID) {
		t.Fatalf("no conflict reported: %+v", res)
	}
	mustSync(t, a, r)
	got, _ := a.Get(ctx, mail.ID)
	values := []string{got.Password}
	for _, c := range got.Conflicts {
		values = append(values, c.Value)
	}
	if !slices.Contains(values, "from-a") || !slices.Contains(values, "from-b") {
		t.Fatalf("a value was lost: current %q, conflicts %+v", got.Password, got.Conflicts)
	}
	list, err := a.Conflicts(ctx)
	if err != nil || len(list) != 1 || list[0].ID != mail.ID {
		t.Fatalf("conflicts: %+v %v", list, err)
	}
}

func TestSyncPurgeAndTrash(t *testing.T) {
	a, b, r := syncPair(t)
	bank, _ := a.Get(ctx, "Bank")
	if _, err := a.Trash(ctx, bank.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Purge(ctx, bank.ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mustSync(t, b, r)
	if got := titles(t, b); !slices.Equal(got, []string{"Mail"}) {
		t.Fatalf("B after purge: %v", got)
	}
	if _, err := b.Get(ctx, bank.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purged item still readable: %v", err)
	}
}

func TestSyncAttachment(t *testing.T) {
	a, b, r := syncPair(t)
	data := strings.Repeat("attachment bytes ", 10000)
	if _, err := a.Attach(ctx, "Mail", "notes.txt", strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mustSync(t, b, r)
	var sb strings.Builder
	if _, err := b.ReadAttachment(ctx, "Mail", "notes.txt", &sb); err != nil {
		t.Fatal(err)
	}
	if sb.String() != data {
		t.Fatal("attachment differs after sync")
	}
}

func TestSyncPasswordChangeReachesOtherDevice(t *testing.T) {
	a, b, r := syncPair(t)
	if err := a.ChangePassword(ctx, []byte(syncPassword), []byte("a brand new password"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mustSync(t, b, r)
	path := b.Path()
	b.Close()
	b2, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Unlock(ctx, []byte(syncPassword)); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password on B after sync: %v", err)
	}
	if err := b2.Unlock(ctx, []byte("a brand new password")); err != nil {
		t.Fatalf("new password on B: %v", err)
	}
}

func TestSyncRecoverReachesServer(t *testing.T) {
	// The Recovery Key replaces a forgotten password on one device; the
	// new password then works on the others and for new devices.
	a, _ := newVaultWithKey(t)
	dir := filepath.Join(t.TempDir(), "remote")
	r, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	target := RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: dir, Email: "alice@example.com"}
	sk, err := a.v.Register(ctx, r, target, []byte(syncPassword))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, a.v, r)
	b := join(t, r, target, sk)
	if err := a.v.Recover(ctx, a.rk, []byte("recovered password"), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a.v, r)
	mustSync(t, b, r)
	if err := b.Unlock(ctx, []byte("recovered password")); err != nil {
		t.Fatalf("B with the recovered password: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c", "vault.db")
	c, err := Join(ctx, path, r, JoinRequest{Target: target, Password: []byte("recovered password"), SecretKey: sk}, testOptions())
	if err != nil {
		t.Fatalf("new device with the recovered password: %v", err)
	}
	c.Close()
}

type vaultWithKey struct {
	v  *Vault
	rk string
}

func newVaultWithKey(t *testing.T) (vaultWithKey, string) {
	v, path, c := newVault(t)
	return vaultWithKey{v: v, rk: c.RecoveryKey}, path
}

func TestSyncAcceptReset(t *testing.T) {
	// The remote is restored from a backup: sync refuses the rollback
	// until the user accepts the reset, and then sends what it lost.
	a, _, r := syncPair(t)
	dir := r.(*folder.Folder).Dir()
	backup := t.TempDir() + "/backup"
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	addLogin(t, a, "AfterBackup", "x")
	if err := a.ChangePassword(ctx, []byte(syncPassword), []byte(syncPassword), kdf.Params{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, r); !errors.Is(err, ErrRemoteTampered) || !strings.Contains(err.Error(), "rolled it back") {
		t.Fatalf("sync against the restored remote: %v", err)
	}
	notes, err := a.AcceptReset(ctx, r)
	if err != nil || len(notes) != 2 {
		t.Fatalf("accept reset: %v %q", err, notes)
	}
	mustSync(t, a, r)
	sk, _ := a.SecretKey(ctx)
	c := join(t, r, RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: dir, Email: "alice@example.com"}, sk)
	if got := titles(t, c); !slices.Contains(got, "AfterBackup") {
		t.Fatalf("new device after the reset: %v", got)
	}
}
