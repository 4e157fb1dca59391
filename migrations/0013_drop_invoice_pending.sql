-- invoice_pending (status) WHERE status = 'pending' is a trap: without statistics SQLite
-- prefers it to any index on the tenant or the dates, so "this tenant's pending invoices"
-- walked every pending invoice of every tenant (marking an invoice paid cost ~20,000 rows at
-- 100,000 relays). invoice_pending_due and invoice_pending_created, partial on the same
-- condition, serve every query that wants all pending invoices.
DROP INDEX invoice_pending;
