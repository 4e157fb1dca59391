// POST /relays/:id/sync (admin only, an activity row that keeps plan and status, 404 for an
// unknown relay) and CORS without an Origin header (permissive: '*'). The real binary, tokens
// made by nostr-tools (lib/auth.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { call, newUser } from './lib/auth.mjs'

const admin = newUser()
const owner = newUser()
let srv

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk, LOG_LEVEL: 'warn' } })
})

after(async () => {
  if (srv) await srv.stop()
})

test('POST /relays/:id/sync: admin only, 404 when unknown, activity row keeps plan and status', async () => {
  assert.equal((await call(srv.url, owner, 'POST', '/tenants')).status, 201)
  const created = await call(srv.url, owner, 'POST', '/relays', { subdomain: 'resync-me', plan: 'basic' })
  assert.equal(created.status, 201)
  const id = created.body.data.id
  assert.equal((await call(srv.url, owner, 'POST', `/relays/${id}/deactivate`)).status, 200)

  const byOwner = await call(srv.url, owner, 'POST', `/relays/${id}/sync`)
  assert.equal(byOwner.status, 403)
  assert.equal(byOwner.body.code, 'forbidden')
  const unknown = await call(srv.url, admin, 'POST', '/relays/00000000000000000000000000000000/sync')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.code, 'not-found')

  const ok = await call(srv.url, admin, 'POST', `/relays/${id}/sync`)
  assert.equal(ok.status, 200)
  assert.equal(ok.body.data.id, id)
  assert.equal(ok.body.data.synced, false)
  assert.equal(ok.body.data.sync_error, null)
  assert.equal(ok.body.data.status, 'inactive')
  assert.equal(ok.body.data.secret, undefined)

  const act = await call(srv.url, admin, 'GET', `/activity?tenant=${owner.pk}`)
  assert.equal(act.status, 200)
  const newest = act.body.data[0]
  assert.equal(newest.activity_type, 'retry_relay_sync')
  assert.equal(newest.resource_type, 'relay')
  assert.equal(newest.resource_id, id)
  assert.equal(newest.plan, 'basic')
  assert.equal(newest.status, 'inactive')
  assert.deepEqual(act.body.data.map((a) => a.activity_type),
    ['retry_relay_sync', 'deactivate_relay', 'create_relay', 'create_tenant'])
})

test('CORS without ALLOW_ORIGINS: no Origin → *, an Origin is echoed; Vary: Origin always', async () => {
  const none = await fetch(srv.url + '/plans')
  assert.equal(none.status, 200)
  assert.equal(none.headers.get('access-control-allow-origin'), '*')
  assert.match(none.headers.get('vary'), /Origin/)
  const pre = await fetch(srv.url + '/relays', { method: 'OPTIONS' })
  assert.equal(pre.status, 204)
  assert.equal(pre.headers.get('access-control-allow-origin'), '*')
  const echoed = await fetch(srv.url + '/plans', { headers: { Origin: 'https://dash.test' } })
  assert.equal(echoed.headers.get('access-control-allow-origin'), 'https://dash.test')
  assert.match(echoed.headers.get('vary'), /Origin/)
})
