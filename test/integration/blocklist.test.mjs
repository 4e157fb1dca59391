// The operator-wide block list (docs/API.md, "Block list") end to end: an entry reaches every
// active relay through NIP-86 banpubkey signed as the relay (the test zooid checks it as
// khatru does), including a relay that was down when it was added and a relay created after;
// removing it lifts every ban with allowpubkey; the operator's ban wins over a tenant's allow;
// kill -9 in the middle of a rollout, restart: every relay banned, none twice.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { startServer } from './lib/server.mjs'
import { startZooidFor, zooidEnv, apiCall, okCall } from './lib/zooid-api.mjs'

const zooidKey = generateSecretKey()
const adminKey = generateSecretKey()
const ownerKey = generateSecretKey()
const otherKey = generateSecretKey()
const strangerKey = generateSecretKey()
const N = 50
let zooid, c
const relays = []

const api = (method, p, body, sk = adminKey) => apiCall(c.url, method, p, body, sk)

const ok = (method, p, body, sk = adminKey) => okCall(c.url, method, p, body, sk)

const sub = () => `b${Math.random().toString(36).slice(2, 10)}`
async function newRelay() {
  // A tenant may have 50 relays on growth and 10 on basic.
  const plan = relays.length < 45 ? 'growth' : 'basic'
  const r = await ok('POST', '/relays', { subdomain: sub(), plan, management_enabled: true }, ownerKey)
  relays.push(r)
  return r
}
const synced = (ids) => zooid.waitFor(() => ids.every((id) => zooid.configs.has(id)), 30000, 'relays in zooid')
const bannedOn = (pk) => relays.filter((r) => zooid.configs.has(r.id) && zooid.bans(r.id).has(pk))
const bansOf = (pk, id) => zooid.rpcs.filter((x) => x.id === id && x.method === 'banpubkey' && x.params?.[0] === pk && x.status === 200 && x.result === true)

async function start(extra = {}) {
  return startServer({
    dir: c?.dir,
    env: {
      ADMINS: getPublicKey(adminKey),
      ...zooidEnv(zooid, zooidKey),
      RELAY_DOMAIN: 'spaces.test',
      RELAY_URL_TEMPLATE: zooid.url,
      CARAVEL_TEST_SYNC_RETRY_MS: '100',
      CARAVEL_TEST_BLOCKLIST_RETRY_MS: '100',
      BLOCKLIST_CONCURRENCY: '8',
      ...extra,
    },
  })
}

before(async () => {
  zooid = await startZooidFor(zooidKey)
  c = await start()
  await ok('POST', '/tenants', undefined, ownerKey)
  await ok('POST', '/tenants', undefined, otherKey)
  for (let i = 0; i < N; i++) await newRelay()
  await synced(relays.map((r) => r.id))
})

after(async () => {
  await c?.kill9()
  await zooid?.stop()
})

test('auth matrix: admin only; tenants and non-tenants 403; no token 401', async () => {
  const pk = getPublicKey(generateSecretKey())
  const routes = [['GET', '/blocklist', undefined], ['POST', '/blocklist', { pubkey: pk }], ['DELETE', `/blocklist/${pk}`, undefined]]
  for (const [m, p, body] of routes) {
    const got = []
    for (const sk of [ownerKey, otherKey, strangerKey, null]) got.push((await api(m, p, body, sk)).status)
    assert.deepEqual(got, [403, 403, 403, 401], `${m} ${p}`)
  }
  assert.equal((await api('POST', '/blocklist', { pubkey: 'nope' })).json.code, 'invalid-pubkey')
  assert.equal((await api('POST', '/blocklist', { pubkey: pk, reason: 7 })).status, 400)
  assert.equal((await api('DELETE', `/blocklist/${pk}`)).status, 404)
})

test('an entry reaches 50 relays (one down meanwhile, one created after), wins over a tenant allow, and is lifted everywhere', async () => {
  const target = getPublicKey(generateSecretKey())
  // A tenant explicitly allowed it on one relay first: the operator's ban still applies there.
  const allowed = relays[3]
  await ok('DELETE', `/relays/${allowed.id}/bans/${target}`, undefined, ownerKey)
  assert.ok(zooid.members(allowed.id).includes(target))

  const down = relays[7]
  zooid.configs.get(down.id).inactive = true // zooid stops serving it: calls to it fail
  const added = await api('POST', '/blocklist', { pubkey: target, reason: 'abuse' })
  assert.equal(added.status, 201, added.text)
  assert.equal(added.json.data.state, 'active')
  assert.equal(added.json.data.reason, 'abuse')
  assert.equal(added.json.data.relays_pending, N)
  await zooid.waitFor(() => bannedOn(target).length === N - 1, 30000, '49 relays banned')
  assert.ok(!zooid.bans(down.id).has(target))
  assert.equal(zooid.bans(allowed.id).get(target), 'abuse')
  // A relay's ban is recorded after zooid applied it: wait for the records, not only the bans.
  const progress = await zooid.waitFor(async () => {
    const e = (await ok('GET', '/blocklist')).find((x) => x.pubkey === target)
    return e.relays_failing === 1 && e.relays_applied === N - 1 ? e : null
  }, 10000, 'the down relay reported')
  assert.equal(progress.relays_applied, N - 1)
  assert.equal(progress.relays_pending, 1)
  assert.match(progress.last_error, /HTTP 404/)
  // The signer of every ban is the relay itself.
  const rpc = zooid.rpcs.find((x) => x.id === relays[0].id && x.method === 'banpubkey' && x.params[0] === target)
  assert.equal(rpc.pubkey, getPublicKey(Buffer.from(zooid.configs.get(relays[0].id).secret, 'hex')))

  zooid.configs.get(down.id).inactive = false // back: the retry reaches it
  await zooid.waitFor(() => zooid.bans(down.id).has(target), 30000, 'the relay that was down banned')

  // A tenant cannot lift the operator's ban on its relay.
  const refused = await api('DELETE', `/relays/${relays[0].id}/bans/${target}`, undefined, ownerKey)
  assert.deepEqual([refused.status, refused.json.code], [409, 'operator-blocked'])

  const late = await newRelay()
  await zooid.waitFor(() => zooid.configs.has(late.id) && zooid.bans(late.id).has(target), 30000, 'a relay created after banned')
  assert.equal(bannedOn(target).length, N + 1)
  // zooid has the ban as soon as it answers; the worker records it a write later.
  const entry = await zooid.waitFor(async () => {
    const e = (await ok('GET', '/blocklist')).find((x) => x.pubkey === target)
    return e.relays_pending === 0 ? e : null
  }, 10000, 'the late relay recorded as applied')
  assert.deepEqual([entry.relays_applied, entry.relays_pending], [N + 1, 0])

  const removed = await ok('DELETE', `/blocklist/${target}`)
  assert.equal(removed.state, 'removed')
  await zooid.waitFor(() => bannedOn(target).length === 0, 30000, 'every ban lifted')
  await zooid.waitFor(async () => !(await ok('GET', '/blocklist')).some((x) => x.pubkey === target), 10000, 'entry gone')
  const lifts = zooid.rpcs.filter((x) => x.method === 'allowpubkey' && x.params?.[0] === target && x.status === 200)
  assert.equal(new Set(lifts.map((x) => x.id)).size, N + 1)

  const acts = await ok('GET', `/activity?tenant=${getPublicKey(adminKey)}`)
  assert.ok(acts.some((a) => a.activity_type === 'block_pubkey' && a.resource_id === target && a.resource_type === 'blocklist'))
  assert.ok(acts.some((a) => a.activity_type === 'unblock_pubkey' && a.resource_id === target))
})

// The block list reaches a relay only once zooid serves it, i.e. after the sync; the API must
// still not report the relay synced before it holds every entry (slow NIP-86 answers widen the
// window a premature "synced" would show in).
async function firstSynced(id) {
  const end = Date.now() + 30000
  for (;;) {
    const r = await ok('GET', `/relays/${id}`, undefined, ownerKey)
    if (r.synced) return r
    assert.ok(Date.now() < end, `relay ${id} synced`)
    await new Promise((res) => setTimeout(res, 15))
  }
}

test('a new or reactivated relay is reported synced only once it holds every block-list entry', async () => {
  const targets = [0, 1, 2].map(() => getPublicKey(generateSecretKey()))
  for (const pk of targets) await ok('POST', '/blocklist', { pubkey: pk, reason: 'spam' })
  await zooid.waitFor(() => targets.every((pk) => bannedOn(pk).length === relays.length), 60000, 'entries rolled out')
  zooid.rpcDelayMs = 300
  try {
    const fresh = await newRelay()
    assert.equal(fresh.synced, false)
    await firstSynced(fresh.id)
    assert.deepEqual(targets.filter((pk) => !zooid.bans(fresh.id).has(pk)), [], 'every entry banned when first reported synced')

    // Deactivated, an entry added meanwhile, reactivated: synced again only with that entry too.
    await ok('POST', `/relays/${fresh.id}/deactivate`, undefined, ownerKey)
    await zooid.waitFor(() => zooid.configs.get(fresh.id)?.inactive, 30000, 'zooid stopped serving it')
    const later = getPublicKey(generateSecretKey())
    await ok('POST', '/blocklist', { pubkey: later, reason: 'spam' })
    const back = await ok('POST', `/relays/${fresh.id}/activate`, undefined, ownerKey)
    assert.equal(back.synced, false)
    await firstSynced(fresh.id)
    assert.ok(zooid.bans(fresh.id).has(later), 'the entry added while it was inactive is banned when reported synced')
    targets.push(later)
  } finally {
    zooid.rpcDelayMs = 0
  }
  for (const pk of targets) await ok('DELETE', `/blocklist/${pk}`)
  await zooid.waitFor(() => targets.every((pk) => bannedOn(pk).length === 0), 60000, 'lifted again')
})

test('kill -9 during a rollout, restart: every relay banned; only calls in flight at the kill are sent again', async () => {
  const target = getPublicKey(generateSecretKey())
  zooid.rpcDelayMs = 40 // a rollout long enough to be interrupted
  try {
    await ok('POST', '/blocklist', { pubkey: target, reason: 'spam' })
    await zooid.waitFor(() => bannedOn(target).length >= 10, 30000, 'rollout under way')
    await c.kill9()
    await new Promise((r) => setTimeout(r, 200)) // calls that were in flight land meanwhile
    const atKill = bannedOn(target).length
    assert.ok(atKill < relays.length, `the kill came mid-rollout (${atKill} of ${relays.length})`)
    c = await start()
    await zooid.waitFor(() => bannedOn(target).length === relays.length, 30000, 'every relay banned after restart')
    // A relay is sent the ban again only if its answer was not recorded before the kill: at
    // most the calls in flight then (BLOCKLIST_CONCURRENCY); it holds one ban either way.
    const twice = relays.filter((r) => bansOf(target, r.id).length > 1)
    assert.ok(twice.length <= 8, `${twice.length} relays were sent the ban twice`)
    for (const r of relays) assert.ok(bansOf(target, r.id).length >= 1, r.id)
    // zooid has the bans as soon as it answers; the worker records them a write later (the
    // relays re-sent their ban after the restart answer in the last round as often as not).
    const entry = await zooid.waitFor(async () => {
      const e = (await ok('GET', '/blocklist')).find((x) => x.pubkey === target)
      return e.relays_pending === 0 ? e : null
    }, 10000, 'every ban recorded')
    assert.deepEqual([entry.relays_applied, entry.relays_pending], [relays.length, 0])
  } finally {
    zooid.rpcDelayMs = 0
  }
})
