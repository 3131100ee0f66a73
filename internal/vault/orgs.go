package vault

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/store"
)

// Organisations and shared vaults (docs/design.md §14). Every operation
// that reads or changes an organisation first brings its log up to date
// from the remote and verifies it from the pinned root; changes are signed
// statements appended to the log.

// Errors of organisation operations, matched with errors.Is.
var (
	// ErrNoOrgs: the remote does not host organisations (a folder).
	ErrNoOrgs = errors.New("this remote does not host organisations; use a safe serve server")
	// ErrFingerprint: a typed fingerprint does not match the key it names.
	ErrFingerprint = errors.New("the fingerprint does not match")
	// ErrNotAllowed: this account's role does not allow the operation.
	ErrNotAllowed = errors.New("your role does not allow this")
	// ErrNoOrg: no organisation or vault by that name or id.
	ErrNoOrg = errors.New("no such organisation")
)

// OrgSummary is one organisation as this account sees it.
type OrgSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`        // as signed; the CLI sanitises
	Fingerprint string `json:"fingerprint"` // the root key's code
	Role        string `json:"role"`        // owner, admin, member; or invited, accepted
	State       string `json:"state"`       // invited, accepted, active
	Members     int    `json:"members"`
	Vaults      int    `json:"vaults"`
	Pinned      bool   `json:"pinned"` // this device pinned the root
}

// OrgMember is one member of an organisation.
type OrgMember struct {
	Account     string `json:"account,omitempty"`
	Email       string `json:"email"`
	Fingerprint string `json:"fingerprint,omitempty"` // the member's identity code (absent for an invitation)
	Role        string `json:"role,omitempty"`
	State       string `json:"state"` // invited, accepted, active, removed
	Devices     int    `json:"devices,omitempty"`
}

// OrgDetail is `safe org show`.
type OrgDetail struct {
	OrgSummary
	Creator string      `json:"creator"`
	Created int64       `json:"created"` // Unix milliseconds
	Seq     uint64      `json:"seq"`     // log head
	Groups  []OrgGroup  `json:"groups"`
	Members []OrgMember `json:"members_list"`
	Shared  []VaultInfo `json:"vaults_list"`
}

// OrgGroup is one group.
type OrgGroup struct {
	Name    string   `json:"name"`
	Members []string `json:"members"` // e-mail addresses
}

// VaultInfo is one vault this account can open.
type VaultInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Org     string `json:"org,omitempty"`      // organisation id for a shared vault
	OrgName string `json:"org_name,omitempty"` // as signed; the CLI sanitises
	Access  string `json:"access"`             // "owner" for a personal vault; read, write, manage
	Items   int    `json:"items"`
	Gen     uint32 `json:"gen,omitempty"` // key generation of a shared vault
}

// VaultMember is one subject with access to a shared vault.
type VaultMember struct {
	Subject string `json:"subject"` // e-mail address or "group:NAME"
	Access  string `json:"access"`
	// Via names the group through which an account holds access, when
	// listing effective members.
	Via string `json:"via,omitempty"`
}

// Progress reports long work (re-encryption): done of total items.
type Progress func(done, total int)

// Accept names the outcome of OrgAccept.
type Accepted struct {
	Org OrgSummary `json:"org"`
	// Fingerprint is this account's own identity code, which the
	// administrator must see to confirm the membership.
	Fingerprint string `json:"fingerprint"`
}

// IdentityFingerprint is this account's identity code (the one
// administrators compare when confirming it).
func (v *Vault) IdentityFingerprint() string {
	if v.acct == nil {
		return ""
	}
	return org.MemberFingerprint(v.acct.Account, v.acct.IdentityPublic, v.acct.EncryptPublic)
}

// accessName names an access for messages.
func accessName(a org.Access) string {
	if a == org.None {
		return "no"
	}
	return string(a)
}

// email is the address this account uses on its remote.
func (v *Vault) email() (string, error) {
	rec, err := v.readSync()
	if err != nil {
		return "", err
	}
	if rec == nil || rec.Kind != "server" {
		return "", fmt.Errorf("%w: register the account on a server first (safe account register)", ErrNoOrgs)
	}
	return rec.Email, nil
}

// findOrg resolves a pinned organisation by id, id prefix (4+ characters)
// or name (case-insensitive).
func (v *Vault) findOrg(ref string) (*org.State, error) {
	ref = strings.TrimSpace(ref)
	if st, ok := v.orgs[strings.ToLower(ref)]; ok {
		return st, nil
	}
	var hits []*org.State
	for id, st := range v.orgs {
		if (len(ref) >= 4 && strings.HasPrefix(id, strings.ToLower(ref))) || strings.EqualFold(st.Name, ref) {
			hits = append(hits, st)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %q (see safe org ls)", ErrNoOrg, ref)
	}
	return nil, fmt.Errorf("%q names %d organisations; use the id (safe org ls)", ref, len(hits))
}

// findVault resolves a vault by id, id prefix (4+ characters) or name
// (case-insensitive).
func (v *Vault) findVault(ref string) (*vaultState, error) {
	ref = strings.TrimSpace(ref)
	if s, ok := v.vaults[strings.ToLower(ref)]; ok {
		return s, nil
	}
	var hits []*vaultState
	for _, id := range v.order {
		s := v.vaults[id]
		if (len(ref) >= 4 && strings.HasPrefix(id, strings.ToLower(ref))) || strings.EqualFold(s.name, ref) {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return nil, fmt.Errorf("%w: no vault %q (see safe vault ls)", ErrNoOrg, ref)
	}
	return nil, fmt.Errorf("%q names %d vaults; use the id (safe vault ls)", ref, len(hits))
}

// memberByEmail finds a member (not removed) by address.
func memberByEmail(st *org.State, email string) (*org.MemberInfo, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, m := range st.Members {
		if m.Email == email && m.State != org.StateRemoved {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not a member of %q", ErrNoOrg, email, st.Name)
}

func (v *Vault) summary(st *org.State) OrgSummary {
	out := OrgSummary{ID: st.Org, Name: st.Name, Fingerprint: org.Fingerprint(st.Root), Pinned: true}
	if m, ok := st.Members[v.acct.Account]; ok {
		out.State, out.Role = m.State, string(m.Role)
		if out.Role == "" {
			out.Role = m.State
		}
	}
	for _, m := range st.Members {
		if m.State == org.StateActive {
			out.Members++
		}
	}
	for vid := range st.Vaults {
		if st.Access(vid, v.acct.Account) != org.None {
			out.Vaults++
		}
	}
	return out
}

// CreateOrg makes an organisation with this account as its owner.
func (v *Vault) CreateOrg(ctx context.Context, r remote.Remote, name string) (OrgSummary, error) {
	if err := v.refresh(ctx); err != nil {
		return OrgSummary{}, err
	}
	ro, err := orgsRemote(r)
	if err != nil {
		return OrgSummary{}, err
	}
	email, err := v.email()
	if err != nil {
		return OrgSummary{}, err
	}
	idPub, err := sign.ParsePublicKey(v.acct.IdentityPublic)
	if err != nil {
		return OrgSummary{}, err
	}
	encPub, err := pke.ParsePublicKey(v.acct.EncryptPublic)
	if err != nil {
		return OrgSummary{}, err
	}
	now := v.opts.now().UnixMilli()
	entries, st, root, err := org.NewOrg(v.opts.Rand, name, v.acct.Account, email, idPub, encPub, now)
	if err != nil {
		return OrgSummary{}, err
	}
	root.Wipe()
	idk, err := v.identityKey()
	if err != nil {
		return OrgSummary{}, err
	}
	b := &orgBuilder{st: st, signer: org.Signer{By: v.acct.Account, Key: idk}, entries: entries, now: now}
	err = b.add(org.Statement{Type: org.TypeDevice, Account: v.acct.Account, Device: v.device.ID, Public: v.device.Public, Cert: v.device.Cert})
	idk.Wipe()
	if err != nil {
		return OrgSummary{}, err
	}
	head, err := ro.CreateOrg(ctx, st.Org, toAPIEntries(b.entries))
	if err != nil {
		return OrgSummary{}, fmt.Errorf("create the organisation on the remote: %w", err)
	}
	if head != st.Seq {
		return OrgSummary{}, remoteTampered("the remote acknowledged head %d for a new organisation of %d statements", head, st.Seq)
	}
	if err := v.saveOrg(ctx, st, b.entries); err != nil {
		return OrgSummary{}, err
	}
	return v.summary(st), nil
}

// Orgs lists this account's organisations and invitations.
func (v *Vault) Orgs(ctx context.Context, r remote.Remote) ([]OrgSummary, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	var out []OrgSummary
	if r != nil {
		ro, err := orgsRemote(r)
		if err != nil {
			return nil, err
		}
		list, err := ro.Orgs(ctx)
		if err != nil {
			return nil, fmt.Errorf("list organisations: %w", err)
		}
		for _, o := range list {
			if _, ok := v.orgs[o.Org]; ok {
				if err := v.pullOrg(ctx, ro, o.Org); err != nil && !errors.Is(err, remote.ErrForbidden) {
					return nil, err
				}
				continue
			}
			inv, err := v.invitation(ctx, ro, o.Org)
			if err != nil {
				return nil, err
			}
			out = append(out, inv.summary)
		}
	}
	for _, st := range v.orgs {
		out = append(out, v.summary(st))
	}
	slices.SortFunc(out, func(a, b OrgSummary) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// invite is an organisation this account is invited to and has not pinned:
// its log, read whole and checked against the root its genesis names (not
// yet against anything the user confirmed).
type invite struct {
	summary OrgSummary
	root    *sign.PublicKey
	entries []org.Entry
	state   *org.State
}

func (v *Vault) invitation(ctx context.Context, ro remote.Orgs, id string) (*invite, error) {
	// Verified as it arrives, so that a server serving garbage is
	// stopped at its first statement, not after reading it all.
	var entries []org.Entry
	var st *org.State
	var root *sign.PublicKey
	for len(entries) < maxInvitation {
		page, err := ro.PullOrg(ctx, id, uint64(len(entries)))
		if err != nil {
			return nil, fmt.Errorf("read organisation %s: %w", id, err)
		}
		for _, e := range toOrgEntries(page.Entries) {
			if st == nil {
				g, err := org.Decode(e)
				if err != nil {
					return nil, remoteTampered("organisation %s genesis: %s", id, sanitize(err.Error()))
				}
				if root, err = sign.ParsePublicKey(g.Root); err != nil {
					return nil, remoteTampered("organisation %s root key: %v", id, err)
				}
				if st, err = org.Replay(id, root, []org.Entry{e}); err != nil {
					return nil, remoteTampered("organisation %s: %s", id, sanitize(err.Error()))
				}
			} else if err := st.Apply(e); err != nil {
				return nil, remoteTampered("organisation %s: %s", id, sanitize(err.Error()))
			}
			entries = append(entries, e)
		}
		if len(page.Entries) == 0 || uint64(len(entries)) >= page.Head {
			break
		}
	}
	if st == nil {
		return nil, remoteTampered("organisation %s has an empty log", id)
	}
	if len(entries) >= maxInvitation {
		return nil, remoteTampered("organisation %s has more than %d statements; this client reads no more from an organisation it has not pinned", id, maxInvitation)
	}
	sum := OrgSummary{ID: id, Name: st.Name, Fingerprint: org.Fingerprint(root), State: org.StateInvited, Role: org.StateInvited}
	if m, ok := st.Members[v.acct.Account]; ok {
		sum.State, sum.Role = m.State, m.State
	}
	for _, m := range st.Members {
		if m.State == org.StateActive {
			sum.Members++
		}
	}
	return &invite{summary: sum, root: root, entries: entries, state: st}, nil
}

// maxInvitation bounds the log read from an organisation not pinned yet.
const maxInvitation = 100_000

// OrgShow describes one organisation; ref is an id, an id prefix or a name.
func (v *Vault) OrgShow(ctx context.Context, r remote.Remote, ref string) (OrgDetail, error) {
	st, err := v.freshOrg(ctx, r, ref)
	if err != nil {
		return OrgDetail{}, err
	}
	d := OrgDetail{OrgSummary: v.summary(st), Creator: st.Creator, Created: st.Created, Seq: st.Seq}
	d.Members = membersOf(st)
	names := map[string]string{}
	for _, m := range st.Members {
		names[m.Account] = m.Email
	}
	for name, ids := range st.Groups {
		g := OrgGroup{Name: name, Members: []string{}}
		for _, id := range ids {
			g.Members = append(g.Members, names[id])
		}
		slices.Sort(g.Members)
		d.Groups = append(d.Groups, g)
	}
	slices.SortFunc(d.Groups, func(a, b OrgGroup) int { return cmp.Compare(a.Name, b.Name) })
	all, err := v.Vaults(ctx)
	if err != nil {
		return OrgDetail{}, err
	}
	for _, vi := range all {
		if vi.Org == st.Org {
			d.Shared = append(d.Shared, vi)
		}
	}
	return d, nil
}

// freshOrg resolves a pinned organisation and, with a remote, brings it up
// to date first.
func (v *Vault) freshOrg(ctx context.Context, r remote.Remote, ref string) (*org.State, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	st, err := v.findOrg(ref)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return st, nil
	}
	ro, err := orgsRemote(r)
	if err != nil {
		return nil, err
	}
	if err := v.pullOrg(ctx, ro, st.Org); err != nil {
		return nil, err
	}
	return v.orgs[st.Org], nil
}

func membersOf(st *org.State) []OrgMember {
	var out []OrgMember
	for _, m := range st.Members {
		om := OrgMember{Account: m.Account, Email: m.Email, Role: string(m.Role), State: m.State, Devices: len(m.Devices)}
		if m.Identity != nil {
			om.Fingerprint = org.MemberFingerprint(m.Account, m.Identity, m.Encryption)
		}
		out = append(out, om)
	}
	for email := range st.Invites {
		out = append(out, OrgMember{Email: email, State: org.StateInvited})
	}
	slices.SortFunc(out, func(a, b OrgMember) int {
		return cmp.Or(cmp.Compare(a.Email, b.Email), cmp.Compare(a.Account, b.Account))
	})
	return out
}

// OrgMembers lists members and invitations.
func (v *Vault) OrgMembers(ctx context.Context, r remote.Remote, ref string) ([]OrgMember, error) {
	st, err := v.freshOrg(ctx, r, ref)
	if err != nil {
		return nil, err
	}
	return membersOf(st), nil
}

// OrgDelete dissolves an organisation (owner) or leaves it (anyone else),
// and forgets it and its shared vaults here.
func (v *Vault) OrgDelete(ctx context.Context, r remote.Remote, ref string) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	// gone: the server no longer has it for us (dissolved, or we were
	// removed): only the local copy is left to forget.
	gone := func(err error) bool { return errors.Is(err, remote.ErrNotFound) || errors.Is(err, remote.ErrForbidden) }
	if st.Creator == v.acct.Account {
		if err := ro.DeleteOrg(ctx, st.Org); err != nil && !gone(err) {
			return fmt.Errorf("dissolve organisation %q: %w", st.Name, err)
		}
	} else if m, ok := st.Members[v.acct.Account]; ok && m.State != org.StateRemoved {
		err := v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
			if m := b.st.Members[v.acct.Account]; m == nil || m.State == org.StateRemoved {
				return nil
			}
			heads, err := v.orgHeads(ctx, r, b.st.Org)
			if err != nil {
				return err
			}
			return b.add(org.Statement{Type: org.TypeRemove, Account: v.acct.Account, Heads: heads})
		})
		if err != nil && !gone(err) {
			return err
		}
	}
	return v.forgetOrg(ctx, st.Org)
}

// forgetOrg deletes an organisation's pin, log and shared vaults locally.
func (v *Vault) forgetOrg(ctx context.Context, id string) error {
	var vaults []string
	for _, vid := range v.order {
		if v.vaults[vid].org == id {
			vaults = append(vaults, vid)
		}
	}
	if err := v.st.Update(ctx, func(tx *store.Tx) error {
		for _, vid := range vaults {
			if err := tx.DeleteVault(vid); err != nil {
				return err
			}
		}
		return tx.DeleteOrg(id)
	}); err != nil {
		return err
	}
	delete(v.orgs, id)
	v.seen = -1
	return v.refresh(ctx)
}

// OrgInvite lets an address accept.
func (v *Vault) OrgInvite(ctx context.Context, r remote.Remote, ref, email string) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	email = strings.ToLower(strings.TrimSpace(email))
	return v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		return b.add(org.Statement{Type: org.TypeInvite, Email: email})
	})
}

// orgOp resolves a pinned organisation and the remote's capability.
func (v *Vault) orgOp(ctx context.Context, r remote.Remote, ref string) (*org.State, remote.Orgs, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, nil, err
	}
	ro, err := orgsRemote(r)
	if err != nil {
		return nil, nil, err
	}
	st, err := v.findOrg(ref)
	if err != nil {
		return nil, nil, err
	}
	return st, ro, nil
}

// OrgAccept pins the organisation's root after checking fingerprint (the
// code the inviter sees) and records this account's acceptance.
func (v *Vault) OrgAccept(ctx context.Context, r remote.Remote, ref, fingerprint string) (Accepted, error) {
	if err := v.refresh(ctx); err != nil {
		return Accepted{}, err
	}
	ro, err := orgsRemote(r)
	if err != nil {
		return Accepted{}, err
	}
	email, err := v.email()
	if err != nil {
		return Accepted{}, err
	}
	list, err := ro.Orgs(ctx)
	if err != nil {
		return Accepted{}, fmt.Errorf("list invitations: %w", err)
	}
	ref = strings.TrimSpace(ref)
	var hits []*invite
	for _, o := range list {
		if _, ok := v.orgs[o.Org]; ok {
			continue
		}
		inv, err := v.invitation(ctx, ro, o.Org)
		if err != nil {
			return Accepted{}, err
		}
		if o.Org == strings.ToLower(ref) || (len(ref) >= 4 && strings.HasPrefix(o.Org, strings.ToLower(ref))) || strings.EqualFold(inv.state.Name, ref) {
			hits = append(hits, inv)
		}
	}
	switch {
	case len(hits) == 0:
		if st, err := v.findOrg(ref); err == nil {
			if m := st.Members[v.acct.Account]; m == nil {
				// Pinned by an accept whose push failed: finish it.
				return v.acceptPinned(ctx, ro, st, email, fingerprint)
			}
			return Accepted{}, fmt.Errorf("you already belong to organisation %q", sanitize(st.Name))
		}
		return Accepted{}, fmt.Errorf("%w: no invitation to %q for %s (ask an administrator to run safe org invite)", ErrNoOrg, ref, email)
	case len(hits) > 1:
		return Accepted{}, fmt.Errorf("%q names %d organisations you are invited to; use the id", ref, len(hits))
	}
	inv := hits[0]
	if !org.SameFingerprint(fingerprint, inv.summary.Fingerprint) {
		return Accepted{}, fmt.Errorf("%w: organisation %q has root fingerprint %s, not the one you were given; do not accept: the server or someone else may be impersonating it", ErrFingerprint, sanitize(inv.state.Name), inv.summary.Fingerprint)
	}
	if _, ok := inv.state.Invites[strings.ToLower(email)]; !ok {
		return Accepted{}, fmt.Errorf("%w: organisation %q has no pending invitation for %s", ErrNoOrg, sanitize(inv.state.Name), email)
	}
	// Pin the root and the verified log, then accept on top of it.
	if err := v.saveOrg(ctx, inv.state, inv.entries); err != nil {
		return Accepted{}, err
	}
	return v.acceptPinned(ctx, ro, inv.state, email, fingerprint)
}

// acceptPinned appends this account's acceptance (and its device) to a
// pinned organisation, after checking the code against the pinned root
// again. A failed push leaves the pin; running accept again finishes.
func (v *Vault) acceptPinned(ctx context.Context, ro remote.Orgs, st *org.State, email, fingerprint string) (Accepted, error) {
	if !org.SameFingerprint(fingerprint, org.Fingerprint(st.Root)) {
		return Accepted{}, fmt.Errorf("%w: organisation %q has root fingerprint %s, not the one you were given", ErrFingerprint, sanitize(st.Name), org.Fingerprint(st.Root))
	}
	err := v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		if b.st.Members[v.acct.Account] != nil {
			return nil // accepted meanwhile (a lost acknowledgement)
		}
		if err := b.add(org.Statement{Type: org.TypeAccept, Account: v.acct.Account, Email: strings.ToLower(email), Identity: v.acct.IdentityPublic, Encryption: v.acct.EncryptPublic}); err != nil {
			return err
		}
		return b.add(org.Statement{Type: org.TypeDevice, Account: v.acct.Account, Device: v.device.ID, Public: v.device.Public, Cert: v.device.Cert})
	})
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{Org: v.summary(v.orgs[st.Org]), Fingerprint: v.IdentityFingerprint()}, nil
}

// OrgConfirm certifies an accepted member after checking fingerprint (the
// code the member sees).
func (v *Vault) OrgConfirm(ctx context.Context, r remote.Remote, ref, email, fingerprint string) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	return v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		m, err := memberByEmail(b.st, email)
		if err != nil {
			return err
		}
		if m.State != org.StateAccepted {
			return fmt.Errorf("%s is %s, not waiting for confirmation", m.Email, m.State)
		}
		want := org.MemberFingerprint(m.Account, m.Identity, m.Encryption)
		if !org.SameFingerprint(fingerprint, want) {
			return fmt.Errorf("%w: %s presented keys with fingerprint %s, not the one you were given; do not confirm: someone may be substituting their keys", ErrFingerprint, m.Email, want)
		}
		if err := b.add(org.Statement{Type: org.TypeMember, Account: m.Account, Email: m.Email, Identity: m.Identity, Encryption: m.Encryption, Role: org.Member}); err != nil {
			return err
		}
		return v.wrapMissing(b)
	})
}

// OrgRemove removes a member and rotates every vault key it could read.
func (v *Vault) OrgRemove(ctx context.Context, r remote.Remote, ref, email string, p Progress) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	var heads map[string]uint64
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		// Heads are taken again in every round: the server refuses
		// heads that are not the vaults' current ones (stale).
		var err error
		if heads, err = v.orgHeads(ctx, r, b.st.Org); err != nil {
			return err
		}
		m, err := memberByEmail(b.st, email)
		if err != nil {
			if _, ok := b.st.Invites[strings.ToLower(strings.TrimSpace(email))]; ok {
				return fmt.Errorf("%s has not accepted yet; an invitation cannot be withdrawn, but it gives no access", email)
			}
			return err
		}
		s := org.Statement{Type: org.TypeRemove, Account: m.Account, Heads: heads}
		if m.Role == org.Owner || m.Role == org.Admin {
			return b.asRoot(v, s)
		}
		return b.add(s)
	})
	if err != nil {
		return err
	}
	if err := v.ensureSharedVaults(ctx); err != nil {
		return err
	}
	return v.finishRotations(ctx, r, ro, st.Org, p)
}

// orgHeads returns the log heads of the organisation's vaults to sign
// into a statement that ends someone's write access: entries after them by
// that account are refused for ever. Only heads this device verified are
// signed: each vault it holds is synced first. A server that chose them
// could let a removed member keep writing (too high) or void honest
// entries (too low). A vault this device does not hold is left out; if
// the statement needs it, the rules refuse it and the user syncs first.
func (v *Vault) orgHeads(ctx context.Context, r remote.Remote, id string) (map[string]uint64, error) {
	heads := map[string]uint64{}
	for _, vid := range slices.Clone(v.order) {
		s := v.vaults[vid]
		if s.org != id || v.orgAccess(s) == org.None {
			continue
		}
		if err := v.syncLog(ctx, r, vid, &SyncResult{}); err != nil {
			return nil, fmt.Errorf("sync vault %q before changing access: %w", s.name, err)
		}
		rec, err := v.readSync()
		if err != nil {
			return nil, err
		}
		seq, _ := rec.pin(vid)
		heads[vid] = seq
	}
	if len(heads) == 0 {
		return nil, nil
	}
	return heads, nil
}

// OrgSetRole changes a member's organisation role (admin or member).
func (v *Vault) OrgSetRole(ctx context.Context, r remote.Remote, ref, email, role string) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	want := org.Role(strings.ToLower(role))
	if want != org.Admin && want != org.Member {
		return fmt.Errorf("role %q: use admin or member", role)
	}
	var heads map[string]uint64
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		// Heads are taken again in every round: the server refuses
		// heads that are not the vaults' current ones (stale).
		var err error
		if heads, err = v.orgHeads(ctx, r, b.st.Org); err != nil {
			return err
		}
		m, err := memberByEmail(b.st, email)
		if err != nil {
			return err
		}
		if m.State != org.StateActive {
			return fmt.Errorf("%s is %s; confirm the membership first (safe org confirm)", m.Email, m.State)
		}
		if m.Role == want {
			return nil
		}
		s := org.Statement{Type: org.TypeMember, Account: m.Account, Email: m.Email, Identity: m.Identity, Encryption: m.Encryption, Role: want}
		if want == org.Member {
			s.Heads = heads // a demoted administrator may lose write access
		}
		if want == org.Admin || m.Role == org.Admin || m.Role == org.Owner {
			if err := b.asRoot(v, s); err != nil {
				return err
			}
		} else if err := b.add(s); err != nil {
			return err
		}
		return v.wrapMissing(b)
	})
	if err != nil {
		return err
	}
	return v.finishRotations(ctx, r, ro, st.Org, nil)
}

// GroupCreate makes an empty group.
func (v *Vault) GroupCreate(ctx context.Context, r remote.Remote, ref, name string) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	return v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		if _, ok := b.st.Groups[name]; ok {
			return fmt.Errorf("group %q already exists", name)
		}
		return b.add(org.Statement{Type: org.TypeGroup, Name: name})
	})
}

// GroupAdd adds a member to a group (and wraps the group's vault keys to
// it).
func (v *Vault) GroupAdd(ctx context.Context, r remote.Remote, ref, name, email string) error {
	return v.groupChange(ctx, r, ref, name, email, true, nil)
}

// GroupRemove takes a member out of a group and rotates the keys of the
// vaults it loses.
func (v *Vault) GroupRemove(ctx context.Context, r remote.Remote, ref, name, email string, p Progress) error {
	return v.groupChange(ctx, r, ref, name, email, false, p)
}

func (v *Vault) groupChange(ctx context.Context, r remote.Remote, ref, name, email string, add bool, p Progress) error {
	st, ro, err := v.orgOp(ctx, r, ref)
	if err != nil {
		return err
	}
	var heads map[string]uint64
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		if !add {
			var err error
			if heads, err = v.orgHeads(ctx, r, b.st.Org); err != nil {
				return err
			}
		}
		cur, ok := b.st.Groups[name]
		if !ok {
			return fmt.Errorf("%w: no group %q in %q", ErrNoOrg, name, b.st.Name)
		}
		m, err := memberByEmail(b.st, email)
		if err != nil {
			return err
		}
		members := slices.Clone(cur)
		has := slices.Contains(members, m.Account)
		switch {
		case add && has, !add && !has:
			return nil
		case add:
			if m.State != org.StateActive {
				return fmt.Errorf("%s is %s; confirm the membership first (safe org confirm)", m.Email, m.State)
			}
			members = append(members, m.Account)
		default:
			members = slices.DeleteFunc(members, func(a string) bool { return a == m.Account })
		}
		slices.Sort(members)
		if err := b.add(org.Statement{Type: org.TypeGroup, Name: name, Members: members, Heads: heads}); err != nil {
			return err
		}
		return v.wrapMissing(b)
	})
	if err != nil {
		return err
	}
	return v.finishRotations(ctx, r, ro, st.Org, p)
}

// wrapMissing adds key statements for every (vault, recipient, generation)
// the state says should have a wrap and has none, for the vaults whose
// every generation this device holds.
func (v *Vault) wrapMissing(b *orgBuilder) error {
	vids := make([]string, 0, len(b.st.Vaults))
	for vid := range b.st.Vaults {
		vids = append(vids, vid)
	}
	slices.Sort(vids)
	for _, vid := range vids {
		info := b.st.Vaults[vid]
		s, ok := v.vaults[vid]
		if !ok || s.org != b.st.Org || s.gen != info.Gen {
			continue
		}
		for _, rcpt := range b.st.Recipients(vid) {
			for g := uint32(1); g <= info.Gen; g++ {
				if _, ok := info.Keys[rcpt][g]; ok {
					continue
				}
				key := s.key
				if g < s.gen {
					key = s.old[g]
				}
				if err := v.addWrap(b, vid, rcpt, g, key); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// addWrap seals a vault key generation to a member and signs the wrap.
func (v *Vault) addWrap(b *orgBuilder, vid, rcpt string, gen uint32, key []byte) error {
	m := b.st.Members[rcpt]
	pub, err := pke.ParsePublicKey(m.Encryption)
	if err != nil {
		return err
	}
	wrapped, err := pke.Seal(v.opts.Rand, pub, org.WrapContext(b.st.Org, vid, rcpt, gen), key)
	if err != nil {
		return err
	}
	return b.add(org.Statement{Type: org.TypeKey, Vault: vid, Account: rcpt, Gen: gen, Wrapped: wrapped})
}

// CreateVault makes a vault: personal when orgRef is "", else shared in
// that organisation (the caller must be an administrator).
func (v *Vault) CreateVault(ctx context.Context, r remote.Remote, name, orgRef string) (VaultInfo, error) {
	if err := v.refresh(ctx); err != nil {
		return VaultInfo{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > org.MaxName {
		return VaultInfo{}, fmt.Errorf("a vault name has 1 to %d bytes", org.MaxName)
	}
	id, err := newID(v.opts.Rand)
	if err != nil {
		return VaultInfo{}, err
	}
	if orgRef == "" {
		// Dated after every existing vault, so that the vault made at
		// init stays the first (the default) whatever the clock says.
		now := v.opts.now().Unix()
		for _, s := range v.vaults {
			if s.org == "" {
				now = max(now, s.created+1)
			}
		}
		if err := v.st.Update(ctx, func(tx *store.Tx) error {
			return createVault(tx, v.opts.Rand, v.mk, v.macKey, v.acct.Account, id, name, time.Unix(now, 0))
		}); err != nil {
			return VaultInfo{}, err
		}
		v.seen = -1
		if err := v.refresh(ctx); err != nil {
			return VaultInfo{}, err
		}
		return v.vaultInfo(v.vaults[id]), nil
	}
	st, ro, err := v.orgOp(ctx, r, orgRef)
	if err != nil {
		return VaultInfo{}, err
	}
	key, err := randomKey(v.opts.Rand)
	if err != nil {
		return VaultInfo{}, err
	}
	defer key.Wipe()
	sealedName, err := envelope.Seal(v.opts.Rand, key, envelope.Context{Purpose: purposeVaultName, Account: st.Org, Vault: id}, []byte(name))
	if err != nil {
		return VaultInfo{}, err
	}
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		if err := b.add(org.Statement{Type: org.TypeVault, Vault: id, SealedName: sealedName}); err != nil {
			return err
		}
		for _, rcpt := range b.st.Recipients(id) {
			if err := v.addWrap(b, id, rcpt, 1, key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return VaultInfo{}, err
	}
	if err := ro.PutOrgVault(ctx, st.Org, id); err != nil {
		return VaultInfo{}, fmt.Errorf("create the shared vault on the remote: %w", err)
	}
	if err := v.ensureSharedVaults(ctx); err != nil {
		return VaultInfo{}, err
	}
	s, ok := v.vaults[id]
	if !ok {
		return VaultInfo{}, fmt.Errorf("vault %s was created but its key was not wrapped to this account", id)
	}
	return v.vaultInfo(s), nil
}

func (v *Vault) vaultInfo(s *vaultState) VaultInfo {
	vi := VaultInfo{ID: s.id, Name: s.name, Access: "owner"}
	if s.org != "" {
		vi.Org, vi.Gen, vi.Access = s.org, s.gen, accessName(v.orgAccess(s))
		if st, ok := v.orgs[s.org]; ok {
			vi.OrgName = st.Name
		}
	}
	for _, o := range s.views {
		if !o.Trashed {
			vi.Items++
		}
	}
	return vi
}

// Vaults lists the vaults this account can open.
func (v *Vault) Vaults(ctx context.Context) ([]VaultInfo, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	out := make([]VaultInfo, 0, len(v.order))
	for _, id := range v.order {
		out = append(out, v.vaultInfo(v.vaults[id]))
	}
	return out, nil
}

// sharedVault resolves a shared vault and its organisation.
func (v *Vault) sharedVault(ctx context.Context, r remote.Remote, ref string) (*vaultState, *org.State, remote.Orgs, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, nil, nil, err
	}
	ro, err := orgsRemote(r)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := v.findVault(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.org == "" {
		return nil, nil, nil, fmt.Errorf("vault %q is personal; share a vault made with safe vault create NAME --org ORG", s.name)
	}
	st, ok := v.orgs[s.org]
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: the organisation of vault %q", ErrNoOrg, s.name)
	}
	return s, st, ro, nil
}

// subjectOf turns an e-mail address or "group:NAME" into a grant subject.
func subjectOf(st *org.State, subject string) (string, error) {
	if name, ok := strings.CutPrefix(subject, org.GroupPrefix); ok {
		if _, ok := st.Groups[name]; !ok {
			return "", fmt.Errorf("%w: no group %q in %q", ErrNoOrg, name, st.Name)
		}
		return subject, nil
	}
	m, err := memberByEmail(st, subject)
	if err != nil {
		return "", err
	}
	if m.State != org.StateActive {
		return "", fmt.Errorf("%s is %s; confirm the membership first (safe org confirm)", m.Email, m.State)
	}
	return m.Account, nil
}

// ShareVault grants subject (an e-mail address or "group:NAME") access to
// a shared vault.
func (v *Vault) ShareVault(ctx context.Context, r remote.Remote, vault, subject, access string) error {
	s, st, ro, err := v.sharedVault(ctx, r, vault)
	if err != nil {
		return err
	}
	a := org.Access(strings.ToLower(access))
	if a == org.None || a.Rank() < 0 {
		return fmt.Errorf("role %q: use read, write or manage", access)
	}
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		subj, err := subjectOf(b.st, subject)
		if err != nil {
			return err
		}
		if b.st.Vaults[s.id].Gen != s.gen {
			return fmt.Errorf("this device does not hold the newest key of vault %q yet; run safe sync and try again", s.name)
		}
		if err := b.add(org.Statement{Type: org.TypeGrant, Vault: s.id, Subject: subj, Access: a}); err != nil {
			return err
		}
		return v.wrapMissing(b)
	})
	if err != nil {
		return err
	}
	return v.finishRotations(ctx, r, ro, st.Org, nil)
}

// UnshareVault removes subject's access and rotates the vault's key.
func (v *Vault) UnshareVault(ctx context.Context, r remote.Remote, vault, subject string, p Progress) error {
	s, st, ro, err := v.sharedVault(ctx, r, vault)
	if err != nil {
		return err
	}
	var heads map[string]uint64
	err = v.orgChange(ctx, ro, st.Org, func(b *orgBuilder) error {
		// Heads are taken again in every round: the server refuses
		// heads that are not the vaults' current ones (stale).
		var err error
		if heads, err = v.orgHeads(ctx, r, b.st.Org); err != nil {
			return err
		}
		subj, err := subjectOf(b.st, subject)
		if err != nil {
			return err
		}
		if _, ok := b.st.Vaults[s.id].Grants[subj]; !ok {
			return fmt.Errorf("%s has no grant on vault %q (administrators have access to every vault)", subject, s.name)
		}
		var h map[string]uint64
		if n, ok := heads[s.id]; ok {
			h = map[string]uint64{s.id: n}
		}
		return b.add(org.Statement{Type: org.TypeGrant, Vault: s.id, Subject: subj, Access: org.None, Heads: h})
	})
	if err != nil {
		return err
	}
	return v.finishRotations(ctx, r, ro, st.Org, p)
}

// VaultMembers lists who has access to a shared vault: its grants, and the
// administrators, who manage every vault.
func (v *Vault) VaultMembers(ctx context.Context, r remote.Remote, vault string) ([]VaultMember, error) {
	s, st, ro, err := v.sharedVault(ctx, r, vault)
	if err != nil {
		return nil, err
	}
	if err := v.pullOrg(ctx, ro, st.Org); err != nil {
		return nil, err
	}
	st = v.orgs[st.Org]
	var out []VaultMember
	for subj, a := range st.Vaults[s.id].Grants {
		if a == org.None {
			continue
		}
		name := subj
		if m, ok := st.Members[subj]; ok {
			if m.State != org.StateActive {
				continue
			}
			name = m.Email
		}
		out = append(out, VaultMember{Subject: name, Access: string(a)})
	}
	for _, m := range st.Members {
		if m.State == org.StateActive && (m.Role == org.Owner || m.Role == org.Admin) {
			out = append(out, VaultMember{Subject: m.Email, Access: string(org.Manage), Via: string(m.Role)})
		}
	}
	slices.SortFunc(out, func(a, b VaultMember) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Via, b.Via))
	})
	return out, nil
}

// finishRotations rotates every vault of the organisation whose key must
// change (someone lost access since its newest generation) and which this
// account manages with every generation at hand.
func (v *Vault) finishRotations(ctx context.Context, r remote.Remote, ro remote.Orgs, id string, p Progress) error {
	st, ok := v.orgs[id]
	if !ok {
		return nil
	}
	vids := make([]string, 0, len(st.Vaults))
	for vid, info := range st.Vaults {
		if info.Rotate && st.Access(vid, v.acct.Account) == org.Manage {
			vids = append(vids, vid)
		}
	}
	slices.Sort(vids)
	for _, vid := range vids {
		if s, ok := v.vaults[vid]; !ok || s.gen != st.Vaults[vid].Gen {
			continue
		}
		if err := v.rotate(ctx, r, ro, id, vid, p); err != nil {
			return fmt.Errorf("rotate the key of vault %s: %w", vid, err)
		}
	}
	return nil
}

// maxCopyAttachment bounds an attachment that MoveItem and CopyItem copy
// (through memory, never a plaintext file).
const maxCopyAttachment = 256 << 20

// rotateBatch is how many items one re-encryption transaction rewrites.
const rotateBatch = 500

// rotate makes a new key generation for a shared vault, wraps it to every
// remaining reader, and re-encrypts every item under it as a new revision
// (history keeps the older revisions under the keys they were written
// with), then pushes the vault's log.
func (v *Vault) rotate(ctx context.Context, r remote.Remote, ro remote.Orgs, orgID, vid string, p Progress) error {
	res := &SyncResult{}
	if err := v.syncLog(ctx, r, vid, res); err != nil {
		return err
	}
	key, err := randomKey(v.opts.Rand)
	if err != nil {
		return err
	}
	defer key.Wipe()
	err = v.orgChange(ctx, ro, orgID, func(b *orgBuilder) error {
		info := b.st.Vaults[vid]
		if !info.Rotate {
			return nil // someone else rotated meanwhile
		}
		gen := info.Gen + 1
		for _, rcpt := range b.st.Recipients(vid) {
			if err := v.addWrap(b, vid, rcpt, gen, key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := v.ensureSharedVaults(ctx); err != nil {
		return err
	}
	if err := v.reencrypt(ctx, vid, p); err != nil {
		return err
	}
	return v.syncLog(ctx, r, vid, res)
}

// reencrypt rewrites every item of a shared vault that is not under its
// newest key generation, in batches, reporting progress.
func (v *Vault) reencrypt(ctx context.Context, vid string, p Progress) error {
	s := v.vaults[vid]
	ids := make([]string, 0, len(s.views))
	for id := range s.views {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	total := len(ids)
	if p != nil {
		p(0, total)
	}
	for start := 0; start < total; start += rotateBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		s = v.vaults[vid]
		var puts []item.Item
		for _, id := range ids[start:min(start+rotateBatch, total)] {
			if _, ok := s.views[id]; !ok {
				continue
			}
			r, err := v.st.Item(vid, id)
			if err != nil {
				return err
			}
			if _, err := envelope.Open(s.key, itemContext(s.acct, s.id, id, r.Revision), r.Payload); err == nil {
				continue // already under the newest key
			}
			it, err := v.read(s, id)
			if err != nil {
				return err
			}
			puts = append(puts, it)
		}
		if len(puts) > 0 {
			if err := v.write(ctx, s, puts, nil); err != nil {
				return err
			}
		}
		if p != nil {
			p(min(start+rotateBatch, total), total)
		}
	}
	return nil
}

// ResolveIn finds an item by ref (id, id prefix or title) within one vault
// and returns its id, so that item commands can take --vault.
func (v *Vault) ResolveIn(ctx context.Context, vault, ref string) (string, error) {
	if err := v.refresh(ctx); err != nil {
		return "", err
	}
	s, err := v.findVault(vault)
	if err != nil {
		return "", err
	}
	_, o, err := v.resolveIn(ctx, ref, false, s.id)
	if errors.Is(err, ErrNotFound) {
		_, o, err = v.resolveIn(ctx, ref, true, s.id)
	}
	if err != nil {
		return "", err
	}
	return o.ID, nil
}

// MoveItem moves an item to another vault: a copy there (attachments
// included), then the original purged.
func (v *Vault) MoveItem(ctx context.Context, ref, vault string) (item.Item, error) {
	it, src, err := v.copyItem(ctx, ref, vault)
	if err != nil {
		return item.Item{}, err
	}
	// The original goes for good (through the trash, as purge requires),
	// so that it is not left readable in the vault it left.
	if _, err := v.Trash(ctx, src); err != nil {
		return it, fmt.Errorf("the item was copied to %q but the original could not be removed: %w", vault, err)
	}
	if _, err := v.Purge(ctx, src); err != nil {
		return it, fmt.Errorf("the item was copied to %q but the original could not be removed: %w", vault, err)
	}
	return it, nil
}

// CopyItem copies an item (attachments included) into another vault.
func (v *Vault) CopyItem(ctx context.Context, ref, vault string) (item.Item, error) {
	it, _, err := v.copyItem(ctx, ref, vault)
	return it, err
}

func (v *Vault) copyItem(ctx context.Context, ref, vault string) (item.Item, string, error) {
	src, err := v.Get(ctx, ref)
	if err != nil {
		return item.Item{}, "", err
	}
	from, err := v.vaultOf(src.ID)
	if err != nil {
		return item.Item{}, "", err
	}
	to, err := v.findVault(vault)
	if err != nil {
		return item.Item{}, "", err
	}
	if to.id == from.id {
		return item.Item{}, "", fmt.Errorf("item %q is already in vault %q", src.Title, to.name)
	}
	cp := src.Clone()
	atts := cp.Attachments
	cp.ID, cp.Revision, cp.Attachments, cp.Conflicts = "", 0, nil, nil
	added, err := v.AddTo(ctx, to.id, []item.Item{cp})
	if err != nil {
		return item.Item{}, "", err
	}
	out := added[0]
	for _, a := range atts {
		if a.Size > maxCopyAttachment {
			return out, "", fmt.Errorf("attachment %q has %d bytes; items with attachments above %d MiB are copied by hand (safe attachment get, then add)", a.Name, a.Size, maxCopyAttachment>>20)
		}
		// One buffer of the final size: growing it would leave copies
		// of the plaintext behind, unwiped.
		var buf bytes.Buffer
		buf.Grow(int(a.Size))
		if _, err := v.ReadAttachment(ctx, src.ID, a.Name, &buf); err != nil {
			return out, "", fmt.Errorf("copy attachment %q: %w", a.Name, err)
		}
		data := buf.Bytes()
		out, err = v.Attach(ctx, out.ID, a.Name, bytes.NewReader(data))
		wipeBytes(data)
		if err != nil {
			return out, "", fmt.Errorf("copy attachment %q: %w", a.Name, err)
		}
	}
	return out, src.ID, nil
}

// RevokeDeviceInOrgs records in every organisation that one of this
// account's devices is revoked (its entries are refused from then on) and
// rotates the keys of the vaults this account manages there. Call it with
// the server-side revocation (safe device revoke).
func (v *Vault) RevokeDeviceInOrgs(ctx context.Context, r remote.Remote, device string, p Progress) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	ro, ok := r.(remote.Orgs)
	if !ok {
		return nil
	}
	if device == v.device.ID {
		return fmt.Errorf("device %s is this device", device)
	}
	ids := make([]string, 0, len(v.orgs))
	for id := range v.orgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := v.orgs[id].Members[v.acct.Account]
		if m == nil || m.Revoked[device] {
			continue
		}
		if _, ok := m.Devices[device]; !ok {
			continue
		}
		if err := v.orgChange(ctx, ro, id, func(b *orgBuilder) error {
			heads, err := v.orgHeads(ctx, r, id)
			if err != nil {
				return err
			}
			return b.add(org.Statement{Type: org.TypeDeviceRevoke, Account: v.acct.Account, Device: device, Heads: heads})
		}); err != nil {
			return err
		}
		if err := v.finishRotations(ctx, r, ro, id, p); err != nil {
			return err
		}
	}
	return nil
}
