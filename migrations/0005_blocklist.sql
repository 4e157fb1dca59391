-- The operator-wide block list (docs/API.md, "Block list") and what each relay has of it.
CREATE TABLE blocklist (
    pubkey      TEXT PRIMARY KEY CHECK (length(pubkey) = 64),
    reason      TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removed')),
    created_by  TEXT NOT NULL,          -- the admin who added it
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One row per (relay, blocked pubkey) the relay has, or must gain or lose: want = 1 ban it,
-- 0 lift it; applied = what the relay confirmed. want != applied is work for the block-list
-- worker, retried with backoff (next_at). A lifted row is deleted; a removed entry goes when its
-- last row does.
CREATE TABLE blocklist_relay (
    relay_id    TEXT NOT NULL,
    pubkey      TEXT NOT NULL,
    want        INTEGER NOT NULL,
    applied     INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL DEFAULT 0, -- unix ms of the next try
    error       TEXT,
    PRIMARY KEY (relay_id, pubkey)
) WITHOUT ROWID;
CREATE INDEX blocklist_relay_pending ON blocklist_relay(next_at) WHERE want != applied;
CREATE INDEX blocklist_relay_pubkey ON blocklist_relay(pubkey);
