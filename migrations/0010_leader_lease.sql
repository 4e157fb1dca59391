-- Leader leases (src/db/lease.c): one row per lease name ('billing'), the instance holding it and
-- its fencing token. holder: the instance's random id ('' = nobody). epoch: the fencing token,
-- one more at every change of holder; every write the leader makes checks it in its own
-- transaction, so a paused leader that lost the lease cannot commit. beat: one more at every
-- renewal; a standby takes the lease over once it has seen the same (holder, epoch, beat) for
-- ttl_ms (the holder's own TTL) on its monotonic clock, so no two machines' clocks are compared.
CREATE TABLE leader_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    beat INTEGER NOT NULL,
    ttl_ms INTEGER NOT NULL
) WITHOUT ROWID;
