// A test zooid that behaves like zooid's own Go code (its management API, and each virtual
// relay's NIP-86 endpoint), one HTTP server in the test process:
//
// Management API (only for requests whose Host header equals apiHost, port included; any other
// Host is routed to the relay whose config has that host, else a plain-text 404):
//   - NIP-98 checked first: "Authorization: Nostr <padded standard base64>", kind 27235, valid
//     id and signature, a `u` tag equal to scheme://Host/path (https only with
//     X-Forwarded-Proto: https; the query string is not part of it), a `method` tag equal to the
//     HTTP method, created_at within `window` seconds of zooid's clock (the newer code; window
//     null = the older code, which checks no time). The payload tag is not checked. Failure ->
//     401 {"error"}; a signer outside the whitelist -> 403 {"error":"pubkey not in whitelist"}.
//   - /relay/{id} only (other paths 404, empty id 400, other methods 405), bodies <= 1 MiB,
//     decoded like Go's encoding/json into zooid's typed config (unknown keys dropped, field
//     names case-insensitive, a wrong type -> 400). POST: 409 "relay with this id already
//     exists" (before the body), 400 invalid config, 409 schema/host "is already in use", 201.
//     PUT: 404, 400, 409, 200. PATCH: 404, then a deep merge into the stored config (objects
//     merge, arrays replace, null deletes), 400, 409, 200. DELETE: 404 or 200 (data stays).
//     GET /relay/{id}/members (newer code; membersEndpoint: false = the older code, which
//     answers 405 there like any GET) -> {"members": [hex...]} or 404.
// Each relay (config host = Host header, not inactive) serves NIP-11 and NIP-86 as khatru does
// for zooid: POST with Content-Type application/nostr+json+rpc, a NIP-98 event whose `u` is
// the relay URL (scheme from X-Forwarded-Proto, else https unless the host has a port or is an
// IP) and whose `payload` tag is the body's sha256; failures -> 401 {"error"}. Callers: the
// owner (info.pubkey), the relay's own key, pubkeys in a role with can_manage (a role named
// "member" applies to everyone, as zooid's GetAllRoles does); others get
// {"error":"blocked: only relay admins can manage this relay."}. Only with management.enabled
// (else every method is "not supported"). changerelayname/description/icon write the stored
// config, like the management API does.
//
//   const z = await startZooid({ whitelist: [pubkeyHex], apiHost, window: 60, membersEndpoint: true })
//   z.url                      http://127.0.0.1:PORT, for ZOOID_API_URL (apiHost: 127.0.0.1:PORT)
//   z.requests                 API requests: [{ method, id, body (parsed), raw, status, pubkey, error }]
//                              (and requests for no known host: misrouted: true, host, status 404)
//   z.rpcs                     NIP-86 calls: [{ host, id, method, params, status, pubkey, result, error }]
//   z.configs                  Map id -> stored config (the typed config, every field present)
//   z.members(id) / z.bans(id) / z.claims(id)   a relay's data (kept by schema, like zooid's db)
//   z.nip86(host, method, params, sk, opts)     a NIP-86 call as a Nostr client sends it
//   z.skew = 0                 seconds added to zooid's clock (clocks that disagree)
//   z.maxConcurrent            most API requests being handled at once
//   z.rpcHold = true           NIP-86 calls to the relays are held: never applied nor answered
//                              (as calls in flight when their sender is killed); z.held lists
//                              them ({ id, host, at }), z.dropHeld() closes their connections
//   z.fault(mode, n)           next n API requests (default: all, until z.fault(null)) get:
//                              '500' | 'hang' (never answered) | 'drop' (connection destroyed) |
//                              'hang-after-store' (applied, then never answered)
//   z.refuse() / z.accept()    stop listening (connections refused) / listen again, same port
//   z.onRequest = (rec) => {}  called when an API request is recorded (before it is answered)
//   z.delayMs = 20             wait this long before handling each API request
//   z.rpcDelayMs = 20          wait this long before handling each NIP-86 call
//   await z.waitFor(fn, ms)    polls fn() until truthy
//   await z.stop()
import http from 'node:http'
import { createHash } from 'node:crypto'
import { verifyEvent, finalizeEvent, getPublicKey } from 'nostr-tools/pure'

const SCHEMA_RE = /^[a-z_][a-z0-9_]*$/
const HEX64_RE = /^[0-9a-fA-F]{64}$/
const MAX_BODY = 1024 * 1024
const ROLES = Symbol('roles')

// zooid's Config as Go types: 'string' | 'bool' | nested object | ROLES (map of Role).
const CONFIG_TYPE = {
  host: 'string', schema: 'string', secret: 'string', inactive: 'bool',
  info: { name: 'string', icon: 'string', pubkey: 'string', description: 'string' },
  policy: { public_join: 'bool', strip_signatures: 'bool' },
  groups: { enabled: 'bool' },
  push: { enabled: 'bool' },
  management: { enabled: 'bool' },
  blossom: {
    enabled: 'bool', authenticated_read: 'bool', adapter: 'string',
    s3: { endpoint: 'string', region: 'string', bucket: 'string', access_key: 'string', secret_key: 'string', key_prefix: 'string' },
  },
  livekit: { server_url: 'string', api_key: 'string', api_secret: 'string' },
  roles: ROLES,
}

const sha256hex = (buf) => createHash('sha256').update(buf).digest('hex')
const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)
const jsonType = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v)

function zero(type) {
  if (type === 'string') return ''
  if (type === 'bool') return false
  if (type === ROLES) return null
  return Object.fromEntries(Object.entries(type).map(([k, t]) => [k, zero(t)]))
}

class DecodeError extends Error {}

// Go's json.Unmarshal of v into `type`, on top of `into` (a zero value, or what was decoded):
// null leaves a field as it is, unknown keys are ignored, names match case-insensitively.
function decodeInto(type, v, into, where) {
  if (v === null) return into
  const fail = (goType) => {
    throw new DecodeError(`json: cannot unmarshal ${jsonType(v) === 'boolean' ? 'bool' : jsonType(v)} into Go struct field ${where} of type ${goType}`)
  }
  if (type === 'string') return typeof v === 'string' ? v : fail('string')
  if (type === 'bool') return typeof v === 'boolean' ? v : fail('bool')
  if (type === ROLES) {
    if (!isObj(v)) fail('map[string]zooid.Role')
    const out = { ...(into ?? {}) }
    for (const [name, r] of Object.entries(v)) {
      if (r === null) continue
      if (!isObj(r)) fail('zooid.Role')
      const role = { pubkeys: out[name]?.pubkeys ?? null, can_invite: out[name]?.can_invite ?? false, can_manage: out[name]?.can_manage ?? false }
      for (const [k, x] of Object.entries(r)) {
        const key = ['pubkeys', 'can_invite', 'can_manage'].find((f) => f === k.toLowerCase())
        if (!key || x === null) continue
        if (key === 'pubkeys') {
          if (!Array.isArray(x) || x.some((p) => typeof p !== 'string')) fail('[]string')
          role.pubkeys = [...x]
        } else if (typeof x !== 'boolean') fail('bool')
        else role[key] = x
      }
      out[name] = role
    }
    return out
  }
  if (!isObj(v)) fail(where.includes('.') ? 'struct' : 'zooid.Config')
  const out = { ...into }
  for (const [k, x] of Object.entries(v)) {
    const key = Object.keys(type).find((f) => f === k.toLowerCase()) // every field name is lowercase
    if (key) out[key] = decodeInto(type[key], x, out[key], `${where}.${key}`)
  }
  return out
}

// zooid's validatePatchedConfig (with the newer schema and blossom rules). Returns an error or null.
function validate(c) {
  if (!c.host) return 'host is required'
  if (!c.schema) return 'schema is required'
  if (!SCHEMA_RE.test(c.schema)) return `invalid schema "${c.schema}": must match ^[a-z_][a-z0-9_]*$`
  if (!c.secret) return 'secret is required'
  if (!HEX64_RE.test(c.secret)) return 'invalid secret key: not a 32-byte hex string'
  if (!c.info.pubkey) return 'info.pubkey is required'
  if (!HEX64_RE.test(c.info.pubkey)) return 'invalid info.pubkey: not a 32-byte hex string'
  const b = c.blossom
  if (b.adapter !== '' && b.adapter !== 'local' && b.adapter !== 's3') return `invalid blossom.adapter "${b.adapter}"`
  if (b.adapter === 's3' && !(b.s3.bucket && b.s3.region && b.s3.access_key && b.s3.secret_key))
    return 'blossom.s3 requires bucket, region, access_key and secret_key'
  return null
}

// zooid's deepMerge: objects merge key by key, anything else (arrays too) replaces, null deletes.
function deepMerge(base, patch) {
  const out = { ...base }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (isObj(v) && isObj(base[k])) out[k] = deepMerge(base[k], v)
    else out[k] = v
  }
  return out
}

// Go's base64.StdEncoding.DecodeString: padded standard alphabet (CR/LF ignored), else null.
function stdBase64(s) {
  const t = s.replace(/[\r\n]/g, '')
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return null
  return Buffer.from(t, 'base64')
}

function parseEvent(token) {
  const raw = stdBase64(token)
  if (!raw) return { error: 'invalid base64 encoding' }
  try {
    const ev = JSON.parse(raw.toString('utf8'))
    if (!isObj(ev) || !Array.isArray(ev.tags) || !ev.tags.every(Array.isArray)) throw new Error('bad shape')
    return { ev }
  } catch (e) {
    return { error: `invalid event json: ${e.message}` }
  }
}

// zooid's validateNIP98Auth plus the newer created_at window. Returns { pubkey } or { error }.
function checkApiAuth(req, path, now, window) {
  const h = req.headers.authorization ?? ''
  if (!h) return { error: 'missing authorization header' }
  const sp = h.indexOf(' ')
  if (sp < 0 || h.slice(0, sp).toLowerCase() !== 'nostr') return { error: 'invalid authorization header format' }
  const { ev, error } = parseEvent(h.slice(sp + 1))
  if (error) return { error }
  if (ev.kind !== 27235) return { error: `invalid event kind: expected 27235, got ${ev.kind}` }
  if (!verifyEvent(ev)) return { error: 'invalid event signature' }
  const scheme = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http'
  const want = `${scheme}://${req.headers.host ?? ''}${path}`
  const has = (n, ok) => ev.tags.some((t) => t.length >= 2 && t[0] === n && ok(String(t[1])))
  if (!has('u', (v) => v === want)) return { error: 'event missing or invalid u tag' }
  if (!has('method', (v) => v.toUpperCase() === req.method)) return { error: 'event missing or invalid method tag' }
  if (window != null && Math.abs(now - ev.created_at) > window)
    return { error: `event created_at is more than ${window} seconds from the server time` }
  return { pubkey: ev.pubkey }
}

// go-nostr's NormalizeURL, as khatru compares the NIP-86 `u` tag.
function normalizeURL(u) {
  let s = String(u).trim()
  if (!/^(https?|wss?):\/\//i.test(s)) s = `wss://${s}`
  try {
    const p = new URL(s)
    const scheme = { 'http:': 'ws', 'https:': 'wss', 'ws:': 'ws', 'wss:': 'wss' }[p.protocol]
    let host = p.host.toLowerCase()
    if ((scheme === 'ws' && host.endsWith(':80')) || (scheme === 'wss' && host.endsWith(':443'))) host = host.replace(/:\d+$/, '')
    return `${scheme}://${host}${p.pathname.replace(/\/+$/, '')}${p.search}`
  } catch {
    return s
  }
}

// khatru's getBaseURL for a relay host.
function relayBaseURL(req, path) {
  const host = req.headers['x-forwarded-host'] || req.headers.host || ''
  let proto = req.headers['x-forwarded-proto']
  if (!proto) proto = host === 'localhost' || host.includes(':') || /^\d+$/.test(host.replaceAll('.', '')) ? 'http' : 'https'
  return `${proto}://${host}${path}`
}

// khatru's HandleNIP86 authentication. Returns { pubkey } or { error }.
function checkRpcAuth(req, path, raw, now) {
  const spl = (req.headers.authorization ?? '').split('Nostr ')
  if (spl.length !== 2) return { error: 'missing auth' }
  const { ev, error } = parseEvent(spl[1])
  if (error) return { error: error.startsWith('invalid base64') ? 'invalid base64 auth' : 'invalid auth event json' }
  if (!verifyEvent(ev)) return { error: 'invalid auth event' }
  const u = ev.tags.find((t) => t[0] === 'u' && t.length >= 2)
  if (!u) return { error: 'missing "u" tag' }
  const want = normalizeURL(relayBaseURL(req, path))
  if (normalizeURL(u[1]) !== want) return { error: `invalid "u" tag, expected '${want}', got '${normalizeURL(u[1])}'` }
  if (!ev.tags.some((t) => t[0] === 'payload' && t[1] === sha256hex(raw))) return { error: 'invalid auth event payload hash' }
  if (ev.created_at < now - 30) return { error: 'auth event is too old' }
  return { pubkey: ev.pubkey }
}

// nip86.DecodeRequest: [kind of each param] per method ('pk' | 'id' | 'str'; '?' = optional).
const RPC_PARAMS = {
  supportedmethods: [], changerelayname: ['str'], changerelaydescription: ['str'], changerelayicon: ['str'],
  banpubkey: ['pk', 'str?'], unbanpubkey: ['pk', 'str?'], allowpubkey: ['pk', 'str?'], unallowpubkey: ['pk', 'str?'],
  listbannedpubkeys: [], listallowedpubkeys: [], banevent: ['id', 'str?'], allowevent: ['id', 'str?'],
  listbannedevents: [], listclaims: [], createclaim: ['str'], deleteclaim: ['str'],
}

function decodeRpc(body) {
  if (!isObj(body) || typeof body.method !== 'string') return { error: 'invalid json body' }
  const spec = RPC_PARAMS[body.method.toLowerCase()]
  if (!spec) return { method: body.method, unknown: true }
  const params = Array.isArray(body.params) ? body.params : []
  for (let i = 0; i < spec.length; i++) {
    const want = spec[i].replace('?', '')
    const v = params[i]
    if (v === undefined && spec[i].endsWith('?')) continue
    if (typeof v !== 'string') return { error: `invalid params: missing or invalid param ${i}` }
    if ((want === 'pk' || want === 'id') && !/^[0-9a-f]{64}$/.test(v)) return { error: `invalid params: invalid ${want === 'pk' ? 'pubkey' : 'event id'} '${v}'` }
  }
  return { method: body.method.toLowerCase(), params }
}

export async function startZooid({ whitelist = [], apiHost, window = 60, membersEndpoint = true } = {}) {
  const z = {
    requests: [],
    rpcs: [],
    configs: new Map(),
    maxConcurrent: 0,
    active: 0,
    onRequest: null,
    delayMs: 0,
    rpcDelayMs: 0,
    rpcHold: false,
    held: [],
    skew: 0,
    _data: new Map(), // schema -> { members: Set, bans: Map pubkey -> reason, events: Map, claims: Set }
    _fault: null,
    _faultLeft: 0,
    _sockets: new Set(),
    _hung: new Set(),
    _held: new Set(),
  }
  const now = () => Math.floor(Date.now() / 1000) + z.skew
  const data = (schema) => {
    if (!z._data.has(schema)) z._data.set(schema, { members: new Set(), bans: new Map(), events: new Map(), claims: new Set() })
    return z._data.get(schema)
  }
  const send = (res, status, obj, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type })
    res.end(type === 'application/json' || type === 'application/nostr+json+rpc' ? JSON.stringify(obj) + '\n' : obj)
  }
  const selfOf = (c) => getPublicKey(Buffer.from(c.secret, 'hex'))
  // What an instance does when it (re)loads a config: self, owner and role pubkeys become
  // members (AllowPubkey, which also lifts a ban).
  const loadInstance = (c) => {
    const d = data(c.schema)
    const allow = (pk) => {
      d.members.add(pk)
      d.bans.delete(pk)
    }
    allow(selfOf(c))
    allow(c.info.pubkey)
    for (const role of Object.values(c.roles ?? {})) for (const pk of role.pubkeys ?? []) if (HEX64_RE.test(pk)) allow(pk)
  }
  const conflict = (id, c) => {
    for (const [other, o] of z.configs) {
      if (other === id) continue
      if (o.schema === c.schema) return `schema "${c.schema}" is already in use`
      if (o.host === c.host) return `host "${c.host}" is already in use`
    }
    return null
  }
  const store = (id, c) => {
    z.configs.set(id, c)
    loadInstance(c)
  }
  const parseBody = (raw, prefix) => {
    if (raw.length > MAX_BODY) return { error: 'failed to read body: http: request body too large' }
    try {
      return { value: JSON.parse(raw.toString('utf8')) }
    } catch (e) {
      return { error: `${prefix}: ${e.message}` }
    }
  }
  // The full config of a POST or PUT body: [config] or [null, error].
  const fullConfig = (raw) => {
    const { value, error } = parseBody(raw, 'invalid json config')
    if (error) return [null, error]
    let c
    try {
      c = decodeInto(CONFIG_TYPE, value, zero(CONFIG_TYPE), 'Config')
    } catch (e) {
      if (e instanceof DecodeError) return [null, `invalid json config: ${e.message}`]
      throw e
    }
    const bad = validate(c)
    return bad ? [null, bad] : [c]
  }
  const patched = (cur, raw) => {
    const { value, error } = parseBody(raw, 'invalid json')
    if (error) return [null, error]
    if (value !== null && !isObj(value))
      return [null, `invalid json: json: cannot unmarshal ${jsonType(value)} into Go value of type map[string]interface {}`]
    let c
    try {
      c = decodeInto(CONFIG_TYPE, deepMerge(structuredClone(cur), value ?? {}), zero(CONFIG_TYPE), 'Config')
    } catch (e) {
      if (e instanceof DecodeError) return [null, e.message]
      throw e
    }
    const bad = validate(c)
    return bad ? [null, bad] : [c]
  }
  // One management API route; returns [status, body].
  const route = (method, id, sub, raw) => {
    const cur = z.configs.get(id)
    if (sub === 'members' && method === 'GET' && membersEndpoint) {
      if (!cur) return [404, { error: 'relay not found' }]
      return [200, { members: [...data(cur.schema).members] }]
    }
    if (method === 'POST') {
      if (cur) return [409, { error: 'relay with this id already exists' }]
      const [c, bad] = fullConfig(raw)
      if (bad) return [400, { error: bad }]
      const dup = conflict(id, c)
      if (dup) return [409, { error: dup }]
      store(id, c)
      return [201, { message: 'relay created successfully' }]
    }
    if (!['PUT', 'PATCH', 'DELETE'].includes(method)) return [405, { error: 'method not allowed' }]
    if (!cur) return [404, { error: 'relay not found' }]
    if (method === 'DELETE') {
      z.configs.delete(id)
      return [200, { message: 'relay deleted successfully' }]
    }
    const [c, bad] = method === 'PUT' ? fullConfig(raw) : patched(cur, raw)
    if (bad) return [400, { error: bad }]
    const dup = conflict(id, c)
    if (dup) return [409, { error: dup }]
    store(id, c)
    return [200, { message: method === 'PUT' ? 'relay updated successfully' : 'relay patched successfully' }]
  }
  const takeFault = () => {
    if (!z._fault) return null
    const f = z._fault
    if (--z._faultLeft <= 0) z._fault = null
    return f
  }
  const decodedPath = (req) => {
    const p = new URL(req.url, 'http://x').pathname
    try {
      return decodeURIComponent(p)
    } catch {
      return p
    }
  }
  const handleApi = async (req, res, raw) => {
    const path = decodedPath(req)
    const parts = path.replace(/^\//, '').split('/')
    const isRelay = parts.length >= 2 && parts[0] === 'relay'
    const rec = { method: req.method, id: isRelay ? parts[1] : null, path, raw: raw.toString('utf8'), body: null, status: 0 }
    try {
      rec.body = raw.length ? JSON.parse(rec.raw) : null
    } catch {}
    z.requests.push(rec)
    z.active++
    z.maxConcurrent = Math.max(z.maxConcurrent, z.active)
    res.on('close', () => z.active--)
    if (z.onRequest) z.onRequest(rec)
    if (z.delayMs) await new Promise((r) => setTimeout(r, z.delayMs))
    const fault = takeFault()
    if (fault === 'drop') return req.socket.destroy()
    if (fault === 'hang') return z._hung.add(res)
    const reply = (status, body) => {
      rec.status = status
      rec.error = body.error
      send(res, status, body)
    }
    if (fault === '500') return reply(500, { error: 'internal error (injected)' })
    const auth = checkApiAuth(req, path, now(), window)
    if (auth.error) return reply(401, { error: auth.error })
    rec.pubkey = auth.pubkey
    if (!whitelist.includes(auth.pubkey)) return reply(403, { error: 'pubkey not in whitelist' })
    if (!isRelay) return reply(404, { error: 'not found' })
    if (!rec.id) return reply(400, { error: 'relay id is required' })
    const [status, out] = route(req.method, rec.id, parts[2], raw)
    rec.status = status
    rec.error = out.error
    if (fault === 'hang-after-store') return z._hung.add(res)
    send(res, status, out)
  }
  // One NIP-86 method on relay `id` (config c) for `pubkey`; returns the result or throws a message.
  const runRpc = (id, c, m, params) => {
    const d = data(c.schema)
    const setInfo = (k, v) => {
      const next = structuredClone(c)
      next.info[k] = v
      store(id, next)
      return true
    }
    switch (m) {
      case 'supportedmethods': return Object.keys(RPC_PARAMS).filter((x) => x !== 'supportedmethods')
      case 'changerelayname': return setInfo('name', params[0])
      case 'changerelaydescription': return setInfo('description', params[0])
      case 'changerelayicon': return setInfo('icon', params[0])
      case 'banpubkey':
        d.members.delete(params[0])
        if (!d.bans.has(params[0])) d.bans.set(params[0], params[1] ?? '')
        return true
      case 'unbanpubkey': d.bans.delete(params[0]); return true
      case 'allowpubkey': d.members.add(params[0]); d.bans.delete(params[0]); return true
      case 'unallowpubkey': d.members.delete(params[0]); return true
      case 'listbannedpubkeys': return [...d.bans].map(([pubkey, reason]) => ({ pubkey, reason }))
      case 'listallowedpubkeys': return [...d.members].map((pubkey) => ({ pubkey, reason: 'relay member' }))
      case 'banevent': d.events.set(params[0], params[1] ?? ''); return true
      case 'allowevent': d.events.delete(params[0]); return true
      case 'listbannedevents': return [...d.events].map(([id_, reason]) => ({ id: id_, reason }))
      case 'listclaims': return [...d.claims]
      case 'createclaim': d.claims.add(params[0]); return true
      case 'deleteclaim': d.claims.delete(params[0]); return true
    }
    throw new Error(`method '${m}' not known`)
  }
  const canManage = (c, pk) =>
    pk === c.info.pubkey || pk === selfOf(c) ||
    Object.entries(c.roles ?? {}).some(([name, r]) => r.can_manage && (name === 'member' || (r.pubkeys ?? []).includes(pk)))
  const handleRelay = (req, res, raw, id, c) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim()
    if (req.method === 'POST' && type === 'application/nostr+json+rpc') {
      const rec = { host: req.headers.host, id, method: null, params: null, status: 0 }
      z.rpcs.push(rec)
      const answer = (status, body) => {
        Object.assign(rec, { status, result: body.result, error: body.error })
        send(res, status, body, 'application/nostr+json+rpc')
      }
      const auth = checkRpcAuth(req, decodedPath(req), raw, now())
      if (auth.error) return answer(401, { error: auth.error })
      rec.pubkey = auth.pubkey
      let body
      try {
        body = JSON.parse(raw.toString('utf8'))
      } catch {
        return answer(200, { error: 'invalid json body' })
      }
      const call = decodeRpc(body)
      rec.method = call.method ?? null
      rec.params = call.params ?? null
      if (call.error) return answer(200, { error: call.error })
      if (!c.management.enabled) return answer(200, { error: `method ${call.method} not supported` })
      if (!canManage(c, auth.pubkey)) return answer(200, { error: 'blocked: only relay admins can manage this relay.' })
      if (call.unknown) return answer(200, { error: `method '${call.method}' not known` })
      try {
        return answer(200, { result: runRpc(id, c, call.method, call.params) })
      } catch (e) {
        return answer(200, { error: e.message })
      }
    }
    if (req.method === 'GET' && (req.headers.accept ?? '').includes('application/nostr+json')) {
      return send(res, 200, {
        name: c.info.name, icon: c.info.icon, description: c.info.description, pubkey: c.info.pubkey,
        self: selfOf(c), software: 'https://github.com/coracle-social/zooid', supported_nips: [1, 11, 43, 86],
      }, 'application/nostr+json')
    }
    send(res, 404, '404 page not found\n', 'text/plain; charset=utf-8')
  }
  const handle = async (req, res) => {
    const chunks = []
    for await (const c of req) chunks.push(c)
    const raw = Buffer.concat(chunks)
    if (req.headers.host === z.apiHost) return handleApi(req, res, raw)
    // zooid's Dispatch(r.Host): the relay whose config has this host, unless inactive.
    for (const [id, c] of z.configs) {
      if (c.host === req.headers.host && !c.inactive) {
        if (z.rpcHold && req.method === 'POST') {
          z.held.push({ id, host: c.host, at: Date.now() })
          return z._held.add(res)
        }
        if (z.rpcDelayMs) await new Promise((r) => setTimeout(r, z.rpcDelayMs))
        return handleRelay(req, res, raw, id, z.configs.get(id))
      }
    }
    // Recorded with the API requests, so a test sees a misrouted API call (Host != apiHost).
    const parts = decodedPath(req).replace(/^\//, '').split('/')
    z.requests.push({ method: req.method, id: parts[0] === 'relay' ? parts[1] ?? null : null, host: req.headers.host,
      raw: raw.toString('utf8'), body: null, status: 404, error: 'Not Found', misrouted: true })
    send(res, 404, 'Not Found\n', 'text/plain; charset=utf-8')
  }
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => send(res, 500, { error: String(e) }))
  })
  // zooid serves with Go's http.ListenAndServe: no idle timeout on kept-alive connections. Node's
  // 5 s here made a test whose event loop was blocked for 5 s (spawnSync of a tool on a loaded
  // machine) reuse a connection this server had just closed ('fetch failed'). stop() destroys
  // every socket, so nothing outlives the test.
  server.keepAliveTimeout = 600000
  server.on('connection', (s) => {
    z._sockets.add(s)
    s.on('close', () => z._sockets.delete(s))
  })
  const listen = (port) => new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  z.dropHeld = () => {
    for (const res of z._held) res.destroy()
    z._held.clear()
  }
  const dropAll = () => {
    z.dropHeld()
    for (const res of z._hung) res.destroy()
    z._hung.clear()
    for (const s of z._sockets) s.destroy()
  }
  await listen(0)
  z.port = server.address().port
  z.url = `http://127.0.0.1:${z.port}`
  z.apiHost = apiHost ?? `127.0.0.1:${z.port}`
  z.members = (id) => [...data(z.configs.get(id).schema).members]
  z.bans = (id) => new Map(data(z.configs.get(id).schema).bans)
  z.claims = (id) => [...data(z.configs.get(id).schema).claims]
  // A NIP-86 call to the relay served at `host`, sent to this server with that Host header,
  // signed by sk like a Nostr client signs it. opts: proto ('https': sent with
  // X-Forwarded-Proto like a TLS proxy), u (default proto://host/), payload (false: no payload
  // tag), createdAt, headers. Returns { status, json }.
  z.nip86 = (host, method, params, sk, opts = {}) => {
    const proto = opts.proto ?? 'https'
    const body = JSON.stringify({ method, params })
    const tags = [['u', opts.u ?? `${proto}://${host}/`], ['method', 'POST']]
    if (opts.payload !== false) tags.push(['payload', sha256hex(Buffer.from(body))])
    const ev = finalizeEvent({ kind: 27235, created_at: opts.createdAt ?? Math.floor(Date.now() / 1000), tags, content: '' }, sk)
    const headers = {
      host, 'content-type': 'application/nostr+json+rpc', 'content-length': Buffer.byteLength(body),
      authorization: `Nostr ${Buffer.from(JSON.stringify(ev)).toString('base64')}`,
      ...(proto === 'https' ? { 'x-forwarded-proto': 'https' } : {}),
      ...opts.headers,
    }
    return new Promise((resolve, reject) => {
      const r = http.request({ host: '127.0.0.1', port: z.port, method: 'POST', path: '/', headers }, (res) => {
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
      r.end(body)
    })
  }
  z.fault = (mode, n = Infinity) => {
    z._fault = mode
    z._faultLeft = n
  }
  z.refuse = () => new Promise((resolve) => {
    server.close(() => resolve())
    dropAll()
  })
  z.accept = () => listen(z.port)
  z.waitFor = async (fn, ms = 20000, what = 'condition') => {
    const end = Date.now() + ms
    for (;;) {
      const v = await fn()
      if (v) return v
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  z.stop = () => new Promise((resolve) => {
    if (!server.listening) {
      dropAll()
      return resolve()
    }
    server.close(() => resolve())
    dropAll()
  })
  return z
}
