-- Safehold local store, schema 1. Every column that holds something a user
-- typed holds it sealed (suite-1 envelopes); identifiers and revisions are
-- in clear so that rows can be found, and are bound into each envelope's
-- additional data so that a moved or rolled-back row does not open.

-- The account header: one row, the canonical JSON record described in
-- docs/design.md (KDF parameters, both Master Key wraps, public keys,
-- sealed private keys, and a MAC under a Master-Key-derived key).
CREATE TABLE account (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    record BLOB NOT NULL
) STRICT;

-- One row per vault: its sealed name and its key wrapped under the Master
-- Key, MAC'd like the account record.
CREATE TABLE vaults (
    vault_id TEXT PRIMARY KEY,
    record   BLOB NOT NULL
) STRICT;

-- The current revision of every item that has not been purged.
CREATE TABLE items (
    vault_id TEXT NOT NULL,
    item_id  TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision > 0),
    payload  BLOB NOT NULL,
    PRIMARY KEY (vault_id, item_id)
) STRICT;

-- Every earlier revision of every item, sealed the same way.
CREATE TABLE history (
    vault_id TEXT NOT NULL,
    item_id  TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision > 0),
    payload  BLOB NOT NULL,
    PRIMARY KEY (vault_id, item_id, revision)
) STRICT;

-- The append-only, hash-chained, signed change log of each vault. body is
-- the log entry's body (internal/vlog), sig its hybrid signature, kept apart
-- so that checking the chain reads only the bodies. item_id and revision
-- repeat what the body says, for lookups; they are checked against it.
CREATE TABLE log (
    vault_id TEXT NOT NULL,
    seq      INTEGER NOT NULL CHECK (seq > 0),
    item_id  TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body     BLOB NOT NULL,
    sig      BLOB NOT NULL,
    PRIMARY KEY (vault_id, seq)
) STRICT;
CREATE INDEX log_item ON log (vault_id, item_id, seq);

-- The head of each vault's log as this device last wrote or verified it,
-- MAC'd under a Master-Key-derived key: truncating the log is detected.
CREATE TABLE heads (
    vault_id TEXT PRIMARY KEY,
    record   BLOB NOT NULL
) STRICT;

-- Encrypted attachment chunks (suite-1 stream chunks).
CREATE TABLE chunks (
    vault_id TEXT NOT NULL,
    blob_id  TEXT NOT NULL,
    idx      INTEGER NOT NULL CHECK (idx >= 0),
    data     BLOB NOT NULL,
    PRIMARY KEY (vault_id, blob_id, idx)
) STRICT;

-- Log entries written here and not yet accepted by a remote (sync, later).
CREATE TABLE outbox (
    vault_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (vault_id, seq)
) STRICT;

-- A sealed snapshot of each vault's verified index (what the log says of
-- every item, and every item's overview) as of log entry seq, so that an
-- unlock reads one row and the log after seq instead of the whole vault. It
-- is a cache: sealed under the vault key and bound to its seq; if it is
-- missing or does not open, the vault is checked in full instead.
CREATE TABLE snapshots (
    vault_id TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL,
    sealed   BLOB NOT NULL
) STRICT;

-- Attachment blobs whose chunks are written but whose item revision is not
-- yet: Attach adds the row with the chunks and removes it with the item
-- write. A row left here after a crash names chunks nothing refers to; the
-- next unlock deletes them.
CREATE TABLE pending_blobs (
    vault_id TEXT NOT NULL,
    blob_id  TEXT NOT NULL,
    PRIMARY KEY (vault_id, blob_id)
) STRICT;
