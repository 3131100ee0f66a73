-- Schema 2: organisations and their shared vaults. An organisation is a
-- signed, hash-chained log of statements that the server stores as the
-- clients signed them; org_index is the server's reading of that log (who
-- may see it), replaced whole with every append. A shared vault is a row of
-- vaults with org set and account NULL; its entries, items and blobs are
-- kept as an account's vault's are.
--
-- Applied with foreign keys off (see migrate): vaults is rebuilt, as SQLite
-- cannot drop a NOT NULL constraint, and dropping it with foreign keys on
-- would delete every row that refers to it.

CREATE TABLE orgs (
    id        TEXT PRIMARY KEY,
    head      INTEGER NOT NULL CHECK (head >= 1),
    head_hash BLOB NOT NULL, -- 64-byte chain hash after the head statement
    created   INTEGER NOT NULL
) STRICT;

CREATE TABLE org_log (
    org  TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    seq  INTEGER NOT NULL CHECK (seq >= 1),
    body BLOB NOT NULL,
    sig  BLOB NOT NULL,
    PRIMARY KEY (org, seq)
) STRICT;

-- One row per member or pending invitation. account is '' for an
-- invitation not yet accepted; email is lower-cased.
CREATE TABLE org_index (
    org     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    email   TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN ('invited', 'accepted', 'active'))
) STRICT;
CREATE INDEX org_index_org ON org_index (org);
CREATE INDEX org_index_account ON org_index (account, org);
CREATE INDEX org_index_email ON org_index (email, org);

-- Exactly one of account and org is set.
CREATE TABLE vaults_new (
    vault     TEXT PRIMARY KEY,
    account   TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    org       TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    record    BLOB NOT NULL,
    head      INTEGER NOT NULL CHECK (head >= 0),
    head_hash BLOB NOT NULL,
    CHECK ((account IS NULL) <> (org IS NULL))
) STRICT;
INSERT INTO vaults_new (vault, account, org, record, head, head_hash)
    SELECT vault, account, NULL, record, head, head_hash FROM vaults;
DROP TABLE vaults;
-- entries, items, blob_uploads and blobs name "vaults", and so refer to
-- the new table once it has that name.
ALTER TABLE vaults_new RENAME TO vaults;
CREATE INDEX vaults_account ON vaults (account);
CREATE INDEX vaults_org ON vaults (org);
