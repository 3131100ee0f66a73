package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/safehold/safehold/internal/server/storage"
)

const opPurge = 2 // storage.Entry.Op of a purge

// PutVault creates a vault at head 0 with the genesis hash, or replaces
// the record of the account's existing vault (a shared vault, whose
// account is NULL, is never the account's), in one upsert that does
// nothing to another account's vault.
func (s *Store) PutVault(ctx context.Context, account, vault string, record, genesis []byte) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO vaults (vault, account, record, head, head_hash)
		VALUES ($1, $2, $3, 0, $4)
		ON CONFLICT (vault) DO UPDATE SET record = excluded.record WHERE vaults.account = excluded.account`,
		vault, account, blob(record), blob(genesis))
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrExists // another account's vault
	}
	return wrap("store vault", constraint(err))
}

// vaultColumns read a vault row; account and org are NULL in the database
// where VaultRow has them empty.
const vaultColumns = `vault, coalesce(account, ''), coalesce(org, ''), record, head, head_hash`

func scanVault(row pgx.Row) (storage.VaultRow, error) {
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
	rows, err := s.pool.Query(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE account = $1 ORDER BY vault`, account)
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
	v, err := scanVault(s.pool.QueryRow(ctx, `SELECT `+vaultColumns+` FROM vaults WHERE vault = $1`, vault))
	return v, wrap("find vault", err)
}

const vaultExists = `SELECT 1 FROM vaults WHERE vault = $1`

// ItemStates returns the latest revision of each named item that the log
// mentions; ErrNotFound if the vault does not exist.
func (s *Store) ItemStates(ctx context.Context, vault string, items []string) (map[string]storage.ItemState, error) {
	out := make(map[string]storage.ItemState)
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, vaultExists, vault); err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT item, revision, purged FROM items
			WHERE vault = $1 AND item = ANY($2::text[])`, vault, items)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				item   string
				rev    int64
				purged bool
			)
			if err := rows.Scan(&item, &rev, &purged); err != nil {
				return err
			}
			out[item] = storage.ItemState{Revision: uint64(rev), Purged: purged}
		}
		return rows.Err()
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
// base. The head moves first, by a compare-and-swap UPDATE that holds the
// vault row's lock until commit: a racing append from the same base waits,
// then finds the head moved and changes nothing. The entries' primary key
// is a second guard. A purge entry clears the payloads of its item's
// earlier entries and deletes its blobs.
func (s *Store) Append(ctx context.Context, vault string, base uint64, entries []storage.Entry, headHash []byte) error {
	if err := checkSeqs(base, entries); err != nil {
		return wrap("append", err)
	}
	last := entries[len(entries)-1].Seq
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE vaults SET head = $1, head_hash = $2 WHERE vault = $3 AND head = $4`,
			int64(last), blob(headHash), vault, int64(base))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if err := exists(ctx, tx, vaultExists, vault); err != nil {
				return err
			}
			return storage.ErrStale
		}
		b := &pgx.Batch{}
		for _, e := range entries {
			b.Queue(`INSERT INTO entries (vault, seq, op, item, revision, body, sig, payload)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				vault, int64(e.Seq), int16(e.Op), e.Item, int64(e.Revision), blob(e.Body), blob(e.Sig), e.Payload)
			b.Queue(`INSERT INTO items (vault, item, revision, purged) VALUES ($1, $2, $3, $4)
				ON CONFLICT (vault, item) DO UPDATE SET revision = excluded.revision, purged = excluded.purged`,
				vault, e.Item, int64(e.Revision), e.Op == opPurge)
			if e.Op == opPurge {
				b.Queue(`UPDATE entries SET payload = NULL
					WHERE vault = $1 AND item = $2 AND seq < $3 AND payload IS NOT NULL`, vault, e.Item, int64(e.Seq))
				// Cascades to blobs and blob_chunks, and ends uploads in progress.
				b.Queue(`DELETE FROM blob_uploads WHERE vault = $1 AND item = $2`, vault, e.Item)
			}
		}
		br := tx.SendBatch(ctx, b)
		for range b.Len() {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return constraint(err)
			}
		}
		return br.Close()
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
	rows, err := s.pool.Query(ctx, `SELECT seq, op, item, revision, body, sig, payload FROM entries
		WHERE vault = $1 AND seq > $2 ORDER BY seq LIMIT $3`, vault, int64(since), limit)
	if err != nil {
		return wrap("read entries", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var (
			e        storage.Entry
			seq, rev int64
			op       int16
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
	return wrap("read entries", exists(ctx, s.pool, vaultExists, vault))
}

// Uploads are written in batches of at most this many chunks or bytes,
// each in its own short transaction.
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
	if err := exists(ctx, s.pool, vaultExists, vault); err != nil {
		return wrap("store blob", err)
	}
	var (
		upload int64 // 0 until the first batch is committed
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
		err := s.write(ctx, func(tx pgx.Tx) error {
			if id == 0 {
				err := tx.QueryRow(ctx, `INSERT INTO blob_uploads (vault, item, touched) VALUES ($1, $2, now())
					RETURNING id`, vault, item).Scan(&id)
				if err != nil {
					return constraint(err)
				}
			} else {
				tag, err := tx.Exec(ctx, `UPDATE blob_uploads SET touched = now() WHERE id = $1`, id)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					// Gone: the item was purged or the vault deleted meanwhile.
					return storage.ErrNotFound
				}
			}
			rows := make([][]any, len(batch))
			for i, c := range batch {
				rows[i] = []any{id, int32(next + i), blob(c)}
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"blob_chunks"}, []string{"upload", "idx", "chunk"},
				pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			if !publish {
				return nil
			}
			return publishBlob(ctx, tx, vault, item, blobID, id, next+len(batch), total)
		})
		// Only a committed id is ours.
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

// publishBlob points the blob at upload and deletes the upload it
// replaces. The old row is locked before it is read, so that of two racing
// publishers the second sees the first's upload and deletes it; if there
// is no row, an insert that loses a race to another insert tries again.
func publishBlob(ctx context.Context, tx pgx.Tx, vault, item, blobID string, upload int64, chunks int, total int64) error {
	for range 2 {
		var old int64
		err := tx.QueryRow(ctx, `SELECT upload FROM blobs WHERE vault = $1 AND item = $2 AND blob = $3 FOR UPDATE`,
			vault, item, blobID).Scan(&old)
		switch {
		case err == nil:
			if _, err := tx.Exec(ctx, `UPDATE blobs SET upload = $1, chunks = $2, bytes = $3
				WHERE vault = $4 AND item = $5 AND blob = $6`, upload, chunks, total, vault, item, blobID); err != nil {
				return constraint(err)
			}
			_, err := tx.Exec(ctx, `DELETE FROM blob_uploads WHERE id = $1`, old)
			return err
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO blobs (vault, item, blob, upload, chunks, bytes)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (vault, item, blob) DO NOTHING`,
			vault, item, blobID, upload, chunks, total)
		if err != nil {
			return constraint(err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
	}
	return errors.New("publish blob: lost the race for its row twice")
}

func (s *Store) dropUpload(ctx context.Context, upload int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM blob_uploads WHERE id = $1
		AND NOT EXISTS (SELECT 1 FROM blobs WHERE blobs.upload = $1)`, upload)
	return wrap("delete failed upload", err)
}

// dropAbandoned deletes unpublished uploads not written to for age, by
// the database's clock, which also stamped them.
func (s *Store) dropAbandoned(ctx context.Context, age time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM blob_uploads u WHERE touched < now() - make_interval(secs => $1)
		AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.upload = u.id)`, age.Seconds())
	return wrap("delete abandoned uploads", err)
}

// readPage is how many chunks Blob reads per query; fn is called after
// each page is read, with no database connection held.
const readPage = 16

// Blob calls fn for each chunk of a blob in order.
func (s *Store) Blob(ctx context.Context, vault, item, blobID string, fn func(idx int, chunk []byte) error) error {
	var (
		upload int64
		count  int32
	)
	err := s.pool.QueryRow(ctx, `SELECT upload, chunks FROM blobs WHERE vault = $1 AND item = $2 AND blob = $3`,
		vault, item, blobID).Scan(&upload, &count)
	if err != nil {
		return wrap("read blob", noRows(err))
	}
	type chunk struct {
		idx  int32
		data []byte
	}
	page := make([]chunk, 0, readPage)
	for next := int32(0); next < count; {
		page = page[:0]
		rows, err := s.pool.Query(ctx, `SELECT idx, chunk FROM blob_chunks WHERE upload = $1 AND idx >= $2
			ORDER BY idx LIMIT $3`, upload, next, readPage)
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
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("read blob", err)
		}
		if len(page) == 0 {
			return fmt.Errorf("read blob: it was replaced or deleted while being read: %w", storage.ErrNotFound)
		}
		for _, c := range page {
			if c.idx != next {
				return fmt.Errorf("read blob: chunk %d missing", next)
			}
			if err := fn(int(c.idx), c.data); err != nil {
				return err
			}
			next++
		}
	}
	return nil
}
