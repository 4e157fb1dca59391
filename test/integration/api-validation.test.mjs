// Input validation and the HTTP conventions of PRODUCT.md §3.1/3.3 against the real binary: every
// writable relay field, billing URIs, paging, activate/deactivate with activity rows, the
// delinquent/payment-required rule, CORS, 404/405/400/413, public routes, and that an
// acknowledged creation survives SIGKILL.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { startServer } from './lib/server.mjs'
import { newUser, call, token } from './lib/auth.mjs'
import { send, sql, nwcUri, hex, seedInvoice } from './lib/api.mjs'

const admin = newUser()
const alice = newUser()
const bob = newUser()
const stranger = newUser() // never POSTs /tenants
let srv, base

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk, LOG_LEVEL: 'warn' } })
  base = srv.url
  for (const u of [alice, bob]) assert.equal((await call(base, u, 'POST', '/tenants')).status, 201)
})

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, "clean exit (no sanitizer report)")
})

let seq = 0
const sub = (p = 'r') => `${p}-${++seq}-${hex(3)}`

async function create (user, body, status = 201) {
  const r = await call(base, user, 'POST', '/relays', body)
  assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 120)}: ${r.text}`)
  return r
}

function expectErr (r, status, code, field) {
  assert.equal(r.status, status, r.text)
  assert.equal(r.body?.code, code, r.text)
  assert.equal(typeof r.body.error, 'string')
  if (field) assert.match(r.body.error, new RegExp(field), r.text)
}

const flags = ['policy_public_join', 'policy_strip_signatures', 'groups_enabled', 'management_enabled',
  'blossom_enabled', 'livekit_enabled', 'push_enabled']

test('POST /relays: defaults, every flag stored, read-only fields ignored', async () => {
  const s = sub('def')
  const r = await create(alice, { subdomain: s })
  const d = r.body.data
  assert.equal(r.body.code, 'ok')
  assert.match(d.id, /^[0-9a-z]+$/)
  assert.equal(d.tenant, alice.pk)
  assert.equal(d.subdomain, s)
  assert.equal(d.plan, 'free')
  assert.equal(d.status, 'active')
  assert.equal(d.schema, s.replace(/-/g, '_'))
  for (const f of flags) assert.equal(d[f], false, f)
  for (const k of ['host', 'synced', 'sync_error', 'info_name', 'info_icon', 'info_description', 'created_at', 'updated_at']) {
    assert.ok(k in d, k)
  }
  assert.ok(!('secret' in d))

  const all = Object.fromEntries(flags.map((f) => [f, true]))
  const full = await create(alice, { subdomain: sub('full'), plan: 'growth', ...all, info_name: 'N', info_icon: 'https://x.test/i.png', info_description: 'D' })
  for (const f of flags) assert.equal(full.body.data[f], true, f)
  assert.equal(full.body.data.info_icon, 'https://x.test/i.png')

  const s2 = sub('ro')
  const ro = await create(alice, {
    subdomain: s2, id: 'myid', tenant: alice.pk, host: 'evil.test', schema: 'public', status: 'inactive',
    synced: true, sync_error: 'x', created_at: 5, updated_at: 6, secret: 'f'.repeat(64), plan: 'growth'
  })
  const rd = ro.body.data
  assert.notEqual(rd.id, 'myid')
  assert.equal(rd.status, 'active')
  assert.equal(rd.schema, s2.replace(/-/g, '_'))
  assert.notEqual(rd.host, 'evil.test')
  assert.notEqual(rd.created_at, 5)
  assert.notEqual(sql(srv.dbPath, `select secret from relay where id = '${rd.id}'`)[0], 'f'.repeat(64))
  // schema: a leading digit gets the r_ prefix
  const dig = await create(alice, { subdomain: `9${hex(3)}-x`, plan: 'growth' })
  assert.match(dig.body.data.schema, /^r_9[0-9a-f]{6}_x$/)
})

test('POST /relays: subdomain, plan and tenant rules', async () => {
  for (const bad of ['Bad', 'api', 'www', 'app', 'admin', 'mail', '-x', 'x-', 'a_b', 'a.b', '', 'a'.repeat(64), 'café']) {
    expectErr(await call(base, alice, 'POST', '/relays', { subdomain: bad }), 422, 'invalid-subdomain')
  }
  await create(alice, { subdomain: 'a'.repeat(63), plan: 'growth' })
  expectErr(await call(base, alice, 'POST', '/relays', {}), 400, 'invalid-body', 'subdomain')
  const taken = sub('taken')
  await create(alice, { subdomain: taken, plan: 'growth' })
  expectErr(await call(base, bob, 'POST', '/relays', { subdomain: taken }), 422, 'subdomain-exists')
  expectErr(await call(base, alice, 'POST', '/relays', { subdomain: taken }), 422, 'subdomain-exists')
  for (const plan of ['gold', '', 'FREE', 'Basic']) {
    expectErr(await call(base, alice, 'POST', '/relays', { subdomain: sub(), plan }), 422, 'invalid-plan')
  }
  for (const f of ['blossom_enabled', 'livekit_enabled']) {
    expectErr(await call(base, alice, 'POST', '/relays', { subdomain: sub(), [f]: true }), 422, 'plan-feature-unavailable')
    expectErr(await call(base, alice, 'POST', '/relays', { subdomain: sub(), plan: 'free', [f]: true }), 422, 'plan-feature-unavailable')
    await create(alice, { subdomain: sub(), plan: 'basic', [f]: true })
  }
  await create(alice, { subdomain: sub(), plan: 'free', groups_enabled: true, push_enabled: true })
  // the tenant must exist
  expectErr(await call(base, stranger, 'POST', '/relays', { subdomain: sub() }), 422, 'tenant-not-found')
  expectErr(await call(base, admin, 'POST', '/relays', { subdomain: sub(), tenant: hex(32) }), 422, 'tenant-not-found')
  expectErr(await call(base, admin, 'POST', '/relays', { subdomain: sub(), tenant: 'abc' }), 400, 'invalid-body', 'tenant')
  const byAdmin = await create(admin, { subdomain: sub('adm'), tenant: bob.pk })
  assert.equal(byAdmin.body.data.tenant, bob.pk)
  // nothing was written for the refused requests
  assert.equal(sql(srv.dbPath, `select count(*) from relay where subdomain = '${taken}'`)[0], '1')
})

test('concurrent creations: one subdomain, one winner; colliding schemas stay unique', async () => {
  const s = sub('race')
  const rs = await Promise.all([alice, bob, alice, bob, alice, bob, alice, bob].map((u) => call(base, u, 'POST', '/relays', { subdomain: s, plan: 'growth' })))
  assert.equal(rs.filter((r) => r.status === 201).length, 1, rs.map((r) => r.status).join())
  for (const r of rs.filter((x) => x.status !== 201)) expectErr(r, 422, 'subdomain-exists')
  const u = newUser()
  const ts = await Promise.all([1, 2, 3, 4].map(() => call(base, u, 'POST', '/tenants')))
  assert.deepEqual(ts.map((r) => r.status).sort(), [201, 422, 422, 422])
  // "r-9x" and "9x" both map to the schema r_9x: the second gets another one
  const tag = hex(2)
  const a = (await create(alice, { subdomain: `r-9${tag}`, plan: 'growth' })).body.data
  const b = (await create(alice, { subdomain: `9${tag}`, plan: 'growth' })).body.data
  assert.equal(a.schema, `r_9${tag}`)
  assert.match(b.schema, new RegExp(`^r_9${tag}.+`))
  assert.notEqual(a.schema, b.schema)
})

test('POST/PUT /relays: wrong types and bad info_* values → 400 invalid-body naming the field', async () => {
  const id = (await create(alice, { subdomain: sub('types'), plan: 'basic' })).body.data.id
  const bads = []
  for (const f of flags) for (const v of [1, 0, 'true', null, [], {}]) bads.push([f, v])
  for (const f of ['subdomain', 'plan', 'info_name', 'info_icon', 'info_description']) for (const v of [1, true, null, [], {}]) bads.push([f, v])
  bads.push(['info_name', 'n'.repeat(101)], ['info_name', '😀'.repeat(101)], ['info_description', 'd'.repeat(2001)])
  for (const icon of ['ftp://x.test/i.png', 'javascript:alert(1)', 'data:image/png;base64,AA', 'x.test/i.png', 'http://', 'https://a b/']) {
    bads.push(['info_icon', icon])
  }
  for (const [f, v] of bads) {
    const body = { [f]: v }
    expectErr(await call(base, alice, 'POST', '/relays', { subdomain: sub(), ...body }), 400, 'invalid-body', f)
    expectErr(await call(base, alice, 'PUT', `/relays/${id}`, body), 400, 'invalid-body', f)
  }
  // the limits themselves are fine (characters, not bytes)
  const ok = await call(base, alice, 'PUT', `/relays/${id}`, { info_name: '😀'.repeat(100), info_description: 'é'.repeat(2000), info_icon: '' })
  assert.equal(ok.status, 200, ok.text)
  assert.equal(ok.body.data.info_name, '😀'.repeat(100))
  assert.equal(ok.body.data.info_description, 'é'.repeat(2000))
  for (const icon of ['http://x.test/a.png', 'https://cdn.x.test:8443/a.svg?v=1']) {
    assert.equal((await call(base, alice, 'PUT', `/relays/${id}`, { info_icon: icon })).body.data.info_icon, icon)
  }
})

test('PUT /relays/:id: fields given replace, others stay; subdomain and plan rules', async () => {
  const a = (await create(alice, { subdomain: sub('put'), plan: 'basic', blossom_enabled: true, groups_enabled: true, info_name: 'one', info_description: 'desc' })).body.data
  const r = await call(base, alice, 'PUT', `/relays/${a.id}`, { info_name: 'two', push_enabled: true })
  assert.equal(r.status, 200, r.text)
  const d = r.body.data
  assert.equal(d.info_name, 'two')
  assert.equal(d.info_description, 'desc')
  assert.equal(d.push_enabled, true)
  assert.equal(d.blossom_enabled, true)
  assert.equal(d.groups_enabled, true)
  assert.equal(d.plan, 'basic')
  assert.equal(d.subdomain, a.subdomain)
  assert.equal(d.schema, a.schema)
  assert.equal(d.tenant, alice.pk)
  // an empty body changes nothing
  const same = await call(base, alice, 'PUT', `/relays/${a.id}`, {})
  assert.equal(same.status, 200)
  assert.equal(same.body.data.info_name, 'two')
  // same subdomain on itself is fine; another relay's is not
  assert.equal((await call(base, alice, 'PUT', `/relays/${a.id}`, { subdomain: a.subdomain })).status, 200)
  const b = (await create(bob, { subdomain: sub('bobs') })).body.data
  expectErr(await call(base, alice, 'PUT', `/relays/${a.id}`, { subdomain: b.subdomain }), 422, 'subdomain-exists')
  expectErr(await call(base, alice, 'PUT', `/relays/${a.id}`, { subdomain: 'API' }), 422, 'invalid-subdomain')
  expectErr(await call(base, alice, 'PUT', `/relays/${a.id}`, { plan: 'nope' }), 422, 'invalid-plan')
  // free with blossom on (stored) is refused; switching it off in the same request is fine
  expectErr(await call(base, alice, 'PUT', `/relays/${a.id}`, { plan: 'free' }), 422, 'plan-feature-unavailable')
  const stored = (await call(base, alice, 'GET', `/relays/${a.id}`)).body.data
  assert.equal(stored.plan, 'basic')
  assert.equal(stored.subdomain, a.subdomain)
  const free = await call(base, alice, 'PUT', `/relays/${a.id}`, { plan: 'free', blossom_enabled: false })
  assert.equal(free.status, 200, free.text)
  expectErr(await call(base, alice, 'PUT', `/relays/${a.id}`, { livekit_enabled: true }), 422, 'plan-feature-unavailable')
  // the owner never changes, even when a body names another tenant
  const t = await call(base, alice, 'PUT', `/relays/${a.id}`, { tenant: bob.pk })
  assert.equal(t.status, 200, t.text)
  assert.equal(t.body.data.tenant, alice.pk)
  // a new subdomain moves the host but not the schema
  const ns = sub('moved')
  const mv = (await call(base, alice, 'PUT', `/relays/${a.id}`, { subdomain: ns })).body.data
  assert.equal(mv.subdomain, ns)
  assert.equal(mv.schema, a.schema)
  assert.equal((await call(base, alice, 'GET', '/relays/nonexistent')).status, 404)
})

test('PUT /tenants/:pk/billing: valid, null, malformed, wrong types', async () => {
  const path = `/tenants/${bob.pk}/billing`
  const set = await call(base, bob, 'PUT', path, { nwc_url: nwcUri() })
  assert.equal(set.status, 200, set.text)
  assert.equal(set.body.data.nwc_set, true)
  assert.equal(set.body.data.pubkey, bob.pk)
  assert.equal((await call(base, bob, 'GET', `/tenants/${bob.pk}`)).body.data.nwc_set, true)
  const clear = await call(base, bob, 'PUT', path, { nwc_url: null })
  assert.equal(clear.status, 200)
  assert.equal(clear.body.data.nwc_set, false)
  assert.equal(sql(srv.dbPath, `select count(*) from tenant where pubkey = '${bob.pk}' and nwc_url is null`)[0], '1')
  const wallet = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'
  const sec = hex(32)
  const malformed = [
    'https://example.com',
    'nostr+walletconnect://',
    `nostr+walletconnect://${wallet}`, // no relay, no secret
    `nostr+walletconnect://${wallet}?secret=${sec}`, // no relay
    `nostr+walletconnect://${wallet}?relay=wss%3A%2F%2Fr.test`, // no secret
    `nostr+walletconnect://${wallet}?relay=https%3A%2F%2Fr.test&secret=${sec}`, // relay not ws
    `nostr+walletconnect://${wallet.slice(2)}?relay=wss%3A%2F%2Fr.test&secret=${sec}`, // short pubkey
    `nostr+walletconnect://${'z'.repeat(64)}?relay=wss%3A%2F%2Fr.test&secret=${sec}`,
    `nostr+walletconnect://${wallet}?relay=wss%3A%2F%2Fr.test&secret=${sec.slice(1)}`, // short secret
    `nostr+walletconnect://${wallet}?relay=wss%3A%2F%2Fr.test&secret=${'0'.repeat(64)}`, // not a key
    ''
  ]
  for (const u of malformed) {
    const r = await call(base, bob, 'PUT', path, { nwc_url: u })
    expectErr(r, 422, 'invalid-nwc-url')
    assert.ok(!r.text.includes(sec), 'error echoes the secret')
  }
  for (const v of [1, true, {}, []]) expectErr(await call(base, bob, 'PUT', path, { nwc_url: v }), 400, 'invalid-body', 'nwc_url')
  expectErr(await call(base, bob, 'PUT', path, {}), 400, 'invalid-body', 'nwc_url')
  expectErr(await call(base, bob, 'PUT', path, [1]), 400, 'invalid-json')
  assert.equal((await call(base, bob, 'GET', `/tenants/${bob.pk}`)).body.data.nwc_set, false)
  // an unknown tenant (as admin): 404
  assert.equal((await call(base, admin, 'PUT', `/tenants/${hex(32)}/billing`, { nwc_url: null })).status, 404)
})

test('list paging: bounds, newest first, offset', async () => {
  const pager = newUser()
  assert.equal((await call(base, pager, 'POST', '/tenants')).status, 201)
  const ids = []
  for (let i = 0; i < 4; i++) ids.push((await create(pager, { subdomain: sub('page'), plan: 'growth' })).body.data.id)
  // distinct creation times (the API writes seconds): ids[i] created at 1000 + i
  for (const [i, id] of ids.entries()) sql(srv.dbPath, `update relay set created_at = ${1000 + i} where id = '${id}'`)
  const list = (q) => call(base, pager, 'GET', '/relays' + q)
  assert.deepEqual((await list('')).body.data.map((x) => x.id), [...ids].reverse())
  assert.deepEqual((await list('?limit=2')).body.data.map((x) => x.id), [ids[3], ids[2]])
  assert.deepEqual((await list('?limit=2&offset=2')).body.data.map((x) => x.id), [ids[1], ids[0]])
  assert.deepEqual((await list('?offset=4')).body.data, [])
  assert.equal((await list('?limit=1')).body.data.length, 1)
  assert.equal((await list('?limit=500')).status, 200)
  for (const q of ['?limit=0', '?limit=501', '?limit=abc', '?limit=-1', '?limit=', '?limit=1.5', '?offset=-1', '?offset=abc']) {
    expectErr(await list(q), 400, 'invalid-body')
    for (const p of ['/invoices', '/activity']) expectErr(await call(base, pager, 'GET', p + q), 400, 'invalid-body')
  }
  expectErr(await call(base, admin, 'GET', '/tenants?limit=0'), 400, 'invalid-body')
  expectErr(await call(base, admin, 'GET', '/relays?tenant=abc'), 400, 'invalid-body')
  // Query values are percent-decoded; a malformed escape ('%' without two hex digits, or %00)
  // in a parameter the route reads is the client's error, never passed through.
  assert.deepEqual((await list('?limit=%32')).body.data.map((x) => x.id), [ids[3], ids[2]])
  for (const q of ['?limit=%zz', '?limit=2%', '?offset=%4', '?after=%g1', '?limit=1&offset=%001']) {
    const r = await list(q)
    expectErr(r, 400, 'invalid-query')
    assert.match(r.body.error, /percent-escape/, q)
  }
  expectErr(await call(base, admin, 'GET', '/relays?tenant=' + pager.pk.slice(0, 63) + '%'), 400, 'invalid-query')
  const escaped = '%' + pager.pk.charCodeAt(0).toString(16) + pager.pk.slice(1)
  assert.deepEqual((await call(base, admin, 'GET', `/relays?tenant=${escaped}`)).body.data.map((x) => x.id), [...ids].reverse())
  // an admin's ?tenant= filter
  const adm = (await call(base, admin, 'GET', `/relays?tenant=${pager.pk}`)).body.data
  assert.deepEqual(adm.map((x) => x.id), [...ids].reverse())
})

async function activity (user, id) {
  const rows = (await call(base, user, 'GET', '/activity?limit=500')).body.data
  return rows.filter((x) => x.resource_id === id)
}

test('deactivate / activate: status, idempotence, activity rows with plan and status', async () => {
  const r = (await create(alice, { subdomain: sub('act'), plan: 'basic' })).body.data
  const d = await call(base, alice, 'POST', `/relays/${r.id}/deactivate`)
  assert.equal(d.status, 200, d.text)
  assert.equal(d.body.data.status, 'inactive')
  assert.equal((await call(base, alice, 'POST', `/relays/${r.id}/deactivate`)).body.data.status, 'inactive')
  const a = await call(base, alice, 'POST', `/relays/${r.id}/activate`)
  assert.equal(a.status, 200, a.text)
  assert.equal(a.body.data.status, 'active')
  assert.equal((await call(base, alice, 'GET', `/relays/${r.id}`)).body.data.status, 'active')
  await call(base, alice, 'PUT', `/relays/${r.id}`, { plan: 'growth' })
  const rows = await activity(alice, r.id)
  const byType = (t) => rows.filter((x) => x.activity_type === t)
  assert.equal(byType('create_relay').length, 1)
  assert.equal(byType('create_relay')[0].status, 'active')
  assert.equal(byType('create_relay')[0].plan, 'basic')
  assert.equal(byType('deactivate_relay').length, 1, JSON.stringify(rows)) // the no-op wrote nothing
  assert.deepEqual([byType('deactivate_relay')[0].plan, byType('deactivate_relay')[0].status], ['basic', 'inactive'])
  assert.deepEqual([byType('activate_relay')[0].plan, byType('activate_relay')[0].status], ['basic', 'active'])
  assert.deepEqual([byType('update_relay')[0].plan, byType('update_relay')[0].status], ['growth', 'active'])
  for (const x of rows) {
    assert.equal(x.tenant, alice.pk)
    assert.equal(x.resource_type, 'relay')
    assert.equal(typeof x.created_at, 'number')
  }
  // newest first
  assert.equal(rows[0].activity_type, 'update_relay')
  // an admin's sync kick on an unknown relay is 404
  assert.equal((await call(base, admin, 'POST', '/relays/nonexistent/sync')).status, 404)
})

test('a delinquent relay with an overdue unpaid invoice → 422 payment-required', async () => {
  const carol = newUser()
  assert.equal((await call(base, carol, 'POST', '/tenants')).status, 201)
  const r = (await create(carol, { subdomain: sub('delq'), plan: 'basic' })).body.data
  sql(srv.dbPath, `update relay set status = 'delinquent' where id = '${r.id}'`)
  const fresh = seedInvoice(srv.dbPath, carol.pk, { relay: r.id, ageSeconds: 60 }) // within grace
  const ok = await call(base, carol, 'POST', `/relays/${r.id}/activate`)
  assert.equal(ok.status, 200, ok.text)
  assert.equal(ok.body.data.status, 'active')
  sql(srv.dbPath, `update relay set status = 'delinquent' where id = '${r.id}'; update invoice set status = 'void' where id = '${fresh}'`)
  const overdue = seedInvoice(srv.dbPath, carol.pk, { relay: r.id, ageSeconds: 8 * 86400 })
  expectErr(await call(base, carol, 'POST', `/relays/${r.id}/activate`), 422, 'payment-required')
  expectErr(await call(base, admin, 'POST', `/relays/${r.id}/activate`), 422, 'payment-required')
  assert.equal(sql(srv.dbPath, `select status from relay where id = '${r.id}'`)[0], 'delinquent')
  // deactivating is always allowed, but is no way around the payment: a paid relay stays
  // down while the overdue invoice is unpaid
  const off = await call(base, carol, 'POST', `/relays/${r.id}/deactivate`)
  assert.equal(off.status, 200, off.text)
  assert.equal(off.body.data.status, 'inactive')
  expectErr(await call(base, carol, 'POST', `/relays/${r.id}/activate`), 422, 'payment-required')
  assert.equal(sql(srv.dbPath, `select status from relay where id = '${r.id}'`)[0], 'inactive')
  // free relays are never billed: the tenant's inactive free relay can come back
  const free = (await create(carol, { subdomain: sub('delqfree') })).body.data
  assert.equal((await call(base, carol, 'POST', `/relays/${free.id}/deactivate`)).status, 200)
  assert.equal((await call(base, carol, 'POST', `/relays/${free.id}/activate`)).status, 200)
  sql(srv.dbPath, `update invoice set status = 'paid', paid_at = ${Math.floor(Date.now() / 1000)} where id = '${overdue}'`)
  const paid = await call(base, carol, 'POST', `/relays/${r.id}/activate`)
  assert.equal(paid.status, 200, paid.text)
  assert.equal(paid.body.data.status, 'active')
  // the invoice is visible with its items
  const inv = await call(base, carol, 'GET', `/invoices/${overdue}`)
  assert.equal(inv.status, 200, inv.text)
  assert.equal(inv.body.data.status, 'paid')
  assert.deepEqual(inv.body.data.items, [{ relay: r.id, plan: 'basic', hours: 1, amount: 100 }])
})

test('while an invoice is overdue no route puts a relay to work on a paid plan (422 payment-required)', async () => {
  const erin = newUser()
  assert.equal((await call(base, erin, 'POST', '/tenants')).status, 201)
  const paid = (await create(erin, { subdomain: sub('ovp'), plan: 'basic' })).body.data
  const free = (await create(erin, { subdomain: sub('ovf') })).body.data
  const overdue = seedInvoice(srv.dbPath, erin.pk, { relay: paid.id, ageSeconds: 8 * 86400 })
  // create on a paid plan; free stays possible
  expectErr(await call(base, erin, 'POST', '/relays', { subdomain: sub('ovn'), plan: 'growth' }), 422, 'payment-required')
  expectErr(await call(base, admin, 'POST', '/relays', { subdomain: sub('ovn'), plan: 'basic', tenant: erin.pk }), 422, 'payment-required')
  assert.equal((await call(base, erin, 'POST', '/relays', { subdomain: sub('ovn') })).status, 201)
  // the seen route around it: deactivate, PUT plan=free, activate, PUT plan=basic (+ blossom)
  assert.equal((await call(base, erin, 'POST', `/relays/${paid.id}/deactivate`)).status, 200)
  assert.equal((await call(base, erin, 'PUT', `/relays/${paid.id}`, { plan: 'free' })).status, 200)
  assert.equal((await call(base, erin, 'POST', `/relays/${paid.id}/activate`)).status, 200)
  expectErr(await call(base, erin, 'PUT', `/relays/${paid.id}`, { plan: 'basic', blossom_enabled: true }), 422, 'payment-required')
  expectErr(await call(base, erin, 'PUT', `/relays/${free.id}`, { plan: 'growth' }), 422, 'payment-required')
  assert.equal(sql(srv.dbPath, `select plan || ' ' || status from relay where id = '${paid.id}'`)[0], 'free active')
  // an inactive relay may change plan (activation is what is refused)
  assert.equal((await call(base, erin, 'POST', `/relays/${free.id}/deactivate`)).status, 200)
  assert.equal((await call(base, erin, 'PUT', `/relays/${free.id}`, { plan: 'basic' })).status, 200)
  expectErr(await call(base, erin, 'POST', `/relays/${free.id}/activate`), 422, 'payment-required')
  // edits that add nothing still work: a name, a feature turned off
  assert.equal((await call(base, erin, 'PUT', `/relays/${paid.id}`, { info_name: 'renamed' })).status, 200)
  // once paid, everything is allowed again
  sql(srv.dbPath, `update invoice set status = 'paid', paid_at = ${Math.floor(Date.now() / 1000)} where id = '${overdue}'`)
  assert.equal((await call(base, erin, 'PUT', `/relays/${paid.id}`, { plan: 'basic', blossom_enabled: true })).status, 200)
  assert.equal((await call(base, erin, 'POST', `/relays/${free.id}/activate`)).status, 200)
  assert.equal((await call(base, erin, 'POST', '/relays', { subdomain: sub('ovg'), plan: 'growth' })).status, 201)
})

test('CORS: preflight without auth, headers, origin echo; ALLOW_ORIGINS restricts', async () => {
  const pre = await send(base, 'OPTIONS', '/relays', { headers: { Origin: 'https://dash.test', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' } })
  assert.equal(pre.status, 204)
  assert.equal(pre.text, '')
  const methods = pre.headers.get('access-control-allow-methods')
  for (const m of ['GET', 'POST', 'PUT', 'OPTIONS']) assert.match(methods, new RegExp(`\\b${m}\\b`))
  const hdrs = pre.headers.get('access-control-allow-headers').toLowerCase()
  assert.match(hdrs, /authorization/)
  assert.match(hdrs, /content-type/)
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://dash.test')
  assert.equal((await send(base, 'OPTIONS', '/relays/x/activate')).status, 204)
  const h = await send(base, 'GET', '/healthz', { headers: { Origin: 'https://dash.test' } })
  assert.equal(h.headers.get('access-control-allow-origin'), 'https://dash.test')
  // errors carry CORS too, so a browser can read the 401
  const u = await send(base, 'GET', '/relays', { headers: { Origin: 'https://dash.test' } })
  assert.equal(u.status, 401)
  assert.equal(u.headers.get('access-control-allow-origin'), 'https://dash.test')

  const s = await startServer({ env: { ALLOW_ORIGINS: 'https://dash.example.test,https://other.example.test', LOG_LEVEL: 'warn' } })
  try {
    for (const o of ['https://dash.example.test', 'https://other.example.test']) {
      const p = await send(s.url, 'OPTIONS', '/relays', { headers: { Origin: o } })
      assert.equal(p.status, 204)
      assert.equal(p.headers.get('access-control-allow-origin'), o)
      assert.equal((await send(s.url, 'GET', '/plans', { headers: { Origin: o } })).headers.get('access-control-allow-origin'), o)
    }
    for (const o of ['https://evil.example.test', 'https://dash.example.test.evil', 'null']) {
      const p = await send(s.url, 'OPTIONS', '/relays', { headers: { Origin: o } })
      assert.equal(p.headers.get('access-control-allow-origin'), null, o)
      const g = await send(s.url, 'GET', '/plans', { headers: { Origin: o } })
      assert.equal(g.status, 200)
      assert.equal(g.headers.get('access-control-allow-origin'), null, o)
    }
  } finally {
    assert.equal(await s.stop(), 0)
  }
})

test('404, 405 with Allow, invalid JSON, 413 for a 2 MiB body', async () => {
  for (const p of ['/nope', '/relays/a/b/c', '/tenants/x/y', '/', '/healthz/x']) {
    const r = await send(base, 'GET', p)
    expectErr(r, 404, 'not-found')
  }
  const allowOf = async (m, p) => {
    const r = await send(base, m, p)
    expectErr(r, 405, 'method-not-allowed')
    return r.headers.get('allow').split(/,\s*/).sort()
  }
  assert.deepEqual(await allowOf('DELETE', '/relays'), ['GET', 'OPTIONS', 'POST'])
  assert.deepEqual(await allowOf('PATCH', '/relays/abc'), ['GET', 'OPTIONS', 'PUT'])
  assert.deepEqual(await allowOf('GET', '/relays/abc/activate'), ['OPTIONS', 'POST'])
  assert.deepEqual(await allowOf('POST', '/healthz'), ['GET', 'OPTIONS'])
  assert.deepEqual(await allowOf('PUT', '/tenants'), ['GET', 'OPTIONS', 'POST'])

  for (const raw of ['{bad', '', 'null', '[]', '"x"', '{"subdomain": "x",}']) {
    const auth = await token(alice, base + '/relays', 'POST')
    expectErr(await send(base, 'POST', '/relays', { auth, body: raw }), 400, 'invalid-json')
  }
  const rid = (await create(alice, { subdomain: sub('json'), plan: 'growth' })).body.data.id
  const pauth = await token(alice, base + `/relays/${rid}`, 'PUT')
  expectErr(await send(base, 'PUT', `/relays/${rid}`, { auth: pauth, body: '{"info_name":' }), 400, 'invalid-json')

  // 2 MiB: answered 413 from Content-Length, before the body is read
  const auth = await token(alice, base + '/relays', 'POST')
  const res = await rawExchange(srv.port, `POST /relays HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n` +
    'Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n')
  assert.match(res, /^HTTP\/1\.1 413 /)
  assert.match(res, /payload-too-large/)
  // and when the whole body is sent at once
  const big = JSON.stringify({ subdomain: 'big', info_description: 'x'.repeat(2 * 1024 * 1024) })
  let status
  try {
    status = (await send(base, 'POST', '/relays', { auth, body: big })).status
  } catch (e) { // the server may answer and close while the client is still writing
    assert.match(String(e.cause?.code), /EPIPE|ECONNRESET/, String(e))
    status = 413
  }
  assert.equal(status, 413)
  // the server is fine afterwards
  assert.equal((await send(base, 'GET', '/healthz')).status, 200)
})

function rawExchange (port, head) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    let out = ''
    const t = setTimeout(() => { sock.destroy(); resolve(out) }, 5000)
    sock.on('data', (d) => { out += d })
    sock.on('error', (e) => { clearTimeout(t); out ? resolve(out) : reject(e) })
    sock.on('close', () => { clearTimeout(t); resolve(out) })
    sock.write(head)
  })
}

test('/healthz and /plans are public', async () => {
  const h = await send(base, 'GET', '/healthz')
  assert.equal(h.status, 200)
  assert.deepEqual(h.body, { data: { status: 'ok' }, code: 'ok' })
  const p = await send(base, 'GET', '/plans')
  assert.equal(p.status, 200)
  const byId = Object.fromEntries(p.body.data.map((x) => [x.id, x]))
  assert.deepEqual(byId.free, { id: 'free', name: byId.free.name, sats: 0, members: 10, blossom: false, livekit: false, moderators: 1 })
  assert.deepEqual(byId.basic, { id: 'basic', name: byId.basic.name, sats: 10000, members: 100, blossom: true, livekit: true, moderators: 5 })
  assert.deepEqual(byId.growth, { id: 'growth', name: byId.growth.name, sats: 50000, members: null, blossom: true, livekit: true, moderators: 20 })
  const one = await send(base, 'GET', '/plans/basic')
  assert.equal(one.status, 200)
  assert.deepEqual(one.body.data, byId.basic)
  expectErr(await send(base, 'GET', '/plans/platinum'), 404, 'not-found')
  // everything else needs auth
  for (const p2 of ['/identity', '/relays', '/invoices', '/activity', '/tenants']) {
    expectErr(await send(base, 'GET', p2), 401, 'unauthorized')
  }
})

test('a 201 relay creation survives SIGKILL right after the response', async () => {
  const s = await startServer({ env: { LOG_LEVEL: 'warn' } })
  let s2
  try {
    const dave = newUser()
    assert.equal((await call(s.url, dave, 'POST', '/tenants')).status, 201)
    const created = []
    for (let i = 0; i < 3; i++) {
      const r = await call(s.url, dave, 'POST', '/relays', { subdomain: `durable-${i}`, plan: 'basic', info_name: `n${i}` })
      assert.equal(r.status, 201, r.text)
      created.push(r.body.data)
    }
    const last = await call(s.url, dave, 'PUT', `/relays/${created[0].id}`, { info_name: 'updated' })
    assert.equal(last.status, 200)
    await s.kill9()
    s2 = await s.restart()
    for (const c of created) {
      const g = await call(s2.url, dave, 'GET', `/relays/${c.id}`)
      assert.equal(g.status, 200, g.text)
      assert.equal(g.body.data.subdomain, c.subdomain)
      assert.equal(g.body.data.plan, 'basic')
    }
    assert.equal((await call(s2.url, dave, 'GET', `/relays/${created[0].id}`)).body.data.info_name, 'updated')
    assert.equal((await call(s2.url, dave, 'GET', '/identity')).body.data.is_tenant, true)
  } finally {
    await s.kill9()
    if (s2) assert.equal(await s2.stop(), 0)
  }
})
