package vault

import (
	"strings"
	"testing"
)

// Purged here, changed there: the change wins, but the history of the
// item is gone while the log still names its earlier revisions.
func TestRegressionUndoPurgeLosesHistory(t *testing.T) {
	a, b, r := syncPair(t)
	mail, _ := a.Get(ctx, "Mail")
	m := mail.Clone()
	m.Notes = "edited on A"
	if _, err := a.Update(ctx, mail.ID, mail.Revision, m); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	if _, err := b.Trash(ctx, mail.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Purge(ctx, mail.ID); err != nil {
		t.Fatal(err)
	}
	res := mustSync(t, b, r)
	t.Logf("B: %+v", res)
	if _, err := b.Get(ctx, mail.ID); err != nil {
		t.Fatalf("get: %v", err)
	}
	if _, err := b.History(ctx, mail.ID); err != nil {
		t.Errorf("history on B: %v", err)
	}
	if rep, err := b.Verify(ctx); err != nil {
		t.Errorf("B verify: %v %v", err, rep.Problems)
	}
}

// Changed here, purged there: our version comes back after the purge. The
// device that purged, and a third device, must still verify and keep the
// attachment.
func TestRegressionResurrectAfterPurge(t *testing.T) {
	a, b, r := syncPair(t)
	data := strings.Repeat("attachment bytes ", 1000)
	if _, err := a.Attach(ctx, "Mail", "notes.txt", strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mustSync(t, b, r)
	// Third device C holds the item and its attachment.
	target := RemoteTarget{Name: "nas", Kind: RemoteFolder, URL: "x", Email: "alice@example.com"}
	sk, _ := a.SecretKey(ctx)
	c := join(t, r, target, sk)
	mail, _ := a.Get(ctx, "Mail")
	// A purges; B edits offline.
	if _, err := a.Trash(ctx, mail.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Purge(ctx, mail.ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
	mb, _ := b.Get(ctx, mail.ID)
	eb := mb.Clone()
	eb.Password = "changed on b"
	if _, err := b.Update(ctx, mb.ID, mb.Revision, eb); err != nil {
		t.Fatal(err)
	}
	res := mustSync(t, b, r)
	t.Logf("B: %+v", res)
	if rep, err := b.Verify(ctx); err != nil {
		t.Errorf("B verify: %v %v", err, rep.Problems)
	}
	mustSync(t, c, r)
	var sb strings.Builder
	if _, err := c.ReadAttachment(ctx, mail.ID, "notes.txt", &sb); err != nil {
		t.Errorf("C attachment: %v", err)
	}
	if rep, err := c.Verify(ctx); err != nil {
		t.Errorf("C verify: %v %v", err, rep.Problems)
	}
	mustSync(t, a, r)
	if rep, err := a.Verify(ctx); err != nil {
		t.Errorf("A verify: %v %v", err, rep.Problems)
	}
}
