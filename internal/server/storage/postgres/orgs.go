package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

const orgExists = `SELECT 1 FROM orgs WHERE id = $1`

// putOrgLog stores statements and replaces the organisation's index, in
// one round trip.
func putOrgLog(ctx context.Context, tx pgx.Tx, org string, entries []storage.OrgEntry, index []storage.OrgIndex) error {
	b := &pgx.Batch{}
	for _, e := range entries {
		b.Queue(`INSERT INTO org_log (org, seq, body, sig) VALUES ($1, $2, $3, $4)`,
			org, int64(e.Seq), blob(e.Body), blob(e.Sig))
	}
	b.Queue(`DELETE FROM org_index WHERE org = $1`, org)
	if len(index) > 0 {
		accounts := make([]string, len(index))
		emails := make([]string, len(index))
		states := make([]string, len(index))
		for i, ix := range index {
			accounts[i], emails[i], states[i] = ix.Account, strings.ToLower(ix.Email), ix.State
		}
		b.Queue(`INSERT INTO org_index (org, account, email, state)
			SELECT $1, a, e, s FROM unnest($2::text[], $3::text[], $4::text[]) AS t (a, e, s)`,
			org, accounts, emails, states)
	}
	br := tx.SendBatch(ctx, b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return constraint(err)
		}
	}
	return br.Close()
}

// CreateOrg stores a new organisation: its head, first statements and
// index, in one transaction.
func (s *Store) CreateOrg(ctx context.Context, org string, entries []storage.OrgEntry, headHash []byte, index []storage.OrgIndex) error {
	if err := checkOrgSeqs(0, entries); err != nil {
		return wrap("create organisation", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orgs (id, head, head_hash, created) VALUES ($1, $2, $3, $4)`,
			org, int64(last), blob(headHash), stamp(time.Now())); err != nil {
			return constraint(err)
		}
		return putOrgLog(ctx, tx, org, entries, index)
	})
	return wrap("create organisation", err)
}

// AppendOrg adds statements after base, moves the head and replaces the
// index, if the head is still base. As in Append, the head moves first by
// a compare-and-swap UPDATE that holds the organisation row's lock until
// commit: a racing append from the same base waits, then finds the head
// moved and changes nothing.
func (s *Store) AppendOrg(ctx context.Context, org string, base uint64, entries []storage.OrgEntry, headHash []byte, index []storage.OrgIndex) error {
	if err := checkOrgSeqs(base, entries); err != nil {
		return wrap("append to organisation", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE orgs SET head = $1, head_hash = $2 WHERE id = $3 AND head = $4`,
			int64(last), blob(headHash), org, int64(base))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if err := exists(ctx, tx, orgExists, org); err != nil {
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
		o    storage.OrgRow
		head int64
	)
	err := s.pool.QueryRow(ctx, `SELECT id, head, head_hash, created FROM orgs WHERE id = $1`, org).
		Scan(&o.Org, &head, &o.HeadHash, &o.Created)
	if err != nil {
		return storage.OrgRow{}, wrap("find organisation", noRows(err))
	}
	o.Head, o.Created = uint64(head), o.Created.UTC()
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
	rows, err := s.pool.Query(ctx, `SELECT seq, body, sig FROM org_log
		WHERE org = $1 AND seq > $2 ORDER BY seq LIMIT $3`, org, int64(since), limit)
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
	return wrap("read organisation log", exists(ctx, s.pool, orgExists, org))
}

// orgStates ranks index states: an organisation an account appears in
// several times (as a member and by its address's invitation) is listed
// with the best.
var orgStates = []string{"invited", "accepted", "active"}

// qOrgsFor finds the index rows naming the account ($1) or the address
// ($2), each through its own index; an empty argument matches nothing,
// not the rows where that column is empty. Ids sort bytewise, whatever
// the database's collation.
const qOrgsFor = `SELECT o.id, o.head, max(CASE i.state WHEN 'active' THEN 2 WHEN 'accepted' THEN 1 ELSE 0 END)
	FROM (SELECT org, state FROM org_index WHERE account = $1 AND $1 <> ''
		UNION ALL
		SELECT org, state FROM org_index WHERE email = $2 AND $2 <> '') i
	JOIN orgs o ON o.id = i.org
	GROUP BY o.id ORDER BY o.id COLLATE "C"`

// OrgsFor lists the organisations whose index names the account or the
// address, sorted by id.
func (s *Store) OrgsFor(ctx context.Context, account, email string) ([]storage.OrgRef, error) {
	rows, err := s.pool.Query(ctx, qOrgsFor, account, strings.ToLower(email))
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM orgs WHERE id = $1`, org)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	return wrap("delete organisation", err)
}

// PutOrgVault creates a shared vault at head 0 with the genesis hash and
// an empty record, in one upsert that changes nothing of an existing
// vault and matches one only if it is the organisation's.
func (s *Store) PutOrgVault(ctx context.Context, org, vault string, genesis []byte) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, orgExists, org); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO vaults (vault, org, record, head, head_hash)
			VALUES ($1, $2, '', 0, $3)
			ON CONFLICT (vault) DO UPDATE SET org = excluded.org WHERE vaults.org = excluded.org`,
			vault, org, blob(genesis))
		if err != nil {
			return constraint(err) // an organisation deleted meanwhile: ErrNotFound
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists // an account's or another organisation's vault
		}
		return nil
	})
	return wrap("store shared vault", err)
}

// OrgVaults lists the organisation's shared vaults.
func (s *Store) OrgVaults(ctx context.Context, org string) ([]storage.VaultRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE org = $1 ORDER BY vault`, org)
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
