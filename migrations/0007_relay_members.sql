-- The member count zooid reported for a relay (GET /relays/:id/members stores it), NULL while
-- unknown. A plan change to a plan whose member cap is below it is refused; a relay over its
-- cap says so in its JSON.
ALTER TABLE relay ADD COLUMN members_count INTEGER;
ALTER TABLE relay ADD COLUMN members_fetched_at INTEGER;
