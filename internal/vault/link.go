package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/store"
)

// LinkBundle is what an unlocked device hands a new device of the same
// account over a device link (docs/design.md §15): where the account
// lives, the account's Secret Key and Master Key, the identity code the
// new device must find in the account document, and the certificate the
// identity key made for the new device's own key. It is secret: it only
// ever travels inside the link's encrypted channel.
type LinkBundle struct {
	Target    RemoteTarget `json:"target"`
	Account   string       `json:"account"`
	Identity  string       `json:"identity"`
	SecretKey string       `json:"secret_key"`
	MasterKey []byte       `json:"master_key"`
	Device    string       `json:"device"`
	Cert      []byte       `json:"cert"`
	// Linker and LinkerPublic name the linking device and its signing
	// key: a new device that joins through that device as a peer (§16)
	// trusts it by this key until it has the account document.
	Linker       string `json:"linker"`
	LinkerPublic []byte `json:"linker_public"`
}

// Wipe clears the bundle's secrets.
func (b *LinkBundle) Wipe() {
	if b == nil {
		return
	}
	wipeBytes(b.MasterKey)
	b.MasterKey, b.SecretKey = nil, ""
}

// LinkedDevice is the new device's half of a link: its own key, certified
// by the existing device, and the bundle that came with the certificate.
type LinkedDevice struct {
	Key    *sign.PrivateKey
	Bundle *LinkBundle
}

// ErrNoDevice: no device of that id in the account.
var ErrNoDevice = errors.New("no device of this account has that id")

// ErrLinkMismatch: what a link delivered does not match the account the
// remote serves (a wrong Master Key, identity or certificate).
var ErrLinkMismatch = errors.New("the device link does not match the account")

// CertifyDevice is the existing device's half of a link: it certifies pub
// (a new device's signing key, sign.PublicKey encoding) with the account's
// identity key under a fresh device id, records the device in the local
// account record so that this device trusts it at once (it is published
// with the next sync), and returns the bundle for the new device. The
// caller wipes the bundle once sent.
func (v *Vault) CertifyDevice(ctx context.Context, pub []byte) (*LinkBundle, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	rec, err := v.readSync()
	if err != nil {
		return nil, err
	}
	if rec == nil || v.acct.SecretKey == nil {
		return nil, fmt.Errorf("%w: a new device joins the account through its remote; run `safe account register` (or `safe peer listen`) first", ErrNoRemote)
	}
	if _, err := sign.ParsePublicKey(pub); err != nil {
		return nil, fmt.Errorf("the new device's key is malformed: %w", err)
	}
	id, err := newID(v.opts.Rand)
	if err != nil {
		return nil, err
	}
	identity, err := v.identityKey()
	if err != nil {
		return nil, err
	}
	defer identity.Wipe()
	cert, err := identity.Sign(deviceCertContext, deviceCertMessage(v.acct.Account, id, pub))
	if err != nil {
		return nil, err
	}
	next := *v.acct
	next.MAC = nil
	next.Devices = append(slices.Clone(v.acct.Devices), deviceInfo{ID: id, Public: bytes.Clone(pub), Cert: cert})
	raw := setMAC(v.macKey, "account", &next, &next.MAC)
	rec.DocDirty = true
	rec.Linked = append(rec.Linked, id)
	if err := v.putAccountAndSync(ctx, raw, v.encodeSync(rec)); err != nil {
		return nil, err
	}
	v.seenOwnWrite()
	v.acct = &next
	if err := v.load(ctx); err != nil {
		return nil, err
	}
	sk, err := v.SecretKey(ctx)
	if err != nil {
		return nil, err
	}
	return &LinkBundle{
		Target:       RemoteTarget{Name: rec.Name, Kind: rec.Kind, URL: rec.URL, Fingerprint: rec.Fingerprint, Email: rec.Email, Manual: rec.Manual},
		Account:      v.acct.Account,
		Identity:     v.IdentityFingerprint(),
		SecretKey:    sk,
		MasterKey:    bytes.Clone(v.mk),
		Device:       id,
		Cert:         cert,
		Linker:       v.device.ID,
		LinkerPublic: bytes.Clone(v.device.Public),
	}, nil
}

// checkLinked holds a joining device to what the link promised: the Master
// Key the password and Secret Key opened, the account and its identity
// code, and a certificate for this device's key under the identity key.
// It returns the device record for this device.
func checkLinked(l *LinkedDevice, doc *accountRecord, mk secret.Bytes) (*deviceInfo, error) {
	b := l.Bundle
	if b.Account != doc.Account {
		return nil, fmt.Errorf("%w: the link is for account %s, the remote serves %s", ErrLinkMismatch, b.Account, doc.Account)
	}
	if subtle.ConstantTimeCompare(b.MasterKey, mk) != 1 {
		return nil, fmt.Errorf("%w: the Master Key from the link differs from the one the password opens on the remote", ErrLinkMismatch)
	}
	probe := Vault{acct: doc}
	if got := probe.IdentityFingerprint(); got != b.Identity {
		return nil, fmt.Errorf("%w: the account's identity code on the remote is %s, the linking device has %s", ErrLinkMismatch, got, b.Identity)
	}
	idPub, err := sign.ParsePublicKey(doc.IdentityPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: identity key: %v", ErrRemoteTampered, err)
	}
	pub, err := l.Key.Public().MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := idPub.Verify(deviceCertContext, deviceCertMessage(doc.Account, b.Device, pub), b.Cert); err != nil {
		return nil, fmt.Errorf("%w: the certificate for this device does not verify under the account's identity key", ErrLinkMismatch)
	}
	return &deviceInfo{ID: b.Device, Public: pub, Cert: bytes.Clone(b.Cert)}, nil
}

// withDevice returns devices with d in it: a device the linking device
// has published already is replaced by d (which may carry the sealed
// private key); any other device with d's id is refused.
func withDevice(devices []deviceInfo, d deviceInfo) ([]deviceInfo, error) {
	out := slices.Clone(devices)
	for i := range out {
		if out[i].ID == d.ID {
			if !bytes.Equal(out[i].Public, d.Public) || !bytes.Equal(out[i].Cert, d.Cert) {
				return nil, fmt.Errorf("%w: the account document lists device %s with another key", ErrRemoteTampered, d.ID)
			}
			out[i] = d
			return out, nil
		}
	}
	return append(out, d), nil
}

// Revoke drops device id from this account's trusted devices: it stays in
// the account document (so that the entries it signed still verify) and is
// listed as revoked, so no peer accepts it any more (§15.4). The document
// is sent at the next sync.
func (v *Vault) Revoke(ctx context.Context, id string) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	if v.device != nil && id == v.device.ID {
		return fmt.Errorf("%s is this device: revoke it from another device", id)
	}
	if !slices.ContainsFunc(v.acct.Devices, func(d deviceInfo) bool { return d.ID == id }) {
		return fmt.Errorf("%w: %s (sync first if it joined recently)", ErrNoDevice, id)
	}
	if slices.Contains(v.acct.Revoked, id) {
		return nil
	}
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	next := *v.acct
	next.MAC = nil
	next.Revoked = append(slices.Clone(v.acct.Revoked), id)
	raw := setMAC(v.macKey, "account", &next, &next.MAC)
	if rec != nil {
		rec.DocDirty = true
	}
	err = v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutAccount(raw); err != nil {
			return err
		}
		if rec != nil {
			return tx.PutSyncRecord(v.encodeSync(rec))
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.seenOwnWrite()
	v.acct = &next
	return v.load(ctx)
}

// TrustedDevice is a device of this account that peers accept.
type TrustedDevice struct {
	ID     string
	Public *sign.PublicKey
}

// TrustedDevices lists the account's certified devices that are not
// revoked (this device included).
func (v *Vault) TrustedDevices(ctx context.Context) ([]TrustedDevice, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	var out []TrustedDevice
	for _, d := range v.acct.Devices {
		if slices.Contains(v.acct.Revoked, d.ID) {
			continue
		}
		if pub := v.devices[d.ID]; pub != nil {
			out = append(out, TrustedDevice{ID: d.ID, Public: pub})
		}
	}
	return out, nil
}

// TrustedKeys is TrustedDevices as a map from device id to key: what a
// peer handshake checks a proof against (peerauth.Trusted).
func (v *Vault) TrustedKeys(ctx context.Context) (map[string]*sign.PublicKey, error) {
	list, err := v.TrustedDevices(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*sign.PublicKey, len(list))
	for _, d := range list {
		m[d.ID] = d.Public
	}
	return m, nil
}

// SignAsDevice signs msg under context with this device's key, returning
// the device's id and the signature (a peer handshake's identity proof).
func (v *Vault) SignAsDevice(ctx context.Context, context string, msg []byte) (string, []byte, error) {
	if err := v.refresh(ctx); err != nil {
		return "", nil, err
	}
	if v.device == nil || v.signer == nil {
		return "", nil, tampered("this device has no key")
	}
	sig, err := v.signer.Sign(context, msg)
	return v.device.ID, sig, err
}

// DeviceEntry is one device of the account as this device knows it from
// the account record.
type DeviceEntry struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
	Current bool   `json:"current"`
}

// Devices lists the account's devices from the account record (for a
// remote without a device list of its own: a folder or a peer).
func (v *Vault) Devices(ctx context.Context) ([]DeviceEntry, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	out := make([]DeviceEntry, 0, len(v.acct.Devices))
	for _, d := range v.acct.Devices {
		out = append(out, DeviceEntry{ID: d.ID, Revoked: slices.Contains(v.acct.Revoked, d.ID), Current: v.device != nil && d.ID == v.device.ID})
	}
	return out, nil
}
