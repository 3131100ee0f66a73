// Package remotetest is the conformance suite every remote.Remote passes:
// the folder remote and the HTTPS client of `safe serve` run the same
// tests, each with a few lines of glue.
//
// The suite writes real log entries (package vlog, signed with a real
// device key, chained from vlog.Genesis, with real payload digests) because
// a server checks them; it does not rely on a Remote checking anything
// beyond what package remote's contract says.
//
// A Remote that also implements remote.Orgs (a server) runs the
// organisation part too (orgs.go): real statements from a real root key,
// shared vaults and the access the organisation's log gives; one without
// it (a folder) skips that part.
package remotetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

// Run runs the suite. newRemote returns a Remote that is not logged in and
// can register a new account: each test registers its own, with a random
// address, so the Remotes may share one server (a folder holds one
// account, so each call needs its own directory).
func Run(t *testing.T, newRemote func(t *testing.T) remote.Remote) {
	key, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(key.Wipe)
	s := &suite{key: key, newRemote: newRemote}
	t.Run("Register", s.testRegister)
	t.Run("AccountCAS", s.testAccountCAS)
	t.Run("Vaults", s.testVaults)
	t.Run("PushPull", s.testPushPull)
	t.Run("Paging", s.testPaging)
	t.Run("StalePush", s.testStalePush)
	t.Run("ConcurrentPush", s.testConcurrentPush)
	t.Run("InvalidEntry", s.testInvalidEntry)
	t.Run("Purge", s.testPurge)
	t.Run("Blobs", s.testBlobs)
	t.Run("BadIDs", s.testBadIDs)
	// Organisations and shared vaults (orgs.go): only for a Remote that
	// implements remote.Orgs.
	t.Run("Orgs", s.testOrgs)
	t.Run("OrgPaging", s.testOrgPaging)
}

type suite struct {
	key       *sign.PrivateKey
	newRemote func(t *testing.T) remote.Remote
}

// NewID returns a random id in the form the client makes: 26 lower-case
// base32 characters.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return b32.EncodeToString(b[:])
}

var b32 = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// KDFHeader returns a valid 80-byte KDF header with the test parameters
// and fresh salts.
func KDFHeader(t testing.TB) []byte {
	salts, err := kdf.NewSalts(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kdf.Header{Params: kdf.TestParams(), Salts: salts}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// account is a registered account and the Remote logged in to it.
type account struct {
	r        remote.Remote
	id       string
	email    string
	device   string
	kdf      []byte
	loginKey []byte
	doc      []byte
}

func (s *suite) register(t *testing.T) *account {
	t.Helper()
	r := s.newRemote(t)
	a := &account{
		r:        r,
		id:       NewID(),
		email:    "rt-" + NewID()[:12] + "@example.com",
		device:   NewID(),
		kdf:      KDFHeader(t),
		loginKey: randBytes(api.LoginKeySize),
		doc:      randBytes(200),
	}
	err := r.Register(t.Context(), api.RegisterRequest{
		Email:    a.email,
		Account:  a.id,
		KDF:      a.kdf,
		LoginKey: a.loginKey,
		Document: a.doc,
		Device:   api.DeviceHello{ID: a.device, Platform: "remotetest"},
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return a
}

// vault creates a vault and returns a log Writer for it.
func (s *suite) vault(t *testing.T, a *account) *Writer {
	t.Helper()
	v := NewID()
	if err := a.r.PutVault(t.Context(), v, randBytes(100)); err != nil {
		t.Fatalf("PutVault: %v", err)
	}
	return NewWriter(v, a.device, s.key)
}

// Writer builds a vault's log as an honest client would: real entries,
// signed with a device key, chained from vlog.Genesis, with payload
// digests and revisions (put: current+1, purge: current).
type Writer struct {
	vault, device string
	key           *sign.PrivateKey
	head          uint64
	hash          chain.Hash
	revs          map[string]uint64
}

// NewWriter starts a vault's log at its genesis.
func NewWriter(vault, device string, key *sign.PrivateKey) *Writer {
	return &Writer{vault: vault, device: device, key: key, hash: vlog.Genesis(vault), revs: map[string]uint64{}}
}

// Vault returns the vault id.
func (w *Writer) Vault() string { return w.vault }

// Head returns the sequence number of the last entry built.
func (w *Writer) Head() uint64 { return w.head }

// Clone returns an independent copy, to build an alternative future.
func (w *Writer) Clone() *Writer {
	c := *w
	c.revs = maps.Clone(w.revs)
	return &c
}

func (w *Writer) add(t testing.TB, op byte, itemID string, rev uint64, payload []byte) api.Entry {
	t.Helper()
	e := vlog.Entry{
		Op: op, Seq: w.head + 1, Time: time.Now().UnixMilli(), Prev: w.hash,
		Revision: rev, Vault: w.vault, Item: itemID, Device: w.device,
	}
	if op == vlog.OpPut {
		copy(e.Digest[:], vlog.PayloadDigest(payload))
	}
	body, err := e.Sign(w.key)
	if err != nil {
		t.Fatal(err)
	}
	w.head++
	w.hash = vlog.Next(w.hash, body)
	w.revs[itemID] = rev
	return api.Entry{Body: body, Sig: e.Sig, Payload: payload}
}

// Put builds a put of the item's next revision with a payload.
func (w *Writer) Put(t testing.TB, itemID string, payload []byte) api.Entry {
	return w.add(t, vlog.OpPut, itemID, w.revs[itemID]+1, payload)
}

// Purge builds the purge of the item at its current revision.
func (w *Writer) Purge(t testing.TB, itemID string) api.Entry {
	return w.add(t, vlog.OpPurge, itemID, w.revs[itemID], nil)
}

// Puts builds puts of n new items with random payloads.
func (w *Writer) Puts(t testing.TB, n int) []api.Entry {
	out := make([]api.Entry, n)
	for i := range out {
		out[i] = w.Put(t, NewID(), randBytes(64))
	}
	return out
}

func (s *suite) testRegister(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)

	k, err := a.r.Prelogin(ctx, a.email)
	if err != nil {
		t.Fatalf("Prelogin: %v", err)
	}
	if !bytes.Equal(k, a.kdf) {
		t.Errorf("Prelogin returned a different KDF header")
	}

	acc, err := a.r.Account(ctx)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	want := api.Account{Account: a.id, Email: a.email, KDF: a.kdf, Epoch: 1, Document: a.doc}
	if acc.Account != want.Account || acc.Email != want.Email || !bytes.Equal(acc.KDF, want.KDF) ||
		acc.Epoch != 1 || !bytes.Equal(acc.Document, want.Document) || acc.TOTP {
		t.Errorf("Account = %+v, want %+v", acc, want)
	}

	err = a.r.Register(ctx, api.RegisterRequest{
		Email: a.email, Account: NewID(), KDF: KDFHeader(t), LoginKey: randBytes(api.LoginKeySize),
		Document: randBytes(10), Device: api.DeviceHello{ID: NewID(), Platform: "remotetest"},
	})
	if !errors.Is(err, remote.ErrExists) {
		t.Errorf("Register with a taken address: err = %v, want ErrExists", err)
	}

	// A second device logs in (the same Remote: its session moves to the
	// new device, whose writes are then its own).
	dev := NewID()
	if err := a.r.Login(ctx, api.LoginRequest{Email: a.email, LoginKey: a.loginKey, Device: api.DeviceHello{ID: dev, Platform: "remotetest"}}); err != nil {
		t.Fatalf("Login: %v", err)
	}
	acc2, err := a.r.Account(ctx)
	if err != nil {
		t.Fatalf("Account after Login: %v", err)
	}
	if acc2.Account != a.id || acc2.Epoch != 1 || !bytes.Equal(acc2.Document, a.doc) {
		t.Errorf("second device sees account %q epoch %d", acc2.Account, acc2.Epoch)
	}
	a.device = dev
	w := s.vault(t, a)
	if _, err := a.r.Push(ctx, w.vault, 0, w.Puts(t, 1)); err != nil {
		t.Errorf("Push from the second device: %v", err)
	}
	if err := a.r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func (s *suite) testAccountCAS(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	doc2 := randBytes(300)
	epoch, err := a.r.UpdateAccount(ctx, api.AccountUpdate{Base: 1, Document: doc2})
	if err != nil || epoch != 2 {
		t.Fatalf("UpdateAccount(base 1) = %d, %v; want 2", epoch, err)
	}
	for _, base := range []uint64{0, 1, 3, 100} {
		if _, err := a.r.UpdateAccount(ctx, api.AccountUpdate{Base: base, Document: randBytes(10)}); !errors.Is(err, remote.ErrStale) {
			t.Errorf("UpdateAccount(base %d) at epoch 2: err = %v, want ErrStale", base, err)
		}
	}
	acc, err := a.r.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Epoch != 2 || !bytes.Equal(acc.Document, doc2) || !bytes.Equal(acc.KDF, a.kdf) {
		t.Errorf("after update: epoch %d, document equal %v, KDF equal %v", acc.Epoch, bytes.Equal(acc.Document, doc2), bytes.Equal(acc.KDF, a.kdf))
	}

	// A password change: new KDF header and login key with the document.
	kdf3, key3, doc3 := KDFHeader(t), randBytes(api.LoginKeySize), randBytes(50)
	epoch, err = a.r.UpdateAccount(ctx, api.AccountUpdate{Base: 2, Document: doc3, Credentials: &api.Credentials{KDF: kdf3, LoginKey: key3}})
	if err != nil || epoch != 3 {
		t.Fatalf("UpdateAccount with credentials = %d, %v; want 3", epoch, err)
	}
	if k, err := a.r.Prelogin(ctx, a.email); err != nil || !bytes.Equal(k, kdf3) {
		t.Errorf("Prelogin after the credentials change: equal %v, err %v", bytes.Equal(k, kdf3), err)
	}
	if acc, err := a.r.Account(ctx); err != nil || !bytes.Equal(acc.KDF, kdf3) || !bytes.Equal(acc.Document, doc3) {
		t.Errorf("Account after the credentials change: %v", err)
	}
	if err := a.r.Login(ctx, api.LoginRequest{Email: a.email, LoginKey: key3, Device: api.DeviceHello{ID: a.device, Platform: "remotetest"}}); err != nil {
		t.Errorf("Login with the new login key: %v", err)
	}

	// Concurrent writers with the same base: exactly one wins.
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []int
		docs = make([][]byte, n)
	)
	for i := range n {
		docs[i] = randBytes(40)
		wg.Go(func() {
			e, err := a.r.UpdateAccount(ctx, api.AccountUpdate{Base: 3, Document: docs[i]})
			switch {
			case err == nil && e == 4:
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			case errors.Is(err, remote.ErrStale):
			default:
				t.Errorf("concurrent UpdateAccount: %d, %v", e, err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d concurrent updates won, want exactly 1", len(won))
	}
	acc, err = a.r.Account(ctx)
	if err != nil || acc.Epoch != 4 || !bytes.Equal(acc.Document, docs[won[0]]) || !bytes.Equal(acc.KDF, kdf3) {
		t.Errorf("after the race: epoch %d, winner's document %v, err %v", acc.Epoch, bytes.Equal(acc.Document, docs[won[0]]), err)
	}
}

func sortedVaults(t *testing.T, r remote.Remote) []api.Vault {
	t.Helper()
	vs, err := r.Vaults(t.Context())
	if err != nil {
		t.Fatalf("Vaults: %v", err)
	}
	slices.SortFunc(vs, func(a, b api.Vault) int {
		if a.Vault < b.Vault {
			return -1
		}
		if a.Vault > b.Vault {
			return 1
		}
		return 0
	})
	return vs
}

func (s *suite) testVaults(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	if vs := sortedVaults(t, a.r); len(vs) != 0 {
		t.Fatalf("a new account has %d vaults", len(vs))
	}
	ids := []string{NewID(), NewID()}
	slices.Sort(ids)
	recs := [][]byte{randBytes(100), randBytes(1000)}
	for i, v := range ids {
		if err := a.r.PutVault(ctx, v, recs[i]); err != nil {
			t.Fatalf("PutVault: %v", err)
		}
	}
	check := func() {
		t.Helper()
		vs := sortedVaults(t, a.r)
		if len(vs) != 2 {
			t.Fatalf("Vaults lists %d vaults, want 2", len(vs))
		}
		for i, v := range vs {
			if v.Vault != ids[i] || !bytes.Equal(v.Record, recs[i]) || v.Head != 0 {
				t.Errorf("vault %d: id %q head %d record equal %v", i, v.Vault, v.Head, bytes.Equal(v.Record, recs[i]))
			}
		}
	}
	check()
	recs[0] = randBytes(300)
	if err := a.r.PutVault(ctx, ids[0], recs[0]); err != nil {
		t.Fatalf("PutVault replacing a record: %v", err)
	}
	check()

	w := NewWriter(ids[1], a.device, s.key)
	if _, err := a.r.Push(ctx, ids[1], 0, w.Puts(t, 3)); err != nil {
		t.Fatalf("Push: %v", err)
	}
	vs := sortedVaults(t, a.r)
	if vs[0].Head != 0 || vs[1].Head != 3 {
		t.Errorf("heads after a push: %d, %d; want 0, 3", vs[0].Head, vs[1].Head)
	}
}

// pull pulls one page and checks its shape.
func pull(t *testing.T, r remote.Remote, vault string, since uint64) api.LogPage {
	t.Helper()
	p, err := r.Pull(t.Context(), vault, since)
	if err != nil {
		t.Fatalf("Pull(since %d): %v", since, err)
	}
	if len(p.Entries) > api.MaxPageLimit {
		t.Fatalf("Pull returned %d entries, more than %d", len(p.Entries), api.MaxPageLimit)
	}
	return p
}

// sameEntries compares entries by their bytes.
func sameEntries(t *testing.T, got, want []api.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Body, want[i].Body) || !bytes.Equal(got[i].Sig, want[i].Sig) || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Fatalf("entry %d differs from the one pushed (body %v, sig %v, payload %v)", i,
				bytes.Equal(got[i].Body, want[i].Body), bytes.Equal(got[i].Sig, want[i].Sig), bytes.Equal(got[i].Payload, want[i].Payload))
		}
	}
}

func (s *suite) testPushPull(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)

	if p := pull(t, a.r, w.vault, 0); p.Head != 0 || len(p.Entries) != 0 {
		t.Errorf("empty vault: head %d, %d entries", p.Head, len(p.Entries))
	}
	first := w.Puts(t, 3)
	head, err := a.r.Push(ctx, w.vault, 0, first)
	if err != nil || head != 3 {
		t.Fatalf("Push = %d, %v; want 3", head, err)
	}
	itemID := NewID()
	second := []api.Entry{w.Put(t, itemID, randBytes(500)), w.Put(t, itemID, randBytes(700))}
	if head, err = a.r.Push(ctx, w.vault, 3, second); err != nil || head != 5 {
		t.Fatalf("second Push = %d, %v; want 5", head, err)
	}

	p := pull(t, a.r, w.vault, 0)
	if p.Head != 5 {
		t.Errorf("head %d, want 5", p.Head)
	}
	sameEntries(t, p.Entries, append(slices.Clone(first), second...))
	p = pull(t, a.r, w.vault, 3)
	if p.Head != 5 {
		t.Errorf("head %d, want 5", p.Head)
	}
	sameEntries(t, p.Entries, second)

	// Since the head: nothing.
	if p := pull(t, a.r, w.vault, 5); p.Head != 5 || len(p.Entries) != 0 {
		t.Errorf("Pull(since head): head %d, %d entries", p.Head, len(p.Entries))
	}
	// Since beyond the head: the head says so.
	if p := pull(t, a.r, w.vault, 9); p.Head != 5 || len(p.Entries) != 0 {
		t.Errorf("Pull(since 9): head %d, %d entries; want head 5, none", p.Head, len(p.Entries))
	}
	// An unknown vault.
	if _, err := a.r.Pull(ctx, NewID(), 0); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Pull of an unknown vault: err = %v, want ErrNotFound", err)
	}
	if _, err := a.r.Push(ctx, NewID(), 0, first[:1]); err == nil {
		t.Errorf("Push to an unknown vault succeeded")
	}
}

func (s *suite) testPaging(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	const n = api.MaxPageLimit + 1
	all := w.Puts(t, n)
	var head uint64
	for i := 0; i < n; i += api.MaxAppend {
		batch := all[i:min(i+api.MaxAppend, n)]
		h, err := a.r.Push(ctx, w.vault, head, batch)
		if err != nil || h != head+uint64(len(batch)) {
			t.Fatalf("Push(base %d, %d entries) = %d, %v", head, len(batch), h, err)
		}
		head = h
	}
	var got []api.Entry
	pages := 0
	for since := uint64(0); since < head; {
		p := pull(t, a.r, w.vault, since)
		pages++
		if p.Head != head {
			t.Fatalf("page %d: head %d, want %d", pages, p.Head, head)
		}
		if len(p.Entries) == 0 {
			t.Fatalf("page %d (since %d) is empty below the head", pages, since)
		}
		for i, e := range p.Entries {
			d, err := vlog.DecodeBody(e.Body)
			if err != nil || d.Seq != since+1+uint64(i) {
				t.Fatalf("page %d, entry %d: seq %v, err %v", pages, i, d, err)
			}
		}
		got = append(got, p.Entries...)
		since += uint64(len(p.Entries))
	}
	if pages < 2 {
		t.Errorf("%d entries came in %d page(s)", n, pages)
	}
	sameEntries(t, got, all)
}

func (s *suite) testStalePush(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	first := w.Puts(t, 2)
	if _, err := a.r.Push(ctx, w.vault, 0, first); err != nil {
		t.Fatal(err)
	}
	// A Writer that missed entry 2 builds on entry 1.
	stale := NewWriter(w.vault, w.device, w.key)
	stale.hash = vlog.Next(stale.hash, first[0].Body)
	stale.head = 1
	if _, err := a.r.Push(ctx, w.vault, 1, stale.Puts(t, 2)); !errors.Is(err, remote.ErrStale) {
		t.Errorf("Push(base 1) at head 2: err = %v, want ErrStale", err)
	}
	fresh := NewWriter(w.vault, w.device, w.key).Puts(t, 1)
	if _, err := a.r.Push(ctx, w.vault, 0, fresh); !errors.Is(err, remote.ErrStale) {
		t.Errorf("Push(base 0) at head 2: err = %v, want ErrStale", err)
	}
	ahead := w.Clone()
	ahead.head, ahead.hash = 5, chain.Hash{}
	if _, err := a.r.Push(ctx, w.vault, 5, ahead.Puts(t, 1)); !errors.Is(err, remote.ErrStale) {
		t.Errorf("Push(base 5) at head 2: err = %v, want ErrStale", err)
	}
	p := pull(t, a.r, w.vault, 0)
	if p.Head != 2 {
		t.Errorf("head after stale pushes: %d, want 2", p.Head)
	}
	sameEntries(t, p.Entries, first)
	// The up-to-date Writer still appends.
	if h, err := a.r.Push(ctx, w.vault, 2, w.Puts(t, 1)); err != nil || h != 3 {
		t.Errorf("Push(base 2) = %d, %v; want 3", h, err)
	}
}

func (s *suite) testConcurrentPush(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	if _, err := a.r.Push(ctx, w.vault, 0, w.Puts(t, 2)); err != nil {
		t.Fatal(err)
	}
	const n = 8
	batches := make([][]api.Entry, n)
	for i := range batches {
		batches[i] = w.Clone().Puts(t, 3)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []int
	)
	for i := range n {
		wg.Go(func() {
			h, err := a.r.Push(ctx, w.vault, 2, batches[i])
			switch {
			case err == nil && h == 5:
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			case errors.Is(err, remote.ErrStale):
			default:
				t.Errorf("concurrent Push: %d, %v", h, err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d concurrent pushes won, want exactly 1", len(won))
	}
	p := pull(t, a.r, w.vault, 2)
	if p.Head != 5 {
		t.Errorf("head %d, want 5", p.Head)
	}
	sameEntries(t, p.Entries, batches[won[0]])
}

func (s *suite) testInvalidEntry(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	if _, err := a.r.Push(ctx, w.vault, 0, w.Puts(t, 1)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() []api.Entry{
		"wrong seq": func() []api.Entry {
			c := w.Clone()
			c.head++ // names seq 3 at base 1
			return c.Puts(t, 1)
		},
		"broken chain": func() []api.Entry {
			c := w.Clone()
			c.hash[0] ^= 1
			return c.Puts(t, 1)
		},
		"payload digest": func() []api.Entry {
			e := w.Clone().Puts(t, 1)
			e[0].Payload = randBytes(64)
			return e
		},
		"other vault": func() []api.Entry {
			c := w.Clone()
			c.vault = NewID()
			return c.Puts(t, 1)
		},
		"put without payload": func() []api.Entry {
			e := w.Clone().Puts(t, 1)
			e[0].Payload = nil
			return e
		},
		"put without payload, purged by an earlier entry": func() []api.Entry {
			c := w.Clone()
			id := NewID()
			e := []api.Entry{c.Put(t, id, randBytes(10)), c.Purge(t, id), c.Put(t, id, randBytes(10))}
			e[2].Payload = nil
			return e
		},
		"bad second entry": func() []api.Entry {
			e := w.Clone().Puts(t, 2)
			e[1].Payload = randBytes(64)
			return e
		},
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		if h, err := a.r.Push(ctx, w.vault, 1, cases[name]()); err == nil || errors.Is(err, remote.ErrStale) {
			t.Errorf("%s: Push = %d, %v; want a refusal that is not ErrStale", name, h, err)
		}
	}
	if p := pull(t, a.r, w.vault, 0); p.Head != 1 || len(p.Entries) != 1 {
		t.Errorf("after refused pushes: head %d, %d entries; want 1, 1", p.Head, len(p.Entries))
	}
}

// chunksOf yields the chunks, then err if not nil.
func chunksOf(err error, chunks ...[]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, c := range chunks {
			if !yield(c, nil) {
				return
			}
		}
		if err != nil {
			yield(nil, err)
		}
	}
}

func getBlob(t *testing.T, r remote.Remote, vault, itemID, blob string) ([][]byte, error) {
	t.Helper()
	var got [][]byte
	err := r.GetBlob(t.Context(), vault, itemID, blob, func(idx int, c []byte) error {
		if idx != len(got) {
			return fmt.Errorf("chunk index %d, want %d", idx, len(got))
		}
		got = append(got, bytes.Clone(c))
		return nil
	})
	return got, err
}

func sameChunks(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs (%d bytes, want %d)", i, len(got[i]), len(want[i]))
		}
	}
}

func (s *suite) testPurge(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	x, y := NewID(), NewID()
	entries := []api.Entry{
		w.Put(t, x, randBytes(100)),
		w.Put(t, y, randBytes(100)),
		w.Put(t, x, randBytes(100)),
	}
	if _, err := a.r.Push(ctx, w.vault, 0, entries); err != nil {
		t.Fatal(err)
	}
	blobX, blobY := NewID(), NewID()
	chunk := randBytes(64)
	for _, b := range []struct{ item, blob string }{{x, blobX}, {y, blobY}} {
		if err := a.r.PutBlob(ctx, w.vault, b.item, b.blob, chunksOf(nil, chunk)); err != nil {
			t.Fatalf("PutBlob: %v", err)
		}
	}
	purge := w.Purge(t, x)
	// An item made and purged in one push, one with its payload, one
	// without (a client that purged it before syncing no longer has it).
	z, z2 := NewID(), NewID()
	zs := []api.Entry{w.Put(t, z, randBytes(100)), w.Purge(t, z), w.Put(t, z2, randBytes(100)), w.Purge(t, z2)}
	zs[2].Payload = nil
	if h, err := a.r.Push(ctx, w.vault, 3, append([]api.Entry{purge}, zs...)); err != nil || h != 8 {
		t.Fatalf("Push of purges = %d, %v; want 8", h, err)
	}
	p := pull(t, a.r, w.vault, 0)
	if len(p.Entries) != 8 {
		t.Fatalf("%d entries, want 8", len(p.Entries))
	}
	for i, wantPayload := range []bool{false, true, false, false, false, false, false, false} {
		if got := len(p.Entries[i].Payload) > 0; got != wantPayload {
			t.Errorf("entry %d: has payload %v, want %v", i+1, got, wantPayload)
		}
		if !bytes.Equal(p.Entries[i].Body, append(append(slices.Clone(entries), purge), zs...)[i].Body) {
			t.Errorf("entry %d: body changed", i+1)
		}
	}
	if !bytes.Equal(p.Entries[1].Payload, entries[1].Payload) {
		t.Errorf("the other item's payload changed")
	}
	if _, err := getBlob(t, a.r, w.vault, x, blobX); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("GetBlob of a purged item: err = %v, want ErrNotFound", err)
	}
	got, err := getBlob(t, a.r, w.vault, y, blobY)
	if err != nil {
		t.Fatalf("GetBlob of the other item: %v", err)
	}
	sameChunks(t, got, [][]byte{chunk})
}

func (s *suite) testBlobs(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	itemID, blob := NewID(), NewID()

	if _, err := getBlob(t, a.r, w.vault, itemID, blob); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("GetBlob before PutBlob: err = %v, want ErrNotFound", err)
	}
	chunks := [][]byte{randBytes(32), randBytes(65536 + 32), randBytes(1000)}
	if err := a.r.PutBlob(ctx, w.vault, itemID, blob, chunksOf(nil, chunks...)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	got, err := getBlob(t, a.r, w.vault, itemID, blob)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	sameChunks(t, got, chunks)

	// Replacing.
	chunks = [][]byte{randBytes(77)}
	if err := a.r.PutBlob(ctx, w.vault, itemID, blob, chunksOf(nil, chunks...)); err != nil {
		t.Fatalf("PutBlob replacing: %v", err)
	}
	got, err = getBlob(t, a.r, w.vault, itemID, blob)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	sameChunks(t, got, chunks)

	// Failed uploads leave the blob as it was.
	boom := errors.New("source failed")
	if err := a.r.PutBlob(ctx, w.vault, itemID, blob, chunksOf(boom, randBytes(100), randBytes(100))); !errors.Is(err, boom) {
		t.Errorf("PutBlob with a failing source: err = %v, want the source's error", err)
	}
	for name, bad := range map[string][][]byte{
		"no chunks":       nil,
		"short chunk":     {randBytes(100), randBytes(31)},
		"oversized chunk": {randBytes(65536 + 33)},
	} {
		if err := a.r.PutBlob(ctx, w.vault, itemID, blob, chunksOf(nil, bad...)); err == nil {
			t.Errorf("PutBlob with %s succeeded", name)
		}
	}
	got, err = getBlob(t, a.r, w.vault, itemID, blob)
	if err != nil {
		t.Fatalf("GetBlob after failed uploads: %v", err)
	}
	sameChunks(t, got, chunks)

	// fn's error ends GetBlob.
	stop := errors.New("stop")
	if err := a.r.GetBlob(ctx, w.vault, itemID, blob, func(int, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("GetBlob with a failing fn: err = %v, want fn's error", err)
	}
	if _, err := getBlob(t, a.r, w.vault, itemID, NewID()); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("GetBlob of another blob: err = %v, want ErrNotFound", err)
	}
	if _, err := getBlob(t, a.r, NewID(), itemID, blob); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("GetBlob in an unknown vault: err = %v, want ErrNotFound", err)
	}
}

func (s *suite) testBadIDs(t *testing.T) {
	ctx := t.Context()
	a := s.register(t)
	w := s.vault(t, a)
	nop := func(int, []byte) error { return nil }
	for _, bad := range []string{"", "..", "../" + w.vault, "a/b", "ABC", "a b", "a%2fb", "a\x00b", strings.Repeat("a", 65)} {
		if err := a.r.PutVault(ctx, bad, randBytes(10)); err == nil {
			t.Errorf("PutVault(%q) succeeded", bad)
		}
		if _, err := a.r.Pull(ctx, bad, 0); err == nil {
			t.Errorf("Pull(%q) succeeded", bad)
		}
		if err := a.r.PutBlob(ctx, w.vault, bad, NewID(), chunksOf(nil, randBytes(40))); err == nil {
			t.Errorf("PutBlob(item %q) succeeded", bad)
		}
		if err := a.r.GetBlob(ctx, w.vault, NewID(), bad, nop); err == nil {
			t.Errorf("GetBlob(blob %q) succeeded", bad)
		}
	}
}
