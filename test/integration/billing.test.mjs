// Billing end to end (PRODUCT.md §7, 8): the real caravel binary, the real test relay, real NIP-47
// wallet services (@getalby/sdk) on a fake Lightning network that counts payments, and the
// fake clock (CARAVEL_TEST_CLOCK_FILE) to move through periods. Tenants, relays and NWC URLs
// go through the HTTP API (NIP-98 tokens made by nostr-tools, dated by the fake clock);
// the robot delivers its DMs to the test relay, where nostr-tools unwraps them.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import * as nip59 from 'nostr-tools/nip59'
import { bytesToHex } from '@noble/hashes/utils'
import { startRelay } from './lib/nostr-relay.mjs'
import { databaseUrlOf, sqlOn, startServer } from './lib/server.mjs'
import { freePort } from './lib/nginx.mjs'
import { newUser, rawToken, sha256hex } from './lib/auth.mjs'
import { FakeLightning, startWallet } from './lib/wallet.mjs'

useWebSocketImplementation(WebSocket)
const DAY = 86400
// Longer than the day between collections and the BOLT11 expiry, so moving the clock a day
// stays inside one period; the grace is shorter than that day.
const P = 2 * DAY // BILLING_PERIOD
const GRACE = DAY / 2
// Ahead of real time: the relay refuses NIP-47 requests whose expiration tag is in its past.
const T0 = Math.floor(Date.now() / 1000) + 30 * DAY
const cleanups = []
let relay

before(async () => { relay = await startRelay() })
after(async () => {
  for (const c of cleanups.reverse()) await c()
  await relay?.stop()
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitFor(fn, what, ms = 20000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(100)
  }
}

// A fresh data directory, fake clock, Lightning network and platform wallet (NWC_URL).
async function setup({ platformEncryption = 'nip44', notifications = false } = {}) {
  const s = { robot: generateSecretKey(), servers: [], wallets: [] }
  s.ln = new FakeLightning({ clockFile: null })
  s.platform = await startWallet({ relayUrl: relay.url, ln: s.ln, encryption: platformEncryption, notifications })
  s.wallets.push(s.platform)
  cleanups.push(async () => {
    for (const srv of s.servers) {
      if (process.env.BILLING_DEBUG) writeFileSync(`/tmp/billing-debug-${process.pid}-${srv.pid}.log`, srv.logs())
      await srv.kill9()
    }
    for (const w of s.wallets) await w.close()
  })
  return s
}
function setClock(s, t) { s.now = t; writeFileSync(s.clockFile, String(t)) }
const sql = (s, q) => sqlOn(databaseUrlOf(s.dbPath), q)

// The billing counters of the service's metrics listener (start(s, { metrics: true })),
// 'name{labels}' -> number.
async function billingMetrics(s) {
  const text = await (await fetch(`http://127.0.0.1:${s.srv.metricsPort}/metrics`)).text()
  const out = {}
  for (const m of text.matchAll(/^(caravel_billing_\w+\{[^}]*\}) (\d+)$/gm)) out[m[1]] = Number(m[2])
  return out
}

async function start(s, { metrics = false, ...extra } = {}) {
  const metricsPort = metrics ? await freePort() : 0
  const env = {
    METRICS_PORT: String(metricsPort),
    NWC_URL: s.platform.url,
    BILLING_PERIOD: String(P), BILLING_INTERVAL: '1', BILLING_GRACE: String(GRACE),
    ROBOT_SECRET: bytesToHex(s.robot),
    ROBOT_OUTBOX_RELAYS: relay.url, ROBOT_INDEXER_RELAYS: relay.url, ROBOT_MESSAGING_RELAYS: relay.url,
    CARAVEL_ROBOT_RETRY_BASE: '1',
    // On PostgreSQL a restart after a kill waits for the dead process's billing lease to run
    // out: 3 s here (production 10 s; billing-leader.test.mjs measures the default).
    BILLING_LEASE_TTL: '3',
    ...extra,
  }
  if (!s.dir) {
    s.dir = mkdtempSync(path.join(os.tmpdir(), 'caravel-billing-'))
    s.dbPath = path.join(s.dir, 'caravel.db')
    s.clockFile = path.join(s.dir, 'clock')
    setClock(s, T0)
    cleanups.push(() => rmSync(s.dir, { recursive: true, force: true }))
  }
  s.ln.clockFile = s.clockFile
  const srv = await startServer({ dir: s.dir, env: { ...env, CARAVEL_TEST_CLOCK_FILE: s.clockFile } })
  srv.exited = new Promise((resolve) => {
    if (srv.proc.exitCode !== null) resolve(srv.proc.exitCode)
    else srv.proc.once('exit', (code) => resolve(code))
  })
  srv.metricsPort = metricsPort
  s.servers.push(srv)
  s.srv = srv
  return srv
}

// NIP-98 per-request token dated by the service's (fake) clock.
async function api(s, user, method, p, body) {
  const url = s.srv.url + p
  const text = body === undefined ? undefined : JSON.stringify(body)
  const headers = { Authorization: rawToken(user, { u: url, method, payload: text && sha256hex(text), createdAt: s.now }) }
  if (text) headers['Content-Type'] = 'application/json'
  const r = await fetch(url, { method, headers, body: text })
  const json = await r.json()
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(json)}`)
  return json.data
}

// A tenant (through the API, at T0) with a kind 10050 on the test relay so DMs reach it.
async function tenant(s, { plans = ['basic'], wallet = null } = {}) {
  const u = newUser()
  const r = await Relay.connect(relay.url)
  await r.publish(finalizeEvent({ kind: 10050, created_at: Math.floor(Date.now() / 1000), tags: [['relay', relay.url]], content: '' }, u.sk))
  r.close()
  await api(s, u, 'POST', '/tenants', {})
  u.relays = []
  for (const plan of plans) {
    const sub = `r${bytesToHex(generateSecretKey()).slice(0, 12)}`
    u.relays.push(await api(s, u, 'POST', '/relays', { subdomain: sub, plan }))
  }
  if (wallet) await api(s, u, 'PUT', `/tenants/${u.pk}/billing`, { nwc_url: wallet.url })
  return u
}

// DMs the robot delivered to the user, unwrapped and checked with nostr-tools.
async function dms(s, user) {
  const r = await Relay.connect(relay.url)
  const wraps = []
  await new Promise((resolve) => {
    const sub = r.subscribe([{ kinds: [1059], '#p': [user.pk] }], { onevent: (e) => wraps.push(e), oneose: () => { sub.close(); resolve() } })
  })
  r.close()
  return wraps.map((w) => {
    assert.ok(verifyEvent(w))
    const rumor = nip59.unwrapEvent(w, user.sk)
    assert.equal(rumor.kind, 14)
    assert.equal(rumor.pubkey, getPublicKey(s.robot))
    return rumor.content
  })
}
const waitDm = (s, user, re, what) => waitFor(async () => (await dms(s, user)).find((t) => re.test(t)), what)

const invoices = (s, user) => api(s, user, 'GET', '/invoices')
const totalPaid = (ln) => [...ln.payments.values()].reduce((a, b) => a + b, 0)
const payRequests = (w) => w.requests.filter((r) => r.method === 'pay_invoice').length

test('NWC tenant: the exact amount paid once per period, invoice and receipt DMs delivered', async () => {
  const s = await setup()
  const wallet = await startWallet({ relayUrl: relay.url, ln: s.ln, encryption: 'nip04' })
  s.wallets.push(wallet)
  await start(s, { metrics: true })
  setClock(s, T0)
  const u = await tenant(s, { wallet })
  setClock(s, T0 + P + 1)
  await waitFor(async () => (await invoices(s, u))[0]?.status === 'paid', 'paid invoice')
  const [inv] = await invoices(s, u)
  assert.equal(inv.amount, 10000) // active all period: the monthly price
  assert.equal(inv.period_start, T0)
  assert.equal(inv.period_end, T0 + P)
  assert.deepEqual(inv.items.map((i) => [i.relay, i.plan, i.hours, i.amount]), [[u.relays[0].id, 'basic', 48, 10000]])
  await waitDm(s, u, /payment received, 10000 sats/, 'receipt DM')
  await waitDm(s, u, /Caravel invoice for .*10000 sats/, 'invoice DM')
  await sleep(2500) // more runs: nothing is paid again
  assert.equal(totalPaid(s.ln), 1)
  assert.equal(payRequests(wallet), 1)
  assert.equal((await invoices(s, u)).length, 1)
  setClock(s, T0 + 2 * P + 1) // next period: charged again, once
  await waitFor(async () => (await invoices(s, u)).filter((i) => i.status === 'paid').length === 2, 'second period paid')
  await sleep(1500)
  assert.equal(totalPaid(s.ln), 2)
  assert.equal(payRequests(wallet), 2)
  await waitFor(async () => (await dms(s, u)).filter((t) => /payment received/.test(t)).length === 2, 'second receipt')
  // A fresh BOLT11 is paid without a lookup first (nobody else has seen it): 2 wallet
  // requests to the platform wallet, 2 to the tenant's, 2 per settled invoice.
  assert.deepEqual(await billingMetrics(s), {
    'caravel_billing_bolt11_total{result="issued"}': 2,
    'caravel_billing_collect_total{result="paid"}': 2,
    'caravel_billing_wallet_requests_total{method="make_invoice"}': 2,
    'caravel_billing_wallet_requests_total{method="pay_invoice"}': 2,
    'caravel_billing_settled_invoices_total{requests="1-2"}': 2
  })
  assert.equal(await s.srv.stop(), 0)
})

test('tenant without NWC: BOLT11 by DM, paid when it settles; NIP-04 platform wallet', async () => {
  const s = await setup({ platformEncryption: 'nip04' })
  await start(s, { metrics: true })
  const u = await tenant(s, { plans: ['growth'] })
  setClock(s, T0 + P + 1)
  const bolt11 = await waitFor(async () => (await invoices(s, u))[0]?.bolt11, 'BOLT11')
  const dm = await waitDm(s, u, /Pay this Lightning invoice/, 'BOLT11 DM')
  assert.ok(dm.includes(bolt11) && dm.includes('50000 sats'), dm)
  assert.ok(s.ln.settle(bolt11))
  await sleep(1500) // runs every second, but the first lookup is a minute after the DM
  assert.equal((await invoices(s, u))[0].status, 'pending')
  setClock(s, T0 + P + 1 + 60)
  await waitFor(async () => (await invoices(s, u))[0].status === 'paid', 'paid after settlement')
  assert.equal((await invoices(s, u))[0].amount, 50000)
  await waitDm(s, u, /payment received, 50000 sats/, 'receipt DM')
  const counted = await billingMetrics(s)
  assert.equal(counted['caravel_billing_bolt11_total{result="issued"}'], 1)
  assert.equal(counted['caravel_billing_lookup_total{result="settled"}'], 1)
  assert.equal(counted['caravel_billing_collect_total{result="paid"}'], undefined) // no NWC URL
  assert.equal(await s.srv.stop(), 0)
})

test('payment_received notification (kind 23197) marks the invoice paid without another run', async () => {
  const s = await setup({ notifications: true })
  await start(s)
  const u = await tenant(s)
  assert.equal(await s.srv.stop(), 0)
  setClock(s, T0 + P + 1)
  // One run at start-up, the next in an hour: only the notification can mark it paid.
  await start(s, { BILLING_INTERVAL: '3600', metrics: true })
  const bolt11 = await waitFor(async () => (await invoices(s, u))[0]?.bolt11, 'BOLT11')
  await waitFor(() => s.srv.logs().includes('listening for the platform wallet'), 'notification subscription')
  await waitDm(s, u, /Pay this Lightning invoice/, 'BOLT11 DM') // the start-up run is over
  const lookups = s.platform.requests.filter((r) => r.method === 'lookup_invoice').length
  await s.platform.notify(s.ln.settle(bolt11))
  await waitFor(async () => (await invoices(s, u))[0].status === 'paid', 'paid by the notification')
  await waitDm(s, u, /payment received, 10000 sats/, 'receipt DM')
  assert.equal(s.platform.requests.filter((r) => r.method === 'lookup_invoice').length, lookups)
  assert.equal((await billingMetrics(s))['caravel_billing_notification_total{result="paid"}'], 1)
  assert.equal(await s.srv.stop(), 0)
})

test('failing wallet: nwc_error and a DM, delinquent after the grace, active again once paid', async () => {
  const s = await setup()
  const wallet = await startWallet({ relayUrl: relay.url, ln: s.ln })
  s.wallets.push(wallet)
  wallet.fail = 'INSUFFICIENT_BALANCE'
  await start(s, { metrics: true })
  const u = await tenant(s, { plans: ['basic', 'free'], wallet })
  const [paid, free] = u.relays
  setClock(s, T0 + P + 1)
  const me = () => api(s, u, 'GET', `/tenants/${u.pk}`)
  await waitFor(async () => (await me()).nwc_error?.startsWith('INSUFFICIENT_BALANCE'), 'nwc_error')
  await waitDm(s, u, /automatic payment failed: INSUFFICIENT_BALANCE/, 'failure DM')
  const relayStatus = async (r) => (await api(s, u, 'GET', `/relays/${r.id}`)).status
  assert.equal(await relayStatus(paid), 'active')
  setClock(s, T0 + P + 1 + GRACE + 1) // the invoice was created at T0+P+1: the grace is over
  await waitFor(async () => (await relayStatus(paid)) === 'delinquent', 'delinquent')
  await waitDm(s, u, /overdue/, 'overdue DM')
  assert.equal(await relayStatus(free), 'active') // free relays are never made delinquent
  assert.equal(sql(s, `SELECT synced FROM relay WHERE id='${paid.id}'`), '0') // resync: zooid inactive
  assert.equal(payRequests(wallet), 1) // not retried within the day
  wallet.fail = null
  setClock(s, T0 + P + 1 + DAY + 10) // a day later: the expired BOLT11 is replaced and collected
  await waitFor(async () => (await relayStatus(paid)) === 'active', 'active again')
  assert.equal((await me()).nwc_error, null)
  assert.equal((await invoices(s, u))[0].status, 'paid')
  assert.equal(totalPaid(s.ln), 1)
  const counted = await billingMetrics(s)
  assert.equal(counted['caravel_billing_collect_total{result="refused"}'], 1)
  assert.equal(counted['caravel_billing_collect_total{result="paid"}'], 1)
  assert.equal(counted['caravel_billing_bolt11_total{result="expired"}'], 1) // replaced a day later
  assert.equal(await s.srv.stop(), 0)
})

test('setting an NWC URL collects a pending invoice at once', async () => {
  const s = await setup()
  await start(s)
  const u = await tenant(s)
  setClock(s, T0 + P + 1)
  await waitDm(s, u, /Pay this Lightning invoice/, 'BOLT11 DM')
  const wallet = await startWallet({ relayUrl: relay.url, ln: s.ln })
  s.wallets.push(wallet)
  await api(s, u, 'PUT', `/tenants/${u.pk}/billing`, { nwc_url: wallet.url }) // same day
  await waitFor(async () => (await invoices(s, u))[0].status === 'paid', 'paid through the new wallet')
  assert.equal(totalPaid(s.ln), 1)
  assert.equal(payRequests(wallet), 1)
  assert.equal(await s.srv.stop(), 0)
})

test('a wallet that pays but never answers: pay_invoice times out, lookup_invoice marks the invoice paid, nothing is paid again', async () => {
  const s = await setup()
  const wallet = await startWallet({ relayUrl: relay.url, ln: s.ln })
  s.wallets.push(wallet)
  wallet.hang = true
  // pay_invoice times out after 1.5 s instead of 60 s; everything else is production code.
  await start(s, { metrics: true, CARAVEL_TEST_NWC_PAY_TIMEOUT_MS: '1500' })
  const u = await tenant(s, { wallet })
  setClock(s, T0 + P + 1)
  await waitFor(async () => (await billingMetrics(s))['caravel_billing_collect_total{result="unknown"}'] === 1,
    'pay_invoice timed out')
  assert.equal(totalPaid(s.ln), 1) // the wallet did pay
  setClock(s, T0 + P + 1 + 60) // the first lookup after the attempt is due a minute later
  await waitFor(async () => (await invoices(s, u))[0]?.status === 'paid', 'paid through lookup_invoice')
  await waitDm(s, u, /payment received, 10000 sats/, 'receipt DM')
  await sleep(2500) // more billing runs (every second): nothing is sent to the wallet again
  assert.equal(payRequests(wallet), 1)
  assert.equal(totalPaid(s.ln), 1)
  assert.equal(sql(s, 'SELECT state FROM payment_attempt'), 'paid')
  const counted = await billingMetrics(s)
  assert.equal(counted['caravel_billing_collect_total{result="paid"}'], undefined) // never answered
  assert.equal(counted['caravel_billing_lookup_total{result="settled"}'], 1)
  assert.equal(await s.srv.stop(), 0)
})

// A tenant with an NWC wallet and a paid relay since T0, the service stopped, the clock just
// past the first period: the next start bills and collects it.
async function endedPeriodWithWallet() {
  const s = await setup()
  const wallet = await startWallet({ relayUrl: relay.url, ln: s.ln })
  s.wallets.push(wallet)
  await start(s)
  const u = await tenant(s, { wallet })
  assert.equal(await s.srv.stop(), 0)
  setClock(s, T0 + P + 1)
  return { s, wallet, u }
}

for (const at of ['before_attempt', 'after_attempt', 'after_pay_sent', 'after_answer']) {
  test(`kill at ${at}, restart: the invoice is paid exactly once`, async () => {
    const { s, wallet, u } = await endedPeriodWithWallet()
    const c1 = await start(s, { CARAVEL_TEST_CRASH_AT: at })
    assert.equal(await c1.exited, 97)
    // An attempt committed but never sent stays pending until its BOLT11 expires (a day).
    if (at === 'after_attempt') setClock(s, T0 + P + 1 + DAY + 60)
    await start(s)
    await waitFor(async () => (await invoices(s, u))[0]?.status === 'paid', 'paid after restart')
    await sleep(1500)
    assert.equal(totalPaid(s.ln), 1)
    for (const n of s.ln.payments.values()) assert.equal(n, 1)
    assert.equal(sql(s, "SELECT COUNT(*) FROM payment_attempt WHERE state='paid'"), '1')
    assert.equal(sql(s, "SELECT COUNT(*) FROM payment_attempt WHERE state='pending'"), '0')
    assert.equal(payRequests(wallet), 1) // a BOLT11 is never paid twice: one request reached it
    assert.equal(await s.srv.stop(), 0)
  })
}

test('two billing processes on one database: one invoice, one payment', async () => {
  const { s, wallet, u } = await endedPeriodWithWallet()
  const [a, b] = await Promise.all([start(s), start(s)])
  await waitFor(async () => (await invoices(s, u))[0]?.status === 'paid', 'paid')
  await sleep(2000)
  assert.equal(sql(s, 'SELECT COUNT(*) FROM invoice'), '1')
  assert.equal(totalPaid(s.ln), 1)
  assert.equal(payRequests(wallet), 1)
  assert.equal(await a.stop(), 0)
  assert.equal(await b.stop(), 0)
})

test('reduced batch size and wallet budget: every due tenant is invoiced and gets its BOLT11, run after run', async () => {
  const s = await setup()
  // Two tenants per transaction, two wallet requests per run (production: 500 and 10,000).
  await start(s, { metrics: true, CARAVEL_TEST_BILLING_BATCH: '2', BILLING_WALLET_REQUESTS: '2' })
  const users = []
  for (let i = 0; i < 5; i++) users.push(await tenant(s, { plans: i % 2 ? ['basic'] : ['growth'] }))
  setClock(s, T0 + P + 1)
  await waitFor(() => sql(s, 'SELECT COUNT(*) FROM bolt11') === '5', () => `5 BOLT11 (${sql(s, 'SELECT COUNT(*) FROM bolt11')})`)
  assert.equal(sql(s, 'SELECT COUNT(DISTINCT tenant) FROM invoice'), '5')
  assert.equal(sql(s, 'SELECT SUM(amount) FROM invoice'), String(2 * 10000 + 3 * 50000))
  for (const u of users) await waitDm(s, u, /Pay this Lightning invoice/, 'BOLT11 DM')
  assert.ok(s.srv.logs().includes('wallet request(s) this run (BILLING_WALLET_REQUESTS)'))
  const counted = await billingMetrics(s)
  assert.equal(counted['caravel_billing_wallet_requests_total{method="make_invoice"}'], 5)
  assert.equal(counted['caravel_billing_wallet_requests_total{method="lookup_invoice"}'], undefined)
  // Nothing is due again before the first lookup (a minute after each DM): no requests.
  await sleep(2500)
  assert.deepEqual(await billingMetrics(s), counted)
  assert.equal(await s.srv.stop(), 0)
})
