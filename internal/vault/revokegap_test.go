package vault

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/peerauth"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/sign"
)

// TestRevokedDeviceKeepingTheMasterKeyCanReEnrol demonstrates a limit that
// is NOT defended (docs/security.md §2 row 23, design §15.5 and §16.5):
// revocation is enforced at the doors (the peer handshake, a server's
// sessions and logins), not by new keys. A revoked device keeps the Master
// Key, so it can open the identity key and certify a new device key, and
// if it can still write to the store, every device adopts that key.
//
// The revoked device's own key is refused (asserted); the new key it
// certifies for itself is trusted (asserted). This test must change when
// the Master Key and identity key are rotated on revocation: then the
// re-enrolment must be refused.
func TestRevokedDeviceKeepingTheMasterKeyCanReEnrol(t *testing.T) {
	t.Run("folder", func(t *testing.T) {
		// A shared folder: B keeps write access to the store and needs
		// nothing but what its vault file holds (no password).
		a, b, r := syncPair(t)
		mustSync(t, a, r) // A learns B
		if err := a.Revoke(ctx, b.DeviceID()); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a, r)
		mustSync(t, b, r) // B even knows it is revoked; nothing stops it
		oldID := b.DeviceID()
		oldRefused(t, a, b)

		// The gap: B certifies a new key with the identity key it can
		// still unseal (the linking device's own code path) and
		// publishes it with an ordinary sync.
		key, pub := newKey(t)
		bundle, err := b.CertifyDevice(ctx, pub)
		if err != nil {
			t.Fatalf("a revoked device was refused when certifying a new key: %v", err)
		}
		defer bundle.Wipe()
		if bundle.Linker != oldID {
			t.Fatalf("certified by %s, want the revoked %s", bundle.Linker, oldID)
		}
		mustSync(t, b, r)
		mustSync(t, a, r) // A adopts the document: no error, no tamper
		newTrusted(t, a, oldID, bundle.Device, key, pub)

		// Every device learns it, also one linked after the revocation.
		c := linkAndJoin(t, a, r)
		newTrusted(t, c, oldID, bundle.Device, key, pub)
	})
	t.Run("server", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a server")
		}
		// A server refuses the revoked id: B's sessions end and it cannot
		// log in again. The gap needs a login under a new device id, so
		// here B's holder also knows the password (B does not store it;
		// the link bundle carries the Secret Key).
		a, b, ra, rb, _ := httpPair(t)
		mustSync(t, a, ra)
		if err := ra.(*httpremote.Client).RevokeDevice(ctx, b.DeviceID()); err != nil {
			t.Fatal(err)
		}
		if err := a.Revoke(ctx, b.DeviceID()); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a, ra)
		oldID := b.DeviceID()
		oldRefused(t, a, b)
		addLogin(t, b, "OldKey", "pw-old")
		if _, err := b.Sync(ctx, rb); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("the revoked device's sync: %v, want its session refused", err)
		}
		if err := b.Login(ctx, rb, []byte(syncPassword), "", "", "test"); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("the revoked device logging in again: %v, want it refused", err)
		}

		// The gap: B certifies a new key (no server needed) and a device
		// with that key joins under its new id.
		key, pub := newKey(t)
		bundle, err := b.CertifyDevice(ctx, pub)
		if err != nil {
			t.Fatalf("a revoked device was refused when certifying a new key: %v", err)
		}
		defer bundle.Wipe()
		rc, err := httpremote.New(bundle.Target.URL, bundle.Target.Fingerprint, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		c, err := joinLinked(t, rc, &LinkedDevice{Key: key, Bundle: bundle})
		if err != nil {
			t.Fatalf("the re-enrolled key could not join: %v", err)
		}
		mustSync(t, c, rc)
		mustSync(t, a, ra)
		newTrusted(t, a, oldID, bundle.Device, key, pub)
		// Its log entries are accepted too.
		addLogin(t, c, "Re-enrolled", "pw-new")
		mustSync(t, c, rc)
		mustSync(t, a, ra)
		if got := titles(t, a); !slices.Contains(got, "Re-enrolled") {
			t.Fatalf("A reads %v, want the re-enrolled device's item", got)
		}
	})
}

// oldRefused asserts the defended part: A no longer trusts B's key, and
// B's peer proof is refused by the check A's listener runs.
func oldRefused(t *testing.T, a, b *Vault) {
	t.Helper()
	if isTrusted(t, a, b.DeviceID()) {
		t.Fatal("the revoked device is still trusted")
	}
	signer := func(role string, binding []byte) (string, []byte, error) {
		return b.SignAsDevice(ctx, peerauth.Context, peerauth.Message(role, binding))
	}
	if err := peerProof(t, a, b.DeviceID(), signer); !errors.Is(err, peerauth.ErrUntrusted) {
		t.Fatalf("the revoked device's peer proof: %v, want ErrUntrusted", err)
	}
}

// newTrusted asserts the gap: v trusts device id with the key B certified,
// the revoked id stays refused, and a peer proof by the new key passes.
func newTrusted(t *testing.T, v *Vault, oldID, id string, key *sign.PrivateKey, pub []byte) {
	t.Helper()
	if id == oldID {
		t.Fatal("the new key has the revoked device's id")
	}
	if isTrusted(t, v, oldID) {
		t.Fatal("the revoked device is trusted again")
	}
	list, err := v.TrustedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(d TrustedDevice) bool { return d.ID == id })
	if i < 0 {
		t.Fatalf("the key the revoked device certified is not trusted (gap closed?): %+v", list)
	}
	got, err := list[i].Public.MarshalBinary()
	if err != nil || !bytes.Equal(got, pub) {
		t.Fatalf("device %s is trusted with another key (%v)", id, err)
	}
	signer := func(role string, binding []byte) (string, []byte, error) {
		sig, err := key.Sign(peerauth.Context, peerauth.Message(role, binding))
		return id, sig, err
	}
	if err := peerProof(t, v, id, signer); err != nil {
		t.Fatalf("the re-enrolled key's peer proof was refused (gap closed?): %v", err)
	}
}

func isTrusted(t *testing.T, v *Vault, id string) bool {
	t.Helper()
	list, err := v.TrustedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(list, func(d TrustedDevice) bool { return d.ID == id })
}

// peerProof runs one handshake proof as the peer channel does: the client
// side proves with signer, v's listening side checks it against v's
// trusted devices (as the service's peerTrusted builds them).
func peerProof(t *testing.T, v *Vault, id string, signer peerauth.Signer) error {
	t.Helper()
	trusted := func() (map[string]*sign.PublicKey, error) { return v.TrustedKeys(ctx) }
	binding := make([]byte, 32)
	if _, err := rand.Read(binding); err != nil {
		t.Fatal(err)
	}
	client := peerauth.Config(peerauth.RoleClient, id, signer, trusted, nil)
	raw, err := client.Prove(binding)
	if err != nil {
		t.Fatal(err)
	}
	listener := peerauth.Config(peerauth.RoleServer, v.DeviceID(), nil, trusted, nil)
	return listener.Verify(raw, binding)
}
