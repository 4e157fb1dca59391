// Authorization matrix of the JSON API (PRODUCT.md §3.2, 3.3): every route x {admin, owning tenant
// (per-request and session tokens), other tenant, no header, expired, wrong host, wrong
// method tag, bad payload hash, tampered signature} -> the status the spec gives. Every body
// is also checked for the envelope shape and searched for the relay secret and NWC secret.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { newUser, token, rawToken, sessionToken, sha256hex, call } from './lib/auth.mjs'

let srv
const admin = newUser()
const owner = newUser()
const other = newUser()
const wallet = newUser()
const nwcSecret = 'a1'.repeat(32)
const nwcUrl = `nostr+walletconnect://${wallet.pk}?relay=wss%3A%2F%2Frelay.example.com&secret=${nwcSecret}`
let relayId, relaySecret, invoiceId, n = 0
const bodies = []

function sql (q) {
  return srv.sql(q)
}

async function must (p, status) {
  const r = await p
  assert.equal(r.status, status, r.text)
  return r.body.data
}

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk, RELAY_DOMAIN: 'relays.test' } })
  await must(call(srv.url, owner, 'POST', '/tenants'), 201)
  await must(call(srv.url, other, 'POST', '/tenants'), 201)
  await must(call(srv.url, other, 'POST', '/relays', { subdomain: 'other-one' }), 201)
  relayId = (await must(call(srv.url, owner, 'POST', '/relays', { subdomain: 'owned', plan: 'basic' }), 201)).id
  relaySecret = sql(`SELECT secret FROM relay WHERE id = '${relayId}'`)
  assert.match(relaySecret, /^[0-9a-f]{64}$/)
  invoiceId = 'inv' + '0'.repeat(29)
  const now = Math.floor(Date.now() / 1000)
  sql(`INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
       VALUES ('${invoiceId}', '${owner.pk}', 5000, 'pending', ${now - 2000}, ${now - 1000}, ${now});
       INSERT INTO invoice_item(invoice, relay, plan, hours, amount) VALUES ('${invoiceId}', '${relayId}', 'basic', 12, 5000);`)
})

after(async () => { if (srv) assert.equal(await srv.stop(), 0, 'clean exit (no leak reports)') })

// Route table: method, path (function of the run), body (function), expected per role.
// Roles: admin, owner, other. 'P' marks public routes (any header, even a bad one, is fine).
const uniq = () => `s${Date.now().toString(36)}${n++}`
const routes = [
  { m: 'GET', p: () => '/healthz', pub: true },
  { m: 'GET', p: () => '/plans', pub: true },
  { m: 'GET', p: () => '/plans/basic', pub: true },
  { m: 'GET', p: () => '/identity', admin: 200, owner: 200, other: 200 },
  { m: 'GET', p: () => '/tenants', admin: 200, owner: 403, other: 403 },
  { m: 'GET', p: () => '/tenants?limit=5', admin: 200, owner: 403, other: 403 },
  { m: 'POST', p: () => '/tenants', admin: [201, 422], owner: 422, other: 422 },
  { m: 'GET', p: () => `/tenants/${owner.pk}`, admin: 200, owner: 200, other: 403 },
  { m: 'PUT', p: () => `/tenants/${owner.pk}/billing`, b: () => ({ nwc_url: nwcUrl }), admin: 200, owner: 200, other: 403 },
  { m: 'GET', p: () => '/relays', admin: 200, owner: 200, other: 200 },
  { m: 'GET', p: () => `/relays?tenant=${owner.pk}`, admin: 200, owner: 200, other: 403 },
  { m: 'POST', p: () => '/relays', b: () => ({ subdomain: uniq(), tenant: owner.pk, plan: 'growth' }), admin: 201, owner: 201, other: 403 },
  { m: 'POST', p: () => '/relays', b: () => ({ subdomain: uniq(), plan: 'growth' }), admin: [201, 422], owner: 201, other: 201 },
  { m: 'GET', p: () => `/relays/${relayId}`, admin: 200, owner: 200, other: 404 },
  { m: 'PUT', p: () => `/relays/${relayId}`, b: () => ({ info_name: 'renamed ' + n++ }), admin: 200, owner: 200, other: 404 },
  { m: 'POST', p: () => `/relays/${relayId}/deactivate`, admin: 200, owner: 200, other: 404 },
  { m: 'POST', p: () => `/relays/${relayId}/activate`, admin: 200, owner: 200, other: 404 },
  { m: 'POST', p: () => `/relays/${relayId}/sync`, admin: 200, owner: 403, other: 403 },
  { m: 'GET', p: () => '/invoices', admin: 200, owner: 200, other: 200 },
  { m: 'GET', p: () => `/invoices?tenant=${owner.pk}`, admin: 200, owner: 200, other: 403 },
  { m: 'GET', p: () => `/invoices/${invoiceId}`, admin: 200, owner: 200, other: 404 },
  { m: 'GET', p: () => '/activity', admin: 200, owner: 200, other: 200 },
  { m: 'GET', p: () => `/activity?tenant=${owner.pk}`, admin: 200, owner: 200, other: 403 }
]

const codeOf = { 401: 'unauthorized', 403: 'forbidden', 404: 'not-found' }

async function send (path, method, auth, body) {
  const headers = {}
  if (auth) headers.Authorization = auth
  let text
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; text = JSON.stringify(body) }
  const r = await fetch(srv.url + path, { method, headers, body: text })
  const out = await r.text()
  bodies.push(out)
  let json = null
  try { json = JSON.parse(out) } catch {}
  return { status: r.status, json, text: out, headers: r.headers }
}

function checkEnvelope (r, label) {
  assert.ok(r.json && typeof r.json === 'object', `${label}: JSON body: ${r.text}`)
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8', label)
  if (r.status < 300) {
    assert.equal(r.json.code, 'ok', label)
    assert.ok('data' in r.json, label)
  } else {
    assert.equal(typeof r.json.error, 'string', label)
    assert.equal(typeof r.json.code, 'string', label)
    if (codeOf[r.status]) assert.equal(r.json.code, codeOf[r.status], `${label}: ${r.text}`)
  }
}

// The caller variants: each returns the Authorization header for (path, method, body).
const nowS = () => Math.floor(Date.now() / 1000)
const variants = {
  admin: (u, m, b) => token(admin, u, m, b),
  owner: (u, m, b) => token(owner, u, m, b),
  ownerSession: () => sessionToken(owner, srv.url),
  other: (u, m, b) => token(other, u, m, b),
  none: () => undefined,
  expired: (u, m, b) => rawToken(owner, { u, method: m, payload: b === undefined ? undefined : sha256hex(JSON.stringify(b)), createdAt: nowS() - 700 }),
  wrongHost: (u, m, b) => token(owner, u.replace('127.0.0.1', 'localhost'), m, b),
  wrongMethod: (u, m, b) => token(owner, u, m === 'GET' ? 'POST' : 'GET', b),
  badPayload: (u, m) => rawToken(owner, { u, method: m, payload: sha256hex('{"something":"else"}') }),
  tampered: (u, m) => rawToken(owner, { u, method: m, tamper: true })
}

test('authorization matrix: every route x every caller', async () => {
  let checked = 0
  for (const [name, make] of Object.entries(variants)) {
    for (const r of routes) {
      const path = r.p()
      const body = r.b ? r.b() : undefined
      const auth = await make(srv.url + path, r.m, body)
      const res = await send(path, r.m, auth, body)
      const label = `${name} ${r.m} ${path}`
      const role = name === 'ownerSession' ? 'owner' : name
      let want
      if (r.pub) want = 200
      else if (role in r) want = r[role]
      else want = 401
      if (Array.isArray(want)) assert.ok(want.includes(res.status), `${label}: ${res.status} ${res.text}`)
      else assert.equal(res.status, want, `${label}: ${res.text}`)
      checkEnvelope(res, label)
      checked++
    }
  }
  assert.equal(checked, Object.keys(variants).length * routes.length)
})

test('lists only show what the caller may see', async () => {
  const mine = await must(call(srv.url, owner, 'GET', '/relays'), 200)
  assert.ok(mine.length >= 1 && mine.every((x) => x.tenant === owner.pk))
  const theirs = await must(call(srv.url, other, 'GET', '/relays'), 200)
  assert.ok(theirs.length >= 1 && theirs.every((x) => x.tenant === other.pk))
  const all = await must(call(srv.url, admin, 'GET', '/relays?limit=500'), 200)
  assert.ok(all.some((x) => x.tenant === owner.pk) && all.some((x) => x.tenant === other.pk))
  const one = await must(call(srv.url, admin, 'GET', `/relays?tenant=${other.pk}`), 200)
  assert.ok(one.every((x) => x.tenant === other.pk))
  assert.deepEqual((await must(call(srv.url, other, 'GET', '/invoices'), 200)), [])
  const acts = await must(call(srv.url, other, 'GET', '/activity'), 200)
  assert.ok(acts.length >= 2 && acts.every((a) => a.tenant === other.pk))
})

test('secrets never appear in a response or the log', async () => {
  // A few more reads that carry the relay and tenant, then search everything seen so far.
  for (const u of [admin, owner]) {
    await send(`/relays/${relayId}`, 'GET', await token(u, srv.url + `/relays/${relayId}`, 'GET'))
    await send(`/tenants/${owner.pk}`, 'GET', await token(u, srv.url + `/tenants/${owner.pk}`, 'GET'))
    await send('/relays?limit=500', 'GET', await token(u, srv.url + '/relays?limit=500', 'GET'))
  }
  assert.ok(bodies.length > 200)
  const seen = bodies.join('\n')
  assert.ok(seen.includes(relayId))
  for (const secret of [relaySecret, nwcSecret, 'walletconnect', '"secret"', '"nwc_url"']) {
    assert.ok(!seen.includes(secret), `a response contains ${secret}`)
  }
  const t = await must(call(srv.url, owner, 'GET', `/tenants/${owner.pk}`), 200)
  assert.equal(t.nwc_set, true)
  const logs = srv.logs()
  for (const secret of [relaySecret, nwcSecret, 'walletconnect', 'Nostr ey']) {
    assert.ok(!logs.includes(secret), `the log contains ${secret}`)
  }
  // Requests are logged with the caller's short pubkey.
  assert.ok(logs.includes(owner.pk.slice(0, 8)), 'request log names the caller')
})
