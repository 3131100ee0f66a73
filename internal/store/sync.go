package store

// Rows used by sync (docs/design.md §13).

// SyncRecord returns the sync record; ErrNotFound when the vault has no
// remote.
func (s *Store) SyncRecord() ([]byte, error) {
	return one(s.db, "SELECT record FROM sync WHERE id = 1")
}

// PutSyncRecord writes the sync record.
func (t *Tx) PutSyncRecord(record []byte) error {
	_, err := t.tx.Exec("INSERT INTO sync (id, record) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record", record)
	return wrap("write sync record", err)
}

// DeleteSyncRecord forgets the remote.
func (t *Tx) DeleteSyncRecord() error {
	_, err := t.tx.Exec("DELETE FROM sync")
	return wrap("delete sync record", err)
}

// AppendConfirmedLog adds an entry that a remote already holds: to the log,
// not to the outbox.
func (t *Tx) AppendConfirmedLog(r LogRow) error {
	_, err := t.tx.Exec("INSERT INTO log (vault_id, seq, item_id, revision, body, sig) VALUES (?, ?, ?, ?, ?, ?)",
		r.Vault, r.Seq, r.Item, r.Revision, r.Body, r.Sig)
	return wrap("append log entry", err)
}

// TruncateLog deletes a vault's log entries after seq `after`, and their
// outbox rows: used only to replace local entries that no remote holds
// yet by their rebased versions, in the same transaction.
func (t *Tx) TruncateLog(vault string, after uint64) error {
	if _, err := t.tx.Exec("DELETE FROM log WHERE vault_id = ? AND seq > ?", vault, after); err != nil {
		return wrap("rewrite unsent log entries", err)
	}
	_, err := t.tx.Exec("DELETE FROM outbox WHERE vault_id = ? AND seq > ?", vault, after)
	return wrap("rewrite unsent log entries", err)
}

// ClearOutbox removes the outbox rows up to and including seq upTo: a
// remote accepted those entries.
func (t *Tx) ClearOutbox(vault string, upTo uint64) error {
	_, err := t.tx.Exec("DELETE FROM outbox WHERE vault_id = ? AND seq <= ?", vault, upTo)
	return wrap("clear outbox", err)
}

// DeleteHistoryFrom deletes an item's history rows with revision >= rev.
func (t *Tx) DeleteHistoryFrom(vault, item string, rev uint64) error {
	_, err := t.tx.Exec("DELETE FROM history WHERE vault_id = ? AND item_id = ? AND revision >= ?", vault, item, rev)
	return wrap("rewrite item history", err)
}

// DeleteCurrent deletes an item's current row only (its history stays).
func (t *Tx) DeleteCurrent(vault, item string) error {
	_, err := t.tx.Exec("DELETE FROM items WHERE vault_id = ? AND item_id = ?", vault, item)
	return wrap("rewrite item", err)
}

// HasChunks reports whether a blob's chunks are stored.
func (s *Store) HasChunks(vault, blob string) (bool, error) {
	n, err := s.ChunkCount(vault, blob)
	return n > 0, err
}

// DeleteSnapshot removes a vault's index snapshot (it described log
// entries that a rebase is replacing).
func (t *Tx) DeleteSnapshot(vault string) error {
	_, err := t.tx.Exec("DELETE FROM snapshots WHERE vault_id = ?", vault)
	return wrap("delete index snapshot", err)
}

// LogBody returns the body of one log entry.
func (s *Store) LogBody(vault string, seq uint64) ([]byte, error) {
	return one(s.db, "SELECT body FROM log WHERE vault_id = ? AND seq = ?", vault, seq)
}

// Vault returns one vault record.
func (s *Store) Vault(vault string) ([]byte, error) {
	return one(s.db, "SELECT record FROM vaults WHERE vault_id = ?", vault)
}
