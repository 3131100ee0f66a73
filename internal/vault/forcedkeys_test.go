package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/sign"
)

// Forced key re-creation (security.md §2 row 7): a remote that claims the
// account has no vaults, or leaves a vault out, or a document with other
// keys, must not make a client create keys of its own and upload them.
// New key material comes only from user actions (§13.3, §13.7, §14.3).

// keyFixture is an account on a remote with two synced devices. A is also
// the device that holds the Master Key and writes what it likes to the
// remote (a revoked device still does, row 23); B is the victim.
type keyFixture struct {
	a, b   *Vault
	ra, rb remote.Remote
	// dial returns a fresh connection for a new device.
	dial   func() remote.Remote
	target RemoteTarget
	sk     string
	// dir is the folder remote's directory ("" on a server).
	dir string
}

func folderKeyFixture(t *testing.T) *keyFixture {
	t.Helper()
	p := newFolderPair(t)
	return &keyFixture{a: p.a, b: p.b, ra: p.r, rb: p.r, dial: func() remote.Remote { return p.r }, target: p.target, sk: p.sk, dir: p.dir}
}

func serverKeyFixture(t *testing.T) *keyFixture {
	t.Helper()
	u := startServer(t)
	fp, err := httpremote.Probe(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() remote.Remote {
		c, err := httpremote.New(u, fp, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, _, _ := newVault(t)
	addLogin(t, a, "Mail", "pw-one")
	addLogin(t, a, "Bank", "pw-two")
	ra := dial()
	target := RemoteTarget{Name: "origin", Kind: RemoteServer, URL: u, Fingerprint: fp, Email: "alice@example.com"}
	sk, err := a.Register(ctx, ra, target, []byte(syncPassword))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, ra)
	rb := dial()
	b := join(t, rb, target, sk)
	return &keyFixture{a: a, b: b, ra: ra, rb: rb, dial: dial, target: target, sk: sk}
}

// eachRemote runs fn against a folder remote and, unless -short, a real
// server over TLS.
func eachRemote(t *testing.T, fn func(t *testing.T, f *keyFixture)) {
	t.Run("folder", func(t *testing.T) { fn(t, folderKeyFixture(t)) })
	t.Run("server", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a server")
		}
		fn(t, serverKeyFixture(t))
	})
}

// recorder wraps a remote: it can leave vaults out of the list the remote
// returns, and it records every write the client sends.
type recorder struct {
	remote.Remote
	hide func(id string) bool // vaults left out of Vaults (nil: none)

	mu       sync.Mutex
	writes   []string          // every write call, in order
	putVault map[string][]byte // the records sent with PutVault
	logins   int
}

func (r *recorder) wrote(what string) {
	r.mu.Lock()
	r.writes = append(r.writes, what)
	r.mu.Unlock()
}

func (r *recorder) Vaults(ctx context.Context) ([]api.Vault, error) {
	list, err := r.Remote.Vaults(ctx)
	if err != nil || r.hide == nil {
		return list, err
	}
	return slices.DeleteFunc(list, func(v api.Vault) bool { return r.hide(v.Vault) }), nil
}

func (r *recorder) Login(ctx context.Context, req api.LoginRequest) error {
	r.mu.Lock()
	r.logins++
	r.mu.Unlock()
	return r.Remote.Login(ctx, req)
}

func (r *recorder) Register(ctx context.Context, req api.RegisterRequest) error {
	r.wrote("register")
	return r.Remote.Register(ctx, req)
}

func (r *recorder) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	r.wrote("update-account")
	return r.Remote.UpdateAccount(ctx, u)
}

func (r *recorder) PutVault(ctx context.Context, vault string, record []byte) error {
	r.mu.Lock()
	r.writes = append(r.writes, "put-vault "+vault)
	if r.putVault == nil {
		r.putVault = map[string][]byte{}
	}
	r.putVault[vault] = bytes.Clone(record)
	r.mu.Unlock()
	return r.Remote.PutVault(ctx, vault, record)
}

func (r *recorder) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	r.wrote("push " + vault)
	return r.Remote.Push(ctx, vault, base, entries)
}

func (r *recorder) PutBlob(ctx context.Context, vault, item, blob string, chunks iter.Seq2[[]byte, error]) error {
	r.wrote("put-blob " + vault)
	return r.Remote.PutBlob(ctx, vault, item, blob, chunks)
}

// countingReader counts the random bytes a vault draws.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// remoteRecords returns the vault records the remote holds, by vault id.
func remoteRecords(t *testing.T, r remote.Remote) map[string][]byte {
	t.Helper()
	list, err := r.Vaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, v := range list {
		out[v.Vault] = v.Record
	}
	return out
}

// localKeys returns the personal vault records and the vault keys a device
// holds, by vault id.
func localKeys(t *testing.T, v *Vault) (records, keys map[string][]byte) {
	t.Helper()
	records, keys = map[string][]byte{}, map[string][]byte{}
	for _, id := range v.order {
		raw, err := v.st.Vault(id)
		if err != nil {
			t.Fatal(err)
		}
		records[id] = raw
		keys[id] = bytes.Clone(v.vaults[id].key)
	}
	return records, keys
}

// TestJoinRefusesAccountWithNoVaults: a new device joining an account whose
// server says it has no vaults does not make a first vault: it refuses,
// writes nothing locally and sends nothing but its login.
func TestJoinRefusesAccountWithNoVaults(t *testing.T) {
	eachRemote(t, func(t *testing.T, f *keyFixture) {
		before := remoteRecords(t, f.ra)
		rec := &recorder{Remote: f.dial(), hide: func(string) bool { return true }}
		home := filepath.Join(t.TempDir(), "home")
		path := filepath.Join(home, "vault.db")
		v, err := Join(ctx, path, rec, JoinRequest{Target: f.target, Password: []byte(syncPassword), SecretKey: f.sk}, testOptions())
		if err == nil {
			v.Close()
			t.Fatal("join accepted an account with no vaults")
		}
		if !errors.Is(err, ErrRemoteTampered) {
			t.Fatalf("join: %v, want ErrRemoteTampered", err)
		}
		if rec.logins != 1 {
			t.Fatalf("%d logins, want 1 (the join got that far)", rec.logins)
		}
		if len(rec.writes) != 0 {
			t.Fatalf("the joining device sent %v", rec.writes)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("vault file after a refused join: %v", err)
		}
		if entries, err := os.ReadDir(home); err == nil && len(entries) != 0 {
			t.Fatalf("files left in %s: %v", home, entries)
		}
		if after := remoteRecords(t, f.ra); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Fatal("the remote's vault records changed")
		}
	})
}

// TestSyncReuploadsOmittedVaultWithItsRecord: a remote that leaves one
// (or every) personal vault out of its list gets that vault's existing
// record back, byte for byte: the device makes no new vault key, and the
// keys it holds are unchanged (§13.3, syncVaults).
func TestSyncReuploadsOmittedVaultWithItsRecord(t *testing.T) {
	for _, c := range []struct {
		name string
		all  bool
	}{{"one-vault", false}, {"every-vault", true}} {
		t.Run(c.name, func(t *testing.T) {
			eachRemote(t, func(t *testing.T, f *keyFixture) {
				// A second personal vault, so that "one" leaves another.
				if _, err := f.a.CreateVault(ctx, f.ra, "Work", ""); err != nil {
					t.Fatal(err)
				}
				mustSync(t, f.a, f.ra)
				mustSync(t, f.b, f.rb)
				if len(f.b.order) != 2 {
					t.Fatalf("B has %d vaults, want 2", len(f.b.order))
				}
				omitted := f.b.order[0]
				hide := func(id string) bool { return c.all || id == omitted }
				remoteBefore := remoteRecords(t, f.ra)
				recsBefore, keysBefore := localKeys(t, f.b)
				orderBefore := slices.Clone(f.b.order)
				titlesBefore := titles(t, f.b)

				rec := &recorder{Remote: f.rb, hide: hide}
				rnd := &countingReader{r: f.b.opts.Rand}
				f.b.opts.Rand = rnd
				if _, err := f.b.Sync(ctx, rec); err != nil {
					t.Fatalf("sync: %v", err)
				}
				f.b.opts.Rand = rnd.r

				// The omitted vaults went back with the records B holds,
				// which are the ones the remote had: same wrapped key.
				for id := range recsBefore {
					sent, ok := rec.putVault[id]
					if !hide(id) {
						if ok {
							t.Errorf("vault %s was listed but re-uploaded", id)
						}
						continue
					}
					if !ok {
						t.Errorf("omitted vault %s was not re-uploaded", id)
						continue
					}
					if !bytes.Equal(sent, recsBefore[id]) || !bytes.Equal(sent, remoteBefore[id]) {
						t.Errorf("vault %s re-uploaded with another record", id)
					}
				}
				// Nothing else was sent: one PutVault per omitted vault.
				var want []string
				for _, id := range orderBefore {
					if hide(id) {
						want = append(want, "put-vault "+id)
					}
				}
				if got := slices.Sorted(slices.Values(rec.writes)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
					t.Errorf("writes %v, want %v", rec.writes, want)
				}
				// No new vault, key or record, here or on the remote, and
				// not one random byte drawn (a key needs 32).
				if n := rnd.n.Load(); n != 0 {
					t.Errorf("the sync drew %d random bytes", n)
				}
				recsAfter, keysAfter := localKeys(t, f.b)
				if !slices.Equal(f.b.order, orderBefore) {
					t.Fatalf("B's vaults changed: %v → %v", orderBefore, f.b.order)
				}
				if !maps.EqualFunc(recsBefore, recsAfter, bytes.Equal) || !maps.EqualFunc(keysBefore, keysAfter, bytes.Equal) {
					t.Fatal("B's vault records or keys changed")
				}
				if after := remoteRecords(t, f.ra); !maps.EqualFunc(remoteBefore, after, bytes.Equal) {
					t.Fatal("the remote's vault records changed")
				}
				if got := titles(t, f.b); !slices.Equal(got, titlesBefore) {
					t.Fatalf("B's items changed: %v → %v", titlesBefore, got)
				}
				// Both devices still sync and verify.
				mustSync(t, f.a, f.ra)
				mustSync(t, f.b, f.rb)
				for _, v := range []*Vault{f.a, f.b} {
					if _, err := v.Verify(ctx); err != nil {
						t.Fatal(err)
					}
				}
			})
		})
	}
}

// TestSyncRefusesVaultTheRemoteLost: a folder remote that really lost a
// vault (its directory deleted) gets the vault's record back, the same
// bytes, and its now empty log is refused as a rollback.
func TestSyncRefusesVaultTheRemoteLost(t *testing.T) {
	f := folderKeyFixture(t)
	id := f.b.order[0]
	recsBefore, keysBefore := localKeys(t, f.b)
	if err := os.RemoveAll(filepath.Join(f.dir, "vaults", id)); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Remote: f.rb}
	refused(t, f.b, rec, ErrRemoteTampered, "rolled it back")
	if !bytes.Equal(rec.putVault[id], recsBefore[id]) {
		t.Fatalf("the lost vault was re-created with another record (writes %v)", rec.writes)
	}
	if got := remoteRecords(t, f.ra)[id]; !bytes.Equal(got, recsBefore[id]) {
		t.Fatal("the remote holds another record for the vault")
	}
	recsAfter, keysAfter := localKeys(t, f.b)
	if !maps.EqualFunc(recsBefore, recsAfter, bytes.Equal) || !maps.EqualFunc(keysBefore, keysAfter, bytes.Equal) {
		t.Fatal("B's vault records or keys changed")
	}
}

// TestSyncRefusesDocumentReplacingKeys: a document with a valid MAC,
// written by a device that holds the Master Key (here A, standing for a
// revoked device that kept it), that replaces the account's identity or
// encryption keys is refused by a device that pinned them; the local
// account record stays as it was, and stays so on the next sync.
func TestSyncRefusesDocumentReplacingKeys(t *testing.T) {
	newIdentity := func(t *testing.T, a *Vault, doc *accountRecord) {
		k, err := sign.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Wipe()
		if doc.IdentityPublic, err = k.Public().MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		if doc.IdentitySealed, err = sealKey(rand.Reader, a.mk, k, envelope.Context{Purpose: purposeIdentity, Account: doc.Account}); err != nil {
			t.Fatal(err)
		}
	}
	newEncryption := func(t *testing.T, a *Vault, doc *accountRecord) {
		k, err := pke.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Wipe()
		if doc.EncryptPublic, err = k.Public().MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		if doc.EncryptSealed, err = sealKey(rand.Reader, a.mk, k, envelope.Context{Purpose: purposeEncryption, Account: doc.Account}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		alter func(t *testing.T, a *Vault, doc *accountRecord)
	}{
		{"identity-keys", newIdentity},
		{"encryption-keys", newEncryption},
		{"both", func(t *testing.T, a *Vault, doc *accountRecord) { newIdentity(t, a, doc); newEncryption(t, a, doc) }},
		{"identity-public-only", func(t *testing.T, a *Vault, doc *accountRecord) {
			k, err := sign.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Wipe()
			doc.IdentityPublic, _ = k.Public().MarshalBinary()
		}},
		{"encryption-resealed", func(t *testing.T, a *Vault, doc *accountRecord) {
			// The same key sealed again: other bytes, so refused too.
			raw, err := envelope.Open(a.mk, envelope.Context{Purpose: purposeEncryption, Account: doc.Account}, doc.EncryptSealed)
			if err != nil {
				t.Fatal(err)
			}
			defer wipeBytes(raw)
			if doc.EncryptSealed, err = envelope.Seal(rand.Reader, a.mk, envelope.Context{Purpose: purposeEncryption, Account: doc.Account}, raw); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachRemote(t, func(t *testing.T, f *keyFixture) {
				// A knows B's device (published at B's first sync), so
				// the document differs from the current one in its keys
				// only.
				mustSync(t, f.a, f.ra)
				acc, err := f.ra.Account(ctx)
				if err != nil {
					t.Fatal(err)
				}
				doc := *f.a.acct
				doc.Devices = slices.Clone(f.a.acct.Devices)
				doc.Epoch = acc.Epoch + 1
				c.alter(t, f.a, &doc)
				forged := f.a.document(&doc)
				// The MAC is valid: B would accept it but for the keys.
				if _, err := f.b.parseDocument(forged); err != nil {
					t.Fatalf("the forged document does not pass the MAC check: %v", err)
				}
				// Written to the remote as any device writes a document.
				epoch, err := f.ra.UpdateAccount(ctx, api.AccountUpdate{Base: acc.Epoch, Document: forged})
				if err != nil || epoch != doc.Epoch {
					t.Fatalf("update account: epoch %d, %v", epoch, err)
				}
				localBefore, err := f.b.st.Account()
				if err != nil {
					t.Fatal(err)
				}
				pinned := f.b.acct
				for range 2 {
					refused(t, f.b, f.rb, ErrRemoteTampered, "replaces the account's identity or encryption keys")
				}
				localAfter, err := f.b.st.Account()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(localBefore, localAfter) {
					t.Fatal("B's account record changed")
				}
				if !bytes.Equal(f.b.acct.IdentityPublic, pinned.IdentityPublic) || !bytes.Equal(f.b.acct.EncryptPublic, pinned.EncryptPublic) {
					t.Fatal("B's pinned keys changed")
				}
			})
		})
	}
}
