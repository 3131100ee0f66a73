-- Schema 2: the sync record (docs/design.md §13): which remote this vault
-- syncs with, the sealed session, the pinned account-document epoch and the
-- pinned remote log heads. One row, MAC'd under the Master Key.
CREATE TABLE sync (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    record BLOB NOT NULL
) STRICT;
