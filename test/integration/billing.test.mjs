// Billing end to end (spec 7, 8): the real caravel binary, the real test relay, real NIP-47
// wallet services (@getalby/sdk) on a fake Lightning network that counts payments, and the
// fake clock (CARAVEL_TEST_CLOCK_FILE) to move through periods. Tenants and relays are
// seeded with the sqlite3 CLI (the API is tested elsewhere); outcomes are read back from
// the database and from the wallets.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { startRelay } from './lib/nostr-relay.mjs'
import { FakeLightning, startWallet } from './lib/wallet.mjs'

const BIN = process.env.CARAVEL_BIN ?? path.resolve('build/caravel')
const P = 3600 // BILLING_PERIOD
const T0 = 1_800_000_000
const procs = new Set()
let relay

before(async () => { relay = await startRelay() })
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await relay?.stop()
})

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
})
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function waitFor(fn, ms = 15000, what = 'condition') {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

function makeEnv(extra = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'caravel-billing-'))
  const env = {
    dir, db: path.join(dir, 'c.db'), clock: path.join(dir, 'clock'),
    setClock(t) { writeFileSync(this.clock, String(t)) },
    sql(q) { return execFileSync('sqlite3', ['-cmd', '.timeout 5000', this.db, q], { encoding: 'utf8' }).trim() },
  }
  env.setClock(T0)
  env.vars = { DATABASE_URL: `sqlite://${env.db}`, BILLING_PERIOD: String(P), BILLING_INTERVAL: '1', BILLING_GRACE: String(2 * P), CARAVEL_TEST_CLOCK_FILE: env.clock, LOG_LEVEL: 'debug', ...extra }
  return env
}

async function startCaravel(env, extra = {}) {
  const port = await freePort()
  const child = spawn(BIN, [], { env: { ...process.env, ...env.vars, PORT: String(port), HOST: '127.0.0.1', ...extra }, stdio: ['ignore', 'ignore', 'pipe'] })
  procs.add(child)
  child.log = ''
  child.stderr.on('data', (d) => { child.log += d })
  child.exited = new Promise((resolve) => child.on('exit', (code) => { procs.delete(child); resolve(code) }))
  await waitFor(() => child.log.includes('billing') || child.exitCode !== null, 10000, 'start-up')
  return child
}
async function stop(child) { child.kill('SIGTERM'); return child.exited }

// A tenant with one relay active on `plan` since T0 (rows as the API writes them).
function seedTenant(env, { pubkey, nwcUrl = null, plan = 'basic', relayId }) {
  env.sql(`INSERT INTO tenant(pubkey, nwc_url, created_at) VALUES ('${pubkey}', ${nwcUrl ? `'${nwcUrl}'` : 'NULL'}, ${T0});
    INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, created_at, updated_at) VALUES ('${relayId}', '${pubkey}', '${relayId}', '${relayId}', 'x', '${plan}', 'active', ${T0}, ${T0});
    INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id, plan, status) VALUES ('${pubkey}', ${T0}, 'create_relay', 'relay', '${relayId}', '${plan}', 'active');`)
}
const pk = (c) => c.repeat(64)
const totalPaid = (ln) => [...ln.payments.values()].reduce((a, b) => a + b, 0)

test('a tenant with an NWC URL pays the exact amount once per period, with a receipt DM', async () => {
  const env = makeEnv()
  const ln = new FakeLightning({ clockFile: env.clock })
  const platform = await startWallet({ relayUrl: relay.url, ln })
  const wallet = await startWallet({ relayUrl: relay.url, ln, encryption: 'nip04' })
  env.vars.NWC_URL = platform.url
  await startCaravel(env) // migrations
  const c = await startCaravel(env)
  seedTenant(env, { pubkey: pk('a'), nwcUrl: wallet.url, relayId: 'ra' })
  env.setClock(T0 + P + 1)
  await waitFor(() => env.sql(`SELECT status FROM invoice WHERE tenant='${pk('a')}'`) === 'paid', 20000, 'paid invoice')
  assert.equal(env.sql(`SELECT amount FROM invoice`), '10000') // active all period: the monthly price
  assert.equal(env.sql(`SELECT COUNT(*) FROM message WHERE body LIKE '%payment received, 10000 sats%'`), '1')
  await sleep(2500) // more runs: nothing is paid again
  assert.equal(totalPaid(ln), 1)
  assert.equal(wallet.requests.filter((r) => r.method === 'pay_invoice').length, 1)
  assert.equal(env.sql('SELECT COUNT(*) FROM invoice'), '1')
  env.setClock(T0 + 2 * P + 1) // next period: charged again, once
  await waitFor(() => env.sql(`SELECT COUNT(*) FROM invoice WHERE status='paid'`) === '2', 20000, 'second period')
  assert.equal(totalPaid(ln), 2)
  await stop(c); await platform.close(); await wallet.close()
  rmSync(env.dir, { recursive: true, force: true })
})

test('a tenant without NWC gets the BOLT11 by DM and is marked paid when it settles', async () => {
  const env = makeEnv()
  const ln = new FakeLightning({ clockFile: env.clock })
  const platform = await startWallet({ relayUrl: relay.url, ln, encryption: 'nip04' })
  env.vars.NWC_URL = platform.url
  const c = await startCaravel(env)
  seedTenant(env, { pubkey: pk('b'), relayId: 'rb', plan: 'growth' })
  env.setClock(T0 + P + 1)
  const bolt11 = await waitFor(() => env.sql('SELECT bolt11 FROM bolt11'), 20000, 'BOLT11')
  await waitFor(() => env.sql(`SELECT COUNT(*) FROM message WHERE body LIKE '%${bolt11}%'`) === '1', 10000, 'BOLT11 DM')
  assert.ok(ln.settle(bolt11))
  await waitFor(() => env.sql('SELECT status FROM invoice') === 'paid', 20000, 'paid after settlement')
  assert.equal(env.sql('SELECT amount FROM invoice'), '50000')
  await stop(c); await platform.close()
  rmSync(env.dir, { recursive: true, force: true })
})

test('a failing wallet: nwc_error and a DM, delinquent after the grace, active again once paid', async () => {
  const env = makeEnv()
  const ln = new FakeLightning({ clockFile: env.clock })
  const platform = await startWallet({ relayUrl: relay.url, ln })
  const wallet = await startWallet({ relayUrl: relay.url, ln })
  wallet.fail = 'INSUFFICIENT_BALANCE'
  env.vars.NWC_URL = platform.url
  const c = await startCaravel(env)
  seedTenant(env, { pubkey: pk('c'), nwcUrl: wallet.url, relayId: 'rc' })
  env.sql(`INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, created_at, updated_at) VALUES ('rf', '${pk('c')}', 'rf', 'rf', 'x', 'free', 'active', ${T0}, ${T0})`)
  env.setClock(T0 + P + 1)
  await waitFor(() => env.sql(`SELECT nwc_error FROM tenant`).startsWith('INSUFFICIENT_BALANCE'), 20000, 'nwc_error')
  assert.equal(env.sql(`SELECT COUNT(*) FROM message WHERE body LIKE '%automatic payment failed: INSUFFICIENT_BALANCE%'`), '1')
  assert.equal(env.sql(`SELECT status FROM relay WHERE id='rc'`), 'active')
  env.setClock(T0 + 3 * P + 2) // invoice created at T0+P+1: grace 2P is over
  await waitFor(() => env.sql(`SELECT status FROM relay WHERE id='rc'`) === 'delinquent', 20000, 'delinquent')
  assert.equal(env.sql(`SELECT status FROM relay WHERE id='rf'`), 'active') // free: untouched
  assert.equal(env.sql(`SELECT synced FROM relay WHERE id='rc'`), '0') // resync (zooid inactive)
  wallet.fail = null
  env.setClock(T0 + P + 1 + 86400 + 10) // a day later: collected again
  await waitFor(() => env.sql(`SELECT status FROM relay WHERE id='rc'`) === 'active', 20000, 'active again')
  assert.equal(env.sql(`SELECT nwc_error IS NULL FROM tenant`), '1')
  assert.equal(totalPaid(ln) >= 1, true)
  await stop(c); await platform.close(); await wallet.close()
  rmSync(env.dir, { recursive: true, force: true })
})

for (const at of ['before_attempt', 'after_attempt', 'after_pay_sent', 'after_answer']) {
  test(`kill at ${at}, restart: the invoice is paid exactly once`, async () => {
    const env = makeEnv()
    const ln = new FakeLightning({ clockFile: env.clock })
    const platform = await startWallet({ relayUrl: relay.url, ln })
    const wallet = await startWallet({ relayUrl: relay.url, ln })
    env.vars.NWC_URL = platform.url
    await stop(await startCaravel(env))
    seedTenant(env, { pubkey: pk('d'), nwcUrl: wallet.url, relayId: 'rd' })
    env.setClock(T0 + P + 1)
    const c1 = await startCaravel(env, { CARAVEL_TEST_CRASH_AT: at })
    assert.equal(await c1.exited, 97)
    // An attempt committed but never sent stays pending until its BOLT11 expires (a day).
    if (at === 'after_attempt') env.setClock(T0 + P + 1 + 86400 + 60)
    const c2 = await startCaravel(env)
    await waitFor(() => env.sql('SELECT status FROM invoice') === 'paid', 25000, 'paid after restart')
    await sleep(1500)
    assert.equal(totalPaid(ln), 1)
    for (const n of ln.payments.values()) assert.equal(n, 1)
    assert.equal(env.sql(`SELECT COUNT(*) FROM payment_attempt WHERE state='paid'`), '1')
    await stop(c2); await platform.close(); await wallet.close()
    rmSync(env.dir, { recursive: true, force: true })
  })
}

test('two billing processes at once create one invoice and one payment', async () => {
  const env = makeEnv()
  const ln = new FakeLightning({ clockFile: env.clock })
  const platform = await startWallet({ relayUrl: relay.url, ln })
  const wallet = await startWallet({ relayUrl: relay.url, ln })
  env.vars.NWC_URL = platform.url
  await stop(await startCaravel(env))
  seedTenant(env, { pubkey: pk('e'), nwcUrl: wallet.url, relayId: 're' })
  env.setClock(T0 + P + 1)
  const [a, b] = await Promise.all([startCaravel(env), startCaravel(env)])
  await waitFor(() => env.sql('SELECT status FROM invoice') === 'paid', 20000, 'paid')
  await sleep(2000)
  assert.equal(env.sql('SELECT COUNT(*) FROM invoice'), '1')
  assert.equal(totalPaid(ln), 1)
  await stop(a); await stop(b); await platform.close(); await wallet.close()
  rmSync(env.dir, { recursive: true, force: true })
})
