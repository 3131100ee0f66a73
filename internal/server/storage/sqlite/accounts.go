package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

const secretSize = 32

// Secret returns the server's secret, creating it on first use. The insert
// does nothing if another writer got there first, and every caller then
// reads the one stored value.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		fresh := make([]byte, secretSize)
		rand.Read(fresh)
		err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('secret', ?)
				ON CONFLICT (key) DO NOTHING`, fresh); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&v)
		})
	}
	if err != nil {
		return nil, wrap("read server secret", err)
	}
	if len(v) != secretSize {
		return nil, fmt.Errorf("read server secret: stored value has %d bytes, want %d; the database is damaged", len(v), secretSize)
	}
	return v, nil
}

const accountColumns = `id, email, kdf, verifier, epoch, document, created, disabled, totp_secret, totp_enabled`

// CreateAccount stores a new account at epoch 1 and its first device.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account, d storage.Device) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`)
			VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`,
			a.ID, a.Email, blob(a.KDF), blob(a.Verifier), blob(a.Document), micro(a.Created),
			boolInt(a.Disabled), a.TOTPSecret, boolInt(a.TOTPEnabled))
		if err != nil {
			return constraint(err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (account, id, platform, created, last_seen, revoked)
			VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID, d.ID, d.Platform, micro(d.Created), micro(d.LastSeen), nullMicro(d.Revoked))
		return constraint(err)
	})
	return wrap("create account", err)
}

type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner) (storage.Account, error) {
	var (
		a                 storage.Account
		epoch, created    int64
		disabled, enabled int
	)
	err := row.Scan(&a.ID, &a.Email, &a.KDF, &a.Verifier, &epoch, &a.Document, &created,
		&disabled, &a.TOTPSecret, &enabled)
	if err != nil {
		return storage.Account{}, noRows(err)
	}
	a.Epoch = uint64(epoch)
	a.Created = fromMicro(created)
	a.Disabled = disabled != 0
	a.TOTPEnabled = enabled != 0
	return a, nil
}

// AccountByEmail finds an account by its (lower-cased) address.
func (s *Store) AccountByEmail(ctx context.Context, email string) (storage.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE email = ?`, email))
	return a, wrap("find account by e-mail", err)
}

// AccountByID finds an account by id.
func (s *Store) AccountByID(ctx context.Context, id string) (storage.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	return a, wrap("find account", err)
}

// accountExists returns nil, storage.ErrNotFound or a query error.
func accountExists(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	return noRows(tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, id).Scan(&one))
}

// UpdateDocument replaces the account document if its epoch is base.
func (s *Store) UpdateDocument(ctx context.Context, id string, base uint64, doc []byte, cred *storage.Credentials) (uint64, error) {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var (
			res sql.Result
			err error
		)
		if cred != nil {
			res, err = tx.ExecContext(ctx, `UPDATE accounts SET epoch = epoch + 1, document = ?, kdf = ?, verifier = ?
				WHERE id = ? AND epoch = ?`, blob(doc), blob(cred.KDF), blob(cred.Verifier), id, int64(base))
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE accounts SET epoch = epoch + 1, document = ?
				WHERE id = ? AND epoch = ?`, blob(doc), id, int64(base))
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if err := accountExists(ctx, tx, id); err != nil {
			return err
		}
		return storage.ErrStale
	})
	if err != nil {
		return 0, wrap("update account document", err)
	}
	return base + 1, nil
}

// SetTOTP stores the TOTP state and replaces the recovery-code hashes.
func (s *Store) SetTOTP(ctx context.Context, id, secret string, enabled bool, recoveryHashes [][]byte) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET totp_secret = ?, totp_enabled = ? WHERE id = ?`,
			secret, boolInt(enabled), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account = ?`, id); err != nil {
			return err
		}
		for _, h := range recoveryHashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (account, hash) VALUES (?, ?)
				ON CONFLICT DO NOTHING`, id, blob(h)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("set two-factor state", err)
}

// UseRecoveryCode deletes a recovery-code hash and reports whether it was
// there.
func (s *Store) UseRecoveryCode(ctx context.Context, id string, hash []byte) (bool, error) {
	var used bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account = ? AND hash = ?`, id, blob(hash))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		used = n == 1
		return err
	})
	return used, wrap("use recovery code", err)
}

// SetDisabled disables or enables an account.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET disabled = ? WHERE id = ?`, boolInt(disabled), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrNotFound)
		}
		return nil
	})
	return wrap("set account disabled", err)
}

// DeleteAccount removes the account and, by cascade, its devices,
// sessions, logins, recovery codes, vaults, entries and blobs, and forgets
// its rate-limit state.
func (s *Store) DeleteAccount(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM throttles WHERE key = ?`, "acct:"+id)
		return err
	})
	return wrap("delete account", err)
}

// Accounts lists every account with its usage, oldest first.
func (s *Store) Accounts(ctx context.Context) ([]storage.AccountSummary, error) {
	var out []storage.AccountSummary
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY created, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				return err
			}
			out = append(out, storage.AccountSummary{Account: a})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for i := range out {
			if out[i].Usage, err = usage(ctx, tx, out[i].Account.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, wrap("list accounts", err)
}

// Usage reports what an account stores.
func (s *Store) Usage(ctx context.Context, id string) (storage.Usage, error) {
	var u storage.Usage
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, id); err != nil {
			return err
		}
		var err error
		u, err = usage(ctx, tx, id)
		return err
	})
	return u, wrap("read account usage", err)
}

func usage(ctx context.Context, tx *sql.Tx, id string) (storage.Usage, error) {
	var (
		u        storage.Usage
		lastSeen sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM vaults WHERE account = ?1),
		(SELECT count(*) FROM entries e JOIN vaults v ON v.vault = e.vault WHERE v.account = ?1),
		(SELECT coalesce(sum(length(document)), 0) FROM accounts WHERE id = ?1)
		+ (SELECT coalesce(sum(length(record)), 0) FROM vaults WHERE account = ?1)
		+ (SELECT coalesce(sum(length(e.body) + length(e.sig) + coalesce(length(e.payload), 0)), 0)
			FROM entries e JOIN vaults v ON v.vault = e.vault WHERE v.account = ?1)
		+ (SELECT coalesce(sum(b.bytes), 0) FROM blobs b JOIN vaults v ON v.vault = b.vault WHERE v.account = ?1),
		(SELECT count(*) FROM devices WHERE account = ?1 AND revoked IS NULL),
		(SELECT max(last_seen) FROM devices WHERE account = ?1)`, id).
		Scan(&u.Vaults, &u.Entries, &u.Bytes, &u.Devices, &lastSeen)
	u.LastSeen = fromNullMicro(lastSeen)
	return u, err
}

const deviceColumns = `account, id, platform, created, last_seen, revoked`

func scanDevice(row scanner) (storage.Device, error) {
	var (
		d                 storage.Device
		created, lastSeen int64
		revoked           sql.NullInt64
	)
	if err := row.Scan(&d.Account, &d.ID, &d.Platform, &created, &lastSeen, &revoked); err != nil {
		return storage.Device{}, noRows(err)
	}
	d.Created = fromMicro(created)
	d.LastSeen = fromMicro(lastSeen)
	d.Revoked = fromNullMicro(revoked)
	return d, nil
}

// UpsertDevice adds a device or updates its platform and LastSeen (which
// never moves back). A revoked device stays revoked.
func (s *Store) UpsertDevice(ctx context.Context, d storage.Device) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET platform = excluded.platform,
				last_seen = max(last_seen, excluded.last_seen)`,
			d.Account, d.ID, d.Platform, micro(d.Created), micro(d.LastSeen), nullMicro(d.Revoked))
		return constraint(err)
	})
	return wrap("store device", err)
}

// Device finds one device of an account.
func (s *Store) Device(ctx context.Context, account, id string) (storage.Device, error) {
	d, err := scanDevice(s.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE account = ? AND id = ?`, account, id))
	return d, wrap("find device", err)
}

// Devices lists an account's devices, oldest first.
func (s *Store) Devices(ctx context.Context, account string) ([]storage.Device, error) {
	rows, err := s.query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE account = ? ORDER BY created, id`, account)
	if err != nil {
		return nil, wrap("list devices", err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, wrap("list devices", err)
		}
		out = append(out, d)
	}
	return out, wrap("list devices", rows.Err())
}

// RevokeDevice marks the device revoked (keeping the first revocation
// time) and deletes its sessions.
func (s *Store) RevokeDevice(ctx context.Context, account, id string, at time.Time) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET revoked = coalesce(revoked, ?) WHERE account = ? AND id = ?`,
			micro(at), account, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE account = ? AND device = ?`, account, id)
		return err
	})
	return wrap("revoke device", err)
}

// CreateSession stores a session. It also drops the device's sessions
// that expired before this one was created, so that they do not pile up.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account = ? AND device = ? AND expires <= ?`,
			ss.Account, ss.Device, micro(ss.Created)); err != nil {
			return err
		}
		var pair any
		if ss.Pair != nil {
			pair = ss.Pair
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (hash, kind, account, device, created, expires, pair)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			blob(ss.Hash), ss.Kind, ss.Account, ss.Device, micro(ss.Created), micro(ss.Expires), pair)
		return constraint(err)
	})
	return wrap("create session", err)
}

// Session finds an unexpired session by token hash.
func (s *Store) Session(ctx context.Context, hash []byte, now time.Time) (storage.Session, error) {
	var (
		ss               storage.Session
		created, expires int64
	)
	err := s.queryRow(ctx, `SELECT hash, kind, account, device, created, expires, pair
		FROM sessions WHERE hash = ? AND expires > ?`, blob(hash), micro(now)).
		Scan(&ss.Hash, &ss.Kind, &ss.Account, &ss.Device, &created, &expires, &ss.Pair)
	if err != nil {
		return storage.Session{}, wrap("find session", noRows(err))
	}
	ss.Created = fromMicro(created)
	ss.Expires = fromMicro(expires)
	return ss, nil
}

// DeleteSession deletes a session and its pair. Pair may hold the other
// session's hash or an id both sessions share; either way both go.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) (bool, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?1 OR pair = ?1
			OR hash IN (SELECT pair FROM sessions WHERE hash = ?1 AND pair IS NOT NULL)
			OR pair IN (SELECT pair FROM sessions WHERE hash = ?1 AND pair IS NOT NULL)`, blob(hash))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, wrap("delete session", err)
}

// DeleteSessions deletes every session of the account.
func (s *Store) DeleteSessions(ctx context.Context, account string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account = ?`, account)
		return err
	})
	return wrap("delete sessions", err)
}

// RecordLogin adds a login attempt to the account's history.
func (s *Store) RecordLogin(ctx context.Context, e storage.LoginEvent) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO logins (account, occurred, device, address, ok, reason)
			VALUES (?, ?, ?, ?, ?, ?)`, e.Account, micro(e.Time), e.Device, e.Address, boolInt(e.OK), e.Reason)
		return constraint(err)
	})
	return wrap("record login", err)
}

// Logins returns the account's latest login attempts, newest first.
func (s *Store) Logins(ctx context.Context, account string, limit int) ([]storage.LoginEvent, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list logins: limit %d is not positive", limit)
	}
	rows, err := s.query(ctx, `SELECT account, occurred, device, address, ok, reason FROM logins
		WHERE account = ? ORDER BY occurred DESC, id DESC LIMIT ?`, account, limit)
	if err != nil {
		return nil, wrap("list logins", err)
	}
	defer rows.Close()
	var out []storage.LoginEvent
	for rows.Next() {
		var (
			e  storage.LoginEvent
			at int64
			ok int
		)
		if err := rows.Scan(&e.Account, &at, &e.Device, &e.Address, &ok, &e.Reason); err != nil {
			return nil, wrap("list logins", err)
		}
		e.Time = fromMicro(at)
		e.OK = ok != 0
		out = append(out, e)
	}
	return out, wrap("list logins", rows.Err())
}

// Throttle returns a key's failure state, zero if it has none.
func (s *Store) Throttle(ctx context.Context, key string) (storage.Throttle, error) {
	var (
		t     storage.Throttle
		until int64
	)
	err := s.queryRow(ctx, `SELECT failures, until_time FROM throttles WHERE key = ?`, key).Scan(&t.Failures, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Throttle{}, nil
	}
	if err != nil {
		return storage.Throttle{}, wrap("read rate-limit state", err)
	}
	t.Until = fromMicro(until)
	return t, nil
}

// Fail counts one more failure for key and sets its back-off, in one
// write transaction.
func (s *Store) Fail(ctx context.Context, key string, now time.Time, backoff func(failures int) time.Duration) (storage.Throttle, error) {
	var t storage.Throttle
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO throttles (key, failures, until_time) VALUES (?, 1, ?)
			ON CONFLICT (key) DO UPDATE SET failures = failures + 1 RETURNING failures`, key, micro(now)).Scan(&t.Failures)
		if err != nil {
			return err
		}
		until := now
		if backoff != nil {
			until = now.Add(backoff(t.Failures))
		}
		t.Until = fromMicro(micro(until))
		_, err = tx.ExecContext(ctx, `UPDATE throttles SET until_time = ? WHERE key = ?`, micro(until), key)
		return err
	})
	if err != nil {
		return storage.Throttle{}, wrap("record failure", err)
	}
	return t, nil
}

// ClearThrottle forgets a key's failures.
func (s *Store) ClearThrottle(ctx context.Context, key string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM throttles WHERE key = ?`, key)
		return err
	})
	return wrap("clear rate-limit state", err)
}
