// GET /relays/:id/members: read through zooid's management API (GET /relay/{id}/members, signed
// with ZOOID_API_SECRET like the sync), for the owner and admins; an older zooid without the
// endpoint (it answers 405 there) or no zooid at all is "unknown" (nulls), never an error.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { startServer } from './lib/server.mjs'
import { startZooidFor, zooidEnv, apiCall, okCall } from './lib/zooid-api.mjs'

const zooidKey = generateSecretKey()
const adminKey = generateSecretKey()
const ownerKey = generateSecretKey()
const otherKey = generateSecretKey() // another tenant
const strangerKey = generateSecretKey() // signs, never a tenant
const servers = []
const zooids = []

const api = (c, method, p, body, sk = ownerKey) => apiCall(c.url, method, p, body, sk)

const ok = (c, method, p, body, sk = ownerKey) => okCall(c.url, method, p, body, sk)

// A caravel (with zooid z, or none) and a relay of the owner, synced when there is a zooid.
async function setup(z, over = {}) {
  // No background member-count read between a request and the check of zooid's last request.
  const env = { ADMINS: getPublicKey(adminKey), RELAY_DOMAIN: 'spaces.test', CARAVEL_TEST_SYNC_RETRY_MS: '100',
    MEMBERS_REFRESH_INTERVAL: '604800' }
  if (z) Object.assign(env, zooidEnv(z, zooidKey))
  const c = await startServer({ env })
  servers.push(c)
  await ok(c, 'POST', '/tenants', undefined, ownerKey)
  await ok(c, 'POST', '/tenants', undefined, otherKey)
  const r = await ok(c, 'POST', '/relays', { subdomain: `m${Math.random().toString(36).slice(2, 9)}`, plan: 'basic',
    management_enabled: true, ...over })
  if (z) {
    const end = Date.now() + 20000
    while (!(await ok(c, 'GET', `/relays/${r.id}`, undefined, adminKey)).synced) {
      assert.ok(Date.now() < end, 'relay synced')
      await new Promise((res) => setTimeout(res, 50))
    }
  }
  return { c, r }
}

before(async () => {
  for (const membersEndpoint of [true, false]) zooids.push(await startZooidFor(zooidKey, { membersEndpoint }))
})

after(async () => {
  for (const c of servers) await c.stop()
  for (const z of zooids) await z.stop()
})

test('members come from zooid for the owner and admins; others get 404, no token 401', async () => {
  const [z] = zooids
  const mod = getPublicKey(generateSecretKey())
  const { c, r } = await setup(z, { moderators: [mod] })
  const relaySelf = getPublicKey(Buffer.from(z.configs.get(r.id).secret, 'hex'))
  const got = await ok(c, 'GET', `/relays/${r.id}/members`)
  assert.deepEqual(new Set(got.members), new Set([getPublicKey(ownerKey), relaySelf, mod])) // zooid's own rule
  assert.equal(got.count, 3)
  assert.ok(Math.abs(got.fetched_at - Date.now() / 1000) < 60)
  const q = z.requests.at(-1)
  assert.deepEqual([q.method, q.path, q.status, q.pubkey], ['GET', `/relay/${r.id}/members`, 200, getPublicKey(zooidKey)])

  // Read at request time: a member who joins on the relay shows at once.
  const joiner = getPublicKey(generateSecretKey())
  assert.deepEqual((await z.nip86(z.configs.get(r.id).host, 'allowpubkey', [joiner], ownerKey)).json, { result: true })
  assert.equal((await ok(c, 'GET', `/relays/${r.id}/members`, undefined, adminKey)).count, 4)

  // The auth matrix: another tenant and a signer who is no tenant see no such relay.
  for (const [sk, status] of [[otherKey, 404], [strangerKey, 404], [null, 401]]) {
    const x = await api(c, 'GET', `/relays/${r.id}/members`, undefined, sk)
    assert.equal(x.status, status, x.text)
  }
  assert.equal((await api(c, 'GET', '/relays/nope/members')).status, 404)

  // zooid down: 502 naming what failed, never a hang or a 500.
  await z.refuse()
  try {
    const down = await api(c, 'GET', `/relays/${r.id}/members`)
    assert.equal(down.status, 502)
    assert.equal(down.json.code, 'upstream-unavailable')
    assert.match(down.json.error, new RegExp(`relay ${r.id}: zooid members failed: `))
  } finally {
    await z.accept()
  }
})

test('an older zooid without the endpoint, or no zooid: members unknown (nulls), not an error', async () => {
  const older = await setup(zooids[1])
  const a = await ok(older.c, 'GET', `/relays/${older.r.id}/members`)
  assert.deepEqual([a.count, a.members], [null, null])
  assert.equal(zooids[1].requests.at(-1).status, 405)
  const none = await setup(null)
  const b = await ok(none.c, 'GET', `/relays/${none.r.id}/members`)
  assert.deepEqual([b.count, b.members], [null, null])
})

test('a plan change below the member count is refused; a relay over its cap says so', async () => {
  const [z] = zooids
  const { c, r } = await setup(z)
  assert.equal((await ok(c, 'GET', `/relays/${r.id}`)).members_count, null) // not asked yet
  const host = z.configs.get(r.id).host
  for (let i = 0; i < 9; i++) await z.nip86(host, 'allowpubkey', [getPublicKey(generateSecretKey())], ownerKey)
  assert.equal((await ok(c, 'GET', `/relays/${r.id}/members`)).count, 11) // owner, relay, 9 joined
  const relay = await ok(c, 'GET', `/relays/${r.id}`)
  assert.deepEqual([relay.members_count, relay.over_member_limit], [11, false]) // basic: 100
  const down = await api(c, 'PUT', `/relays/${r.id}`, { plan: 'free' }) // free: 10 members
  assert.deepEqual([down.status, down.json.code], [422, 'plan-member-limit'])
  assert.match(down.json.error, /11 members, the free plan allows 10/)
  assert.equal((await ok(c, 'GET', `/relays/${r.id}`)).plan, 'basic')
  // Members leave: the next read updates the count and the downgrade goes through.
  const members = (await ok(c, 'GET', `/relays/${r.id}/members`)).members
  await z.nip86(host, 'unallowpubkey', [members.find((m) => m !== getPublicKey(ownerKey) && z.configs.get(r.id).info.pubkey !== m &&
    m !== getPublicKey(Buffer.from(z.configs.get(r.id).secret, 'hex')))], ownerKey)
  assert.equal((await ok(c, 'GET', `/relays/${r.id}/members`)).count, 10)
  assert.equal((await ok(c, 'PUT', `/relays/${r.id}`, { plan: 'free' })).plan, 'free')
})

test('a relay whose members outgrew its plan is reported over_member_limit', async () => {
  const [z] = zooids
  const { c, r } = await setup(z, { plan: 'free' })
  const host = z.configs.get(r.id).host
  for (let i = 0; i < 9; i++) await z.nip86(host, 'allowpubkey', [getPublicKey(generateSecretKey())], ownerKey)
  assert.equal((await ok(c, 'GET', `/relays/${r.id}/members`)).count, 11) // members join on the relay itself
  const relay = await ok(c, 'GET', `/relays/${r.id}`)
  assert.deepEqual([relay.members_count, relay.over_member_limit], [11, true])
})
