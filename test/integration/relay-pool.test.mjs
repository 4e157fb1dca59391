// The C relay pool (src/net/relay_pool.c through build/tools/relay_tool) against the real test
// relay: publish checked by nostr-tools, REQ/EOSE, NIP-42 auth-required, wss:// through a TLS
// terminator with a private CA, reconnect + resubscribe, a relay that is down.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { bytesToHex } from '@noble/hashes/utils'
import { startRelay } from './lib/nostr-relay.mjs'
import { startTlsProxy } from './lib/tls-proxy.mjs'
import { track } from './lib/lifecycle.mjs'

useWebSocketImplementation(WebSocket)
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const BIN = process.env.CARAVEL_BIN ? path.join(path.dirname(process.env.CARAVEL_BIN), 'tools/relay_tool')
  : path.join(ROOT, 'build/tools/relay_tool')
const cleanups = []
after(async () => { for (const c of cleanups.reverse()) await c() })

function tool(args, env = {}) {
  return new Promise((resolve) => {
    const child = track(spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }))
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { err += d })
    child.on('exit', (code) => resolve({ code, out, err }))
  })
}

function publish(sk, content, urls, env) {
  return tool(['publish', bytesToHex(sk), '1', content, ...urls], env).then((r) => {
    assert.equal(r.code === 3, false, 'handles left open: ' + r.err)
    return { ...JSON.parse(r.out.trim()), code: r.code }
  })
}

async function fetchWithNostrTools(url, filter) {
  const relay = await Relay.connect(url)
  const events = []
  await new Promise((resolve) => {
    const sub = relay.subscribe([filter], { onevent: (e) => events.push(e), oneose: () => { sub.close(); resolve() } })
  })
  relay.close()
  return events
}

async function relayStarted(env) {
  const r = await startRelay(env)
  cleanups.push(() => r.stop())
  return r
}

test('publish reaches the relay with a valid signature; req returns stored events', async () => {
  const r = await relayStarted()
  const sk = generateSecretKey()
  const res = await publish(sk, 'from the C pool', [r.url])
  assert.equal(res.ok, 1)
  assert.equal(res.code, 0)
  const got = await fetchWithNostrTools(r.url, { ids: [res.id] })
  assert.equal(got.length, 1)
  assert.equal(got[0].content, 'from the C pool')
  assert.equal(got[0].pubkey, getPublicKey(sk))
  assert.ok(verifyEvent(got[0]))

  const other = finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: 'by nostr-tools' }, generateSecretKey())
  const relay = await Relay.connect(r.url)
  await relay.publish(other)
  relay.close()
  const q = await tool(['req', '-', JSON.stringify([{ ids: [other.id] }]), r.url])
  assert.equal(q.code, 0)
  const lines = q.out.trim().split('\n')
  assert.equal(lines.at(-1), 'EOSE')
  assert.equal(lines.length, 2)
  assert.deepEqual(JSON.parse(lines[0].slice(6)), JSON.parse(JSON.stringify(other)))

  // the same event on two relays of one subscription is delivered once
  const r2 = await relayStarted()
  const relay2 = await Relay.connect(r2.url)
  await relay2.publish(other)
  relay2.close()
  const both = await tool(['req', '-', JSON.stringify([{ ids: [other.id] }]), r.url, r2.url])
  assert.deepEqual(both.out.trim().split('\n').map((l) => l.slice(0, 5)), ['EVENT', 'EOSE'])
})

test('auth-required relay: the pool answers AUTH and retries', async () => {
  const r = await relayStarted({ AUTH_HOSTNAME: '127.0.0.1', AUTH_REQUIRED: '1' })
  const sk = generateSecretKey()
  const res = await publish(sk, 'after auth', [r.url])
  assert.equal(res.ok, 1, JSON.stringify(res))
  const q = await tool(['req', bytesToHex(sk), JSON.stringify([{ ids: [res.id] }]), r.url])
  const lines = q.out.trim().split('\n')
  assert.equal(lines.length, 2, q.out)
  assert.equal(JSON.parse(lines[0].slice(6)).content, 'after auth')
  // without a key the relay refuses, and the pool reports the refusal
  const anon = await tool(['req', '-', JSON.stringify([{ ids: [res.id] }]), r.url])
  assert.equal(anon.out.trim(), 'EOSE')
})

test('wss:// through a TLS terminator with a private CA', async () => {
  const r = await relayStarted({ AUTH_HOSTNAME: 'localhost', AUTH_REQUIRED: '1' })
  const proxy = await startTlsProxy(Number(new URL(r.url).port))
  cleanups.push(() => proxy.stop())
  const sk = generateSecretKey()
  const env = { CARAVEL_CA_FILE: proxy.caFile }
  const res = await publish(sk, 'over tls', [proxy.url], env)
  assert.equal(res.ok, 1, JSON.stringify(res))
  const q = await tool(['req', bytesToHex(sk), JSON.stringify([{ ids: [res.id] }]), proxy.url], env)
  assert.equal(JSON.parse(q.out.trim().split('\n')[0].slice(6)).content, 'over tls')
  // the system bundle does not know the private CA: refused
  const bad = await publish(sk, 'x', [proxy.url])
  assert.equal(bad.ok, 0)
  assert.match(bad.error, /connection/)
})

test('a relay that is down fails the publish quickly; reconnect resubscribes', async () => {
  const down = await publish(generateSecretKey(), 'x', ['ws://127.0.0.1:1'])
  assert.equal(down.ok, 0)
  assert.equal(down.code, 1)

  let r = await startRelay()
  const port = new URL(r.url).port
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  const listener = track(spawn(BIN, ['listen', '-', JSON.stringify([{ kinds: [1], authors: [pk] }]), r.url], { stdio: ['pipe', 'pipe', 'inherit'] }))
  cleanups.push(() => listener.kill('SIGKILL'))
  let out = ''
  listener.stdout.on('data', (d) => { out += d })
  const waitFor = (re, text = () => out, ms = 20000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => { clearInterval(i); reject(new Error('timeout waiting for ' + re + ' in ' + out)) }, ms)
    const i = setInterval(() => { if (re.test(text())) { clearTimeout(t); clearInterval(i); resolve() } }, 20)
  })
  // The connection states in order, whatever EOSE lines fall between them (EOSE of the first
  // subscription may be printed before or after CONNECTED 1).
  const states = () => out.split('\n').filter((l) => l.startsWith('CONNECTED ')).join('\n')
  await waitFor(/EOSE/)
  await waitFor(/CONNECTED 1/, states)
  await r.stop()
  await waitFor(/CONNECTED 1\nCONNECTED 0/, states)
  r = await startRelay({ PORT: port })
  cleanups.push(() => r.stop())
  await waitFor(/CONNECTED 1\nCONNECTED 0\nCONNECTED 1/, states)
  // Connected is not yet resubscribed: the relay registers the REQ after its stored query, and
  // an event published in between is in neither. Publish until one arrives live (one event
  // per attempt; a later one can only come after the subscription is in place).
  const relay = await Relay.connect(r.url)
  for (let n = 0; !/after restart/.test(out); n++) {
    assert.ok(n < 40, 'no event delivered after the reconnect in 20 s: ' + out)
    await relay.publish(finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: `after restart ${n}` }, sk))
    await waitFor(/after restart/, () => out, 500).catch(() => {})
  }
  relay.close()
  const exited = new Promise((resolve) => listener.on('exit', resolve))
  listener.stdin.end()
  assert.equal(await exited, 0)
})

test('DM relay discovery: indexer 10050, or 10002 write relays holding the 10050; newest wins', async () => {
  const indexer = await relayStarted()
  const writeRelay = await relayStarted()
  const now = Math.floor(Date.now() / 1000)
  const pub = async (url, ev) => { const r = await Relay.connect(url); await r.publish(ev); r.close() }
  // user A: 10050 on the indexer (an older one elsewhere loses)
  const a = generateSecretKey()
  await pub(indexer.url, finalizeEvent({ kind: 10050, created_at: now, tags: [['relay', 'wss://dm-a.example'], ['relay', 'https://not-ws.example']], content: '' }, a))
  await pub(writeRelay.url, finalizeEvent({ kind: 10050, created_at: now - 100, tags: [['relay', 'wss://old.example']], content: '' }, a))
  await pub(indexer.url, finalizeEvent({ kind: 10002, created_at: now, tags: [['r', writeRelay.url]], content: '' }, a))
  let r = await tool(['dm-relays', getPublicKey(a), '-', indexer.url])
  assert.equal(r.out, 'wss://dm-a.example\nEND\n')
  // user B: only a 10002 on the indexer; the 10050 sits on B's write relay
  const b = generateSecretKey()
  await pub(indexer.url, finalizeEvent({ kind: 10002, created_at: now, tags: [['r', 'wss://read-only.example', 'read'], ['r', writeRelay.url, 'write']], content: '' }, b))
  await pub(writeRelay.url, finalizeEvent({ kind: 10050, created_at: now, tags: [['relay', 'wss://dm-b.example']], content: '' }, b))
  r = await tool(['dm-relays', getPublicKey(b), '-', indexer.url])
  assert.equal(r.out, 'wss://dm-b.example\nEND\n')
  // user C: nothing anywhere
  r = await tool(['dm-relays', getPublicKey(generateSecretKey()), '-', indexer.url])
  assert.equal(r.out, 'END\n')
  assert.equal(r.code, 0)
})

test('scripted relay: forged events dropped, refusals reported capped, NOTICE ignored', async () => {
  const { WebSocketServer } = await import('ws')
  const sk = generateSecretKey()
  const good = finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: 'good' }, sk)
  const forged = { ...good, content: 'forged' } // id and sig no longer match
  const badSig = { ...good, sig: good.sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) }
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => wss.on('listening', resolve))
  cleanups.push(() => new Promise((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(resolve) }))
  const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 }) // accepts, never answers
  await new Promise((resolve) => silent.on('listening', resolve))
  cleanups.push(() => new Promise((resolve) => { for (const c of silent.clients) c.terminate(); silent.close(resolve) }))
  const silentReq = tool(['req', '-', JSON.stringify([{ kinds: [1] }]), `ws://127.0.0.1:${silent.address().port}`])
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify(['NOTICE', 'hello']))
    ws.send('not json at all')
    ws.on('message', (data) => {
      const m = JSON.parse(data)
      if (m[0] === 'REQ') {
        for (const e of [forged, badSig, good]) ws.send(JSON.stringify(['EVENT', m[1], e]))
        ws.send(JSON.stringify(['EVENT', 'other-sub', good]))
        ws.send(JSON.stringify(['EOSE', m[1]]))
      } else if (m[0] === 'EVENT') {
        ws.send(JSON.stringify(['OK', m[1].id, false, 'blocked: ' + 'x'.repeat(10000)]))
      }
    })
  })
  const url = `ws://127.0.0.1:${wss.address().port}`
  const q = await tool(['req', '-', JSON.stringify([{ kinds: [1] }]), url])
  const lines = q.out.trim().split('\n')
  assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['EVENT', 'EOSE'])
  assert.equal(JSON.parse(lines[0].slice(6)).content, 'good')
  const res = await publish(sk, 'refused', [url])
  assert.equal(res.ok, 0)
  assert.ok(res.error.startsWith('blocked: xxx'))
  assert.ok(res.error.length <= 256, `relay string capped (${res.error.length})`)
  // a relay that never sends EOSE does not hold the subscription forever
  const sr = await silentReq
  assert.equal(sr.out, 'EOSE\n')
})
