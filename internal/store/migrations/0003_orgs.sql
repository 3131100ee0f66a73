-- Schema 3: organisations (docs/design.md §14). Per organisation a MAC'd
-- record pinning its root key and the last verified log head, and a copy
-- of its signed statements so that unlock replays them without the remote.
CREATE TABLE orgs (
    org_id TEXT PRIMARY KEY,
    record BLOB NOT NULL
) STRICT;

CREATE TABLE org_log (
    org_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    body   BLOB    NOT NULL,
    sig    BLOB    NOT NULL,
    PRIMARY KEY (org_id, seq)
) STRICT, WITHOUT ROWID;
