// Several caravel instances on one PostgreSQL database and the work they share: two instances
// started together on an empty database without ROBOT_SECRET agree on one generated robot key;
// each relay change reaches zooid promptly through whichever instance, synced by one of them;
// each DM is delivered once; work claimed by an instance that dies is taken over after its
// lease. The file chooses its engine itself (PostgreSQL: it is about several instances).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { bytesToHex } from '@noble/hashes/utils'
import { startServer } from './lib/server.mjs'
import { psql, testDatabase } from './lib/postgres.mjs'
import { startRelay } from './lib/nostr-relay.mjs'
import { okCall, startZooidFor, zooidEnv } from './lib/zooid-api.mjs'
import { timeUntil as pollUntil } from './lib/wait.mjs'

useWebSocketImplementation(WebSocket)

const servers = new Set()
after(async () => {
  for (const s of servers) await s.kill9()
})

async function startPair (env) {
  const started = await Promise.allSettled([startServer({ env }), startServer({ env })])
  for (const r of started) if (r.status === 'fulfilled') servers.add(r.value) // after() stops them
  for (const r of started) if (r.status === 'rejected') throw r.reason
  return started.map((r) => r.value)
}

async function stop (s) {
  servers.delete(s)
  assert.equal(await s.stop(), 0, s.logs())
}

const npubOf = (s) => s.logs().match(/\(robot (npub1[0-9a-z]+)\)/)?.[1]

test('two instances started together on an empty database generate and keep one robot key', async () => {
  // Each round is a new empty database: both instances find no key, generate one and store it
  // in the same moment; the first INSERT wins and both read that one back.
  for (let round = 0; round < 3; round++) {
    const [a, b] = await startPair({ DATABASE_URL: await testDatabase() })
    assert.ok(npubOf(a), a.logs())
    assert.equal(npubOf(b), npubOf(a), `${a.logs()}\n----\n${b.logs()}`)
    const generated = [a, b].filter((s) => /robot key just generated/.test(s.logs())).length
    assert.equal(generated, 1, 'one instance stored its key, the other read it')
    assert.equal(psql(a.dbUrl, "SELECT count(*) FROM setting WHERE key = 'robot_secret'"), '1')
    await stop(a)
    await stop(b)
  }
})

// ---- the shared work: zooid sync and the robot outbox -------------------------------------
// Instances A and B run every worker (ZOOID_API_URL, the robot's relays); C is an API-only
// instance (no zooid, no robot relays), so what is written through C reaches zooid or a
// recipient only by waking A or B through the database. The reconcile (60 s) and the robot's
// poll (30 s) keep their production periods: a change arriving well within them was woken.
// Claims are leased for CLAIM_LEASE_MS here (production: minutes).
const CLAIM_LEASE_MS = 4000
const PROMPT_MS = 10000 // generous: a wake-up takes milliseconds, the next reconcile 60 s
const zooidKey = generateSecretKey()
const adminKey = generateSecretKey()
const tenantKey = generateSecretKey()
const robotSk = generateSecretKey()
let zooid, dbUrl, a, b, c
const nostrRelays = {}

async function relay () {
  const r = await startRelay()
  cleanups.push(() => r.stop())
  return r
}
const cleanups = []
after(async () => { for (const f of cleanups.reverse()) await f() })

async function query (url, filter) {
  const conn = await Relay.connect(url)
  const events = []
  await new Promise((resolve) => {
    const sub = conn.subscribe([filter], { onevent: (e) => events.push(e), oneose: () => { sub.close(); resolve() } })
  })
  conn.close()
  return events
}

async function publishAs (sk, url, kind, tags) {
  const r = await Relay.connect(url)
  await r.publish(finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, sk))
  r.close()
}

const ok = (s, method, p, body, sk = tenantKey) => okCall(s.url, method, p, body, sk)
const sql = (q) => psql(dbUrl, q)
const countLines = (re) => [a, b].filter(Boolean).reduce((n, s) => n + (s.logs().match(re) || []).length, 0)
// A log line arrives through a pipe, after the write the API already answers from: wait for it
// to appear, then it must be the only one.
async function oneLine (re, what) {
  await timeUntil(() => countLines(re) >= 1, what)
  assert.equal(countLines(re), 1, what)
}
const sub = (s) => `${s}-${Math.random().toString(36).slice(2, 8)}`
// API requests zooid received for a relay, as 'METHOD status'.
const zooidSaw = (id) => zooid.requests.filter((r) => r.id === id && !r.path?.endsWith('/members')).map((r) => `${r.method} ${r.status}`)

// Polls fn until truthy: the elapsed milliseconds; bounded for a takeover after a lease plus a wake-up.
const timeUntil = (fn, what, ms = PROMPT_MS + CLAIM_LEASE_MS + 20000) => pollUntil(fn, what, ms)

test('two instances with every worker and an API-only one on one database', async (t) => {
  zooid = await startZooidFor(zooidKey)
  cleanups.push(() => zooid.stop())
  const [outbox, indexer, messaging, dm] = await Promise.all([relay(), relay(), relay(), relay()])
  Object.assign(nostrRelays, { outbox, indexer, messaging, dm })
  dbUrl = await testDatabase()
  const common = {
    DATABASE_URL: dbUrl,
    ADMINS: getPublicKey(adminKey),
    RELAY_DOMAIN: 'spaces.test',
    ROBOT_SECRET: bytesToHex(robotSk),
    CARAVEL_TEST_CLAIM_LEASE_MS: String(CLAIM_LEASE_MS),
    CARAVEL_ROBOT_RETRY_BASE: '1',
    MEMBERS_REFRESH_INTERVAL: '604800' // no member-count reads among zooid's requests
  }
  const workers = {
    ...common,
    ...zooidEnv(zooid, zooidKey),
    ROBOT_OUTBOX_RELAYS: outbox.url,
    ROBOT_INDEXER_RELAYS: indexer.url,
    ROBOT_MESSAGING_RELAYS: messaging.url
  }
  ;[a, b] = await startPair(workers)
  c = await startServer({ env: common })
  servers.add(c)
  // Both listen (their first LISTEN calls back a reconcile): the logs say so at debug level
  // only, so wait for the API-only instance's write to be heard instead, below.
  await ok(c, 'POST', '/tenants', undefined)

  await t.test('every relay change made through any instance reaches zooid promptly, synced once', async () => {
    const latencies = []
    const ids = []
    for (let i = 0; i < 6; i++) {
      const via = [c, a, b][i % 3]
      const t0 = Date.now()
      const r = await ok(via, 'POST', '/relays', { subdomain: sub(`w${i}`), plan: 'basic', info_name: `R${i}` })
      ids.push(r.id)
      await timeUntil(() => zooid.configs.get(r.id)?.info?.name === `R${i}`, `relay ${i} created in zooid`)
      latencies.push(Date.now() - t0)
    }
    for (const [i, id] of ids.entries()) {
      const via = [b, c, a][i % 3]
      const t0 = Date.now()
      await ok(via, 'PUT', `/relays/${id}`, { info_name: `R${i} renamed` })
      await timeUntil(() => zooid.configs.get(id)?.info?.name === `R${i} renamed`, `relay ${i} renamed in zooid`)
      latencies.push(Date.now() - t0)
    }
    console.log(`# write -> zooid (ms): ${latencies.join(' ')}`)
    for (const ms of latencies) assert.ok(ms < PROMPT_MS, `${ms} ms: woken, not reconciled`)
    // Each change synced by one instance: one request each, one 'synced' line in the logs.
    for (const id of ids) {
      await timeUntil(async () => (await ok(a, 'GET', `/relays/${id}`, undefined, adminKey)).synced, `${id} recorded synced`)
      assert.deepEqual(zooidSaw(id), ['POST 201', 'PATCH 200'], id)
      await oneLine(new RegExp(`relay ${id} synced \\(POST\\)`, 'g'), id)
      await oneLine(new RegExp(`relay ${id} synced \\(PATCH\\)`, 'g'), id)
    }
    assert.equal(sql('SELECT count(*) FROM relay WHERE sync_owner IS NOT NULL'), '0', 'every claim let go')
  })

  await t.test('DMs queued through the database are delivered once each, the same gift wrap', async () => {
    const userSk = generateSecretKey()
    const userPk = getPublicKey(userSk)
    await publishAs(userSk, indexer.url, 10050, [['relay', dm.url]])
    // What robot_queue_dm_sql does in a writer's transaction (billing, member counts): rows,
    // then the notification other instances hear on commit ('someone' is no instance here).
    const now = Math.floor(Date.now() / 1000)
    const values = Array.from({ length: 6 }, (_, i) => `('${userPk}', 'note ${i}', ${now})`).join(', ')
    sql(`BEGIN; INSERT INTO message (recipient, body, created_at) VALUES ${values};` +
      " SELECT pg_notify('caravel_dm_queued', 'someone:0:0000000000000000 '); COMMIT")
    const elapsed = await timeUntil(() => sql("SELECT count(*) FROM message WHERE state = 'sent'") === '6', 'six DMs sent')
    console.log(`# six DMs queued -> sent: ${elapsed} ms`)
    assert.ok(elapsed < PROMPT_MS, `${elapsed} ms: woken, not the 30 s poll`)
    const wraps = sql("SELECT wrap FROM message WHERE state = 'sent' ORDER BY id").split('\n').map((w) => JSON.parse(w).id)
    const onRelay = await query(dm.url, { kinds: [1059], '#p': [userPk] })
    assert.deepEqual(onRelay.map((e) => e.id).sort(), [...wraps].sort(), 'one gift wrap per DM, the stored one')
    const ids = sql("SELECT id FROM message WHERE state = 'sent' ORDER BY id").split('\n')
    for (const id of ids) await oneLine(new RegExp(`robot: DM ${id} delivered`, 'g'), `DM ${id}`)
    assert.equal(sql('SELECT count(*) FROM message WHERE claim_owner IS NOT NULL'), '0', 'every claim let go')
  })

  await t.test('a DM claimed by an instance that died is delivered after its lease, once', async () => {
    const userSk = generateSecretKey()
    const userPk = getPublicKey(userSk)
    await publishAs(userSk, indexer.url, 10050, [['relay', dm.url]])
    // The claim a killed instance left behind (it never lets go): nobody may deliver the DM
    // before the lease ends; then one instance does.
    const until = Date.now() + CLAIM_LEASE_MS
    sql(`BEGIN; INSERT INTO message (recipient, body, created_at, claim_owner, claim_until) VALUES ('${userPk}', 'orphan', ${Math.floor(Date.now() / 1000)}, 'deadhost:1:0000000000000000', ${until});` +
      " SELECT pg_notify('caravel_dm_queued', 'someone:0:0000000000000000 '); COMMIT")
    await new Promise((resolve) => setTimeout(resolve, CLAIM_LEASE_MS / 2))
    // A read that returned before the lease's end saw the DM queued. On a loaded machine psql
    // alone can outlast the lease, so the proof that holds at any speed is the delivery's own
    // time: its log line is stamped by the same clock the lease is written in.
    const state = sql(`SELECT state FROM message WHERE recipient = '${userPk}'`)
    if (Date.now() < until) assert.equal(state, 'queued', 'not before the lease ends')
    await timeUntil(() => sql(`SELECT state FROM message WHERE recipient = '${userPk}'`) === 'sent', 'orphan DM sent')
    const id = sql(`SELECT id FROM message WHERE recipient = '${userPk}'`)
    await oneLine(new RegExp(`robot: DM ${id} delivered`, 'g'), `DM ${id}`)
    const line = [a, b].map((s) => s.logs()).join('\n').split('\n').find((l) => l.includes(`robot: DM ${id} delivered`))
    const late = Date.parse(line.split(' ')[0]) - until
    console.log(`# orphaned DM sent ${late} ms after its lease ended`)
    assert.ok(late >= 0, `delivered ${-late} ms before the lease ended: ${line}`)
    assert.ok(late < PROMPT_MS, `${late} ms after the lease`)
    const onRelay = await query(dm.url, { kinds: [1059], '#p': [userPk] })
    assert.equal(onRelay.length, 1)
    assert.equal(onRelay[0].id, JSON.parse(sql(`SELECT wrap FROM message WHERE recipient = '${userPk}'`)).id)
  })

  await t.test('kill -9 of the instance syncing a relay: the other syncs it after the lease', async () => {
    zooid.fault('hang', 1) // the first request is never answered: its instance holds the claim
    const r = await ok(c, 'POST', '/relays', { subdomain: sub('orphan'), plan: 'basic', info_name: 'Orphan' })
    await timeUntil(() => zooidSaw(r.id).length === 1, 'the hanging POST')
    const owner = sql(`SELECT sync_owner FROM relay WHERE id = '${r.id}'`)
    const pid = Number(owner.split(':')[1])
    const holder = [a, b].find((s) => s.pid === pid)
    assert.ok(holder, `the claim (${owner}) is A's or B's`)
    const survivor = holder === a ? b : a
    servers.delete(holder)
    await holder.kill9()
    if (holder === a) a = null
    else b = null
    const t0 = Date.now()
    await timeUntil(() => zooid.configs.get(r.id)?.info?.name === 'Orphan', 'taken over')
    const took = Date.now() - t0
    console.log(`# kill -9 of the claim holder -> synced by the other: ${took} ms (lease ${CLAIM_LEASE_MS} ms)`)
    assert.ok(took < CLAIM_LEASE_MS + PROMPT_MS, `${took} ms`)
    await timeUntil(async () => (await ok(survivor, 'GET', `/relays/${r.id}`, undefined, adminKey)).synced, 'recorded synced')
    assert.deepEqual(zooidSaw(r.id), ['POST 0', 'POST 201'], 'the hung POST, then the survivor\'s')
    await oneLine(new RegExp(`relay ${r.id} synced`, 'g'), `relay ${r.id} synced`)
    assert.equal(sql(`SELECT sync_owner IS NULL FROM relay WHERE id = '${r.id}'`), 't')
  })

  for (const s of [a, b, c]) if (s) await stop(s)
})
