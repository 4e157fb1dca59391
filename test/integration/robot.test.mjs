// The robot (src/robot/robot.c, through build/tools/robot_tool) against real relays: profile and
// relay lists published, NIP-17 DMs from the `message` outbox unwrapped by nostr-tools,
// NIP-42 auth-required DM relay, a DM relay that is down at send time, kill -9 with queued
// DMs (all delivered after the restart, none twice), and wss:// with a private CA.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import * as nip44 from 'nostr-tools/nip44'
import * as nip59 from 'nostr-tools/nip59'
import { bytesToHex } from '@noble/hashes/utils'
import { startRelay } from './lib/nostr-relay.mjs'
import { startRobot } from './lib/robot.mjs'
import { databaseUrlOf, sqlOn, startServer } from './lib/server.mjs'
import { startTlsProxy } from './lib/tls-proxy.mjs'

useWebSocketImplementation(WebSocket)
const cleanups = []
after(async () => { for (const c of cleanups.reverse()) await c() })

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-robot-'))
cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }))
let dbSeq = 0
const newDb = () => path.join(tmp, `robot${++dbSeq}.db`)
// db: a robot tool's SQLite file, or a server's srv.dbPath (its database on either engine).
const sql = (db, q) => sqlOn(databaseUrlOf(db), q)
const queueDm = (db, recipient, text) =>
  sql(db, `INSERT INTO message (recipient, body, created_at) VALUES ('${recipient}', '${text.replaceAll("'", "''")}', ${Math.floor(Date.now() / 1000)})`)

async function relay(env) {
  const r = await startRelay(env)
  cleanups.push(() => r.stop())
  return r
}

async function query(url, filter) {
  const relayConn = await Relay.connect(url)
  const events = []
  await new Promise((resolve) => {
    const sub = relayConn.subscribe([filter], { onevent: (e) => events.push(e), oneose: () => { sub.close(); resolve() } })
  })
  relayConn.close()
  return events
}

/* REQ as an authenticated user (the DM relays require NIP-42). */
async function authedQuery(url, sk, filter) {
  const r = await Relay.connect(url)
  for (let i = 0; ; i++) {
    try {
      await r.auth(async (t) => finalizeEvent(t, sk))
      break
    } catch (e) {
      if (i > 40) throw e
      await new Promise((resolve) => setTimeout(resolve, 50)) // the challenge has not arrived yet
    }
  }
  const evs = []
  await new Promise((resolve) => {
    const sub = r.subscribe([filter], { onevent: (e) => evs.push(e), oneose: () => { sub.close(); resolve() } })
  })
  r.close()
  return evs
}

async function eventually(fn, what, ms = 20000, every = 150) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error('timeout: ' + (typeof what === 'function' ? what() : what))
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}

async function publishAs(sk, url, kind, tags) {
  const r = await Relay.connect(url)
  await r.publish(finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, sk))
  r.close()
}

/* Unwraps with nostr-tools and checks the seal is signed by the robot. */
function openWrap(wrap, recipientSk, robotPk) {
  assert.equal(wrap.kind, 1059)
  assert.ok(verifyEvent(wrap))
  const seal = JSON.parse(nip44.decrypt(wrap.content, nip44.getConversationKey(recipientSk, wrap.pubkey)))
  assert.equal(seal.kind, 13)
  assert.equal(seal.pubkey, robotPk)
  assert.ok(verifyEvent(seal))
  const rumor = nip59.unwrapEvent(wrap, recipientSk)
  assert.equal(rumor.kind, 14)
  assert.equal(rumor.pubkey, robotPk)
  return rumor
}

function robotEnv(outbox, indexer, messaging, extra = {}) {
  return {
    ROBOT_SECRET: bytesToHex(generateSecretKey()),
    ROBOT_NAME: 'Caravel',
    ROBOT_DESCRIPTION: 'relay hosting robot',
    ROBOT_PICTURE: 'https://example.com/robot.png',
    ROBOT_OUTBOX_RELAYS: outbox,
    ROBOT_INDEXER_RELAYS: indexer,
    ROBOT_MESSAGING_RELAYS: messaging,
    CARAVEL_ROBOT_RETRY_BASE: '1',
    ...extra,
  }
}

test('profile, relay lists and a DM unwrapped by nostr-tools; auth-required DM relay', async () => {
  const [outbox, indexer, messaging] = await Promise.all([relay(), relay(), relay()])
  const dmRelay = await relay({ AUTH_HOSTNAME: '127.0.0.1', AUTH_REQUIRED: '1' })
  const db = newDb()
  const robot = await startRobot(db, robotEnv(outbox.url, indexer.url, messaging.url))
  cleanups.push(() => robot.kill9())
  for (const url of [outbox.url, indexer.url]) {
    const got = await eventually(async () => {
      const evs = await query(url, { authors: [robot.pubkey] })
      return evs.length === 3 ? evs : null
    }, 'robot events on ' + url)
    const k0 = got.find((e) => e.kind === 0)
    assert.deepEqual(JSON.parse(k0.content), { name: 'Caravel', about: 'relay hosting robot', picture: 'https://example.com/robot.png' })
    assert.deepEqual(got.find((e) => e.kind === 10002).tags, [['r', outbox.url]])
    assert.deepEqual(got.find((e) => e.kind === 10050).tags, [['relay', messaging.url]])
    for (const e of got) assert.ok(verifyEvent(e))
  }
  const onMessaging = await eventually(async () => (await query(messaging.url, { authors: [robot.pubkey], kinds: [10050] }))[0], '10050 on messaging')
  assert.deepEqual(onMessaging.tags, [['relay', messaging.url]])

  const userSk = generateSecretKey()
  const userPk = getPublicKey(userSk)
  await publishAs(userSk, indexer.url, 10050, [['relay', dmRelay.url]])
  const text = 'Your invoice for "relay.example" is ready ⚡\nline two'
  queueDm(db, userPk, text)
  robot.kick()
  const wraps = await eventually(async () => {
    const evs = await authedQuery(dmRelay.url, userSk, { kinds: [1059], '#p': [userPk] })
    return evs.length ? evs : null
  }, 'gift wrap on the auth-required DM relay')
  assert.equal(wraps.length, 1)
  assert.equal(openWrap(wraps[0], userSk, robot.pubkey).content, text)
  await eventually(() => sql(db, 'SELECT state FROM message') === 'sent', 'row marked sent')
  assert.equal(await robot.stop(), 0)
})

test('recipient without 10050 stays queued with an error; DM relay down then back: delivered once', async () => {
  const [outbox, indexer, messaging] = await Promise.all([relay(), relay(), relay()])
  let dmRelay = await startRelay()
  const dmPort = new URL(dmRelay.url).port
  await dmRelay.stop()
  const db = newDb()
  const robot = await startRobot(db, robotEnv(outbox.url, indexer.url, messaging.url))
  cleanups.push(() => robot.kill9())

  const nobody = getPublicKey(generateSecretKey())
  queueDm(db, nobody, 'nobody home')
  const userSk = generateSecretKey()
  const userPk = getPublicKey(userSk)
  await publishAs(userSk, indexer.url, 10050, [['relay', `ws://127.0.0.1:${dmPort}`]])
  queueDm(db, userPk, 'while you were down')
  robot.kick()
  await eventually(() => {
    const rows = sql(db, "SELECT recipient || '|' || state || '|' || attempts || '|' || last_error FROM message ORDER BY id").split('\n')
    return rows.length === 2 && rows.every((r) => /\|queued\|[1-9]\d*\|./.test(r)) ? rows : null
  }, () => robot.log() + 'both attempts recorded: ' + sql(db, "SELECT id, state, attempts, last_error, next_at, strftime('%s','now') FROM message"))
  assert.match(sql(db, `SELECT last_error FROM message WHERE recipient = '${nobody}'`), /10050/)
  assert.match(sql(db, `SELECT last_error FROM message WHERE recipient = '${userPk}'`), /connection|relay/)

  dmRelay = await startRelay({ PORT: dmPort })
  cleanups.push(() => dmRelay.stop())
  await eventually(() => sql(db, `SELECT state FROM message WHERE recipient = '${userPk}'`) === 'sent', 'sent after the relay came back', 30000)
  const wraps = await query(dmRelay.url, { kinds: [1059], '#p': [userPk] })
  assert.equal(wraps.length, 1)
  assert.equal(openWrap(wraps[0], userSk, robot.pubkey).content, 'while you were down')
  assert.equal(sql(db, `SELECT state FROM message WHERE recipient = '${nobody}'`), 'queued')
  assert.equal(await robot.stop(), 0)
})

test('kill -9 with queued DMs: all delivered after the restart, none twice', async () => {
  const [outbox, indexer, messaging, dmRelay] = await Promise.all([relay(), relay(), relay(), relay()])
  const db = newDb()
  const env = robotEnv(outbox.url, indexer.url, messaging.url)
  const userSk = generateSecretKey()
  const userPk = getPublicKey(userSk)
  await publishAs(userSk, indexer.url, 10050, [['relay', dmRelay.url]])
  let robot = await startRobot(db, env)
  await robot.stop() // creates the schema
  const N = 40
  sql(db, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${N - 1})
           INSERT INTO message (recipient, body, created_at) SELECT '${userPk}', 'message ' || i, 0 FROM n`)
  robot = await startRobot(db, env)
  await eventually(() => Number(sql(db, "SELECT count(*) FROM message WHERE state = 'sent'")) >= 3, 'some progress', 20000, 5)
  await robot.kill9()
  const before = Number(sql(db, "SELECT count(*) FROM message WHERE state = 'sent'"))
  robot = await startRobot(db, env)
  cleanups.push(() => robot.kill9())
  await eventually(() => sql(db, "SELECT count(*) FROM message WHERE state = 'sent'") === String(N), 'all sent', 30000)
  const wraps = await query(dmRelay.url, { kinds: [1059], '#p': [userPk] })
  const texts = wraps.map((w) => openWrap(w, userSk, robot.pubkey).content).sort()
  assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `message ${i}`).sort())
  assert.equal(new Set(wraps.map((w) => w.id)).size, N)
  assert.ok(before < N, `kill -9 happened mid-way (${before} sent before)`)
  console.log(`sent before kill -9: ${before}/${N}`)
  assert.equal(await robot.stop(), 0)
})

test('wss:// relays behind a TLS terminator with a private CA (CARAVEL_CA_FILE)', async () => {
  const [plain, dmPlain] = await Promise.all([relay({ AUTH_HOSTNAME: 'localhost' }), relay({ AUTH_HOSTNAME: 'localhost', AUTH_REQUIRED: '1' })])
  const proxy = await startTlsProxy(Number(new URL(plain.url).port))
  const dmProxy = await startTlsProxy(Number(new URL(dmPlain.url).port), proxy.pki)
  cleanups.push(() => proxy.stop(), () => dmProxy.stop())
  const db = newDb()
  const robot = await startRobot(db, robotEnv(proxy.url, proxy.url, proxy.url, { CARAVEL_CA_FILE: proxy.caFile }))
  cleanups.push(() => robot.kill9())
  await eventually(async () => (await query(plain.url, { authors: [robot.pubkey] })).length === 3, 'robot events over wss')
  const userSk = generateSecretKey()
  const userPk = getPublicKey(userSk)
  await publishAs(userSk, plain.url, 10050, [['relay', dmProxy.url]])
  queueDm(db, userPk, 'over tls')
  robot.kick()
  await eventually(() => sql(db, 'SELECT state FROM message') === 'sent', 'sent over wss')
  const wraps = await authedQuery(dmPlain.url.replace('127.0.0.1', 'localhost'), userSk, { kinds: [1059], '#p': [userPk] })
  assert.equal(wraps.length, 1)
  assert.equal(openWrap(wraps[0], userSk, robot.pubkey).content, 'over tls')
  assert.equal(await robot.stop(), 0)
})

test('without relay lists: one warning naming the variables, DMs stay queued untouched', async () => {
  const db = newDb()
  const robot = await startRobot(db, { ROBOT_SECRET: bytesToHex(generateSecretKey()), ROBOT_OUTBOX_RELAYS: '', ROBOT_INDEXER_RELAYS: '', ROBOT_MESSAGING_RELAYS: '' })
  cleanups.push(() => robot.kill9())
  queueDm(db, getPublicKey(generateSecretKey()), 'waits')
  robot.kick()
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.equal(await robot.stop(), 0)
  const warns = robot.log().split('\n').filter((l) => l.includes('WARN'))
  assert.equal(warns.length, 1)
  for (const v of ['ROBOT_OUTBOX_RELAYS', 'ROBOT_INDEXER_RELAYS', 'ROBOT_MESSAGING_RELAYS']) assert.ok(warns[0].includes(v))
  assert.equal(sql(db, "SELECT state || '|' || attempts || '|' || coalesce(last_error, '') FROM message"), 'queued|0|')
})

test('the service itself: profile published at start-up, a DM queued while it was down delivered', async () => {
  const [outbox, indexer, messaging, dmRelay] = await Promise.all([relay(), relay(), relay(), relay()])
  const robotSk = generateSecretKey()
  const env = robotEnv(outbox.url, indexer.url, messaging.url, { ROBOT_SECRET: bytesToHex(robotSk) })
  delete env.CARAVEL_ROBOT_RETRY_BASE
  const robotPk = getPublicKey(robotSk)
  let srv = await startServer({ env })
  cleanups.push(() => srv.kill9())
  const evs = await eventually(async () => {
    const got = await query(indexer.url, { authors: [robotPk] })
    return got.length === 3 ? got : null
  }, 'the service published kinds 0, 10002, 10050')
  assert.deepEqual(evs.map((e) => e.kind).sort((a, b) => a - b), [0, 10002, 10050])
  assert.equal(await srv.stop(), 0)

  const userSk = generateSecretKey()
  const userPk = getPublicKey(userSk)
  await publishAs(userSk, indexer.url, 10050, [['relay', dmRelay.url]])
  queueDm(srv.dbPath, userPk, 'queued while the service was down')
  srv = await srv.restart()
  const wraps = await eventually(async () => {
    const got = await query(dmRelay.url, { kinds: [1059], '#p': [userPk] })
    return got.length ? got : null
  }, 'the DM from the service')
  assert.equal(wraps.length, 1)
  assert.equal(openWrap(wraps[0], userSk, robotPk).content, 'queued while the service was down')
  await eventually(() => sql(srv.dbPath, 'SELECT state FROM message') === 'sent', 'row sent')
  assert.equal(await srv.stop(), 0)
})
