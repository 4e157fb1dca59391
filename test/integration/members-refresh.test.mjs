// The background member-count refresh (docs/API.md, "Members"): counts come from zooid's members
// endpoint without anyone calling GET /relays/:id/members; a relay whose members outgrow its
// plan gets its owner exactly one DM (NIP-17 through the robot's outbox, delivered to the real
// test relay and unwrapped with nostr-tools), however many refreshes and restarts follow; a
// second relay over its cap gets its own; an older zooid without the endpoint (405) and a
// relay zooid no longer knows (404) are "unknown" (null), never an error in the log.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocket } from 'ws'
import { generateSecretKey, getPublicKey, finalizeEvent, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import * as nip59 from 'nostr-tools/nip59'
import { bytesToHex } from '@noble/hashes/utils'
import { startServer } from './lib/server.mjs'
import { startZooid } from './lib/zooid.mjs'
import { okCall } from './lib/zooid-api.mjs'
import { startRelay } from './lib/nostr-relay.mjs'

useWebSocketImplementation(WebSocket)

const zooidKey = generateSecretKey()
const robotKey = generateSecretKey()
const ownerKey = generateSecretKey()
const servers = []
let relay, zooid, older

const api = (c, method, p, body, sk = ownerKey) => okCall(c.url, method, p, body, sk)

async function waitFor(fn, what, ms = 60000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    assert.ok(Date.now() < end, `timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function start(z, extra = {}) {
  return startServer({
    env: {
      ZOOID_API_URL: z.url,
      ZOOID_API_SECRET: bytesToHex(zooidKey),
      RELAY_DOMAIN: 'spaces.test',
      ROBOT_SECRET: bytesToHex(robotKey),
      ROBOT_OUTBOX_RELAYS: relay.url,
      ROBOT_INDEXER_RELAYS: relay.url,
      ROBOT_MESSAGING_RELAYS: relay.url,
      CARAVEL_ROBOT_RETRY_BASE: '1',
      CARAVEL_TEST_SYNC_RETRY_MS: '100',
      MEMBERS_REFRESH_INTERVAL: '1',
      MEMBERS_REFRESH_CONCURRENCY: '2',
      ...extra,
    },
  }).then((c) => { servers.push(c); return c })
}

// The DMs the robot delivered to the owner, unwrapped and checked with nostr-tools.
async function dms() {
  const r = await Relay.connect(relay.url)
  const wraps = []
  await new Promise((resolve) => {
    const sub = r.subscribe([{ kinds: [1059], '#p': [getPublicKey(ownerKey)] }], {
      onevent: (e) => wraps.push(e),
      oneose: () => { sub.close(); resolve() },
    })
  })
  r.close()
  return wraps.map((w) => {
    assert.ok(verifyEvent(w))
    const rumor = nip59.unwrapEvent(w, ownerKey)
    assert.equal(rumor.kind, 14)
    assert.equal(rumor.pubkey, getPublicKey(robotKey))
    return rumor.content
  }).filter((t) => /members, more than/.test(t))
}

async function newRelay(c, z, plan = 'free') {
  const r = await api(c, 'POST', '/relays', { subdomain: `m${Math.random().toString(36).slice(2, 9)}`, plan, management_enabled: true })
  await waitFor(async () => (await api(c, 'GET', `/relays/${r.id}`)).synced, `relay ${r.id} synced`)
  return r
}

// n new members join on the relay itself (NIP-86 from the owner's Nostr client).
async function join(z, id, n) {
  for (let i = 0; i < n; i++) {
    const got = await z.nip86(z.configs.get(id).host, 'allowpubkey', [getPublicKey(generateSecretKey())], ownerKey)
    assert.deepEqual(got.json, { result: true })
  }
}

const count = async (c, id) => (await api(c, 'GET', `/relays/${id}`)).members_count
const reads = (z, id) => z.requests.filter((q) => q.method === 'GET' && q.path === `/relay/${id}/members`).length
const noisy = (c) => c.logs().split('\n').filter((l) => /(WARN |ERROR) .*members/.test(l))

before(async () => {
  relay = await startRelay()
  zooid = await startZooid({ whitelist: [getPublicKey(zooidKey)] })
  older = await startZooid({ whitelist: [getPublicKey(zooidKey)], membersEndpoint: false })
  // The owner's DM relays (kind 10050), so the robot can deliver to them.
  const r = await Relay.connect(relay.url)
  await r.publish(finalizeEvent({ kind: 10050, created_at: Math.floor(Date.now() / 1000), tags: [['relay', relay.url]], content: '' }, ownerKey))
  r.close()
})

after(async () => {
  for (const c of servers) await c.kill9()
  await zooid?.stop()
  await older?.stop()
  await relay?.stop()
})

test('counts refresh in the background; over the cap: one DM per relay, none again after refreshes or a restart', async () => {
  let c = await start(zooid)
  await api(c, 'POST', '/tenants')
  const a = await newRelay(c, zooid) // free: 10 members
  // Owner and the relay's own key are members; 8 joins make 10: at the cap, not over.
  await join(zooid, a.id, 8)
  await waitFor(async () => (await count(c, a.id)) === 10, 'count 10 read in the background')
  assert.equal((await api(c, 'GET', `/relays/${a.id}`)).over_member_limit, false)
  await join(zooid, a.id, 1)
  await waitFor(async () => (await count(c, a.id)) === 11, 'count 11')
  assert.equal((await api(c, 'GET', `/relays/${a.id}`)).over_member_limit, true)
  const first = await waitFor(async () => { const d = await dms(); return d.length ? d : null }, 'the over-cap DM')
  assert.equal(first.length, 1)
  assert.match(first[0], new RegExp(`${a.subdomain}\\.spaces\\.test has 11 members, more than the 10 its Free plan allows`))

  // Refreshes go on (the count follows) without another DM.
  await join(zooid, a.id, 1)
  await waitFor(async () => (await count(c, a.id)) === 12, 'count 12')
  const before = reads(zooid, a.id)
  await waitFor(() => reads(zooid, a.id) >= before + 3, 'three more refreshes')
  assert.equal((await dms()).length, 1)

  // A second relay over its cap: its own DM.
  const b = await newRelay(c, zooid)
  await join(zooid, b.id, 9)
  await waitFor(async () => (await dms()).length === 2, 'the second relay\'s DM')
  assert.match((await dms()).find((t) => t.includes(b.subdomain)), /has 11 members/)

  // Restart: the state is in the database; no DM is sent again.
  // Stopped while reads wait for a slow zooid: they are cancelled, the exit is clean.
  zooid.delayMs = 3000
  const inFlight = reads(zooid, a.id) + reads(zooid, b.id)
  await waitFor(() => reads(zooid, a.id) + reads(zooid, b.id) > inFlight, 'a read in flight')
  assert.equal(await c.stop(), 0, 'a graceful stop with a read in flight: exit 0 (ASan: no leak)')
  zooid.delayMs = 0
  c = await c.restart()
  servers.push(c)
  const afterRestart = reads(zooid, a.id) + reads(zooid, b.id)
  await waitFor(() => reads(zooid, a.id) + reads(zooid, b.id) >= afterRestart + 6, 'refreshes after the restart')
  await new Promise((r) => setTimeout(r, 1500)) // a DM queued by them would be delivered by now
  assert.equal((await dms()).length, 2)

  // Back under the cap and over again: that is a new crossing, told once more.
  for (const pk of zooid.members(a.id).slice(-3)) await zooid.nip86(zooid.configs.get(a.id).host, 'unallowpubkey', [pk], ownerKey)
  await waitFor(async () => (await count(c, a.id)) === 9, 'count 9')
  await join(zooid, a.id, 2)
  await waitFor(async () => (await dms()).length === 3, 'a DM for the new crossing')
  assert.deepEqual(noisy(c), [])
})

test('no members endpoint (405) or a relay zooid does not know (404): unknown, no error in the log', async () => {
  const c = await start(older)
  await api(c, 'POST', '/tenants')
  const x = await newRelay(c, older)
  await waitFor(() => older.requests.filter((q) => q.path === `/relay/${x.id}/members`).length >= 3, 'three reads')
  assert.ok(older.requests.filter((q) => q.path === `/relay/${x.id}/members`).every((q) => q.status === 405))
  assert.equal(await count(c, x.id), null)
  assert.equal((await api(c, 'GET', `/relays/${x.id}`)).over_member_limit, false)

  // A relay with a count that zooid stops knowing (404): the count becomes unknown.
  const d = await start(zooid)
  await api(d, 'POST', '/tenants')
  const y = await newRelay(d, zooid)
  await waitFor(async () => (await count(d, y.id)) === 2, 'counted')
  zooid.configs.delete(y.id)
  await waitFor(async () => (await count(d, y.id)) === null, 'unknown after a 404')
  const n = reads(zooid, y.id)
  await waitFor(() => reads(zooid, y.id) >= n + 3, 'reads go on')
  for (const s of [c, d]) assert.deepEqual(noisy(s), [])
})
