-- The NIP-17 gift wrap built for a queued DM, stored before its first publish. A retry after
-- a crash or a relay outage republishes the same event (same id), so a relay that already
-- has it answers "duplicate" instead of storing the DM twice.
ALTER TABLE message ADD COLUMN wrap TEXT;
