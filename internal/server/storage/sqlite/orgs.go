package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

// checkOrgSeqs requires statements to be numbered base+1, base+2, ...
func checkOrgSeqs(base uint64, entries []storage.OrgEntry) error {
	if len(entries) == 0 {
		return errors.New("no statements")
	}
	for i, e := range entries {
		if want := base + 1 + uint64(i); e.Seq != want {
			return fmt.Errorf("statement %d has sequence number %d, want %d", i, e.Seq, want)
		}
	}
	return nil
}

func orgExists(ctx context.Context, tx *sql.Tx, org string) error {
	var one int
	return noRows(tx.QueryRowContext(ctx, `SELECT 1 FROM orgs WHERE id = ?`, org).Scan(&one))
}

// putOrgLog stores statements and replaces the organisation's index.
func putOrgLog(ctx context.Context, tx *sql.Tx, org string, entries []storage.OrgEntry, index []storage.OrgIndex) error {
	insert, err := tx.PrepareContext(ctx, `INSERT INTO org_log (org, seq, body, sig) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insert.Close()
	for _, e := range entries {
		if _, err := insert.ExecContext(ctx, org, int64(e.Seq), blob(e.Body), blob(e.Sig)); err != nil {
			return fmt.Errorf("store statement %d: %w", e.Seq, constraint(err))
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM org_index WHERE org = ?`, org); err != nil {
		return err
	}
	row, err := tx.PrepareContext(ctx, `INSERT INTO org_index (org, account, email, state) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer row.Close()
	for _, ix := range index {
		if _, err := row.ExecContext(ctx, org, ix.Account, strings.ToLower(ix.Email), ix.State); err != nil {
			return fmt.Errorf("store index: %w", err)
		}
	}
	return nil
}

// CreateOrg stores a new organisation: its head, first statements and
// index, in one transaction.
func (s *Store) CreateOrg(ctx context.Context, org string, entries []storage.OrgEntry, headHash []byte, index []storage.OrgIndex) error {
	if err := checkOrgSeqs(0, entries); err != nil {
		return wrap("create organisation", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, head, head_hash, created) VALUES (?, ?, ?, ?)`,
			org, int64(last), blob(headHash), micro(time.Now())); err != nil {
			return constraint(err)
		}
		return putOrgLog(ctx, tx, org, entries, index)
	})
	return wrap("create organisation", err)
}

// AppendOrg adds statements after base, moves the head and replaces the
// index, if the head is still base. The head moves first, by a
// compare-and-swap, as Append's does.
func (s *Store) AppendOrg(ctx context.Context, org string, base uint64, entries []storage.OrgEntry, headHash []byte, index []storage.OrgIndex) error {
	if err := checkOrgSeqs(base, entries); err != nil {
		return wrap("append to organisation", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE orgs SET head = ?, head_hash = ? WHERE id = ? AND head = ?`,
			int64(last), blob(headHash), org, int64(base))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			if err := orgExists(ctx, tx, org); err != nil {
				return err
			}
			return storage.ErrStale
		}
		return putOrgLog(ctx, tx, org, entries, index)
	})
	return wrap("append to organisation", err)
}

// Org finds an organisation's head.
func (s *Store) Org(ctx context.Context, org string) (storage.OrgRow, error) {
	var (
		o             storage.OrgRow
		head, created int64
	)
	err := s.queryRow(ctx, `SELECT id, head, head_hash, created FROM orgs WHERE id = ?`, org).
		Scan(&o.Org, &head, &o.HeadHash, &created)
	if err != nil {
		return storage.OrgRow{}, wrap("find organisation", noRows(err))
	}
	o.Head, o.Created = uint64(head), fromMicro(created)
	return o, nil
}

// OrgEntries calls fn for at most limit statements after since, in
// order. fn runs while a database connection is held: it must not call
// the store. Whether the organisation exists is asked only when no
// statement is found.
func (s *Store) OrgEntries(ctx context.Context, org string, since uint64, limit int, fn func(storage.OrgEntry) error) error {
	if limit <= 0 {
		return fmt.Errorf("read organisation log: limit %d is not positive", limit)
	}
	rows, err := s.query(ctx, `SELECT seq, body, sig FROM org_log
		WHERE org = ? AND seq > ? ORDER BY seq LIMIT ?`, org, int64(since), limit)
	if err != nil {
		return wrap("read organisation log", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var (
			e   storage.OrgEntry
			seq int64
		)
		if err := rows.Scan(&seq, &e.Body, &e.Sig); err != nil {
			return wrap("read organisation log", err)
		}
		found = true
		e.Seq = uint64(seq)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrap("read organisation log", err)
	}
	if found {
		return nil
	}
	rows.Close()
	var one int
	return wrap("read organisation log", noRows(s.queryRow(ctx, `SELECT 1 FROM orgs WHERE id = ?`, org).Scan(&one)))
}

// orgStates ranks index states: an organisation an account appears in
// several times (as a member and by its address's invitation) is listed
// with the best.
var orgStates = []string{"invited", "accepted", "active"}

// qOrgsFor finds the index rows naming the account (?1) or the address
// (?2), each through its own index; an empty argument matches nothing,
// not the rows where that column is empty.
const qOrgsFor = `SELECT o.id, o.head, max(CASE i.state WHEN 'active' THEN 2 WHEN 'accepted' THEN 1 ELSE 0 END)
	FROM (SELECT org, state FROM org_index WHERE account = ?1 AND ?1 <> ''
		UNION ALL
		SELECT org, state FROM org_index WHERE email = ?2 AND ?2 <> '') i
	JOIN orgs o ON o.id = i.org
	GROUP BY o.id ORDER BY o.id`

// OrgsFor lists the organisations whose index names the account or the
// address, sorted by id.
func (s *Store) OrgsFor(ctx context.Context, account, email string) ([]storage.OrgRef, error) {
	rows, err := s.query(ctx, qOrgsFor, account, strings.ToLower(email))
	if err != nil {
		return nil, wrap("list organisations", err)
	}
	defer rows.Close()
	var out []storage.OrgRef
	for rows.Next() {
		var (
			r          storage.OrgRef
			head, rank int64
		)
		if err := rows.Scan(&r.Org, &head, &rank); err != nil {
			return nil, wrap("list organisations", err)
		}
		r.Head, r.State = uint64(head), orgStates[rank]
		out = append(out, r)
	}
	return out, wrap("list organisations", rows.Err())
}

// DeleteOrg removes the organisation and, by cascade, its statements,
// index and shared vaults with their entries, item states and blobs (as
// DeleteAccount removes an account's vaults).
func (s *Store) DeleteOrg(ctx context.Context, org string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM orgs WHERE id = ?`, org)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrNotFound)
		}
		return nil
	})
	return wrap("delete organisation", err)
}

// PutOrgVault creates a shared vault at head 0 with the genesis hash and
// an empty record, in one upsert that changes nothing of an existing
// vault and matches one only if it is the organisation's.
func (s *Store) PutOrgVault(ctx context.Context, org, vault string, genesis []byte) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO vaults (vault, org, record, head, head_hash)
			VALUES (?, ?, x'', 0, ?)
			ON CONFLICT (vault) DO UPDATE SET org = excluded.org WHERE vaults.org = excluded.org`,
			vault, org, blob(genesis))
		if err != nil {
			return constraint(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrExists) // an account's or another organisation's vault
		}
		return nil
	})
	return wrap("store shared vault", err)
}

// OrgVaults lists the organisation's shared vaults.
func (s *Store) OrgVaults(ctx context.Context, org string) ([]storage.VaultRow, error) {
	rows, err := s.query(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE org = ? ORDER BY vault`, org)
	if err != nil {
		return nil, wrap("list shared vaults", err)
	}
	defer rows.Close()
	var out []storage.VaultRow
	for rows.Next() {
		v, err := scanVault(rows)
		if err != nil {
			return nil, wrap("list shared vaults", err)
		}
		out = append(out, v)
	}
	return out, wrap("list shared vaults", rows.Err())
}
