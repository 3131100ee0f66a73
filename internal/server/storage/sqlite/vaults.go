package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

const opPurge = 2 // storage.Entry.Op of a purge

// Statements of Append, prepared once (see writeStatements).
const (
	qMoveHead    = `UPDATE vaults SET head = ?, head_hash = ? WHERE vault = ? AND head = ?`
	qInsertEntry = `INSERT INTO entries (vault, seq, op, item, revision, body, sig, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qItemState   = `INSERT INTO items (vault, item, revision, purged) VALUES (?, ?, ?, ?)
		ON CONFLICT (vault, item) DO UPDATE SET revision = excluded.revision, purged = excluded.purged`
)

// PutVault creates a vault at head 0 with the genesis hash, or replaces
// the record of the account's existing vault (a shared vault, whose
// account is NULL, is never the account's).
func (s *Store) PutVault(ctx context.Context, account, vault string, record, genesis []byte) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO vaults (vault, account, record, head, head_hash)
			VALUES (?, ?, ?, 0, ?)
			ON CONFLICT (vault) DO UPDATE SET record = excluded.record WHERE vaults.account = excluded.account`,
			vault, account, blob(record), blob(genesis))
		if err != nil {
			return constraint(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, storage.ErrExists) // another account's vault
		}
		return nil
	})
	return wrap("store vault", err)
}

// vaultColumns read a vault row; account and org are NULL in the database
// where VaultRow has them empty.
const vaultColumns = `vault, coalesce(account, ''), coalesce(org, ''), record, head, head_hash`

func scanVault(row scanner) (storage.VaultRow, error) {
	var (
		v    storage.VaultRow
		head int64
	)
	if err := row.Scan(&v.Vault, &v.Account, &v.Org, &v.Record, &head, &v.HeadHash); err != nil {
		return storage.VaultRow{}, noRows(err)
	}
	v.Head = uint64(head)
	return v, nil
}

// Vaults lists an account's vaults (not the shared vaults of its
// organisations, which have no account).
func (s *Store) Vaults(ctx context.Context, account string) ([]storage.VaultRow, error) {
	rows, err := s.query(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE account = ? ORDER BY vault`, account)
	if err != nil {
		return nil, wrap("list vaults", err)
	}
	defer rows.Close()
	var out []storage.VaultRow
	for rows.Next() {
		v, err := scanVault(rows)
		if err != nil {
			return nil, wrap("list vaults", err)
		}
		out = append(out, v)
	}
	return out, wrap("list vaults", rows.Err())
}

// Vault finds a vault.
func (s *Store) Vault(ctx context.Context, vault string) (storage.VaultRow, error) {
	v, err := scanVault(s.queryRow(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE vault = ?`, vault))
	return v, wrap("find vault", err)
}

func vaultExists(ctx context.Context, tx *sql.Tx, vault string) error {
	var one int
	return noRows(tx.QueryRowContext(ctx, `SELECT 1 FROM vaults WHERE vault = ?`, vault).Scan(&one))
}

// itemBatch bounds the ids bound into one IN (...) list.
const itemBatch = 500

// ItemStates returns the latest revision of each named item that the log
// mentions; ErrNotFound if the vault does not exist.
func (s *Store) ItemStates(ctx context.Context, vault string, items []string) (map[string]storage.ItemState, error) {
	out := make(map[string]storage.ItemState)
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := vaultExists(ctx, tx, vault); err != nil {
			return err
		}
		for len(items) > 0 {
			n := min(len(items), itemBatch)
			args := make([]any, 0, n+1)
			args = append(args, vault)
			for _, it := range items[:n] {
				args = append(args, it)
			}
			items = items[n:]
			rows, err := tx.QueryContext(ctx, `SELECT item, revision, purged FROM items
				WHERE vault = ? AND item IN (?`+strings.Repeat(", ?", n-1)+`)`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					item   string
					rev    int64
					purged int
				)
				if err := rows.Scan(&item, &rev, &purged); err != nil {
					rows.Close()
					return err
				}
				out[item] = storage.ItemState{Revision: uint64(rev), Purged: purged != 0}
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("read item states", err)
	}
	return out, nil
}

// checkSeqs requires entries to be numbered base+1, base+2, ...
func checkSeqs(base uint64, entries []storage.Entry) error {
	if len(entries) == 0 {
		return errors.New("no entries")
	}
	for i, e := range entries {
		if want := base + 1 + uint64(i); e.Seq != want {
			return fmt.Errorf("entry %d has sequence number %d, want %d", i, e.Seq, want)
		}
	}
	return nil
}

// Append adds entries after base and moves the head, if the head is still
// base. A purge entry clears the payloads of its item's earlier entries
// and deletes its blobs.
func (s *Store) Append(ctx context.Context, vault string, base uint64, entries []storage.Entry, headHash []byte) error {
	if err := checkSeqs(base, entries); err != nil {
		return wrap("append", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, qMoveHead, int64(last), blob(headHash), vault, int64(base))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			if err := vaultExists(ctx, tx, vault); err != nil {
				return err
			}
			return storage.ErrStale
		}
		for _, e := range entries {
			var payload any
			if e.Payload != nil {
				payload = e.Payload
			}
			if _, err := s.exec(ctx, tx, qInsertEntry, vault, int64(e.Seq), int(e.Op), e.Item, int64(e.Revision),
				blob(e.Body), blob(e.Sig), payload); err != nil {
				return fmt.Errorf("store entry %d: %w", e.Seq, constraint(err))
			}
			if _, err := s.exec(ctx, tx, qItemState, vault, e.Item, int64(e.Revision), boolInt(e.Op == opPurge)); err != nil {
				return err
			}
			if e.Op != opPurge {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE entries SET payload = NULL
				WHERE vault = ? AND item = ? AND seq < ? AND payload IS NOT NULL`, vault, e.Item, int64(e.Seq)); err != nil {
				return err
			}
			// Cascades to blobs and blob_chunks, and ends uploads in progress.
			if _, err := tx.ExecContext(ctx, `DELETE FROM blob_uploads WHERE vault = ? AND item = ?`, vault, e.Item); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("append", err)
}

// Entries calls fn for at most limit entries after since, in order. fn
// runs while a database connection is held: it must not call the store.
// Whether the vault exists is asked only when no entry is found.
func (s *Store) Entries(ctx context.Context, vault string, since uint64, limit int, fn func(storage.Entry) error) error {
	if limit <= 0 {
		return fmt.Errorf("read entries: limit %d is not positive", limit)
	}
	rows, err := s.query(ctx, `SELECT seq, op, item, revision, body, sig, payload FROM entries
		WHERE vault = ? AND seq > ? ORDER BY seq LIMIT ?`, vault, int64(since), limit)
	if err != nil {
		return wrap("read entries", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var (
			e        storage.Entry
			seq, rev int64
			op       int
		)
		if err := rows.Scan(&seq, &op, &e.Item, &rev, &e.Body, &e.Sig, &e.Payload); err != nil {
			return wrap("read entries", err)
		}
		found = true
		e.Seq, e.Op, e.Revision = uint64(seq), byte(op), uint64(rev)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrap("read entries", err)
	}
	if found {
		return nil
	}
	rows.Close()
	var one int
	return wrap("read entries", noRows(s.queryRow(ctx, `SELECT 1 FROM vaults WHERE vault = ?`, vault).Scan(&one)))
}

// Uploads are written in batches of at most this many chunks or bytes,
// each in its own short write transaction, so that a slow upload never
// holds the write lock.
const (
	batchChunks = 64
	batchBytes  = 1 << 20
)

// cleanupTimeout bounds deleting a failed upload after its context ended.
const cleanupTimeout = 30 * time.Second

// PutBlob stores an attachment's chunks under a fresh upload id and then,
// in one transaction, points the blob at it and deletes the upload it
// replaces. A failed upload is deleted; one left by a crash is deleted by
// a later Open once abandoned.
func (s *Store) PutBlob(ctx context.Context, vault, item, blobID string, chunks iter.Seq2[[]byte, error]) (err error) {
	if err := s.read(ctx, func(tx *sql.Tx) error { return vaultExists(ctx, tx, vault) }); err != nil {
		return wrap("store blob", err)
	}
	var (
		upload int64 // 0 until the first batch is written
		next   int   // index of the first chunk in batch
		batch  [][]byte
		size   int
		total  int64
	)
	defer func() {
		if err != nil && upload != 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			err = errors.Join(err, s.dropUpload(cctx, upload))
		}
	}()
	// flush writes the batch; with publish it also points the blob at the
	// upload, all in one transaction.
	flush := func(publish bool) error {
		id := upload
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			now := micro(time.Now())
			if id == 0 {
				res, err := tx.ExecContext(ctx, `INSERT INTO blob_uploads (vault, item, touched) VALUES (?, ?, ?)`, vault, item, now)
				if err != nil {
					return constraint(err)
				}
				if id, err = res.LastInsertId(); err != nil {
					return err
				}
			} else {
				res, err := tx.ExecContext(ctx, `UPDATE blob_uploads SET touched = ? WHERE id = ?`, now, id)
				if err != nil {
					return err
				}
				// Gone: the item was purged or the vault deleted meanwhile.
				if n, err := res.RowsAffected(); err != nil || n == 0 {
					return errors.Join(err, storage.ErrNotFound)
				}
			}
			insert, err := tx.PrepareContext(ctx, `INSERT INTO blob_chunks (upload, idx, chunk) VALUES (?, ?, ?)`)
			if err != nil {
				return err
			}
			defer insert.Close()
			for i, c := range batch {
				if _, err := insert.ExecContext(ctx, id, next+i, blob(c)); err != nil {
					return err
				}
			}
			if !publish {
				return nil
			}
			var old sql.NullInt64
			err = tx.QueryRowContext(ctx, `SELECT upload FROM blobs WHERE vault = ? AND item = ? AND blob = ?`,
				vault, item, blobID).Scan(&old)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (vault, item, blob, upload, chunks, bytes)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (vault, item, blob) DO UPDATE SET upload = excluded.upload,
					chunks = excluded.chunks, bytes = excluded.bytes`,
				vault, item, blobID, id, next+len(batch), total); err != nil {
				return constraint(err)
			}
			if old.Valid {
				if _, err := tx.ExecContext(ctx, `DELETE FROM blob_uploads WHERE id = ?`, old.Int64); err != nil {
					return err
				}
			}
			return nil
		})
		// Only a committed id is ours: a rolled-back one may be reused.
		if err == nil {
			upload = id
		}
		return err
	}
	for c, cerr := range chunks {
		if cerr != nil {
			return fmt.Errorf("store blob: read chunk %d: %w", next+len(batch), cerr)
		}
		batch = append(batch, bytes.Clone(c))
		size += len(c)
		total += int64(len(c))
		if len(batch) >= batchChunks || size >= batchBytes {
			if err := flush(false); err != nil {
				return wrap("store blob", err)
			}
			next += len(batch)
			batch, size = batch[:0], 0
		}
	}
	if next+len(batch) == 0 {
		return errors.New("store blob: no chunks")
	}
	if err := flush(true); err != nil {
		return wrap("store blob", err)
	}
	upload = 0 // published: keep it
	return nil
}

func (s *Store) dropUpload(ctx context.Context, upload int64) error {
	return wrap("delete failed upload", s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM blob_uploads WHERE id = ?
			AND id NOT IN (SELECT upload FROM blobs)`, upload)
		return err
	}))
}

// dropAbandoned deletes unpublished uploads not written to since before.
func (s *Store) dropAbandoned(ctx context.Context, before time.Time) error {
	return wrap("delete abandoned uploads", s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM blob_uploads WHERE touched < ?
			AND id NOT IN (SELECT upload FROM blobs)`, micro(before))
		return err
	}))
}

// readPage is how many chunks Blob reads per query; fn is called after
// each page is read, with no database connection held.
const readPage = 16

// Blob calls fn for each chunk of a blob in order.
func (s *Store) Blob(ctx context.Context, vault, item, blobID string, fn func(idx int, chunk []byte) error) error {
	var upload, count int64
	err := s.queryRow(ctx, `SELECT upload, chunks FROM blobs WHERE vault = ? AND item = ? AND blob = ?`,
		vault, item, blobID).Scan(&upload, &count)
	if err != nil {
		return wrap("read blob", noRows(err))
	}
	type chunk struct {
		idx  int
		data []byte
	}
	page := make([]chunk, 0, readPage)
	for next := 0; int64(next) < count; {
		page = page[:0]
		rows, err := s.query(ctx, `SELECT idx, chunk FROM blob_chunks WHERE upload = ? AND idx >= ?
			ORDER BY idx LIMIT ?`, upload, next, readPage)
		if err != nil {
			return wrap("read blob", err)
		}
		for rows.Next() {
			var c chunk
			if err := rows.Scan(&c.idx, &c.data); err != nil {
				rows.Close()
				return wrap("read blob", err)
			}
			page = append(page, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return wrap("read blob", err)
		}
		if len(page) == 0 {
			return fmt.Errorf("read blob: it was replaced or deleted while being read: %w", storage.ErrNotFound)
		}
		for _, c := range page {
			if c.idx != next {
				return fmt.Errorf("read blob: chunk %d missing", next)
			}
			if err := fn(c.idx, c.data); err != nil {
				return err
			}
			next++
		}
	}
	return nil
}
