package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/store"
)

// Remote kinds.
const (
	RemoteServer = "server"
	RemoteFolder = "folder"
	RemotePeer   = "peer" // another device running `safe peer listen` (§16)
)

const (
	purposeSession      = "remote-session"
	purposePendingLogin = "pending-login-key"
)

// syncRecord is the vault's tie to its remote (docs/design.md §13.4):
// where it is, how to reach it, and what this device last verified there.
// MAC kind "sync".
type syncRecord struct {
	Version     int    `json:"v"`
	Account     string `json:"account"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Email       string `json:"email"`
	Manual      bool   `json:"manual,omitempty"` // no automatic sync
	// Session is the envelope (MK, purpose remote-session) of the
	// remote's session (JSON), for a server.
	Session []byte `json:"session,omitempty"`
	// Epoch is the account-document epoch last verified on the remote.
	Epoch uint64 `json:"epoch"`
	// KDF is that document's KDF header: what the remote's prelogin must
	// answer (same salts, not weaker).
	KDF []byte `json:"kdf,omitempty"`
	// DocDirty: the local account record changed (password, recovery,
	// devices) and the remote has not accepted the new document yet.
	DocDirty bool `json:"doc_dirty,omitempty"`
	// PendingLogin is the envelope (MK, purpose pending-login-key) of the
	// login key for a password changed here and not yet on the remote.
	PendingLogin []byte `json:"pending_login,omitempty"`
	Pins         []pin  `json:"pins"`
	// Linked lists devices this device certified through a device link
	// (§15.2) and has not seen in the remote's document yet: they are
	// kept, and sent, when a newer document comes without them.
	Linked []string `json:"linked,omitempty"`
	MAC    []byte   `json:"mac,omitempty"`
}

// pin is the last log position of one vault verified on the remote; every
// local entry up to it is identical to the remote's.
type pin struct {
	Vault string `json:"vault"`
	Seq   uint64 `json:"seq"`
	Hash  []byte `json:"hash"`
}

// RemoteInfo describes the vault's remote.
type RemoteInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Email       string `json:"email"`
	Auto        bool   `json:"auto"`
	Epoch       uint64 `json:"epoch"`
	Pending     int    `json:"pending"` // local log entries not yet on the remote
}

// readSync returns the verified sync record, or nil when there is none.
func (v *Vault) readSync() (*syncRecord, error) {
	raw, err := v.st.SyncRecord()
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r syncRecord
	if err := decodeRecord(raw, &r); err != nil {
		return nil, tampered("sync record: %v", err)
	}
	if r.Version != RecordVersion || r.Account != v.acct.Account {
		return nil, tampered("the sync record belongs to another account or version")
	}
	if !checkMAC(v.macKey, "sync", &r, &r.MAC) {
		return nil, tampered("the sync record was modified (its MAC does not verify)")
	}
	return &r, nil
}

// encodeSync MACs a sync record.
func (v *Vault) encodeSync(r *syncRecord) []byte {
	r.Version, r.Account = RecordVersion, v.acct.Account
	return setMAC(v.macKey, "sync", r, &r.MAC)
}

func (r *syncRecord) pin(vault string) (uint64, []byte) {
	for _, p := range r.Pins {
		if p.Vault == vault {
			return p.Seq, p.Hash
		}
	}
	g := genesis(vault)
	return 0, g[:]
}

func (r *syncRecord) setPin(vault string, seq uint64, hash []byte) {
	for i := range r.Pins {
		if r.Pins[i].Vault == vault {
			r.Pins[i].Seq, r.Pins[i].Hash = seq, bytes.Clone(hash)
			return
		}
	}
	r.Pins = append(r.Pins, pin{Vault: vault, Seq: seq, Hash: bytes.Clone(hash)})
}

// Remote describes the vault's remote; nil when it has none.
func (v *Vault) Remote(ctx context.Context) (*RemoteInfo, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	r, err := v.readSync()
	if err != nil || r == nil {
		return nil, err
	}
	info := &RemoteInfo{Name: r.Name, Kind: r.Kind, URL: r.URL, Fingerprint: r.Fingerprint, Email: r.Email, Auto: !r.Manual, Epoch: r.Epoch}
	for _, id := range v.order {
		seq, _ := r.pin(id)
		info.Pending += int(v.vaults[id].seq - seq)
	}
	return info, nil
}

// SetRemoteURL records a new address for the remote (a peer that moved).
func (v *Vault) SetRemoteURL(ctx context.Context, u string) error {
	return v.updateSync(ctx, func(r *syncRecord) error { r.URL = u; return nil })
}

// SetAutoSync turns automatic sync on or off.
func (v *Vault) SetAutoSync(ctx context.Context, auto bool) error {
	return v.updateSync(ctx, func(r *syncRecord) error { r.Manual = !auto; return nil })
}

// RemoveRemote forgets the remote. Local data stays; nothing is deleted on
// the remote.
func (v *Vault) RemoveRemote(ctx context.Context) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	return v.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteSyncRecord() })
}

// Session returns the sealed remote session (a server's tokens, JSON); nil
// when none is stored.
func (v *Vault) Session(ctx context.Context) ([]byte, error) {
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	r, err := v.readSync()
	if err != nil || r == nil || r.Session == nil {
		return nil, err
	}
	pt, err := envelope.Open(v.mk, envelope.Context{Purpose: purposeSession, Account: v.acct.Account}, r.Session)
	if err != nil {
		return nil, tampered("the stored session does not open: %v", err)
	}
	return pt, nil
}

// SaveSession stores (sealed) the remote's session; nil clears it.
func (v *Vault) SaveSession(ctx context.Context, session []byte) error {
	return v.updateSync(ctx, func(r *syncRecord) error {
		if session == nil {
			r.Session = nil
			return nil
		}
		sealed, err := envelope.Seal(v.opts.Rand, v.mk, envelope.Context{Purpose: purposeSession, Account: v.acct.Account}, session)
		r.Session = sealed
		return err
	})
}

// updateSync changes the sync record in one transaction.
func (v *Vault) updateSync(ctx context.Context, fn func(*syncRecord) error) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	r, err := v.readSync()
	if err != nil {
		return err
	}
	if r == nil {
		return ErrNoRemote
	}
	if err := fn(r); err != nil {
		return err
	}
	raw := v.encodeSync(r)
	if err := v.st.Update(ctx, func(tx *store.Tx) error { return tx.PutSyncRecord(raw) }); err != nil {
		return err
	}
	v.seenOwnWrite()
	return nil
}

// seenOwnWrite records our own commit so refresh does not reload for it.
func (v *Vault) seenOwnWrite() {
	if dv, err := v.st.DataVersion(); err == nil {
		v.seen = dv
	}
}

// document is the account document (§13.3): the account record without
// what only this device may know (the Secret Key and its device private
// key), MAC'd under kind "account-doc".
func (v *Vault) document(rec *accountRecord) []byte {
	doc := *rec
	doc.SecretKey = nil
	doc.MAC = nil
	doc.Devices = make([]deviceInfo, len(rec.Devices))
	for i, d := range rec.Devices {
		d.Sealed = nil
		doc.Devices[i] = d
	}
	return setMAC(v.macKey, "account-doc", &doc, &doc.MAC)
}

// parseDocument decodes and authenticates an account document.
func (v *Vault) parseDocument(raw []byte) (*accountRecord, error) {
	var doc accountRecord
	if err := decodeRecord(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: the account document is malformed: %v", ErrRemoteTampered, err)
	}
	if doc.Version != RecordVersion || doc.Account != v.acct.Account {
		return nil, fmt.Errorf("%w: the account document belongs to another account", ErrRemoteTampered)
	}
	if doc.SecretKey != nil {
		return nil, fmt.Errorf("%w: the account document carries a Secret Key", ErrRemoteTampered)
	}
	for _, d := range doc.Devices {
		if d.Sealed != nil {
			return nil, fmt.Errorf("%w: the account document carries a device private key", ErrRemoteTampered)
		}
	}
	if !checkMAC(v.macKey, "account-doc", &doc, &doc.MAC) {
		return nil, fmt.Errorf("%w: the account document was modified or forged (its MAC does not verify)", ErrRemoteTampered)
	}
	return &doc, nil
}
