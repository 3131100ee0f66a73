-- Safehold server database (PostgreSQL), schema 1. The server stores only
-- what it may know: ids, e-mail addresses, KDF headers, hashes of login keys
-- and tokens, opaque documents and records, signed log entries,
-- ciphertexts, device ids and platforms, and login history. Tables are
-- created in the first schema of the connection's search_path.

-- Server-wide values, such as the secret behind fake prelogin answers.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE accounts (
    id           text PRIMARY KEY,
    email        text NOT NULL UNIQUE, -- lower-cased by the server
    kdf          bytea NOT NULL,       -- 80-byte KDF header
    verifier     bytea NOT NULL,       -- hash of the login key
    epoch        bigint NOT NULL CHECK (epoch >= 1),
    document     bytea NOT NULL,
    created      timestamptz NOT NULL,
    disabled     boolean NOT NULL DEFAULT false,
    totp_secret  text NOT NULL DEFAULT '',
    totp_enabled boolean NOT NULL DEFAULT false
);

-- Hashes of unused TOTP recovery codes; a used code's row is deleted.
CREATE TABLE recovery_codes (
    account text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hash    bytea NOT NULL,
    PRIMARY KEY (account, hash)
);

CREATE TABLE devices (
    account   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id        text NOT NULL,
    platform  text NOT NULL,
    created   timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    revoked   timestamptz, -- NULL while active
    PRIMARY KEY (account, id)
);

-- Sessions by SHA-256 hash of the token; the token itself is never stored.
CREATE TABLE sessions (
    hash    bytea PRIMARY KEY,
    kind    text NOT NULL,
    account text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device  text NOT NULL,
    created timestamptz NOT NULL,
    expires timestamptz NOT NULL,
    pair    bytea
);
CREATE INDEX sessions_device ON sessions (account, device);
CREATE INDEX sessions_pair ON sessions (pair) WHERE pair IS NOT NULL;

CREATE TABLE logins (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    occurred timestamptz NOT NULL,
    device   text NOT NULL,
    address  text NOT NULL,
    ok       boolean NOT NULL,
    reason   text NOT NULL
);
CREATE INDEX logins_account ON logins (account, occurred DESC, id DESC);

-- Rate-limit state by key ("acct:ID", "addr:IP").
CREATE TABLE throttles (
    key        text PRIMARY KEY,
    failures   integer NOT NULL,
    until_time timestamptz NOT NULL
);

CREATE TABLE vaults (
    vault     text PRIMARY KEY,
    account   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    record    bytea NOT NULL,
    head      bigint NOT NULL CHECK (head >= 0),
    head_hash bytea NOT NULL
);
CREATE INDEX vaults_account ON vaults (account);

-- The log: op, item and revision repeat what the signed body says.
-- payload is NULL for a purge and for a put whose item was purged since.
CREATE TABLE entries (
    vault    text NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    seq      bigint NOT NULL CHECK (seq >= 1),
    op       smallint NOT NULL,
    item     text NOT NULL,
    revision bigint NOT NULL,
    body     bytea NOT NULL,
    sig      bytea NOT NULL,
    payload  bytea,
    PRIMARY KEY (vault, seq)
);
CREATE INDEX entries_item ON entries (vault, item, seq);
-- Ciphertexts do not compress: store them out of line without trying.
ALTER TABLE entries ALTER COLUMN payload SET STORAGE EXTERNAL;

-- The latest entry of each item, kept by Append so that ItemStates need not
-- search the log.
CREATE TABLE items (
    vault    text NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item     text NOT NULL,
    revision bigint NOT NULL,
    purged   boolean NOT NULL,
    PRIMARY KEY (vault, item)
);

-- Attachments. An upload's chunks are written in batches under a fresh
-- upload id, then published by pointing the blobs row at it in one
-- transaction; an upload no blobs row points to is in progress, or
-- abandoned once its touched time is old, and is then deleted.
CREATE TABLE blob_uploads (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vault   text NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item    text NOT NULL,
    touched timestamptz NOT NULL
);
CREATE INDEX blob_uploads_item ON blob_uploads (vault, item);

CREATE TABLE blob_chunks (
    upload bigint NOT NULL REFERENCES blob_uploads (id) ON DELETE CASCADE,
    idx    integer NOT NULL CHECK (idx >= 0),
    chunk  bytea NOT NULL,
    PRIMARY KEY (upload, idx)
);
ALTER TABLE blob_chunks ALTER COLUMN chunk SET STORAGE EXTERNAL;

CREATE TABLE blobs (
    vault  text NOT NULL REFERENCES vaults (vault) ON DELETE CASCADE,
    item   text NOT NULL,
    blob   text NOT NULL,
    upload bigint NOT NULL UNIQUE REFERENCES blob_uploads (id) ON DELETE CASCADE,
    chunks integer NOT NULL CHECK (chunks >= 1),
    bytes  bigint NOT NULL,
    PRIMARY KEY (vault, item, blob)
);
