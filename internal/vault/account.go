package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/keycode"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/store"
	"github.com/safehold/safehold/internal/vlog"
)

// ChangePassword re-wraps the Master Key under a key derived from the new
// password, with fresh salts and the given parameters (zero Params keeps the
// current ones). Nothing else changes: items, vault keys and the Recovery Key
// stay as they are. The vault must be unlocked, and the old password is
// checked again so that an unlocked, unattended session cannot change it.
func (v *Vault) ChangePassword(ctx context.Context, old, next []byte, params kdf.Params) error {
	if err := v.refresh(ctx); err != nil {
		return err
	}
	cur, salts, err := parseKDF(v.acct.KDF)
	if err != nil {
		return tampered("kdf parameters: %v", err)
	}
	keys, err := kdf.DeriveWith(old, v.acct.SecretKey, cur, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return err
	}
	mk, err := envelope.Open(keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: v.acct.Account}, v.acct.PasswordWrap)
	keys.Wipe()
	if err != nil {
		return ErrWrongPassword
	}
	secret.Wipe(mk)
	if params == (kdf.Params{}) {
		params = cur
	}
	return v.rewrapPassword(ctx, next, params)
}

// Recover replaces a forgotten password: the Recovery Key unwraps the Master
// Key, which is then wrapped under the new password. It leaves the vault
// unlocked. The Recovery Key's checksum is checked before anything is
// derived.
func (v *Vault) Recover(ctx context.Context, recoveryKey string, next []byte, params kdf.Params) error {
	rk, err := keycode.ParseRecoveryKey(recoveryKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRecoveryKey, err)
	}
	if err := v.readAccount(); err != nil {
		return err
	}
	kek := rk.KEK(v.acct.RecoverySalt)
	mk, err := envelope.Open(kek, envelope.Context{Purpose: purposeRecoveryWrap, Account: v.acct.Account}, v.acct.RecoveryWrap)
	kek.Wipe()
	if err != nil {
		if errors.Is(err, envelope.ErrAuth) {
			return fmt.Errorf("%w: it is well formed but belongs to another vault or was mistyped", ErrRecoveryKey)
		}
		return tampered("recovery wrap: %v", err)
	}
	if err := v.unlockWith(ctx, mk); err != nil {
		return err
	}
	if params == (kdf.Params{}) {
		if params, _, err = parseKDF(v.acct.KDF); err != nil {
			return tampered("kdf parameters: %v", err)
		}
	}
	return v.rewrapPassword(ctx, next, params)
}

func (v *Vault) rewrapPassword(ctx context.Context, password []byte, params kdf.Params) error {
	if err := checkParams(params, v.opts); err != nil {
		return err
	}
	srec, err := v.readSync()
	if err != nil {
		return err
	}
	var salts kdf.Salts
	if srec != nil {
		// An account on a remote keeps its salts: other devices refuse
		// re-salted parameters (§13.2).
		cur, s, err := parseKDF(v.acct.KDF)
		if err != nil {
			return tampered("kdf parameters: %v", err)
		}
		if params.WeakerThan(cur) {
			return fmt.Errorf("kdf parameters refused: %s is weaker than the account's %s, which other devices would refuse", params, cur)
		}
		salts = s
	} else if salts, err = kdf.NewSalts(v.opts.Rand); err != nil {
		return err
	}
	keys, err := kdf.DeriveWith(password, v.acct.SecretKey, params, salts, v.opts.AllowInsecureKDF)
	if err != nil {
		return fmt.Errorf("derive keys from the new password: %w", err)
	}
	defer keys.Wipe()
	rec := *v.acct
	if rec.KDF, err = marshalKDF(params, salts); err != nil {
		return err
	}
	rec.InsecureTestKDF = params.InsecureTest
	if rec.PasswordWrap, err = envelope.Seal(v.opts.Rand, keys.KEK(), envelope.Context{Purpose: purposePasswordWrap, Account: rec.Account}, v.mk); err != nil {
		return err
	}
	raw := setMAC(v.macKey, "account", &rec, &rec.MAC)
	var sraw []byte
	if srec != nil {
		lk := keys.LoginKey()
		sealed, err := envelope.Seal(v.opts.Rand, v.mk, envelope.Context{Purpose: purposePendingLogin, Account: rec.Account}, lk)
		lk.Wipe()
		if err != nil {
			return err
		}
		srec.DocDirty, srec.PendingLogin = true, sealed
		sraw = v.encodeSync(srec)
	}
	if err := v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutAccount(raw); err != nil {
			return err
		}
		if sraw != nil {
			return tx.PutSyncRecord(sraw)
		}
		return nil
	}); err != nil {
		return err
	}
	v.acct = &rec
	v.seenOwnWrite()
	return nil
}

// Report is what Verify found.
type Report struct {
	Vaults      int      `json:"vaults"`
	Items       int      `json:"items"`
	Trashed     int      `json:"trashed"`
	Revisions   int      `json:"history_revisions"`
	LogEntries  uint64   `json:"log_entries"`
	Attachments int      `json:"attachments"`
	Problems    []string `json:"problems"`
}

// Verify checks everything: the account and vault records, every log
// entry's chain link and hybrid signature, every current and historical row
// against the log, and every attachment's chunk count. It returns the report
// and, when anything is wrong, an *IntegrityError listing every problem.
func (v *Vault) Verify(ctx context.Context) (Report, error) {
	var rep Report
	if v.mk == nil {
		return rep, ErrLocked
	}
	// The full check below rebuilds the in-memory index, without the rows
	// it finds damaged, and may stop half-way (a cancelled context, a store
	// error). Until it has passed, the state must not be saved as a
	// snapshot; and the next read reloads it, so that a damaged item is
	// reported as tampered there too, not as missing.
	v.verified = false
	defer func() { v.seen = -1 }()
	if err := v.readAccount(); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return rep, &IntegrityError{Problems: rep.Problems}
	}
	if err := v.load(ctx); err != nil {
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			return rep, err
		}
		rep.Problems = append(rep.Problems, ie.Problems...)
	}
	v.verified = false   // load sets it; the full check has not passed yet
	if v.vaults == nil { // load stopped before the vaults
		return rep, &IntegrityError{Problems: rep.Problems}
	}
	for _, vid := range v.order {
		s := v.vaults[vid]
		if err := v.checkVault(ctx, s, true, &rep.Problems); err != nil {
			return rep, err
		}
		rep.Vaults++
		rep.LogEntries += s.seq
		for _, o := range s.views {
			rep.Items++
			if o.Trashed {
				rep.Trashed++
			}
		}
		// What the log says each item's revisions were; the chain was
		// just checked, so the bodies can be trusted. Collected first: the
		// store has one connection, so no query may run while a result set
		// is open.
		logged := map[string]map[uint64][]byte{}
		err := v.st.Log(s.id, 0, false, func(r store.LogRow) error {
			e, err := vlog.DecodeBody(r.Body)
			if err != nil {
				return nil // reported by checkVault
			}
			if e.Op == vlog.OpPurge {
				// A purge ends the item's history; a later put (an
				// item kept after a concurrent purge, §13.5.4) starts
				// a new one.
				delete(logged, e.Item)
				return nil
			}
			if logged[e.Item] == nil {
				logged[e.Item] = map[uint64][]byte{}
			}
			logged[e.Item][e.Revision] = bytes.Clone(e.Digest[:])
			return nil
		})
		if err != nil {
			return rep, err
		}
		var hist []store.ItemRow
		if err := v.st.AllHistory(s.id, func(r store.ItemRow) error { hist = append(hist, r); return nil }); err != nil {
			return rep, err
		}
		seen := map[string]map[uint64]bool{}
		for _, r := range hist {
			rep.Revisions++
			if seen[r.Item] == nil {
				seen[r.Item] = map[uint64]bool{}
			}
			seen[r.Item][r.Revision] = true
			if want, ok := logged[r.Item][r.Revision]; !ok || !equalDigest(digest(r.Payload), want) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("history of item %s revision %d is not the one the log recorded", r.Item, r.Revision))
				continue
			}
			if _, err := v.openPayload(s, r); err != nil {
				rep.Problems = append(rep.Problems, err.Error())
			}
		}
		// Every earlier revision of a current item must still be there.
		for id, o := range s.views {
			for rev := range logged[id] {
				if rev < o.Revision && !seen[id][rev] {
					rep.Problems = append(rep.Problems, fmt.Sprintf("revision %d of item %s is missing from its history: it was deleted behind safe's back", rev, id))
				}
			}
		}
		for id := range s.views {
			it, err := v.read(s, id)
			if err != nil {
				continue // already reported by checkVault
			}
			for _, a := range it.Attachments {
				rep.Attachments++
				n, err := v.st.ChunkCount(s.id, a.ID)
				if err != nil {
					return rep, err
				}
				if n != a.Chunks {
					rep.Problems = append(rep.Problems, fmt.Sprintf("attachment %q of item %q has %d chunks, want %d", a.Name, it.Title, n, a.Chunks))
				}
			}
		}
	}
	if len(rep.Problems) > 0 {
		return rep, &IntegrityError{Problems: rep.Problems}
	}
	v.verified = true
	return rep, nil
}
