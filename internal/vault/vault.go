// Package vault is Safehold's local vault engine: it creates a vault file,
// unlocks it with the password (or the Recovery Key), and reads and writes
// items so that everything a user typed is sealed, every row read back is
// authenticated and bound to its place, and every change is recorded in the
// vault's signed, hash-chained log.
//
// A Vault is used by one goroutine at a time (the agent serialises calls).
package vault

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/keycode"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// SecurityVersion is the vault's security version. It only ever increases;
// a vault that names a higher one than this build knows is refused.
const SecurityVersion = 1

// Envelope purposes: each sealed value names what it is, so that a sealed
// value moved to another place does not open.
const (
	purposePasswordWrap = "master-key/password"
	purposeRecoveryWrap = "master-key/recovery"
	purposeIdentity     = "identity-key"
	purposeEncryption   = "encryption-key"
	purposeDevice       = "device-key"
	purposeVaultKey     = "vault-key"
	purposeVaultName    = "vault-name"
	purposeItem         = "item"
	purposeAttachment   = "attachment"
	deviceCertContext   = "safehold/v1 device-cert"
)

// Options configure how a vault is created and opened.
type Options struct {
	// Rand is the randomness source; the CLI passes a two-source reader.
	Rand io.Reader
	// AllowInsecureKDF permits the tiny test KDF profile
	// (SAFE_INSECURE_TEST_KDF=1). Without it such vaults are refused.
	AllowInsecureKDF bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Keep, if set, moves a long-lived key into protected memory (the
	// agent's mlocked, guarded pages): it returns the key's new home, which
	// the vault uses from then on, and a function that wipes and frees it.
	Keep func(secret.Bytes) (secret.Bytes, func())
}

// keep moves k into protected memory when the options provide it.
func (v *Vault) keep(k secret.Bytes) secret.Bytes {
	kept, free := v.keepKey(k)
	v.release = append(v.release, free)
	return kept
}

// keepKey is keep for a key whose owner frees it itself.
func (v *Vault) keepKey(k secret.Bytes) (secret.Bytes, func()) {
	if v.opts.Keep == nil {
		return k, k.Wipe
	}
	return v.opts.Keep(k)
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Vault is an open vault file, locked or unlocked.
type Vault struct {
	st   *store.Store
	opts Options

	acct *accountRecord
	// Set while unlocked:
	mk      secret.Bytes
	macKey  secret.Bytes
	device  *deviceInfo
	signer  *sign.PrivateKey
	devices map[string]*sign.PublicKey
	vaults  map[string]*vaultState
	order   []string // vault ids, personal first
	// orgs holds every pinned organisation's verified state (§14).
	orgs    map[string]*org.State
	seen    int64    // PRAGMA data_version after our last check
	release []func() // wipe and free every kept key
	// verified is set once the loaded state passed every check; only such
	// a state may be written back as an index snapshot.
	verified bool
}

// vaultState is what an unlocked vault knows of one of its vaults.
type vaultState struct {
	id      string
	name    string
	created int64
	key     secret.Bytes
	free    func() // wipes and frees key
	// acct is the Account of the vault's envelope contexts: the account id
	// for a personal vault, the organisation id for a shared one.
	acct string
	// Shared vaults only (§14): the organisation, the generation of key,
	// and the earlier generations' keys (older items stay under them until
	// re-encrypted), each freed by freeVaults.
	org   string
	gen   uint32
	old   map[uint32]secret.Bytes
	seq   uint64
	head  chain.Hash
	index map[string]*entryInfo // item id → latest log entry
	views map[string]*Overview  // item id → overview of current revision
	// snapSeq is the seq of the stored index snapshot (see snapshot.go).
	snapSeq uint64
	// titles indexes views by lower-cased title (titleIndex); nil when
	// stale.
	titles map[string][]*Overview
}

// entryInfo is what the log says about an item's latest state.
type entryInfo struct {
	seq      uint64
	op       byte
	revision uint64
	digest   []byte
}

// Created is what Create returns: the only time the Recovery Key is shown.
type Created struct {
	Account     string
	Vault       string
	RecoveryKey string
	Path        string
	KDF         kdf.Params
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func newID(r io.Reader) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("read randomness: %w", err)
	}
	return idEncoding.EncodeToString(b), nil
}

func randomKey(r io.Reader) (secret.Bytes, error) {
	k := make(secret.Bytes, 32)
	if _, err := io.ReadFull(r, k); err != nil {
		return nil, fmt.Errorf("read randomness: %w", err)
	}
	return k, nil
}

// Create makes a new vault file at path, protected by password, with the
// given KDF parameters. It returns the Recovery Key, which is never stored.
func Create(ctx context.Context, path string, password []byte, params kdf.Params, opts Options) (*Created, error) {
	if err := checkParams(params, opts); err != nil {
		return nil, err
	}
	r := opts.Rand
	acctID, err := newID(r)
	if err != nil {
		return nil, err
	}
	mk, err := randomKey(r)
	if err != nil {
		return nil, err
	}
	defer mk.Wipe()

	salts, err := kdf.NewSalts(r)
	if err != nil {
		return nil, err
	}
	keys, err := kdf.DeriveWith(password, nil, params, salts, opts.AllowInsecureKDF)
	if err != nil {
		return nil, fmt.Errorf("derive keys from password: %w", err)
	}
	defer keys.Wipe()
	rec := &accountRecord{
		Version:         RecordVersion,
		Account:         acctID,
		SecurityVersion: SecurityVersion,
		Created:         opts.now().Unix(),
		InsecureTestKDF: params.InsecureTest,
	}
	if rec.KDF, err = marshalKDF(params, salts); err != nil {
		return nil, err
	}
	if rec.PasswordWrap, err = envelope.Seal(r, keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: acctID}, mk); err != nil {
		return nil, err
	}
	rk, err := keycode.NewRecoveryKey(r)
	if err != nil {
		return nil, err
	}
	rec.RecoverySalt = make([]byte, 32)
	if _, err := io.ReadFull(r, rec.RecoverySalt); err != nil {
		return nil, err
	}
	rkek := rk.KEK(rec.RecoverySalt)
	defer rkek.Wipe()
	if rec.RecoveryWrap, err = envelope.Seal(r, rkek, envelope.Context{Purpose: purposeRecoveryWrap, Account: acctID}, mk); err != nil {
		return nil, err
	}

	identity, err := sign.GenerateKey(r)
	if err != nil {
		return nil, err
	}
	defer identity.Wipe()
	if rec.IdentityPublic, err = identity.Public().MarshalBinary(); err != nil {
		return nil, err
	}
	if rec.IdentitySealed, err = sealKey(r, mk, identity, envelope.Context{Purpose: purposeIdentity, Account: acctID}); err != nil {
		return nil, err
	}
	enc, err := pke.GenerateKey(r)
	if err != nil {
		return nil, err
	}
	defer enc.Wipe()
	if rec.EncryptPublic, err = enc.Public().MarshalBinary(); err != nil {
		return nil, err
	}
	if rec.EncryptSealed, err = sealKey(r, mk, enc, envelope.Context{Purpose: purposeEncryption, Account: acctID}); err != nil {
		return nil, err
	}
	dev, devKey, err := newDevice(r, mk, acctID, identity)
	if err != nil {
		return nil, err
	}
	devKey.Wipe()
	rec.Devices = []deviceInfo{*dev}
	mkey := macKey(mk)
	defer mkey.Wipe()
	record := setMAC(mkey, "account", rec, &rec.MAC)

	vaultID, err := newID(r)
	if err != nil {
		return nil, err
	}
	err = store.Build(ctx, path, func(tx *store.Tx) error {
		if err := tx.PutAccount(record); err != nil {
			return err
		}
		return createVault(tx, r, mk, mkey, acctID, vaultID, "Personal", opts.now())
	})
	if errors.Is(err, store.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return nil, err
	}
	return &Created{Account: acctID, Vault: vaultID, RecoveryKey: rk.Reveal(), Path: path, KDF: params}, nil
}

// privateKey is a private key that encodes itself.
type privateKey interface{ Bytes() secret.Bytes }

func sealKey(r io.Reader, mk secret.Bytes, k privateKey, ctx envelope.Context) ([]byte, error) {
	b := k.Bytes()
	defer b.Wipe()
	return envelope.Seal(r, mk, ctx, b)
}

// newDevice makes this device's signing key, certified by the identity key.
func newDevice(r io.Reader, mk secret.Bytes, acctID string, identity *sign.PrivateKey) (*deviceInfo, *sign.PrivateKey, error) {
	id, err := newID(r)
	if err != nil {
		return nil, nil, err
	}
	return newDeviceWithID(r, mk, acctID, id, identity)
}

func deviceCertMessage(acct, id string, pub []byte) []byte {
	m := []byte(acct + "\x00" + id + "\x00")
	return append(m, pub...)
}

func createVault(tx *store.Tx, r io.Reader, mk, mkey secret.Bytes, acctID, vaultID, name string, now time.Time) error {
	vk, err := randomKey(r)
	if err != nil {
		return err
	}
	defer vk.Wipe()
	vr := &vaultRecord{Version: RecordVersion, Vault: vaultID, Created: now.Unix()}
	if vr.Key, err = envelope.Seal(r, mk, envelope.Context{Purpose: purposeVaultKey, Account: acctID, Vault: vaultID}, vk); err != nil {
		return err
	}
	if vr.Name, err = envelope.Seal(r, vk, envelope.Context{Purpose: purposeVaultName, Account: acctID, Vault: vaultID}, []byte(name)); err != nil {
		return err
	}
	if err := tx.PutVault(vaultID, setMAC(mkey, "vault", vr, &vr.MAC)); err != nil {
		return err
	}
	g := genesis(vaultID)
	h := &headRecord{Version: RecordVersion, Vault: vaultID, Seq: 0, Hash: g[:]}
	return tx.PutHead(vaultID, setMAC(mkey, "head", h, &h.MAC))
}

func checkParams(p kdf.Params, opts Options) error {
	if p.InsecureTest && !opts.AllowInsecureKDF {
		return fmt.Errorf("%w: set SAFE_INSECURE_TEST_KDF=1 only for tests; real vaults never use it", ErrInsecureKDF)
	}
	if err := p.Check(opts.AllowInsecureKDF); err != nil {
		return fmt.Errorf("kdf parameters refused: %w", err)
	}
	return nil
}

// Open opens the vault file at path, locked.
func Open(path string, opts Options) (*Vault, error) {
	st, err := store.Open(path)
	if errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoVault, path)
	}
	if err != nil {
		return nil, err
	}
	v := &Vault{st: st, opts: opts}
	if err := v.readAccount(); err != nil {
		st.Close()
		return nil, err
	}
	return v, nil
}

func (v *Vault) readAccount() error {
	raw, err := v.st.Account()
	if errors.Is(err, store.ErrNotFound) {
		return tampered("the account record is missing")
	}
	if err != nil {
		return err
	}
	var rec accountRecord
	if err := decodeRecord(raw, &rec); err != nil {
		return tampered("account record: %v", err)
	}
	if rec.Version != RecordVersion {
		return tampered("account record version %d is unknown", rec.Version)
	}
	if rec.SecurityVersion > SecurityVersion {
		return fmt.Errorf("%w: security version %d, this build knows %d", ErrNewerFormat, rec.SecurityVersion, SecurityVersion)
	}
	v.acct = &rec
	return nil
}

// Close locks the vault and closes the file.
func (v *Vault) Close() error {
	v.Lock()
	return v.st.Close()
}

// Path is the vault file's location.
func (v *Vault) Path() string { return v.st.Path() }

// Account is the account id.
func (v *Vault) Account() string { return v.acct.Account }

// Params returns the KDF parameters recorded in the vault.
func (v *Vault) Params() (kdf.Params, error) {
	p, _, err := parseKDF(v.acct.KDF)
	if err != nil {
		return kdf.Params{}, tampered("kdf parameters: %v", err)
	}
	return p, nil
}

// InsecureTestKDF says whether the vault was made with the test profile.
func (v *Vault) InsecureTestKDF() bool { return v.acct.InsecureTestKDF }

// Unlocked says whether the vault's keys are in memory.
func (v *Vault) Unlocked() bool { return v.mk != nil }

// Lock forgets every key and every decrypted overview.
func (v *Vault) Lock() {
	if v.mk != nil && v.verified {
		v.saveSnapshots(context.Background())
	}
	v.freeVaults()
	v.verified = false
	for _, free := range v.release {
		free()
	}
	v.release = nil
	if v.signer != nil {
		v.signer.Wipe()
	}
	v.mk, v.macKey, v.signer, v.device, v.devices, v.vaults, v.order, v.orgs = nil, nil, nil, nil, nil, nil, nil, nil
}

// Unlock derives the key-encryption key from the password, unwraps the
// Master Key, and checks the whole vault before serving anything.
func (v *Vault) Unlock(ctx context.Context, password []byte) error {
	mk, err := v.passwordMasterKey(password)
	if err != nil {
		return err
	}
	return v.unlockWith(ctx, mk)
}

// dropUnfinished removes attachment chunks that a crash left without an
// item. Only an unlock does it: the agent is then the vault's one writer,
// so no attachment is being written.
func (v *Vault) dropUnfinished(ctx context.Context) {
	v.st.DropPending(ctx) // best effort: leftover chunks are only ciphertext
}

// passwordMasterKey unwraps the Master Key with the password.
func (v *Vault) passwordMasterKey(password []byte) (secret.Bytes, error) {
	if err := v.readAccount(); err != nil {
		return nil, err
	}
	params, salts, err := parseKDF(v.acct.KDF)
	if err != nil {
		return nil, tampered("kdf parameters: %v", err)
	}
	if params.InsecureTest != v.acct.InsecureTestKDF {
		return nil, tampered("kdf parameters disagree with the account record about the test profile")
	}
	if err := checkParams(params, v.opts); err != nil {
		return nil, err
	}
	keys, err := kdf.DeriveWith(password, v.acct.SecretKey, params, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return nil, fmt.Errorf("derive keys from password: %w", err)
	}
	defer keys.Wipe()
	mk, err := envelope.Open(keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: v.acct.Account}, v.acct.PasswordWrap)
	if err != nil {
		if errors.Is(err, envelope.ErrAuth) {
			return nil, ErrWrongPassword
		}
		return nil, tampered("password wrap: %v", err)
	}
	return mk, nil
}

// VerifyWithPassword runs Verify on a vault that may be too damaged to
// unlock: it takes the Master Key from the password and reports every
// problem, then locks again.
func (v *Vault) VerifyWithPassword(ctx context.Context, password []byte) (Report, error) {
	mk, err := v.passwordMasterKey(password)
	if err != nil {
		return Report{}, err
	}
	v.Lock()
	v.mk = v.keep(mk)
	v.macKey = v.keep(macKey(v.mk))
	defer v.Lock()
	return v.Verify(ctx)
}

// unlockWith takes over mk and loads everything it protects.
func (v *Vault) unlockWith(ctx context.Context, mk secret.Bytes) error {
	v.Lock()
	v.mk = v.keep(mk)
	v.macKey = v.keep(macKey(v.mk))
	if err := v.load(ctx); err != nil {
		v.Lock()
		return err
	}
	v.dropUnfinished(ctx)
	return nil
}

// load authenticates the account record and every vault.
func (v *Vault) load(ctx context.Context) error {
	v.verified = false
	if !checkMAC(v.macKey, "account", v.acct, &v.acct.MAC) {
		return tampered("the account record was modified (its MAC does not verify)")
	}
	idPub, err := sign.ParsePublicKey(v.acct.IdentityPublic)
	if err != nil {
		return tampered("identity public key: %v", err)
	}
	if v.signer != nil {
		v.signer.Wipe()
	}
	v.device, v.signer = nil, nil
	v.devices = map[string]*sign.PublicKey{}
	for i := range v.acct.Devices {
		d := &v.acct.Devices[i]
		if err := idPub.Verify(deviceCertContext, deviceCertMessage(v.acct.Account, d.ID, d.Public), d.Cert); err != nil {
			return tampered("device %s is not certified by the identity key", d.ID)
		}
		pub, err := sign.ParsePublicKey(d.Public)
		if err != nil {
			return tampered("device %s key: %v", d.ID, err)
		}
		v.devices[d.ID] = pub
		if d.Sealed != nil {
			if v.device != nil {
				return tampered("the account record names two local devices")
			}
			raw, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeDevice, Account: v.acct.Account, Field: d.ID}, d.Sealed)
			if err != nil {
				return tampered("device %s private key does not open: %v", d.ID, err)
			}
			key, err := sign.ParsePrivateKey(raw)
			secret.Wipe(raw)
			if err != nil {
				return tampered("device %s private key: %v", d.ID, err)
			}
			v.device, v.signer = d, key
		}
	}
	if v.device == nil {
		return tampered("the account record names no key for this device")
	}
	if err := v.loadOrgs(); err != nil {
		return err
	}
	if err := v.loadVaults(ctx); err != nil {
		return err
	}
	v.verified = true
	// A vault checked in full (no snapshot yet, or a long tail after it)
	// gets a snapshot now, so the next unlock is quick.
	for _, s := range v.vaults {
		if s.seq-s.snapSeq >= snapshotEvery || (s.snapSeq == 0 && s.seq > 0) {
			v.saveSnapshot(ctx, s)
		}
	}
	return nil
}

// chainFree returns a function that calls a and then b.
func chainFree(a, b func()) func() {
	return func() {
		if a != nil {
			a()
		}
		b()
	}
}

// openVaultRecord opens an authenticated vault record's keys and name. The
// keys are in ordinary memory; the caller keeps them.
func (v *Vault) openVaultRecord(vr *vaultRecord) (*vaultState, error) {
	id := vr.Vault
	s := &vaultState{id: id, created: vr.Created, acct: v.acct.Account}
	if vr.Org == "" {
		if vr.Gen != 0 || vr.Old != nil {
			return nil, tampered("vault %s record has key generations but no organisation", id)
		}
		key, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeVaultKey, Account: v.acct.Account, Vault: id}, vr.Key)
		if err != nil {
			return nil, tampered("vault %s key does not open: %v", id, err)
		}
		name, err := envelope.Open(key, envelope.Context{Purpose: purposeVaultName, Account: v.acct.Account, Vault: id}, vr.Name)
		if err != nil {
			secret.Wipe(key)
			return nil, tampered("vault %s name does not open: %v", id, err)
		}
		s.key, s.name = key, string(name)
		return s, nil
	}
	if vr.Gen < 1 || len(vr.Old) != int(vr.Gen)-1 {
		return nil, tampered("vault %s record names key generation %d with %d earlier keys", id, vr.Gen, len(vr.Old))
	}
	s.org, s.acct, s.gen = vr.Org, vr.Org, vr.Gen
	keys := map[uint32]secret.Bytes{}
	wipe := func() {
		for _, k := range keys {
			secret.Wipe(k)
		}
	}
	for g := uint32(1); g <= vr.Gen; g++ {
		sealed := vr.Key
		if g < vr.Gen {
			sealed = vr.Old[g-1]
		}
		k, err := envelope.Open(v.mk, sharedKeyContext(v.acct.Account, id, g), sealed)
		if err != nil {
			wipe()
			return nil, tampered("vault %s key generation %d does not open: %v", id, g, err)
		}
		keys[g] = k
	}
	name, err := envelope.Open(keys[1], envelope.Context{Purpose: purposeVaultName, Account: vr.Org, Vault: id}, vr.Name)
	if err != nil {
		wipe()
		return nil, tampered("vault %s name does not open: %v", id, err)
	}
	s.name, s.key = string(name), keys[vr.Gen]
	delete(keys, vr.Gen)
	if len(keys) > 0 {
		s.old = keys
	}
	return s, nil
}

// sharedKeyContext seals generation gen of a shared vault's key under MK.
func sharedKeyContext(acct, vault string, gen uint32) envelope.Context {
	return envelope.Context{Purpose: purposeVaultKey, Account: acct, Vault: vault, Revision: uint64(gen)}
}

// freeVaults forgets every vault's key.
func (v *Vault) freeVaults() {
	for _, s := range v.vaults {
		if s.free != nil {
			s.free()
		}
	}
	v.vaults, v.order = nil, nil
}

func (v *Vault) loadVaults(ctx context.Context) error {
	recs, err := v.st.Vaults()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return tampered("the vault has no vault records")
	}
	// A reload keeps the protected copy of a vault key that did not
	// change, so that keys do not pile up in locked memory and a state
	// still held by a caller keeps a live key.
	prev := v.vaults
	v.vaults, v.order = map[string]*vaultState{}, nil
	defer func() {
		for id, old := range prev {
			if cur, ok := v.vaults[id]; (!ok || cur.free == nil || &cur.key[0] != &old.key[0]) && old.free != nil {
				old.free()
			}
		}
	}()
	for id, raw := range recs {
		var vr vaultRecord
		if err := decodeRecord(raw, &vr); err != nil {
			return tampered("vault %s record: %v", id, err)
		}
		if vr.Version != RecordVersion {
			return tampered("vault %s record version %d is unknown", id, vr.Version)
		}
		if vr.Vault != id {
			return tampered("vault record for %s is stored under %s", vr.Vault, id)
		}
		if !checkMAC(v.macKey, "vault", &vr, &vr.MAC) {
			return tampered("vault %s record was modified (its MAC does not verify)", id)
		}
		s, err := v.openVaultRecord(&vr)
		if err != nil {
			return err
		}
		key, reused := s.key, false
		if old, ok := prev[id]; ok && old.gen == s.gen && len(old.key) == len(key) && subtle.ConstantTimeCompare(old.key, key) == 1 {
			s.key, s.free = old.key, old.free
			secret.Wipe(key)
			for _, k := range s.old {
				secret.Wipe(k)
			}
			s.old, reused = old.old, true
		} else {
			s.key, s.free = v.keepKey(key)
		}
		if !reused && len(s.old) > 0 {
			free := s.free
			for g, k := range s.old {
				kept, f := v.keepKey(k)
				s.old[g] = kept
				free = chainFree(free, f)
			}
			s.free = free
		}
		v.vaults[id] = s
		v.order = append(v.order, id)
	}
	// The personal vault, made first, comes first.
	// Personal vaults come before shared ones; personal vaults made later
	// are dated after every earlier one (CreateVault), so the first is the
	// default vault.
	slices.SortFunc(v.order, func(a, b string) int {
		if c := cmp.Compare(min(len(v.vaults[a].org), 1), min(len(v.vaults[b].org), 1)); c != 0 {
			return c
		}
		if c := cmp.Compare(v.vaults[a].created, v.vaults[b].created); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, id := range v.order {
		s := v.vaults[id]
		if err := v.checkVault(ctx, s, false, nil); err != nil {
			return err
		}
	}
	dv, err := v.st.DataVersion()
	if err != nil {
		return err
	}
	v.seen = dv
	return nil
}

// refresh re-checks the vault when another process changed the file since we
// last looked, so that nothing written behind our back is served unchecked.
func (v *Vault) refresh(ctx context.Context) error {
	if v.mk == nil {
		return ErrLocked
	}
	dv, err := v.st.DataVersion()
	if err != nil {
		return err
	}
	if dv == v.seen {
		return nil
	}
	if err := v.readAccount(); err != nil {
		return err
	}
	return v.load(ctx)
}

func genesis(vault string) chain.Hash { return vlog.Genesis(vault) }

func marshalKDF(p kdf.Params, s kdf.Salts) ([]byte, error) {
	return kdf.Header{Params: p, Salts: s}.MarshalBinary()
}

func parseKDF(b []byte) (kdf.Params, kdf.Salts, error) {
	h, err := kdf.ParseHeader(b)
	return h.Params, h.Salts, err
}
