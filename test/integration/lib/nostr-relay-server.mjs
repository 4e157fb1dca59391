// Copied from /work/shared/peers/relay.mjs (real relay, @nostr-relay/core 0.0.40) for the tests.
// Minimal real Nostr relay for tests, built on @nostr-relay/core 0.0.40 (+ common, validator, ws).
// Listens on 127.0.0.1 only. Prints "READY ws://127.0.0.1:PORT" on stdout when listening.
//
// Env:
//   PORT=7777            port (0 = random; the READY line shows the real one)
//   STORE=memory|sqlite  memory = small JS repo below (no native build); sqlite = @nostr-relay/event-repository-sqlite
//   SQLITE_FILE=:memory: sqlite file (default in-memory)
//   AUTH_HOSTNAME=127.0.0.1  enables NIP-42 (relay sends ["AUTH",challenge] on connect; hostname of the
//                        AUTH event's "relay" tag must equal this)
//   AUTH_REQUIRED=1      (needs AUTH_HOSTNAME) reject EVENT/REQ from unauthenticated clients with
//                        "auth-required:" (core alone only guards kind-4 DMs)
//   PATCH_TAG_FILTERS=0  keep core's live-subscription matcher, which IGNORES #tag filters (bug in 0.0.40)
//   QUIET=1              less logging
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { NostrRelay } from '@nostr-relay/core'
import { EventRepository, EventUtils, EventType, LogLevel } from '@nostr-relay/common'
import { Validator } from '@nostr-relay/validator'

const HOST = '127.0.0.1'
const PORT = Number(process.env.PORT ?? 7777)
const STORE = process.env.STORE ?? 'memory'
const AUTH_HOSTNAME = process.env.AUTH_HOSTNAME || undefined
const AUTH_REQUIRED = process.env.AUTH_REQUIRED === '1'
const QUIET = process.env.QUIET === '1'

// ---- full NIP-01 filter matcher (ids, authors, kinds, since, until, #x tag filters)
function matches(event, filter) {
  if (filter.ids && !filter.ids.includes(event.id)) return false
  if (filter.authors && !filter.authors.includes(event.pubkey)) return false
  if (filter.kinds && !filter.kinds.includes(event.kind)) return false
  if (filter.since !== undefined && event.created_at < filter.since) return false
  if (filter.until !== undefined && event.created_at > filter.until) return false
  for (const key of Object.keys(filter)) {
    if (key[0] !== '#' || key.length !== 2) continue
    const wanted = filter[key]
    if (!event.tags.some((t) => t[0] === key[1] && wanted.includes(t[1]))) return false
  }
  return true
}
// @nostr-relay/common 0.0.40 EventUtils.isMatchingFilter has "TODO" for tags: live subscriptions with
// {"#p":[...]} receive every event of the kind. Patch it (core calls it at runtime via the module object).
if (process.env.PATCH_TAG_FILTERS !== '0') EventUtils.isMatchingFilter = matches

// ---- tiny in-memory EventRepository (regular, replaceable, addressable; deletion by e-tags)
class MemoryEventRepository extends EventRepository {
  events = new Map() // id -> event
  isSearchSupported() { return false }
  key(ev) {
    const type = EventUtils.getType(ev.kind)
    if (type === EventType.REPLACEABLE) return `${ev.kind}:${ev.pubkey}`
    if (type === EventType.PARAMETERIZED_REPLACEABLE) return `${ev.kind}:${ev.pubkey}:${ev.tags.find((t) => t[0] === 'd')?.[1] ?? ''}`
    return null
  }
  upsert(ev) {
    if (this.events.has(ev.id)) return { isDuplicate: true }
    const k = this.key(ev)
    if (k) {
      for (const old of this.events.values()) {
        if (this.key(old) !== k) continue
        if (old.created_at > ev.created_at || (old.created_at === ev.created_at && old.id < ev.id)) return { isDuplicate: true }
        this.events.delete(old.id)
      }
    }
    this.events.set(ev.id, ev)
    return { isDuplicate: false }
  }
  find(filter) {
    const out = [...this.events.values()].filter((e) => matches(e, filter))
    out.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1))
    return out.slice(0, filter.limit ?? 500)
  }
  async deleteByDeletionRequest(del) {
    for (const [, id] of del.tags.filter((t) => t[0] === 'e')) {
      const ev = this.events.get(id)
      if (ev && ev.pubkey === del.pubkey) this.events.delete(id)
    }
  }
  async destroy() { this.events.clear() }
}

let repo
if (STORE === 'sqlite') {
  const { EventRepositorySqlite } = await import('@nostr-relay/event-repository-sqlite')
  repo = new EventRepositorySqlite(process.env.SQLITE_FILE ?? ':memory:')
  await repo.init()
} else {
  repo = new MemoryEventRepository()
}

const relay = new NostrRelay(repo, {
  hostname: AUTH_HOSTNAME, // undefined => NIP-42 off
  logLevel: QUIET ? LogLevel.ERROR : LogLevel.INFO,
  filterResultCacheTtl: 0, // default 1000 ms caches identical REQ results -> stale reads in tests
})

if (AUTH_REQUIRED) {
  // HandleMessagePlugin: gate everything except AUTH behind a successful NIP-42 login
  relay.register({
    async handleMessage(ctx, message, next) {
      const [type] = message
      if (type === 'AUTH' || type === 'CLOSE' || ctx.pubkey) return next()
      if (type === 'EVENT') ctx.sendMessage(['OK', message[1].id, false, 'auth-required: please AUTH first'])
      if (type === 'REQ') ctx.sendMessage(['CLOSED', message[1], 'auth-required: please AUTH first'])
      ctx.sendMessage(['AUTH', ctx.id])
      return { messageType: type, success: false }
    },
  })
}

const validator = new Validator()

// HTTP server: NIP-11 document for Accept: application/nostr+json, WebSocket upgrade on the same port
const server = http.createServer((req, res) => {
  const info = {
    name: 'test relay (@nostr-relay/core)', software: '@nostr-relay/core', version: '0.0.40',
    supported_nips: [1, 9, 11, 40, ...(AUTH_HOSTNAME ? [42] : [])],
    limitation: { auth_required: AUTH_REQUIRED },
  }
  res.writeHead(200, { 'content-type': 'application/nostr+json', 'access-control-allow-origin': '*' })
  res.end(JSON.stringify(info))
})
const wss = new WebSocketServer({ server })
wss.on('connection', (ws, req) => {
  relay.handleConnection(ws, req.socket.remoteAddress)
  ws.on('message', async (data) => {
    try {
      const message = await validator.validateIncomingMessage(data)
      if (!QUIET) console.log('<-', String(data).slice(0, 160))
      await relay.handleMessage(ws, message)
    } catch (error) {
      ws.send(JSON.stringify(['NOTICE', error instanceof Error ? error.message : String(error)]))
    }
  })
  ws.on('close', () => relay.handleDisconnect(ws))
  ws.on('error', (e) => console.error('ws error', e.message))
})

server.listen(PORT, HOST, () => {
  console.log(`READY ws://${HOST}:${server.address().port} store=${STORE} nip42=${AUTH_HOSTNAME ? 'on' : 'off'} authRequired=${AUTH_REQUIRED}`)
})

async function shutdown() {
  for (const c of wss.clients) c.terminate()
  wss.close()
  server.close()
  await relay.destroy()
  await repo.destroy()
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
