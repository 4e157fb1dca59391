// A test zooid (PRODUCT.md §5), in the test process:
// POST|PUT|PATCH|DELETE /relay/{id} with NIP-98 checked by nostr-tools, configs stored like
// zooid stores them, every request recorded, and faults on demand.
//
//   const z = await startZooid({ whitelist: [pubkeyHex] })
//   z.url                      base URL (http://127.0.0.1:PORT), for ZOOID_API_URL
//   z.requests                 [{ method, id, body (parsed), raw, status, auth }] in arrival order
//   z.configs                  Map id -> stored config
//   z.maxConcurrent            most requests being handled at once
//   z.fault(mode, n)           next n requests (default: all, until z.fault(null)) get:
//                              '500' | 'hang' (never answered) | 'drop' (connection destroyed) |
//                              'hang-after-store' (applied, then never answered)
//   z.refuse() / z.accept()    stop listening (connections refused) / listen again, same port
//   z.onRequest = (rec) => {}  called when a request is recorded (before it is answered)
//   z.delayMs = 20             wait this long before handling each request (to see concurrency)
//   await z.waitFor(fn, ms)    polls fn() until truthy
//   await z.stop()
import http from 'node:http'
import { createHash } from 'node:crypto'
import { verifyEvent } from 'nostr-tools/pure'

const SCHEMA_RE = /^[a-z_][a-z0-9_]*$/
const HEX64_RE = /^[0-9a-f]{64}$/

function sha256hex(buf) {
  return createHash('sha256').update(buf).digest('hex')
}

// NIP-98 as zooid checks it, plus the payload hash and an age window. Returns an error string.
function checkAuth(req, raw, origin, maxAge) {
  const h = req.headers.authorization ?? ''
  const m = /^nostr\s+(\S+)$/i.exec(h)
  if (!m) return 'missing Nostr authorization'
  let ev
  try {
    ev = JSON.parse(Buffer.from(m[1], 'base64').toString('utf8'))
  } catch {
    return 'token is not base64 JSON'
  }
  if (ev.kind !== 27235) return 'wrong kind'
  if (!verifyEvent(ev)) return 'bad signature'
  if (Math.abs(Math.floor(Date.now() / 1000) - ev.created_at) > maxAge) return 'token too old'
  const tag = (n) => ev.tags.find((t) => t[0] === n)?.[1]
  if (tag('u') !== origin + req.url) return `u tag mismatch: ${tag('u')} != ${origin + req.url}`
  if ((tag('method') ?? '').toUpperCase() !== req.method) return 'method tag mismatch'
  if (tag('payload') !== sha256hex(raw)) return 'payload hash mismatch'
  return { pubkey: ev.pubkey, event: ev }
}

function validate(c) {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'config must be an object'
  if (typeof c.host !== 'string' || !c.host) return 'host is required'
  if (typeof c.schema !== 'string' || !SCHEMA_RE.test(c.schema)) return 'invalid schema'
  if (typeof c.secret !== 'string' || !HEX64_RE.test(c.secret)) return 'invalid secret'
  if (!c.info || !HEX64_RE.test(c.info.pubkey ?? '')) return 'invalid info.pubkey'
  if ('inactive' in c && typeof c.inactive !== 'boolean') return 'inactive must be a boolean'
  return null
}

// zooid's PATCH: deep merge, a JSON null deletes the key.
function merge(base, patch) {
  const out = { ...base }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k])
      out[k] = merge(out[k], v)
    else out[k] = v
  }
  return out
}

export async function startZooid({ whitelist = [], maxAge = 60 } = {}) {
  const z = {
    requests: [],
    configs: new Map(),
    maxConcurrent: 0,
    active: 0,
    onRequest: null,
    delayMs: 0,
    _fault: null,
    _faultLeft: 0,
    _sockets: new Set(),
    _hung: new Set(),
  }
  const send = (res, status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(obj))
  }
  const conflict = (id, c) => {
    for (const [other, o] of z.configs) {
      if (other === id) continue
      if (o.schema === c.schema) return `schema "${c.schema}" is already in use`
      if (o.host === c.host) return `host "${c.host}" is already in use`
    }
    return null
  }
  // Applies a request to z.configs; returns [status, body].
  const apply = (method, id, body) => {
    const cur = z.configs.get(id)
    if (method === 'DELETE') {
      if (!cur) return [404, { error: 'relay not found' }]
      z.configs.delete(id)
      return [200, { message: 'relay deleted successfully' }]
    }
    if (method === 'POST' && cur) return [409, { error: 'relay with this id already exists' }]
    if (method !== 'POST' && !cur) return [404, { error: 'relay not found' }]
    const next = method === 'PATCH' ? merge(cur, body) : body
    const bad = validate(next)
    if (bad) return [400, { error: bad }]
    const dup = conflict(id, next)
    if (dup) return [409, { error: dup }]
    z.configs.set(id, next)
    if (method === 'POST') return [201, { message: 'relay created successfully' }]
    return [200, { message: method === 'PUT' ? 'relay updated successfully' : 'relay patched successfully' }]
  }
  const takeFault = () => {
    if (!z._fault) return null
    const f = z._fault
    if (--z._faultLeft <= 0) z._fault = null
    return f
  }
  const handle = async (req, res) => {
    const chunks = []
    for await (const c of req) chunks.push(c)
    const raw = Buffer.concat(chunks)
    const m = /^\/relay\/([^/?]*)$/.exec(req.url)
    const rec = { method: req.method, id: m ? decodeURIComponent(m[1]) : null, raw: raw.toString('utf8'), body: null, status: 0 }
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
    if (fault === '500') return send(res, (rec.status = 500), { error: 'internal error (injected)' })
    const auth = checkAuth(req, raw, z.url, maxAge)
    if (typeof auth === 'string') return send(res, (rec.status = 401), { error: auth })
    rec.pubkey = auth.pubkey
    if (!whitelist.includes(auth.pubkey)) return send(res, (rec.status = 403), { error: 'pubkey not in whitelist' })
    if (!m) return send(res, (rec.status = 404), { error: 'not found' })
    if (!rec.id) return send(res, (rec.status = 400), { error: 'relay id is required' })
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) return send(res, (rec.status = 405), { error: 'method not allowed' })
    if (req.method !== 'DELETE' && (rec.body === null || typeof rec.body !== 'object'))
      return send(res, (rec.status = 400), { error: 'invalid JSON' })
    const [status, out] = apply(req.method, rec.id, rec.body)
    rec.status = status
    if (fault === 'hang-after-store') return z._hung.add(res)
    send(res, status, out)
  }
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => send(res, 500, { error: String(e) }))
  })
  server.keepAliveTimeout = 5000
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
  const dropAll = () => {
    for (const res of z._hung) res.destroy()
    z._hung.clear()
    for (const s of z._sockets) s.destroy()
  }
  await listen(0)
  z.port = server.address().port
  z.url = `http://127.0.0.1:${z.port}`
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
