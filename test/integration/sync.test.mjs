// Zooid sync (PRODUCT.md §5) end to end: the real binary, the API driven with nostr-tools NIP-98
// tokens, and the test zooid of lib/zooid.mjs (which checks every request's NIP-98 with
// nostr-tools). Retry/reconcile timings are shortened with the test-only variables
// CARAVEL_TEST_SYNC_RETRY_MS / CARAVEL_TEST_SYNC_RECONCILE_MS (production: 30 s / 60 s).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import * as nip19 from 'nostr-tools/nip19'
import { startServer } from './lib/server.mjs'
import { startZooid } from './lib/zooid.mjs'
import { zooidEnv, apiCall, okCall } from './lib/zooid-api.mjs'
import { startProbe, percentile } from './lib/probe.mjs'

const zooidKey = generateSecretKey()
const adminKey = generateSecretKey()
const tenantKey = generateSecretKey()
let zooid
const procs = new Set()
const dirs = []

// Starts caravel (lib/server.mjs) against the test zooid, in dir (a restart reuses it).
async function startCaravel(dir, extraEnv = {}) {
  const srv = await startServer({
    dir,
    env: {
      ADMINS: getPublicKey(adminKey),
      ...zooidEnv(zooid, zooidKey),
      RELAY_DOMAIN: 'spaces.test',
      LIVEKIT_URL: 'wss://livekit.test',
      LIVEKIT_API_KEY: 'lk-key',
      LIVEKIT_API_SECRET: 'lk-secret',
      CARAVEL_TEST_SYNC_RETRY_MS: '100',
      CARAVEL_TEST_SYNC_RECONCILE_MS: '500',
      // The background member-count reads (GET /relay/{id}/members) would join the requests
      // and the concurrency counted here: a week apart, none happens during a test.
      MEMBERS_REFRESH_INTERVAL: '604800',
      ...extraEnv,
    },
  })
  procs.add(srv)
  return { ...srv, base: srv.url }
}

async function stopCaravel(c, signal = 'SIGTERM') {
  procs.delete(c)
  await (signal === 'SIGKILL' ? c.kill9() : c.stop())
}

// One API call with a per-request NIP-98 token (nostr-tools getToken, payload = the body).
const api = (c, method, p, body, sk = tenantKey) => apiCall(c.base, method, p, body, sk)
const ok = (c, method, p, body, sk = tenantKey) => okCall(c.base, method, p, body, sk)

const sub = (s) => `${s}-${Math.random().toString(36).slice(2, 8)}`
const reqsFor = (id) => zooid.requests.filter((r) => r.id === id && !r.path?.endsWith('/members'))
const relayOf = (c, id) => ok(c, 'GET', `/relays/${id}`, undefined, adminKey)
async function waitSynced(c, id, ms = 20000) {
  return zooid.waitFor(async () => {
    const r = await relayOf(c, id)
    return r.synced ? r : null
  }, ms, `relay ${id} synced`)
}

const whitelist = [getPublicKey(zooidKey)] // zooid's API_WHITELIST (a test may edit it)

before(async () => {
  zooid = await startZooid({ whitelist })
})

after(async () => {
  for (const p of procs) await p.kill9()
  await zooid?.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function tmp() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'caravel-sync-'))
  dirs.push(d)
  return d
}

test('create, update, deactivate, activate: requests and final config; secret only on POST/PUT', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const s = sub('alpha')
    const relay = await ok(c, 'POST', '/relays', { subdomain: s, plan: 'basic', info_name: 'Alpha',
      livekit_enabled: true, groups_enabled: true })
    assert.equal(relay.synced, false)
    await waitSynced(c, relay.id)
    let cfg = zooid.configs.get(relay.id)
    assert.equal(cfg.host, `${s}.spaces.test`)
    assert.equal(cfg.schema, relay.schema)
    assert.match(cfg.secret, /^[0-9a-f]{64}$/)
    assert.equal(cfg.inactive, false)
    assert.deepEqual(cfg.info, { name: 'Alpha', icon: '', pubkey: getPublicKey(tenantKey), description: '' })
    assert.deepEqual(cfg.livekit, { server_url: 'wss://livekit.test', api_key: 'lk-key', api_secret: 'lk-secret' })
    assert.deepEqual(cfg.groups, { enabled: true })
    const secret = cfg.secret

    await ok(c, 'PUT', `/relays/${relay.id}`, { info_name: 'Alpha 2', livekit_enabled: false })
    await waitSynced(c, relay.id)
    cfg = zooid.configs.get(relay.id)
    assert.equal(cfg.info.name, 'Alpha 2')
    assert.deepEqual(cfg.livekit, { server_url: '', api_key: '', api_secret: '' }) // PATCH sent livekit: null
    assert.equal(cfg.secret, secret) // never rotated

    await ok(c, 'POST', `/relays/${relay.id}/deactivate`, {})
    await waitSynced(c, relay.id)
    assert.equal(zooid.configs.get(relay.id).inactive, true)
    await ok(c, 'POST', `/relays/${relay.id}/activate`, {})
    await waitSynced(c, relay.id)
    assert.equal(zooid.configs.get(relay.id).inactive, false)

    const rs = reqsFor(relay.id)
    assert.deepEqual(rs.map((r) => `${r.method} ${r.status}`), ['POST 201', 'PATCH 200', 'PATCH 200', 'PATCH 200'])
    assert.equal(rs[0].body.secret, secret)
    for (const r of rs.slice(1)) assert.equal('secret' in r.body, false, 'PATCH carries no secret')
    for (const r of rs) assert.equal(r.pubkey, getPublicKey(zooidKey))
    assert.equal(rs.some((r) => r.method === 'DELETE'), false)

    const acts = await ok(c, 'GET', `/activity?tenant=${getPublicKey(tenantKey)}`, undefined, adminKey)
    const done = acts.filter((a) => a.resource_id === relay.id && a.activity_type === 'complete_relay_sync')
    assert.equal(done.length, 4)
  } finally {
    await stopCaravel(c)
  }
})

test('zooid down for a while: relays converge once it is back', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    await zooid.refuse()
    const ids = []
    for (let i = 0; i < 3; i++) ids.push((await ok(c, 'POST', '/relays', { subdomain: sub('down'), plan: 'free' })).id)
    await zooid.waitFor(async () => (await relayOf(c, ids[0])).sync_error, 10000, 'a sync_error')
    const r0 = await relayOf(c, ids[0])
    assert.equal(r0.synced, false)
    assert.match(r0.sync_error, /zooid POST/)
    await new Promise((r) => setTimeout(r, 500))
    await zooid.accept()
    for (const id of ids) await waitSynced(c, id)
    for (const id of ids) {
      assert.ok(zooid.configs.has(id))
      assert.equal((await relayOf(c, id)).sync_error, null)
    }
  } finally {
    await zooid.accept().catch(() => {})
    await stopCaravel(c)
  }
})

test('500 six times: sync gives up; POST /relays/:id/sync resumes it', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    zooid.fault('500')
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('five'), plan: 'free' })
    await zooid.waitFor(() => reqsFor(relay.id).length >= 6, 15000, 'six attempts')
    // Backoff 100 ms x 2^(n-1): a 7th try would come within 3.2 s; reconcile runs every 0.5 s.
    await new Promise((r) => setTimeout(r, 4000))
    assert.equal(reqsFor(relay.id).length, 6)
    const r = await relayOf(c, relay.id)
    assert.equal(r.synced, false)
    assert.match(r.sync_error, /HTTP 500/)
    zooid.fault(null)
    const forbidden = await api(c, 'POST', `/relays/${relay.id}/sync`, {}) // tenant, not admin
    assert.equal(forbidden.status, 403)
    await ok(c, 'POST', `/relays/${relay.id}/sync`, {}, adminKey)
    await waitSynced(c, relay.id)
    assert.equal(reqsFor(relay.id).length, 7)
    assert.equal(zooid.configs.get(relay.id).schema, relay.schema)
  } finally {
    zooid.fault(null)
    await stopCaravel(c)
  }
})

test('zooid failing everything: the circuit breaker stops the requests and shows in /metrics; syncs resume when zooid is back', async () => {
  const metricsPort = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port
      srv.close(() => resolve(p))
    })
  })
  const metric = async (name) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text)
    return m ? Number(m[1]) : undefined
  }
  const c = await startCaravel(tmp(), { METRICS_PORT: String(metricsPort), CARAVEL_TEST_SYNC_BREAKER_MS: '400' })
  try {
    await ok(c, 'POST', '/tenants', undefined)
    assert.equal(await metric('caravel_sync_breaker_state'), 0)
    zooid.fault('500')
    const ids = []
    for (let i = 0; i < 10; i++) ids.push((await ok(c, 'POST', '/relays', { subdomain: sub(`brk${i}`), plan: 'basic' })).id)
    await zooid.waitFor(async () => (await metric('caravel_sync_breaker_opens_total')) === 1, 10000, 'the breaker opened')
    const failed = () => zooid.requests.filter((q) => ids.includes(q.id) && q.status === 500).length
    const atOpen = failed()
    await new Promise((r) => setTimeout(r, 2000))
    // Open: what was in flight (<= 8) and one probe at 0.4 and 1.2 s. Without the breaker the
    // relays would go on retrying every 0.1-1.6 s until each has had 6 tries.
    const more = failed() - atOpen
    assert.ok(more <= 8 + 2, `${more} more requests answered 500 in the 2 s after it opened`)
    assert.notEqual(await metric('caravel_sync_breaker_state'), 0)
    zooid.fault(null)
    for (const id of ids) await waitSynced(c, id)
    assert.equal(await metric('caravel_sync_breaker_state'), 0)
    assert.equal(await metric('caravel_sync_breaker_opens_total'), 1)
    for (const id of ids) assert.equal((await relayOf(c, id)).sync_error, null)
  } finally {
    zooid.fault(null)
    await stopCaravel(c)
  }
})

test('kill -9 between zooid storing and our commit: restart converges through 409 -> PUT', async () => {
  const dir = tmp()
  let c = await startCaravel(dir)
  try {
    await ok(c, 'POST', '/tenants', undefined)
    zooid.fault('hang-after-store', 1)
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('crash'), plan: 'free', info_name: 'Before' })
    await zooid.waitFor(() => zooid.configs.has(relay.id), 10000, 'zooid stored the relay')
    await stopCaravel(c, 'SIGKILL')
    c = await startCaravel(dir)
    await waitSynced(c, relay.id)
    const rs = reqsFor(relay.id)
    assert.deepEqual(rs.map((r) => `${r.method} ${r.status}`), ['POST 201', 'POST 409', 'PUT 200'])
    assert.equal(rs[2].body.secret, rs[0].body.secret)
    const same = [...zooid.configs.values()].filter((x) => x.schema === relay.schema)
    assert.equal(same.length, 1, 'no duplicate in zooid')
    // A later change goes out as a PATCH.
    await ok(c, 'PUT', `/relays/${relay.id}`, { info_name: 'After' })
    await waitSynced(c, relay.id)
    assert.equal(reqsFor(relay.id).at(-1).method, 'PATCH')
    assert.equal(zooid.configs.get(relay.id).info.name, 'After')
  } finally {
    zooid.fault(null)
    await stopCaravel(c)
  }
})

test('1,000 relay changes in a burst converge with bounded concurrency; the API keeps answering', { timeout: 420000 }, async () => {
  const N = 1000
  const c = await startCaravel(tmp())
  try {
    // A tenant may have 50 relays on growth: 20 tenants share the burst.
    const owners = Array.from({ length: 20 }, () => generateSecretKey())
    for (const sk of owners) await ok(c, 'POST', '/tenants', undefined, sk)
    const before = zooid.requests.length
    zooid.maxConcurrent = 0
    zooid.delayMs = 20 // a zooid slower than our writes, so syncs pile up and overlap
    const probe = startProbe(`${c.base}/healthz`)
    const ids = []
    const tag = Math.random().toString(36).slice(2, 7)
    let next = 0
    const t0 = Date.now()
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < N) {
        const i = next++
        ids.push((await ok(c, 'POST', '/relays', { subdomain: `burst-${tag}-${i}`, plan: 'growth' }, owners[i % 20])).id)
      }
    }))
    const created = Date.now() - t0
    // Every relay synced (admin view, pages of 500).
    const countSynced = async () => {
      const want = new Set(ids)
      let n = 0
      for (let off = 0; ; off += 500) {
        const page = await ok(c, 'GET', `/relays?limit=500&offset=${off}`, undefined, adminKey)
        n += page.filter((r) => want.has(r.id) && r.synced).length
        if (page.length < 500) return n
      }
    }
    // A bound for "it converges", not a speed check: at load 25 the 1,000 signed POSTs alone
    // took most of the former 120 s.
    await zooid.waitFor(async () => (await countSynced()) === N, 300000, 'all relays synced')
    const converged = Date.now() - t0
    const { lat, statuses } = await probe.stop()
    zooid.delayMs = 0
    const synced = await countSynced()
    assert.ok(ids.every((id) => zooid.configs.has(id)))
    const burstReqs = zooid.requests.length - before
    console.log(`# burst: ${N} relays created in ${created} ms, all synced after ${converged} ms, zooid requests ${burstReqs}, ` +
      `max concurrent ${zooid.maxConcurrent}, /healthz (probe in its own process) p50 ${percentile(lat, 0.5).toFixed(1)} ms, ` +
      `p99 ${percentile(lat, 0.99).toFixed(1)} ms, max ${percentile(lat, 1).toFixed(1)} ms over ${lat.length} probes`)
    assert.deepEqual(statuses, { 200: lat.length }) // the API kept answering, every time
    assert.equal(synced, N)
    assert.ok(zooid.maxConcurrent <= 8, `max concurrent ${zooid.maxConcurrent}`)
    assert.ok(zooid.maxConcurrent >= 2, 'requests overlapped')
  } finally {
    await stopCaravel(c)
  }
})

test('a NIP-86 rename on the relay survives a later API change to another field; an API rename wins', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('keep'), plan: 'basic', info_name: 'Ours',
      management_enabled: true })
    await waitSynced(c, relay.id)
    const host = zooid.configs.get(relay.id).host
    // The owner renames the relay from a Nostr client, on the relay itself.
    assert.deepEqual((await zooid.nip86(host, 'changerelayname', ['Theirs'], tenantKey)).json, { result: true })
    assert.equal(zooid.configs.get(relay.id).info.name, 'Theirs')

    await ok(c, 'PUT', `/relays/${relay.id}`, { policy_public_join: true })
    await waitSynced(c, relay.id)
    assert.deepEqual(reqsFor(relay.id).at(-1).body, { policy: { public_join: true } }) // only what changed
    assert.equal(zooid.configs.get(relay.id).info.name, 'Theirs')
    assert.equal(zooid.configs.get(relay.id).policy.public_join, true)

    // A change that touches nothing zooid holds (the plan, LiveKit off either way) sends nothing.
    const n = reqsFor(relay.id).length
    await ok(c, 'PUT', `/relays/${relay.id}`, { plan: 'growth' })
    await waitSynced(c, relay.id)
    assert.equal(reqsFor(relay.id).length, n)

    // Renamed through the API: that is a change here, so it goes out.
    await ok(c, 'PUT', `/relays/${relay.id}`, { info_name: 'Ours again' })
    await waitSynced(c, relay.id)
    assert.deepEqual(reqsFor(relay.id).at(-1).body, { info: { name: 'Ours again' } })
    assert.equal(zooid.configs.get(relay.id).info.name, 'Ours again')

    // Survives a restart (the config zooid accepted is in the database).
    await stopCaravel(c)
    const c2 = await startCaravel(c.dir)
    try {
      await zooid.nip86(host, 'changerelaydescription', ['set on the relay'], tenantKey)
      await ok(c2, 'POST', `/relays/${relay.id}/deactivate`, {})
      await waitSynced(c2, relay.id)
      assert.deepEqual(reqsFor(relay.id).at(-1).body, { inactive: true })
      assert.equal(zooid.configs.get(relay.id).info.description, 'set on the relay')
    } finally {
      await stopCaravel(c2)
    }
  } finally {
    if (procs.has(c)) await stopCaravel(c)
  }
})

// A relay's zooid host or schema taken by another zooid relay (not ours): 409 "in use".
test('host in use in zooid: a permanent sync_error naming the conflict, no retries', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const s = sub('taken')
    // Another relay of this zooid (created by hand by its operator) already has the host.
    const other = { host: `${s}.spaces.test`, schema: `other_${s.replace(/-/g, '_')}`, secret: 'ab'.repeat(32),
      info: { pubkey: getPublicKey(generateSecretKey()) } }
    zooid.configs.set(`manual-${s}`, structuredClone({ ...other, inactive: false }))
    const relay = await ok(c, 'POST', '/relays', { subdomain: s, plan: 'free' })
    const r = await zooid.waitFor(async () => {
      const x = await relayOf(c, relay.id)
      return x.sync_error ? x : null
    }, 10000, 'a sync_error')
    assert.match(r.sync_error, new RegExp(`^zooid POST: HTTP 409 host "${s}\\.spaces\\.test" is already in use \\(not retried`))
    assert.equal(r.synced, false)
    await new Promise((res) => setTimeout(res, 2000)) // backoff 100 ms and reconcile 500 ms: a retry would show
    assert.deepEqual(reqsFor(relay.id).map((q) => `${q.method} ${q.status}`), ['POST 409'])
    // The conflict resolved on zooid's side, an admin resyncs: it converges.
    zooid.configs.delete(`manual-${s}`)
    await ok(c, 'POST', `/relays/${relay.id}/sync`, {}, adminKey)
    await waitSynced(c, relay.id)
    assert.deepEqual(reqsFor(relay.id).map((q) => `${q.method} ${q.status}`), ['POST 409', 'POST 201'])
  } finally {
    await stopCaravel(c)
  }
})

test('403 (key not whitelisted): no retries, a metric and one error line; fixed whitelist + admin resync converges', async () => {
  const metricsPort = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port
      srv.close(() => resolve(p))
    })
  })
  const c = await startCaravel(tmp(), { METRICS_PORT: String(metricsPort) })
  whitelist.length = 0 // zooid's API_WHITELIST no longer has our key
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('denied'), plan: 'free' })
    const r = await zooid.waitFor(async () => {
      const x = await relayOf(c, relay.id)
      return x.sync_error ? x : null
    }, 10000, 'a sync_error')
    assert.match(r.sync_error, /^zooid POST: HTTP 403 pubkey not in whitelist \(not retried: .*API_WHITELIST/)
    await new Promise((res) => setTimeout(res, 2000))
    assert.equal(reqsFor(relay.id).length, 1, 'not retried')
    const lines = c.logs().split('\n').filter((l) => l.includes(relay.id) && /\bERROR\b/.test(l))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /403 pubkey not in whitelist/)
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    assert.match(metrics, /^caravel_sync_permanent_failures_total\{status="403"\} 1$/m)

    whitelist.push(getPublicKey(zooidKey))
    await ok(c, 'POST', `/relays/${relay.id}/sync`, {}, adminKey)
    const done = await waitSynced(c, relay.id)
    assert.equal(done.sync_error, null)
    assert.deepEqual(reqsFor(relay.id).map((q) => `${q.method} ${q.status}`), ['POST 403', 'POST 201'])
  } finally {
    if (!whitelist.length) whitelist.push(getPublicKey(zooidKey))
    await stopCaravel(c)
  }
})

test('ZOOID_API_URL naming another host than API_HOST: zooid answers Not Found, a permanent sync_error says so', async () => {
  const c = await startCaravel(tmp(), { ZOOID_API_URL: `http://localhost:${zooid.port}` })
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('misrouted'), plan: 'free' })
    const r = await zooid.waitFor(async () => {
      const x = await relayOf(c, relay.id)
      return x.sync_error ? x : null
    }, 10000, 'a sync_error')
    assert.equal(r.sync_error, "zooid POST: HTTP 404 Not Found (not retried: ZOOID_API_URL must be zooid's API_HOST, with no path)")
    await new Promise((res) => setTimeout(res, 1500))
    assert.equal(zooid.requests.filter((q) => q.misrouted && q.id === relay.id).length, 1)
  } finally {
    await stopCaravel(c)
  }
})

test('moderators arrive as the zooid role "moderator" and manage the relay over NIP-86; the plan caps them', async () => {
  const c = await startCaravel(tmp())
  try {
    await ok(c, 'POST', '/tenants', undefined)
    const mod = generateSecretKey()
    const relay = await ok(c, 'POST', '/relays', { subdomain: sub('mods'), plan: 'basic', management_enabled: true,
      moderators: [nip19.npubEncode(getPublicKey(mod))] })
    assert.deepEqual(relay.moderators, [getPublicKey(mod)]) // npub in, hex out
    await waitSynced(c, relay.id)
    const cfg = zooid.configs.get(relay.id)
    assert.deepEqual(cfg.roles.moderator, { pubkeys: [getPublicKey(mod)], can_invite: true, can_manage: true })
    assert.ok(zooid.members(relay.id).includes(getPublicKey(mod)))
    // The moderator bans a pubkey on the relay itself; a stranger cannot.
    const spam = getPublicKey(generateSecretKey())
    assert.deepEqual((await zooid.nip86(cfg.host, 'banpubkey', [spam, 'spam'], mod)).json, { result: true })
    assert.equal(zooid.bans(relay.id).get(spam), 'spam')
    assert.match((await zooid.nip86(cfg.host, 'banpubkey', [spam], generateSecretKey())).json.error, /^blocked/)

    // The plan caps them (basic: 5), also when the plan changes.
    const six = Array.from({ length: 6 }, () => getPublicKey(generateSecretKey()))
    const over = await api(c, 'PUT', `/relays/${relay.id}`, { moderators: six })
    assert.deepEqual([over.status, over.json.code], [422, 'plan-moderator-limit'])
    assert.deepEqual((await ok(c, 'PUT', `/relays/${relay.id}`, { moderators: [...six.slice(0, 2), six[0]] })).moderators,
      six.slice(0, 2)) // duplicates dropped
    const down = await api(c, 'PUT', `/relays/${relay.id}`, { plan: 'free' })
    assert.deepEqual([down.status, down.json.code], [422, 'plan-moderator-limit'])
    assert.equal((await api(c, 'POST', '/relays', { subdomain: sub('mods2'), moderators: six.slice(0, 2) })).json.code,
      'plan-moderator-limit') // free: 1

    // Removed: the role's list is replaced, and the former moderator is refused on the relay.
    await ok(c, 'PUT', `/relays/${relay.id}`, { moderators: [] })
    await waitSynced(c, relay.id)
    assert.deepEqual(reqsFor(relay.id).at(-1).body, { roles: { moderator: { pubkeys: [] } } })
    assert.match((await zooid.nip86(cfg.host, 'changerelayname', ['x'], mod)).json.error, /^blocked/)
  } finally {
    await stopCaravel(c)
  }
})
