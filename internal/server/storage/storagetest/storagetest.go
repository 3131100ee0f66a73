// Package storagetest is the conformance suite every storage.Store passes.
// A backend runs it with a few lines of glue:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { ... a fresh, empty store ... })
//	}
//
// and, if several processes may share one database, RunShared with two
// independent stores on one fresh database.
//
// The suite checks the contract written on storage.Store, including what
// must hold under concurrency: one winner of a compare-and-swap, one use of
// a recovery code, no lost increment. It stores plausible but meaningless
// bytes: the store interprets no body, record or ciphertext.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

// Run runs the suite. open returns a fresh, empty store and arranges for
// it to be closed (and its database removed) when the test ends; subtests
// run in parallel, each with its own store.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Secret", testSecret},
		{"CreateAccount", testCreateAccount},
		{"UpdateDocument", testUpdateDocument},
		{"TOTP", testTOTP},
		{"RecoveryCodeRace", testRecoveryCodeRace},
		{"Disabled", testDisabled},
		{"Devices", testDevices},
		{"Sessions", testSessions},
		{"Logins", testLogins},
		{"Throttle", testThrottle},
		{"ThrottleRace", testThrottleRace},
		{"Vaults", testVaults},
		{"Append", testAppend},
		{"AppendRace", testAppendRace},
		{"Entries", testEntries},
		{"ItemStates", testItemStates},
		{"Purge", testPurge},
		{"Blobs", testBlobs},
		{"BlobFailure", testBlobFailure},
		{"Usage", testUsage},
		{"DeleteAccount", testDeleteAccount},
		{"UnknownAccount", testUnknownAccount},
		{"CreateOrg", testCreateOrg},
		{"AppendOrg", testAppendOrg},
		{"OrgAppendRace", testOrgAppendRace},
		{"OrgEntries", testOrgEntries},
		{"OrgsFor", testOrgsFor},
		{"OrgVaults", testOrgVaults},
		{"SharedVaultLog", testSharedVaultLog},
		{"DeleteOrg", testDeleteOrg},
		{"DeleteAccountKeepsOrgs", testDeleteAccountKeepsOrgs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// RunShared checks that two independent stores on one database (two
// connection pools, as two server processes would have) keep every
// guarantee between them. open returns both, on a fresh, empty database.
func RunShared(t *testing.T, open func(t *testing.T) (storage.Store, storage.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b storage.Store)
	}{
		{"Secret", testSharedSecret},
		{"CreateAccount", testSharedCreateAccount},
		{"Append", testSharedAppend},
		{"Throttle", testSharedThrottle},
		{"RecoveryCode", testSharedRecoveryCode},
		{"CreateOrg", testSharedCreateOrg},
		{"AppendOrg", testSharedAppendOrg},
		{"PutOrgVault", testSharedPutOrgVault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			tc.fn(t, a, b)
		})
	}
}

// t0 is the suite's clock: every time it stores is a whole number of
// microseconds, the precision stores keep.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// id makes a plausible id (26 lower-case base32 characters) from a name.
func id(name string) string {
	h := sha256.Sum256([]byte(name))
	return strings.ToLower(base32.StdEncoding.EncodeToString(h[:])[:26])
}

// fill returns n bytes derived from tag, so that different values differ.
func fill(tag string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", tag, i))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func newAccount(name string) (storage.Account, storage.Device) {
	a := storage.Account{
		ID:       id("account " + name),
		Email:    name + "@example.com",
		KDF:      fill("kdf "+name, 80),
		Verifier: fill("verifier "+name, 48),
		Epoch:    1,
		Document: fill("document "+name, 300),
		Created:  t0,
	}
	d := storage.Device{
		Account:  a.ID,
		ID:       id("device 1 " + name),
		Platform: "linux/amd64",
		Created:  t0,
		LastSeen: t0,
	}
	return a, d
}

func mustCreate(t *testing.T, s storage.Store, name string) (storage.Account, storage.Device) {
	t.Helper()
	a, d := newAccount(name)
	if err := s.CreateAccount(t.Context(), a, d); err != nil {
		t.Fatalf("CreateAccount(%s): %v", name, err)
	}
	return a, d
}

func mustVault(t *testing.T, s storage.Store, account, name string) string {
	t.Helper()
	v := id("vault " + name)
	if err := s.PutVault(t.Context(), account, v, fill("record "+name, 120), genesis(v)); err != nil {
		t.Fatalf("PutVault(%s): %v", name, err)
	}
	return v
}

func genesis(vault string) []byte { return fill("genesis "+vault, 64) }

func headHash(vault string, seq uint64) []byte {
	return fill(fmt.Sprintf("head %s %d", vault, seq), 64)
}

const (
	opPut   = 1
	opPurge = 2
)

// entry makes a plausible entry; a put carries a payload, a purge none.
func entry(seq uint64, op byte, item string, rev uint64, tag string) storage.Entry {
	e := storage.Entry{
		Seq:      seq,
		Op:       op,
		Item:     item,
		Revision: rev,
		Body:     fill(fmt.Sprintf("body %d %s", seq, tag), 140),
		Sig:      fill(fmt.Sprintf("sig %d %s", seq, tag), 64),
	}
	if op == opPut {
		e.Payload = fill(fmt.Sprintf("payload %d %s", seq, tag), 200)
	}
	return e
}

func mustAppend(t *testing.T, s storage.Store, vault string, base uint64, entries ...storage.Entry) {
	t.Helper()
	last := entries[len(entries)-1].Seq
	if err := s.Append(t.Context(), vault, base, entries, headHash(vault, last)); err != nil {
		t.Fatalf("Append(base %d): %v", base, err)
	}
}

func entries(t *testing.T, s storage.Store, vault string, since uint64, limit int) []storage.Entry {
	t.Helper()
	var out []storage.Entry
	if err := s.Entries(t.Context(), vault, since, limit, func(e storage.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Entries(since %d, limit %d): %v", since, limit, err)
	}
	return out
}

func sameEntry(a, b storage.Entry) bool {
	return a.Seq == b.Seq && a.Op == b.Op && a.Item == b.Item && a.Revision == b.Revision &&
		bytes.Equal(a.Body, b.Body) && bytes.Equal(a.Sig, b.Sig) &&
		bytes.Equal(a.Payload, b.Payload) && (a.Payload == nil) == (b.Payload == nil)
}

func checkEntries(t *testing.T, got, want []storage.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameEntry(got[i], want[i]) {
			t.Fatalf("entry %d: got seq %d op %d item %q rev %d payload %t, want seq %d op %d item %q rev %d payload %t (or bytes differ)",
				i, got[i].Seq, got[i].Op, got[i].Item, got[i].Revision, got[i].Payload != nil,
				want[i].Seq, want[i].Op, want[i].Item, want[i].Revision, want[i].Payload != nil)
		}
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func checkAccount(t *testing.T, got, want storage.Account) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || !bytes.Equal(got.KDF, want.KDF) ||
		!bytes.Equal(got.Verifier, want.Verifier) || got.Epoch != want.Epoch ||
		!bytes.Equal(got.Document, want.Document) || !got.Created.Equal(want.Created) ||
		got.Disabled != want.Disabled || got.TOTPSecret != want.TOTPSecret || got.TOTPEnabled != want.TOTPEnabled {
		t.Fatalf("account %s: got epoch %d created %v disabled %t totp %t, want epoch %d created %v disabled %t totp %t (or bytes differ)",
			want.ID, got.Epoch, got.Created, got.Disabled, got.TOTPEnabled,
			want.Epoch, want.Created, want.Disabled, want.TOTPEnabled)
	}
}

func checkDevice(t *testing.T, got, want storage.Device) {
	t.Helper()
	if got.Account != want.Account || got.ID != want.ID || got.Platform != want.Platform ||
		!got.Created.Equal(want.Created) || !got.LastSeen.Equal(want.LastSeen) || !got.Revoked.Equal(want.Revoked) {
		t.Fatalf("device %s: got %+v, want %+v", want.ID, got, want)
	}
}

// race runs fn(i) for i in [0, n) at once and waits for all.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testSecret(t *testing.T, s storage.Store) {
	ctx := t.Context()
	got := make([][]byte, 20)
	errs := make([]error, 20)
	race(20, func(i int) { got[i], errs[i] = s.Secret(ctx) })
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("Secret: %v", errs[i])
		}
		if len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("Secret: call %d returned a different or wrong-sized value (%d bytes)", i, len(got[i]))
		}
	}
	if bytes.Equal(got[0], make([]byte, 32)) {
		t.Fatal("Secret: all zero")
	}
	again, err := s.Secret(ctx)
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Fatalf("Secret: changed on a later call (err %v)", err)
	}
}

func testCreateAccount(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, d := newAccount("alice")
	a.Epoch = 0 // CreateAccount sets epoch 1
	if err := s.CreateAccount(ctx, a, d); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	a.Epoch = 1
	got, err := s.AccountByID(ctx, a.ID)
	if err != nil {
		t.Fatalf("AccountByID: %v", err)
	}
	checkAccount(t, got, a)
	got, err = s.AccountByEmail(ctx, a.Email)
	if err != nil {
		t.Fatalf("AccountByEmail: %v", err)
	}
	checkAccount(t, got, a)
	gd, err := s.Device(ctx, a.ID, d.ID)
	if err != nil {
		t.Fatalf("Device: %v", err)
	}
	checkDevice(t, gd, d)

	// The same id, or the same address, is taken; a refused account leaves
	// no device behind.
	b, bd := newAccount("bob")
	b.ID = a.ID
	wantErr(t, "CreateAccount with a taken id", s.CreateAccount(ctx, b, bd), storage.ErrExists)
	b, bd = newAccount("bob")
	b.Email = a.Email
	wantErr(t, "CreateAccount with a taken e-mail", s.CreateAccount(ctx, b, bd), storage.ErrExists)
	_, err = s.AccountByID(ctx, b.ID)
	wantErr(t, "AccountByID of a refused account", err, storage.ErrNotFound)
	_, err = s.Device(ctx, b.ID, bd.ID)
	wantErr(t, "Device of a refused account", err, storage.ErrNotFound)

	// Racing registrations of one address: exactly one wins.
	errs := make([]error, 10)
	race(10, func(i int) {
		c, cd := newAccount(fmt.Sprintf("carol%d", i))
		c.Email = "carol@example.com"
		errs[i] = s.CreateAccount(ctx, c, cd)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("racing CreateAccount: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("racing CreateAccount: %d winners, want 1", wins)
	}

	_, err = s.AccountByID(ctx, id("nobody"))
	wantErr(t, "AccountByID of an unknown id", err, storage.ErrNotFound)
	_, err = s.AccountByEmail(ctx, "nobody@example.com")
	wantErr(t, "AccountByEmail of an unknown address", err, storage.ErrNotFound)
}

func testUpdateDocument(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	doc2 := fill("document 2", 500)
	epoch, err := s.UpdateDocument(ctx, a.ID, 1, doc2, nil)
	if err != nil || epoch != 2 {
		t.Fatalf("UpdateDocument(base 1) = %d, %v; want 2, nil", epoch, err)
	}
	a.Epoch, a.Document = 2, doc2
	got, _ := s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)

	_, err = s.UpdateDocument(ctx, a.ID, 1, fill("document stale", 500), nil)
	wantErr(t, "UpdateDocument with an old base", err, storage.ErrStale)
	_, err = s.UpdateDocument(ctx, a.ID, 3, fill("document future", 500), nil)
	wantErr(t, "UpdateDocument with a future base", err, storage.ErrStale)
	got, _ = s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)

	// Credentials change with the document, in one step.
	cred := &storage.Credentials{KDF: fill("kdf 3", 80), Verifier: fill("verifier 3", 48)}
	doc3 := fill("document 3", 400)
	if epoch, err = s.UpdateDocument(ctx, a.ID, 2, doc3, cred); err != nil || epoch != 3 {
		t.Fatalf("UpdateDocument(base 2, credentials) = %d, %v; want 3, nil", epoch, err)
	}
	a.Epoch, a.Document, a.KDF, a.Verifier = 3, doc3, cred.KDF, cred.Verifier
	got, _ = s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)
	// A stale update with credentials changes nothing.
	_, err = s.UpdateDocument(ctx, a.ID, 2, fill("document x", 10), &storage.Credentials{KDF: fill("kdf x", 80), Verifier: fill("v x", 48)})
	wantErr(t, "UpdateDocument(stale, credentials)", err, storage.ErrStale)
	got, _ = s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)

	// Racing updates from one base: exactly one wins.
	errs := make([]error, 10)
	race(10, func(i int) {
		_, errs[i] = s.UpdateDocument(ctx, a.ID, 3, fill(fmt.Sprintf("document race %d", i), 100), nil)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrStale):
			t.Fatalf("racing UpdateDocument: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("racing UpdateDocument: %d winners, want 1", wins)
	}
	if got, _ = s.AccountByID(ctx, a.ID); got.Epoch != 4 {
		t.Fatalf("after racing updates: epoch %d, want 4", got.Epoch)
	}

	_, err = s.UpdateDocument(ctx, id("nobody"), 1, doc2, nil)
	wantErr(t, "UpdateDocument of an unknown account", err, storage.ErrNotFound)
}

func recoveryHashes(tag string, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fill(fmt.Sprintf("recovery %s %d", tag, i), 32))
	}
	return out
}

func testTOTP(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	if err := s.SetTOTP(ctx, a.ID, secret, false, nil); err != nil {
		t.Fatalf("SetTOTP(pending): %v", err)
	}
	a.TOTPSecret = secret
	got, _ := s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)

	codes := recoveryHashes("a", 8)
	if err := s.SetTOTP(ctx, a.ID, secret, true, codes); err != nil {
		t.Fatalf("SetTOTP(enabled): %v", err)
	}
	a.TOTPEnabled = true
	got, _ = s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)

	use := func(h []byte, want bool) {
		t.Helper()
		ok, err := s.UseRecoveryCode(ctx, a.ID, h)
		if err != nil || ok != want {
			t.Fatalf("UseRecoveryCode = %t, %v; want %t", ok, err, want)
		}
	}
	use(codes[0], true)
	use(codes[0], false) // once only
	use(fill("not a code", 32), false)
	// Codes belong to their account.
	b, _ := mustCreate(t, s, "bob")
	if ok, err := s.UseRecoveryCode(ctx, b.ID, codes[1]); ok || err != nil {
		t.Fatalf("UseRecoveryCode of another account's code = %t, %v; want false", ok, err)
	}

	// New codes replace the old ones.
	fresh := recoveryHashes("b", 8)
	if err := s.SetTOTP(ctx, a.ID, secret, true, fresh); err != nil {
		t.Fatalf("SetTOTP(new codes): %v", err)
	}
	use(codes[1], false)
	use(fresh[1], true)

	// Disabling clears the secret and the codes.
	if err := s.SetTOTP(ctx, a.ID, "", false, nil); err != nil {
		t.Fatalf("SetTOTP(clear): %v", err)
	}
	a.TOTPSecret, a.TOTPEnabled = "", false
	got, _ = s.AccountByID(ctx, a.ID)
	checkAccount(t, got, a)
	use(fresh[2], false)

	wantErr(t, "SetTOTP of an unknown account", s.SetTOTP(ctx, id("nobody"), secret, true, codes), storage.ErrNotFound)
}

func testRecoveryCodeRace(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	codes := recoveryHashes("race", 4)
	if err := s.SetTOTP(ctx, a.ID, "JBSWY3DPEHPK3PXP", true, codes); err != nil {
		t.Fatalf("SetTOTP: %v", err)
	}
	oks := make([]bool, 20)
	errs := make([]error, 20)
	race(20, func(i int) { oks[i], errs[i] = s.UseRecoveryCode(ctx, a.ID, codes[2]) })
	wins := 0
	for i := range oks {
		if errs[i] != nil {
			t.Fatalf("racing UseRecoveryCode: %v", errs[i])
		}
		if oks[i] {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("racing UseRecoveryCode: the code worked %d times, want once", wins)
	}
}

func testDisabled(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	for _, v := range []bool{true, true, false} {
		if err := s.SetDisabled(ctx, a.ID, v); err != nil {
			t.Fatalf("SetDisabled(%t): %v", v, err)
		}
		a.Disabled = v
		got, _ := s.AccountByID(ctx, a.ID)
		checkAccount(t, got, a)
	}
	wantErr(t, "SetDisabled of an unknown account", s.SetDisabled(ctx, id("nobody"), true), storage.ErrNotFound)
}

func session(name, kind string, account, device string, expires time.Time, pair []byte) storage.Session {
	return storage.Session{
		Hash:    fill("session "+name, 32),
		Kind:    kind,
		Account: account,
		Device:  device,
		Created: t0,
		Expires: expires,
		Pair:    pair,
	}
}

func checkSession(t *testing.T, s storage.Store, ss storage.Session, now time.Time, live bool) {
	t.Helper()
	got, err := s.Session(t.Context(), ss.Hash, now)
	if !live {
		wantErr(t, "Session", err, storage.ErrNotFound)
		return
	}
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if !bytes.Equal(got.Hash, ss.Hash) || got.Kind != ss.Kind || got.Account != ss.Account || got.Device != ss.Device ||
		!got.Created.Equal(ss.Created) || !got.Expires.Equal(ss.Expires) || !bytes.Equal(got.Pair, ss.Pair) {
		t.Fatalf("Session: got kind %q account %q device %q created %v expires %v, want kind %q account %q device %q created %v expires %v (or bytes differ)",
			got.Kind, got.Account, got.Device, got.Created, got.Expires, ss.Kind, ss.Account, ss.Device, ss.Created, ss.Expires)
	}
}

func testDevices(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, d1 := mustCreate(t, s, "alice")
	d2 := storage.Device{Account: a.ID, ID: id("device 2"), Platform: "darwin/arm64", Created: at(time.Hour), LastSeen: at(time.Hour)}
	if err := s.UpsertDevice(ctx, d2); err != nil {
		t.Fatalf("UpsertDevice(new): %v", err)
	}
	// An update changes the platform and LastSeen, not Created.
	upd := d2
	upd.Platform, upd.Created, upd.LastSeen = "darwin/amd64", at(5*time.Hour), at(2*time.Hour)
	if err := s.UpsertDevice(ctx, upd); err != nil {
		t.Fatalf("UpsertDevice(update): %v", err)
	}
	d2.Platform, d2.LastSeen = upd.Platform, upd.LastSeen
	got, err := s.Device(ctx, a.ID, d2.ID)
	if err != nil {
		t.Fatalf("Device: %v", err)
	}
	checkDevice(t, got, d2)

	b, bd := mustCreate(t, s, "bob")
	list, err := s.Devices(ctx, a.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("Devices = %d devices, %v; want 2", len(list), err)
	}
	slices.SortFunc(list, func(x, y storage.Device) int { return x.Created.Compare(y.Created) })
	checkDevice(t, list[0], d1)
	checkDevice(t, list[1], d2)

	// Revoking a device ends its sessions only.
	s1 := session("a1", "access", a.ID, d1.ID, at(24*time.Hour), nil)
	s2 := session("a2", "access", a.ID, d2.ID, at(24*time.Hour), nil)
	s2r := session("a2r", "refresh", a.ID, d2.ID, at(48*time.Hour), nil)
	sb := session("b1", "access", b.ID, bd.ID, at(24*time.Hour), nil)
	for _, ss := range []storage.Session{s1, s2, s2r, sb} {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	if err := s.RevokeDevice(ctx, a.ID, d2.ID, at(3*time.Hour)); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	d2.Revoked = at(3 * time.Hour)
	got, _ = s.Device(ctx, a.ID, d2.ID)
	checkDevice(t, got, d2)
	checkSession(t, s, s1, at(time.Hour), true)
	checkSession(t, s, s2, at(time.Hour), false)
	checkSession(t, s, s2r, at(time.Hour), false)
	checkSession(t, s, sb, at(time.Hour), true)

	// A revoked device stays revoked when it shows up again.
	upd = d2
	upd.LastSeen, upd.Revoked = at(4*time.Hour), time.Time{}
	if err := s.UpsertDevice(ctx, upd); err != nil {
		t.Fatalf("UpsertDevice(revoked): %v", err)
	}
	got, _ = s.Device(ctx, a.ID, d2.ID)
	if got.Revoked.IsZero() {
		t.Fatal("UpsertDevice un-revoked a device")
	}
	got, _ = s.Device(ctx, a.ID, d1.ID)
	checkDevice(t, got, d1)

	// Devices are per account.
	if _, err := s.Device(ctx, b.ID, d1.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Device of another account: %v, want ErrNotFound", err)
	}
	wantErr(t, "RevokeDevice of another account's device", s.RevokeDevice(ctx, b.ID, d1.ID, at(time.Hour)), storage.ErrNotFound)
	checkSession(t, s, s1, at(time.Hour), true)
	_, err = s.Device(ctx, a.ID, id("no device"))
	wantErr(t, "Device unknown", err, storage.ErrNotFound)
	wantErr(t, "RevokeDevice unknown", s.RevokeDevice(ctx, a.ID, id("no device"), at(time.Hour)), storage.ErrNotFound)
	if list, err := s.Devices(ctx, id("nobody")); err != nil || len(list) != 0 {
		t.Fatalf("Devices of an unknown account = %d, %v; want none", len(list), err)
	}
}

func testSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, d := mustCreate(t, s, "alice")
	b, bd := mustCreate(t, s, "bob")
	exp := at(time.Hour)

	// Pair as a shared link id.
	link := fill("link 1", 16)
	acc1 := session("acc1", "access", a.ID, d.ID, exp, link)
	ref1 := session("ref1", "refresh", a.ID, d.ID, at(30*24*time.Hour), link)
	// Pair as the other token's hash.
	acc2 := session("acc2", "access", a.ID, d.ID, exp, nil)
	ref2 := session("ref2", "refresh", a.ID, d.ID, at(30*24*time.Hour), acc2.Hash)
	acc2.Pair = ref2.Hash
	// Unpaired, and another account's.
	lone := session("lone", "access", a.ID, d.ID, exp, nil)
	other := session("other", "access", b.ID, bd.ID, exp, fill("link 2", 16))
	all := []storage.Session{acc1, ref1, acc2, ref2, lone, other}
	for _, ss := range all {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatalf("CreateSession(%s): %v", ss.Kind, err)
		}
	}
	for _, ss := range all {
		checkSession(t, s, ss, t0, true)
	}
	// Expiry: a session is valid strictly before Expires.
	checkSession(t, s, acc1, exp.Add(-time.Microsecond), true)
	checkSession(t, s, acc1, exp, false)
	checkSession(t, s, acc1, exp.Add(time.Hour), false)
	checkSession(t, s, ref1, exp.Add(time.Hour), true)
	_, err := s.Session(ctx, fill("no such token", 32), t0)
	wantErr(t, "Session unknown", err, storage.ErrNotFound)

	// Deleting either side of a pair deletes both.
	if ok, err := s.DeleteSession(ctx, acc1.Hash); err != nil || !ok {
		t.Fatalf("DeleteSession: %v, %v", ok, err)
	}
	if ok, err := s.DeleteSession(ctx, acc1.Hash); err != nil || ok {
		t.Fatalf("DeleteSession again: %v, %v; want false", ok, err)
	}
	checkSession(t, s, acc1, t0, false)
	checkSession(t, s, ref1, t0, false)
	if ok, err := s.DeleteSession(ctx, ref2.Hash); err != nil || !ok {
		t.Fatalf("DeleteSession: %v, %v", ok, err)
	}
	checkSession(t, s, acc2, t0, false)
	checkSession(t, s, ref2, t0, false)
	checkSession(t, s, lone, t0, true)
	checkSession(t, s, other, t0, true)
	if ok, err := s.DeleteSession(ctx, fill("no such token", 32)); err != nil || ok {
		t.Fatalf("DeleteSession of an unknown token: %v, %v", ok, err)
	}

	// Racing deletions of one token (two refreshes with it): exactly one
	// reports it deleted.
	racer := session("racer", "refresh", a.ID, d.ID, exp, nil)
	if err := s.CreateSession(ctx, racer); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	deleted := make([]bool, 10)
	race(10, func(i int) {
		var err error
		if deleted[i], err = s.DeleteSession(ctx, racer.Hash); err != nil {
			t.Errorf("racing DeleteSession: %v", err)
		}
	})
	if n := len(slices.DeleteFunc(deleted, func(b bool) bool { return !b })); n != 1 {
		t.Fatalf("racing DeleteSession: %d reported the deletion, want 1", n)
	}

	// DeleteSessions ends every session of the account, on every device.
	d2 := storage.Device{Account: a.ID, ID: id("device 2"), Platform: "linux/arm64", Created: t0, LastSeen: t0}
	if err := s.UpsertDevice(ctx, d2); err != nil {
		t.Fatalf("UpsertDevice: %v", err)
	}
	onD2 := session("on d2", "access", a.ID, d2.ID, exp, nil)
	if err := s.CreateSession(ctx, onD2); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := s.DeleteSessions(ctx, a.ID); err != nil {
		t.Fatalf("DeleteSessions: %v", err)
	}
	checkSession(t, s, lone, t0, false)
	checkSession(t, s, onD2, t0, false)
	checkSession(t, s, other, t0, true)
}

func testLogins(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, d := mustCreate(t, s, "alice")
	b, bd := mustCreate(t, s, "bob")
	var want []storage.LoginEvent
	for i := range 6 {
		e := storage.LoginEvent{
			Account: a.ID,
			Time:    at(time.Duration(i) * time.Minute),
			Device:  d.ID,
			Address: fmt.Sprintf("192.0.2.%d", i+1),
			OK:      i%2 == 0,
		}
		if !e.OK {
			e.Reason = "bad login key"
		}
		want = append(want, e)
	}
	// Recorded out of order: the history is by time.
	for _, i := range []int{0, 3, 1, 5, 2, 4} {
		if err := s.RecordLogin(ctx, want[i]); err != nil {
			t.Fatalf("RecordLogin: %v", err)
		}
	}
	if err := s.RecordLogin(ctx, storage.LoginEvent{Account: b.ID, Time: at(time.Hour), Device: bd.ID, Address: "198.51.100.7", OK: true}); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
	slices.Reverse(want)
	check := func(limit, n int) {
		t.Helper()
		got, err := s.Logins(ctx, a.ID, limit)
		if err != nil {
			t.Fatalf("Logins(%d): %v", limit, err)
		}
		if len(got) != n {
			t.Fatalf("Logins(%d): %d events, want %d", limit, len(got), n)
		}
		for i := range got {
			w := want[i]
			if g := got[i]; g.Account != w.Account || !g.Time.Equal(w.Time) || g.Device != w.Device ||
				g.Address != w.Address || g.OK != w.OK || g.Reason != w.Reason {
				t.Fatalf("Logins(%d)[%d] = %+v, want %+v", limit, i, g, w)
			}
		}
	}
	check(3, 3)
	check(100, 6)
	if got, err := s.Logins(ctx, id("nobody"), 10); err != nil || len(got) != 0 {
		t.Fatalf("Logins of an unknown account = %d, %v; want none", len(got), err)
	}
}

func backoff(n int) time.Duration { return time.Duration(n) * time.Second }

func testThrottle(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const key = "acct:somebody"
	if th, err := s.Throttle(ctx, key); err != nil || th.Failures != 0 || !th.Until.IsZero() {
		t.Fatalf("Throttle of a fresh key = %+v, %v; want zero", th, err)
	}
	for n := 1; n <= 3; n++ {
		now := at(time.Duration(n) * time.Minute)
		th, err := s.Fail(ctx, key, now, backoff)
		if err != nil || th.Failures != n || !th.Until.Equal(now.Add(backoff(n))) {
			t.Fatalf("Fail #%d = %+v, %v; want %d failures until %v", n, th, err, n, now.Add(backoff(n)))
		}
		got, err := s.Throttle(ctx, key)
		if err != nil || got.Failures != th.Failures || !got.Until.Equal(th.Until) {
			t.Fatalf("Throttle after Fail #%d = %+v, %v; want %+v", n, got, err, th)
		}
	}
	// Keys are independent.
	if th, err := s.Fail(ctx, "addr:192.0.2.1", t0, backoff); err != nil || th.Failures != 1 {
		t.Fatalf("Fail(other key) = %+v, %v; want 1 failure", th, err)
	}
	if err := s.ClearThrottle(ctx, key); err != nil {
		t.Fatalf("ClearThrottle: %v", err)
	}
	if th, err := s.Throttle(ctx, key); err != nil || th.Failures != 0 {
		t.Fatalf("Throttle after ClearThrottle = %+v, %v; want zero", th, err)
	}
	if th, _ := s.Throttle(ctx, "addr:192.0.2.1"); th.Failures != 1 {
		t.Fatalf("ClearThrottle cleared another key")
	}
	if th, err := s.Fail(ctx, key, t0, backoff); err != nil || th.Failures != 1 {
		t.Fatalf("Fail after ClearThrottle = %+v, %v; want 1 failure", th, err)
	}
}

// failRace has n goroutines call Fail on one key, spread over stores, and
// checks that every increment counted once.
func failRace(t *testing.T, n int, stores ...storage.Store) {
	ctx := t.Context()
	const key = "addr:203.0.113.9"
	got := make([]int, n)
	errs := make([]error, n)
	race(n, func(i int) {
		var th storage.Throttle
		th, errs[i] = stores[i%len(stores)].Fail(ctx, key, t0, backoff)
		got[i] = th.Failures
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("racing Fail: %v", err)
		}
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("racing Fail returned failure counts %v, want 1..%d each once", got, n)
		}
	}
	th, err := stores[0].Throttle(ctx, key)
	if err != nil || th.Failures != n {
		t.Fatalf("after %d racing Fails: %+v, %v", n, th, err)
	}
}

func testThrottleRace(t *testing.T, s storage.Store) { failRace(t, 50, s) }

func testVaults(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	b, _ := mustCreate(t, s, "bob")
	v1 := mustVault(t, s, a.ID, "one")
	v2 := mustVault(t, s, a.ID, "two")
	vb := mustVault(t, s, b.ID, "bob's")

	got, err := s.Vault(ctx, v1)
	if err != nil {
		t.Fatalf("Vault: %v", err)
	}
	if got.Vault != v1 || got.Account != a.ID || !bytes.Equal(got.Record, fill("record one", 120)) ||
		got.Head != 0 || !bytes.Equal(got.HeadHash, genesis(v1)) {
		t.Fatalf("Vault = %+v; want head 0 at genesis", got)
	}

	mustAppend(t, s, v1, 0, entry(1, opPut, id("item"), 1, "x"))
	// Replacing the record keeps the log.
	rec := fill("record one, renamed", 150)
	if err := s.PutVault(ctx, a.ID, v1, rec, genesis("ignored")); err != nil {
		t.Fatalf("PutVault(replace): %v", err)
	}
	got, _ = s.Vault(ctx, v1)
	if !bytes.Equal(got.Record, rec) || got.Head != 1 || !bytes.Equal(got.HeadHash, headHash(v1, 1)) {
		t.Fatalf("after PutVault(replace): head %d, record or head hash wrong", got.Head)
	}
	// Another account's vault id is taken.
	wantErr(t, "PutVault on another account's vault", s.PutVault(ctx, b.ID, v1, fill("evil", 10), genesis(v1)), storage.ErrExists)
	got, _ = s.Vault(ctx, v1)
	if got.Account != a.ID || !bytes.Equal(got.Record, rec) {
		t.Fatal("PutVault by another account changed the vault")
	}

	list, err := s.Vaults(ctx, a.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("Vaults = %d, %v; want 2", len(list), err)
	}
	names := []string{list[0].Vault, list[1].Vault}
	slices.Sort(names)
	want := []string{v1, v2}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("Vaults = %v, want %v", names, want)
	}
	if list, _ := s.Vaults(ctx, b.ID); len(list) != 1 || list[0].Vault != vb {
		t.Fatalf("Vaults(bob) = %+v", list)
	}
	if list, err := s.Vaults(ctx, id("nobody")); err != nil || len(list) != 0 {
		t.Fatalf("Vaults of an unknown account = %d, %v; want none", len(list), err)
	}
	_, err = s.Vault(ctx, id("no vault"))
	wantErr(t, "Vault unknown", err, storage.ErrNotFound)
}

func testAppend(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	x, y := id("item x"), id("item y")
	first := []storage.Entry{entry(1, opPut, x, 1, ""), entry(2, opPut, y, 1, ""), entry(3, opPut, x, 2, "")}
	mustAppend(t, s, v, 0, first...)
	got, _ := s.Vault(ctx, v)
	if got.Head != 3 || !bytes.Equal(got.HeadHash, headHash(v, 3)) {
		t.Fatalf("after Append: head %d, want 3 with the given hash", got.Head)
	}
	checkEntries(t, entries(t, s, v, 0, 100), first)

	// A stale base, behind or ahead, changes nothing.
	for _, base := range []uint64{0, 2, 4, 10} {
		err := s.Append(ctx, v, base, []storage.Entry{entry(base+1, opPut, x, 9, "stale")}, headHash(v, 99))
		wantErr(t, fmt.Sprintf("Append(base %d at head 3)", base), err, storage.ErrStale)
	}
	got, _ = s.Vault(ctx, v)
	if got.Head != 3 || !bytes.Equal(got.HeadHash, headHash(v, 3)) {
		t.Fatalf("a stale Append moved the head to %d", got.Head)
	}
	checkEntries(t, entries(t, s, v, 0, 100), first)

	// Entries must continue from base.
	if err := s.Append(ctx, v, 3, []storage.Entry{entry(5, opPut, x, 3, "gap")}, headHash(v, 5)); err == nil {
		t.Fatal("Append accepted an entry that skips a sequence number")
	}
	if got, _ = s.Vault(ctx, v); got.Head != 3 {
		t.Fatalf("a refused Append moved the head to %d", got.Head)
	}

	mustAppend(t, s, v, 3, entry(4, opPut, y, 2, ""))
	checkEntries(t, entries(t, s, v, 0, 100), append(first, entry(4, opPut, y, 2, "")))

	err := s.Append(ctx, id("no vault"), 0, []storage.Entry{entry(1, opPut, x, 1, "")}, headHash(v, 1))
	wantErr(t, "Append to an unknown vault", err, storage.ErrNotFound)

	// Racing appends from one base: exactly one wins; the log has its
	// entries and no other's.
	const n = 20
	errs := make([]error, n)
	race(n, func(i int) {
		tag := fmt.Sprintf("race %d", i)
		errs[i] = s.Append(ctx, v, 4, []storage.Entry{entry(5, opPut, x, 3, tag), entry(6, opPut, y, 3, tag)}, headHash(v, 6))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racing Append: both %d and %d won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrStale):
			t.Fatalf("racing Append: %v", err)
		}
	}
	if winner < 0 {
		t.Fatal("racing Append: nobody won")
	}
	tag := fmt.Sprintf("race %d", winner)
	checkEntries(t, entries(t, s, v, 4, 100), []storage.Entry{entry(5, opPut, x, 3, tag), entry(6, opPut, y, 3, tag)})
	if got, _ = s.Vault(ctx, v); got.Head != 6 {
		t.Fatalf("after racing Append: head %d, want 6", got.Head)
	}
}

// appendRace has writers goroutines, spread over stores, each append
// perEach entries to one vault, one at a time from the head they last
// read, retrying on ErrStale; then checks the log has every entry once,
// in an unbroken sequence.
func appendRace(t *testing.T, writers, perEach int, stores ...storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, stores[0], "alice")
	v := mustVault(t, stores[0], a.ID, "raced")
	errs := make([]error, writers)
	race(writers, func(w int) {
		s := stores[w%len(stores)]
		for k := 0; k < perEach; {
			row, err := s.Vault(ctx, v)
			if err != nil {
				errs[w] = err
				return
			}
			e := entry(row.Head+1, opPut, id(fmt.Sprintf("writer %d", w)), uint64(k+1), fmt.Sprintf("w%d k%d", w, k))
			err = s.Append(ctx, v, row.Head, []storage.Entry{e}, headHash(v, e.Seq))
			switch {
			case err == nil:
				k++
			case !errors.Is(err, storage.ErrStale):
				errs[w] = err
				return
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("racing appends: %v", err)
		}
	}
	total := writers * perEach
	row, err := stores[len(stores)-1].Vault(ctx, v)
	if err != nil || row.Head != uint64(total) || !bytes.Equal(row.HeadHash, headHash(v, uint64(total))) {
		t.Fatalf("after racing appends: head %d, %v; want %d", row.Head, err, total)
	}
	got := entries(t, stores[len(stores)-1], v, 0, total+10)
	if len(got) != total {
		t.Fatalf("after racing appends: %d entries, want %d", len(got), total)
	}
	next := make(map[string]uint64) // item → next revision expected
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("after racing appends: entry %d has seq %d", i, e.Seq)
		}
		next[e.Item]++
		if e.Revision != next[e.Item] {
			t.Fatalf("after racing appends: item %s revision %d out of order or duplicated", e.Item, e.Revision)
		}
		w := -1
		for cand := range writers {
			if id(fmt.Sprintf("writer %d", cand)) == e.Item {
				w = cand
			}
		}
		if !sameEntry(e, entry(e.Seq, opPut, e.Item, e.Revision, fmt.Sprintf("w%d k%d", w, e.Revision-1))) {
			t.Fatalf("after racing appends: entry %d does not hold what its writer appended", e.Seq)
		}
	}
	if len(next) != writers {
		t.Fatalf("after racing appends: %d writers' entries, want %d", len(next), writers)
	}
}

func testAppendRace(t *testing.T, s storage.Store) { appendRace(t, 10, 8, s) }

func testEntries(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	other := mustVault(t, s, a.ID, "two")
	var all []storage.Entry
	for i := range 25 {
		all = append(all, entry(uint64(i+1), opPut, id(fmt.Sprintf("item %d", i%7)), uint64(i/7+1), ""))
	}
	mustAppend(t, s, v, 0, all[:10]...)
	mustAppend(t, s, v, 10, all[10:]...)
	mustAppend(t, s, other, 0, entry(1, opPut, id("elsewhere"), 1, "other vault"))

	checkEntries(t, entries(t, s, v, 0, 1000), all)
	checkEntries(t, entries(t, s, v, 0, 5), all[:5])
	checkEntries(t, entries(t, s, v, 5, 5), all[5:10])
	checkEntries(t, entries(t, s, v, 20, 100), all[20:])
	checkEntries(t, entries(t, s, v, 24, 100), all[24:])
	checkEntries(t, entries(t, s, v, 25, 100), nil)
	checkEntries(t, entries(t, s, v, 1000, 100), nil)
	// Paging through gives everything once.
	var paged []storage.Entry
	for since := uint64(0); ; {
		page := entries(t, s, v, since, 7)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		since = page[len(page)-1].Seq
	}
	checkEntries(t, paged, all)

	// fn's error stops the walk and comes back.
	stop := errors.New("enough")
	calls := 0
	err := s.Entries(ctx, v, 0, 100, func(storage.Entry) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Entries with a failing fn: %v after %d calls; want the fn's error after 3", err, calls)
	}
	err = s.Entries(ctx, id("no vault"), 0, 100, func(storage.Entry) error { return nil })
	wantErr(t, "Entries of an unknown vault", err, storage.ErrNotFound)
}

func testItemStates(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	x, y, z, never := id("item x"), id("item y"), id("item z"), id("never")
	check := func(want map[string]storage.ItemState) {
		t.Helper()
		got, err := s.ItemStates(ctx, v, []string{x, y, z, never})
		if err != nil {
			t.Fatalf("ItemStates: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("ItemStates = %v, want %v", got, want)
		}
		for k, w := range want {
			if got[k] != w {
				t.Fatalf("ItemStates = %v, want %v", got, want)
			}
		}
	}
	check(map[string]storage.ItemState{})
	mustAppend(t, s, v, 0, entry(1, opPut, x, 1, ""), entry(2, opPut, y, 1, ""), entry(3, opPut, x, 2, ""))
	check(map[string]storage.ItemState{x: {Revision: 2}, y: {Revision: 1}})
	mustAppend(t, s, v, 3, entry(4, opPurge, y, 2, ""), entry(5, opPut, z, 1, ""))
	check(map[string]storage.ItemState{x: {Revision: 2}, y: {Revision: 2, Purged: true}, z: {Revision: 1}})

	// Many ids at once.
	var many []string
	for i := range 1500 {
		many = append(many, id(fmt.Sprintf("absent %d", i)))
	}
	many = append(many, z)
	got, err := s.ItemStates(ctx, v, many)
	if err != nil || len(got) != 1 || got[z] != (storage.ItemState{Revision: 1}) {
		t.Fatalf("ItemStates(1501 ids) = %v, %v", got, err)
	}
	// States are per vault.
	other := mustVault(t, s, a.ID, "two")
	if got, err := s.ItemStates(ctx, other, []string{x, y, z}); err != nil || len(got) != 0 {
		t.Fatalf("ItemStates of another vault = %v, %v; want none", got, err)
	}
	_, err = s.ItemStates(ctx, id("no vault"), []string{x})
	wantErr(t, "ItemStates of an unknown vault", err, storage.ErrNotFound)
}

// chunks yields the given chunks from one reused buffer (as a network
// reader would), then fail if it is not nil.
func chunks(data [][]byte, fail error) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		var buf []byte
		for _, c := range data {
			buf = append(buf[:0], c...)
			if !yield(buf, nil) {
				return
			}
		}
		if fail != nil {
			yield(nil, fail)
		}
	}
}

func blobData(tag string, n, size int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fill(fmt.Sprintf("chunk %s %d", tag, i), size))
	}
	return out
}

func readBlob(t *testing.T, s storage.Store, vault, item, blob string) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	err := s.Blob(t.Context(), vault, item, blob, func(idx int, chunk []byte) error {
		if idx != len(out) {
			t.Fatalf("Blob: chunk %d came as number %d", idx, len(out))
		}
		out = append(out, bytes.Clone(chunk))
		return nil
	})
	return out, err
}

func checkBlob(t *testing.T, s storage.Store, vault, item, blob string, want [][]byte) {
	t.Helper()
	got, err := readBlob(t, s, vault, item, blob)
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Blob: %d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("Blob: chunk %d differs", i)
		}
	}
}

func noBlob(t *testing.T, s storage.Store, vault, item, blob string) {
	t.Helper()
	_, err := readBlob(t, s, vault, item, blob)
	wantErr(t, "Blob", err, storage.ErrNotFound)
}

func testBlobs(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	item, b1, b2 := id("item"), id("blob 1"), id("blob 2")
	noBlob(t, s, v, item, b1)

	one := blobData("one", 3, 1000)
	if err := s.PutBlob(ctx, v, item, b1, chunks(one, nil)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	checkBlob(t, s, v, item, b1, one)
	noBlob(t, s, v, item, b2)
	noBlob(t, s, v, id("other item"), b1)

	// A replacement replaces all of it, even when shorter.
	two := blobData("two", 2, 700)
	if err := s.PutBlob(ctx, v, item, b1, chunks(two, nil)); err != nil {
		t.Fatalf("PutBlob(replace): %v", err)
	}
	checkBlob(t, s, v, item, b1, two)

	// Many chunks keep their order, also past any internal batching.
	many := blobData("many", 300, 4096)
	if err := s.PutBlob(ctx, v, item, b2, chunks(many, nil)); err != nil {
		t.Fatalf("PutBlob(300 chunks): %v", err)
	}
	checkBlob(t, s, v, item, b2, many)
	checkBlob(t, s, v, item, b1, two)

	// fn's error stops the read and comes back.
	stop := errors.New("client went away")
	calls := 0
	err := s.Blob(ctx, v, item, b2, func(int, []byte) error {
		if calls++; calls == 20 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 20 {
		t.Fatalf("Blob with a failing fn: %v after %d calls; want the fn's error after 20", err, calls)
	}

	err = s.PutBlob(ctx, id("no vault"), item, b1, chunks(one, nil))
	wantErr(t, "PutBlob to an unknown vault", err, storage.ErrNotFound)
	noBlob(t, s, id("no vault"), item, b1)
}

func testBlobFailure(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	item, b1, b2 := id("item"), id("blob 1"), id("blob 2")
	old := blobData("old", 4, 500)
	if err := s.PutBlob(ctx, v, item, b1, chunks(old, nil)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	broken := errors.New("connection reset")
	for _, n := range []int{0, 1, 3, 200} {
		// A failed replacement leaves the old blob whole.
		err := s.PutBlob(ctx, v, item, b1, chunks(blobData(fmt.Sprintf("new %d", n), n, 4096), broken))
		if !errors.Is(err, broken) {
			t.Fatalf("PutBlob failing after %d chunks: %v, want the reader's error", n, err)
		}
		checkBlob(t, s, v, item, b1, old)
		// A failed first upload leaves nothing.
		err = s.PutBlob(ctx, v, item, b2, chunks(blobData(fmt.Sprintf("first %d", n), n, 4096), broken))
		if !errors.Is(err, broken) {
			t.Fatalf("PutBlob failing after %d chunks: %v, want the reader's error", n, err)
		}
		noBlob(t, s, v, item, b2)
	}
	// A canceled context is a failure too.
	cctx, cancel := context.WithCancel(ctx)
	cancelling := func(yield func([]byte, error) bool) {
		for i, c := range blobData("cancel", 200, 4096) {
			if i == 100 {
				cancel()
			}
			if !yield(c, nil) {
				return
			}
		}
	}
	if err := s.PutBlob(cctx, v, item, b1, cancelling); err == nil {
		t.Fatal("PutBlob with a context canceled midway succeeded")
	}
	checkBlob(t, s, v, item, b1, old)
	// The store still works afterwards.
	fresh := blobData("fresh", 2, 100)
	if err := s.PutBlob(ctx, v, item, b2, chunks(fresh, nil)); err != nil {
		t.Fatalf("PutBlob after failures: %v", err)
	}
	checkBlob(t, s, v, item, b2, fresh)
	u, err := s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	want := int64(len(a.Document) + 120 + 4*500 + 2*100)
	if u.Bytes != want {
		t.Fatalf("Usage after failed uploads: %d bytes, want %d (failed uploads must not count)", u.Bytes, want)
	}
}

func testPurge(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, _ := mustCreate(t, s, "alice")
	v := mustVault(t, s, a.ID, "one")
	x, y, z := id("item x"), id("item y"), id("item z")
	log := []storage.Entry{
		entry(1, opPut, x, 1, ""),
		entry(2, opPut, y, 1, ""),
		entry(3, opPut, x, 2, ""),
	}
	mustAppend(t, s, v, 0, log...)
	bx, by := blobData("x", 2, 300), blobData("y", 2, 300)
	for _, b := range []string{id("blob 1"), id("blob 2")} {
		if err := s.PutBlob(ctx, v, x, b, chunks(bx, nil)); err != nil {
			t.Fatalf("PutBlob: %v", err)
		}
	}
	if err := s.PutBlob(ctx, v, y, id("blob 1"), chunks(by, nil)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}

	purge := entry(4, opPurge, x, 3, "")
	mustAppend(t, s, v, 3, purge)
	log[0].Payload, log[2].Payload = nil, nil
	log = append(log, purge)
	checkEntries(t, entries(t, s, v, 0, 100), log)
	noBlob(t, s, v, x, id("blob 1"))
	noBlob(t, s, v, x, id("blob 2"))
	checkBlob(t, s, v, y, id("blob 1"), by)

	// A put after the purge keeps its payload; a purge in the same append
	// as earlier puts clears them.
	batch := []storage.Entry{
		entry(5, opPut, x, 4, "after purge"),
		entry(6, opPut, z, 1, ""),
		entry(7, opPut, z, 2, ""),
		entry(8, opPurge, z, 3, ""),
	}
	mustAppend(t, s, v, 4, batch...)
	batch[1].Payload, batch[2].Payload = nil, nil
	log = append(log, batch...)
	checkEntries(t, entries(t, s, v, 0, 100), log)
}

func testUsage(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, d := mustCreate(t, s, "alice")
	b, _ := mustCreate(t, s, "bob")
	u, err := s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if u.Vaults != 0 || u.Entries != 0 || u.Bytes != int64(len(a.Document)) || u.Devices != 1 || !u.LastSeen.Equal(d.LastSeen) {
		t.Fatalf("Usage of a new account = %+v", u)
	}

	v1 := mustVault(t, s, a.ID, "one")
	v2 := mustVault(t, s, a.ID, "two")
	mustVault(t, s, b.ID, "bob's")
	x := id("item x")
	log := []storage.Entry{entry(1, opPut, x, 1, ""), entry(2, opPut, x, 2, ""), entry(3, opPut, id("y"), 1, "")}
	mustAppend(t, s, v1, 0, log...)
	mustAppend(t, s, v2, 0, entry(1, opPut, x, 1, "two"))
	if err := s.PutBlob(ctx, v1, x, id("blob"), chunks(blobData("b", 3, 1000), nil)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	later := at(7 * time.Hour)
	if err := s.UpsertDevice(ctx, storage.Device{Account: a.ID, ID: id("device 2"), Platform: "windows/amd64", Created: later, LastSeen: later}); err != nil {
		t.Fatalf("UpsertDevice: %v", err)
	}
	perEntry := int64(140 + 64 + 200)
	want := storage.Usage{
		Vaults:   2,
		Entries:  4,
		Bytes:    int64(len(a.Document)) + 2*120 + 4*perEntry + 3*1000,
		Devices:  2,
		LastSeen: later,
	}
	check := func(got, want storage.Usage) {
		t.Helper()
		if got.Vaults != want.Vaults || got.Entries != want.Entries || got.Bytes != want.Bytes ||
			got.Devices != want.Devices || !got.LastSeen.Equal(want.LastSeen) {
			t.Fatalf("Usage = %+v, want %+v", got, want)
		}
	}
	u, err = s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	check(u, want)

	// A purge frees its item's payloads and blobs.
	mustAppend(t, s, v1, 3, entry(4, opPurge, x, 3, ""))
	want.Entries++
	want.Bytes += 140 + 64 - 2*200 - 3*1000
	u, _ = s.Usage(ctx, a.ID)
	check(u, want)

	list, err := s.Accounts(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Accounts = %d, %v; want 2", len(list), err)
	}
	for _, sum := range list {
		switch sum.Account.ID {
		case a.ID:
			checkAccount(t, sum.Account, a)
			check(sum.Usage, want)
		case b.ID:
			checkAccount(t, sum.Account, b)
			check(sum.Usage, storage.Usage{Vaults: 1, Bytes: int64(len(b.Document)) + 120, Devices: 1, LastSeen: t0})
		default:
			t.Fatalf("Accounts lists unknown %q", sum.Account.ID)
		}
	}
	_, err = s.Usage(ctx, id("nobody"))
	wantErr(t, "Usage of an unknown account", err, storage.ErrNotFound)
}

func testDeleteAccount(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// Two accounts with one of everything; one is deleted, the other
	// must not notice.
	type world struct {
		a       storage.Account
		d       storage.Device
		v, item string
		sess    storage.Session
		code    []byte
	}
	build := func(name string) world {
		a, d := mustCreate(t, s, name)
		w := world{a: a, d: d, v: mustVault(t, s, a.ID, name), item: id("item " + name)}
		mustAppend(t, s, w.v, 0, entry(1, opPut, w.item, 1, name), entry(2, opPut, w.item, 2, name))
		if err := s.PutBlob(ctx, w.v, w.item, id("blob"), chunks(blobData(name, 2, 100), nil)); err != nil {
			t.Fatalf("PutBlob: %v", err)
		}
		w.sess = session(name, "access", a.ID, d.ID, at(time.Hour), nil)
		if err := s.CreateSession(ctx, w.sess); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		if err := s.RecordLogin(ctx, storage.LoginEvent{Account: a.ID, Time: t0, Device: d.ID, Address: "192.0.2.1", OK: true}); err != nil {
			t.Fatalf("RecordLogin: %v", err)
		}
		w.code = fill("code "+name, 32)
		if err := s.SetTOTP(ctx, a.ID, "JBSWY3DPEHPK3PXP", true, [][]byte{w.code, fill("spare "+name, 32)}); err != nil {
			t.Fatalf("SetTOTP: %v", err)
		}
		return w
	}
	gone, kept := build("alice"), build("bob")
	if err := s.DeleteAccount(ctx, gone.a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}

	_, err := s.AccountByID(ctx, gone.a.ID)
	wantErr(t, "AccountByID after delete", err, storage.ErrNotFound)
	_, err = s.AccountByEmail(ctx, gone.a.Email)
	wantErr(t, "AccountByEmail after delete", err, storage.ErrNotFound)
	_, err = s.Device(ctx, gone.a.ID, gone.d.ID)
	wantErr(t, "Device after delete", err, storage.ErrNotFound)
	if list, err := s.Devices(ctx, gone.a.ID); err != nil || len(list) != 0 {
		t.Fatalf("Devices after delete = %d, %v", len(list), err)
	}
	checkSession(t, s, gone.sess, t0, false)
	if list, err := s.Logins(ctx, gone.a.ID, 10); err != nil || len(list) != 0 {
		t.Fatalf("Logins after delete = %d, %v", len(list), err)
	}
	_, err = s.Vault(ctx, gone.v)
	wantErr(t, "Vault after delete", err, storage.ErrNotFound)
	if list, err := s.Vaults(ctx, gone.a.ID); err != nil || len(list) != 0 {
		t.Fatalf("Vaults after delete = %d, %v", len(list), err)
	}
	err = s.Entries(ctx, gone.v, 0, 10, func(storage.Entry) error { return nil })
	wantErr(t, "Entries after delete", err, storage.ErrNotFound)
	noBlob(t, s, gone.v, gone.item, id("blob"))
	if ok, err := s.UseRecoveryCode(ctx, gone.a.ID, gone.code); ok || err != nil {
		t.Fatalf("UseRecoveryCode after delete = %t, %v; want false", ok, err)
	}
	_, err = s.Usage(ctx, gone.a.ID)
	wantErr(t, "Usage after delete", err, storage.ErrNotFound)
	if list, _ := s.Accounts(ctx); len(list) != 1 || list[0].Account.ID != kept.a.ID {
		t.Fatalf("Accounts after delete: %d accounts", len(list))
	}

	// The other account is whole.
	got, err := s.AccountByID(ctx, kept.a.ID)
	if err != nil || !got.TOTPEnabled {
		t.Fatalf("AccountByID of the other account: %v", err)
	}
	checkSession(t, s, kept.sess, t0, true)
	checkBlob(t, s, kept.v, kept.item, id("blob"), blobData("bob", 2, 100))
	if e := entries(t, s, kept.v, 0, 10); len(e) != 2 {
		t.Fatalf("the other account's vault has %d entries, want 2", len(e))
	}
	if l, _ := s.Logins(ctx, kept.a.ID, 10); len(l) != 1 {
		t.Fatalf("the other account has %d logins, want 1", len(l))
	}
	if ok, err := s.UseRecoveryCode(ctx, kept.a.ID, kept.code); !ok || err != nil {
		t.Fatalf("UseRecoveryCode of the other account = %t, %v; want true", ok, err)
	}

	// The id, address and vault id are free again, and start empty.
	a, d := newAccount("alice")
	if err := s.CreateAccount(ctx, a, d); err != nil {
		t.Fatalf("CreateAccount after delete: %v", err)
	}
	if err := s.PutVault(ctx, a.ID, gone.v, fill("record", 10), genesis(gone.v)); err != nil {
		t.Fatalf("PutVault after delete: %v", err)
	}
	if e := entries(t, s, gone.v, 0, 10); len(e) != 0 {
		t.Fatalf("a re-created vault has %d old entries", len(e))
	}
	noBlob(t, s, gone.v, gone.item, id("blob"))
	if ok, _ := s.UseRecoveryCode(ctx, a.ID, fill("spare alice", 32)); ok {
		t.Fatal("a re-created account inherited a recovery code")
	}
	wantErr(t, "DeleteAccount of an unknown account", s.DeleteAccount(ctx, id("nobody")), storage.ErrNotFound)
}

func testSharedSecret(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	got := make([][]byte, 20)
	errs := make([]error, 20)
	stores := []storage.Store{a, b}
	race(20, func(i int) { got[i], errs[i] = stores[i%2].Secret(ctx) })
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("Secret: %v", errs[i])
		}
		if len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("Secret: the two stores disagree")
		}
	}
}

func testSharedCreateAccount(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	stores := []storage.Store{a, b}
	errs := make([]error, 10)
	race(10, func(i int) {
		c, cd := newAccount(fmt.Sprintf("carol%d", i))
		c.Email = "carol@example.com"
		errs[i] = stores[i%2].CreateAccount(ctx, c, cd)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("racing CreateAccount: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("racing CreateAccount on two stores: %d winners, want 1", wins)
	}
	got, err := b.AccountByEmail(ctx, "carol@example.com")
	if err != nil {
		t.Fatalf("AccountByEmail on the other store: %v", err)
	}
	if _, err := a.AccountByID(ctx, got.ID); err != nil {
		t.Fatalf("AccountByID: %v", err)
	}
}

func testSharedAppend(t *testing.T, a, b storage.Store) { appendRace(t, 10, 8, a, b) }

func testSharedThrottle(t *testing.T, a, b storage.Store) { failRace(t, 50, a, b) }

func testSharedRecoveryCode(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	acct, _ := mustCreate(t, a, "alice")
	codes := recoveryHashes("shared", 2)
	if err := a.SetTOTP(ctx, acct.ID, "JBSWY3DPEHPK3PXP", true, codes); err != nil {
		t.Fatalf("SetTOTP: %v", err)
	}
	stores := []storage.Store{a, b}
	oks := make([]bool, 20)
	errs := make([]error, 20)
	race(20, func(i int) { oks[i], errs[i] = stores[i%2].UseRecoveryCode(ctx, acct.ID, codes[0]) })
	wins := 0
	for i := range oks {
		if errs[i] != nil {
			t.Fatalf("racing UseRecoveryCode: %v", errs[i])
		}
		if oks[i] {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("racing UseRecoveryCode on two stores: the code worked %d times, want once", wins)
	}
}

func testUnknownAccount(t *testing.T, s storage.Store) {
	ctx := t.Context()
	nobody := id("nobody")
	wantErr(t, "UpsertDevice for an unknown account",
		s.UpsertDevice(ctx, storage.Device{Account: nobody, ID: id("device"), Platform: "linux/amd64", Created: t0, LastSeen: t0}),
		storage.ErrNotFound)
	wantErr(t, "CreateSession for an unknown account",
		s.CreateSession(ctx, session("nobody", "access", nobody, id("device"), at(time.Hour), nil)), storage.ErrNotFound)
	wantErr(t, "RecordLogin for an unknown account",
		s.RecordLogin(ctx, storage.LoginEvent{Account: nobody, Time: t0, Device: id("device"), Address: "192.0.2.1"}), storage.ErrNotFound)
	wantErr(t, "PutVault for an unknown account",
		s.PutVault(ctx, nobody, id("vault"), fill("record", 10), genesis(id("vault"))), storage.ErrNotFound)
	if ok, err := s.UseRecoveryCode(ctx, nobody, fill("code", 32)); ok || err != nil {
		t.Fatalf("UseRecoveryCode for an unknown account = %t, %v; want false, nil", ok, err)
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Accounts of an empty store = %d, %v", len(list), err)
	}
}
