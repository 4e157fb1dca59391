// NIP-98 tokens as the dashboard and other clients make them, with nostr-tools.
import { createHash } from 'node:crypto'
import { generateSecretKey, getPublicKey, finalizeEvent } from 'nostr-tools/pure'
import * as nip98 from 'nostr-tools/nip98'

export function newUser () {
  const sk = generateSecretKey()
  return { sk, pk: getPublicKey(sk) }
}

// Standard per-request token (nostr-tools getToken); body is the object sent as JSON.
export async function token (user, url, method, body) {
  return nip98.getToken(url, method, (e) => finalizeEvent(e, user.sk), true, body)
}

// Hand-made token for hostile cases: any tags, any created_at, optional tampering.
export function rawToken (user, { u, method, payload, createdAt, kind = 27235, tamper = false }) {
  const tags = []
  if (u !== undefined) tags.push(['u', u])
  if (method !== undefined) tags.push(['method', method])
  if (payload !== undefined) tags.push(['payload', payload])
  const ev = finalizeEvent({ kind, created_at: createdAt ?? Math.floor(Date.now() / 1000), tags, content: '' }, user.sk)
  if (tamper) ev.content = 'x'
  return 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64')
}

// The dashboard's session token: u = API root, no method tag, reused.
export function sessionToken (user, baseUrl) {
  return rawToken(user, { u: baseUrl })
}

export function sha256hex (s) {
  return createHash('sha256').update(s).digest('hex')
}

// fetch with a fresh per-request token; returns { status, body, text, headers }.
export async function call (base, user, method, path, body) {
  const url = base + path
  const headers = {}
  if (user) headers.Authorization = await token(user, url, method, body)
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await r.text()
  let json = null
  try { json = JSON.parse(text) } catch {}
  return { status: r.status, body: json, text, headers: r.headers }
}
