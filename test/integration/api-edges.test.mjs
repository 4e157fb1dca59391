// Edges of the API: POST /relays/:id/sync (admin only, an activity row that keeps plan and
// status, 404 for an unknown relay), CORS without an Origin header (permissive: *), strict JSON
// bodies (UTF-8, no U+0000, nothing after the value). The real binary, nostr-tools tokens.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { call, newUser, rawToken, sha256hex } from './lib/auth.mjs'

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

// Raw bodies (not JSON.stringify'd): the token's payload tag is the sha256 of the exact bytes.
async function rawPost (user, path, bytes) {
  const url = srv.url + path
  const auth = rawToken(user, { u: url, method: 'POST', payload: sha256hex(bytes) })
  const r = await fetch(url, { method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: bytes })
  return { status: r.status, body: await r.json() }
}

test('bodies: trailing bytes, U+0000 escapes, raw NUL and invalid UTF-8 → 400 invalid-json; nothing stored', async () => {
  const u = newUser()
  assert.equal((await call(srv.url, u, 'POST', '/tenants')).status, 201)
  const bad = [
    Buffer.from('{"subdomain":"trail-a"} x'),
    Buffer.from('{"subdomain":"trail-b"}{}'),
    Buffer.from('{"subdomain":"nul-a\\u0000zz"}'),
    Buffer.from('{"subdomain":"nul-b","info_name":"a\\u0000b"}'),
    Buffer.concat([Buffer.from('{"subdomain":"nul-c"}'), Buffer.from([0])]),
    Buffer.concat([Buffer.from('{"subdomain":"utf-a","info_name":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
    Buffer.concat([Buffer.from('{"subdomain":"utf-b","info_name":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
  ]
  for (const b of bad) {
    const r = await rawPost(u, '/relays', b)
    assert.equal(r.status, 400, b.toString('hex'))
    assert.equal(r.body.code, 'invalid-json', b.toString('hex'))
  }
  const list = await call(srv.url, u, 'GET', '/relays')
  assert.deepEqual(list.body.data, [])
  // Escaped backslash before "u0000" is ordinary text; trailing whitespace is fine; real UTF-8 is kept.
  const okBody = Buffer.from('{"subdomain":"text-ok","info_name":"a\\\\u0000 é 🚀"} \r\n\t')
  const ok = await rawPost(u, '/relays', okBody)
  assert.equal(ok.status, 201, JSON.stringify(ok.body))
  assert.equal(ok.body.data.info_name, 'a\\u0000 é 🚀')
})

test('PUT /tenants/:pk/billing: an nwc_url cut by \\u0000 is refused, not truncated', async () => {
  const u = newUser()
  assert.equal((await call(srv.url, u, 'POST', '/tenants')).status, 201)
  const wallet = 'b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4'
  const secret = '71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c'
  const url = `nostr+walletconnect://${wallet}?relay=wss%3A%2F%2Frelay.test&secret=${secret}`
  const path = `/tenants/${u.pk}/billing`
  const bytes = Buffer.from(JSON.stringify({ nwc_url: url }).replace(`&secret=`, '\\u0000&secret='))
  const auth = rawToken(u, { u: srv.url + path, method: 'PUT', payload: sha256hex(bytes) })
  const r = await fetch(srv.url + path, { method: 'PUT', headers: { Authorization: auth }, body: bytes })
  assert.equal(r.status, 400)
  assert.equal((await r.json()).code, 'invalid-json')
  const t = await call(srv.url, u, 'GET', `/tenants/${u.pk}`)
  assert.equal(t.body.data.nwc_set, false)
})
