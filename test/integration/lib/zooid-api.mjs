// The set-up the tests of caravel against the test zooid share (relay management, block list,
// relay members, sync): a zooid that accepts one key, caravel's settings that point at it, and
// API calls signed with a fresh NIP-98 token each (nostr-tools getToken, payload = the body).
import assert from 'node:assert/strict'
import { getPublicKey, finalizeEvent } from 'nostr-tools/pure'
import * as nip98 from 'nostr-tools/nip98'
import { startZooid } from './zooid.mjs'

// A test zooid (lib/zooid.mjs) whose API_WHITELIST is zooidKey's pubkey; opts go to startZooid.
export function startZooidFor (zooidKey, opts = {}) {
  return startZooid({ whitelist: [getPublicKey(zooidKey)], ...opts })
}

// caravel's settings for zooid z, signing with zooidKey.
export function zooidEnv (z, zooidKey) {
  return { ZOOID_API_URL: z.url, ZOOID_API_SECRET: Buffer.from(zooidKey).toString('hex') }
}

// One call to the API at base, signed by sk (none: no token): { status, json, text }.
export async function apiCall (base, method, p, body, sk) {
  const url = base + p
  const headers = {}
  if (sk) headers.Authorization = await nip98.getToken(url, method, (e) => finalizeEvent(e, sk), true, body)
  const init = { method, headers }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const r = await fetch(url, init)
  const text = await r.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: r.status, json, text }
}

// The same, asserting 200 or 201: the answer's data.
export async function okCall (base, method, p, body, sk) {
  const r = await apiCall(base, method, p, body, sk)
  assert.ok(r.status === 200 || r.status === 201, `${method} ${p} -> ${r.status} ${r.text}`)
  return r.json.data
}
