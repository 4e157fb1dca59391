// JSON API behaviour (PRODUCT.md §3, 4): resource shapes, validation of every writable field,
// CORS, 404/405, paging, activity rows, activate/sync rules, and a write acknowledged just
// before kill -9 read back after a restart.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { newUser, token, call } from './lib/auth.mjs'

let srv
const admin = newUser()
const alice = newUser()
const stranger = newUser() // authenticated, never a tenant

const sql = (q) => srv.sql(q)

async function ok (p, status = 200) {
  const r = await p
  assert.equal(r.status, status, r.text)
  assert.equal(r.body.code, 'ok')
  return r.body.data
}

async function fails (p, status, code, field) {
  const r = await p
  assert.equal(r.status, status, r.text)
  assert.equal(r.body.code, code, r.text)
  assert.equal(typeof r.body.error, 'string')
  if (field) assert.ok(r.body.error.includes(field), `message names ${field}: ${r.text}`)
}

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk, RELAY_DOMAIN: 'relays.test' } })
  await ok(call(srv.url, alice, 'POST', '/tenants'), 201)
})
after(async () => { if (srv) assert.equal(await srv.stop(), 0, 'clean exit (no leak reports)') })

const relayKeys = ['id', 'tenant', 'subdomain', 'host', 'schema', 'plan', 'status', 'synced', 'sync_error',
  'info_name', 'info_icon', 'info_description', 'policy_public_join', 'policy_strip_signatures',
  'groups_enabled', 'management_enabled', 'blossom_enabled', 'livekit_enabled', 'push_enabled',
  'created_at', 'updated_at', 'moderators', 'members_count', 'over_member_limit'].sort()

test('public routes: healthz and plans', async () => {
  assert.deepEqual(await ok(call(srv.url, null, 'GET', '/healthz')), { status: 'ok' })
  const plans = await ok(call(srv.url, null, 'GET', '/plans'))
  assert.deepEqual(plans, [
    { id: 'free', name: plans[0].name, sats: 0, members: 10, blossom: false, livekit: false, moderators: 1 },
    { id: 'basic', name: plans[1].name, sats: 10000, members: 100, blossom: true, livekit: true, moderators: 5 },
    { id: 'growth', name: plans[2].name, sats: 50000, members: null, blossom: true, livekit: true, moderators: 20 }
  ])
  assert.deepEqual(await ok(call(srv.url, null, 'GET', '/plans/growth')), plans[2])
  await fails(call(srv.url, null, 'GET', '/plans/gold'), 404, 'not-found')
})

test('identity and tenants', async () => {
  assert.deepEqual(await ok(call(srv.url, stranger, 'GET', '/identity')), { pubkey: stranger.pk, is_admin: false, is_tenant: false })
  assert.deepEqual(await ok(call(srv.url, alice, 'GET', '/identity')), { pubkey: alice.pk, is_admin: false, is_tenant: true })
  assert.deepEqual(await ok(call(srv.url, admin, 'GET', '/identity')), { pubkey: admin.pk, is_admin: true, is_tenant: false })
  const t = await ok(call(srv.url, alice, 'GET', `/tenants/${alice.pk}`))
  assert.deepEqual(Object.keys(t).sort(), ['billing_anchor', 'created_at', 'nwc_error', 'nwc_set', 'pubkey', 'status'])
  assert.equal(t.status, 'active')
  assert.equal(t.nwc_set, false)
  assert.equal(t.billing_anchor, null)
  await fails(call(srv.url, alice, 'POST', '/tenants'), 422, 'pubkey-exists')
  // A "not a tenant" answer is never stale after POST /tenants.
  const late = newUser()
  assert.equal((await ok(call(srv.url, late, 'GET', '/identity'))).is_tenant, false)
  await ok(call(srv.url, late, 'POST', '/tenants'), 201)
  assert.equal((await ok(call(srv.url, late, 'GET', '/identity'))).is_tenant, true)
  await fails(call(srv.url, admin, 'GET', `/tenants/${'ab'.repeat(32)}`), 404, 'not-found')
})

test('PUT /tenants/:pubkey/billing validation', async () => {
  const w = newUser().pk
  const path = `/tenants/${alice.pk}/billing`
  const good = `nostr+walletconnect://${w}?relay=wss%3A%2F%2Frelay.example.com&secret=${'b2'.repeat(32)}`
  const d = await ok(call(srv.url, alice, 'PUT', path, { nwc_url: good }))
  assert.equal(d.nwc_set, true)
  assert.ok(!JSON.stringify(d).includes('b2b2'))
  for (const bad of [
    `nostr+walletconnect://${w}?secret=${'b2'.repeat(32)}`, // no relay
    `nostr+walletconnect://${w}?relay=wss%3A%2F%2Fr.example&secret=abc`, // short secret
    `nostr+walletconnect://${w}?relay=wss%3A%2F%2Fr.example`, // no secret
    `nostr+walletconnect://nothex?relay=wss%3A%2F%2Fr.example&secret=${'b2'.repeat(32)}`,
    `https://example.com/?relay=wss%3A%2F%2Fr.example&secret=${'b2'.repeat(32)}`,
    ''
  ]) {
    await fails(call(srv.url, alice, 'PUT', path, { nwc_url: bad }), 422, 'invalid-nwc-url')
  }
  for (const body of [{}, { nwc_url: 5 }, { nwc_url: true }, { nwc_url: ['x'] }]) {
    await fails(call(srv.url, alice, 'PUT', path, body), 400, 'invalid-body', 'nwc_url')
  }
  await fails(call(srv.url, alice, 'PUT', path, []), 400, 'invalid-json')
  assert.equal((await ok(call(srv.url, alice, 'PUT', path, { nwc_url: null }))).nwc_set, false)
  assert.equal(sql(`SELECT count(*) FROM tenant WHERE pubkey = '${alice.pk}' AND nwc_url IS NULL`), '1')
  await fails(call(srv.url, admin, 'PUT', `/tenants/${'cd'.repeat(32)}/billing`, { nwc_url: null }), 404, 'not-found')
})

test('POST /relays: shape, defaults, schema, secret, activity', async () => {
  const r = await ok(call(srv.url, alice, 'POST', '/relays', { subdomain: '9-lives', info_name: 'Cats', id: 'x', status: 'inactive', synced: true, secret: 'y' }), 201)
  assert.deepEqual(Object.keys(r).sort(), relayKeys)
  assert.match(r.id, /^[0-9a-f]{32}$/)
  assert.equal(r.tenant, alice.pk)
  assert.equal(r.host, '9-lives.relays.test')
  assert.equal(r.schema, 'r_9_lives')
  assert.equal(r.plan, 'free')
  assert.equal(r.status, 'active')
  assert.equal(r.synced, false)
  assert.equal(r.sync_error, null)
  assert.equal(r.info_name, 'Cats')
  assert.equal(r.policy_public_join, false)
  assert.equal(r.created_at, r.updated_at)
  const secret = sql(`SELECT secret FROM relay WHERE id = '${r.id}'`)
  assert.match(secret, /^[0-9a-f]{64}$/)
  assert.notEqual(secret, 'y')
  // Schemas stay unique: r_9_lives is taken, so a relay whose subdomain maps to it differs.
  const r2 = await ok(call(srv.url, alice, 'POST', '/relays', { subdomain: 'r-9-lives' }), 201)
  assert.equal(r2.schema, 'r_9_lives_2')
  const acts = await ok(call(srv.url, alice, 'GET', '/activity?limit=2'))
  assert.deepEqual(acts.map((a) => [a.activity_type, a.resource_id, a.plan, a.status]),
    [['create_relay', r2.id, 'free', 'active'], ['create_relay', r.id, 'free', 'active']])
})

test('POST /relays validation: every field', async () => {
  const cases = [
    [{}, 400, 'invalid-body', 'subdomain'],
    [{ subdomain: 'Caps' }, 422, 'invalid-subdomain'],
    [{ subdomain: '-x' }, 422, 'invalid-subdomain'],
    [{ subdomain: 'x_y' }, 422, 'invalid-subdomain'],
    [{ subdomain: 'a'.repeat(64) }, 422, 'invalid-subdomain'],
    [{ subdomain: 'admin' }, 422, 'invalid-subdomain'],
    [{ subdomain: 12 }, 400, 'invalid-body', 'subdomain'],
    [{ subdomain: 'v1', plan: 'gold' }, 422, 'invalid-plan'],
    [{ subdomain: 'v1', plan: 3 }, 400, 'invalid-body', 'plan'],
    [{ subdomain: 'v1', blossom_enabled: true }, 422, 'plan-feature-unavailable'],
    [{ subdomain: 'v1', plan: 'free', livekit_enabled: true }, 422, 'plan-feature-unavailable'],
    [{ subdomain: 'v1', info_name: 'n'.repeat(101) }, 400, 'invalid-body', 'info_name'],
    [{ subdomain: 'v1', info_name: null }, 400, 'invalid-body', 'info_name'],
    [{ subdomain: 'v1', info_description: 'd'.repeat(2001) }, 400, 'invalid-body', 'info_description'],
    [{ subdomain: 'v1', info_icon: 'ftp://x.example/i.png' }, 400, 'invalid-body', 'info_icon'],
    [{ subdomain: 'v1', info_icon: 'not a url' }, 400, 'invalid-body', 'info_icon'],
    [{ subdomain: 'v1', tenant: 'nothex' }, 400, 'invalid-body', 'tenant'],
    ...['policy_public_join', 'policy_strip_signatures', 'groups_enabled', 'management_enabled',
      'blossom_enabled', 'livekit_enabled', 'push_enabled'].flatMap((f) => [
      [{ subdomain: 'v1', [f]: 1 }, 400, 'invalid-body', f],
      [{ subdomain: 'v1', [f]: 'true' }, 400, 'invalid-body', f],
      [{ subdomain: 'v1', [f]: null }, 400, 'invalid-body', f]
    ])
  ]
  for (const [body, status, code, field] of cases) {
    await fails(call(srv.url, alice, 'POST', '/relays', body), status, code, field)
  }
  const r = await fetch(srv.url + '/relays', {
    method: 'POST',
    headers: { Authorization: await token(alice, srv.url + '/relays', 'POST'), 'Content-Type': 'application/json' },
    body: '{"subdomain":'
  })
  assert.equal(r.status, 400)
  assert.equal((await r.json()).code, 'invalid-json')
  await ok(call(srv.url, alice, 'POST', '/relays', { subdomain: 'taken', plan: 'growth' }), 201)
  await fails(call(srv.url, alice, 'POST', '/relays', { subdomain: 'taken' }), 422, 'subdomain-exists')
  await fails(call(srv.url, stranger, 'POST', '/relays', { subdomain: 'lonely' }), 422, 'tenant-not-found')
  await fails(call(srv.url, admin, 'POST', '/relays', { subdomain: 'lonely', tenant: 'ef'.repeat(32) }), 422, 'tenant-not-found')
  const full = await ok(call(srv.url, alice, 'POST', '/relays', {
    subdomain: 'full', plan: 'growth', info_name: 'n'.repeat(100), info_icon: 'https://x.example/i.png',
    info_description: 'd'.repeat(2000), policy_public_join: true, policy_strip_signatures: true,
    groups_enabled: true, management_enabled: true, blossom_enabled: true, livekit_enabled: true, push_enabled: true
  }), 201)
  for (const k of relayKeys.filter((k) => k.endsWith('_enabled') || k.startsWith('policy_'))) assert.equal(full[k], true, k)
  // A creation's answer is built from what it inserted, not read back: it is exactly what a
  // read of the new relay answers (same keys in the same order, same values).
  const created = await call(srv.url, alice, 'POST', '/relays', {
    subdomain: 'same-as-read', plan: 'growth', info_icon: 'https://x.example/i.png', groups_enabled: true,
    moderators: [newUser().pk, newUser().pk]
  })
  assert.equal(created.status, 201, created.text)
  assert.equal(created.body.data.moderators.length, 2)
  const read = await call(srv.url, alice, 'GET', `/relays/${created.body.data.id}`)
  assert.equal(read.text, created.text)
  const fullRead = await call(srv.url, alice, 'GET', `/relays/${full.id}`)
  assert.deepEqual(fullRead.body.data, full)
})

test('PUT /relays/:id: given fields replace, others stay; validation', async () => {
  const r = await ok(call(srv.url, alice, 'POST', '/relays', { subdomain: 'edit-me', plan: 'basic', info_name: 'A', blossom_enabled: true }), 201)
  const p = `/relays/${r.id}`
  const u = await ok(call(srv.url, alice, 'PUT', p, { info_description: 'desc', push_enabled: true, tenant: admin.pk, schema: 'zzz' }))
  assert.equal(u.info_name, 'A')
  assert.equal(u.info_description, 'desc')
  assert.equal(u.blossom_enabled, true)
  assert.equal(u.push_enabled, true)
  assert.equal(u.tenant, alice.pk)
  assert.equal(u.schema, 'edit_me')
  await fails(call(srv.url, alice, 'PUT', p, { plan: 'free' }), 422, 'plan-feature-unavailable')
  await fails(call(srv.url, alice, 'PUT', p, { plan: 'gold' }), 422, 'invalid-plan')
  await fails(call(srv.url, alice, 'PUT', p, { subdomain: 'taken' }), 422, 'subdomain-exists')
  await fails(call(srv.url, alice, 'PUT', p, { subdomain: 'www' }), 422, 'invalid-subdomain')
  await fails(call(srv.url, alice, 'PUT', p, { groups_enabled: 'yes' }), 400, 'invalid-body', 'groups_enabled')
  await fails(call(srv.url, alice, 'PUT', p, { info_icon: 'mailto:x' }), 400, 'invalid-body', 'info_icon')
  const moved = await ok(call(srv.url, alice, 'PUT', p, { subdomain: 'edited', plan: 'free', blossom_enabled: false }))
  assert.equal(moved.host, 'edited.relays.test')
  assert.equal(moved.schema, 'edit_me', 'the schema is fixed at creation')
  assert.equal(moved.plan, 'free')
  const [last] = await ok(call(srv.url, alice, 'GET', '/activity?limit=1'))
  assert.deepEqual([last.activity_type, last.resource_type, last.resource_id, last.plan, last.status], ['update_relay', 'relay', r.id, 'free', 'active'])
  await fails(call(srv.url, alice, 'PUT', '/relays/' + 'f'.repeat(32), { info_name: 'x' }), 404, 'not-found')
})

test('deactivate, activate, delinquent with an overdue invoice, admin sync', async () => {
  const r = await ok(call(srv.url, alice, 'POST', '/relays', { subdomain: 'lifecycle', plan: 'basic' }), 201)
  const p = `/relays/${r.id}`
  assert.equal((await ok(call(srv.url, alice, 'POST', p + '/deactivate'))).status, 'inactive')
  assert.equal((await ok(call(srv.url, alice, 'POST', p + '/activate'))).status, 'active')
  const acts = await ok(call(srv.url, alice, 'GET', '/activity?limit=2'))
  assert.deepEqual(acts.map((a) => [a.activity_type, a.plan, a.status]), [['activate_relay', 'basic', 'active'], ['deactivate_relay', 'basic', 'inactive']])
  // Delinquent with an invoice unpaid past BILLING_GRACE (default 7 days): payment first.
  const now = Math.floor(Date.now() / 1000)
  sql(`UPDATE relay SET status = 'delinquent' WHERE id = '${r.id}';
       INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
       VALUES ('overdue1', '${alice.pk}', 10, 'pending', 1, 2, ${now - 604800 - 10});`)
  await fails(call(srv.url, alice, 'POST', p + '/activate'), 422, 'payment-required')
  sql("UPDATE invoice SET status = 'paid' WHERE id = 'overdue1'")
  sql(`INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
       VALUES ('recent1', '${alice.pk}', 10, 'pending', 3, 4, ${now - 60});`)
  assert.equal((await ok(call(srv.url, alice, 'POST', p + '/activate'))).status, 'active')
  const inv = await ok(call(srv.url, alice, 'GET', '/invoices/recent1'))
  assert.deepEqual(Object.keys(inv).sort(), ['amount', 'bolt11', 'bolt11_expires_at', 'created_at', 'id', 'items',
    'paid_at', 'period_end', 'period_start', 'status', 'tenant'])
  assert.deepEqual(inv.items, [])
  // A given-up sync: admin resets it so it retries now.
  sql(`UPDATE relay SET synced = 0, sync_attempts = 6, sync_error = 'zooid 500', sync_next_at = ${now + 9999} WHERE id = '${r.id}'`)
  assert.equal((await ok(call(srv.url, alice, 'GET', p))).sync_error, 'zooid 500')
  await fails(call(srv.url, alice, 'POST', p + '/sync'), 403, 'forbidden')
  const s = await ok(call(srv.url, admin, 'POST', p + '/sync'))
  assert.equal(s.sync_error, null)
  assert.equal(sql(`SELECT sync_attempts, CASE WHEN sync_next_at <= ${now + 5} THEN 1 ELSE 0 END FROM relay WHERE id = '${r.id}'`), '0|1')
  await fails(call(srv.url, admin, 'POST', '/relays/' + 'e'.repeat(32) + '/sync'), 404, 'not-found')
})

test('GET /relays/:id: a cached answer never outlives a write', async () => {
  const carol = newUser()
  await ok(call(srv.url, carol, 'POST', '/tenants'), 201)
  const r = await ok(call(srv.url, carol, 'POST', '/relays', { subdomain: 'cached', plan: 'free' }), 201)
  const p = `/relays/${r.id}`
  for (let i = 0; i < 3; i++) assert.equal((await ok(call(srv.url, carol, 'GET', p))).info_name, '')
  // the owner's answer, once cached, is not shown to another caller; an admin sees it
  await fails(call(srv.url, stranger, 'GET', p), 404, 'not-found')
  assert.equal((await ok(call(srv.url, admin, 'GET', p))).id, r.id)
  await ok(call(srv.url, carol, 'PUT', p, { info_name: 'renamed' }))
  assert.equal((await ok(call(srv.url, carol, 'GET', p))).info_name, 'renamed')
  await ok(call(srv.url, carol, 'POST', p + '/deactivate'))
  assert.equal((await ok(call(srv.url, carol, 'GET', p))).status, 'inactive')
  // a row changed behind the service's back (the sqlite3 shell) shows within a second
  sql(`UPDATE relay SET info_name = 'by hand' WHERE id = '${r.id}'`)
  let name
  for (const until = Date.now() + 3000; Date.now() < until;) {
    name = (await ok(call(srv.url, carol, 'GET', p))).info_name
    if (name === 'by hand') break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.equal(name, 'by hand')
})

test('paging: limit 1..500, offset, newest first', async () => {
  for (const q of ['limit=0', 'limit=501', 'limit=abc', 'limit=', 'limit=-1', 'offset=-1', 'offset=x',
    'limit=%2B5', 'limit=+5', 'limit=%205', 'limit=5%20', 'limit=0x10', 'limit=5.0', 'offset=-0',
    'offset=99999999999999999999']) {
    await fails(call(srv.url, alice, 'GET', '/relays?' + q), 400, 'invalid-body', q.split('=')[0])
  }
  for (const t of [alice.pk.toUpperCase(), alice.pk.slice(0, 63) + 'g', alice.pk.slice(1), alice.pk + '0']) {
    await fails(call(srv.url, admin, 'GET', '/relays?tenant=' + t), 400, 'invalid-body', 'tenant')
  }
  const all = await ok(call(srv.url, alice, 'GET', '/relays?limit=500'))
  assert.ok(all.length >= 5)
  assert.equal((await ok(call(srv.url, alice, 'GET', '/relays?limit=004'))).length, 4)
  for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].created_at >= all[i].created_at)
  const one = await ok(call(srv.url, alice, 'GET', '/relays?limit=1&offset=1'))
  assert.deepEqual(one.map((x) => x.id), [all[1].id])
  const acts = await ok(call(srv.url, alice, 'GET', '/activity?limit=500'))
  for (let i = 1; i < acts.length; i++) assert.ok(acts[i - 1].id > acts[i].id)
})

test('404, 405 with Allow, CORS', async () => {
  let r = await fetch(srv.url + '/nope')
  assert.equal(r.status, 404)
  assert.equal((await r.json()).code, 'not-found')
  r = await fetch(srv.url + '/relays/x/y/z')
  assert.equal(r.status, 404)
  r = await fetch(srv.url + '/tenants', { method: 'PUT' })
  assert.equal(r.status, 405)
  assert.equal((await r.json()).code, 'method-not-allowed')
  assert.deepEqual(r.headers.get('allow').split(', ').sort(), ['GET', 'OPTIONS', 'POST'])
  r = await fetch(srv.url + '/relays/abc', { method: 'DELETE' })
  assert.equal(r.status, 405)
  assert.deepEqual(r.headers.get('allow').split(', ').sort(), ['GET', 'OPTIONS', 'PUT'])
  // Permissive CORS (ALLOW_ORIGINS empty): preflight without auth, origin echoed.
  r = await fetch(srv.url + '/relays', { method: 'OPTIONS', headers: { Origin: 'https://dash.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' } })
  assert.ok(r.status === 204 || r.status === 200)
  assert.equal(r.headers.get('access-control-allow-origin'), 'https://dash.example')
  assert.match(r.headers.get('access-control-allow-methods'), /GET.*POST.*PUT.*OPTIONS/)
  assert.match(r.headers.get('access-control-allow-headers').toLowerCase(), /authorization.*content-type/)
  assert.match(r.headers.get('vary'), /Origin/)
  r = await fetch(srv.url + '/identity', { headers: { Origin: 'https://dash.example' } })
  assert.equal(r.status, 401)
  assert.equal(r.headers.get('access-control-allow-origin'), 'https://dash.example')
})

test('ALLOW_ORIGINS: only listed origins are echoed', async () => {
  const s = await startServer({ env: { ALLOW_ORIGINS: 'https://a.example,https://b.example:8443' } })
  try {
    for (const [origin, echoed] of [['https://a.example', true], ['https://b.example:8443', true], ['https://evil.example', false], ['https://a.example.evil', false]]) {
      for (const method of ['OPTIONS', 'GET']) {
        const r = await fetch(s.url + '/plans', { method, headers: { Origin: origin, 'Access-Control-Request-Method': 'GET' } })
        assert.equal(r.headers.get('access-control-allow-origin'), echoed ? origin : null, `${method} ${origin}`)
        assert.match(r.headers.get('vary') || '', /Origin/)
      }
    }
  } finally { await s.stop() }
})

test('a write acknowledged before kill -9 survives the restart', async () => {
  const s = await startServer({})
  let s2
  try {
    const bob = newUser()
    await ok(call(s.url, bob, 'POST', '/tenants'), 201)
    const ids = []
    for (let i = 0; i < 5; i++) ids.push((await ok(call(s.url, bob, 'POST', '/relays', { subdomain: `durable-${i}`, plan: 'growth' }), 201)).id)
    const put = await ok(call(s.url, bob, 'PUT', `/relays/${ids[4]}`, { info_name: 'last word' }))
    assert.equal(put.info_name, 'last word')
    await s.kill9()
    s2 = await s.restart()
    for (const id of ids) await ok(call(s2.url, bob, 'GET', `/relays/${id}`))
    assert.equal((await ok(call(s2.url, bob, 'GET', `/relays/${ids[4]}`))).info_name, 'last word')
    const acts = await ok(call(s2.url, bob, 'GET', '/activity'))
    assert.equal(acts.length, 7) // create_tenant, 5 x create_relay, update_relay
  } finally {
    if (s2) await s2.stop()
    else await s.stop()
  }
})
