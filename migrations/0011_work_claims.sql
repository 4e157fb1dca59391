-- Claims of shared work between instances on one database (docs/ARCHITECTURE.md "Several
-- instances"). An instance takes a claim with a conditional UPDATE (free, its own, or expired)
-- and clears it when the work's outcome is recorded; a claim left by an instance that died
-- expires at its lease time and another instance takes the work over.
--   relay.sync_owner / sync_lease_until: the instance (db_instance(): host:pid:random) syncing
--     the relay with zooid, and until when (unix ms); NULL / 0 when nobody is.
--   message.claim_owner / claim_until: the instance delivering the queued DM, and until when.
ALTER TABLE relay ADD COLUMN sync_owner TEXT;
ALTER TABLE relay ADD COLUMN sync_lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message ADD COLUMN claim_owner TEXT;
ALTER TABLE message ADD COLUMN claim_until INTEGER NOT NULL DEFAULT 0;
-- A graceful stop lets go of every claim of its instance at once.
CREATE INDEX relay_sync_owner ON relay(sync_owner) WHERE sync_owner IS NOT NULL;
