// `caravel migrate --from sqlite://PATH --to postgres://…` (docs/OPERATIONS.md, "Moving from
// SQLite to PostgreSQL"): a SQLite deployment populated through the real API and the real
// billing (tenants, relays, changes, invoices paid through NWC wallets on a fake Lightning
// network, DMs), stopped, copied into an empty PostgreSQL database; a server on PostgreSQL then
// answers the same GETs. A target that is not empty is refused; a copy that fails half-way
// leaves the target empty.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { generateSecretKey } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils'
import { startRelay } from './lib/nostr-relay.mjs'
import { runOnce, sqlOn, startServer } from './lib/server.mjs'
import { tempDir } from './lib/lifecycle.mjs'
import { psql, testDatabase } from './lib/postgres.mjs'
import { newUser, rawToken, sha256hex } from './lib/auth.mjs'
import { FakeLightning, startWallet } from './lib/wallet.mjs'

const DAY = 86400
const P = 2 * DAY // BILLING_PERIOD
// Ahead of real time: the relay refuses NIP-47 requests whose expiration tag is in its past.
const T0 = Math.floor(Date.now() / 1000) + 30 * DAY
const admin = newUser()
const dir = tempDir('caravel-migrate-')
const clockFile = path.join(dir, 'clock')
const sqliteUrl = `sqlite://${path.join(dir, 'caravel.db')}`
let now = T0
let relay, ln, platform
const wallets = []
const users = []

function setClock (t) { now = t; fs.writeFileSync(clockFile, String(t)) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitFor (fn, what, ms = 30000) {
  for (const end = Date.now() + ms; ;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

// NIP-98 per-request token dated by the service's fake clock; returns { status, body }.
async function api (srv, user, method, p, body) {
  const url = srv.url + p
  const text = body === undefined ? undefined : JSON.stringify(body)
  const headers = { Authorization: rawToken(user, { u: url, method, payload: text && sha256hex(text), createdAt: now }) }
  if (text) headers['Content-Type'] = 'application/json'
  const r = await fetch(url, { method, headers, body: text })
  return { status: r.status, body: await r.json() }
}
async function ok (srv, user, method, p, body) {
  const r = await api(srv, user, method, p, body)
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.data
}

function env (databaseUrl, billing) {
  return {
    DATABASE_URL: databaseUrl,
    ADMINS: admin.pk,
    CARAVEL_TEST_CLOCK_FILE: clockFile,
    ...(billing
      ? {
          NWC_URL: platform.url,
          BILLING_PERIOD: String(P),
          BILLING_INTERVAL: '1',
          ROBOT_SECRET: bytesToHex(generateSecretKey()),
          ROBOT_OUTBOX_RELAYS: relay.url,
          ROBOT_INDEXER_RELAYS: relay.url,
          ROBOT_MESSAGING_RELAYS: relay.url
        }
      : {})
  }
}

// What the dashboard reads, as the admin and as each tenant.
async function snapshot (srv) {
  const out = {}
  const get = async (user, p) => { out[`${user === admin ? 'admin' : user.pk.slice(0, 8)} ${p}`] = (await ok(srv, user, 'GET', p)) }
  for (const p of ['/tenants?limit=100', '/relays?limit=100', '/invoices?limit=100', '/activity?limit=100', '/plans']) await get(admin, p)
  for (const u of users) {
    for (const p of [`/tenants/${u.pk}`, '/relays', '/invoices', '/activity']) await get(u, p)
    for (const r of u.relays) await get(u, `/relays/${r.id}`)
  }
  return out
}

const migrate = (from, to) => runOnce(['migrate', '--from', from, '--to', to], {}, 300000)
const tables = (url) => Number(psql(url, "select count(*) from pg_tables where schemaname = 'public'"))

let before_
before(async () => {
  relay = await startRelay()
  ln = new FakeLightning()
  platform = await startWallet({ relayUrl: relay.url, ln })
  wallets.push(platform)
  setClock(T0)
  const srv = await startServer({ dir, env: env(sqliteUrl, true) })
  try {
    for (let i = 0; i < 3; i++) {
      const u = newUser()
      await ok(srv, u, 'POST', '/tenants', {})
      u.relays = []
      for (const plan of ['basic', 'growth']) {
        u.relays.push(await ok(srv, u, 'POST', '/relays', { subdomain: `mig${i}${plan}${bytesToHex(generateSecretKey()).slice(0, 6)}`, plan }))
      }
      await ok(srv, u, 'PUT', `/relays/${u.relays[0].id}`, { info_name: `relay "${i}" with\\odd text`, info_description: 'ünïcödé ✓\twith\ncontrols' })
      if (i < 2) { // two tenants pay through NWC, the third gets a BOLT11 by DM
        const w = await startWallet({ relayUrl: relay.url, ln, encryption: 'nip04' })
        wallets.push(w)
        await ok(srv, u, 'PUT', `/tenants/${u.pk}/billing`, { nwc_url: w.url })
      }
      users.push(u)
    }
    setClock(T0 + P + 1)
    await waitFor(async () => {
      const inv = await ok(srv, admin, 'GET', '/invoices?limit=100')
      return inv.length === 3 && inv.filter((x) => x.status === 'paid').length === 2
    }, 'three invoices, two paid')
    await sleep(1500) // the DMs and bookkeeping of the last run
  } finally {
    assert.equal(await srv.stop(), 0)
  }
  const check = await startServer({ dir, env: env(sqliteUrl, false) }) // billing off: nothing moves
  try { before_ = await snapshot(check) } finally { assert.equal(await check.stop(), 0) }
})
after(async () => {
  for (const w of wallets) await w.close()
  await relay?.stop()
})

test('a SQLite deployment moves to PostgreSQL: same answers, sums checked, sequences continue', async () => {
  const target = await testDatabase()
  assert.equal(before_['admin /relays?limit=100'].length, 6)
  assert.equal(before_['admin /invoices?limit=100'].length, 3)
  assert.ok(before_['admin /activity?limit=100'].length >= 9, 'relay creations and changes')
  const r = await migrate(sqliteUrl, target)
  assert.equal(r.code, 0, r.out + r.err)
  assert.match(r.out, /one transaction, committed/)
  assert.match(r.out, /invoices 3 \(amount \d+ sats\), payment attempts [2-9]\d* \(2 paid\)/)
  assert.match(r.out, /^ {2}relay +6 rows$/m)
  const srv = await startServer({ dir: tempDir('caravel-migrated-'), env: env(target, false) })
  try {
    assert.deepEqual(await snapshot(srv), before_)
    // New rows get ids after the copied ones (identity sequences moved past them).
    const u = users[0]
    await ok(srv, u, 'PUT', `/relays/${u.relays[1].id}`, { info_name: 'after the move' })
    const acts = await ok(srv, u, 'GET', '/activity')
    assert.equal(acts.length, before_[`${u.pk.slice(0, 8)} /activity`].length + 1)
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})

test('a target that is not empty is refused and left as it was', async () => {
  const target = await testDatabase()
  psql(target, 'create table mine (x int); insert into mine values (42)')
  const r = await migrate(sqliteUrl, target)
  assert.equal(r.code, 1, r.out + r.err)
  assert.match(r.out, /not empty \(it has public\.mine\)/)
  assert.equal(psql(target, 'select x from mine'), '42')
  assert.equal(tables(target), 1)
})

test('a copy that fails half-way leaves the target empty', async () => {
  // Text PostgreSQL refuses (not UTF-8) in the relay table, copied after tenant and invoice.
  const bad = path.join(tempDir('caravel-migrate-bad-'), 'caravel.db')
  fs.copyFileSync(path.join(dir, 'caravel.db'), bad)
  sqlOn(`sqlite://${bad}`, `update relay set info_name = CAST(X'C328' AS TEXT) where id = '${users[2].relays[1].id}'`)
  const target = await testDatabase()
  const r = await migrate(`sqlite://${bad}`, target)
  assert.equal(r.code, 1, r.out + r.err)
  assert.match(r.out, /copying relay: .*invalid byte sequence/)
  assert.match(r.out, /rolled back/)
  assert.equal(tables(target), 0, 'no table left behind')
})
