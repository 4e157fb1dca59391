// The dashboard's path in a real browser: Debian's headless Chromium loads a page from
// another origin (127.0.0.1, another port) that uses nostr-tools' browser bundle to sign
// NIP-98 tokens and calls the API through CORS (GET /identity, POST /tenants). The results
// are read back from the page and checked against the service. A page from an origin not in
// ALLOW_ORIGINS is blocked by the browser itself (CORS error reported by Chromium).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { startServer, repoRoot } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'
import { launchChromium, CHROMIUM } from './lib/chromium.mjs'

const bundle = path.join(repoRoot, 'test/node_modules/nostr-tools/lib/nostr.bundle.js')

const page = `<!doctype html><meta charset="utf-8"><title>caravel dashboard check</title>
<script src="/nostr.bundle.js"></script>
<script>
// What the dashboard does: a key in the browser, a NIP-98 token per request, fetch with CORS.
async function dashboard (api) {
  const { generateSecretKey, getPublicKey, finalizeEvent, nip98 } = window.NostrTools
  const sk = generateSecretKey()
  const sign = (e) => finalizeEvent(e, sk)
  const out = { pubkey: getPublicKey(sk) }
  const send = async (method, path, body) => {
    const url = api + path
    const auth = await nip98.getToken(url, method, sign, true, body)
    const headers = { Authorization: auth }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: r.status, body: await r.json() }
  }
  out.before = await send('GET', '/identity')
  out.created = await send('POST', '/tenants', {})
  out.after = await send('GET', '/identity')
  return out
}
async function blocked (api) {
  try {
    const r = await fetch(api + '/identity', { headers: { Authorization: 'Nostr e30' } })
    return { status: r.status }
  } catch (e) {
    return { error: e.name + ': ' + e.message }
  }
}
</script>`

function servePage () {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      if (req.url === '/nostr.bundle.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript' })
        res.end(fs.readFileSync(bundle))
      } else if (req.url === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
        res.end(page)
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    srv.listen(0, '127.0.0.1', () => resolve({ srv, origin: `http://127.0.0.1:${srv.address().port}` }))
  })
}

let api, allowed, other, browser
const admin = newUser()

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), 'chromium is installed by scripts/deps.sh all')
  assert.ok(fs.existsSync(bundle), 'nostr-tools ships lib/nostr.bundle.js')
  allowed = await servePage()
  other = await servePage()
  api = await startServer({ env: { ALLOW_ORIGINS: `${allowed.origin},https://dashboard.example`, ADMINS: admin.pk } })
  browser = await launchChromium()
}, { timeout: 60000 })

// Everything stops even when one of the stops fails; the first failure is reported.
after(async () => {
  const results = await Promise.allSettled([
    browser?.close(),
    api?.stop().then((code) => assert.equal(code, 0, 'caravel exits 0 on SIGTERM')),
    ...[allowed, other].map((p) => p && new Promise((resolve) => {
      p.srv.closeAllConnections()
      p.srv.close(resolve)
    }))
  ])
  const failure = results.find((r) => r.status === 'rejected')
  if (failure) throw failure.reason
}, { timeout: 60000 })

test('an allowed origin signs with nostr-tools in the page and calls the API through CORS', async () => {
  const tab = await browser.newPage()
  await tab.goto(allowed.origin + '/')
  const r = await tab.evaluate(`dashboard(${JSON.stringify(api.url)})`)
  assert.match(r.pubkey, /^[0-9a-f]{64}$/)
  assert.equal(r.before.status, 200)
  assert.deepEqual(r.before.body.data, { pubkey: r.pubkey, is_admin: false, is_tenant: false })
  assert.equal(r.created.status, 201)
  assert.equal(r.created.body.data.pubkey, r.pubkey)
  assert.equal(r.created.body.data.status, 'active')
  assert.equal(r.after.body.data.is_tenant, true)
  // The tenant the browser created is really there (asked by an admin, outside the browser).
  const t = await call(api.url, admin, 'GET', `/tenants/${r.pubkey}`)
  assert.equal(t.status, 200)
  assert.equal(t.body.data.pubkey, r.pubkey)
  // Chromium saw the preflight succeed: no CORS failure on this page.
  assert.ok(!tab.events.some((e) => e.method === 'Network.loadingFailed' && e.params.corsErrorStatus))
})

test('an origin not in ALLOW_ORIGINS is blocked by the browser', async () => {
  const tab = await browser.newPage()
  await tab.goto(other.origin + '/')
  const since = tab.events.length
  const r = await tab.evaluate(`blocked(${JSON.stringify(api.url)})`)
  assert.match(r.error || '', /^TypeError: Failed to fetch/, JSON.stringify(r))
  // The page's promise can settle before Chromium's network events reach us: wait for the
  // report instead of reading what has arrived so far.
  const failed = await tab.waitForEvent('Network.loadingFailed', (p) => p.corsErrorStatus, { since })
  assert.match(failed.corsErrorStatus.corsError, /AllowOrigin/, JSON.stringify(failed))
  // The same request from the allowed page goes through (and is refused by auth, not CORS).
  const ok = await browser.newPage()
  await ok.goto(allowed.origin + '/')
  assert.deepEqual(await ok.evaluate(`blocked(${JSON.stringify(api.url)})`), { status: 401 })
})
