-- The relay config (without its secret) that zooid last accepted from the sync worker. A later
-- sync PATCHes only what differs from it, so a field the owner changed on the relay itself
-- (a NIP-86 rename from any Nostr client) stays until it is changed through the API. NULL for
-- relays last synced by an older version: their next PATCH carries the whole config once.
-- It holds the LiveKit credentials as sent (never the relay's secret).
ALTER TABLE relay ADD COLUMN sync_config TEXT;
