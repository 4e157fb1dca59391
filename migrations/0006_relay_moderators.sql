-- Moderators of a relay: comma-separated lowercase hex pubkeys (at most the plan's cap). They
-- are sent to zooid as the role "moderator" with can_manage and can_invite, so they manage
-- the relay over NIP-86 themselves.
ALTER TABLE relay ADD COLUMN moderators TEXT NOT NULL DEFAULT '';
