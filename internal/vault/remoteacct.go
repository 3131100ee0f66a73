package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/keycode"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/store"
)

// RemoteTarget names a remote to tie the vault to.
type RemoteTarget struct {
	Name        string
	Kind        string // RemoteServer or RemoteFolder
	URL         string
	Fingerprint string
	Email       string
	Manual      bool
	Platform    string // this device, as the server lists it
}

// SecretKey returns the account's Secret Key in its text form; ErrNoRemote
// for a vault that was never put on a remote.
func (v *Vault) SecretKey(ctx context.Context) (string, error) {
	if err := v.refresh(ctx); err != nil {
		return "", err
	}
	if v.acct.SecretKey == nil {
		return "", fmt.Errorf("%w: this vault has no Secret Key until it is registered on a server or folder", ErrNoRemote)
	}
	sk, err := keycode.SecretKeyFromBytes(v.acct.SecretKey)
	if err != nil {
		return "", tampered("secret key: %v", err)
	}
	defer sk.Wipe()
	return sk.Reveal(), nil
}

// DeviceID is this device's id.
func (v *Vault) DeviceID() string {
	if v.device == nil {
		return ""
	}
	return v.device.ID
}

// Register puts the unlocked vault's account on a remote: it gives the
// account a Secret Key (re-wrapping the Master Key under the password and
// the Secret Key; the password is checked first), creates the account
// there with its document, and ties the vault to it. The caller syncs
// next. It returns the Secret Key's text form.
func (v *Vault) Register(ctx context.Context, r remote.Remote, t RemoteTarget, password []byte) (string, error) {
	if err := v.refresh(ctx); err != nil {
		return "", err
	}
	if rec, err := v.readSync(); err != nil {
		return "", err
	} else if rec != nil {
		return "", fmt.Errorf("%w: %s (%s); remove it first", ErrRemoteExists, rec.Name, rec.URL)
	}
	params, salts, err := parseKDF(v.acct.KDF)
	if err != nil {
		return "", tampered("kdf parameters: %v", err)
	}
	// The password must open the vault as it is now.
	keys, err := kdf.DeriveWith(password, v.acct.SecretKey, params, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return "", err
	}
	mk, err := envelope.Open(keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: v.acct.Account}, v.acct.PasswordWrap)
	keys.Wipe()
	if err != nil {
		return "", ErrWrongPassword
	}
	secret.Wipe(mk)

	rec := *v.acct
	rec.MAC = nil
	if rec.SecretKey == nil {
		sk, err := keycode.NewSecretKey(v.opts.Rand)
		if err != nil {
			return "", err
		}
		b := sk.Bytes()
		sk.Wipe()
		rec.SecretKey = bytes.Clone(b)
		b.Wipe()
	}
	keys, err = kdf.DeriveWith(password, rec.SecretKey, params, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return "", err
	}
	defer keys.Wipe()
	if rec.PasswordWrap, err = envelope.Seal(v.opts.Rand, keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: rec.Account}, v.mk); err != nil {
		return "", err
	}
	rec.Epoch = 1
	raw := setMAC(v.macKey, "account", &rec, &rec.MAC)
	// Locally first: a retry after a failed registration reuses the same
	// Secret Key.
	if err := v.st.Update(ctx, func(tx *store.Tx) error { return tx.PutAccount(raw) }); err != nil {
		return "", err
	}
	v.acct = &rec
	v.seenOwnWrite()

	lk := keys.LoginKey()
	defer lk.Wipe()
	err = r.Register(ctx, api.RegisterRequest{
		Email: t.Email, Account: rec.Account, KDF: rec.KDF, LoginKey: lk,
		Document: v.document(&rec),
		Device:   api.DeviceHello{ID: v.device.ID, Platform: t.Platform},
	})
	if errors.Is(err, remote.ErrExists) {
		// A retry after a registration whose answer was lost: the same
		// login key must log in, and the account there must be this one,
		// unchanged.
		if lerr := r.Login(ctx, api.LoginRequest{Email: t.Email, LoginKey: lk, Device: api.DeviceHello{ID: v.device.ID, Platform: t.Platform}}); lerr != nil {
			return "", fmt.Errorf("register on %s: %w (and this vault's password and Secret Key do not log in to it)", t.URL, err)
		}
		acc, aerr := r.Account(ctx)
		if aerr != nil {
			return "", fmt.Errorf("register on %s: %w", t.URL, aerr)
		}
		if acc.Account != rec.Account || acc.Epoch != 1 || !bytes.Equal(acc.Document, v.document(&rec)) {
			return "", fmt.Errorf("register on %s: %w: it holds another account or a changed one; log in instead", t.URL, err)
		}
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("register on %s: %w", t.URL, err)
	}
	srec := &syncRecord{Name: t.Name, Kind: t.Kind, URL: t.URL, Fingerprint: t.Fingerprint, Email: t.Email, Manual: t.Manual, Epoch: 1, KDF: bytes.Clone(rec.KDF), Pins: []pin{}}
	sraw := v.encodeSync(srec)
	if err := v.st.Update(ctx, func(tx *store.Tx) error { return tx.PutSyncRecord(sraw) }); err != nil {
		return "", err
	}
	v.seenOwnWrite()
	return v.SecretKey(ctx)
}

// Login logs this device in to its remote again (a new session), after
// checking the remote's KDF header against what the vault knows: unknown,
// out-of-bounds, weaker or re-salted parameters are refused before
// anything is derived or sent.
func (v *Vault) Login(ctx context.Context, r remote.Remote, password []byte, totp, recoveryCode, platform string) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	if rec == nil {
		return ErrNoRemote
	}
	header, err := r.Prelogin(ctx, rec.Email)
	if err != nil {
		return fmt.Errorf("prelogin: %w", err)
	}
	if err := v.CheckPrelogin(header); err != nil {
		return err
	}
	params, salts, err := parseKDF(header)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPrelogin, err)
	}
	keys, err := kdf.DeriveWith(password, v.acct.SecretKey, params, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return err
	}
	defer keys.Wipe()
	lk := keys.LoginKey()
	defer lk.Wipe()
	return r.Login(ctx, api.LoginRequest{Email: rec.Email, LoginKey: lk, Device: api.DeviceHello{ID: v.device.ID, Platform: platform}, TOTP: totp, RecoveryCode: recoveryCode})
}

// JoinRequest is what a new device needs to join an account on a remote.
type JoinRequest struct {
	Target       RemoteTarget
	Password     []byte
	SecretKey    string
	TOTP         string
	RecoveryCode string
	// Linked, for a device set up through a device link: its key, already
	// certified, and what the link promised (checked against the remote).
	Linked *LinkedDevice
}

// Join makes a new vault file at path for an existing account on r: it
// checks the remote's KDF header against the floors and ceilings before
// deriving anything, logs in with the login key, authenticates the account
// document with the Master Key it unwraps, certifies a new device key, and
// writes the vault (empty logs; the caller syncs next). It returns the
// vault, unlocked.
func Join(ctx context.Context, path string, r remote.Remote, j JoinRequest, opts Options) (*Vault, error) {
	sk, err := keycode.ParseSecretKey(j.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	skb := sk.Bytes()
	sk.Wipe()
	defer skb.Wipe()
	header, err := r.Prelogin(ctx, j.Target.Email)
	if err != nil {
		return nil, fmt.Errorf("prelogin: %w", err)
	}
	if err := checkNewKDF(nil, header, opts.AllowInsecureKDF); err != nil {
		return nil, err
	}
	params, salts, err := parseKDF(header)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPrelogin, err)
	}
	keys, err := kdf.DeriveWith(j.Password, skb, params, salts, opts.AllowInsecureKDF)
	if err != nil {
		return nil, err
	}
	defer keys.Wipe()
	deviceID := ""
	if j.Linked != nil {
		deviceID = j.Linked.Bundle.Device
	} else if deviceID, err = newID(opts.Rand); err != nil {
		return nil, err
	}
	lk := keys.LoginKey()
	defer lk.Wipe()
	if err := r.Login(ctx, api.LoginRequest{Email: j.Target.Email, LoginKey: lk, Device: api.DeviceHello{ID: deviceID, Platform: j.Target.Platform}, TOTP: j.TOTP, RecoveryCode: j.RecoveryCode}); err != nil {
		return nil, err
	}
	acc, err := r.Account(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch the account: %w", err)
	}
	var doc accountRecord
	if err := decodeRecord(acc.Document, &doc); err != nil || doc.Version != RecordVersion || doc.Account == "" {
		return nil, fmt.Errorf("%w: the account document is malformed", ErrRemoteTampered)
	}
	if !bytes.Equal(doc.KDF, header) || !bytes.Equal(acc.KDF, header) {
		return nil, fmt.Errorf("%w: the account document's key-derivation header differs from the prelogin answer", ErrRemoteTampered)
	}
	mkRaw, err := envelope.Open(keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: doc.Account}, doc.PasswordWrap)
	if err != nil {
		return nil, fmt.Errorf("%w: the password and Secret Key do not open this account's Master Key", ErrWrongPassword)
	}
	mk := secret.Bytes(mkRaw)
	defer mk.Wipe()
	mkey := macKey(mk)
	defer mkey.Wipe()
	probe := &Vault{acct: &doc, macKey: mkey, mk: mk, opts: opts}
	checked, err := probe.parseDocument(acc.Document)
	if err != nil {
		return nil, err
	}
	if checked.Epoch != acc.Epoch {
		return nil, fmt.Errorf("%w: the account document says epoch %d but the remote says %d", ErrRemoteTampered, checked.Epoch, acc.Epoch)
	}
	if checked.SecurityVersion > SecurityVersion {
		return nil, fmt.Errorf("%w: the account uses security version %d", ErrNewerFormat, checked.SecurityVersion)
	}
	if checked.InsecureTestKDF != params.InsecureTest {
		return nil, fmt.Errorf("%w: the account document and its parameters disagree about the test profile", ErrRemoteTampered)
	}

	// A device key of our own, certified by the account's identity key.
	rawID, err := envelope.Open(mk, envelope.Context{Purpose: purposeIdentity, Account: doc.Account}, checked.IdentitySealed)
	if err != nil {
		return nil, fmt.Errorf("%w: the identity key does not open", ErrRemoteTampered)
	}
	identity, err := sign.ParsePrivateKey(rawID)
	secret.Wipe(rawID)
	if err != nil {
		return nil, fmt.Errorf("%w: identity key: %v", ErrRemoteTampered, err)
	}
	defer identity.Wipe()
	if pub, err := identity.Public().MarshalBinary(); err != nil || !bytes.Equal(pub, checked.IdentityPublic) {
		return nil, fmt.Errorf("%w: the identity private key does not match its public key", ErrRemoteTampered)
	}
	var dev *deviceInfo
	if j.Linked != nil {
		if dev, err = checkLinked(j.Linked, checked, mk); err != nil {
			return nil, err
		}
		if dev.Sealed, err = sealKey(opts.Rand, mk, j.Linked.Key, envelope.Context{Purpose: purposeDevice, Account: doc.Account, Field: dev.ID}); err != nil {
			return nil, err
		}
	} else {
		var devKey *sign.PrivateKey
		if dev, devKey, err = newDeviceWithID(opts.Rand, mk, doc.Account, deviceID, identity); err != nil {
			return nil, err
		}
		devKey.Wipe()
	}
	rec := *checked
	rec.MAC = nil
	if rec.Devices, err = withDevice(checked.Devices, *dev); err != nil {
		return nil, err
	}
	rec.SecretKey = bytes.Clone(skb)
	raw := setMAC(mkey, "account", &rec, &rec.MAC)

	vaults, err := r.Vaults(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the account's vaults: %w", err)
	}
	for _, rv := range vaults {
		if err := probe.checkVaultRecord(rv.Vault, rv.Record); err != nil {
			return nil, err
		}
	}
	if len(vaults) == 0 {
		return nil, fmt.Errorf("%w: the account has no vaults", ErrRemoteTampered)
	}
	srec := &syncRecord{Version: RecordVersion, Account: doc.Account, Name: j.Target.Name, Kind: j.Target.Kind, URL: j.Target.URL,
		Fingerprint: j.Target.Fingerprint, Email: j.Target.Email, Manual: j.Target.Manual, Epoch: checked.Epoch, KDF: bytes.Clone(header), DocDirty: true, Pins: []pin{}}
	sraw := setMAC(mkey, "sync", srec, &srec.MAC)
	err = store.Build(ctx, path, func(tx *store.Tx) error {
		if err := tx.PutAccount(raw); err != nil {
			return err
		}
		for _, rv := range vaults {
			if err := tx.PutVault(rv.Vault, rv.Record); err != nil {
				return err
			}
			g := genesis(rv.Vault)
			h := &headRecord{Version: RecordVersion, Vault: rv.Vault, Seq: 0, Hash: g[:]}
			if err := tx.PutHead(rv.Vault, setMAC(mkey, "head", h, &h.MAC)); err != nil {
				return err
			}
		}
		return tx.PutSyncRecord(sraw)
	})
	if errors.Is(err, store.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return nil, err
	}
	v, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	if err := v.unlockWith(ctx, mk.Clone()); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// newDeviceWithID is newDevice with a chosen id (the one the session is
// bound to).
func newDeviceWithID(r io.Reader, mk secret.Bytes, acctID, id string, identity *sign.PrivateKey) (*deviceInfo, *sign.PrivateKey, error) {
	key, err := sign.GenerateKey(r)
	if err != nil {
		return nil, nil, err
	}
	pub, err := key.Public().MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	cert, err := identity.Sign(deviceCertContext, deviceCertMessage(acctID, id, pub))
	if err != nil {
		return nil, nil, err
	}
	sealed, err := sealKey(r, mk, key, envelope.Context{Purpose: purposeDevice, Account: acctID, Field: id})
	if err != nil {
		return nil, nil, err
	}
	return &deviceInfo{ID: id, Public: pub, Cert: cert, Sealed: sealed}, key, nil
}
