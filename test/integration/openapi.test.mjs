// docs/openapi.json against the running service: every route of docs/PRODUCT.md §3.3 is driven to its
// success answer and to its documented errors, and every response body must match the
// schema the document gives for that operation and status (a small OpenAPI 3.0 schema checker
// for the subset the document uses: $ref, allOf, type, nullable, enum, pattern, minimum,
// maximum, maxLength, required, properties, additionalProperties: false, items). Finally every
// operation of the document must have been seen answering 2xx. The document itself must be
// OpenAPI 3.0 (no 3.1 type arrays or const; only keywords the checker knows).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { startServer, repoRoot } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'
import { startZooid } from './lib/zooid.mjs'

const doc = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs/openapi.json'), 'utf8'))

function resolve (node) {
  while (node && node.$ref) {
    node = node.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o[k], doc)
    assert.ok(node, 'dangling $ref')
  }
  return node
}

const typeOf = (v) => v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v

// Returns a list of problems ("" path = root).
export function validate (schema, value, at = '$') {
  schema = resolve(schema)
  const errs = []
  for (const sub of schema.allOf || []) errs.push(...validate(sub, value, at))
  if (value === null) { // OpenAPI 3.0: null only where nullable: true (type and enum do not list it)
    return schema.nullable === true || (!schema.type && !schema.enum) ? errs : [...errs, `${at}: null, not nullable`]
  }
  if (schema.type) {
    const t = typeOf(value)
    if (t !== schema.type && !(t === 'integer' && schema.type === 'number')) return [...errs, `${at}: ${t}, want ${schema.type}`]
  }
  if (schema.enum && !schema.enum.includes(value)) errs.push(`${at}: ${JSON.stringify(value)} not in ${schema.enum.join(',')}`)
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) errs.push(`${at}: "${value}" !~ ${schema.pattern}`)
    if (schema.maxLength !== undefined && [...value].length > schema.maxLength) errs.push(`${at}: longer than ${schema.maxLength}`)
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errs.push(`${at}: < ${schema.minimum}`)
    if (schema.maximum !== undefined && value > schema.maximum) errs.push(`${at}: > ${schema.maximum}`)
  }
  if (typeOf(value) === 'object') {
    for (const k of schema.required || []) if (!(k in value)) errs.push(`${at}: missing ${k}`)
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties && k in schema.properties) errs.push(...validate(schema.properties[k], v, `${at}.${k}`))
      else if (schema.additionalProperties === false) errs.push(`${at}: unexpected field ${k}`)
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errs.push(...validate(schema.items, v, `${at}[${i}]`)))
  return errs
}

const seen = new Map() // "get /relays/{id}" -> set of statuses

// Checks one response against the document; returns it for chaining.
function conform (method, template, r) {
  const op = doc.paths[template]?.[method.toLowerCase()]
  assert.ok(op, `${method} ${template} is not in docs/openapi.json`)
  const resp = resolve(op.responses[String(r.status)])
  assert.ok(resp, `${method} ${template}: status ${r.status} is not documented (${r.text})`)
  const [type, media] = Object.entries(resp.content)[0]
  assert.equal(r.headers.get('content-type'), type)
  const errs = validate(media.schema, r.body)
  assert.deepEqual(errs, [], `${method} ${template} ${r.status}: ${r.text}`)
  const key = `${method.toLowerCase()} ${template}`
  if (!seen.has(key)) seen.set(key, new Set())
  seen.get(key).add(r.status)
  return r
}

async function api (user, method, template, params = {}, body, query = '') {
  const p = template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(params[k]))
  return conform(method, template, await call(srv.url, user, method, p + query, body))
}

let srv, zooid
const zooidUser = newUser()
const admin = newUser()
const alice = newUser()
const bob = newUser()
const nobody = newUser() // authenticated, never a tenant

// The test zooid serves the relays' NIP-86 endpoints (relay management routes).
before(async () => {
  zooid = await startZooid({ whitelist: [zooidUser.pk] })
  srv = await startServer({
    env: {
      ADMINS: admin.pk, RELAY_DOMAIN: 'relays.test', ZOOID_API_URL: zooid.url,
      ZOOID_API_SECRET: Buffer.from(zooidUser.sk).toString('hex'), RELAY_URL_TEMPLATE: zooid.url
    }
  })
})
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0)
  await zooid?.stop()
})

test('the checker catches shape errors', () => {
  const relay = doc.components.schemas.Relay
  assert.ok(validate(relay, { id: 'x' }).some((e) => e.includes('missing subdomain')))
  const tenant = { pubkey: 'a'.repeat(64), status: 'active', nwc_set: false, nwc_error: null, billing_anchor: null, created_at: 1 }
  assert.deepEqual(validate(doc.components.schemas.Tenant, tenant), [])
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, nwc_url: 'x' }).some((e) => e.includes('unexpected field nwc_url')))
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, status: 'gone' }).length)
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, created_at: 1.5 }).length)
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, pubkey: 'A'.repeat(64) }).length)
  assert.deepEqual(validate(doc.components.schemas.Tenant, { ...tenant, nwc_error: 'timeout', billing_anchor: 5 }), [])
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, created_at: null }).some((e) => e.includes('not nullable')))
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, status: null }).some((e) => e.includes('not nullable')))
  assert.ok(validate(doc.components.schemas.Tenant, { ...tenant, billing_anchor: 'x' }).some((e) => e.includes('want integer')))
  // Every list answer carries next: a cursor string, or null on the last page.
  for (const p of ['/relays', '/tenants', '/invoices', '/activity']) {
    const list = doc.paths[p].get.responses['200'].content['application/json; charset=utf-8'].schema
    assert.deepEqual(validate(list, { data: [], next: null, code: 'ok' }), [])
    assert.deepEqual(validate(list, { data: [], next: '17.abc', code: 'ok' }), [])
    assert.ok(validate(list, { data: [], code: 'ok' }).some((e) => e.includes('missing next')), p)
    assert.ok(validate(list, { data: [], next: 5, code: 'ok' }).some((e) => e.includes('want string')), p)
    assert.ok(doc.paths[p].get.parameters.some((x) => x.name === 'after'), `${p} documents ?after=`)
  }
})

// Two pages of one item: the first answers a string next, the second (after it) null, and a
// made-up cursor is 400. Each answer is checked against the document by api().
async function twoPages (user, template, query = '') {
  const sep = query ? '&' : '?'
  const one = await api(user, 'GET', template, {}, undefined, `${query}${sep}limit=1`)
  assert.equal(one.body.data.length, 1)
  assert.equal(typeof one.body.next, 'string')
  const two = await api(user, 'GET', template, {}, undefined, `${query}${sep}limit=1&after=${encodeURIComponent(one.body.next)}`)
  assert.equal(two.body.data.length, 1)
  assert.notDeepEqual(two.body.data[0], one.body.data[0])
  const bad = await api(user, 'GET', template, {}, undefined, `${query}${sep}after=not-a-cursor`)
  assert.equal(bad.status, 400)
  return two.body
}

// Keywords of OpenAPI 3.0 Schema Objects this document may use: the validation ones are all
// checked above (description, format, example, default are annotations).
const SCHEMA_KEYS = new Set(['$ref', 'allOf', 'type', 'nullable', 'enum', 'pattern', 'minimum', 'maximum',
  'maxLength', 'required', 'properties', 'additionalProperties', 'items', 'description', 'format', 'example', 'default'])

test('the document is OpenAPI 3.0 and its schemas use only checked keywords', () => {
  assert.match(doc.openapi, /^3\.0\.\d+$/)
  const bad = []
  const walk = (schema, at) => {
    if (!schema || typeof schema !== 'object') return
    for (const k of Object.keys(schema)) if (!SCHEMA_KEYS.has(k)) bad.push(`${at}: ${k}`)
    if (Array.isArray(schema.type)) bad.push(`${at}: type array (3.1)`)
    if (schema.type && !['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(schema.type)) bad.push(`${at}: type ${schema.type}`)
    for (const s of schema.allOf || []) walk(s, `${at}/allOf`)
    for (const [k, s] of Object.entries(schema.properties || {})) walk(s, `${at}/${k}`)
    if (schema.items) walk(schema.items, `${at}/items`)
  }
  for (const [name, s] of Object.entries(doc.components.schemas)) walk(s, `schemas/${name}`)
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      for (const [st, r] of Object.entries(op.responses)) {
        for (const media of Object.values(resolve(r).content || {})) walk(media.schema, `${m} ${p} ${st}`)
      }
      for (const media of Object.values(op.requestBody?.content || {})) walk(media.schema, `${m} ${p} body`)
      for (const prm of op.parameters || []) walk(resolve(prm).schema, `${m} ${p} ${prm.name}`)
    }
  }
  assert.deepEqual(bad, [])
})

test('public routes', async () => {
  await api(null, 'GET', '/healthz')
  const plans = await api(null, 'GET', '/plans')
  assert.deepEqual(plans.body.data.map((p) => p.id), ['free', 'basic', 'growth'])
  await api(null, 'GET', '/plans/{id}', { id: 'growth' })
  await api(null, 'GET', '/plans/{id}', { id: 'platinum' })
})

test('identity and tenants', async () => {
  await api(null, 'GET', '/identity')
  assert.equal((await api(alice, 'GET', '/identity')).body.data.is_tenant, false)
  assert.equal((await api(alice, 'POST', '/tenants', {}, {})).status, 201)
  assert.equal((await api(alice, 'POST', '/tenants', {}, {})).status, 422)
  assert.equal((await api(bob, 'POST', '/tenants', {}, {})).status, 201)
  assert.equal((await api(alice, 'GET', '/identity')).body.data.is_tenant, true)
  assert.equal((await api(admin, 'GET', '/tenants')).body.data.length, 2)
  assert.equal((await api(alice, 'GET', '/tenants')).status, 403)
  assert.equal((await api(admin, 'GET', '/tenants', {}, undefined, '?limit=0')).status, 400)
  assert.equal((await twoPages(admin, '/tenants')).next, null)
  await api(alice, 'GET', '/tenants/{pubkey}', { pubkey: alice.pk })
  assert.equal((await api(bob, 'GET', '/tenants/{pubkey}', { pubkey: alice.pk })).status, 403)
  assert.equal((await api(admin, 'GET', '/tenants/{pubkey}', { pubkey: nobody.pk })).status, 404)
  const nwc = `nostr+walletconnect://${newUser().pk}?relay=wss://relay.example&secret=${'c'.repeat(64)}`
  const set = await api(alice, 'PUT', '/tenants/{pubkey}/billing', { pubkey: alice.pk }, { nwc_url: nwc })
  assert.equal(set.body.data.nwc_set, true)
  assert.ok(!set.text.includes('c'.repeat(64)), 'the NWC secret is never returned')
  assert.equal((await api(alice, 'PUT', '/tenants/{pubkey}/billing', { pubkey: alice.pk }, { nwc_url: 'http://x' })).status, 422)
  assert.equal((await api(alice, 'PUT', '/tenants/{pubkey}/billing', { pubkey: alice.pk }, { nwc_url: 5 })).status, 400)
  assert.equal((await api(bob, 'PUT', '/tenants/{pubkey}/billing', { pubkey: alice.pk }, { nwc_url: null })).status, 403)
  assert.equal((await api(alice, 'PUT', '/tenants/{pubkey}/billing', { pubkey: alice.pk }, { nwc_url: null })).body.data.nwc_set, false)
})

let relayId
test('relays', async () => {
  const created = await api(alice, 'POST', '/relays', {}, { subdomain: 'alpha-1', plan: 'free', info_name: 'Alpha' })
  assert.equal(created.status, 201)
  relayId = created.body.data.id
  assert.equal(created.body.data.host, 'alpha-1.relays.test')
  assert.equal(created.body.data.schema, 'alpha_1')
  const fails = [
    [{ subdomain: 'www', plan: 'free' }, 'invalid-subdomain'],
    [{ subdomain: 'alpha-1', plan: 'free' }, 'subdomain-exists'],
    [{ subdomain: 'beta', plan: 'diamond' }, 'invalid-plan'],
    [{ subdomain: 'beta', plan: 'free', blossom_enabled: true }, 'plan-feature-unavailable'],
    [{ subdomain: 'beta', plan: 'free', groups_enabled: 'yes' }, 'invalid-body']
  ]
  for (const [body, code] of fails) assert.equal((await api(alice, 'POST', '/relays', {}, body)).body.code, code)
  assert.equal((await api(nobody, 'POST', '/relays', {}, { subdomain: 'gamma', plan: 'free' })).body.code, 'tenant-not-found')
  assert.equal((await api(alice, 'POST', '/relays', {}, { subdomain: 'gamma', plan: 'free', tenant: bob.pk })).status, 403)
  assert.equal((await api(admin, 'POST', '/relays', {}, { subdomain: 'bobs', plan: 'basic', tenant: bob.pk, blossom_enabled: true })).status, 201)
  assert.equal((await api(alice, 'GET', '/relays')).body.data.length, 1)
  assert.equal((await api(admin, 'GET', '/relays')).body.data.length, 2)
  assert.equal((await api(admin, 'GET', '/relays')).body.next, null)
  assert.equal((await twoPages(admin, '/relays')).next, null)
  assert.equal((await api(admin, 'GET', '/relays', {}, undefined, `?tenant=${bob.pk}`)).body.data[0].subdomain, 'bobs')
  assert.equal((await api(alice, 'GET', '/relays', {}, undefined, `?tenant=${bob.pk}`)).status, 403)
  await api(null, 'GET', '/relays')
  await api(alice, 'GET', '/relays/{id}', { id: relayId })
  assert.equal((await api(bob, 'GET', '/relays/{id}', { id: relayId })).status, 404)
  const put = await api(alice, 'PUT', '/relays/{id}', { id: relayId }, { info_description: 'about', policy_public_join: true })
  assert.equal(put.body.data.info_name, 'Alpha')
  assert.equal(put.body.data.policy_public_join, true)
  assert.equal((await api(alice, 'PUT', '/relays/{id}', { id: relayId }, { subdomain: 'bobs' })).body.code, 'subdomain-exists')
  assert.equal((await api(bob, 'PUT', '/relays/{id}', { id: relayId }, { info_name: 'x' })).status, 404)
  assert.equal((await api(alice, 'POST', '/relays/{id}/deactivate', { id: relayId })).body.data.status, 'inactive')
  assert.equal((await api(alice, 'POST', '/relays/{id}/activate', { id: relayId })).body.data.status, 'active')
  assert.equal((await api(alice, 'POST', '/relays/{id}/sync', { id: relayId })).status, 403)
  assert.equal((await api(admin, 'POST', '/relays/{id}/sync', { id: relayId })).status, 200)
  assert.equal((await api(admin, 'POST', '/relays/{id}/sync', { id: 'nope' })).status, 404)
  const wrong = await call(srv.url, alice, 'DELETE', `/relays/${relayId}`)
  conform('PUT', '/relays/{id}', wrong) // 405 is documented on every operation of the path
  assert.equal(wrong.status, 405)
})

let managedId
test('relay management over NIP-86: invites and bans', async () => {
  const r = (await api(alice, 'POST', '/relays', {}, { subdomain: 'managed', plan: 'free', management_enabled: true })).body.data
  managedId = r.id
  await zooid.waitFor(async () => (await call(srv.url, alice, 'GET', `/relays/${r.id}`)).body.data.synced, 20000, 'synced')
  const id = { id: r.id }
  const inv = await api(alice, 'POST', '/relays/{id}/invites', id, {})
  assert.equal(inv.status, 201)
  assert.equal((await api(admin, 'GET', '/relays/{id}/invites', id)).body.data.length, 1)
  await api(alice, 'DELETE', '/relays/{id}/invites/{code}', { ...id, code: inv.body.data.code })
  assert.equal((await api(alice, 'DELETE', '/relays/{id}/invites/{code}', { ...id, code: 'a b' })).status, 400)
  const pk = newUser().pk
  assert.equal((await api(alice, 'POST', '/relays/{id}/bans', id, { pubkey: pk, reason: 'spam' })).status, 201)
  assert.equal((await api(alice, 'POST', '/relays/{id}/bans', id, { pubkey: 'x' })).status, 400)
  assert.deepEqual((await api(alice, 'GET', '/relays/{id}/bans', id)).body.data, [{ pubkey: pk, reason: 'spam' }])
  await api(alice, 'DELETE', '/relays/{id}/bans/{pubkey}', { ...id, pubkey: pk })
  assert.equal((await api(alice, 'DELETE', '/relays/{id}/bans/{pubkey}', { ...id, pubkey: 'x' })).status, 400)
  assert.equal((await api(bob, 'GET', '/relays/{id}/bans', id)).status, 404)
  assert.equal((await api(null, 'GET', '/relays/{id}/bans', id)).status, 401)
  assert.equal((await api(alice, 'GET', '/relays/{id}/invites', { id: relayId })).body.code, 'management-disabled')
  await zooid.refuse()
  try {
    assert.equal((await api(alice, 'POST', '/relays/{id}/invites', id, {})).body.code, 'upstream-unavailable')
  } finally {
    await zooid.accept()
  }
})

test('relay members through zooid: owner and admin, 404 for others, 502 when zooid is down', async () => {
  const id = { id: managedId }
  const m = await api(alice, 'GET', '/relays/{id}/members', id)
  assert.equal(m.status, 200)
  assert.ok(m.body.data.members.includes(alice.pk)) // zooid makes the owner a member
  assert.equal(m.body.data.count, m.body.data.members.length)
  assert.equal((await api(admin, 'GET', '/relays/{id}/members', id)).status, 200)
  assert.equal((await api(bob, 'GET', '/relays/{id}/members', id)).status, 404)
  assert.equal((await api(null, 'GET', '/relays/{id}/members', id)).status, 401)
  assert.equal((await api(alice, 'GET', '/relays/{id}/members', { id: 'nope' })).status, 404)
  await zooid.refuse()
  try {
    assert.equal((await api(alice, 'GET', '/relays/{id}/members', id)).body.code, 'upstream-unavailable')
  } finally {
    await zooid.accept()
  }
})

test('the operator block list', async () => {
  const pk = newUser().pk
  const added = await api(admin, 'POST', '/blocklist', {}, { pubkey: pk, reason: 'abuse' })
  assert.equal(added.status, 201)
  assert.equal((await api(admin, 'POST', '/blocklist', {}, { pubkey: 'x' })).status, 400)
  assert.equal((await api(alice, 'POST', '/blocklist', {}, { pubkey: pk })).status, 403)
  assert.equal((await api(null, 'GET', '/blocklist')).status, 401)
  const list = await api(admin, 'GET', '/blocklist')
  assert.deepEqual(list.body.data.map((e) => e.pubkey), [pk])
  // The managed relay (synced, management on) gets the ban; alice's other relay has management off.
  await zooid.waitFor(async () => (await call(srv.url, admin, 'GET', '/blocklist')).body.data[0].relays_applied >= 1, 20000, 'applied')
  assert.equal((await api(alice, 'DELETE', '/relays/{id}/bans/{pubkey}', { id: managedId, pubkey: pk })).body.code, 'operator-blocked')
  assert.equal((await api(admin, 'DELETE', '/blocklist/{pubkey}', { pubkey: pk })).body.data.state, 'removed')
  assert.equal((await api(admin, 'DELETE', '/blocklist/{pubkey}', { pubkey: pk })).status, 404)
  assert.equal((await api(admin, 'DELETE', '/blocklist/{pubkey}', { pubkey: 'x' })).status, 400)
  assert.equal((await api(bob, 'GET', '/blocklist')).status, 403)
})

test('invoices (rows written the way billing writes them) and activity', async () => {
  const now = Math.floor(Date.now() / 1000)
  const sql = `BEGIN;
INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
  VALUES ('inv1', '${alice.pk}', 1403, 'pending', ${now - 3000000}, ${now - 400000}, ${now - 300000});
INSERT INTO invoice_item(invoice, relay, plan, hours, amount) VALUES ('inv1', '${relayId}', 'basic', 101, 1403);
INSERT INTO bolt11(id, invoice, bolt11, payment_hash, amount_msats, expires_at, created_at)
  VALUES ('b1', 'inv1', 'lnbc14030n1ptest', '${'d'.repeat(64)}', 1403000, ${now + 3600}, ${now - 300000});
INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at, paid_at)
  VALUES ('inv2', '${bob.pk}', 50000, 'paid', ${now - 3000000}, ${now - 400000}, ${now - 300000}, ${now - 1000});
COMMIT;`
  srv.sql(sql)
  const mine = await api(alice, 'GET', '/invoices')
  assert.deepEqual(mine.body.data.map((i) => [i.id, i.bolt11, i.amount]), [['inv1', 'lnbc14030n1ptest', 1403]])
  assert.equal((await api(admin, 'GET', '/invoices')).body.data.length, 2)
  assert.equal((await twoPages(admin, '/invoices')).next, null)
  assert.equal((await api(bob, 'GET', '/invoices', {}, undefined, `?tenant=${alice.pk}`)).status, 403)
  const one = await api(alice, 'GET', '/invoices/{id}', { id: 'inv1' })
  assert.deepEqual(one.body.data.items, [{ relay: relayId, plan: 'basic', hours: 101, amount: 1403 }])
  const paid = await api(admin, 'GET', '/invoices/{id}', { id: 'inv2' })
  assert.equal(paid.body.data.bolt11, null)
  assert.deepEqual(paid.body.data.items, [])
  assert.equal((await api(alice, 'GET', '/invoices/{id}', { id: 'inv2' })).status, 404)
  const act = await api(alice, 'GET', '/activity')
  assert.ok(act.body.data.some((a) => a.activity_type === 'create_relay' && a.resource_id === relayId))
  assert.ok(act.body.data.every((a) => a.tenant === alice.pk))
  assert.equal(act.body.next, null)
  assert.equal(typeof (await twoPages(alice, '/activity')).next, 'string') // alice has more
  await api(admin, 'GET', '/activity', {}, undefined, `?tenant=${bob.pk}`)
  assert.equal((await api(bob, 'GET', '/activity', {}, undefined, `?tenant=${alice.pk}`)).status, 403)
  await api(null, 'GET', '/activity')
})

test('every documented operation was seen answering 2xx', () => {
  const missing = []
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const m of Object.keys(ops)) {
      const st = seen.get(`${m} ${p}`)
      if (!st || ![...st].some((s) => s >= 200 && s < 300)) missing.push(`${m.toUpperCase()} ${p}`)
    }
  }
  assert.deepEqual(missing, [])
  assert.equal(seen.size, 28) // the 28 routes of docs/PRODUCT.md §3.3 (healthz and plans included)
})
