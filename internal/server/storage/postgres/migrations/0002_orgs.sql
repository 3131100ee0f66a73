-- Schema 2: organisations and their shared vaults. An organisation is a
-- signed, hash-chained log of statements that the server stores as the
-- clients signed them; org_index is the server's reading of that log (who
-- may see it), replaced whole with every append. A shared vault is a row of
-- vaults with org set and account NULL; its entries, items and blobs are
-- kept as an account's vault's are.

CREATE TABLE orgs (
    id        text PRIMARY KEY,
    head      bigint NOT NULL CHECK (head >= 1),
    head_hash bytea NOT NULL, -- 64-byte chain hash after the head statement
    created   timestamptz NOT NULL
);

CREATE TABLE org_log (
    org  text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    seq  bigint NOT NULL CHECK (seq >= 1),
    body bytea NOT NULL,
    sig  bytea NOT NULL,
    PRIMARY KEY (org, seq)
);

-- One row per member or pending invitation. account is '' for an
-- invitation not yet accepted; email is lower-cased.
CREATE TABLE org_index (
    org     text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    account text NOT NULL,
    email   text NOT NULL,
    state   text NOT NULL CHECK (state IN ('invited', 'accepted', 'active'))
);
CREATE INDEX org_index_org ON org_index (org);
CREATE INDEX org_index_account ON org_index (account, org);
CREATE INDEX org_index_email ON org_index (email, org);

-- Exactly one of account and org is set; existing vaults keep their
-- account.
ALTER TABLE vaults
    ALTER COLUMN account DROP NOT NULL,
    ADD COLUMN org text REFERENCES orgs (id) ON DELETE CASCADE,
    ADD CONSTRAINT vaults_owner CHECK ((account IS NULL) <> (org IS NULL));
CREATE INDEX vaults_org ON vaults (org);
