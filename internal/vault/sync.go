package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/org"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vlog"
)

// SyncResult reports what one sync did.
type SyncResult struct {
	Pulled    int      `json:"pulled"`              // remote entries applied here
	Pushed    int      `json:"pushed"`              // local entries the remote accepted
	Merged    []string `json:"merged,omitempty"`    // items edited on both sides, merged field by field
	Conflicts []string `json:"conflicts,omitempty"` // items whose merge kept two values
	Notes     []string `json:"notes,omitempty"`     // what else the user should know
	Epoch     uint64   `json:"epoch"`               // account-document epoch now pinned
}

// maxSyncRounds bounds pull-merge-push rounds when other devices keep
// writing.
const maxSyncRounds = 8

// remoteTampered reports what a remote did; sync stops and local data is
// untouched.
func remoteTampered(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRemoteTampered, fmt.Sprintf(format, args...))
}

// Sync exchanges changes with r: the account document first, then each
// vault's log. Everything the remote serves is verified before it touches
// the local store; any failed check stops the sync with ErrRemoteTampered
// and leaves local data as it was.
func (v *Vault) Sync(ctx context.Context, r remote.Remote) (*SyncResult, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	rec, err := v.readSync()
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, ErrNoRemote
	}
	res := &SyncResult{}
	if err := v.syncDocument(ctx, r, res); err != nil {
		return res, err
	}
	if err := v.syncVaults(ctx, r); err != nil {
		return res, err
	}
	if err := v.syncOrgs(ctx, r); err != nil {
		return res, err
	}
	for _, id := range slices.Clone(v.order) {
		s := v.vaults[id]
		if s != nil && s.org != "" && v.orgAccess(s) == org.None {
			continue // access ended: the remote serves nothing new
		}
		if err := v.syncLog(ctx, r, id, res); err != nil {
			if s != nil && s.org != "" && (errors.Is(err, remote.ErrForbidden) || errors.Is(err, remote.ErrNotFound)) {
				res.Notes = append(res.Notes, fmt.Sprintf("shared vault %q: the server no longer gives this account access (removed from it or its organisation, or the organisation was dissolved); what this device has stays readable here (safe org rm forgets it)", s.name))
				continue
			}
			return res, err
		}
	}
	rec, err = v.readSync()
	if err == nil && rec != nil {
		res.Epoch = rec.Epoch
	}
	return res, err
}

// AcceptReset is the explicit user action that accepts a remote which lost
// recent data (restored from a backup): where the remote's document epoch
// or a vault's log head is below what this device verified, and what the
// remote still holds is a prefix of what this device has, the pins move
// back to the remote's state so that the next sync sends the rest again.
// A remote whose log differs from this device's (a fork) is still refused.
// It changes only the sync record; call Sync next.
func (v *Vault) AcceptReset(ctx context.Context, r remote.Remote) ([]string, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	rec, err := v.readSync()
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, ErrNoRemote
	}
	var notes []string
	acc, err := r.Account(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch the account document: %w", err)
	}
	doc, err := v.parseDocument(acc.Document)
	if err != nil {
		return nil, err
	}
	if doc.Epoch != acc.Epoch {
		return nil, remoteTampered("the account document says epoch %d but the remote says %d", doc.Epoch, acc.Epoch)
	}
	if acc.Epoch < rec.Epoch {
		notes = append(notes, fmt.Sprintf("account document: the remote is at epoch %d, this device had verified %d; this device's document will be sent again", acc.Epoch, rec.Epoch))
		rec.Epoch, rec.DocDirty, rec.KDF = acc.Epoch, true, bytes.Clone(acc.KDF)
	}
	for _, id := range v.order {
		pinSeq, _ := rec.pin(id)
		page, err := r.Pull(ctx, id, pinSeq)
		if err != nil {
			return nil, fmt.Errorf("fetch vault %s log: %w", id, err)
		}
		h := page.Head
		if h >= pinSeq {
			continue
		}
		if h == 0 {
			g := genesis(id)
			rec.setPin(id, 0, g[:])
		} else {
			prev, err := r.Pull(ctx, id, h-1)
			if err != nil {
				return nil, fmt.Errorf("fetch vault %s log: %w", id, err)
			}
			if len(prev.Entries) == 0 {
				return nil, remoteTampered("vault %s: the remote says its log has %d entries but serves none at %d", id, h, h)
			}
			local, err := v.st.LogBody(id, h)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(local, prev.Entries[0].Body) {
				return nil, remoteTampered("vault %s: the remote's entry %d differs from this device's: it is a fork, not a reset; nothing was changed", id, h)
			}
			e, err := vlog.DecodeBody(local)
			if err != nil {
				return nil, tampered("log entry %d: %v", h, err)
			}
			hash := vlog.Next(e.Prev, local)
			rec.setPin(id, h, hash[:])
		}
		notes = append(notes, fmt.Sprintf("vault %s: the remote has %d log entries, this device had verified %d; the missing ones will be sent again", id, h, pinSeq))
	}
	if len(notes) == 0 {
		return []string{"the remote has everything this device verified: nothing to accept"}, nil
	}
	raw := v.encodeSync(rec)
	if err := v.st.Update(ctx, func(tx *store.Tx) error { return tx.PutSyncRecord(raw) }); err != nil {
		return nil, err
	}
	v.seenOwnWrite()
	return notes, nil
}

// syncDocument brings the account document and the local account record
// together (§13.3).
func (v *Vault) syncDocument(ctx context.Context, r remote.Remote, res *SyncResult) error {
	for range maxSyncRounds {
		rec, err := v.readSync()
		if err != nil {
			return err
		}
		var acc api.Account
		if ca, ok := r.(remote.ConditionalAccount); ok && !rec.DocDirty {
			// Most syncs change no document: ask for it only if it did.
			acc, err = ca.AccountIfChanged(ctx, rec.Epoch)
			if err == nil && acc.Document == nil {
				switch {
				case acc.Account != v.acct.Account:
					return remoteTampered("the remote answered for account %q, this vault is %s", sanitize(acc.Account), v.acct.Account)
				case acc.Epoch != rec.Epoch:
					return remoteTampered("the remote left out the account document of epoch %d, which this device does not have (it has %d)", acc.Epoch, rec.Epoch)
				case !bytes.Equal(acc.KDF, rec.pinnedKDF(v.acct)):
					return remoteTampered("the remote's key-derivation header changed without a new account document")
				}
				return nil
			}
		} else {
			acc, err = r.Account(ctx)
		}
		if err != nil {
			return fmt.Errorf("fetch the account document: %w", err)
		}
		if acc.Account != v.acct.Account {
			return remoteTampered("the remote answered for account %q, this vault is %s", sanitize(acc.Account), v.acct.Account)
		}
		doc, err := v.parseDocument(acc.Document)
		if err != nil {
			return err
		}
		if doc.Epoch != acc.Epoch {
			return remoteTampered("the account document says epoch %d but the remote says %d", doc.Epoch, acc.Epoch)
		}
		if !bytes.Equal(acc.KDF, doc.KDF) {
			return remoteTampered("the remote's key-derivation header differs from the one in the signed account document")
		}
		switch {
		case acc.Epoch < rec.Epoch:
			return remoteTampered("the account document is at epoch %d but this device verified epoch %d: the remote rolled it back", acc.Epoch, rec.Epoch)
		case acc.Epoch == rec.Epoch && !rec.DocDirty:
			if !bytes.Equal(acc.Document, v.document(v.acct)) {
				return remoteTampered("the account document at epoch %d differs from the one this device verified: the remote forked it", acc.Epoch)
			}
			return nil
		case acc.Epoch > rec.Epoch:
			if err := v.adoptDocument(ctx, doc, rec, res); err != nil {
				return err
			}
			if !rec.DocDirty {
				res.Notes = append(res.Notes, fmt.Sprintf("account document updated to epoch %d", acc.Epoch))
				return nil
			}
		}
		// Local changes to push, on top of epoch rec.Epoch (now current).
		err = v.pushDocument(ctx, r)
		if errors.Is(err, remote.ErrStale) {
			continue
		}
		return err
	}
	return fmt.Errorf("the account document kept changing on the remote; try again")
}

// adoptDocument takes a newer account document after checking that it
// changes only what may change: the password wrap and parameters (never
// weaker than the last document this device verified, same salts), the
// recovery wrap, and added devices.
func (v *Vault) adoptDocument(ctx context.Context, doc *accountRecord, rec *syncRecord, res *SyncResult) error {
	cur := v.acct
	switch {
	case doc.SecurityVersion < cur.SecurityVersion:
		return remoteTampered("the account document lowers the security version from %d to %d (downgrade)", cur.SecurityVersion, doc.SecurityVersion)
	case doc.SecurityVersion > SecurityVersion:
		return fmt.Errorf("%w: the account uses security version %d, this build knows %d", ErrNewerFormat, doc.SecurityVersion, SecurityVersion)
	case !bytes.Equal(doc.IdentityPublic, cur.IdentityPublic) || !bytes.Equal(doc.IdentitySealed, cur.IdentitySealed) ||
		!bytes.Equal(doc.EncryptPublic, cur.EncryptPublic) || !bytes.Equal(doc.EncryptSealed, cur.EncryptSealed):
		return remoteTampered("the account document replaces the account's identity or encryption keys")
	case doc.Created != cur.Created:
		return remoteTampered("the account document changes the account's creation time")
	}
	if err := checkNewKDF(rec.pinnedKDF(cur), doc.KDF, v.opts.AllowInsecureKDF); err != nil {
		return remoteTampered("the account document's key derivation is refused: %v", err)
	}
	ownPending := rec.DocDirty && !slices.ContainsFunc(doc.Devices, func(n deviceInfo) bool { return n.ID == v.device.ID })
	var linked []deviceInfo // certified here through a link, not published yet
	for _, d := range cur.Devices {
		if ownPending && d.ID == v.device.ID {
			continue // this device is not published yet
		}
		if slices.Contains(rec.Linked, d.ID) && !slices.ContainsFunc(doc.Devices, func(n deviceInfo) bool { return n.ID == d.ID }) {
			linked = append(linked, d)
			continue
		}
		if !slices.ContainsFunc(doc.Devices, func(n deviceInfo) bool {
			return n.ID == d.ID && bytes.Equal(n.Public, d.Public) && bytes.Equal(n.Cert, d.Cert)
		}) {
			return remoteTampered("the account document drops or changes device %s", d.ID)
		}
	}
	next := *doc
	next.MAC = nil
	next.Revoked = slices.Clone(doc.Revoked)
	next.SecretKey = cur.SecretKey
	next.Devices = slices.Clone(doc.Devices)
	for i := range next.Devices {
		if next.Devices[i].ID == v.device.ID {
			next.Devices[i].Sealed = v.device.Sealed
		}
	}
	if ownPending {
		next.Devices = append(next.Devices, *v.device)
	}
	next.Devices = append(next.Devices, linked...)
	for _, id := range cur.Revoked {
		if !slices.Contains(doc.Revoked, id) {
			if !rec.DocDirty {
				return remoteTampered("the account document takes back the revocation of device %s", id)
			}
			next.Revoked = append(next.Revoked, id) // revoked here, not sent yet
		}
	}
	// Re-read: the call that fetched the document may have refreshed and
	// stored the session.
	fresh, err := v.readSync()
	if err != nil {
		return err
	}
	pending := fresh.PendingLogin
	if pending != nil {
		// A password changed here and not yet pushed is re-applied on top
		// of the newer document, unless that one's parameters are
		// stronger: then the other change wins and this one is dropped.
		np, _, _ := parseKDF(doc.KDF)
		cp, _, _ := parseKDF(cur.KDF)
		if cp.WeakerThan(np) {
			pending = nil
			res.Notes = append(res.Notes, "the password was also changed on another device with stronger key-derivation parameters; that change wins: unlock with the password set there, and run `safe passwd` again if you want yours")
		} else {
			next.KDF, next.PasswordWrap, next.InsecureTestKDF = cur.KDF, cur.PasswordWrap, cur.InsecureTestKDF
		}
	}
	fresh.Epoch, fresh.KDF, fresh.PendingLogin = doc.Epoch, bytes.Clone(doc.KDF), pending
	fresh.DocDirty = pending != nil || ownPending || len(linked) > 0 || len(next.Revoked) > len(doc.Revoked)
	fresh.Linked = nil
	for _, d := range linked {
		fresh.Linked = append(fresh.Linked, d.ID)
	}
	raw := setMAC(v.macKey, "account", &next, &next.MAC)
	srec := v.encodeSync(fresh)
	if err := v.putAccountAndSync(ctx, raw, srec); err != nil {
		return err
	}
	v.acct = &next
	*rec = *fresh
	if err := v.load(ctx); err != nil {
		v.seen = -1 // reload before anything else
		return err
	}
	return nil
}

// putAccountAndSync replaces the account and sync records together.
func (v *Vault) putAccountAndSync(ctx context.Context, account, sync []byte) error {
	return v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutAccount(account); err != nil {
			return err
		}
		return tx.PutSyncRecord(sync)
	})
}

// pinnedKDF is the KDF header of the last account document this device
// verified on the remote (older sync records: the account record's).
func (r *syncRecord) pinnedKDF(acct *accountRecord) []byte {
	if r.KDF != nil {
		return r.KDF
	}
	return acct.KDF
}

// checkNewKDF refuses a key-derivation header that is unknown, out of
// bounds, weaker than the current one, or uses other salts.
func checkNewKDF(cur, next []byte, allowInsecure bool) error {
	np, ns, err := parseKDF(next)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPrelogin, err)
	}
	if err := np.Check(allowInsecure); err != nil {
		return fmt.Errorf("%w: %v", ErrPrelogin, err)
	}
	if cur == nil {
		return nil
	}
	cp, cs, err := parseKDF(cur)
	if err != nil {
		return tampered("kdf parameters: %v", err)
	}
	if subtle.ConstantTimeCompare(cs.Argon2[:], ns.Argon2[:]) != 1 || subtle.ConstantTimeCompare(cs.PBKDF2[:], ns.PBKDF2[:]) != 1 {
		return fmt.Errorf("%w: the salts differ from the ones this device knows for the account", ErrPrelogin)
	}
	if np.WeakerThan(cp) {
		return fmt.Errorf("%w: the parameters (%s) are weaker than the ones this device last saw (%s)", ErrPrelogin, np, cp)
	}
	return nil
}

// CheckPrelogin checks a remote's KDF header for this account before
// anything is derived from the password.
func (v *Vault) CheckPrelogin(header []byte) error {
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	pinned := v.acct.KDF
	if rec != nil {
		pinned = rec.pinnedKDF(v.acct)
	}
	return checkNewKDF(pinned, header, v.opts.AllowInsecureKDF)
}

// pushDocument sends the local account record as document epoch+1, with
// the pending credentials of a password change.
func (v *Vault) pushDocument(ctx context.Context, r remote.Remote) error {
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	next := *v.acct
	next.Epoch = rec.Epoch + 1
	u := api.AccountUpdate{Base: rec.Epoch, Document: v.document(&next)}
	if rec.PendingLogin != nil {
		lk, err := envelope.Open(v.mk, envelope.Context{Purpose: purposePendingLogin, Account: v.acct.Account}, rec.PendingLogin)
		if err != nil {
			return tampered("the pending login key does not open: %v", err)
		}
		defer wipeBytes(lk)
		u.Credentials = &api.Credentials{KDF: next.KDF, LoginKey: lk}
	}
	epoch, err := r.UpdateAccount(ctx, u)
	if err != nil {
		return fmt.Errorf("send the account document: %w", err)
	}
	if epoch != next.Epoch {
		return remoteTampered("the remote stored the account document as epoch %d, not %d", epoch, next.Epoch)
	}
	// Re-read: the call may have refreshed and stored the session.
	if rec, err = v.readSync(); err != nil {
		return err
	}
	rec.Epoch, rec.DocDirty, rec.PendingLogin, rec.KDF = epoch, false, nil, bytes.Clone(next.KDF)
	rec.Linked = nil // published
	next.MAC = nil
	raw := setMAC(v.macKey, "account", &next, &next.MAC)
	srec := v.encodeSync(rec)
	if err := v.putAccountAndSync(ctx, raw, srec); err != nil {
		return err
	}
	v.acct = &next
	v.seenOwnWrite()
	return nil
}

// syncVaults makes sure the remote has every local vault and this device
// every remote one, with identical records.
func (v *Vault) syncVaults(ctx context.Context, r remote.Remote) error {
	list, err := r.Vaults(ctx)
	if err != nil {
		return fmt.Errorf("list the remote's vaults: %w", err)
	}
	remoteRecs := map[string][]byte{}
	for _, rv := range list {
		remoteRecs[rv.Vault] = rv.Record
	}
	added := false
	for id, raw := range remoteRecs {
		if _, ok := v.vaults[id]; ok {
			local, err := v.st.Vault(id)
			if err != nil {
				return err
			}
			if !bytes.Equal(local, raw) {
				return remoteTampered("vault %s has a different record on the remote", id)
			}
			continue
		}
		if err := v.checkVaultRecord(id, raw); err != nil {
			return err
		}
		g := genesis(id)
		h := &headRecord{Version: RecordVersion, Vault: id, Seq: 0, Hash: g[:]}
		hraw := setMAC(v.macKey, "head", h, &h.MAC)
		if err := v.st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.PutVault(id, raw); err != nil {
				return err
			}
			return tx.PutHead(id, hraw)
		}); err != nil {
			return err
		}
		added = true
	}
	if added {
		if err := v.load(ctx); err != nil {
			v.seen = -1
			return err
		}
	}
	for _, id := range v.order {
		if _, ok := remoteRecs[id]; ok || v.vaults[id].org != "" {
			continue // shared vaults live in their organisation
		}
		raw, err := v.st.Vault(id)
		if err != nil {
			return err
		}
		if err := r.PutVault(ctx, id, raw); err != nil {
			return fmt.Errorf("create vault %s on the remote: %w", id, err)
		}
	}
	return nil
}

// checkVaultRecord authenticates a vault record from the remote.
func (v *Vault) checkVaultRecord(id string, raw []byte) error {
	var vr vaultRecord
	if err := decodeRecord(raw, &vr); err != nil {
		return remoteTampered("vault %s record: %v", sanitize(id), err)
	}
	if vr.Version != RecordVersion || vr.Vault != id {
		return remoteTampered("vault record for %s is served as %s", sanitize(vr.Vault), sanitize(id))
	}
	if !checkMAC(v.macKey, "vault", &vr, &vr.MAC) {
		return remoteTampered("vault %s record was forged (its MAC does not verify)", id)
	}
	key, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeVaultKey, Account: v.acct.Account, Vault: id}, vr.Key)
	if err != nil {
		return remoteTampered("vault %s key does not open", id)
	}
	wipeBytes(key)
	return nil
}

// pulled is one verified remote entry.
type pulled struct {
	entry   *vlog.Entry
	body    []byte
	sig     []byte
	payload []byte
	it      *item.Item // decrypted payload of a put (nil if purged later)
}

// itemState is what the log says of an item at some position.
type itemState struct {
	revision uint64
	purged   bool
	exists   bool
}

// syncLog exchanges one vault's log with the remote (§13.5).
func (v *Vault) syncLog(ctx context.Context, r remote.Remote, id string, res *SyncResult) error {
	for range maxSyncRounds {
		s := v.vaults[id]
		rec, err := v.readSync()
		if err != nil {
			return err
		}
		pinSeq, pinHash := rec.pin(id)
		if s.seq < pinSeq {
			return tampered("vault %s has %d log entries but its remote pin says %d", id, s.seq, pinSeq)
		}
		theirs, err := v.pull(ctx, r, s, pinSeq, pinHash)
		if err != nil {
			return err
		}
		// Entries this device pushed whose acknowledgement was lost are
		// its own: they confirm the pin.
		ours := 0
		for ours < len(theirs) && pinSeq+uint64(ours) < s.seq {
			body, err := v.st.LogBody(id, pinSeq+uint64(ours)+1)
			if err != nil {
				return err
			}
			if !bytes.Equal(body, theirs[ours].body) {
				break
			}
			ours++
		}
		confirmed := pinSeq + uint64(ours)
		h := chain.Hash(pinHash)
		for _, p := range theirs[:ours] {
			h = vlog.Next(h, p.body)
		}
		confirmedHash := h[:]
		theirs = theirs[ours:]
		local := s.seq - confirmed
		switch {
		case len(theirs) == 0 && local == 0:
			if ours > 0 {
				return v.savePin(ctx, id, confirmed, confirmedHash)
			}
			return nil
		case len(theirs) == 0:
			if ours > 0 {
				if err := v.savePin(ctx, id, confirmed, confirmedHash); err != nil {
					return err
				}
			}
			n, err := v.push(ctx, r, s, confirmed, confirmedHash)
			res.Pushed += n
			if errors.Is(err, remote.ErrStale) {
				continue
			}
			return err
		default:
			if err := v.fetchBlobs(ctx, r, s, theirs); err != nil {
				return err
			}
			if err := v.apply(ctx, s, confirmed, confirmedHash, theirs, res); err != nil {
				return err
			}
			res.Pulled += len(theirs)
			if v.vaults[id].seq == confirmed+uint64(len(theirs)) {
				return nil // nothing of ours left to send
			}
		}
	}
	return fmt.Errorf("vault %s kept changing on the remote during the sync; try again", id)
}

// savePin records that the remote holds the log up to seq.
func (v *Vault) savePin(ctx context.Context, id string, seq uint64, hash []byte) error {
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	rec.setPin(id, seq, hash)
	raw := v.encodeSync(rec)
	if err := v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.ClearOutbox(id, seq); err != nil {
			return err
		}
		return tx.PutSyncRecord(raw)
	}); err != nil {
		return err
	}
	v.seenOwnWrite()
	return nil
}

// maxPull bounds how many entries one sync accepts for one vault, so that
// a remote cannot make a client buffer without limit.
const maxPull = 5_000_000

// pull fetches and verifies every remote entry after the pin.
func (v *Vault) pull(ctx context.Context, r remote.Remote, s *vaultState, pinSeq uint64, pinHash []byte) ([]*pulled, error) {
	var out []*pulled
	running := chain.Hash(pinHash)
	since := pinSeq
	states := map[string]itemState{}
	missing := map[string]uint64{} // item → seq of a put served without payload
	stateOf := func(id string) (itemState, error) {
		if st, ok := states[id]; ok {
			return st, nil
		}
		st, err := v.stateAt(s, id, pinSeq)
		states[id] = st
		return st, err
	}
	for {
		page, err := r.Pull(ctx, s.id, since)
		if err != nil {
			return nil, fmt.Errorf("fetch vault %s log: %w", s.id, err)
		}
		if page.Head < pinSeq {
			return nil, remoteTampered("vault %s: the remote's log has %d entries but this device verified %d: the remote rolled it back", s.id, page.Head, pinSeq)
		}
		if len(page.Entries) == 0 {
			if page.Head > since {
				return nil, remoteTampered("vault %s: the remote says its log has %d entries but served only %d", s.id, page.Head, since)
			}
			break
		}
		if len(page.Entries) > api.MaxPageLimit || uint64(len(out)+len(page.Entries)) > maxPull {
			return nil, remoteTampered("vault %s: the remote served more entries than allowed", s.id)
		}
		batch := make([]*pulled, len(page.Entries))
		for i, e := range page.Entries {
			seq := since + uint64(i) + 1
			ent, err := vlog.DecodeBody(e.Body)
			if err != nil {
				return nil, remoteTampered("vault %s entry %d: %v", s.id, seq, err)
			}
			if len(e.Sig) == 0 || len(e.Sig) > vlog.MaxSig {
				return nil, remoteTampered("vault %s entry %d has no valid signature", s.id, seq)
			}
			ent.Sig = e.Sig
			switch {
			case ent.Seq != seq:
				return nil, remoteTampered("vault %s: entry %d is served where entry %d belongs: entries were dropped, duplicated or reordered", s.id, ent.Seq, seq)
			case ent.Vault != s.id:
				return nil, remoteTampered("vault %s entry %d belongs to vault %s: it was moved", s.id, seq, sanitize(ent.Vault))
			case !ent.Prev.Equal(running):
				if seq == pinSeq+1 {
					return nil, remoteTampered("vault %s entry %d does not extend the log this device verified (entry %d): the remote forked or rewrote it", s.id, seq, pinSeq)
				}
				return nil, remoteTampered("vault %s entry %d does not link to entry %d: entries were dropped, reordered or injected", s.id, seq, seq-1)
			}
			running = vlog.Next(running, e.Body)
			st, err := stateOf(ent.Item)
			if err != nil {
				return nil, err
			}
			switch ent.Op {
			case vlog.OpPut:
				want := st.revision + 1
				if ent.Revision != want {
					return nil, remoteTampered("vault %s entry %d writes revision %d of item %s, expected %d: a revision was dropped, replayed or reordered", s.id, seq, ent.Revision, sanitize(ent.Item), want)
				}
				if e.Payload == nil {
					missing[ent.Item] = seq
				} else if subtle.ConstantTimeCompare(vlog.PayloadDigest(e.Payload), ent.Digest[:]) != 1 {
					return nil, remoteTampered("vault %s entry %d: item %s's ciphertext is not the one the entry signed: it was swapped or modified", s.id, seq, sanitize(ent.Item))
				}
				states[ent.Item] = itemState{revision: ent.Revision, exists: true}
			case vlog.OpPurge:
				if !st.exists || st.purged || ent.Revision != st.revision {
					return nil, remoteTampered("vault %s entry %d purges item %s at revision %d, which is not its current state", s.id, seq, sanitize(ent.Item), ent.Revision)
				}
				if e.Payload != nil {
					return nil, remoteTampered("vault %s entry %d: a purge carries a payload", s.id, seq)
				}
				delete(missing, ent.Item)
				states[ent.Item] = itemState{revision: ent.Revision, purged: true, exists: true}
			}
			batch[i] = &pulled{entry: ent, body: e.Body, sig: e.Sig, payload: e.Payload}
		}
		if err := v.verifyBatch(s, batch); err != nil {
			return nil, err
		}
		out = append(out, batch...)
		since += uint64(len(page.Entries))
		if since >= page.Head {
			break
		}
	}
	for id, seq := range missing {
		return nil, remoteTampered("vault %s entry %d: the remote withheld item %s's ciphertext", s.id, seq, sanitize(id))
	}
	return out, nil
}

// verifyBatch checks signatures and opens payloads, on every CPU.
func (v *Vault) verifyBatch(s *vaultState, batch []*pulled) error {
	errs := make([]error, len(batch))
	workers := min(runtime.GOMAXPROCS(0), len(batch))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(batch); i += workers {
				errs[i] = v.verifyPulled(s, batch[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (v *Vault) verifyPulled(s *vaultState, p *pulled) error {
	e := p.entry
	pub, err := v.writerKey(s, e)
	if err != nil {
		return remoteTampered("vault %s %v", s.id, err)
	}
	if s.org != "" {
		// writerKey verified the signature: it picks the key by it.
	} else if err := e.Verify(pub); err != nil {
		return remoteTampered("vault %s entry %d: %v", s.id, e.Seq, err)
	}
	if e.Op != vlog.OpPut || p.payload == nil {
		return nil
	}
	it, err := v.openPayload(s, store.ItemRow{Vault: s.id, Item: e.Item, Revision: e.Revision, Payload: p.payload})
	if err != nil {
		return remoteTampered("vault %s entry %d: %v", s.id, e.Seq, err)
	}
	p.it = &it
	return nil
}

// stateAt is an item's state as of log entry seq, from the local log.
func (v *Vault) stateAt(s *vaultState, id string, seq uint64) (itemState, error) {
	if e, ok := s.index[id]; ok && e.seq <= seq {
		return itemState{revision: e.revision, purged: e.op == vlog.OpPurge, exists: true}, nil
	}
	var st itemState
	err := v.st.ItemLog(s.id, id, func(r store.LogRow) error {
		if r.Seq > seq {
			return nil
		}
		e, err := vlog.DecodeBody(r.Body)
		if err != nil {
			return tampered("log entry %d: %v", r.Seq, err)
		}
		st = itemState{revision: e.Revision, purged: e.Op == vlog.OpPurge, exists: true}
		return nil
	})
	return st, err
}

// fetchBlobs downloads, verifies and stores the attachment chunks that
// pulled revisions refer to and this device lacks. They are marked pending
// until the revisions that refer to them commit.
func (v *Vault) fetchBlobs(ctx context.Context, r remote.Remote, s *vaultState, theirs []*pulled) error {
	for _, p := range theirs {
		if p.it == nil {
			continue
		}
		for _, a := range p.it.Attachments {
			have, err := v.st.HasChunks(s.id, a.ID)
			if err != nil {
				return err
			}
			if have {
				continue
			}
			if err := v.fetchBlob(ctx, r, s, p.entry.Item, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *Vault) fetchBlob(ctx context.Context, r remote.Remote, s *vaultState, id string, a item.Attachment) error {
	opener, err := envelope.NewStreamOpener(a.Key, attachmentContext(s.acct, s.id, id, a.ID), a.Header)
	if err != nil {
		return remoteTampered("attachment %s header: %v", a.ID, err)
	}
	return v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.MarkPending(s.id, a.ID); err != nil {
			return err
		}
		var n int64
		err := r.GetBlob(ctx, s.id, id, a.ID, func(idx int, chunk []byte) error {
			if int64(idx) != n || n >= a.Chunks {
				return remoteTampered("attachment %s: chunk %d served out of order or beyond its %d chunks", a.ID, idx, a.Chunks)
			}
			pt, err := opener.OpenChunk(uint64(n), n == a.Chunks-1, chunk)
			if err != nil {
				return remoteTampered("attachment %s chunk %d does not open: it was modified, moved or truncated", a.ID, idx)
			}
			wipeBytes(pt)
			n++
			return tx.PutChunk(s.id, a.ID, int64(idx), chunk)
		})
		if err != nil {
			return fmt.Errorf("fetch attachment %s: %w", a.ID, err)
		}
		if n != a.Chunks {
			return remoteTampered("attachment %s: the remote served %d of %d chunks", a.ID, n, a.Chunks)
		}
		return nil
	})
}

// change is one planned write of a rebase or fast-forward.
type redo struct {
	op      byte
	id      string
	rev     uint64
	payload []byte // put: the sealed payload (new or unchanged)
	time    int64
	it      *item.Item // put: the item, for the in-memory index
	// purgeRows: a purge whose rows are still here (a rebase re-applying
	// a local purge after the other side's changes); blobs are the chunks
	// it deletes.
	purgeRows bool
	blobs     []string
}

// apply writes verified remote entries after `confirmed`, and rebases the
// local entries after it (if any) on top of them, in one transaction:
// entries of items only this device changed are re-signed at their new
// positions; items changed on both sides are merged field by field.
func (v *Vault) apply(ctx context.Context, s *vaultState, confirmed uint64, confirmedHash []byte, theirs []*pulled, res *SyncResult) error {
	if v.vaults[s.id] != s {
		return fmt.Errorf("vault %s was reloaded during the sync; try again", s.id)
	}
	now := v.opts.now()
	// Our entries after the confirmed position, in order.
	var oursEntries []*vlog.Entry
	if err := v.st.Log(s.id, confirmed, false, func(row store.LogRow) error {
		e, err := vlog.DecodeBody(row.Body)
		if err != nil {
			return tampered("log entry %d: %v", row.Seq, err)
		}
		oursEntries = append(oursEntries, e)
		return nil
	}); err != nil {
		return err
	}
	ourItems := map[string]bool{}
	for _, e := range oursEntries {
		ourItems[e.Item] = true
	}
	theirItems := map[string]bool{}
	theirFinal := map[string]*pulled{}
	for _, p := range theirs {
		theirItems[p.entry.Item] = true
		theirFinal[p.entry.Item] = p
	}

	// Current rows of the items their entries touch, as the transaction
	// will find them: items we also changed start from their state at
	// the confirmed position (their base row is already in history).
	cur := map[string]*store.ItemRow{}
	blobsOf := map[string][]string{} // item → every blob of every local revision
	for id := range theirItems {
		if ourItems[id] {
			continue
		}
		row, err := v.st.Item(s.id, id)
		if err == nil {
			cur[id] = &row
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	// Every blob of every revision, for the items a purge may delete:
	// those purged by the pulled entries and those changed on both sides.
	needBlobs := map[string]bool{}
	for _, p := range theirs {
		if p.entry.Op == vlog.OpPurge || ourItems[p.entry.Item] {
			needBlobs[p.entry.Item] = true
		}
	}
	for id := range needBlobs {
		all, err := v.allBlobs(s, id, theirs)
		if err != nil {
			return err
		}
		blobsOf[id] = all
	}

	var redos []redo
	type rewind struct {
		id   string
		base uint64 // revision at the confirmed position; history rows above it go
	}
	var rewinds []rewind
	keepBlobs := map[string]bool{}
	for _, e := range oursEntries {
		if theirItems[e.Item] {
			continue
		}
		rd := redo{op: e.Op, id: e.Item, rev: e.Revision, time: e.Time}
		if e.Op == vlog.OpPut {
			row, err := v.rowAt(s, e.Item, e.Revision)
			if err != nil {
				return err
			}
			if row != nil {
				rd.payload = row.Payload
			} else {
				// Purged later here: the put goes with its digest only.
				rd.payload = nil
			}
		}
		redos = append(redos, rd)
	}
	// Items changed on both sides, in the order we first changed them.
	var both []string
	for _, e := range oursEntries {
		if theirItems[e.Item] && !slices.Contains(both, e.Item) {
			both = append(both, e.Item)
		}
	}
	for _, id := range both {
		base, err := v.stateAt(s, id, confirmed)
		if err != nil {
			return err
		}
		rewinds = append(rewinds, rewind{id: id, base: base.revision})
		mine, err := v.st.Item(s.id, id)
		minePurged := errors.Is(err, store.ErrNotFound)
		if err != nil && !minePurged {
			return err
		}
		tf := theirFinal[id]
		theirPurged := tf.entry.Op == vlog.OpPurge
		switch {
		case minePurged && theirPurged:
			// Both deleted it.
		case minePurged:
			// Deleted here, changed there: the purge stays (the history
			// before it is gone here already) and their latest version
			// comes back after it, marked, so that nothing written is
			// lost.
			next := tf.it.Clone()
			next.Conflicts = append(next.Conflicts, item.Conflict{Field: "deleted", Value: "deleted on this device while changed on another; kept", Seen: now.UTC()})
			keep := map[string]bool{}
			for _, a := range next.Attachments {
				keep[a.ID] = true
			}
			var drop []string
			for _, b := range blobsOf[id] {
				if !keep[b] {
					drop = append(drop, b)
				}
			}
			redos = append(redos, redo{op: vlog.OpPurge, id: id, rev: tf.entry.Revision, time: now.UnixMilli(), purgeRows: true, blobs: drop})
			rd, err := v.sealRedo(s, id, tf.entry.Revision+1, next, now)
			if err != nil {
				return err
			}
			redos = append(redos, rd)
			res.Conflicts = append(res.Conflicts, id)
			res.Notes = append(res.Notes, fmt.Sprintf("item %s was deleted here but changed on another device: kept", id))
		default:
			ours, err := v.openPayload(s, mine)
			if err != nil {
				return err
			}
			for _, a := range ours.Attachments {
				keepBlobs[a.ID] = true
			}
			next := ours.Clone()
			if theirPurged {
				next.Conflicts = append(next.Conflicts, item.Conflict{Field: "deleted", Value: "deleted on another device while edited here; kept", Seen: now.UTC()})
				res.Conflicts = append(res.Conflicts, id)
				res.Notes = append(res.Notes, fmt.Sprintf("item %s was deleted on another device but edited here: kept", id))
			} else {
				var baseItem item.Item
				if base.exists && !base.purged {
					row, err := v.rowAt(s, id, base.revision)
					if err != nil {
						return err
					}
					if row != nil {
						if baseItem, err = v.openPayload(s, *row); err != nil {
							return err
						}
					}
				}
				merged, conflicted := item.Merge3(baseItem, ours, *tf.it, now.UTC())
				if conflicted {
					res.Conflicts = append(res.Conflicts, id)
				}
				res.Merged = append(res.Merged, id)
				next = merged
				if sameContent(next, *tf.it) {
					continue // ours adds nothing to theirs
				}
			}
			rd, err := v.sealRedo(s, id, tf.entry.Revision+1, next, now)
			if err != nil {
				return err
			}
			redos = append(redos, rd)
		}
	}

	// Build the new log: theirs as served, then ours re-signed.
	seq, head := confirmed, chain.Hash(confirmedHash)
	for _, p := range theirs {
		seq++
		head = vlog.Next(head, p.body)
	}
	theirHead, theirHash := seq, head
	type signed struct {
		rd   redo
		body []byte
		sig  []byte
		info *entryInfo
	}
	var mine []signed
	for _, rd := range redos {
		seq++
		e := &vlog.Entry{Op: rd.op, Seq: seq, Time: rd.time, Prev: head, Revision: rd.rev, Vault: s.id, Item: rd.id, Device: v.device.ID}
		if rd.op == vlog.OpPut {
			if rd.payload != nil {
				copy(e.Digest[:], digest(rd.payload))
			} else {
				d, err := v.loggedDigest(s, rd.id, rd.rev)
				if err != nil {
					return err
				}
				copy(e.Digest[:], d)
			}
		}
		body, err := e.Sign(v.signer)
		if err != nil {
			return err
		}
		head = vlog.Next(head, body)
		mine = append(mine, signed{rd: rd, body: body, sig: e.Sig, info: &entryInfo{seq: seq, op: rd.op, revision: rd.rev, digest: bytes.Clone(e.Digest[:])}})
	}
	hr := &headRecord{Version: RecordVersion, Vault: s.id, Seq: seq, Hash: head[:]}
	headRaw := setMAC(v.macKey, "head", hr, &hr.MAC)
	rec, err := v.readSync()
	if err != nil {
		return err
	}
	rec.setPin(s.id, theirHead, theirHash[:])
	syncRaw := v.encodeSync(rec)

	// A purge pulled before a put of the same item (an item kept after a
	// concurrent purge) must not delete the chunks that put refers to.
	laterRefs := make([]map[string]bool, len(theirs))
	refs := map[string]map[string]bool{}
	for i := len(theirs) - 1; i >= 0; i-- {
		p := theirs[i]
		id := p.entry.Item
		if p.entry.Op == vlog.OpPurge {
			laterRefs[i] = refs[id]
			continue
		}
		if p.it != nil {
			if refs[id] == nil {
				refs[id] = map[string]bool{}
			}
			for _, a := range p.it.Attachments {
				refs[id][a.ID] = true
			}
		}
	}

	dropSnapshot := s.snapSeq > confirmed
	err = v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.TruncateLog(s.id, confirmed); err != nil {
			return err
		}
		if err := tx.ClearOutbox(s.id, confirmed); err != nil {
			return err
		}
		if dropSnapshot {
			if err := tx.DeleteSnapshot(s.id); err != nil {
				return err
			}
		}
		for _, rw := range rewinds {
			if err := tx.DeleteCurrent(s.id, rw.id); err != nil {
				return err
			}
			if err := tx.DeleteHistoryFrom(s.id, rw.id, rw.base+1); err != nil {
				return err
			}
		}
		for i, p := range theirs {
			e := p.entry
			switch {
			case e.Op == vlog.OpPut && p.payload == nil:
				// Purged later in this run: no row to write.
			case e.Op == vlog.OpPut:
				if c := cur[e.Item]; c != nil {
					if err := tx.PutHistory(*c); err != nil {
						return err
					}
				}
				row := &store.ItemRow{Vault: s.id, Item: e.Item, Revision: e.Revision, Payload: p.payload}
				if err := tx.PutItem(*row); err != nil {
					return err
				}
				cur[e.Item] = row
				for _, a := range p.it.Attachments {
					if err := tx.ClearPending(s.id, a.ID); err != nil {
						return err
					}
				}
			case e.Op == vlog.OpPurge:
				var drop []string
				for _, b := range blobsOf[e.Item] {
					if !keepBlobs[b] && !laterRefs[i][b] {
						drop = append(drop, b)
					}
				}
				if err := tx.DeleteItem(s.id, e.Item, drop); err != nil {
					return err
				}
				cur[e.Item] = nil
			}
			if err := tx.AppendConfirmedLog(store.LogRow{Vault: s.id, Seq: e.Seq, Item: e.Item, Revision: e.Revision, Body: p.body, Sig: p.sig}); err != nil {
				return err
			}
		}
		for _, m := range mine {
			if m.rd.purgeRows {
				if err := tx.DeleteItem(s.id, m.rd.id, m.rd.blobs); err != nil {
					return err
				}
				cur[m.rd.id] = nil
			}
			if m.rd.it != nil { // a merged or resurrected revision
				if c := cur[m.rd.id]; c != nil {
					if err := tx.PutHistory(*c); err != nil {
						return err
					}
				}
				row := &store.ItemRow{Vault: s.id, Item: m.rd.id, Revision: m.rd.rev, Payload: m.rd.payload}
				if err := tx.PutItem(*row); err != nil {
					return err
				}
				cur[m.rd.id] = row
			}
			if err := tx.AppendLog(store.LogRow{Vault: s.id, Seq: m.info.seq, Item: m.rd.id, Revision: m.rd.rev, Body: m.body, Sig: m.sig}); err != nil {
				return err
			}
		}
		if err := tx.PutHead(s.id, headRaw); err != nil {
			return err
		}
		return tx.PutSyncRecord(syncRaw)
	})
	if err != nil {
		return err
	}
	v.seenOwnWrite()
	// The in-memory index follows the committed state.
	s.seq, s.head = seq, head
	if dropSnapshot {
		s.snapSeq = 0
	}
	s.titles = nil
	for _, p := range theirs {
		e := p.entry
		s.index[e.Item] = &entryInfo{seq: e.Seq, op: e.Op, revision: e.Revision, digest: bytes.Clone(e.Digest[:])}
		if e.Op == vlog.OpPurge {
			delete(s.views, e.Item)
		} else if p.it != nil {
			it := p.it.Clone()
			it.Revision = e.Revision
			s.views[e.Item] = overviewOf(s.id, it)
		}
	}
	for _, m := range mine {
		s.index[m.rd.id] = m.info
		if m.rd.op == vlog.OpPurge {
			delete(s.views, m.rd.id)
		}
		if m.rd.it != nil {
			s.views[m.rd.id] = overviewOf(s.id, *m.rd.it)
		}
	}
	return nil
}

// sealRedo seals it as revision rev of item id, for a rebase.
func (v *Vault) sealRedo(s *vaultState, id string, rev uint64, it item.Item, now time.Time) (redo, error) {
	it.ID = id
	pt, err := encodeItem(withoutRevision(it))
	if err != nil {
		return redo{}, err
	}
	payload, err := envelope.Seal(v.opts.Rand, s.key, itemContext(s.acct, s.id, id, rev), pt)
	wipeBytes(pt)
	if err != nil {
		return redo{}, err
	}
	it.Revision = rev
	return redo{op: vlog.OpPut, id: id, rev: rev, payload: payload, time: now.UnixMilli(), it: &it}, nil
}

// rowAt returns the stored row of an item's revision (current or history),
// or nil if it is gone (purged).
func (v *Vault) rowAt(s *vaultState, id string, rev uint64) (*store.ItemRow, error) {
	row, err := v.st.Item(s.id, id)
	if err == nil && row.Revision == rev {
		return &row, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hist, err := v.st.History(s.id, id)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if h.Revision == rev {
			return &h, nil
		}
	}
	return nil, nil
}

// loggedDigest is the payload digest the local log recorded for a revision.
func (v *Vault) loggedDigest(s *vaultState, id string, rev uint64) ([]byte, error) {
	ds, err := v.logDigests(s.id, id)
	if err != nil {
		return nil, err
	}
	d, ok := ds[rev]
	if !ok {
		return nil, tampered("item %s revision %d is not in the log", id, rev)
	}
	return d, nil
}

// allBlobs lists the blobs of every local revision of an item and of the
// pulled revisions, so that a purge deletes them all.
func (v *Vault) allBlobs(s *vaultState, id string, theirs []*pulled) ([]string, error) {
	var out []string
	add := func(it item.Item) {
		for _, a := range it.Attachments {
			if !slices.Contains(out, a.ID) {
				out = append(out, a.ID)
			}
		}
	}
	if row, err := v.st.Item(s.id, id); err == nil {
		it, err := v.openPayload(s, row)
		if err != nil {
			return nil, err
		}
		add(it)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hist, err := v.st.History(s.id, id)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		it, err := v.openPayload(s, h)
		if err != nil {
			return nil, err
		}
		add(it)
	}
	for _, p := range theirs {
		if p.entry.Item == id && p.it != nil {
			add(*p.it)
		}
	}
	return out, nil
}

func withoutRevision(it item.Item) item.Item {
	c := it.Clone()
	c.Revision = 0
	return c
}

// sameContent says whether two items hold the same user data (modified
// times aside).
func sameContent(a, b item.Item) bool {
	a, b = withoutRevision(a), withoutRevision(b)
	a.Modified, b.Modified = time.Time{}, time.Time{}
	ea, err1 := encodeItem(a)
	eb, err2 := encodeItem(b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// push sends the local entries after the confirmed position, with their
// payloads and the attachments they add, in batches.
func (v *Vault) push(ctx context.Context, r remote.Remote, s *vaultState, confirmed uint64, confirmedHash []byte) (int, error) {
	pushed := 0
	base, hash := confirmed, chain.Hash(confirmedHash)
	for base < s.seq {
		var rows []store.LogRow
		err := v.st.Log(s.id, base, true, func(row store.LogRow) error {
			if len(rows) >= api.MaxAppend {
				return errStopIter
			}
			rows = append(rows, row)
			return nil
		})
		if err != nil && !errors.Is(err, errStopIter) {
			return pushed, err
		}
		decoded := make([]*vlog.Entry, len(rows))
		for i, row := range rows {
			e, err := vlog.DecodeBody(row.Body)
			if err != nil {
				return pushed, tampered("log entry %d: %v", row.Seq, err)
			}
			decoded[i] = e
		}
		later := func(i int, op byte, id string) bool {
			return slices.ContainsFunc(decoded[i+1:], func(e *vlog.Entry) bool { return e.Op == op && e.Item == id })
		}
		// A batch ends at about a third of the body limit, never between a
		// put sent without payload and the purge that explains it, and
		// right after a purge that a later put of the same item follows
		// (the remote deletes the item's blobs at the purge, so that put's
		// blobs go up with the next batch).
		entries := make([]api.Entry, 0, len(rows))
		open := map[string]bool{} // items whose payload-less put awaits its purge
		size, cut := 0, len(rows)
		for i, row := range rows {
			if size > api.MaxJSONBody/3 && len(open) == 0 && len(entries) > 0 {
				cut = i
				break
			}
			e := decoded[i]
			ae := api.Entry{Body: row.Body, Sig: row.Sig}
			switch e.Op {
			case vlog.OpPut:
				ir, err := v.rowAt(s, e.Item, e.Revision)
				if err != nil {
					return pushed, err
				}
				if ir == nil {
					if !later(i, vlog.OpPurge, e.Item) {
						return pushed, fmt.Errorf("item %s revision %d was purged more than %d unsent changes later: its purge must be sent in the same batch, which the remote's limit does not allow; report this", e.Item, e.Revision, api.MaxAppend)
					}
					open[e.Item] = true
				} else {
					ae.Payload = ir.Payload
					if err := v.pushBlobs(ctx, r, s, *ir); err != nil {
						return pushed, err
					}
				}
			case vlog.OpPurge:
				delete(open, e.Item)
			}
			entries = append(entries, ae)
			size += len(ae.Body) + len(ae.Sig) + len(ae.Payload)
			if e.Op == vlog.OpPurge && len(open) == 0 && later(i, vlog.OpPut, e.Item) {
				cut = i + 1
				break
			}
		}
		rows = rows[:cut]
		head, err := r.Push(ctx, s.id, base, entries)
		if err != nil {
			return pushed, fmt.Errorf("send vault %s entries %d..%d: %w", s.id, base+1, base+uint64(len(entries)), err)
		}
		if head != base+uint64(len(entries)) {
			return pushed, remoteTampered("vault %s: the remote acknowledged head %d after appending %d entries to %d", s.id, head, len(entries), base)
		}
		for _, row := range rows {
			hash = vlog.Next(hash, row.Body)
		}
		base = head
		pushed += len(entries)
		if err := v.savePin(ctx, s.id, base, hash[:]); err != nil {
			return pushed, err
		}
	}
	return pushed, nil
}

var errStopIter = errors.New("stop")

// pushBlobs uploads the attachments a revision adds to the one before it.
func (v *Vault) pushBlobs(ctx context.Context, r remote.Remote, s *vaultState, row store.ItemRow) error {
	it, err := v.openPayload(s, row)
	if err != nil {
		return err
	}
	if len(it.Attachments) == 0 {
		return nil
	}
	known := map[string]bool{}
	if row.Revision > 1 {
		prev, err := v.rowAt(s, row.Item, row.Revision-1)
		if err != nil {
			return err
		}
		if prev != nil {
			old, err := v.openPayload(s, *prev)
			if err != nil {
				return err
			}
			for _, a := range old.Attachments {
				known[a.ID] = true
			}
		}
	}
	for _, a := range it.Attachments {
		if known[a.ID] {
			continue
		}
		err := r.PutBlob(ctx, s.id, row.Item, a.ID, v.chunks(s.id, a.ID, a.Chunks))
		if err != nil {
			return fmt.Errorf("upload attachment %s: %w", a.ID, err)
		}
	}
	return nil
}

// chunks yields a blob's stored chunks in order.
func (v *Vault) chunks(vault, blob string, n int64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for idx := range n {
			c, err := v.st.Chunk(vault, blob, idx)
			if err != nil {
				yield(nil, fmt.Errorf("read attachment %s chunk %d: %w", blob, idx, err))
				return
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// sanitize makes remote-supplied text safe to show (textsafe.Clean: no
// terminal escapes, control characters, bidirectional overrides or
// invalid UTF-8), bounded to 80 characters.
func sanitize(s string) string { return textsafe.Truncate(textsafe.Clean(s), 80) }
