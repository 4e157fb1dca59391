-- Every list page is read through an index that gives its order, (created_at DESC, id DESC)
-- or the tenant's slice of it, so a page costs the same whatever the table's size and the
-- keyset cursor ((created_at, id) < (?, ?)) is a range of that index. The tie-break columns
-- join the existing indexes (same names); tenants and all invoices get one.
DROP INDEX relay_tenant;
CREATE INDEX relay_tenant ON relay(tenant, created_at DESC, id DESC);
DROP INDEX relay_created;
CREATE INDEX relay_created ON relay(created_at DESC, id DESC);
DROP INDEX invoice_tenant;
CREATE INDEX invoice_tenant ON invoice(tenant, created_at DESC, id DESC);
CREATE INDEX invoice_created ON invoice(created_at DESC, id DESC);
CREATE INDEX tenant_created ON tenant(created_at DESC, pubkey DESC);
