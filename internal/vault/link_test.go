package vault

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/sign"
)

// newKey makes a device signing key and its encoding.
func newKey(t *testing.T) (*sign.PrivateKey, []byte) {
	t.Helper()
	key, err := sign.GenerateKey(testOptions().Rand)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.Public().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

// linkFrom runs the existing device's half of a link for a fresh key and
// returns the key with the bundle.
func linkFrom(t *testing.T, a *Vault) *LinkedDevice {
	t.Helper()
	key, pub := newKey(t)
	b, err := a.CertifyDevice(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	return &LinkedDevice{Key: key, Bundle: b}
}

func joinLinked(t *testing.T, r remote.Remote, l *LinkedDevice) (*Vault, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "home", "vault.db")
	v, err := Join(ctx, path, r, JoinRequest{Target: l.Bundle.Target, Password: []byte(syncPassword), SecretKey: l.Bundle.SecretKey, Linked: l}, testOptions())
	if err == nil {
		t.Cleanup(func() { v.Close() })
	}
	return v, err
}

func TestLinkedDeviceJoins(t *testing.T) {
	a, _, r := syncPair(t)
	l := linkFrom(t, a)
	// The linking device trusts the new key at once (for peers), before
	// any sync.
	trusted, err := a.TrustedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(trusted, func(d TrustedDevice) bool { return d.ID == l.Bundle.Device }) {
		t.Fatal("the certified device is not trusted by the device that certified it")
	}
	c, err := joinLinked(t, r, l)
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID() != l.Bundle.Device {
		t.Fatalf("joined as %s, certified %s", c.DeviceID(), l.Bundle.Device)
	}
	mustSync(t, c, r)
	// Both sides publish the device; neither sees the other's document as
	// dropping it, whichever syncs first.
	mustSync(t, a, r)
	mustSync(t, c, r)
	if got := titles(t, c); !slices.Equal(got, []string{"Bank", "Mail"}) {
		t.Fatalf("the linked device reads %v", got)
	}
	addLogin(t, c, "Linked", "pw-three")
	mustSync(t, c, r)
	mustSync(t, a, r)
	if got := titles(t, a); !slices.Contains(got, "Linked") {
		t.Fatalf("the first device reads %v", got)
	}
}

func TestLinkedJoinRefusesWhatTheLinkDidNotPromise(t *testing.T) {
	a, _, r := syncPair(t)
	for _, tc := range []struct {
		name   string
		change func(l *LinkedDevice)
	}{
		{"another Master Key", func(l *LinkedDevice) { l.Bundle.MasterKey[0] ^= 1 }},
		{"another identity", func(l *LinkedDevice) { l.Bundle.Identity = "00000-00000-00000-00000-00000-00000" }},
		{"another account", func(l *LinkedDevice) { l.Bundle.Account = "someone-else" }},
		{"a certificate for another key", func(l *LinkedDevice) {
			other, _ := sign.GenerateKey(testOptions().Rand)
			l.Key = other
		}},
		{"a forged certificate", func(l *LinkedDevice) { l.Bundle.Cert[10] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := linkFrom(t, a)
			tc.change(l)
			if _, err := joinLinked(t, r, l); !errors.Is(err, ErrLinkMismatch) {
				t.Fatalf("Join = %v, want ErrLinkMismatch", err)
			}
		})
	}
}

// docRemote passes everything through but serves a given account
// document.
type docRemote struct {
	remote.Remote
	doc *api.Account
}

func (s *docRemote) Account(c context.Context) (api.Account, error) {
	if s.doc != nil {
		return *s.doc, nil
	}
	return s.Remote.Account(c)
}

func TestRevokedDeviceIsNotTrustedAndTheRevocationSticks(t *testing.T) {
	a, b, r := syncPair(t)
	if err := a.Revoke(ctx, b.DeviceID()); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("revoking a device this one has not seen yet: %v", err)
	}
	mustSync(t, a, r)
	if err := a.Revoke(ctx, a.DeviceID()); err == nil {
		t.Fatal("a device revoked itself")
	}
	if err := a.Revoke(ctx, b.DeviceID()); err != nil {
		t.Fatal(err)
	}
	trusted, err := a.TrustedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(trusted, func(d TrustedDevice) bool { return d.ID == b.DeviceID() }) {
		t.Fatal("a revoked device is still trusted")
	}
	mustSync(t, a, r)
	// Every device learns it from the document.
	c := linkAndJoin(t, a, r)
	cTrusted, _ := c.TrustedDevices(ctx)
	if slices.ContainsFunc(cTrusted, func(d TrustedDevice) bool { return d.ID == b.DeviceID() }) {
		t.Fatal("another device still trusts the revoked one")
	}
	mustSync(t, a, r) // a has published everything it certified
	// The revoked device still holds the Master Key, so it can write a
	// valid document; one that takes back its revocation is refused:
	// revocations only grow.
	acc, err := r.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := b.parseDocument(acc.Document)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(doc.Revoked, b.DeviceID()) {
		t.Fatal("the published document does not list the revocation")
	}
	doc.Revoked = nil
	doc.Epoch++
	forged := api.Account{Account: acc.Account, KDF: acc.KDF, Epoch: doc.Epoch, Document: b.document(doc)}
	for i, v := range []*Vault{a, c} {
		if _, err := v.Sync(ctx, &docRemote{Remote: r, doc: &forged}); !errors.Is(err, ErrRemoteTampered) {
			t.Fatalf("device %d given a document that takes back a revocation: %v, want ErrRemoteTampered", i, err)
		}
	}
}

func linkAndJoin(t *testing.T, a *Vault, r remote.Remote) *Vault {
	t.Helper()
	c, err := joinLinked(t, r, linkFrom(t, a))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, c, r)
	return c
}

func TestRevokeAnUnpublishedLinkedDevice(t *testing.T) {
	a, _, r := syncPair(t)
	l := linkFrom(t, a)
	if err := a.Revoke(ctx, l.Bundle.Device); err != nil {
		t.Fatal(err)
	}
	list, err := a.TrustedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(d TrustedDevice) bool { return d.ID == l.Bundle.Device }) {
		t.Fatal("a revoked linked device is still trusted")
	}
	mustSync(t, a, r)
	// If it joins anyway (it holds the bundle), every device knows it is
	// revoked.
	c, err := joinLinked(t, r, l)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, c, r)
	mustSync(t, a, r)
	devs, err := a.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(devs, func(d DeviceEntry) bool { return d.ID == l.Bundle.Device && d.Revoked }) {
		t.Fatalf("devices = %+v, want %s listed as revoked", devs, l.Bundle.Device)
	}
}
