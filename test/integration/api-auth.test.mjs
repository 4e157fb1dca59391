// Authorization matrix of PRODUCT.md §3.2/3.3 against the real binary: every authenticated route ×
// {admin, owning tenant, other tenant} with nostr-tools tokens, every route × every kind of bad
// token (401), session-style tokens, PUBLIC_URL, and no response ever carrying a secret.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { newUser, token, rawToken, sessionToken, sha256hex, call } from './lib/auth.mjs'
import { send, sql, nwcUri, hex, seedInvoice } from './lib/api.mjs'

const admin = newUser()
const alice = newUser() // owns the relay and the invoice
const bob = newUser() // another tenant
const nwcSecret = hex(32)
let srv, base, relayId, invoiceId, relaySecret
const bodies = [] // every response text, checked for secrets at the end
let subSeq = 0

function record (r) {
  bodies.push(r.text)
  return r
}

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk, LOG_LEVEL: 'warn' } })
  base = srv.url
  for (const u of [alice, bob]) assert.equal((await call(base, u, 'POST', '/tenants')).status, 201)
  const r = await call(base, alice, 'POST', '/relays', { subdomain: 'alice-main', plan: 'basic' })
  assert.equal(r.status, 201, r.text)
  relayId = r.body.data.id
  relaySecret = sql(srv.dbPath, `select secret from relay where id = '${relayId}'`)[0]
  assert.match(relaySecret, /^[0-9a-f]{64}$/)
  const b = await call(base, alice, 'PUT', `/tenants/${alice.pk}/billing`, { nwc_url: nwcUri(nwcSecret) })
  assert.equal(b.status, 200, b.text)
  assert.equal(b.body.data.nwc_set, true)
  invoiceId = seedInvoice(srv.dbPath, alice.pk, { relay: relayId })
})

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, "clean exit (no sanitizer report)")
})

// Each route: the request (path, body as functions of the caller) and the status per caller.
// Statuses are PRODUCT.md §3.3's: relays/invoices of another tenant do not exist for the caller (404);
// another tenant's record is 403; admin-only routes are 403 for tenants.
const routes = [
  { m: 'GET', p: () => '/identity', st: [200, 200, 200] },
  { m: 'GET', p: () => '/tenants', st: [200, 403, 403] },
  { m: 'GET', p: () => '/tenants?limit=2', st: [200, 403, 403] },
  { m: 'POST', p: () => '/tenants', st: [201, 422, 422] }, // admin is not a tenant yet
  { m: 'GET', p: () => `/tenants/${alice.pk}`, st: [200, 200, 403] },
  { m: 'PUT', p: () => `/tenants/${alice.pk}/billing`, body: () => ({ nwc_url: nwcUri(nwcSecret) }), st: [200, 200, 403] },
  { m: 'GET', p: () => '/relays', st: [200, 200, 200] },
  { m: 'GET', p: () => `/relays?tenant=${alice.pk}`, st: [200, 200, 403] },
  { m: 'POST', p: () => '/relays', body: () => ({ subdomain: `m-${++subSeq}`, tenant: alice.pk, plan: 'growth' }), st: [201, 201, 403] },
  { m: 'GET', p: () => `/relays/${relayId}`, st: [200, 200, 404] },
  { m: 'PUT', p: () => `/relays/${relayId}`, body: () => ({ info_name: 'renamed' }), st: [200, 200, 404] },
  { m: 'POST', p: () => `/relays/${relayId}/deactivate`, st: [200, 200, 404] },
  { m: 'POST', p: () => `/relays/${relayId}/activate`, st: [200, 200, 404] },
  { m: 'POST', p: () => `/relays/${relayId}/sync`, st: [200, 403, 403] },
  { m: 'GET', p: () => '/invoices', st: [200, 200, 200] },
  { m: 'GET', p: () => `/invoices?tenant=${alice.pk}`, st: [200, 200, 403] },
  { m: 'GET', p: () => `/invoices/${invoiceId}`, st: [200, 200, 404] },
  { m: 'GET', p: () => '/activity', st: [200, 200, 200] },
  { m: 'GET', p: () => `/activity?tenant=${alice.pk}`, st: [200, 200, 403] }
]

test('every route × admin / owning tenant / other tenant', async () => {
  const callers = [['admin', admin], ['owner', alice], ['other', bob]]
  for (const [ci, [name, user]] of callers.entries()) {
    for (const rt of routes) {
      const path = rt.p()
      const r = record(await call(base, user, rt.m, path, rt.body?.()))
      assert.equal(r.status, rt.st[ci], `${name} ${rt.m} ${path}: ${r.text}`)
      const want = { 200: 'ok', 201: 'ok', 403: 'forbidden', 404: 'not-found', 422: 'pubkey-exists' }[r.status]
      assert.equal(r.body?.code, want, `${name} ${rt.m} ${path}: ${r.text}`)
      assert.match(r.headers.get('content-type'), /^application\/json/)
    }
  }
})

test('scoping: a tenant lists only its own relays, invoices and activity; an admin all', async () => {
  const own = (await call(base, alice, 'GET', '/relays')).body.data
  assert.ok(own.length >= 1 && own.every((x) => x.tenant === alice.pk))
  assert.ok(own.some((x) => x.id === relayId))
  const other = (await call(base, bob, 'GET', '/relays')).body.data
  assert.equal(other.length, 0)
  const all = (await call(base, admin, 'GET', '/relays')).body.data
  assert.ok(all.some((x) => x.id === relayId))
  assert.equal((await call(base, bob, 'GET', '/invoices')).body.data.length, 0)
  assert.ok((await call(base, alice, 'GET', '/invoices')).body.data.some((x) => x.id === invoiceId))
  const act = (await call(base, bob, 'GET', '/activity')).body.data
  assert.ok(act.length >= 1 && act.every((x) => x.tenant === bob.pk), JSON.stringify(act))
  const adminAct = (await call(base, admin, 'GET', `/activity?tenant=${alice.pk}`)).body.data
  assert.ok(adminAct.length >= 3 && adminAct.every((x) => x.tenant === alice.pk))
  const id = (await call(base, bob, 'GET', '/identity')).body.data
  assert.deepEqual(id, { pubkey: bob.pk, is_admin: false, is_tenant: true })
  const aid = (await call(base, admin, 'GET', '/identity')).body.data
  assert.equal(aid.is_admin, true)
})

// Bad tokens, made by alice for a request she could otherwise make.
function badTokens (rt, path, bodyText) {
  const url = base + path
  const now = Math.floor(Date.now() / 1000)
  const otherMethod = rt.m === 'GET' ? 'POST' : 'GET'
  const list = [
    ['no header', undefined],
    ['empty header', ''],
    ['wrong scheme', rawToken(alice, { u: url, method: rt.m }).replace('Nostr', 'Bearer')],
    ['expired', rawToken(alice, { u: url, method: rt.m, createdAt: now - 3600 })],
    ['future', rawToken(alice, { u: url, method: rt.m, createdAt: now + 3600 })],
    ['wrong host', rawToken(alice, { u: 'http://evil.example.test' + path, method: rt.m })],
    ['wrong port', rawToken(alice, { u: `http://127.0.0.1:${srv.port + 1}${path}`, method: rt.m })],
    ['wrong path', rawToken(alice, { u: base + '/identityx', method: rt.m })],
    ['wrong method tag', rawToken(alice, { u: url, method: otherMethod })],
    ['tampered', rawToken(alice, { u: url, method: rt.m, tamper: true })],
    ['wrong kind', rawToken(alice, { u: url, method: rt.m, kind: 27236 })],
    ['not base64', 'Nostr %%%notbase64%%%'],
    ['no u tag', rawToken(alice, { method: rt.m })]
  ]
  if (bodyText !== undefined) {
    list.push(['bad payload hash', rawToken(alice, { u: url, method: rt.m, payload: sha256hex(bodyText + ' ') })])
  }
  return list
}

test('every route × every bad token → 401 unauthorized', async () => {
  for (const rt of routes) {
    const path = rt.p()
    const body = rt.body?.()
    const bodyText = body === undefined ? undefined : JSON.stringify(body)
    for (const [what, auth] of badTokens(rt, path, bodyText)) {
      const r = record(await send(base, rt.m, path, { auth, body: bodyText }))
      assert.equal(r.status, 401, `${what} ${rt.m} ${path}: ${r.text}`)
      assert.equal(r.body?.code, 'unauthorized', `${what} ${rt.m} ${path}`)
    }
  }
})

test('the session-style token (u = API root, no method) works across routes and methods', async () => {
  for (const root of [base, base + '/']) {
    const auth = sessionToken(alice, root)
    const checks = [
      ['GET', '/identity', undefined, 200],
      ['GET', '/relays?limit=5', undefined, 200],
      ['GET', `/relays/${relayId}`, undefined, 200],
      ['PUT', `/relays/${relayId}`, { info_description: 'via session' }, 200],
      ['POST', '/relays', { subdomain: `sess-${++subSeq}`, plan: 'growth' }, 201],
      ['GET', `/tenants/${bob.pk}`, undefined, 403], // authenticated, just not allowed
      ['GET', `/relays/${relayId}/nope`, undefined, 404]
    ]
    for (const [m, p, body, st] of checks) {
      const r = record(await send(base, m, p, { auth, body }))
      assert.equal(r.status, st, `${root} ${m} ${p}: ${r.text}`)
    }
  }
  // a session token for another origin is refused
  const evil = sessionToken(alice, 'http://evil.example.test')
  assert.equal((await send(base, 'GET', '/identity', { auth: evil })).status, 401)
})

test('a standard token is bound to its own request', async () => {
  const auth = await token(alice, base + `/relays/${relayId}`, 'GET')
  assert.equal((await send(base, 'GET', `/relays/${relayId}`, { auth })).status, 200)
  assert.equal((await send(base, 'GET', `/relays/${relayId}`, { auth })).status, 200) // reuse within age
  assert.equal((await send(base, 'GET', '/relays', { auth })).status, 401)
  assert.equal((await send(base, 'POST', `/relays/${relayId}/deactivate`, { auth })).status, 401)
  // payload-bound token replayed with another body
  const body = { info_name: 'a' }
  const pauth = await token(alice, base + `/relays/${relayId}`, 'PUT', body)
  assert.equal((await send(base, 'PUT', `/relays/${relayId}`, { auth: pauth, body: { info_name: 'b' } })).status, 401)
  assert.equal((await send(base, 'PUT', `/relays/${relayId}`, { auth: pauth, body })).status, 200)
})

test('PUBLIC_URL: tokens name the public origin, not the direct address', async () => {
  const pub = 'https://api.example.test'
  const s = await startServer({ env: { PUBLIC_URL: pub + '/', LOG_LEVEL: 'warn' } })
  try {
    const good = await token(alice, pub + '/identity', 'GET')
    const r = record(await send(s.url, 'GET', '/identity', { auth: good }))
    assert.equal(r.status, 200, r.text)
    assert.equal(r.body.data.pubkey, alice.pk)
    const direct = await token(alice, s.url + '/identity', 'GET')
    assert.equal((await send(s.url, 'GET', '/identity', { auth: direct })).status, 401)
    assert.equal((await send(s.url, 'GET', '/identity', { auth: sessionToken(alice, pub) })).status, 200)
    assert.equal((await send(s.url, 'GET', '/identity', { auth: sessionToken(alice, s.url) })).status, 401)
    const http = await token(alice, 'http://api.example.test/identity', 'GET')
    assert.equal((await send(s.url, 'GET', '/identity', { auth: http })).status, 401)
    const post = await token(alice, pub + '/tenants', 'POST')
    assert.equal((await send(s.url, 'POST', '/tenants', { auth: post })).status, 201)
  } finally {
    assert.equal(await s.stop(), 0)
  }
})

test('no response body carries the relay secret or the NWC secret', async () => {
  assert.ok(bodies.length > 300, `checked ${bodies.length} responses`)
  // the stored NWC URL is the one set, so the check below is meaningful
  const stored = sql(srv.dbPath, `select nwc_url from tenant where pubkey = '${alice.pk}'`)[0]
  assert.ok(stored.includes(nwcSecret))
  for (const text of bodies) {
    assert.ok(!text.includes(relaySecret), 'relay secret leaked: ' + text.slice(0, 200))
    assert.ok(!text.includes(nwcSecret), 'NWC secret leaked: ' + text.slice(0, 200))
    assert.ok(!text.includes('walletconnect'), 'NWC URL leaked: ' + text.slice(0, 200))
  }
  // nor do the logs
  assert.ok(!srv.logs().includes(relaySecret))
  assert.ok(!srv.logs().includes(nwcSecret))
})
