package org

import (
	"bytes"
	"maps"
	"slices"
	"strings"

	"github.com/safehold/safehold/internal/sign"
)

// newState is the state of a log with no statement yet: Replay and NewOrg
// start from it. A non-nil root is the pinned key the genesis must name.
func newState(org string, root *sign.PublicKey) *State {
	return &State{
		Org:     org,
		Root:    root,
		Head:    Genesis(org),
		Members: map[string]*MemberInfo{},
		Invites: map[string]string{},
		Groups:  map[string][]string{},
		Vaults:  map[string]*VaultInfo{},
	}
}

// Role returns an account's org role if it is an active member ("" if not).
func (s *State) Role(account string) Role {
	if m := s.Members[account]; m != nil && m.State == StateActive {
		return m.Role
	}
	return ""
}

// isAdmin reports whether by signs as an administrator: the root key or an
// active owner or administrator.
func (s *State) isAdmin(by string) bool {
	if by == ByRoot {
		return true
	}
	r := s.Role(by)
	return r == Owner || r == Admin
}

// manages reports whether by may sign grants and key wraps for vault.
func (s *State) manages(by, vault string) bool {
	return s.isAdmin(by) || s.Access(vault, by) == Manage
}

// Access returns an account's effective access to a vault: the highest of
// its direct grant and its groups' grants, None for anyone not active, and
// Manage for active owners and administrators.
func (s *State) Access(vault, account string) Access {
	v := s.Vaults[vault]
	if v == nil {
		return None
	}
	switch s.Role(account) {
	case "":
		return None
	case Owner, Admin:
		return Manage
	}
	best := v.Grants[account]
	for subject, a := range v.Grants {
		if a.Rank() <= best.Rank() {
			continue
		}
		if name, ok := strings.CutPrefix(subject, GroupPrefix); ok {
			if _, in := slices.BinarySearch(s.Groups[name], account); in {
				best = a
			}
		}
	}
	return best
}

// Recipients lists the active members with Read or more on vault, sorted.
func (s *State) Recipients(vault string) []string {
	var out []string
	for a := range s.Members {
		if s.Access(vault, a).Rank() >= Read.Rank() {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// DeviceKey returns the certified public key of a member's device, and
// whether that device is revoked. ok is false for unknown devices. A
// removed member's devices are reported as they were; check the member's
// State as well.
func (s *State) DeviceKey(account, device string) (pub *sign.PublicKey, revoked, ok bool) {
	m := s.Members[account]
	if m == nil {
		return nil, false, false
	}
	raw, ok := m.Devices[device]
	if !ok {
		return nil, false, false
	}
	pub, err := sign.ParsePublicKey(raw)
	if err != nil {
		return nil, false, false // unreachable: device statements carry parsed keys
	}
	return pub, m.Revoked[device], true
}

// DeviceOwners returns the accounts that certified a device with this id,
// sorted (usually one; ids are unique per account only, so a member may
// copy another's id, which gains it nothing: an entry is attributed by the
// key whose signature verifies).
func (s *State) DeviceOwners(device string) []string {
	var out []string
	for a, m := range s.Members {
		if _, ok := m.Devices[device]; ok {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// MayWrite reports whether an entry at vault log position seq written by
// account is allowed: the account has Write now, or lost it at a position
// at or after seq (RemovedAt).
func (s *State) MayWrite(vault, account string, seq uint64) bool {
	if s.Access(vault, account).Rank() >= Write.Rank() {
		return true
	}
	m := s.Members[account]
	if m == nil {
		return false
	}
	at, ok := m.RemovedAt[vault]
	return ok && seq <= at
}

// activeOwners counts the active owners.
func (s *State) activeOwners() int {
	n := 0
	for _, m := range s.Members {
		if m.State == StateActive && m.Role == Owner {
			n++
		}
	}
	return n
}

// emailHolder returns the account that is not removed and holds email, if
// any.
func (s *State) emailHolder(email string) string {
	for a, m := range s.Members {
		if m.State != StateRemoved && m.Email == email {
			return a
		}
	}
	return ""
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := *s
	c.RootSealed = bytes.Clone(s.RootSealed)
	c.Members = make(map[string]*MemberInfo, len(s.Members))
	for a, m := range s.Members {
		c.Members[a] = m.clone(true)
	}
	c.Invites = maps.Clone(s.Invites)
	c.Groups = make(map[string][]string, len(s.Groups))
	for g, ms := range s.Groups {
		c.Groups[g] = slices.Clone(ms)
	}
	c.Vaults = make(map[string]*VaultInfo, len(s.Vaults))
	for id, v := range s.Vaults {
		c.Vaults[id] = v.clone(true)
	}
	return &c
}

// shallow returns a copy of s with maps of its own that share the members,
// vaults and group lists of s: the copy-on-write start of a statement that
// may fail (see txn). *sign.PublicKey is immutable and stays shared.
func (s *State) shallow() *State {
	c := *s
	c.Members = maps.Clone(s.Members)
	c.Invites = maps.Clone(s.Invites)
	c.Groups = maps.Clone(s.Groups)
	c.Vaults = maps.Clone(s.Vaults)
	if c.Members == nil {
		c.Members = map[string]*MemberInfo{}
	}
	if c.Invites == nil {
		c.Invites = map[string]string{}
	}
	if c.Groups == nil {
		c.Groups = map[string][]string{}
	}
	if c.Vaults == nil {
		c.Vaults = map[string]*VaultInfo{}
	}
	return &c
}

// clone copies m with maps of its own; deep also copies the byte slices
// and the inner maps of RevokedAt, which this package never changes in
// place.
func (m *MemberInfo) clone(deep bool) *MemberInfo {
	c := *m
	c.Devices = make(map[string][]byte, len(m.Devices))
	for d, pub := range m.Devices {
		if deep {
			pub = bytes.Clone(pub)
		}
		c.Devices[d] = pub
	}
	c.Revoked = maps.Clone(m.Revoked)
	c.RemovedAt = maps.Clone(m.RemovedAt)
	c.RevokedAt = make(map[string]map[string]uint64, len(m.RevokedAt))
	for d, at := range m.RevokedAt {
		if deep {
			at = maps.Clone(at)
		}
		c.RevokedAt[d] = at
	}
	if c.Revoked == nil {
		c.Revoked = map[string]bool{}
	}
	if c.RemovedAt == nil {
		c.RemovedAt = map[string]uint64{}
	}
	if deep {
		c.Identity = bytes.Clone(m.Identity)
		c.Encryption = bytes.Clone(m.Encryption)
	}
	return &c
}

// clone copies v with maps of its own. Shallow copies share the inner maps
// of Keys and KeyBy, which txn replaces rather than changes; deep copies
// copy everything.
func (v *VaultInfo) clone(deep bool) *VaultInfo {
	c := *v
	c.Grants = maps.Clone(v.Grants)
	if c.Grants == nil {
		c.Grants = map[string]Access{}
	}
	c.Keys = make(map[string]map[uint32][]byte, len(v.Keys))
	for a, gens := range v.Keys {
		if deep {
			cg := make(map[uint32][]byte, len(gens))
			for g, w := range gens {
				cg[g] = bytes.Clone(w)
			}
			gens = cg
		}
		c.Keys[a] = gens
	}
	c.KeyBy = make(map[string]map[uint32]string, len(v.KeyBy))
	for a, by := range v.KeyBy {
		if deep {
			by = maps.Clone(by)
		}
		c.KeyBy[a] = by
	}
	if deep {
		c.SealedName = bytes.Clone(v.SealedName)
	}
	return &c
}
