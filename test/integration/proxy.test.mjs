// deploy/nginx.conf in front of the service: Debian's nginx terminates TLS (a test CA made
// with openssl) and proxies to the service on 127.0.0.1, PUBLIC_URL being the proxy's
// origin. NIP-98 tokens naming the public URL work through the proxy (both token styles);
// tokens naming the service's direct URL are refused, directly and through the proxy.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import https from 'node:https'
import { startServer } from './lib/server.mjs'
import { newUser, token, sessionToken, rawToken } from './lib/auth.mjs'
import { makeTestPki } from './lib/tls-proxy.mjs'
import { startNginxProxy, freePort, NGINX } from './lib/nginx.mjs'

let srv, px, pki, ca

// One request over https with the test CA (fetch cannot take a CA per call).
function req (url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    if (data) headers['Content-Type'] = 'application/json'
    const r = https.request(url, { method, headers, ca, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        let json = null
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, body: json })
      })
    })
    r.on('error', reject)
    r.end(data)
  })
}

before(async () => {
  assert.ok(fs.existsSync(NGINX), 'nginx is installed by scripts/deps.sh all')
  pki = makeTestPki()
  ca = fs.readFileSync(pki.caFile)
  const [httpsPort, httpPort] = [await freePort(), await freePort()]
  srv = await startServer({ env: { PUBLIC_URL: `https://localhost:${httpsPort}` } })
  px = await startNginxProxy({ upstreamPort: srv.port, httpsPort, httpPort, pki })
})

after(async () => {
  if (px) await px.stop()
  if (srv) assert.equal(await srv.stop(), 0)
  if (pki) fs.rmSync(pki.dir, { recursive: true, force: true })
})

test('public routes through TLS at the proxy', async () => {
  const r = await req(px.origin + '/healthz')
  assert.equal(r.status, 200)
  assert.deepEqual(r.body, { data: { status: 'ok' }, code: 'ok' })
  assert.match(r.headers['content-type'], /^application\/json/)
  const p = await req(px.origin + '/plans/basic')
  assert.equal(p.body.data.id, 'basic')
})

test('per-request tokens whose u is the public URL are accepted', async () => {
  const user = newUser()
  const url = px.origin + '/tenants'
  const created = await req(url, { method: 'POST', headers: { Authorization: await token(user, url, 'POST', {}) }, body: {} })
  assert.equal(created.status, 201, created.text)
  assert.equal(created.body.data.pubkey, user.pk)
  const tUrl = `${px.origin}/tenants/${user.pk}`
  const got = await req(tUrl, { headers: { Authorization: await token(user, tUrl, 'GET') } })
  assert.equal(got.status, 200)
  assert.equal(got.body.data.pubkey, user.pk)
  // A POST with a body: the payload tag is checked on the bytes that went through nginx.
  const rUrl = px.origin + '/relays'
  const body = { subdomain: 'proxied', plan: 'free' }
  const relay = await req(rUrl, { method: 'POST', headers: { Authorization: await token(user, rUrl, 'POST', body) }, body })
  assert.equal(relay.status, 201, relay.text)
  assert.equal(relay.body.data.subdomain, 'proxied')
})

test('the dashboard session token (u = public origin) is accepted', async () => {
  const user = newUser()
  const auth = sessionToken(user, px.origin)
  for (let i = 0; i < 2; i++) { // reused, as the dashboard does
    const r = await req(px.origin + '/identity', { headers: { Authorization: auth } })
    assert.equal(r.status, 200)
    assert.deepEqual(r.body.data, { pubkey: user.pk, is_admin: false, is_tenant: false })
  }
})

test('tokens naming the service\'s direct URL are refused (401)', async () => {
  const user = newUser()
  const direct = srv.url + '/identity'
  const auth = await token(user, direct, 'GET')
  // straight to the service ...
  const a = await fetch(direct, { headers: { Authorization: auth } })
  assert.equal(a.status, 401)
  assert.equal((await a.json()).code, 'unauthorized')
  // ... and through the proxy
  const b = await req(px.origin + '/identity', { headers: { Authorization: auth } })
  assert.equal(b.status, 401)
  assert.equal(b.body.code, 'unauthorized')
  // a session token for the direct origin, and an http:// variant of the public origin
  for (const u of [srv.url, px.origin.replace('https:', 'http:'), `https://localhost:${srv.port}`]) {
    const r = await req(px.origin + '/identity', { headers: { Authorization: rawToken(user, { u }) } })
    assert.equal(r.status, 401, u)
  }
})

test('plain HTTP at the proxy redirects to https and carries no token', async () => {
  const r = await fetch(px.httpOrigin + '/identity', { redirect: 'manual' })
  assert.equal(r.status, 301)
  assert.equal(r.headers.get('location'), `https://localhost/identity`)
  assert.doesNotMatch(px.errorLog(), /\[(emerg|alert|crit)\]/)
})
