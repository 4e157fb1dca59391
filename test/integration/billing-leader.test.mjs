// The billing leader lease (src/db/lease.c, docs/ARCHITECTURE.md "Leader lease"): two caravel
// instances on one PostgreSQL database, both with NWC_URL, the real test relay, real NIP-47 wallet
// services on a fake Lightning network that counts payments, and the fake clock to end a period.
// Exactly one instance runs billing; when the leader dies at each of the four crash points
// (CARAVEL_TEST_CRASH_AT on it: _exit at that step, as kill -9 there would), the other takes over
// within 15 s and every invoice is paid exactly once (the wallet's own record and the database).
// A leader stalled (SIGSTOP) past its lease at the worst moment, a payment attempt committed and
// its pay_invoice not sent yet, wakes up (SIGCONT) after the other took over and sends nothing.
// The lease's TTL is the default (10 s): the takeover times measured are the production ones.
// The database is a PostgreSQL one of the test's own, whatever CARAVEL_TEST_ENGINE says (one
// SQLite file serves one instance: there the process is always the leader).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { bytesToHex } from '@noble/hashes/utils'
import { startRelay } from './lib/nostr-relay.mjs'
import { sqlOn, startServer } from './lib/server.mjs'
import { testDatabase } from './lib/postgres.mjs'
import { tempDir } from './lib/lifecycle.mjs'
import { sleep, waitFor as waitUntil } from './lib/wait.mjs'
import { freePort } from './lib/nginx.mjs'
import { newUser, rawToken, sha256hex } from './lib/auth.mjs'
import { FakeLightning, startWallet } from './lib/wallet.mjs'

useWebSocketImplementation(WebSocket)
const DAY = 86400
const P = 2 * DAY // BILLING_PERIOD
const T0 = Math.floor(Date.now() / 1000) + 30 * DAY // ahead: NIP-47 expiration tags stay valid
const TAKEOVER_MS = 15000 // the promise to operators (docs/OPERATIONS.md)
const cleanups = []
const measured = []
let relay

before(async () => { relay = await startRelay() })
after(async () => {
  for (const c of cleanups.reverse()) await c()
  await relay?.stop()
  if (measured.length) console.log(`# takeover after the leader stopped: ${measured.join(', ')}`)
})

// Two instances, wallets and a relay under one test: give each wait 30 s, polled every 100 ms.
const waitFor = (fn, what, ms = 30000) => waitUntil(fn, what, ms, 100)

// One scenario's world: a fresh database, fake clock, Lightning network, platform and tenant
// wallets; instances are started with start(s, extra).
async function setup () {
  const s = { robot: generateSecretKey(), servers: [], wallets: [], dir: tempDir('caravel-leader-') }
  s.dbUrl = await testDatabase()
  s.clockFile = path.join(s.dir, 'clock')
  setClock(s, T0)
  s.ln = new FakeLightning({ clockFile: s.clockFile })
  s.platform = await startWallet({ relayUrl: relay.url, ln: s.ln })
  s.wallet = await startWallet({ relayUrl: relay.url, ln: s.ln, encryption: 'nip04' })
  s.wallets.push(s.platform, s.wallet)
  cleanups.push(async () => { for (const w of s.wallets) await w.close() }, async () => {
    for (const srv of s.servers) {
      if (process.env.BILLING_DEBUG) writeFileSync(`/tmp/billing-leader-${process.pid}-${srv.pid}.log`, srv.logs())
      try { process.kill(srv.pid, 'SIGCONT') } catch {} // a stalled one must be able to die
      await srv.kill9()
    }
  })
  return s
}
function setClock (s, t) { s.now = t; writeFileSync(s.clockFile, String(t)) }
const sql = (s, q) => sqlOn(s.dbUrl, q)

async function start (s, extra = {}) {
  const metricsPort = await freePort()
  const env = {
    DATABASE_URL: s.dbUrl,
    METRICS_PORT: String(metricsPort),
    NWC_URL: s.platform.url,
    BILLING_PERIOD: String(P), BILLING_INTERVAL: '1', BILLING_GRACE: String(DAY / 2),
    ROBOT_SECRET: bytesToHex(s.robot),
    ROBOT_OUTBOX_RELAYS: relay.url, ROBOT_INDEXER_RELAYS: relay.url, ROBOT_MESSAGING_RELAYS: relay.url,
    CARAVEL_TEST_CLOCK_FILE: s.clockFile,
    ...extra
  }
  const srv = await startServer({ env })
  srv.exited = new Promise((resolve) => {
    const at = () => resolve({ code: srv.proc.exitCode, at: Date.now() })
    if (srv.proc.exitCode !== null) at()
    else srv.proc.once('exit', at)
  })
  srv.metricsPort = metricsPort
  s.servers.push(srv)
  return srv
}

// The time (ms) of the instance's log line matching re, once it is there.
function loggedAt (srv, re) {
  const line = srv.logs().split('\n').find((l) => re.test(l))
  return line ? Date.parse(line.slice(0, 24)) : null
}
const LEADER = /lease billing: this instance .* is the leader now/
const STEPPED_DOWN = /lease billing: this instance .* stepped down/
const waitLeader = (srv) => waitFor(() => loggedAt(srv, LEADER), `instance ${srv.pid} to lead billing`)

// The instance's billing series, 'name{labels}' or 'name' -> number.
async function metrics (srv) {
  const text = await (await fetch(`http://127.0.0.1:${srv.metricsPort}/metrics`)).text()
  const out = {}
  for (const m of text.matchAll(/^(caravel_billing_\w+(?:\{[^}]*\})?) (\d+)$/gm)) out[m[1]] = Number(m[2])
  return out
}

async function api (s, srv, user, method, p, body) {
  const url = srv.url + p
  const text = body === undefined ? undefined : JSON.stringify(body)
  const headers = { Authorization: rawToken(user, { u: url, method, payload: text && sha256hex(text), createdAt: s.now }) }
  if (text) headers['Content-Type'] = 'application/json'
  const r = await fetch(url, { method, headers, body: text })
  const json = await r.json()
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(json)}`)
  return json.data
}

// A tenant with a paid relay since T0 and (withWallet) the tenant wallet as its NWC URL, through srv.
async function tenant (s, srv, withWallet = true) {
  const u = newUser()
  const r = await Relay.connect(relay.url)
  await r.publish(finalizeEvent({ kind: 10050, created_at: Math.floor(Date.now() / 1000), tags: [['relay', relay.url]], content: '' }, u.sk))
  r.close()
  await api(s, srv, u, 'POST', '/tenants', {})
  await api(s, srv, u, 'POST', '/relays', { subdomain: `l${bytesToHex(generateSecretKey()).slice(0, 12)}`, plan: 'basic' })
  if (withWallet) await api(s, srv, u, 'PUT', `/tenants/${u.pk}/billing`, { nwc_url: s.wallet.url })
  return u
}

const payRequests = (w) => w.requests.filter((r) => r.method === 'pay_invoice')
const totalPaid = (ln) => [...ln.payments.values()].reduce((a, b) => a + b, 0)

// Leader a (started first, with its extra settings) and standby b, a tenant due for collection.
async function leaderAndStandby (extraA) {
  const s = await setup()
  const a = await start(s, extraA)
  await waitLeader(a)
  const b = await start(s)
  await waitFor(() => /lease billing: standby as/.test(b.logs()), 'b to stand by')
  const u = await tenant(s, a)
  assert.equal((await metrics(a)).caravel_billing_leader, 1)
  assert.equal((await metrics(b)).caravel_billing_leader, 0)
  assert.equal(loggedAt(b, LEADER), null)
  return { s, a, b, u }
}

// Exactly one payment, through exactly one pay_invoice, recorded once in the database.
async function paidOnce (s) {
  await waitFor(() => sql(s, "SELECT status FROM invoice") === 'paid', () => `the invoice paid (${sql(s, 'SELECT status FROM invoice')})`)
  await sleep(1500) // more runs (every second): nothing is paid again
  assert.equal(sql(s, 'SELECT COUNT(*) FROM invoice'), '1')
  assert.equal(totalPaid(s.ln), 1)
  for (const n of s.ln.payments.values()) assert.equal(n, 1)
  assert.equal(payRequests(s.wallet).length, 1)
  assert.equal(sql(s, "SELECT COUNT(*) FROM payment_attempt WHERE state = 'paid'"), '1')
  assert.equal(sql(s, "SELECT COUNT(*) FROM payment_attempt WHERE state = 'pending'"), '0')
}

for (const at of ['before_attempt', 'after_attempt', 'after_pay_sent', 'after_answer']) {
  test(`the leader dies at ${at}: the standby takes over within 15 s, the invoice is paid exactly once`, async () => {
    const { s, a, b } = await leaderAndStandby({ CARAVEL_TEST_CRASH_AT: at })
    setClock(s, T0 + P + 1) // the period ends: a invoices and collects, and dies at `at`
    const died = await a.exited
    assert.equal(died.code, 97)
    // An attempt committed but never sent stays pending until its BOLT11 expires (a day).
    if (at === 'after_attempt') setClock(s, T0 + P + 1 + DAY + 60)
    const led = await waitLeader(b)
    measured.push(`${at} ${led - died.at} ms`)
    assert.ok(led - died.at < TAKEOVER_MS, `takeover after ${led - died.at} ms`)
    assert.equal((await metrics(b)).caravel_billing_leader, 1)
    await paidOnce(s)
    assert.equal(await b.stop(), 0)
  })
}

test('a leader stalled past its lease between the attempt and pay_invoice sends nothing when it wakes up', async () => {
  const { s, a, b } = await leaderAndStandby({ CARAVEL_TEST_PAUSE_AT: 'after_attempt' })
  setClock(s, T0 + P + 1)
  await waitFor(() => /PAUSE_AT=after_attempt: stopping/.test(a.logs()), 'a to stall after committing its attempt')
  const stalled = loggedAt(a, /PAUSE_AT=after_attempt: stopping/)
  const led = await waitLeader(b)
  measured.push(`stalled leader ${led - stalled} ms`)
  assert.ok(led - stalled < TAKEOVER_MS, `takeover after ${led - stalled} ms`)
  const attempt = sql(s, "SELECT b.bolt11 FROM payment_attempt a JOIN bolt11 b ON b.id = a.bolt11 WHERE a.state = 'pending'")
  assert.ok(attempt.startsWith('lnbc'), attempt)
  // b finds the open attempt, looks it up (unsettled) and does not pay it.
  await waitFor(() => s.platform.requests.some((r) => r.method === 'lookup_invoice'), 'b to look the attempt up')
  process.kill(a.pid, 'SIGCONT')
  await waitFor(() => loggedAt(a, STEPPED_DOWN), 'a to step down')
  await sleep(3000) // a's timers, renewals and the rest of its chain have run
  assert.equal(payRequests(s.wallet).length, 0, 'the stalled leader sent its pay_invoice')
  const am = await metrics(a)
  assert.equal(am['caravel_billing_wallet_requests_total{method="pay_invoice"}'], undefined)
  assert.equal(am.caravel_billing_leader, 0)
  assert.equal(sql(s, "SELECT state FROM payment_attempt"), 'pending') // a wrote nothing
  // Past the BOLT11's expiry the leader replaces it and collects the new one, once.
  setClock(s, T0 + P + 1 + DAY + 60)
  await paidOnce(s)
  assert.notEqual(payRequests(s.wallet)[0].params.invoice, attempt)
  assert.equal(am['caravel_billing_wallet_requests_total{method="pay_invoice"}'], undefined)
  assert.equal(await a.stop(), 0)
  assert.equal(await b.stop(), 0)
})

test('a leader that stops hands over at once; a standby never bills', async () => {
  const { s, a, b } = await leaderAndStandby({})
  assert.equal((await metrics(b)).caravel_billing_runs_total, undefined) // b never ran
  const stoppedAt = Date.now()
  assert.equal(await a.stop(), 0)
  assert.ok(/released the lease/.test(a.logs()))
  const led = await waitLeader(b)
  measured.push(`graceful stop ${led - stoppedAt} ms`)
  assert.ok(led - stoppedAt < 5000, `takeover after ${led - stoppedAt} ms`)
  setClock(s, T0 + P + 1)
  await paidOnce(s)
  assert.equal(await b.stop(), 0)
})

test('a tenant who sets a wallet through the standby is collected by the leader at once', async () => {
  const s = await setup()
  const a = await start(s)
  await waitLeader(a)
  const b = await start(s)
  await waitFor(() => /lease billing: standby as/.test(b.logs()), 'b to stand by')
  const u = await tenant(s, b, false)
  setClock(s, T0 + P + 1) // a invoices and DMs the BOLT11: the next collection is a day away
  await waitFor(() => sql(s, 'SELECT COUNT(*) FROM invoice WHERE last_collect_at IS NOT NULL') === '1', 'the BOLT11 DM')
  await api(s, b, u, 'PUT', `/tenants/${u.pk}/billing`, { nwc_url: s.wallet.url }) // through b, same day
  await paidOnce(s) // a heard b (LISTEN/NOTIFY) and collected at once, not a day later
  assert.ok(/paid through the tenant's wallet/.test(a.logs()))
  assert.equal((await metrics(b)).caravel_billing_runs_total, undefined)
  assert.equal(await a.stop(), 0)
  assert.equal(await b.stop(), 0)
})
