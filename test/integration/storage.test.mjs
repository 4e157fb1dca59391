// Failing storage: the database file deleted under a running service, and a full disk. No
// write may be acknowledged that a restart would not find, and /healthz says why.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { engine, startServer } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'

// The SQLite file and its disk (PostgreSQL's storage is the database server's).
const skip = engine === 'postgres' && 'SQLite only'

test('the data directory deleted while running: writes 503 unavailable, /healthz 503, an error logged', { skip }, async () => {
  const srv = await startServer({})
  try {
    const alice = newUser()
    assert.equal((await call(srv.url, alice, 'POST', '/tenants')).status, 201)
    assert.equal((await call(srv.url, null, 'GET', '/healthz')).status, 200)
    fs.rmSync(srv.dir, { recursive: true, force: true })
    const r = await call(srv.url, alice, 'POST', '/relays', { subdomain: 'after-rm' })
    assert.equal(r.status, 503, r.text)
    assert.equal(r.body.code, 'unavailable')
    const t = await call(srv.url, newUser(), 'POST', '/tenants')
    assert.equal(t.status, 503, t.text)
    const h = await call(srv.url, null, 'GET', '/healthz')
    assert.equal(h.status, 503, h.text)
    assert.equal(h.body.code, 'unavailable')
    assert.match(h.body.error, /deleted or replaced/)
    assert.match(srv.logs(), /ERROR .*database: the file was deleted or replaced/)
  } finally {
    await srv.stop()
  }
})

test('a full disk: writes 507 storage-full, /healthz 503 storage-full; reads still work', { skip }, async () => {
  // max_page_count = 1 is raised to the file's current size: the next page it needs is "disk full".
  const srv = await startServer({ env: { CARAVEL_TEST_DB_MAX_PAGES: '1', METRICS_PORT: '0' } })
  try {
    let full = null
    for (let i = 0; i < 400 && !full; i++) {
      const r = await call(srv.url, newUser(), 'POST', '/tenants')
      if (r.status !== 201) full = r
    }
    assert.ok(full, 'the database filled up')
    assert.equal(full.status, 507, full.text)
    assert.equal(full.body.code, 'storage-full')
    const h = await call(srv.url, null, 'GET', '/healthz')
    assert.equal(h.status, 503, h.text)
    assert.equal(h.body.code, 'storage-full')
    assert.equal((await call(srv.url, null, 'GET', '/plans')).status, 200)
    assert.match(srv.logs(), /ERROR .*database: disk or database full/)
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})
