-- Claims of the block-list rollout between instances on one database (docs/ARCHITECTURE.md
-- "Several instances"), as 0011's for the sync and the DMs: the instance (db_instance())
-- sending a row's NIP-86 call and until when (unix ms); NULL / 0 when nobody is. Taken by a
-- conditional UPDATE (free or expired), cleared in the transaction that records the relay's
-- answer; a claim left by an instance that died is taken over once its lease ends.
ALTER TABLE blocklist_relay ADD COLUMN claim_owner TEXT;
ALTER TABLE blocklist_relay ADD COLUMN claim_until INTEGER NOT NULL DEFAULT 0;
-- A graceful stop lets go of every claim of its instance at once.
CREATE INDEX blocklist_relay_claim_owner ON blocklist_relay(claim_owner)
    WHERE claim_owner IS NOT NULL;
