-- Safehold server database (SQLite), schema 1. The server stores only what
-- it may know: ids, e-mail addresses, KDF headers, hashes of login keys and
-- tokens, opaque documents and records, signed log entries, ciphertexts,
-- device ids and platforms, and login history. Times are microseconds
-- since the Unix epoch (UTC); NULL where the Go value is the zero time.

-- Server-wide values, such as the secret behind fake prelogin answers.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL UNIQUE, -- lower-cased by the server
    kdf          BLOB NOT NULL,        -- 80-byte KDF header
    verifier     BLOB NOT NULL,        -- hash of the login key
    epoch        INTEGER NOT NULL CHECK (epoch >= 1),
    document     BLOB NOT NULL,
    created      INTEGER NOT NULL,
    disabled     INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    totp_secret  TEXT NOT NULL DEFAULT '',
    totp_enabled INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1))
) STRICT;

-- Hashes of unused TOTP recovery codes; a used code's row is deleted.
CREATE TABLE recovery_codes (
    account TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hash    BLOB NOT NULL,
    PRIMARY KEY (account, hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    account   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id        TEXT NOT NULL,
    platform  TEXT NOT NULL,
    created   INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    revoked   INTEGER, -- NULL while active
    PRIMARY KEY (account, id)
) STRICT;

-- Sessions by SHA-256 hash of the token; the token itself is never stored.
CREATE TABLE sessions (
    hash    BLOB PRIMARY KEY,
    kind    TEXT NOT NULL,
    account TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device  TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    pair    BLOB
) STRICT;
CREATE INDEX sessions_device ON sessions (account, device);
CREATE INDEX sessions_pair ON sessions (pair) WHERE pair IS NOT NULL;

CREATE TABLE logins (
    id       INTEGER PRIMARY KEY,
    account  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    occurred INTEGER NOT NULL,
    device   TEXT NOT NULL,
    address  TEXT NOT NULL,
    ok       INTEGER NOT NULL CHECK (ok IN (0, 1)),
    reason   TEXT NOT NULL
) STRICT;
CREATE INDEX logins_account ON logins (account, occurred DESC, id DESC);

-- Rate-limit state by key ("acct:ID", "addr:IP").
CREATE TABLE throttles (
    key        TEXT PRIMARY KEY,
    failures   INTEGER NOT NULL,
    until_time INTEGER NOT NULL
) STRICT;

CREATE TABLE vaults (
    vault     TEXT PRIMARY KEY,
    account   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    record    BLOB NOT NULL,
    head      INTEGER NOT NULL CHECK (head >= 0),
    head_hash BLOB NOT NULL
) STRICT;
CREATE INDEX vaults_account ON vaults (account);

-- The log: op, item and revision repeat what the signed body says.
-- payload is NULL for a purge and for a put whose item was purged since.
CREATE TABLE entries (
    vault    TEXT NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 1),
    op       INTEGER NOT NULL,
    item     TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body     BLOB NOT NULL,
    sig      BLOB NOT NULL,
    payload  BLOB,
    PRIMARY KEY (vault, seq)
) STRICT;
CREATE INDEX entries_item ON entries (vault, item, seq);

-- The latest entry of each item, kept by Append so that ItemStates need not
-- search the log.
CREATE TABLE items (
    vault    TEXT NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item     TEXT NOT NULL,
    revision INTEGER NOT NULL,
    purged   INTEGER NOT NULL CHECK (purged IN (0, 1)),
    PRIMARY KEY (vault, item)
) STRICT, WITHOUT ROWID;

-- Attachments. An upload's chunks are written in batches under a fresh
-- upload id, then published by pointing the blobs row at it in one
-- transaction; an upload no blobs row points to is in progress, or
-- abandoned once its touched time is old, and is then deleted.
CREATE TABLE blob_uploads (
    id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    vault   TEXT NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item    TEXT NOT NULL,
    touched INTEGER NOT NULL
) STRICT;
CREATE INDEX blob_uploads_item ON blob_uploads (vault, item);

CREATE TABLE blob_chunks (
    upload INTEGER NOT NULL REFERENCES blob_uploads (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL CHECK (idx >= 0),
    chunk  BLOB NOT NULL,
    PRIMARY KEY (upload, idx)
) STRICT;

CREATE TABLE blobs (
    vault  TEXT NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item   TEXT NOT NULL,
    blob   TEXT NOT NULL,
    upload INTEGER NOT NULL UNIQUE REFERENCES blob_uploads (id) ON DELETE CASCADE,
    chunks INTEGER NOT NULL CHECK (chunks >= 1),
    bytes  INTEGER NOT NULL,
    PRIMARY KEY (vault, item, blob)
) STRICT;
