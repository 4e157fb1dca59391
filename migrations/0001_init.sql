-- Caravel schema (docs/PRODUCT.md §4). Times are unix seconds. Booleans are 0/1 integers.
CREATE TABLE tenant (
    pubkey          TEXT PRIMARY KEY CHECK (length(pubkey) = 64),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    nwc_url         TEXT,               -- spending credential: never returned, never logged
    nwc_error       TEXT,
    billing_anchor  INTEGER,
    last_collect_at INTEGER,            -- last collection attempt (at most once per 24 h)
    created_at      INTEGER NOT NULL
);

CREATE TABLE relay (
    id                      TEXT PRIMARY KEY,
    tenant                  TEXT NOT NULL REFERENCES tenant(pubkey),
    subdomain               TEXT NOT NULL UNIQUE,
    schema                  TEXT NOT NULL UNIQUE,
    secret                  TEXT NOT NULL,          -- relay's Nostr secret key: never returned
    plan                    TEXT NOT NULL,
    status                  TEXT NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'inactive', 'delinquent')),
    synced                  INTEGER NOT NULL DEFAULT 0,
    sync_error              TEXT,
    sync_attempts           INTEGER NOT NULL DEFAULT 0,
    sync_next_at            INTEGER NOT NULL DEFAULT 0, -- earliest time of the next try
    sync_created            INTEGER NOT NULL DEFAULT 0, -- zooid has it (later syncs PATCH)
    sync_version            INTEGER NOT NULL DEFAULT 0, -- bumped by every change to sync
    info_name               TEXT NOT NULL DEFAULT '',
    info_icon               TEXT NOT NULL DEFAULT '',
    info_description        TEXT NOT NULL DEFAULT '',
    policy_public_join      INTEGER NOT NULL DEFAULT 0,
    policy_strip_signatures INTEGER NOT NULL DEFAULT 0,
    groups_enabled          INTEGER NOT NULL DEFAULT 0,
    management_enabled      INTEGER NOT NULL DEFAULT 0,
    blossom_enabled         INTEGER NOT NULL DEFAULT 0,
    livekit_enabled         INTEGER NOT NULL DEFAULT 0,
    push_enabled            INTEGER NOT NULL DEFAULT 0,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE INDEX relay_tenant ON relay(tenant, created_at DESC);
CREATE INDEX relay_unsynced ON relay(sync_next_at) WHERE synced = 0;
CREATE INDEX relay_created ON relay(created_at DESC);

CREATE TABLE activity (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    activity_type TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    plan          TEXT,                 -- relay rows: plan after the change
    status        TEXT                  -- relay rows: status after the change
);
CREATE INDEX activity_tenant ON activity(tenant, id DESC);
CREATE INDEX activity_resource ON activity(resource_type, resource_id, id);

CREATE TABLE invoice (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL REFERENCES tenant(pubkey),
    amount       INTEGER NOT NULL CHECK (amount >= 0),  -- sats
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'void')),
    period_start INTEGER NOT NULL,
    period_end   INTEGER NOT NULL,
    reminders    INTEGER NOT NULL DEFAULT 0,            -- BOLT11 reminder DMs sent
    last_collect_at INTEGER,
    delinquent_notified INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    paid_at      INTEGER,
    UNIQUE (tenant, period_start)
);
CREATE INDEX invoice_tenant ON invoice(tenant, created_at DESC);
CREATE INDEX invoice_pending ON invoice(status) WHERE status = 'pending';

CREATE TABLE invoice_item (
    invoice TEXT NOT NULL REFERENCES invoice(id),
    relay   TEXT NOT NULL,
    plan    TEXT NOT NULL,
    hours   INTEGER NOT NULL,
    amount  INTEGER NOT NULL,
    PRIMARY KEY (invoice, relay, plan)
);

CREATE TABLE bolt11 (
    id           TEXT PRIMARY KEY,
    invoice      TEXT NOT NULL REFERENCES invoice(id),
    bolt11       TEXT NOT NULL,
    payment_hash TEXT NOT NULL,
    amount_msats INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    settled_at   INTEGER
);
CREATE INDEX bolt11_invoice ON bolt11(invoice, created_at DESC);

CREATE TABLE payment_attempt (
    id         TEXT PRIMARY KEY,
    invoice    TEXT NOT NULL REFERENCES invoice(id),
    bolt11     TEXT NOT NULL REFERENCES bolt11(id),
    method     TEXT NOT NULL,            -- 'nwc'
    state      TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
    error      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX payment_attempt_invoice ON payment_attempt(invoice, state);
-- A BOLT11 is never paid twice: at most one attempt per BOLT11 that is not failed.
CREATE UNIQUE INDEX payment_attempt_once ON payment_attempt(bolt11) WHERE state <> 'failed';

CREATE TABLE message (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient  TEXT NOT NULL,
    body       TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_at    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER
);
CREATE INDEX message_queued ON message(next_at) WHERE state = 'queued';

-- Key/value state of the service itself (e.g. the generated robot key).
CREATE TABLE setting (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
