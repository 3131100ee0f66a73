package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/safehold/safehold/internal/server/storage"
)

const secretSize = 32

// Secret returns the server's secret, creating it on first use: every
// process tries to insert a fresh value, the database keeps the first,
// and all read that one.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		fresh := make([]byte, secretSize)
		rand.Read(fresh)
		if _, err = s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('secret', $1)
			ON CONFLICT (key) DO NOTHING`, fresh); err == nil {
			err = s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&v)
		}
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`)
			VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9)`,
			a.ID, a.Email, blob(a.KDF), blob(a.Verifier), blob(a.Document), a.Created,
			a.Disabled, a.TOTPSecret, a.TOTPEnabled)
		if err != nil {
			return constraint(err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO devices (account, id, platform, created, last_seen, revoked)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			a.ID, d.ID, d.Platform, d.Created, d.LastSeen, nullTime(d.Revoked))
		return constraint(err)
	})
	return wrap("create account", err)
}

func scanAccount(row pgx.Row) (storage.Account, error) {
	var (
		a     storage.Account
		epoch int64
	)
	err := row.Scan(&a.ID, &a.Email, &a.KDF, &a.Verifier, &epoch, &a.Document, &a.Created,
		&a.Disabled, &a.TOTPSecret, &a.TOTPEnabled)
	if err != nil {
		return storage.Account{}, noRows(err)
	}
	a.Epoch = uint64(epoch)
	a.Created = a.Created.UTC()
	return a, nil
}

// AccountByEmail finds an account by its (lower-cased) address.
func (s *Store) AccountByEmail(ctx context.Context, email string) (storage.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE email = $1`, email))
	return a, wrap("find account by e-mail", err)
}

// AccountByID finds an account by id.
func (s *Store) AccountByID(ctx context.Context, id string) (storage.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`, id))
	return a, wrap("find account", err)
}

// UpdateDocument replaces the account document if its epoch is base: one
// compare-and-swap UPDATE.
func (s *Store) UpdateDocument(ctx context.Context, id string, base uint64, doc []byte, cred *storage.Credentials) (uint64, error) {
	var (
		tag pgconn.CommandTag
		err error
	)
	if cred != nil {
		tag, err = s.pool.Exec(ctx, `UPDATE accounts SET epoch = epoch + 1, document = $1, kdf = $2, verifier = $3
			WHERE id = $4 AND epoch = $5`, blob(doc), blob(cred.KDF), blob(cred.Verifier), id, int64(base))
	} else {
		tag, err = s.pool.Exec(ctx, `UPDATE accounts SET epoch = epoch + 1, document = $1
			WHERE id = $2 AND epoch = $3`, blob(doc), id, int64(base))
	}
	if err == nil && tag.RowsAffected() == 0 {
		err = exists(ctx, s.pool, `SELECT 1 FROM accounts WHERE id = $1`, id)
		if err == nil {
			err = storage.ErrStale
		}
	}
	if err != nil {
		return 0, wrap("update account document", err)
	}
	return base + 1, nil
}

// SetTOTP stores the TOTP state and replaces the recovery-code hashes.
func (s *Store) SetTOTP(ctx context.Context, id, secret string, enabled bool, recoveryHashes [][]byte) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE accounts SET totp_secret = $1, totp_enabled = $2 WHERE id = $3`, secret, enabled, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE account = $1`, id); err != nil {
			return err
		}
		if len(recoveryHashes) == 0 {
			return nil
		}
		hashes := make([][]byte, len(recoveryHashes))
		for i, h := range recoveryHashes {
			hashes[i] = blob(h)
		}
		_, err = tx.Exec(ctx, `INSERT INTO recovery_codes (account, hash)
			SELECT $1, h FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING`, id, hashes)
		return err
	})
	return wrap("set two-factor state", err)
}

// UseRecoveryCode deletes a recovery-code hash and reports whether it was
// there. Of racing callers, one deletes the row; the others find none.
func (s *Store) UseRecoveryCode(ctx context.Context, id string, hash []byte) (bool, error) {
	var got []byte
	err := s.pool.QueryRow(ctx, `DELETE FROM recovery_codes WHERE account = $1 AND hash = $2 RETURNING hash`,
		id, blob(hash)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap("use recovery code", err)
	}
	return true, nil
}

// SetDisabled disables or enables an account.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE accounts SET disabled = $1 WHERE id = $2`, disabled, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	return wrap("set account disabled", err)
}

// DeleteAccount removes the account and, by cascade, its devices,
// sessions, logins, recovery codes, vaults, entries and blobs, and forgets
// its rate-limit state.
func (s *Store) DeleteAccount(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM throttles WHERE key = $1`, "acct:"+id)
		return err
	})
	return wrap("delete account", err)
}

// Accounts lists every account with its usage, oldest first, from one
// snapshot.
func (s *Store) Accounts(ctx context.Context) ([]storage.AccountSummary, error) {
	var out []storage.AccountSummary
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY created, id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, storage.AccountSummary{Account: a})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
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
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = $1`, id); err != nil {
			return err
		}
		var err error
		u, err = usage(ctx, tx, id)
		return err
	})
	return u, wrap("read account usage", err)
}

func usage(ctx context.Context, tx pgx.Tx, id string) (storage.Usage, error) {
	var (
		u        storage.Usage
		vaults   int64
		devices  int64
		lastSeen pgtype.Timestamptz
	)
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM vaults WHERE account = $1),
		(SELECT count(*) FROM entries e JOIN vaults v ON v.vault = e.vault WHERE v.account = $1),
		((SELECT coalesce(sum(octet_length(document)), 0) FROM accounts WHERE id = $1)
		+ (SELECT coalesce(sum(octet_length(record)), 0) FROM vaults WHERE account = $1)
		+ (SELECT coalesce(sum(octet_length(e.body) + octet_length(e.sig) + coalesce(octet_length(e.payload), 0)), 0)
			FROM entries e JOIN vaults v ON v.vault = e.vault WHERE v.account = $1)
		+ (SELECT coalesce(sum(b.bytes), 0) FROM blobs b JOIN vaults v ON v.vault = b.vault WHERE v.account = $1))::bigint,
		(SELECT count(*) FROM devices WHERE account = $1 AND revoked IS NULL),
		(SELECT max(last_seen) FROM devices WHERE account = $1)`, id).
		Scan(&vaults, &u.Entries, &u.Bytes, &devices, &lastSeen)
	u.Vaults, u.Devices = int(vaults), int(devices)
	u.LastSeen = fromNull(lastSeen)
	return u, err
}

const deviceColumns = `account, id, platform, created, last_seen, revoked`

func scanDevice(row pgx.Row) (storage.Device, error) {
	var (
		d       storage.Device
		revoked pgtype.Timestamptz
	)
	if err := row.Scan(&d.Account, &d.ID, &d.Platform, &d.Created, &d.LastSeen, &revoked); err != nil {
		return storage.Device{}, noRows(err)
	}
	d.Created, d.LastSeen = d.Created.UTC(), d.LastSeen.UTC()
	d.Revoked = fromNull(revoked)
	return d, nil
}

// UpsertDevice adds a device or updates its platform and LastSeen (which
// never moves back). A revoked device stays revoked.
func (s *Store) UpsertDevice(ctx context.Context, d storage.Device) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (account, id) DO UPDATE SET platform = excluded.platform,
			last_seen = greatest(devices.last_seen, excluded.last_seen)`,
		d.Account, d.ID, d.Platform, d.Created, d.LastSeen, nullTime(d.Revoked))
	return wrap("store device", constraint(err))
}

// Device finds one device of an account.
func (s *Store) Device(ctx context.Context, account, id string) (storage.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE account = $1 AND id = $2`, account, id))
	return d, wrap("find device", err)
}

// Devices lists an account's devices, oldest first.
func (s *Store) Devices(ctx context.Context, account string) ([]storage.Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE account = $1 ORDER BY created, id`, account)
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
// time) and deletes its sessions, in one transaction.
func (s *Store) RevokeDevice(ctx context.Context, account, id string, at time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE devices SET revoked = coalesce(revoked, $1) WHERE account = $2 AND id = $3`,
			at, account, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE account = $1 AND device = $2`, account, id)
		return err
	})
	return wrap("revoke device", err)
}

// CreateSession stores a session. It also drops the device's sessions
// that expired before this one was created, so that they do not pile up.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE account = $1 AND device = $2 AND expires <= $3`,
			ss.Account, ss.Device, ss.Created); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sessions (hash, kind, account, device, created, expires, pair)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			blob(ss.Hash), ss.Kind, ss.Account, ss.Device, ss.Created, ss.Expires, ss.Pair)
		return constraint(err)
	})
	return wrap("create session", err)
}

// Session finds an unexpired session by token hash.
func (s *Store) Session(ctx context.Context, hash []byte, now time.Time) (storage.Session, error) {
	var ss storage.Session
	err := s.pool.QueryRow(ctx, `SELECT hash, kind, account, device, created, expires, pair
		FROM sessions WHERE hash = $1 AND expires > $2`, blob(hash), now).
		Scan(&ss.Hash, &ss.Kind, &ss.Account, &ss.Device, &ss.Created, &ss.Expires, &ss.Pair)
	if err != nil {
		return storage.Session{}, wrap("find session", noRows(err))
	}
	ss.Created, ss.Expires = ss.Created.UTC(), ss.Expires.UTC()
	return ss, nil
}

// DeleteSession deletes a session and its pair. Pair may hold the other
// session's hash or an id both sessions share; either way both go.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1 OR pair = $1
		OR hash IN (SELECT pair FROM sessions WHERE hash = $1 AND pair IS NOT NULL)
		OR pair IN (SELECT pair FROM sessions WHERE hash = $1 AND pair IS NOT NULL)`, blob(hash))
	if err != nil {
		return false, wrap("delete session", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteSessions deletes every session of the account.
func (s *Store) DeleteSessions(ctx context.Context, account string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE account = $1`, account)
	return wrap("delete sessions", err)
}

// RecordLogin adds a login attempt to the account's history.
func (s *Store) RecordLogin(ctx context.Context, e storage.LoginEvent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO logins (account, occurred, device, address, ok, reason)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.Account, e.Time, e.Device, e.Address, e.OK, e.Reason)
	return wrap("record login", constraint(err))
}

// Logins returns the account's latest login attempts, newest first.
func (s *Store) Logins(ctx context.Context, account string, limit int) ([]storage.LoginEvent, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list logins: limit %d is not positive", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT account, occurred, device, address, ok, reason FROM logins
		WHERE account = $1 ORDER BY occurred DESC, id DESC LIMIT $2`, account, limit)
	if err != nil {
		return nil, wrap("list logins", err)
	}
	defer rows.Close()
	var out []storage.LoginEvent
	for rows.Next() {
		var e storage.LoginEvent
		if err := rows.Scan(&e.Account, &e.Time, &e.Device, &e.Address, &e.OK, &e.Reason); err != nil {
			return nil, wrap("list logins", err)
		}
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	return out, wrap("list logins", rows.Err())
}

// Throttle returns a key's failure state, zero if it has none.
func (s *Store) Throttle(ctx context.Context, key string) (storage.Throttle, error) {
	var t storage.Throttle
	err := s.pool.QueryRow(ctx, `SELECT failures, until_time FROM throttles WHERE key = $1`, key).Scan(&t.Failures, &t.Until)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Throttle{}, nil
	}
	if err != nil {
		return storage.Throttle{}, wrap("read rate-limit state", err)
	}
	t.Until = t.Until.UTC()
	return t, nil
}

// Fail counts one more failure for key and sets its back-off. The upsert
// increments in the database and locks the row until the back-off is
// written, so racing failures each count once.
func (s *Store) Fail(ctx context.Context, key string, now time.Time, backoff func(failures int) time.Duration) (storage.Throttle, error) {
	var t storage.Throttle
	err := s.write(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO throttles (key, failures, until_time) VALUES ($1, 1, $2)
			ON CONFLICT (key) DO UPDATE SET failures = throttles.failures + 1 RETURNING failures`, key, now).Scan(&t.Failures)
		if err != nil {
			return err
		}
		until := now
		if backoff != nil {
			until = now.Add(backoff(t.Failures))
		}
		t.Until = stamp(until)
		_, err = tx.Exec(ctx, `UPDATE throttles SET until_time = $1 WHERE key = $2`, until, key)
		return err
	})
	if err != nil {
		return storage.Throttle{}, wrap("record failure", err)
	}
	return t, nil
}

// ClearThrottle forgets a key's failures.
func (s *Store) ClearThrottle(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM throttles WHERE key = $1`, key)
	return wrap("clear rate-limit state", err)
}
