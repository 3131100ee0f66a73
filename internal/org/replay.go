package org

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/sign"
)

// deviceCertContext and deviceCertMessage are the engine's device
// certificate (docs/design.md §2.3): the identity key signs
// account || 0 || device || 0 || device public key.
const deviceCertContext = "safehold/v1 device-cert"

func deviceCertMessage(account, device string, pub []byte) []byte {
	m := []byte(account + "\x00" + device + "\x00")
	return append(m, pub...)
}

// Replay verifies a whole log from its genesis and returns the state.
// With root non-nil the genesis must name exactly that key (the pinned
// root); with nil (the server) the genesis's own key is trusted. The org id
// must equal ID(root key).
func Replay(orgID string, root *sign.PublicKey, entries []Entry) (*State, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the log is empty (no genesis)", ErrRefused)
	}
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("%w: the log has %d statements, more than %d", ErrRefused, len(entries), MaxEntries)
	}
	if root != nil && ID(root) != orgID {
		return nil, fmt.Errorf("%w: organisation id %.40q is not derived from the pinned root key", ErrRefused, orgID)
	}
	s := newState(orgID, root)
	for _, e := range entries {
		// s is this function's own: a failed statement leaves it half
		// changed, and it is dropped.
		if err := s.step(e, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Apply verifies one more entry against s and, if it passes, applies it;
// on error s is unchanged. Entries must come in order (seq = s.Seq+1, prev
// = s.Head).
func (s *State) Apply(e Entry) error {
	w := s.shallow()
	if err := w.step(e, true); err != nil {
		return err
	}
	*s = *w
	return nil
}

// txn is one statement being applied to a state. With cow (copy on write)
// the state's maps are its own (State.shallow) but the members and vaults
// in them are shared with another state and are copied before they change;
// without, everything in s is changed in place.
type txn struct {
	s    *State
	st   *Statement
	cow  bool
	ownM map[string]bool // members already copied
	ownV map[string]bool // vaults already copied
}

// step checks e against s and applies it (see txn for cow).
func (s *State) step(e Entry, cow bool) error {
	st, err := Decode(e)
	if err != nil {
		return fmt.Errorf("%w (at position %d of the log)", err, s.Seq+1)
	}
	t := &txn{s: s, st: st, cow: cow, ownM: map[string]bool{}, ownV: map[string]bool{}}
	if st.Org != s.Org {
		return t.refuse("it names organisation %q, not %q", st.Org, s.Org)
	}
	if s.Seq >= MaxEntries {
		return t.refuse("the log already has %d statements", MaxEntries)
	}
	if st.Seq != s.Seq+1 {
		return t.refuse("seq %d does not follow %d", st.Seq, s.Seq)
	}
	if prev, _ := chain.Parse(st.Prev); !prev.Equal(s.Head) {
		return t.refuse("prev is not the hash of the log before it (a broken or forked chain)")
	}
	if (st.Type == TypeGenesis) != (st.Seq == 1) {
		if st.Seq == 1 {
			return t.refuse("the first statement must be the genesis")
		}
		return t.refuse("a genesis may only be the first statement")
	}
	key, err := t.signer()
	if err != nil {
		return err
	}
	if err := key.Verify(SignContext, e.Body, e.Sig); err != nil {
		return t.refuse("the signature does not verify under %s's key", st.By)
	}
	if err := t.heads(); err != nil {
		return err
	}
	switch st.Type {
	case TypeGenesis:
		err = t.genesis(key)
	case TypeMember:
		err = t.member()
	case TypeInvite:
		err = t.invite()
	case TypeAccept:
		err = t.accept()
	case TypeRemove:
		err = t.remove()
	case TypeDevice:
		err = t.device()
	case TypeDeviceRevoke:
		err = t.deviceRevoke()
	case TypeGroup:
		err = t.group()
	case TypeVault:
		err = t.vault()
	case TypeGrant:
		err = t.grant()
	case TypeKey:
		err = t.key()
	}
	if err != nil {
		return err
	}
	s.Seq = st.Seq
	s.Head = chain.Link(s.Head, e.Body)
	return nil
}

func (t *txn) refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s%s", ErrRefused, where(t.st), fmt.Sprintf(format, args...))
}

// signer checks that the statement's signer may sign at all and returns
// the key its signature must verify under.
func (t *txn) signer() (*sign.PublicKey, error) {
	s, st := t.s, t.st
	switch {
	case st.Type == TypeGenesis:
		if st.By != ByRoot {
			return nil, t.refuse("a genesis is signed by %q, not %q", ByRoot, st.By)
		}
		root, err := sign.ParsePublicKey(st.Root)
		if err != nil {
			return nil, t.refuse("root key: %v", err) // unreachable: Decode parsed it
		}
		return root, nil
	case st.Type == TypeAccept:
		// An invitee is no member yet: it signs with the key it presents.
		if st.By != st.Account {
			return nil, t.refuse("an acceptance is signed by its own account %s, not by %s", st.Account, st.By)
		}
		id, err := sign.ParsePublicKey(st.Identity)
		if err != nil {
			return nil, t.refuse("identity key: %v", err) // unreachable: Decode parsed it
		}
		return id, nil
	case st.By == ByRoot:
		return s.Root, nil
	}
	m := s.Members[st.By]
	switch {
	case m == nil:
		return nil, t.refuse("the signer %s is not a member", st.By)
	case m.State == StateRemoved:
		return nil, t.refuse("the signer %s was removed", st.By)
	case m.State != StateActive && !(st.Account == st.By && (st.Type == TypeDevice || st.Type == TypeDeviceRevoke || st.Type == TypeRemove)):
		// An accepted account not yet certified only certifies its own
		// devices, revokes them, or leaves.
		return nil, t.refuse("the signer %s is not a certified member yet", st.By)
	}
	id, err := sign.ParsePublicKey(m.Identity)
	if err != nil {
		return nil, t.refuse("identity key of %s: %v", st.By, err) // unreachable
	}
	return id, nil
}

// heads checks that the vault heads a statement gives name vaults that
// exist.
func (t *txn) heads() error {
	for _, v := range slices.Sorted(maps.Keys(t.st.Heads)) {
		if t.s.Vaults[v] == nil {
			return t.refuse("heads name vault %s, which does not exist", v)
		}
	}
	return nil
}

// memberW returns a member of t.s that this statement may change.
func (t *txn) memberW(account string) *MemberInfo {
	m := t.s.Members[account]
	if t.cow && !t.ownM[account] {
		m = m.clone(false)
		t.s.Members[account] = m
		t.ownM[account] = true
	}
	return m
}

// vaultW returns a vault of t.s that this statement may change.
func (t *txn) vaultW(id string) *VaultInfo {
	v := t.s.Vaults[id]
	if t.cow && !t.ownV[id] {
		v = v.clone(false)
		t.s.Vaults[id] = v
		t.ownV[id] = true
	}
	return v
}

// newMember adds a member record that t owns.
func (t *txn) newMember(m *MemberInfo) {
	m.Devices, m.Revoked, m.RemovedAt = map[string][]byte{}, map[string]bool{}, map[string]uint64{}
	m.RevokedAt = map[string]map[string]uint64{}
	t.s.Members[m.Account] = m
	t.ownM[m.Account] = true
}

// accessKey is one account's access to one vault.
type accessKey struct{ vault, account string }

// before records the access the given active accounts have to the given
// vaults, for settle once the statement has changed the state.
func (t *txn) before(accounts, vaults []string) map[accessKey]Access {
	out := map[accessKey]Access{}
	for _, a := range accounts {
		if t.s.Role(a) == "" {
			continue
		}
		for _, v := range vaults {
			if acc := t.s.Access(v, a); acc != None {
				out[accessKey{v, a}] = acc
			}
		}
	}
	return out
}

// settle compares access after the statement with what before recorded:
// a vault someone can no longer read must get a new key generation
// (Rotate); someone who can no longer write there gets RemovedAt set to
// the vault's log head, which the statement's Heads must give.
func (t *txn) settle(was map[accessKey]Access) error {
	keys := slices.SortedFunc(maps.Keys(was), func(a, b accessKey) int {
		return strings.Compare(a.vault+"/"+a.account, b.vault+"/"+b.account)
	})
	var rotate []string
	var writers []accessKey
	for _, k := range keys {
		now := t.s.Access(k.vault, k.account)
		if was[k].Rank() >= Read.Rank() && now.Rank() < Read.Rank() {
			rotate = append(rotate, k.vault)
		}
		if was[k].Rank() >= Write.Rank() && now.Rank() < Write.Rank() {
			if _, ok := t.st.Heads[k.vault]; !ok {
				return t.refuse("%s loses write access to vault %s, so heads must give that vault's log head", k.account, k.vault)
			}
			writers = append(writers, k)
		}
	}
	for _, k := range writers {
		t.memberW(k.account).RemovedAt[k.vault] = t.st.Heads[k.vault]
	}
	for _, v := range rotate {
		t.vaultW(v).Rotate = true
	}
	return nil
}

// allVaults lists the vaults, sorted.
func (t *txn) allVaults() []string { return slices.Sorted(maps.Keys(t.s.Vaults)) }

func (t *txn) genesis(root *sign.PublicKey) error {
	s, st := t.s, t.st
	if ID(root) != st.Org {
		return t.refuse("organisation id %s is not derived from the genesis root key (a swapped root)", st.Org)
	}
	if s.Root != nil && !s.Root.Equal(root) {
		return t.refuse("the genesis names a root key other than the pinned one")
	}
	s.Name, s.Root, s.RootSealed = st.Name, root, st.RootSealed
	s.Creator, s.Created = st.Account, st.Time
	return nil
}

func (t *txn) member() error {
	s, st := t.s, t.st
	m := s.Members[st.Account]
	if m != nil && m.State == StateRemoved {
		return t.refuse("account %s was removed and cannot come back", st.Account)
	}
	switch st.Role {
	case Owner, Admin:
		if st.By != ByRoot {
			return t.refuse("only the root key certifies an %s, not %s", st.Role, st.By)
		}
	default:
		if !s.isAdmin(st.By) {
			return t.refuse("the signer %s is not an owner or administrator", st.By)
		}
	}
	if h := s.emailHolder(st.Email); h != "" && h != st.Account {
		return t.refuse("%q belongs to member %s", st.Email, h)
	}
	if m != nil {
		// Keys never change: an account is certified with the keys it
		// accepted with, and a role change repeats them.
		what := "accepted with"
		if m.State == StateActive {
			what = "is certified with"
		}
		if !bytes.Equal(m.Identity, st.Identity) || !bytes.Equal(m.Encryption, st.Encryption) {
			return t.refuse("the keys differ from those %s %s (a key substitution)", st.Account, what)
		}
		if m.Email != st.Email {
			return t.refuse("the e-mail address differs from the one %s %s", st.Account, what)
		}
		if m.State == StateActive && (m.Role == Owner || m.Role == Admin) && st.Role == Member && st.By != ByRoot {
			return t.refuse("only the root key demotes an %s", m.Role)
		}
	} else if st.By != ByRoot {
		return t.refuse("account %s has not accepted an invitation", st.Account)
	}
	was := t.before([]string{st.Account}, t.allVaults())
	if m == nil {
		t.newMember(&MemberInfo{Account: st.Account})
	}
	m = t.memberW(st.Account)
	m.Email, m.Identity, m.Encryption = st.Email, st.Identity, st.Encryption
	m.Role, m.State = st.Role, StateActive
	delete(s.Invites, st.Email)
	return t.settle(was)
}

func (t *txn) invite() error {
	s, st := t.s, t.st
	if !s.isAdmin(st.By) {
		return t.refuse("the signer %s is not an owner or administrator", st.By)
	}
	if h := s.emailHolder(st.Email); h != "" {
		return t.refuse("%q is already member %s", st.Email, h)
	}
	if _, ok := s.Invites[st.Email]; ok {
		return t.refuse("%q is already invited", st.Email)
	}
	s.Invites[st.Email] = st.By
	return nil
}

func (t *txn) accept() error {
	s, st := t.s, t.st
	if m := s.Members[st.Account]; m != nil {
		switch m.State {
		case StateRemoved:
			return t.refuse("account %s was removed and cannot come back", st.Account)
		case StateActive:
			return t.refuse("account %s is already a member", st.Account)
		default:
			return t.refuse("account %s has already accepted", st.Account)
		}
	}
	if _, ok := s.Invites[st.Email]; !ok {
		return t.refuse("no pending invitation for %q", st.Email)
	}
	delete(s.Invites, st.Email)
	t.newMember(&MemberInfo{
		Account: st.Account, Email: st.Email, Identity: st.Identity, Encryption: st.Encryption,
		State: StateAccepted,
	})
	return nil
}

func (t *txn) remove() error {
	s, st := t.s, t.st
	m := s.Members[st.Account]
	switch {
	case m == nil:
		return t.refuse("account %s is not a member", st.Account)
	case m.State == StateRemoved:
		return t.refuse("account %s is already removed", st.Account)
	}
	high := m.State == StateActive && (m.Role == Owner || m.Role == Admin)
	switch {
	case st.By == st.Account:
		if m.State == StateActive && m.Role == Owner && s.activeOwners() == 1 {
			return t.refuse("the last owner cannot leave")
		}
	case high:
		if st.By != ByRoot {
			return t.refuse("only the root key removes an %s", m.Role)
		}
	case !s.isAdmin(st.By):
		return t.refuse("the signer %s is not an owner or administrator", st.By)
	}
	was := t.before([]string{st.Account}, t.allVaults())
	t.memberW(st.Account).State = StateRemoved
	for name, ms := range s.Groups {
		if i, in := slices.BinarySearch(ms, st.Account); in {
			s.Groups[name] = slices.Delete(slices.Clone(ms), i, i+1)
		}
	}
	return t.settle(was)
}

func (t *txn) device() error {
	s, st := t.s, t.st
	if st.By != st.Account {
		return t.refuse("a member certifies only its own devices")
	}
	m := s.Members[st.Account] // signer() found it accepted or active
	// Device ids are unique per account, not across the organisation:
	// anyone can copy an id it sees, and a first-come rule would let it
	// lock that device out. A log entry names only the device id, so a
	// reader tries each member certifying that id; the signature decides.
	if _, ok := m.Devices[st.Device]; ok {
		return t.refuse("device %s is already certified for %s", st.Device, st.Account)
	}
	id, err := sign.ParsePublicKey(m.Identity)
	if err != nil {
		return t.refuse("identity key of %s: %v", st.Account, err) // unreachable
	}
	if id.Verify(deviceCertContext, deviceCertMessage(st.Account, st.Device, st.Public), st.Cert) != nil {
		return t.refuse("the device certificate does not verify under %s's identity key", st.Account)
	}
	t.memberW(st.Account).Devices[st.Device] = st.Public
	return nil
}

func (t *txn) deviceRevoke() error {
	s, st := t.s, t.st
	m := s.Members[st.Account]
	switch {
	case m == nil:
		return t.refuse("account %s is not a member", st.Account)
	case m.State == StateRemoved:
		return t.refuse("account %s was removed", st.Account)
	case st.By != st.Account && !s.isAdmin(st.By):
		return t.refuse("the signer %s is neither %s nor an owner or administrator", st.By, st.Account)
	}
	if _, ok := m.Devices[st.Device]; !ok {
		return t.refuse("%s has no device %s", st.Account, st.Device)
	}
	if m.Revoked[st.Device] {
		return t.refuse("device %s is already revoked", st.Device)
	}
	// The device's entries up to each vault's head stand; after it they
	// are refused, so the heads must cover every vault it could write to.
	at := map[string]uint64{}
	var rotate []string
	for _, v := range t.allVaults() {
		acc := s.Access(v, st.Account)
		if acc.Rank() >= Write.Rank() {
			h, ok := st.Heads[v]
			if !ok {
				return t.refuse("device %s could write to vault %s, so heads must give that vault's log head", st.Device, v)
			}
			at[v] = h
		}
		if acc.Rank() >= Read.Rank() {
			rotate = append(rotate, v)
		}
	}
	m = t.memberW(st.Account)
	m.Revoked[st.Device] = true
	m.RevokedAt[st.Device] = at
	for _, v := range rotate {
		t.vaultW(v).Rotate = true
	}
	return nil
}

func (t *txn) group() error {
	s, st := t.s, t.st
	if !s.isAdmin(st.By) {
		return t.refuse("the signer %s is not an owner or administrator", st.By)
	}
	for _, a := range st.Members {
		if s.Role(a) == "" {
			return t.refuse("%s is not an active member", a)
		}
	}
	subject := GroupPrefix + st.Name
	var vaults []string
	for _, v := range t.allVaults() {
		if _, ok := s.Vaults[v].Grants[subject]; ok {
			vaults = append(vaults, v)
		}
	}
	was := t.before(append(slices.Clone(s.Groups[st.Name]), st.Members...), vaults)
	s.Groups[st.Name] = append([]string{}, st.Members...)
	return t.settle(was)
}

func (t *txn) vault() error {
	s, st := t.s, t.st
	if !s.isAdmin(st.By) {
		return t.refuse("the signer %s is not an owner or administrator", st.By)
	}
	if s.Vaults[st.Vault] != nil {
		return t.refuse("vault %s already exists", st.Vault)
	}
	s.Vaults[st.Vault] = &VaultInfo{
		ID: st.Vault, SealedName: st.SealedName, Created: st.Time,
		Grants: map[string]Access{}, Keys: map[string]map[uint32][]byte{}, KeyBy: map[string]map[uint32]string{},
	}
	t.ownV[st.Vault] = true
	return nil
}

func (t *txn) grant() error {
	s, st := t.s, t.st
	if s.Vaults[st.Vault] == nil {
		return t.refuse("vault %s does not exist", st.Vault)
	}
	if !s.manages(st.By, st.Vault) {
		return t.refuse("the signer %s has no manage access to vault %s", st.By, st.Vault)
	}
	var accounts []string
	if name, ok := strings.CutPrefix(st.Subject, GroupPrefix); ok {
		ms, ok := s.Groups[name]
		if !ok {
			return t.refuse("there is no group %q", name)
		}
		accounts = ms
	} else {
		if s.Role(st.Subject) == "" {
			return t.refuse("%s is not an active member", st.Subject)
		}
		accounts = []string{st.Subject}
	}
	was := t.before(accounts, []string{st.Vault})
	v := t.vaultW(st.Vault)
	if st.Access == None {
		delete(v.Grants, st.Subject)
	} else {
		v.Grants[st.Subject] = st.Access
	}
	return t.settle(was)
}

func (t *txn) key() error {
	s, st := t.s, t.st
	v := s.Vaults[st.Vault]
	if v == nil {
		return t.refuse("vault %s does not exist", st.Vault)
	}
	if !s.manages(st.By, st.Vault) {
		return t.refuse("the signer %s has no manage access to vault %s", st.By, st.Vault)
	}
	if s.Access(st.Vault, st.Account).Rank() < Read.Rank() {
		return t.refuse("the recipient %s is not an active member with access to vault %s", st.Account, st.Vault)
	}
	if st.Gen > v.Gen+1 {
		return t.refuse("generation %d skips past %d", st.Gen, v.Gen+1)
	}
	if _, ok := v.Keys[st.Account][st.Gen]; ok {
		return t.refuse("generation %d is already wrapped to %s", st.Gen, st.Account)
	}
	v = t.vaultW(st.Vault)
	keys := maps.Clone(v.Keys[st.Account])
	by := maps.Clone(v.KeyBy[st.Account])
	if keys == nil {
		keys, by = map[uint32][]byte{}, map[uint32]string{}
	}
	keys[st.Gen], by[st.Gen] = st.Wrapped, st.By
	v.Keys[st.Account], v.KeyBy[st.Account] = keys, by
	if st.Gen == v.Gen+1 {
		v.Gen, v.Rotate = st.Gen, false
	}
	return nil
}
