// What the sync worker sends to zooid (src/sync/zooid.c, through build/tools/zooid_tool), sent to the
// test zooid, which checks the NIP-98 like zooid (signature, kind, +-60 s, exact u, method,
// whitelist) and validates and stores the config like zooid.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import * as nip98 from 'nostr-tools/nip98'
import { bytesToHex } from '@noble/hashes/utils.js'
import { createHash } from 'node:crypto'
import { tool } from './lib/tool.mjs'
import { startZooid } from './lib/zooid.mjs'

const sk = generateSecretKey()
const tenant = getPublicKey(generateSecretKey())
let z

before(async () => {
  z = await startZooid({ whitelist: [getPublicKey(sk)] })
})
after(async () => {
  await z?.stop()
})

const relay = (over = {}) => ({
  id: 'rel1', tenant, subdomain: 'my-relay', schema: 'my_relay', secret: 'ab'.repeat(32), plan: 'basic',
  status: 'active', info_name: 'Name "q" é 😀', info_icon: '', info_description: 'd\nline',
  policy_public_join: true, groups_enabled: true, livekit_enabled: true, ...over,
})

const env = { relay_domain: 'spaces.test', livekit_url: 'wss://lk.test', livekit_api_key: 'k', livekit_api_secret: 's' }

function build(method, r, key = sk, now = Math.floor(Date.now() / 1000)) {
  const url = `${z.url}/relay/${r.id}`
  const out = tool('zooid_tool', { op: 'request', sk: bytesToHex(key), url, method, now, relay: r, ...env })
  return { url, ...out }
}

async function send(method, { url, body, authorization }) {
  const r = await fetch(url, { method, headers: { authorization, 'content-type': 'application/json' }, body })
  const text = await r.text()
  return { status: r.status, json: r.headers.get('content-type') === 'application/json' ? JSON.parse(text) : text }
}

test('POST, PATCH and PUT built in C pass nostr-tools NIP-98 checks and zooid validation', async () => {
  const post = build('POST', relay())
  const ev = await nip98.unpackEventFromToken(post.authorization)
  assert.equal(await nip98.validateEvent(ev, post.url, 'POST'), true) // nostr-tools' own checks
  assert.equal(ev.pubkey, getPublicKey(sk))
  assert.equal((await send('POST', post)).status, 201)
  const stored = z.configs.get('rel1')
  assert.equal(stored.host, 'my-relay.spaces.test')
  assert.equal(stored.secret, 'ab'.repeat(32))
  assert.equal(stored.info.name, 'Name "q" é 😀')
  assert.equal(stored.info.pubkey, tenant)
  assert.deepEqual(stored.livekit, { server_url: 'wss://lk.test', api_key: 'k', api_secret: 's' })
  assert.equal(stored.inactive, false)

  assert.equal((await send('POST', build('POST', relay()))).status, 409)

  const patch = build('PATCH', relay({ status: 'delinquent', plan: 'free', info_name: 'N2' }))
  assert.equal('secret' in JSON.parse(patch.body), false)
  assert.equal((await send('PATCH', patch)).status, 200)
  const after = z.configs.get('rel1')
  assert.equal(after.inactive, true)
  assert.deepEqual(after.livekit, { server_url: '', api_key: '', api_secret: '' }) // free plan: removed through null
  assert.equal(after.secret, 'ab'.repeat(32)) // kept from the POST

  const put = build('PUT', relay({ status: 'inactive' }))
  assert.equal(JSON.parse(put.body).secret, 'ab'.repeat(32))
  assert.equal((await send('PUT', put)).status, 200)
  assert.equal(z.configs.get('rel1').inactive, true)
})

test('tampering is refused by the zooid checks (the oracle is not a rubber stamp)', async () => {
  const r = relay({ id: 'rel2', subdomain: 'two', schema: 'two' })
  const good = build('POST', r)
  // zooid does not check the payload tag; the C code still sends the body's sha256 (NIP-98).
  const ev = await nip98.unpackEventFromToken(good.authorization)
  assert.equal(ev.tags.find((t) => t[0] === 'payload')[1], createHash('sha256').update(good.body).digest('hex'))
  assert.equal((await send('POST', { ...good, url: good.url.replace('127.0.0.1', 'localhost') })).status, 404) // Host != API_HOST
  assert.equal((await send('PUT', good)).status, 401) // method tag is POST
  assert.equal((await send('POST', { ...good, url: `${z.url}/relay/other` })).status, 401)
  assert.equal((await send('POST', build('POST', r, sk, Math.floor(Date.now() / 1000) - 3600))).status, 401)
  assert.equal((await send('POST', build('POST', r, generateSecretKey()))).status, 403)
  assert.equal((await send('POST', build('POST', { ...r, schema: '9bad' }))).status, 400)
  assert.equal((await send('POST', good)).status, 201)
})
