// Small helpers for the HTTP API tests: a request with a hand-chosen Authorization header, the
// database through the sqlite3 or psql CLI (the way an operator would look at it), a valid NWC
// URI.
import { randomBytes } from 'node:crypto'
import { databaseUrlOf, sqlOn } from './server.mjs'

// fetch with an explicit Authorization value (or none); body: object (sent as JSON) or string.
export async function send (base, method, path, { auth, body, headers = {} } = {}) {
  const h = { ...headers }
  if (auth) h.Authorization = auth
  let payload
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body)
    if (!h['Content-Type']) h['Content-Type'] = 'application/json'
  }
  const r = await fetch(base + path, { method, headers: h, body: payload })
  const text = await r.text()
  let json = null
  try { json = JSON.parse(text) } catch {}
  return { status: r.status, body: json, text, headers: r.headers }
}

// Runs SQL on the database of the server whose srv.dbPath this is (SQLite's WAL makes that
// safe while it runs; on PostgreSQL it always is); returns the output's lines.
export function sql (dbPath, query) {
  return sqlOn(databaseUrlOf(dbPath), query).split('\n').filter((l) => l !== '')
}

export function hex (n) {
  return randomBytes(n).toString('hex')
}

// A syntactically valid NWC URI whose wallet relay refuses connections (collection fails fast).
export function nwcUri (secret = hex(32)) {
  const wallet = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'
  return `nostr+walletconnect://${wallet}?relay=${encodeURIComponent('ws://127.0.0.1:9')}&secret=${secret}`
}

// A pending invoice (with one item) for tenant, created `ageSeconds` ago; returns its id.
export function seedInvoice (dbPath, tenant, { ageSeconds = 0, relay = 'r', amount = 100 } = {}) {
  const id = hex(16)
  const now = Math.floor(Date.now() / 1000)
  const created = now - ageSeconds
  sql(dbPath, `INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
    VALUES ('${id}', '${tenant}', ${amount}, 'pending', ${created - 3600}, ${created}, ${created});
    INSERT INTO invoice_item(invoice, relay, plan, hours, amount) VALUES ('${id}', '${relay}', 'basic', 1, ${amount});`)
  return id
}
