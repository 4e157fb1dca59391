-- Billing work that grows with what is due, not with the size of the tables.
--
-- When the invoice pass next has work for a tenant: the end of its current period; NULL =
-- nothing until its relays change (new relay activity sets it to "now"). Every tenant with a
-- relay is due once after this migration.
ALTER TABLE tenant ADD COLUMN billing_due_at INTEGER;
CREATE INDEX tenant_billing_due ON tenant(billing_due_at, pubkey) WHERE billing_due_at IS NOT NULL;
UPDATE tenant SET billing_due_at = 0 WHERE pubkey IN (SELECT tenant FROM relay);
-- Durable positions of the billing worker. 'activity': relay activity up to this id has been
-- folded into tenant.billing_due_at.
CREATE TABLE billing_cursor (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
INSERT INTO billing_cursor(name, position) SELECT 'activity', COALESCE(MAX(id), 0) FROM activity;

-- When the worker next has something to do for a pending invoice (request a BOLT11, look it
-- up on its schedule, collect, replace an expired one); wallet requests spent on it so far.
ALTER TABLE invoice ADD COLUMN next_action_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invoice ADD COLUMN wallet_requests INTEGER NOT NULL DEFAULT 0;
CREATE INDEX invoice_pending_due ON invoice(next_action_at, id) WHERE status = 'pending';
CREATE INDEX invoice_pending_created ON invoice(created_at, id) WHERE status = 'pending';

-- Start of the lookup schedule of a BOLT11: when it was last handed to someone who may pay it
-- (a DM, a pay_invoice); NULL = its created_at.
ALTER TABLE bolt11 ADD COLUMN lookup_base INTEGER;
-- payment_received notifications find their BOLT11 by hash.
CREATE INDEX bolt11_payment_hash ON bolt11(payment_hash);
-- The pending attempt on a BOLT11 (the partial index payment_attempt_once cannot serve
-- "state = 'pending'": SQLite does not derive state <> 'failed' from it).
CREATE INDEX payment_attempt_bolt11 ON payment_attempt(bolt11, state);
-- Invoices whose payment outcome is unknown (woken at start-up).
CREATE INDEX payment_attempt_pending ON payment_attempt(invoice) WHERE state = 'pending';
