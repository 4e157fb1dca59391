// The test zooid (lib/zooid.mjs) itself, point by point against what zooid's Go code does, so
// the sync tests run against a zooid that refuses what the real one refuses: the Host check,
// NIP-98 (scheme, query, time window), the three 409s, 400/404, the deep-merge PATCH, the
// members endpoint, and NIP-86 on each relay's own host with zooid's callers.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { generateSecretKey, getPublicKey, finalizeEvent } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils.js'
import { startZooid } from './lib/zooid.mjs'

const apiKey = generateSecretKey()
const owner = generateSecretKey()
const relaySk = generateSecretKey()
let z

before(async () => {
  z = await startZooid({ whitelist: [getPublicKey(apiKey)] })
})
after(async () => {
  await z?.stop()
})

// One management API request, signed like zooid expects unless opts say otherwise.
function call(method, path, body, opts = {}) {
  const host = opts.host ?? z.apiHost
  const scheme = opts.scheme ?? (opts.proto === 'https' ? 'https' : 'http')
  const tags = [['u', opts.u ?? `${scheme}://${host}${path.split('?')[0]}`], ['method', opts.methodTag ?? method]]
  const ev = finalizeEvent({ kind: opts.kind ?? 27235, created_at: opts.createdAt ?? Math.floor(Date.now() / 1000), tags, content: '' },
    opts.sk ?? apiKey)
  let token = Buffer.from(JSON.stringify(ev)).toString('base64')
  if (opts.unpadded) token = token.replace(/=+$/, '')
  const raw = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body)
  const headers = { host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw), authorization: `Nostr ${token}` }
  if (opts.proto) headers['x-forwarded-proto'] = opts.proto
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: z.port, method, path, headers }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => {
        let json = null
        try {
          json = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode, json, text })
      })
    })
    r.on('error', reject)
    r.end(raw)
  })
}

let n = 0
const config = (over = {}) => {
  n++
  return { host: `r${n}.spaces.test`, schema: `r${n}`, secret: bytesToHex(relaySk), info: { name: `R${n}`, pubkey: getPublicKey(owner) },
    management: { enabled: true }, ...over }
}

test('management API only on API_HOST; NIP-98 as zooid checks it', async () => {
  const c = config()
  assert.equal((await call('POST', '/relay/h1', c, { host: `localhost:${z.port}` })).status, 404) // not API_HOST
  assert.equal(z.requests.at(-1).misrouted, true)
  assert.equal((await call('POST', '/relay/h1', c, { proto: 'https', scheme: 'http' })).status, 401) // proxy says https
  assert.equal((await call('POST', '/relay/h1', c, { scheme: 'https' })).status, 401) // no proxy: http
  assert.equal((await call('POST', '/relay/h1?x=1', c, { u: `http://${z.apiHost}/relay/h1?x=1` })).status, 401) // query not in u
  assert.equal((await call('POST', '/relay/h1', c, { createdAt: Math.floor(Date.now() / 1000) - 61 })).status, 401)
  // Far enough past the window that the seconds between signing and zooid's check (a loaded
  // machine can take more than one) cannot bring the token back inside it.
  assert.equal((await call('POST', '/relay/h1', c, { createdAt: Math.floor(Date.now() / 1000) + 70 })).status, 401)
  assert.equal((await call('POST', '/relay/h1', c, { unpadded: true })).status, 401)
  assert.equal((await call('POST', '/relay/h1', c, { kind: 27236 })).status, 401)
  assert.equal((await call('POST', '/relay/h1', c, { methodTag: 'PUT' })).status, 401)
  const denied = await call('POST', '/relay/h1', c, { sk: generateSecretKey() })
  assert.deepEqual([denied.status, denied.json], [403, { error: 'pubkey not in whitelist' }])
  assert.equal(z.configs.has('h1'), false)
  assert.equal((await call('POST', '/relay/h1?x=1', c, { proto: 'https' })).status, 201) // https via proxy, query ignored
  assert.equal((await call('POST', '/relay/h2', config(), { createdAt: Math.floor(Date.now() / 1000) - 45 })).status, 201) // inside, with room for a slow check
  assert.equal((await call('GET', '/relays/h1')).status, 404)
  assert.equal((await call('PUT', '/relay/', c)).status, 400)
  assert.equal((await call('GET', '/relay/h1')).status, 405)
})

test('POST/PUT/PATCH/DELETE status codes: three 409s, 400, 404', async () => {
  const a = config()
  assert.equal((await call('POST', '/relay/a', a)).status, 201)
  const again = await call('POST', '/relay/a', '{not json') // existence is checked before the body
  assert.deepEqual([again.status, again.json.error], [409, 'relay with this id already exists'])
  const schema = await call('POST', '/relay/b', config({ schema: a.schema }))
  assert.deepEqual([schema.status, schema.json.error], [409, `schema "${a.schema}" is already in use`])
  const host = await call('POST', '/relay/b', config({ host: a.host }))
  assert.deepEqual([host.status, host.json.error], [409, `host "${a.host}" is already in use`])
  for (const bad of [config({ schema: '9x' }), config({ secret: 'zz' }), config({ info: { pubkey: '' } }), config({ host: 5 }),
    config({ inactive: 'yes' }), config({ blossom: { adapter: 's3', s3: { bucket: 'b' } } }), '[1]', '{']) {
    const r = await call('POST', '/relay/b', bad)
    assert.equal(r.status, 400, JSON.stringify(bad))
    assert.ok(r.json.error)
  }
  assert.equal((await call('PUT', '/relay/missing', config())).status, 404)
  assert.equal((await call('PATCH', '/relay/missing', { info: { name: 'x' } })).status, 404)
  assert.equal((await call('DELETE', '/relay/missing')).status, 404)
  const b = config()
  assert.equal((await call('POST', '/relay/b', { ...b, unknown_key: 1 })).status, 201)
  assert.equal('unknown_key' in z.configs.get('b'), false) // decoded into the typed config
  assert.equal((await call('PUT', '/relay/b', { ...b, host: a.host })).status, 409)
  assert.equal((await call('PATCH', '/relay/b', { schema: a.schema })).status, 409)
  assert.equal((await call('PATCH', '/relay/b', { secret: null })).status, 400) // the merge result is validated
  assert.equal((await call('PUT', '/relay/b', { ...b, info: { name: 'put' } })).status, 400) // PUT is a whole config
  assert.equal((await call('PUT', '/relay/b', { ...b, info: { ...b.info, name: 'put' } })).status, 200)
  assert.equal((await call('DELETE', '/relay/b')).status, 200)
  assert.equal(z.configs.has('b'), false)
})

test('PATCH deep-merges: objects merge, arrays replace, null deletes', async () => {
  const pk1 = getPublicKey(generateSecretKey())
  const pk2 = getPublicKey(generateSecretKey())
  const c = config({ info: { name: 'N', icon: 'I', description: 'D', pubkey: getPublicKey(owner) },
    livekit: { server_url: 'wss://lk', api_key: 'k', api_secret: 's' }, roles: { mod: { pubkeys: [pk1], can_manage: true } } })
  assert.equal((await call('POST', '/relay/m', c)).status, 201)
  assert.equal((await call('PATCH', '/relay/m', { info: { name: 'N2' }, livekit: null, roles: { mod: { pubkeys: [pk2] } } })).status, 200)
  const s = z.configs.get('m')
  assert.deepEqual(s.info, { name: 'N2', icon: 'I', description: 'D', pubkey: getPublicKey(owner) })
  assert.deepEqual(s.livekit, { server_url: '', api_key: '', api_secret: '' }) // deleted: zero value
  assert.deepEqual(s.roles.mod, { pubkeys: [pk2], can_invite: false, can_manage: true })
  assert.equal(s.secret, bytesToHex(relaySk)) // kept from the POST
  assert.equal((await call('PATCH', '/relay/m', { roles: { mod: { pubkeys: [] } } })).status, 200)
  assert.deepEqual(z.configs.get('m').roles.mod.pubkeys, [])
})

test('GET /relay/{id}/members; the older zooid answers 405 there', async () => {
  const c = config()
  assert.equal((await call('POST', '/relay/mem', c)).status, 201)
  const r = await call('GET', '/relay/mem/members')
  assert.equal(r.status, 200)
  assert.deepEqual(new Set(r.json.members), new Set([getPublicKey(owner), getPublicKey(relaySk)]))
  assert.equal((await call('GET', '/relay/nope/members')).status, 404)
  const old = await startZooid({ whitelist: [getPublicKey(apiKey)], membersEndpoint: false, window: null })
  try {
    const saved = z
    z = old
    try {
      assert.equal((await call('POST', '/relay/mem', c, { createdAt: 1 })).status, 201) // no time window in the older code
      assert.equal((await call('GET', '/relay/mem/members')).status, 405)
    } finally {
      z = saved
    }
  } finally {
    await old.stop()
  }
})

test('NIP-86 on the relay host: owner, own key, can_manage roles; payload required; changerelayname writes the config', async () => {
  const mod = generateSecretKey()
  const inviter = generateSecretKey()
  const stranger = generateSecretKey()
  const c = config({ roles: { mod: { pubkeys: [getPublicKey(mod)], can_manage: true }, inv: { pubkeys: [getPublicKey(inviter)], can_invite: true } } })
  assert.equal((await call('POST', '/relay/rpc', c)).status, 201)
  const rename = (sk, name, opts) => z.nip86(c.host, 'changerelayname', [name], sk, opts)
  for (const sk of [owner, relaySk, mod]) {
    const r = await rename(sk, `by ${getPublicKey(sk).slice(0, 4)}`)
    assert.deepEqual([r.status, r.json], [200, { result: true }])
    assert.equal(z.configs.get('rpc').info.name, `by ${getPublicKey(sk).slice(0, 4)}`)
  }
  for (const sk of [inviter, stranger]) {
    const r = await rename(sk, 'nope')
    assert.deepEqual([r.status, r.json.error], [200, 'blocked: only relay admins can manage this relay.'])
  }
  assert.equal((await rename(owner, 'x', { payload: false })).status, 401)
  assert.equal((await rename(owner, 'x', { u: `https://other.test/` })).status, 401)
  // The scheme: X-Forwarded-Proto when set, else https for a host name without a port.
  assert.equal((await rename(owner, 'x', { u: `https://${c.host}/`, headers: { 'x-forwarded-proto': 'http' } })).status, 401)
  assert.equal((await rename(owner, 'x', { proto: 'http', u: `http://${c.host}/` })).status, 401)
  assert.equal((await rename(owner, 'x', { createdAt: Math.floor(Date.now() / 1000) - 120 })).status, 401)
  assert.equal(z.configs.get('rpc').info.name, `by ${getPublicKey(mod).slice(0, 4)}`)
  assert.equal(z.rpcs.at(-1).status, 401)
  // Other hosts: unknown -> 404, and the API host does not serve NIP-86.
  assert.equal((await z.nip86('nowhere.test', 'supportedmethods', [], owner)).status, 404)
  // Bans, members and claims.
  const bad = getPublicKey(generateSecretKey())
  assert.deepEqual((await z.nip86(c.host, 'allowpubkey', [bad], owner)).json, { result: true })
  assert.ok(z.members('rpc').includes(bad))
  assert.deepEqual((await z.nip86(c.host, 'banpubkey', [bad, 'spam'], owner)).json, { result: true })
  assert.equal(z.members('rpc').includes(bad), false)
  assert.deepEqual((await z.nip86(c.host, 'listbannedpubkeys', [], mod)).json.result, [{ pubkey: bad, reason: 'spam' }])
  assert.equal((await z.nip86(c.host, 'banpubkey', ['xyz'], owner)).json.error.startsWith('invalid params'), true)
  assert.deepEqual((await z.nip86(c.host, 'createclaim', ['code1'], owner)).json, { result: true })
  assert.deepEqual((await z.nip86(c.host, 'listclaims', [], owner)).json.result, ['code1'])
  assert.deepEqual((await z.nip86(c.host, 'stats', [], owner)).json.error, "method 'stats' not known")
  // An inactive relay is not served; management.enabled false answers nothing.
  assert.equal((await call('PATCH', '/relay/rpc', { inactive: true })).status, 200)
  assert.equal((await rename(owner, 'x')).status, 404)
  assert.equal((await call('PATCH', '/relay/rpc', { inactive: false, management: { enabled: false } })).status, 200)
  assert.match((await rename(owner, 'x')).json.error, /not supported/)
})
