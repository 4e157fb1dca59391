-- The background member-count refresh (src/members/). members_next_at: when the relay's count is
-- next read from zooid (unix s; 0 = not placed yet: the refresher puts it at a random point of
-- the next interval, so the reads are spread). over_cap_notified_at: when the owner was sent the
-- DM saying the relay is over its plan's member cap; NULL while it is not over. One DM per
-- crossing, whatever the restarts or refreshes in between.
ALTER TABLE relay ADD COLUMN members_next_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE relay ADD COLUMN over_cap_notified_at INTEGER;
CREATE INDEX relay_members_due ON relay(members_next_at)
    WHERE status = 'active' AND sync_created = 1;
