package store

// Rows of organisations (docs/design.md §14).

// OrgRow is one stored organisation statement.
type OrgRow struct {
	Seq  uint64
	Body []byte
	Sig  []byte
}

// Orgs returns every organisation record by id.
func (s *Store) Orgs() (map[string][]byte, error) {
	rows, err := s.db.Query("SELECT org_id, record FROM orgs")
	if err != nil {
		return nil, wrap("read organisations", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var rec []byte
		if err := rows.Scan(&id, &rec); err != nil {
			return nil, wrap("read organisations", err)
		}
		out[id] = rec
	}
	return out, wrap("read organisations", rows.Err())
}

// OrgLog calls fn for an organisation's statements in order.
func (s *Store) OrgLog(org string, fn func(OrgRow) error) error {
	rows, err := s.db.Query("SELECT seq, body, sig FROM org_log WHERE org_id = ? ORDER BY seq", org)
	if err != nil {
		return wrap("read organisation log", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r OrgRow
		if err := rows.Scan(&r.Seq, &r.Body, &r.Sig); err != nil {
			return wrap("read organisation log", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read organisation log", rows.Err())
}

// PutOrg writes an organisation's record.
func (t *Tx) PutOrg(org string, record []byte) error {
	_, err := t.tx.Exec("INSERT INTO orgs (org_id, record) VALUES (?, ?) ON CONFLICT (org_id) DO UPDATE SET record = excluded.record", org, record)
	return wrap("write organisation record", err)
}

// AppendOrgLog adds a verified statement.
func (t *Tx) AppendOrgLog(org string, r OrgRow) error {
	_, err := t.tx.Exec("INSERT INTO org_log (org_id, seq, body, sig) VALUES (?, ?, ?, ?)", org, r.Seq, r.Body, r.Sig)
	return wrap("append organisation statement", err)
}

// DeleteOrg forgets an organisation and its statements.
func (t *Tx) DeleteOrg(org string) error {
	if _, err := t.tx.Exec("DELETE FROM org_log WHERE org_id = ?", org); err != nil {
		return wrap("delete organisation", err)
	}
	_, err := t.tx.Exec("DELETE FROM orgs WHERE org_id = ?", org)
	return wrap("delete organisation", err)
}

// DeleteVault removes a vault and everything in it: record, head, items,
// history, log, outbox, chunks, snapshot and pending blobs.
func (t *Tx) DeleteVault(vault string) error {
	for _, table := range []string{"items", "history", "log", "outbox", "chunks", "snapshots", "pending_blobs", "heads", "vaults"} {
		if _, err := t.tx.Exec("DELETE FROM "+table+" WHERE vault_id = ?", vault); err != nil {
			return wrap("delete vault", err)
		}
	}
	return nil
}
