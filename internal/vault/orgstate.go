package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// orgRecord pins an organisation on this device (§14.5): its root key and
// the last log head verified from it. MAC kind "org".
type orgRecord struct {
	Version int    `json:"v"`
	Org     string `json:"org"`
	Root    []byte `json:"root"`
	Seq     uint64 `json:"seq"`
	Hash    []byte `json:"hash"`
	MAC     []byte `json:"mac,omitempty"`
}

// loadOrgs replays every pinned organisation's stored log from its pinned
// root and checks that it ends at the pinned head.
func (v *Vault) loadOrgs() error {
	recs, err := v.st.Orgs()
	if err != nil {
		return err
	}
	v.orgs = map[string]*org.State{}
	for id, raw := range recs {
		var rec orgRecord
		if err := decodeRecord(raw, &rec); err != nil {
			return tampered("organisation %s record: %v", id, err)
		}
		if rec.Version != RecordVersion || rec.Org != id || !checkMAC(v.macKey, "org", &rec, &rec.MAC) {
			return tampered("organisation %s record was modified (its MAC does not verify)", id)
		}
		root, err := sign.ParsePublicKey(rec.Root)
		if err != nil {
			return tampered("organisation %s root key: %v", id, err)
		}
		var entries []org.Entry
		if err := v.st.OrgLog(id, func(r store.OrgRow) error {
			entries = append(entries, org.Entry{Body: r.Body, Sig: r.Sig})
			return nil
		}); err != nil {
			return err
		}
		st, err := org.Replay(id, root, entries)
		if err != nil {
			return tampered("organisation %s log: %v", id, err)
		}
		if st.Seq != rec.Seq || !bytes.Equal(st.Head[:], rec.Hash) {
			return tampered("organisation %s log ends at statement %d but its pin says %d: statements were removed or changed", id, st.Seq, rec.Seq)
		}
		v.orgs[id] = st
	}
	return nil
}

// saveOrg stores statements verified on top of the pinned state, and the
// new pin, in one transaction. With pin set it also creates the record.
func (v *Vault) saveOrg(ctx context.Context, st *org.State, entries []org.Entry) error {
	rec := &orgRecord{Version: RecordVersion, Org: st.Org, Root: st.Root.Bytes(), Seq: st.Seq, Hash: bytes.Clone(st.Head[:])}
	raw := setMAC(v.macKey, "org", rec, &rec.MAC)
	first := st.Seq - uint64(len(entries)) + 1
	if err := v.st.Update(ctx, func(tx *store.Tx) error {
		for i, e := range entries {
			if err := tx.AppendOrgLog(st.Org, store.OrgRow{Seq: first + uint64(i), Body: e.Body, Sig: e.Sig}); err != nil {
				return err
			}
		}
		return tx.PutOrg(st.Org, raw)
	}); err != nil {
		return err
	}
	v.orgs[st.Org] = st
	v.seenOwnWrite()
	return nil
}

// orgsRemote returns r's organisation capability.
func orgsRemote(r remote.Remote) (remote.Orgs, error) {
	ro, ok := r.(remote.Orgs)
	if !ok {
		return nil, ErrNoOrgs
	}
	return ro, nil
}

func toOrgEntries(in []api.OrgEntry) []org.Entry {
	out := make([]org.Entry, len(in))
	for i, e := range in {
		out[i] = org.Entry{Body: e.Body, Sig: e.Sig}
	}
	return out
}

func toAPIEntries(in []org.Entry) []api.OrgEntry {
	out := make([]api.OrgEntry, len(in))
	for i, e := range in {
		out[i] = api.OrgEntry{Body: e.Body, Sig: e.Sig}
	}
	return out
}

// maxOrgPull bounds the statements one pull accepts.
const maxOrgPull = org.MaxEntries

// pullOrg brings a pinned organisation up to the remote's head, verifying
// every new statement from the pinned state: a head below the pin is a
// rollback, a statement that does not link to the pinned head a fork.
func (v *Vault) pullOrg(ctx context.Context, ro remote.Orgs, id string) error {
	pinned, ok := v.orgs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoOrg, id)
	}
	st := pinned.Clone()
	var news []org.Entry
	for len(news) < maxOrgPull {
		page, err := ro.PullOrg(ctx, id, st.Seq)
		if err != nil {
			return fmt.Errorf("read organisation %s: %w", id, err)
		}
		if page.Head < pinned.Seq {
			return remoteTampered("organisation %s: the remote's log ends at statement %d, but this device verified %d: it rolled the membership back (a removal or change may be hidden)", id, page.Head, pinned.Seq)
		}
		if len(page.Entries) == 0 {
			if page.Head > st.Seq {
				return remoteTampered("organisation %s: the remote claims %d statements but sends none after %d", id, page.Head, st.Seq)
			}
			break
		}
		for _, e := range toOrgEntries(page.Entries) {
			if err := st.Apply(e); err != nil {
				return remoteTampered("organisation %s: %s", id, sanitize(err.Error()))
			}
			news = append(news, e)
		}
		if st.Seq >= page.Head {
			break
		}
	}
	if len(news) == 0 {
		return nil
	}
	return v.saveOrg(ctx, st, news)
}

// identityKey opens this account's identity signing key; the caller wipes it.
func (v *Vault) identityKey() (*sign.PrivateKey, error) {
	raw, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeIdentity, Account: v.acct.Account}, v.acct.IdentitySealed)
	if err != nil {
		return nil, tampered("the identity private key does not open: %v", err)
	}
	defer secret.Wipe(raw)
	return sign.ParsePrivateKey(raw)
}

// encryptionKey opens this account's encryption private key; the caller
// wipes it.
func (v *Vault) encryptionKey() (*pke.PrivateKey, error) {
	raw, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeEncryption, Account: v.acct.Account}, v.acct.EncryptSealed)
	if err != nil {
		return nil, tampered("the encryption private key does not open: %v", err)
	}
	defer secret.Wipe(raw)
	return pke.ParsePrivateKey(raw)
}

// orgAccess is this account's access to a shared vault ("manage" for a
// personal one).
func (v *Vault) orgAccess(s *vaultState) org.Access {
	if s.org == "" {
		return org.Manage
	}
	st, ok := v.orgs[s.org]
	if !ok {
		return org.None
	}
	return st.Access(s.id, v.acct.Account)
}

// writerKey finds the key that must have signed entry e of vault s: a
// device of this account for a personal vault (the caller verifies); for a
// shared vault, a device the organisation's log certifies for a member who
// may write there at that position, whose signature on e it has verified.
func (v *Vault) writerKey(s *vaultState, e *vlog.Entry) (*sign.PublicKey, error) {
	if s.org == "" {
		pub, ok := v.devices[e.Device]
		if !ok {
			return nil, fmt.Errorf("entry %d is signed by device %s, which the account never certified", e.Seq, sanitize(e.Device))
		}
		return pub, nil
	}
	st, ok := v.orgs[s.org]
	if !ok {
		return nil, fmt.Errorf("the organisation of vault %s is not pinned here", s.id)
	}
	owners := st.DeviceOwners(e.Device)
	if len(owners) == 0 {
		return nil, fmt.Errorf("entry %d is signed by device %s, which no member of the organisation certified", e.Seq, sanitize(e.Device))
	}
	// Several members may have certified the same device id (copying an
	// id gains nothing): the entry is the one whose key verifies it.
	var why error
	for _, owner := range owners {
		pub, revoked, ok := st.DeviceKey(owner, e.Device)
		if !ok || e.Verify(pub) != nil {
			continue
		}
		if revoked {
			if at, ok := st.Members[owner].RevokedAt[e.Device][s.id]; !ok || e.Seq > at {
				why = fmt.Errorf("entry %d is signed by device %s, which was revoked before it", e.Seq, sanitize(e.Device))
				continue
			}
		}
		if !st.MayWrite(s.id, owner, e.Seq) {
			why = fmt.Errorf("entry %d was written by %s, whom nobody granted write access to this vault", e.Seq, sanitize(owner))
			continue
		}
		return pub, nil
	}
	if why == nil {
		why = fmt.Errorf("entry %d: the signature does not verify under any key certified for device %s", e.Seq, sanitize(e.Device))
	}
	return nil, why
}

// ensureSharedVaults creates or updates the local record of every shared
// vault this account can read, from the key wraps that the verified log
// attributes to an authorised member, and reloads when anything changed.
func (v *Vault) ensureSharedVaults(ctx context.Context) error {
	me := v.acct.Account
	changed := false
	var enc *pke.PrivateKey
	defer func() {
		if enc != nil {
			enc.Wipe()
		}
	}()
	ids := make([]string, 0, len(v.orgs))
	for id := range v.orgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, oid := range ids {
		st := v.orgs[oid]
		for vid, info := range st.Vaults {
			if st.Access(vid, me) == org.None {
				continue
			}
			wraps := info.Keys[me]
			var have uint32
			for have < info.Gen {
				if _, ok := wraps[have+1]; !ok {
					break
				}
				have++
			}
			if have == 0 {
				continue // no key for us yet: a manager wraps it
			}
			if s, ok := v.vaults[vid]; ok {
				if s.org != oid {
					return remoteTampered("vault %s is a vault of this account and also claimed by organisation %s", vid, oid)
				}
				if s.gen >= have {
					continue
				}
			}
			if enc == nil {
				k, err := v.encryptionKey()
				if err != nil {
					return err
				}
				enc = k
			}
			if err := v.storeSharedVault(ctx, st, info, have, enc); err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		if err := v.load(ctx); err != nil {
			v.seen = -1
			return err
		}
	}
	return nil
}

// storeSharedVault unwraps generations 1..gen of a shared vault's key and
// writes the local vault record (and, for a new vault, its empty head).
func (v *Vault) storeSharedVault(ctx context.Context, st *org.State, info *org.VaultInfo, gen uint32, enc *pke.PrivateKey) error {
	me := v.acct.Account
	keys := make([]secret.Bytes, 0, gen)
	defer func() {
		for _, k := range keys {
			secret.Wipe(k)
		}
	}()
	for g := uint32(1); g <= gen; g++ {
		k, err := pke.Open(enc, org.WrapContext(st.Org, info.ID, me, g), info.Keys[me][g])
		if err != nil {
			return remoteTampered("organisation %s: the key of vault %s (generation %d) wrapped for you by %s does not open", st.Org, info.ID, g, sanitize(info.KeyBy[me][g]))
		}
		if len(k) != 32 {
			secret.Wipe(k)
			return remoteTampered("organisation %s: the key of vault %s has %d bytes", st.Org, info.ID, len(k))
		}
		keys = append(keys, k)
	}
	if _, err := envelope.Open(keys[0], envelope.Context{Purpose: purposeVaultName, Account: st.Org, Vault: info.ID}, info.SealedName); err != nil {
		return remoteTampered("organisation %s: the name of vault %s does not open under its key", st.Org, info.ID)
	}
	vr, err := v.sharedRecord(st.Org, info, keys)
	if err != nil {
		return err
	}
	_, exists := v.vaults[info.ID]
	return v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutVault(info.ID, vr); err != nil {
			return err
		}
		if exists {
			return nil
		}
		g := genesis(info.ID)
		h := &headRecord{Version: RecordVersion, Vault: info.ID, Seq: 0, Hash: g[:]}
		return tx.PutHead(info.ID, setMAC(v.macKey, "head", h, &h.MAC))
	})
}

// sharedRecord seals a shared vault's key generations (keys[0] is
// generation 1) under MK into a MAC'd vault record.
func (v *Vault) sharedRecord(orgID string, info *org.VaultInfo, keys []secret.Bytes) ([]byte, error) {
	gen := uint32(len(keys))
	vr := &vaultRecord{Version: RecordVersion, Vault: info.ID, Created: info.Created / 1000, Name: info.SealedName, Org: orgID, Gen: gen}
	for g := uint32(1); g <= gen; g++ {
		sealed, err := envelope.Seal(v.opts.Rand, v.mk, sharedKeyContext(v.acct.Account, info.ID, g), keys[g-1])
		if err != nil {
			return nil, err
		}
		if g == gen {
			vr.Key = sealed
		} else {
			vr.Old = append(vr.Old, sealed)
		}
	}
	return setMAC(v.macKey, "vault", vr, &vr.MAC), nil
}

// syncOrgs brings every pinned organisation up to date, publishes this
// device to the organisations it is a member of, finishes rotations this
// account is responsible for, and picks up shared vaults.
func (v *Vault) syncOrgs(ctx context.Context, r remote.Remote) error {
	ro, ok := r.(remote.Orgs)
	if !ok {
		return nil
	}
	if err := v.adoptOrgs(ctx, ro); err != nil {
		return err
	}
	ids := make([]string, 0, len(v.orgs))
	for id := range v.orgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := v.pullOrg(ctx, ro, id); err != nil {
			if errors.Is(err, remote.ErrForbidden) || errors.Is(err, remote.ErrNotFound) {
				// Removed, or the organisation was dissolved: what
				// this device has stays readable; nothing new comes.
				continue
			}
			return err
		}
		if err := v.publishDevice(ctx, ro, id); err != nil {
			return err
		}
	}
	if err := v.ensureSharedVaults(ctx); err != nil {
		return err
	}
	for _, id := range ids {
		if err := v.finishRotations(ctx, r, ro, id, nil); err != nil {
			return err
		}
	}
	return nil
}

// publishDevice adds this device's certificate to an organisation this
// account belongs to, so that other members can verify what it writes.
func (v *Vault) publishDevice(ctx context.Context, ro remote.Orgs, id string) error {
	st := v.orgs[id]
	m, ok := st.Members[v.acct.Account]
	if !ok || (m.State != org.StateActive && m.State != org.StateAccepted) {
		return nil
	}
	if _, ok := m.Devices[v.device.ID]; ok {
		return nil
	}
	return v.orgChange(ctx, ro, id, func(b *orgBuilder) error {
		if m := b.st.Members[v.acct.Account]; m != nil {
			if _, ok := m.Devices[v.device.ID]; ok {
				return nil
			}
		}
		return b.add(org.Statement{Type: org.TypeDevice, Account: v.acct.Account, Device: v.device.ID, Public: v.device.Public, Cert: v.device.Cert})
	})
}

// orgBuilder collects statements signed on top of a state.
type orgBuilder struct {
	st      *org.State
	signer  org.Signer
	root    *org.Signer // set when the root key is needed and held
	entries []org.Entry
	now     int64
}

func (b *orgBuilder) add(s org.Statement) error { return b.addAs(b.signer, s) }

func (b *orgBuilder) addAs(signer org.Signer, s org.Statement) error {
	e, err := b.st.Next(signer, s, b.now)
	if err != nil {
		return err
	}
	if err := b.st.Apply(e); err != nil {
		return err
	}
	b.entries = append(b.entries, e)
	return nil
}

// asRoot signs with the organisation's root key, which only its creator
// holds (sealed to the creator's encryption key in the genesis).
func (b *orgBuilder) asRoot(v *Vault, s org.Statement) error {
	if b.root == nil {
		if b.st.Creator != v.acct.Account {
			return fmt.Errorf("%w: only the organisation's owner (who holds its root key) can do this", ErrNotAllowed)
		}
		enc, err := v.encryptionKey()
		if err != nil {
			return err
		}
		rk, err := b.st.OpenRoot(enc)
		enc.Wipe()
		if err != nil {
			return remoteTampered("the organisation's root key does not open: %v", err)
		}
		b.root = &org.Signer{By: org.ByRoot, Key: rk}
	}
	return b.addAs(*b.root, s)
}

// orgChange pulls an organisation, lets build add statements on the fresh
// state, pushes them as one append and stores them. A push that finds the
// log moved pulls and builds again.
func (v *Vault) orgChange(ctx context.Context, ro remote.Orgs, id string, build func(*orgBuilder) error) error {
	idk, err := v.identityKey()
	if err != nil {
		return err
	}
	defer idk.Wipe()
	for range maxSyncRounds {
		if err := v.pullOrg(ctx, ro, id); err != nil {
			return err
		}
		base := v.orgs[id]
		b := &orgBuilder{st: base.Clone(), signer: org.Signer{By: v.acct.Account, Key: idk}, now: v.opts.now().UnixMilli()}
		err := build(b)
		if b.root != nil {
			b.root.Key.Wipe()
		}
		if err != nil {
			return orgErr(err)
		}
		if len(b.entries) == 0 {
			return nil
		}
		head, err := ro.PushOrg(ctx, id, base.Seq, toAPIEntries(b.entries))
		if errors.Is(err, remote.ErrStale) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update organisation %s: %w", id, err)
		}
		if head != b.st.Seq {
			return remoteTampered("organisation %s: the remote acknowledged head %d after our statements end at %d", id, head, b.st.Seq)
		}
		return v.saveOrg(ctx, b.st, b.entries)
	}
	return fmt.Errorf("organisation %s kept changing on the remote; try again", id)
}

// orgErr turns a refusal of our own statement into "not allowed".
func orgErr(err error) error {
	if errors.Is(err, org.ErrRefused) && !errors.Is(err, ErrNotAllowed) {
		return fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	return err
}

// adoptOrgs pins, on another device of this account, the organisations
// that this account created or accepted elsewhere. The proof is in the log
// itself: a statement signed with this account's identity key, which only
// its devices hold and which they sign only after pinning the root. An
// organisation without one stays an invitation.
func (v *Vault) adoptOrgs(ctx context.Context, ro remote.Orgs) error {
	list, err := ro.Orgs(ctx)
	if err != nil {
		return fmt.Errorf("list organisations: %w", err)
	}
	for _, o := range list {
		if _, ok := v.orgs[o.Org]; ok || o.State == org.StateInvited {
			continue
		}
		inv, err := v.invitation(ctx, ro, o.Org)
		if errors.Is(err, ErrRemoteTampered) {
			continue // not pinned, not ours: nothing to adopt
		}
		if err != nil {
			return err
		}
		m, ok := inv.state.Members[v.acct.Account]
		if !ok || !bytes.Equal(m.Identity, v.acct.IdentityPublic) || !bytes.Equal(m.Encryption, v.acct.EncryptPublic) {
			continue // not our keys: never ours
		}
		if m.State != org.StateActive && m.State != org.StateAccepted {
			continue // this account left or was removed: nothing to pin
		}
		signed := false
		for _, e := range inv.entries {
			if st, err := org.Decode(e); err == nil && st.By == v.acct.Account {
				signed = true
				break
			}
		}
		if !signed {
			continue
		}
		if err := v.saveOrg(ctx, inv.state, inv.entries); err != nil {
			return err
		}
	}
	return nil
}

// ErrRotationPending: a shared vault's key must change before anything
// new is written to it (someone lost access).
var ErrRotationPending = errors.New("the vault's key must be rotated first")

// mayWriteShared refuses a write to a shared vault that this account may
// not write to, or whose key is due to change: someone lost access and no
// manager has made the next generation yet, or this device does not hold
// the newest one. Writing under the old key would seal new secrets to
// whoever left.
func (v *Vault) mayWriteShared(s *vaultState) error {
	if a := v.orgAccess(s); a.Rank() < org.Write.Rank() {
		return fmt.Errorf("%w: you have %s access to vault %q; writing needs write access", ErrNotAllowed, accessName(a), s.name)
	}
	info := v.orgs[s.org].Vaults[s.id]
	switch {
	case info.Rotate:
		return fmt.Errorf("%w: someone lost access to vault %q and its key has not changed yet; a manager's next sync (or safe sync by one) rotates it", ErrRotationPending, s.name)
	case s.gen < info.Gen:
		return fmt.Errorf("%w: vault %q has a newer key than this device holds; run safe sync", ErrRotationPending, s.name)
	}
	return nil
}
