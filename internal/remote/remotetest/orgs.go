package remotetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/sign"
)

// The organisation part of the suite runs for a Remote that implements
// remote.Orgs (a server); a Remote without that capability (a folder)
// skips it. It writes real statements (package org, signed with real
// identity keys, from a real root key), because a server replays them.

// orgAccount is a registered account with the keys it presents to
// organisations.
type orgAccount struct {
	*account
	o        remote.Orgs
	identity *sign.PrivateKey
	enc      *pke.PrivateKey
}

// orgAccount registers an account, or skips the test if the Remote hosts
// no organisations.
func (s *suite) orgAccount(t *testing.T) *orgAccount {
	t.Helper()
	a := s.register(t)
	o, ok := a.r.(remote.Orgs)
	if !ok {
		t.Skipf("%T does not implement remote.Orgs", a.r)
	}
	id, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(id.Wipe)
	enc, err := pke.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Wipe)
	return &orgAccount{account: a, o: o, identity: id, enc: enc}
}

// orgLog follows an organisation's log as its honest members see it.
type orgLog struct {
	t     *testing.T
	id    string
	st    *org.State
	root  *sign.PrivateKey
	first []org.Entry // the statements CreateOrg sent
}

// createOrg makes an organisation owned by a on the remote.
func createOrg(t *testing.T, a *orgAccount) *orgLog {
	t.Helper()
	entries, st, root, err := org.NewOrg(rand.Reader, "Remote test org", a.id, a.email, a.identity.Public(), a.enc.Public(), time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(root.Wipe)
	head, err := a.o.CreateOrg(t.Context(), st.Org, orgEntries(entries))
	if err != nil || head != uint64(len(entries)) {
		t.Fatalf("CreateOrg = %d, %v; want %d", head, err, len(entries))
	}
	return &orgLog{t: t, id: st.Org, st: st, root: root, first: entries}
}

func orgEntries(in []org.Entry) []api.OrgEntry {
	out := make([]api.OrgEntry, len(in))
	for i, e := range in {
		out[i] = api.OrgEntry{Body: e.Body, Sig: e.Sig}
	}
	return out
}

// next signs the next statement as by (nil: the root key).
func (l *orgLog) next(by *orgAccount, st org.Statement) org.Entry {
	l.t.Helper()
	signer := org.Signer{By: org.ByRoot, Key: l.root}
	if by != nil {
		signer = org.Signer{By: by.id, Key: by.identity}
	}
	e, err := l.st.Next(signer, st, time.Now().UnixMilli())
	if err != nil {
		l.t.Fatalf("next %s statement: %v", st.Type, err)
	}
	return e
}

// push appends entries as a at the current head; on success the log
// follows.
func (l *orgLog) push(a *orgAccount, entries ...org.Entry) error {
	l.t.Helper()
	head, err := a.o.PushOrg(l.t.Context(), l.id, l.st.Seq, orgEntries(entries))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := l.st.Apply(e); err != nil {
			l.t.Fatalf("the remote accepted a statement the replay refuses: %v", err)
		}
	}
	if head != l.st.Seq {
		l.t.Fatalf("PushOrg = %d, want %d", head, l.st.Seq)
	}
	return nil
}

func (l *orgLog) mustPush(a *orgAccount, entries ...org.Entry) {
	l.t.Helper()
	if err := l.push(a, entries...); err != nil {
		l.t.Fatalf("PushOrg: %v", err)
	}
}

// join invites, accepts and certifies m.
func (l *orgLog) join(admin, m *orgAccount) {
	l.t.Helper()
	l.mustPush(admin, l.next(admin, org.Statement{Type: org.TypeInvite, Email: m.email}))
	l.mustPush(m, l.next(m, org.Statement{Type: org.TypeAccept, Account: m.id, Email: m.email,
		Identity: m.identity.Public().Bytes(), Encryption: m.enc.Public().Bytes()}))
	l.mustPush(admin, l.next(admin, org.Statement{Type: org.TypeMember, Account: m.id, Email: m.email,
		Identity: m.identity.Public().Bytes(), Encryption: m.enc.Public().Bytes(), Role: org.Member}))
}

// pullAll reads the whole log as a.
func (l *orgLog) pullAll(a *orgAccount) ([]api.OrgEntry, error) {
	var all []api.OrgEntry
	for since := uint64(0); ; {
		p, err := a.o.PullOrg(l.t.Context(), l.id, since)
		if err != nil {
			return nil, err
		}
		if len(p.Entries) > api.MaxPageLimit {
			l.t.Fatalf("PullOrg returned %d statements", len(p.Entries))
		}
		all = append(all, p.Entries...)
		since += uint64(len(p.Entries))
		if since >= p.Head || len(p.Entries) == 0 {
			return all, nil
		}
	}
}

func orgListed(t *testing.T, a *orgAccount, id string) (api.Org, bool) {
	t.Helper()
	orgs, err := a.o.Orgs(t.Context())
	if err != nil {
		t.Fatalf("Orgs: %v", err)
	}
	for _, o := range orgs {
		if o.Org == id {
			return o, true
		}
	}
	return api.Org{}, false
}

func (s *suite) testOrgs(t *testing.T) {
	ctx := t.Context()
	ann := s.orgAccount(t)
	bob, cat, dan := s.orgAccount(t), s.orgAccount(t), s.orgAccount(t)
	l := createOrg(t, ann)

	if o, ok := orgListed(t, ann, l.id); !ok || o.State != org.StateActive || o.Head != 2 {
		t.Errorf("the creator's listing: %+v, %v", o, ok)
	}
	if _, err := ann.o.CreateOrg(ctx, l.id, orgEntries(l.first)); !errors.Is(err, remote.ErrExists) {
		t.Errorf("CreateOrg of an existing id: err = %v, want ErrExists", err)
	}
	if _, err := dan.o.PullOrg(ctx, l.id, 0); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("PullOrg by a non-member: err = %v, want ErrForbidden", err)
	}
	if _, err := dan.o.PullOrg(ctx, NewID(), 0); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("PullOrg of an unknown organisation: err = %v, want ErrNotFound", err)
	}

	// An invitee sees the organisation and reads its log before joining.
	l.mustPush(ann, l.next(ann, org.Statement{Type: org.TypeInvite, Email: bob.email}))
	if o, ok := orgListed(t, bob, l.id); !ok || o.State != org.StateInvited {
		t.Errorf("the invitee's listing: %+v, %v", o, ok)
	}
	got, err := l.pullAll(bob)
	if err != nil || len(got) != int(l.st.Seq) {
		t.Fatalf("the invitee's pull: %d statements, %v", len(got), err)
	}
	var entries []org.Entry
	for _, e := range got {
		entries = append(entries, org.Entry{Body: e.Body, Sig: e.Sig})
	}
	if st, err := org.Replay(l.id, l.st.Root, entries); err != nil || !st.Head.Equal(l.st.Head) {
		t.Fatalf("replay of the pulled log: %v", err)
	}
	l.mustPush(bob, l.next(bob, org.Statement{Type: org.TypeAccept, Account: bob.id, Email: bob.email,
		Identity: bob.identity.Public().Bytes(), Encryption: bob.enc.Public().Bytes()}))
	l.mustPush(ann, l.next(ann, org.Statement{Type: org.TypeMember, Account: bob.id, Email: bob.email,
		Identity: bob.identity.Public().Bytes(), Encryption: bob.enc.Public().Bytes(), Role: org.Member}))
	l.join(ann, cat)
	if o, ok := orgListed(t, bob, l.id); !ok || o.State != org.StateActive || o.Head != l.st.Seq {
		t.Errorf("a member's listing: %+v, %v", o, ok)
	}

	// Stale and refused appends.
	inv := l.next(ann, org.Statement{Type: org.TypeInvite, Email: "x-" + NewID()[:8] + "@example.com"})
	if _, err := ann.o.PushOrg(ctx, l.id, l.st.Seq-1, orgEntries([]org.Entry{inv})); !errors.Is(err, remote.ErrStale) {
		t.Errorf("PushOrg on an old base: err = %v, want ErrStale", err)
	}
	if err := l.push(bob, inv); !errors.Is(err, remote.ErrRefused) {
		t.Errorf("PushOrg of another account's statement: err = %v, want ErrRefused", err)
	}
	l.mustPush(ann, inv)

	// A shared vault: bob writes, cat reads.
	v := NewID()
	l.mustPush(ann,
		l.next(ann, org.Statement{Type: org.TypeVault, Vault: v, SealedName: randBytes(80)}))
	l.mustPush(ann, l.next(ann, org.Statement{Type: org.TypeGrant, Vault: v, Subject: bob.id, Access: org.Write}))
	l.mustPush(ann, l.next(ann, org.Statement{Type: org.TypeGrant, Vault: v, Subject: cat.id, Access: org.Read}))
	if err := bob.o.PutOrgVault(ctx, l.id, v); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("PutOrgVault by a writer: err = %v, want ErrForbidden", err)
	}
	if err := ann.o.PutOrgVault(ctx, l.id, v); err != nil {
		t.Fatalf("PutOrgVault: %v", err)
	}
	for _, a := range []*orgAccount{ann, bob, cat} {
		vs, err := a.o.OrgVaults(ctx, l.id)
		if err != nil || len(vs) != 1 || vs[0].Vault != v || vs[0].Head != 0 {
			t.Errorf("OrgVaults = %+v, %v", vs, err)
		}
	}
	if _, err := dan.o.OrgVaults(ctx, l.id); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("OrgVaults by a non-member: err = %v, want ErrForbidden", err)
	}

	bw := NewWriter(v, bob.device, s.key)
	first := bw.Puts(t, 2)
	if h, err := bob.r.Push(ctx, v, 0, first); err != nil || h != 2 {
		t.Fatalf("Push by a writer = %d, %v", h, err)
	}
	sameEntries(t, pull(t, cat.r, v, 0).Entries, first)
	cw := bw.Clone()
	cw.device = cat.device
	if _, err := cat.r.Push(ctx, v, 2, cw.Puts(t, 1)); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("Push by a reader: err = %v, want ErrForbidden", err)
	}
	if _, err := dan.r.Pull(ctx, v, 0); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("Pull by a non-member: err = %v, want ErrForbidden", err)
	}
	item, blob := NewID(), NewID()
	chunk := randBytes(64)
	if err := bob.r.PutBlob(ctx, v, item, blob, chunksOf(nil, chunk)); err != nil {
		t.Fatalf("PutBlob by a writer: %v", err)
	}
	if err := cat.r.PutBlob(ctx, v, item, blob, chunksOf(nil, chunk)); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("PutBlob by a reader: err = %v, want ErrForbidden", err)
	}
	gotChunks, err := getBlob(t, cat.r, v, item, blob)
	if err != nil {
		t.Fatalf("GetBlob by a reader: %v", err)
	}
	sameChunks(t, gotChunks, [][]byte{chunk})

	// Removal ends the removed member's access.
	l.mustPush(ann, l.next(ann, org.Statement{Type: org.TypeRemove, Account: cat.id}))
	if _, err := cat.o.PullOrg(ctx, l.id, 0); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("PullOrg by a removed member: err = %v, want ErrForbidden", err)
	}
	if _, err := cat.r.Pull(ctx, v, 0); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("Pull by a removed member: err = %v, want ErrForbidden", err)
	}
	if _, err := getBlob(t, cat.r, v, item, blob); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("GetBlob by a removed member: err = %v, want ErrForbidden", err)
	}
	if _, ok := orgListed(t, cat, l.id); ok {
		t.Errorf("a removed member still lists the organisation")
	}
	if h, err := bob.r.Push(ctx, v, 2, bw.Puts(t, 1)); err != nil || h != 3 {
		t.Errorf("Push by the writer after the removal = %d, %v", h, err)
	}

	// Only an owner dissolves it.
	if err := bob.o.DeleteOrg(ctx, l.id); !errors.Is(err, remote.ErrForbidden) {
		t.Errorf("DeleteOrg by a member: err = %v, want ErrForbidden", err)
	}
	if err := ann.o.DeleteOrg(ctx, l.id); err != nil {
		t.Fatalf("DeleteOrg: %v", err)
	}
	if _, err := ann.o.PullOrg(ctx, l.id, 0); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("PullOrg after DeleteOrg: err = %v, want ErrNotFound", err)
	}
	if _, err := bob.r.Pull(ctx, v, 0); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Pull of a dissolved organisation's vault: err = %v, want ErrNotFound", err)
	}
	if _, ok := orgListed(t, bob, l.id); ok {
		t.Errorf("a dissolved organisation is still listed")
	}
}

func (s *suite) testOrgPaging(t *testing.T) {
	ctx := t.Context()
	ann := s.orgAccount(t)
	l := createOrg(t, ann)
	// Enough invitations for two pages.
	var batch []org.Entry
	for range api.MaxPageLimit {
		e := l.next(ann, org.Statement{Type: org.TypeInvite, Email: "p-" + NewID()[:12] + "@example.com"})
		if err := l.st.Apply(e); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, e)
	}
	if _, err := ann.o.PushOrg(ctx, l.id, 2, orgEntries(batch)); err != nil {
		t.Fatalf("PushOrg of %d statements: %v", len(batch), err)
	}
	got, err := l.pullAll(ann)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2+len(batch) {
		t.Fatalf("pulled %d statements, want %d", len(got), 2+len(batch))
	}
	for i, e := range batch {
		if !bytes.Equal(got[2+i].Body, e.Body) || !bytes.Equal(got[2+i].Sig, e.Sig) {
			t.Fatalf("statement %d differs from the one pushed", 3+i)
		}
	}
	p, err := ann.o.PullOrg(ctx, l.id, l.st.Seq)
	if err != nil || p.Head != l.st.Seq || len(p.Entries) != 0 {
		t.Errorf("PullOrg at the head = head %d, %d statements, %v", p.Head, len(p.Entries), err)
	}
}
