// deploy/nginx-instances.conf: Debian's nginx (TLS, as shipped but for the addresses) in front
// of two caravel instances on one PostgreSQL database, started at the same moment on the empty
// database. Requests alternate between the instances; what one writes the other reads; with
// one instance stopped, the other serves every request.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import https from 'node:https'
import { startServer } from './lib/server.mjs'
import { testDatabase } from './lib/postgres.mjs'
import { newUser, token } from './lib/auth.mjs'
import { generateSecretKey } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils'
import { makeTestPki } from './lib/tls-proxy.mjs'
import { startNginxProxy, freePort, NGINX } from './lib/nginx.mjs'

let a, b, px, ca, origin

// One request over https with the test CA and a fresh NIP-98 token naming the public URL.
async function req (user, method, p, body) {
  const url = origin + p
  const headers = {}
  if (user) headers.Authorization = await token(user, url, method, body)
  const data = body === undefined ? undefined : JSON.stringify(body)
  if (data) headers['Content-Type'] = 'application/json'
  return new Promise((resolve, reject) => {
    const r = https.request(url, { method, headers, ca, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, text, body: JSON.parse(text) }))
    })
    r.on('error', reject)
    r.end(data)
  })
}

// The upstream of the requests whose log line ends with suffix, once n of them are logged (nginx
// writes the line after the answer).
async function logged (suffix, n) {
  for (const end = Date.now() + 10000; ;) {
    const lines = px.upstreams().filter((l) => l.endsWith(suffix))
    if (lines.length >= n || Date.now() > end) {
      assert.equal(lines.length, n, lines.join('; '))
      return lines.map((l) => l.slice(0, -suffix.length))
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

before(async () => {
  assert.ok(fs.existsSync(NGINX), 'nginx is installed by scripts/deps.sh all')
  const pki = makeTestPki()
  ca = fs.readFileSync(pki.caFile)
  const [httpsPort, httpPort] = [await freePort(), await freePort()]
  origin = `https://localhost:${httpsPort}`
  // ROBOT_SECRET on every instance, as docs/OPERATIONS.md says: without it two instances
  // starting together on an empty database race to generate and store the robot key.
  const env = { DATABASE_URL: await testDatabase(), PUBLIC_URL: origin, ROBOT_SECRET: bytesToHex(generateSecretKey()) }
  const started = await Promise.allSettled([startServer({ env }), startServer({ env })])
  ;[a, b] = started.map((r) => r.status === 'fulfilled' ? r.value : null) // after() stops what started
  for (const r of started) if (r.status === 'rejected') throw r.reason
  px = await startNginxProxy({ site: 'deploy/nginx-instances.conf', upstreamPorts: [a.port, b.port], httpsPort, httpPort, pki })
})

after(async () => {
  if (px) await px.stop()
  for (const s of [a, b]) if (s) assert.equal(await s.stop(), 0)
})

test('requests alternate between the two instances; writes on one are read on the other', async () => {
  const user = newUser()
  assert.equal((await req(user, 'POST', '/tenants', {})).status, 201)
  const created = await req(user, 'POST', '/relays', { subdomain: `inst${Date.now() % 100000}`, plan: 'basic' })
  assert.equal(created.status, 201, created.text)
  const path = `/relays/${created.body.data.id}`
  for (let i = 0; i < 6; i++) {
    const r = await req(user, 'GET', path)
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(r.body.data, created.body.data)
  }
  const served = await logged(` GET ${path}`, 6)
  const addrs = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]
  for (const addr of addrs) assert.equal(served.filter((x) => x === addr).length, 3, `${addr} served half: ${served}`)
  for (let i = 1; i < served.length; i++) assert.notEqual(served[i], served[i - 1], 'round-robin')
})

test('with one instance stopped, the other serves every request', async () => {
  const user = newUser()
  assert.equal((await req(user, 'POST', '/tenants', {})).status, 201)
  assert.equal(await a.stop(), 0)
  a = null
  for (let i = 0; i < 6; i++) {
    const r = await req(user, 'GET', '/identity')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.body.data.is_tenant, true)
  }
  // Each answered by b; the first may have been tried on a first ('A, B': connection refused).
  const served = await logged(' GET /identity', 6)
  for (const s of served) assert.equal(s.split(', ').at(-1), `127.0.0.1:${b.port}`, served.join('; '))
})
