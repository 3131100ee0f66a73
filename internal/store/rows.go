package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ItemRow is the current revision of one item.
type ItemRow struct {
	Vault, Item string
	Revision    uint64
	Payload     []byte
}

// LogRow is one stored log entry.
type LogRow struct {
	Vault    string
	Seq      uint64
	Item     string
	Revision uint64
	Body     []byte // the entry's body (internal/vlog)
	Sig      []byte // its signature; empty when not asked for
}

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
}

func one(q querier, query string, args ...any) ([]byte, error) {
	var b []byte
	err := q.QueryRow(query, args...).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return b, err
}

// Account returns the account record.
func (s *Store) Account() ([]byte, error) {
	return one(s.db, "SELECT record FROM account WHERE id = 1")
}

// PutAccount writes the account record.
func (t *Tx) PutAccount(record []byte) error {
	_, err := t.tx.Exec("INSERT INTO account (id, record) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record", record)
	return wrap("write account record", err)
}

// Vaults returns every vault record by id.
func (s *Store) Vaults() (map[string][]byte, error) {
	rows, err := s.db.Query("SELECT vault_id, record FROM vaults ORDER BY vault_id")
	if err != nil {
		return nil, wrap("read vaults", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var rec []byte
		if err := rows.Scan(&id, &rec); err != nil {
			return nil, wrap("read vaults", err)
		}
		out[id] = rec
	}
	return out, wrap("read vaults", rows.Err())
}

// PutVault writes a vault record.
func (t *Tx) PutVault(vault string, record []byte) error {
	_, err := t.tx.Exec("INSERT INTO vaults (vault_id, record) VALUES (?, ?) ON CONFLICT (vault_id) DO UPDATE SET record = excluded.record", vault, record)
	return wrap("write vault record", err)
}

// Head returns a vault's head record.
func (s *Store) Head(vault string) ([]byte, error) {
	return one(s.db, "SELECT record FROM heads WHERE vault_id = ?", vault)
}

// PutHead writes a vault's head record.
func (t *Tx) PutHead(vault string, record []byte) error {
	_, err := t.tx.Exec("INSERT INTO heads (vault_id, record) VALUES (?, ?) ON CONFLICT (vault_id) DO UPDATE SET record = excluded.record", vault, record)
	return wrap("write log head", err)
}

// Item returns the current row of one item.
func (s *Store) Item(vault, item string) (ItemRow, error) {
	r := ItemRow{Vault: vault, Item: item}
	err := s.db.QueryRow("SELECT revision, payload FROM items WHERE vault_id = ? AND item_id = ?", vault, item).Scan(&r.Revision, &r.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, wrap("read item", err)
}

// Items calls fn for every current item row of a vault.
func (s *Store) Items(vault string, fn func(ItemRow) error) error {
	rows, err := s.db.Query("SELECT item_id, revision, payload FROM items WHERE vault_id = ?", vault)
	if err != nil {
		return wrap("read items", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := ItemRow{Vault: vault}
		if err := rows.Scan(&r.Item, &r.Revision, &r.Payload); err != nil {
			return wrap("read items", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read items", rows.Err())
}

// PutItem writes the current row of an item.
func (t *Tx) PutItem(r ItemRow) error {
	_, err := t.tx.Exec(`INSERT INTO items (vault_id, item_id, revision, payload) VALUES (?, ?, ?, ?)
		ON CONFLICT (vault_id, item_id) DO UPDATE SET revision = excluded.revision, payload = excluded.payload`,
		r.Vault, r.Item, r.Revision, r.Payload)
	return wrap("write item", err)
}

// DeleteItem removes an item's current row, its history and its chunks.
func (t *Tx) DeleteItem(vault, item string, blobs []string) error {
	if _, err := t.tx.Exec("DELETE FROM items WHERE vault_id = ? AND item_id = ?", vault, item); err != nil {
		return wrap("purge item", err)
	}
	if _, err := t.tx.Exec("DELETE FROM history WHERE vault_id = ? AND item_id = ?", vault, item); err != nil {
		return wrap("purge item history", err)
	}
	for _, b := range blobs {
		if err := t.DeleteChunks(vault, b); err != nil {
			return err
		}
	}
	return nil
}

// PutHistory keeps an earlier revision.
func (t *Tx) PutHistory(r ItemRow) error {
	_, err := t.tx.Exec("INSERT INTO history (vault_id, item_id, revision, payload) VALUES (?, ?, ?, ?)",
		r.Vault, r.Item, r.Revision, r.Payload)
	return wrap("write history", err)
}

// History returns every earlier revision of an item, oldest first.
func (s *Store) History(vault, item string) ([]ItemRow, error) {
	rows, err := s.db.Query("SELECT revision, payload FROM history WHERE vault_id = ? AND item_id = ? ORDER BY revision", vault, item)
	if err != nil {
		return nil, wrap("read history", err)
	}
	defer rows.Close()
	var out []ItemRow
	for rows.Next() {
		r := ItemRow{Vault: vault, Item: item}
		if err := rows.Scan(&r.Revision, &r.Payload); err != nil {
			return nil, wrap("read history", err)
		}
		out = append(out, r)
	}
	return out, wrap("read history", rows.Err())
}

// AllHistory calls fn for every history row of a vault.
func (s *Store) AllHistory(vault string, fn func(ItemRow) error) error {
	rows, err := s.db.Query("SELECT item_id, revision, payload FROM history WHERE vault_id = ?", vault)
	if err != nil {
		return wrap("read history", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := ItemRow{Vault: vault}
		if err := rows.Scan(&r.Item, &r.Revision, &r.Payload); err != nil {
			return wrap("read history", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read history", rows.Err())
}

// AppendLog adds one entry to a vault's log and to the outbox.
func (t *Tx) AppendLog(r LogRow) error {
	if _, err := t.tx.Exec("INSERT INTO log (vault_id, seq, item_id, revision, body, sig) VALUES (?, ?, ?, ?, ?, ?)",
		r.Vault, r.Seq, r.Item, r.Revision, r.Body, r.Sig); err != nil {
		return wrap("append log entry", err)
	}
	_, err := t.tx.Exec("INSERT INTO outbox (vault_id, seq) VALUES (?, ?)", r.Vault, r.Seq)
	return wrap("queue log entry", err)
}

// Log calls fn for every entry of a vault's log with seq > after, in order.
// Signatures are read only when withSig is set.
func (s *Store) Log(vault string, after uint64, withSig bool, fn func(LogRow) error) error {
	sig := "x''"
	if withSig {
		sig = "sig"
	}
	rows, err := s.db.Query("SELECT seq, item_id, revision, body, "+sig+" FROM log WHERE vault_id = ? AND seq > ? ORDER BY seq", vault, after)
	if err != nil {
		return wrap("read log", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := LogRow{Vault: vault}
		if err := rows.Scan(&r.Seq, &r.Item, &r.Revision, &r.Body, &r.Sig); err != nil {
			return wrap("read log", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read log", rows.Err())
}

// PutChunk stores one encrypted attachment chunk.
func (t *Tx) PutChunk(vault, blob string, idx int64, data []byte) error {
	_, err := t.tx.Exec("INSERT INTO chunks (vault_id, blob_id, idx, data) VALUES (?, ?, ?, ?)", vault, blob, idx, data)
	return wrap("write attachment chunk", err)
}

// Chunk returns one encrypted attachment chunk.
func (s *Store) Chunk(vault, blob string, idx int64) ([]byte, error) {
	return one(s.db, "SELECT data FROM chunks WHERE vault_id = ? AND blob_id = ? AND idx = ?", vault, blob, idx)
}

// ChunkCount returns how many chunks a blob has.
func (s *Store) ChunkCount(vault, blob string) (int64, error) {
	var n int64
	err := s.db.QueryRow("SELECT count(*) FROM chunks WHERE vault_id = ? AND blob_id = ?", vault, blob).Scan(&n)
	return n, wrap("count attachment chunks", err)
}

// DeleteChunks removes a blob's chunks.
func (t *Tx) DeleteChunks(vault, blob string) error {
	_, err := t.tx.Exec("DELETE FROM chunks WHERE vault_id = ? AND blob_id = ?", vault, blob)
	return wrap("delete attachment", err)
}

// Stats counts rows, for status output.
type Stats struct {
	Items, History, Log, Chunks int64
}

// Stats counts a vault's rows.
func (s *Store) Stats(vault string) (Stats, error) {
	var st Stats
	err := s.db.QueryRow(`SELECT
		(SELECT count(*) FROM items WHERE vault_id = ?1),
		(SELECT count(*) FROM history WHERE vault_id = ?1),
		(SELECT count(*) FROM log WHERE vault_id = ?1),
		(SELECT count(*) FROM chunks WHERE vault_id = ?1)`, vault).Scan(&st.Items, &st.History, &st.Log, &st.Chunks)
	return st, wrap("count rows", err)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ItemLog calls fn for every log entry of one item, in order.
func (s *Store) ItemLog(vault, item string, fn func(LogRow) error) error {
	rows, err := s.db.Query("SELECT seq, revision, body FROM log WHERE vault_id = ? AND item_id = ? ORDER BY seq", vault, item)
	if err != nil {
		return wrap("read log", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := LogRow{Vault: vault, Item: item}
		if err := rows.Scan(&r.Seq, &r.Revision, &r.Body); err != nil {
			return wrap("read log", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read log", rows.Err())
}

// Snapshot returns a vault's sealed index snapshot and its seq.
func (s *Store) Snapshot(vault string) (uint64, []byte, error) {
	var seq uint64
	var b []byte
	err := s.db.QueryRow("SELECT seq, sealed FROM snapshots WHERE vault_id = ?", vault).Scan(&seq, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, ErrNotFound
	}
	return seq, b, wrap("read index snapshot", err)
}

// PutSnapshot replaces a vault's index snapshot.
func (t *Tx) PutSnapshot(vault string, seq uint64, sealed []byte) error {
	_, err := t.tx.Exec(`INSERT INTO snapshots (vault_id, seq, sealed) VALUES (?, ?, ?)
		ON CONFLICT (vault_id) DO UPDATE SET seq = excluded.seq, sealed = excluded.sealed`, vault, seq, sealed)
	return wrap("write index snapshot", err)
}

// LogExtent returns how many entries a vault's log has and its last seq.
func (s *Store) LogExtent(vault string) (n, last uint64, err error) {
	err = s.db.QueryRow("SELECT count(*), coalesce(max(seq), 0) FROM log WHERE vault_id = ?", vault).Scan(&n, &last)
	return n, last, wrap("read log extent", err)
}

// MarkPending records that a blob's chunks are being written.
func (t *Tx) MarkPending(vault, blob string) error {
	_, err := t.tx.Exec("INSERT INTO pending_blobs (vault_id, blob_id) VALUES (?, ?)", vault, blob)
	return wrap("mark attachment pending", err)
}

// ClearPending removes a blob's pending mark.
func (t *Tx) ClearPending(vault, blob string) error {
	_, err := t.tx.Exec("DELETE FROM pending_blobs WHERE vault_id = ? AND blob_id = ?", vault, blob)
	return wrap("clear attachment pending mark", err)
}

// DropPending deletes the chunks of every blob still marked pending (left by
// a crash between an attachment's chunks and its item) and the marks. It
// returns how many blobs it removed.
func (s *Store) DropPending(ctx context.Context) (int64, error) {
	var n int64
	err := s.Update(ctx, func(t *Tx) error {
		if _, err := t.tx.Exec("DELETE FROM chunks WHERE (vault_id, blob_id) IN (SELECT vault_id, blob_id FROM pending_blobs)"); err != nil {
			return wrap("drop unfinished attachments", err)
		}
		res, err := t.tx.Exec("DELETE FROM pending_blobs")
		if err != nil {
			return wrap("drop unfinished attachments", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}
