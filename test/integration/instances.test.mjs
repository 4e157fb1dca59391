// deploy/nginx-instances.conf: Debian's nginx (TLS, as shipped but for the addresses) in front
// of two caravel instances on one PostgreSQL database, started at the same moment on the empty
// database (which is migrated once). Requests alternate between the instances; what one writes
// the other reads at once (no instance answers from a stale cache); a rolling restart of both
// under a steady mixed load fails no request; with one instance stopped, the other serves every
// request.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { repoRoot, startServer } from './lib/server.mjs'
import { testDatabase } from './lib/postgres.mjs'
import { newUser, token } from './lib/auth.mjs'
import { generateSecretKey } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils'
import { makeTestPki } from './lib/tls-proxy.mjs'
import { startNginxProxy, freePort, NGINX } from './lib/nginx.mjs'

let a, b, px, ca, origin, env

// One request with a fresh NIP-98 token naming the public URL: over https through nginx, or
// with via: an instance, straight to it over http (the token still names the public URL, as
// behind the proxy). agent: a keep-alive agent, else a connection of its own.
async function req (user, method, p, body, { via, agent } = {}) {
  const url = origin + p
  const headers = {}
  if (user) headers.Authorization = await token(user, url, method, body)
  const data = body === undefined ? undefined : JSON.stringify(body)
  if (data) headers['Content-Type'] = 'application/json'
  const mod = via ? http : https
  const target = via ? via.url + p : url
  return new Promise((resolve, reject) => {
    const opts = via ? { method, headers, agent: agent ?? false } : { method, headers, ca, agent: agent ?? false }
    const r = mod.request(target, opts, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        let json = null
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode, text, body: json })
      })
      res.on('error', reject)
    })
    r.on('error', reject)
    r.end(data)
  })
}

// The upstream of the requests whose log line ends with suffix (from line `from` of the log on),
// once n of them are logged (nginx writes the line after the answer).
async function logged (suffix, n, from = 0) {
  for (const end = Date.now() + 10000; ;) {
    const lines = px.upstreams().slice(from).filter((l) => l.endsWith(suffix))
    if (lines.length >= n || Date.now() > end) {
      assert.equal(lines.length, n, lines.join('; '))
      return lines.map((l) => l.slice(0, -suffix.length))
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

before(async () => {
  assert.ok(fs.existsSync(NGINX), 'nginx is installed by scripts/deps.sh all')
  const pki = makeTestPki()
  ca = fs.readFileSync(pki.caFile)
  const [httpsPort, httpPort] = [await freePort(), await freePort()]
  origin = `https://localhost:${httpsPort}`
  // ROBOT_SECRET on every instance, as docs/OPERATIONS.md says: without it two instances
  // starting together on an empty database race to generate and store the robot key.
  // HTTP_SHUTDOWN_IDLE as by default (lib/server.mjs sets 0 for the other tests).
  env = { DATABASE_URL: await testDatabase(), PUBLIC_URL: origin, ROBOT_SECRET: bytesToHex(generateSecretKey()), HTTP_SHUTDOWN_IDLE: '2' }
  const started = await Promise.allSettled([startServer({ env }), startServer({ env })])
  ;[a, b] = started.map((r) => r.status === 'fulfilled' ? r.value : null) // after() stops what started
  for (const r of started) if (r.status === 'rejected') throw r.reason
  px = await startNginxProxy({ site: 'deploy/nginx-instances.conf', upstreamPorts: [a.port, b.port], httpsPort, httpPort, pki })
})

after(async () => {
  if (px) await px.stop()
  for (const s of [a, b]) if (s) assert.equal(await s.stop(), 0)
})

test('both instances, started together on the empty database, migrated it once', async () => {
  const files = fs.readdirSync(path.join(repoRoot, 'migrations')).filter((f) => f.endsWith('.sql')).sort()
  const names = a.sql('SELECT name FROM schema_migrations ORDER BY name').split('\n')
  assert.equal(names.length, files.length, `one row per migration file: ${names}`)
  assert.equal(new Set(names).size, names.length, `each migration recorded once: ${names}`)
  // Applied by exactly one of the two (the other waited on the advisory lock, then found it done).
  const applied = (s) => [...s.logs().matchAll(/database migration (\S+) applied/g)].map((m) => m[1])
  const all = [...applied(a), ...applied(b)].sort()
  assert.deepEqual(all, names.slice().sort(), `applied once in all: a ${applied(a)}; b ${applied(b)}`)
  for (const s of [a, b]) {
    const h = await req(null, 'GET', '/healthz', undefined, { via: s })
    assert.equal(h.status, 200, h.text)
  }
})

test('no stale cache: a tenant created, or a relay changed, through one instance reads so on the other at once', async () => {
  // Both directions; each instance has just answered "not a tenant" for that pubkey (the
  // answer a cache would keep).
  for (const [writer, reader] of [[b, a], [a, b]]) {
    const user = newUser()
    const before = await req(user, 'GET', '/identity', undefined, { via: reader })
    assert.equal(before.status, 200, before.text)
    assert.equal(before.body.data.is_tenant, false)
    const created = await req(user, 'POST', '/tenants', {}, { via: writer })
    assert.equal(created.status, 201, created.text)
    const now = await req(user, 'GET', '/identity', undefined, { via: reader })
    assert.equal(now.status, 200, now.text)
    assert.equal(now.body.data.is_tenant, true, 'the reader answered from a stale "no"')
    // Every route acting for the tenant sees it too: a relay created on the reader at once,
    // read back on the writer.
    const relay = await req(user, 'POST', '/relays', { subdomain: `c${Date.now() % 1000000}${reader === a ? 'a' : 'b'}`, plan: 'free' }, { via: reader })
    assert.equal(relay.status, 201, relay.text)
    const p = `/relays/${relay.body.data.id}`
    const got = await req(user, 'GET', p, undefined, { via: writer })
    assert.equal(got.status, 200, got.text)
    // A relay the writer has just answered (what a GET /relays/:id cache would keep), changed
    // through the reader, reads changed on the writer at once.
    const name = `renamed on ${reader === a ? 'a' : 'b'}`
    const put = await req(user, 'PUT', p, { info_name: name }, { via: reader })
    assert.equal(put.status, 200, put.text)
    assert.equal(put.body.data.info_name, name)
    const again = await req(user, 'GET', p, undefined, { via: writer })
    assert.equal(again.status, 200, again.text)
    assert.equal(again.body.data.info_name, name, 'the writer answered from a stale relay')
  }
})

test('requests alternate between the two instances; writes on one are read on the other', async () => {
  const user = newUser()
  assert.equal((await req(user, 'POST', '/tenants', {})).status, 201)
  const created = await req(user, 'POST', '/relays', { subdomain: `inst${Date.now() % 100000}`, plan: 'basic' })
  assert.equal(created.status, 201, created.text)
  const p = `/relays/${created.body.data.id}`
  for (let i = 0; i < 6; i++) {
    const r = await req(user, 'GET', p)
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(r.body.data, created.body.data)
  }
  const served = await logged(` GET ${p}`, 6)
  const addrs = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]
  for (const addr of addrs) assert.equal(served.filter((x) => x === addr).length, 3, `${addr} served half: ${served}`)
  for (let i = 1; i < served.length; i++) assert.notEqual(served[i], served[i - 1], 'round-robin')
})

// A steady mixed load through nginx until stop() is called: each worker, in a loop, makes a new
// user a tenant (POST /tenants), creates a relay for it (POST /relays: neither write may be
// resent by nginx), reads it back three times (GET /relays/:id) and reads its identity. Every
// answer must be the expected 201/200; anything else (or a network error) is recorded.
function startLoad (workers) {
  const agent = new https.Agent({ keepAlive: true, ca, maxSockets: workers })
  const failures = []
  let done = 0
  let stopping = false
  const check = async (user, method, p, body, want) => {
    const t = Date.now()
    try {
      const r = await req(user, method, p, body, { agent })
      if (r.status !== want) failures.push(`${new Date(t).toISOString()} ${method} ${p}: ${r.status} ${r.text.slice(0, 200)}`)
      done++
      return r.status === want ? r : null
    } catch (e) {
      failures.push(`${new Date(t).toISOString()} ${method} ${p}: ${e.message}`)
      return null
    }
  }
  const worker = async (w) => {
    for (let i = 0; !stopping; i++) {
      const user = newUser()
      if (!await check(user, 'POST', '/tenants', {}, 201)) continue
      const r = await check(user, 'POST', '/relays', { subdomain: `roll${w}x${i}x${Date.now() % 100000}`, plan: 'free' }, 201)
      if (!r) continue
      for (let k = 0; k < 3; k++) await check(user, 'GET', `/relays/${r.body.data.id}`, undefined, 200)
      await check(user, 'GET', '/identity', undefined, 200)
    }
  }
  const running = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)))
  return {
    failures,
    done: () => done,
    stop: async () => { stopping = true; await running; agent.destroy() }
  }
}

// Requests nginx sent to addr since line `from` of its upstream log (the last hop of each).
function servedBy (addr, from) {
  return px.upstreams().slice(from).filter((l) => l.split(' ')[0] === addr || l.split(', ').at(-1).startsWith(addr + ' ')).length
}

// SIGTERM, then the same instance started again on its port; returns the new one once nginx
// has sent it requests again (its fail_timeout has passed).
async function rollingRestart (s) {
  assert.equal(await s.stop(), 0, s.logs().slice(-2000))
  const again = await startServer({ env, port: s.port })
  const mark = px.upstreams().length
  const addr = `127.0.0.1:${again.port}`
  for (const end = Date.now() + 30000; servedBy(addr, mark) < 5;) {
    assert.ok(Date.now() < end, `nginx sent no request to the restarted ${addr} in 30 s`)
    await sleep(100)
  }
  return again
}

// INSTANCES_ROLLS=N restarts both N times (a stress run: 25 rounds, 50 restarts, failed
// nothing; before the server drained its listener and idle connections, 1 restart in 16 failed
// a POST with a 502).
test('a rolling restart of both instances under a mixed API load fails no request', async () => {
  const load = startLoad(6)
  try {
    await sleep(1500)
    for (let round = 0; round < Number(process.env.INSTANCES_ROLLS || 1); round++) {
      a = await rollingRestart(a)
      await sleep(1000)
      b = await rollingRestart(b)
      await sleep(1000)
    }
  } finally {
    await load.stop()
  }
  const errors = px.errorLog().split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l))
  assert.deepEqual(load.failures, [], `failed through nginx; nginx errors: ${errors.join('\n')}`)
  assert.ok(load.done() > 100, `a steady load: ${load.done()} requests`)
})

test('with one instance stopped, the other serves every request', async () => {
  const user = newUser()
  assert.equal((await req(user, 'POST', '/tenants', {})).status, 201)
  assert.equal(await a.stop(), 0)
  a = null
  const mark = px.upstreams().length
  for (let i = 0; i < 6; i++) {
    const r = await req(user, 'GET', '/identity')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.body.data.is_tenant, true)
  }
  // Each answered by b; the first may have been tried on a first ('A, B': connection refused).
  const served = await logged(' GET /identity', 6, mark)
  for (const s of served) assert.equal(s.split(', ').at(-1), `127.0.0.1:${b.port}`, served.join('; '))
})
