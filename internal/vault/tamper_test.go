package vault

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Each case edits the vault file the way an attacker with write access
// could, then checks that both a running engine and a fresh unlock refuse
// it, and that Verify reports it.
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *rawFile)
		want   string // part of the reported problem
		// logOnly marks damage to the log alone: the rows are intact, so
		// after a snapshot reads may serve them; verify must still fail.
		logOnly bool
	}{
		{"swap two items' ciphertexts", func(t *testing.T, f *rawFile) {
			a, b := f.payload(t, "Alpha"), f.payload(t, "Beta")
			f.exec(t, "UPDATE items SET payload = ? WHERE item_id = ?", b, f.ids["Alpha"])
			f.exec(t, "UPDATE items SET payload = ? WHERE item_id = ?", a, f.ids["Beta"])
		}, "modified or swapped", false},
		{"flip one byte of a ciphertext", func(t *testing.T, f *rawFile) {
			p := f.payload(t, "Alpha")
			p[len(p)-5] ^= 1
			f.exec(t, "UPDATE items SET payload = ? WHERE item_id = ?", p, f.ids["Alpha"])
		}, "modified or swapped", false},
		{"roll a row back to an older revision", func(t *testing.T, f *rawFile) {
			f.exec(t, `UPDATE items SET revision = h.revision, payload = h.payload FROM history h
				WHERE h.item_id = items.item_id AND items.item_id = ? AND h.revision = 1`, f.ids["Alpha"])
		}, "rolled back", false},
		{"delete an item row", func(t *testing.T, f *rawFile) {
			f.exec(t, "DELETE FROM items WHERE item_id = ?", f.ids["Beta"])
		}, "row is gone", false},
		{"inject an item row", func(t *testing.T, f *rawFile) {
			f.exec(t, "INSERT INTO items (vault_id, item_id, revision, payload) SELECT vault_id, 'injected0000000000000000000', 1, payload FROM items WHERE item_id = ?", f.ids["Beta"])
		}, "injected", false},
		{"truncate the log", func(t *testing.T, f *rawFile) {
			f.exec(t, "DELETE FROM log WHERE seq = (SELECT max(seq) FROM log)")
		}, "rollback", false},
		{"delete a log entry in the middle", func(t *testing.T, f *rawFile) {
			f.exec(t, "DELETE FROM log WHERE seq = 2")
		}, "missing", true},
		{"edit a log entry's columns", func(t *testing.T, f *rawFile) {
			f.exec(t, "UPDATE log SET revision = 9 WHERE seq = 1")
		}, "edited", true},
		{"edit a byte of a log entry", func(t *testing.T, f *rawFile) {
			var e []byte
			f.query(t, "SELECT body FROM log WHERE seq = 1", &e)
			e[40] ^= 1
			f.exec(t, "UPDATE log SET body = ? WHERE seq = 1", e)
		}, "log entry 1", true},
		{"edit the account record", func(t *testing.T, f *rawFile) {
			f.exec(t, `UPDATE account SET record = CAST(replace(record, '"security_version":1', '"security_version":0') AS BLOB)`)
		}, "account record", false},
		{"edit the vault record", func(t *testing.T, f *rawFile) {
			f.exec(t, `UPDATE vaults SET record = CAST(replace(record, '"created":', '"created":1') AS BLOB)`)
		}, "vault", false},
		{"edit the log head", func(t *testing.T, f *rawFile) {
			f.exec(t, `UPDATE heads SET record = CAST(replace(record, '"seq":5', '"seq":4') AS BLOB)`)
		}, "head", false},
	}
	for _, tc := range cases {
		for _, snap := range []bool{false, true} {
			name := tc.name
			if snap {
				name += " after a snapshot"
			}
			t.Run(name, func(t *testing.T) { tamperCase(t, tc.tamper, tc.want, snap, snap && tc.logOnly) })
		}
	}
}

func tamperCase(t *testing.T, tamper func(*testing.T, *rawFile), want string, snap, readsMayServe bool) {
	{
		{
			v, path, _ := newVault(t)
			f := &rawFile{db: rawDB(t, path), ids: map[string]string{}}
			for _, title := range []string{"Alpha", "Beta"} {
				f.ids[title] = addLogin(t, v, title, "pw-"+title).ID
			}
			it, err := v.Get(ctx, "Alpha")
			if err != nil {
				t.Fatal(err)
			}
			it.Password = "pw-Alpha-2"
			if _, err := v.Update(ctx, "Alpha", 0, it); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Trash(ctx, "Beta"); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Restore(ctx, "Beta"); err != nil {
				t.Fatal(err)
			}

			if snap {
				// Lock saves the index snapshot; the next unlock starts
				// from it and reads only what came after.
				v.Lock()
				if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
					t.Fatal(err)
				}
			}
			tamper(t, f)

			// The running engine notices the outside write.
			_, err1 := v.Get(ctx, "Alpha")
			_, err2 := v.Get(ctx, f.ids["Beta"])
			if !errors.Is(err1, ErrTampered) && !errors.Is(err2, ErrTampered) && !readsMayServe && !(snap && snapInjection(want)) {
				t.Errorf("running engine served tampered data: %v / %v", err1, err2)
			}
			// A fresh unlock refuses it, or (when it starts from a snapshot
			// and does not read the rows) the reads and verify refuse it.
			v2, err := Open(path, testOptions())
			if err == nil {
				defer v2.Close()
				err = v2.Unlock(ctx, []byte("correct horse battery"))
			}
			if err == nil {
				_, err1 := v2.Get(ctx, f.ids["Alpha"])
				_, err2 := v2.Get(ctx, f.ids["Beta"])
				if !errors.Is(err1, ErrTampered) && !errors.Is(err2, ErrTampered) && !snapInjection(want) && !readsMayServe {
					t.Errorf("fresh unlock served tampered data: %v / %v", err1, err2)
				}
				_, err = v2.Verify(ctx)
			}
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("fresh unlock and verify: got %v, want ErrTampered", err)
			}
			if !strings.Contains(err.Error(), want) && !strings.Contains(fmt.Sprint(err.(*IntegrityError).Problems), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
}

// snapInjection: an injected row is never served (nothing points to it),
// so only verify reports it.
func snapInjection(want string) bool { return want == "injected" }

// TestVerifyReportsEveryProblem checks that Verify lists problems instead of
// stopping at the first, including ones only a full check sees (history).
func TestVerifyReportsHistoryTampering(t *testing.T) {
	v, path, _ := newVault(t)
	it := addLogin(t, v, "Alpha", "one")
	it.Password = "two"
	if _, err := v.Update(ctx, it.ID, 0, it); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	f := &rawFile{db: rawDB(t, path)}
	var p []byte
	f.query(t, "SELECT payload FROM history", &p)
	p[50] ^= 1
	f.exec(t, "UPDATE history SET payload = ?", p)
	rep, err := v.Verify(ctx)
	if !errors.Is(err, ErrTampered) || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "history") {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if _, err := v.History(ctx, "Alpha"); !errors.Is(err, ErrTampered) {
		t.Fatalf("history served a tampered revision: %v", err)
	}
}

type rawFile struct {
	db  *sql.DB
	ids map[string]string
}

func (f *rawFile) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	res, err := f.db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed nothing", q)
	}
}

func (f *rawFile) query(t *testing.T, q string, dst any, args ...any) {
	t.Helper()
	if err := f.db.QueryRow(q, args...).Scan(dst); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (f *rawFile) payload(t *testing.T, title string) []byte {
	var p []byte
	f.query(t, "SELECT payload FROM items WHERE item_id = ?", &p, f.ids[title])
	return p
}

// TestVerifyChecksSignatures swaps in a forged signature: the chain links
// bodies, so only the full check, which verifies every signature, sees it.
func TestVerifyChecksSignatures(t *testing.T) {
	v, path, _ := newVault(t)
	addLogin(t, v, "Alpha", "one")
	f := &rawFile{db: rawDB(t, path)}
	var sig []byte
	f.query(t, "SELECT sig FROM log WHERE seq = 1", &sig)
	sig[100] ^= 1
	f.exec(t, "UPDATE log SET sig = ? WHERE seq = 1", sig)
	rep, err := v.Verify(ctx)
	if !errors.Is(err, ErrTampered) || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "signature") {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// A failed unlock must not write the half-checked index as a snapshot: the
// next unlock would start from it and lose sight of the damaged item.
func TestFailedUnlockSavesNoSnapshot(t *testing.T) {
	v, path, _ := newVault(t)
	f := &rawFile{db: rawDB(t, path), ids: map[string]string{}}
	for _, title := range []string{"Alpha", "Beta"} {
		f.ids[title] = addLogin(t, v, title, "pw-"+title).ID
	}
	v.Close()
	f.db.Exec("DELETE FROM snapshots")
	a, b := f.payload(t, "Alpha"), f.payload(t, "Beta")
	f.exec(t, "UPDATE items SET payload = ? WHERE item_id = ?", b, f.ids["Alpha"])
	f.exec(t, "UPDATE items SET payload = ? WHERE item_id = ?", a, f.ids["Beta"])
	for i := 0; i < 2; i++ {
		v2, err := Open(path, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		err = v2.Unlock(ctx, []byte("correct horse battery"))
		v2.Close()
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("unlock %d of a tampered vault: %v", i+1, err)
		}
	}
	var n int
	f.query(t, "SELECT count(*) FROM snapshots", &n)
	if n != 0 {
		t.Fatalf("a failed unlock wrote %d snapshot(s)", n)
	}
}

func TestDeletedHistoryIsNoticed(t *testing.T) {
	v, path, _ := newVault(t)
	it := addLogin(t, v, "Alpha", "one")
	for _, pw := range []string{"two", "three"} {
		it.Password = pw
		var err error
		if it, err = v.Update(ctx, it.ID, 0, it); err != nil {
			t.Fatal(err)
		}
	}
	f := &rawFile{db: rawDB(t, path)}
	f.exec(t, "DELETE FROM history WHERE revision = 1")
	if _, err := v.History(ctx, "Alpha"); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "missing from its history") {
		t.Fatalf("history with a revision deleted: %v", err)
	}
	rep, err := v.Verify(ctx)
	if !errors.Is(err, ErrTampered) || !strings.Contains(fmt.Sprint(rep.Problems), "revision 1") {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// countingCtx is cancelled after n calls to Err.
type countingCtx struct {
	context.Context
	n int
}

func (c *countingCtx) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// A verify that stops half-way must not leave a half-rebuilt index to be
// saved as a snapshot by the next lock.
func TestInterruptedVerifySavesNoSnapshot(t *testing.T) {
	v, path, _ := newVault(t)
	for i := 0; i < 6; i++ {
		addLogin(t, v, fmt.Sprint("Item", i), "pw")
	}
	v.Lock()
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	for i := 6; i < 10; i++ {
		addLogin(t, v, fmt.Sprint("Item", i), "pw")
	}
	if _, err := v.Verify(&countingCtx{Context: ctx, n: 8}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted verify: %v", err)
	}
	v.Lock()
	v2, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := v2.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := v2.Get(ctx, fmt.Sprint("Item", i)); err != nil {
			t.Fatalf("item %d after an interrupted verify: %v", i, err)
		}
	}
	if _, err := v2.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// After an unlock from a snapshot, history still refuses a log whose old
// entries were rewritten to hide a deleted revision.
func TestHistoryChecksTheChain(t *testing.T) {
	v, path, _ := newVault(t)
	it := addLogin(t, v, "Alpha", "one")
	it.Password = "two"
	if _, err := v.Update(ctx, it.ID, 0, it); err != nil {
		t.Fatal(err)
	}
	v.Lock() // saves the snapshot
	f := &rawFile{db: rawDB(t, path)}
	var body []byte
	f.query(t, "SELECT body FROM log WHERE seq = 1", &body)
	forged := bytes.Replace(body, []byte(it.ID), bytes.Repeat([]byte("z"), len(it.ID)), 1)
	f.exec(t, "UPDATE log SET body = ?, item_id = ? WHERE seq = 1", forged, strings.Repeat("z", len(it.ID)))
	f.exec(t, "DELETE FROM history WHERE revision = 1")
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.History(ctx, "Alpha"); !errors.Is(err, ErrTampered) {
		t.Fatalf("history over a rewritten log: %v", err)
	}
}
