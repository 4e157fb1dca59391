// Hostile clients against a directly reachable port, with small bounded loads and lowered
// caps (the full-size floods are bench/flood.sh): what an unauthenticated or slow client can
// pin in memory, and that the server keeps answering everyone else.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { newUser, rawToken, sessionToken, sha256hex, call } from './lib/auth.mjs'
import { rawConnect, sleep } from './lib/raw.mjs'
import { freePort } from './lib/nginx.mjs'
import { waitFor } from './lib/wait.mjs'

let srv
const alice = newUser()

before(async () => {
  srv = await startServer({ env: { HTTP_REQUEST_TIMEOUT: '2', HTTP_REQUEST_BUFFER: '65536' } })
})

const gauge = async (port, name) => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  return Number(new RegExp(`\n${name} (\\d+)\n`).exec(text)?.[1])
}
after(async () => { if (srv) assert.equal(await srv.stop(), 0, 'clean exit (no leak reports)') })

const head = (method, path, headers) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
  Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n'

const auth = (user, method, path, extra = {}) =>
  rawToken(user, { u: srv.url + path, method, ...extra })

test('a body without a valid token is refused 401 before any body byte is read', async () => {
  const cases = [
    {}, // no Authorization at all
    { Authorization: 'Nostr bm90IGEgdG9rZW4=' },
    { Authorization: rawToken(alice, { u: srv.url + '/relays', method: 'POST', tamper: true }) },
    { Authorization: auth(alice, 'PUT', '/relays') }, // method tag of another method
    { Authorization: rawToken(alice, { u: srv.url + '/relays', method: 'POST', createdAt: 1000 }) }
  ]
  for (const h of cases) {
    const c = await rawConnect(srv.port)
    const t0 = Date.now()
    await c.write(head('POST', '/relays', { ...h, 'Content-Length': '50000', 'Content-Type': 'application/json' }))
    const r = await c.response(5000)
    assert.ok(r, `answered without the body (${JSON.stringify(h).slice(0, 40)})`)
    assert.equal(r.status, 401)
    assert.equal(JSON.parse(r.body).code, 'unauthorized')
    assert.match(r.head, /connection: close/i)
    assert.ok(Date.now() - t0 < 1500, 'before the request deadline')
    assert.ok(await c.waitClose(5000), 'the connection closes')
    c.destroy()
  }
})

test('a valid token lets the body in; its payload hash is checked once the body is in', async () => {
  const body = '{"not":"json for this route"}'
  let c = await rawConnect(srv.port)
  await c.write(head('POST', '/tenants', {
    Authorization: auth(alice, 'POST', '/tenants', { payload: sha256hex('something else') }),
    'Content-Length': String(body.length)
  }) + body)
  let r = await c.response(5000)
  assert.equal(r.status, 401, 'payload hash of another body')
  c.destroy()
  c = await rawConnect(srv.port)
  await c.write(head('POST', '/tenants', {
    Authorization: auth(alice, 'POST', '/tenants', { payload: sha256hex('{}') }),
    Expect: '100-continue',
    'Content-Length': '2'
  }))
  r = await c.response(5000)
  assert.equal(r.status, 100, 'continue once the token is accepted')
  await c.write('{}')
  r = await c.response(5000)
  assert.equal(r.status, 201, r.body)
  c.destroy()
})

test('a body trickled byte by byte is cut at the request deadline (408)', async () => {
  const c = await rawConnect(srv.port)
  await c.write(head('POST', '/tenants', { Authorization: auth(alice, 'POST', '/tenants'), 'Content-Length': '60' }))
  const t0 = Date.now()
  let sent = 0
  while (sent < 60 && !c.closed && c.data.length === 0) {
    await c.write('x')
    sent++
    await sleep(150) // 60 bytes would take 9 s; HTTP_REQUEST_TIMEOUT is 2 s
  }
  const r = await c.response(5000)
  assert.ok(r, 'answered')
  assert.equal(r.status, 408)
  assert.ok(sent < 60, `cut after ${sent} bytes`)
  assert.ok(Date.now() - t0 < 8000) /* the deadline (2 s), not the 9 s trickle; slack for a loaded machine */
  c.destroy()
})

test('request bytes held by the server are capped: past HTTP_REQUEST_BUFFER a new body is 503', async () => {
  // A server of its own: the default request deadline (30 s), so the held body outlives the
  // steps below however slow the machine is (the shared one cuts requests at 2 s).
  const metricsPort = await freePort()
  const buffered = await startServer({ env: { HTTP_REQUEST_BUFFER: '65536', METRICS_PORT: String(metricsPort) } })
  try {
    await heldBodyRefusesAnother(buffered, metricsPort)
  } finally {
    assert.equal(await buffered.stop(), 0)
  }
})

async function heldBodyRefusesAnother (srv, metricsPort) {
  const auth = (user, method, path) => rawToken(user, { u: srv.url + path, method })
  const a = await rawConnect(srv.port)
  await a.write(head('POST', '/tenants', { Authorization: auth(alice, 'POST', '/tenants'), 'Content-Length': '60000' }))
  await a.write('y'.repeat(50000))
  // The head check runs on the pool, then the body is read: wait until the server holds it.
  // Head and body arrive together: the body's bytes count once against the budget, not twice.
  await waitFor(async () => (await gauge(metricsPort, 'caravel_http_request_buffer_bytes')) >= 50000,
    'the 50,000 body bytes held (caravel_http_request_buffer_bytes)')
  assert.equal(a.data.length, 0, 'the first body is being read, not refused')
  const b = await rawConnect(srv.port)
  await b.write(head('POST', '/tenants', { Authorization: auth(alice, 'POST', '/tenants'), 'Content-Length': '20000' }))
  const r = await b.response(5000)
  assert.ok(r, 'answered')
  assert.equal(r.status, 503)
  assert.equal(JSON.parse(r.body).code, 'overloaded')
  b.destroy()
  a.destroy()
  // Released with the connection: the next body fits.
  await waitFor(async () => (await gauge(metricsPort, 'caravel_http_request_buffer_bytes')) === 0,
    'the body bytes given back once the connection is gone')
  const c = await rawConnect(srv.port)
  const body = 'z'.repeat(20000)
  await c.write(head('POST', '/tenants', { Authorization: auth(alice, 'POST', '/tenants'), 'Content-Length': String(body.length) }) + body)
  const r2 = await c.response(5000)
  assert.ok(r2 && r2.status !== 503 && r2.status < 500, 'read and answered')
  c.destroy()
}

test('at the connection cap fresh clients are still served; per-address limit; warning and metric', async () => {
  const metricsPort = await freePort()
  const capped = await startServer({
    env: { HTTP_MAX_CONNECTIONS: '20', HTTP_MAX_CONNECTIONS_PER_IP: '8', METRICS_PORT: String(metricsPort) }
  })
  const slow = []
  try {
    const open = async (from, n) => {
      for (let i = 0; i < n; i++) {
        const c = await rawConnect(capped.port, '127.0.0.1', from)
        await c.write('POST /relays HTTP/1.1\r\nHost: x\r\n')
        slow.push(c)
      }
    }
    await open('127.0.0.2', 8)
    // A ninth from the same address is closed unanswered.
    const ninth = await rawConnect(capped.port, '127.0.0.1', '127.0.0.2')
    await ninth.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    assert.equal(await ninth.response(3000), null, 'over the per-address limit')
    ninth.destroy()
    // 24 slow heads from 3 addresses for a cap of 20.
    await open('127.0.0.3', 8)
    await open('127.0.0.4', 8)
    // A fresh client gets its answer, keep-alive included, several times over.
    for (let i = 0; i < 5; i++) {
      const c = await rawConnect(capped.port)
      await c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
      const r = await c.response(3000)
      assert.ok(r, `fresh client ${i} answered at the cap`)
      assert.equal(r.status, 200)
      c.destroy()
    }
    const evicted = slow.filter((c) => c.closed).length
    assert.ok(evicted >= 4, `oldest slow connections evicted (${evicted})`)
    await waitFor(() => /WARN.*evicted at the connection cap \(HTTP_MAX_CONNECTIONS\)/.test(capped.logs()) &&
      /WARN.*per-address limit \(HTTP_MAX_CONNECTIONS_PER_IP\)/.test(capped.logs()), 'the two shed warnings in the log', 5000)
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const shed = (reason) => Number(new RegExp(`caravel_http_shed_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics)?.[1])
    assert.ok(shed('evicted') >= 4, metrics)
    assert.ok(shed('per_ip') >= 1, metrics)
    assert.match(metrics, /\ncaravel_http_connections \d+\n/)
  } finally {
    for (const c of slow) c.destroy()
    assert.equal(await capped.stop(), 0)
  }
})

test('relays per tenant per plan are capped (free 3, basic 10, growth 50): 422 plan-relay-limit', async () => {
  const bob = newUser()
  assert.equal((await call(srv.url, bob, 'POST', '/tenants')).status, 201)
  const ids = []
  for (let i = 0; i < 3; i++) {
    const r = await call(srv.url, bob, 'POST', '/relays', { subdomain: `cap-free-${i}` })
    assert.equal(r.status, 201, r.text)
    ids.push(r.body.data.id)
  }
  let r = await call(srv.url, bob, 'POST', '/relays', { subdomain: 'cap-free-3' })
  assert.equal(r.status, 422, r.text)
  assert.equal(r.body.code, 'plan-relay-limit')
  // Inactive relays count too: deactivating does not make room.
  assert.equal((await call(srv.url, bob, 'POST', `/relays/${ids[0]}/deactivate`)).status, 200)
  assert.equal((await call(srv.url, bob, 'POST', '/relays', { subdomain: 'cap-free-3' })).body.code, 'plan-relay-limit')
  // Moving one to another plan makes room on free, and the move back is refused while free is full.
  assert.equal((await call(srv.url, bob, 'PUT', `/relays/${ids[1]}`, { plan: 'basic' })).status, 200)
  assert.equal((await call(srv.url, bob, 'POST', '/relays', { subdomain: 'cap-free-3' })).status, 201)
  r = await call(srv.url, bob, 'PUT', `/relays/${ids[1]}`, { plan: 'free' })
  assert.equal(r.status, 422, r.text)
  assert.equal(r.body.code, 'plan-relay-limit')
  // Other edits of a relay on a full plan still work.
  assert.equal((await call(srv.url, bob, 'PUT', `/relays/${ids[2]}`, { info_name: 'still editable' })).status, 200)
  // Basic: 10 (one there already).
  for (let i = 0; i < 9; i++) {
    assert.equal((await call(srv.url, bob, 'POST', '/relays', { subdomain: `cap-basic-${i}`, plan: 'basic' })).status, 201)
  }
  r = await call(srv.url, bob, 'POST', '/relays', { subdomain: 'cap-basic-9', plan: 'basic' })
  assert.equal(r.body.code, 'plan-relay-limit', r.text)
})

test('info_description is limited in bytes as well as characters', async () => {
  const carol = newUser()
  assert.equal((await call(srv.url, carol, 'POST', '/tenants')).status, 201)
  const r = await call(srv.url, carol, 'POST', '/relays', { subdomain: 'desc-bytes', info_description: '€'.repeat(1500) })
  assert.equal(r.status, 400, '1500 characters but 4500 bytes')
  assert.equal(r.body.code, 'invalid-body')
  assert.match(r.body.error, /info_description.*4000 bytes/)
  const ok = await call(srv.url, carol, 'POST', '/relays', { subdomain: 'desc-bytes', info_description: '€'.repeat(1333) })
  assert.equal(ok.status, 201, ok.text)
})

test('an empty method or payload tag fails (it used to count as absent)', async () => {
  const dan = newUser()
  const body = '{}'
  for (const extra of [{ payload: '' }, { method: '' }]) {
    const c = await rawConnect(srv.port)
    await c.write(head('POST', '/tenants', {
      Authorization: rawToken(dan, { u: srv.url + '/tenants', method: 'POST', ...extra }),
      'Content-Length': String(body.length)
    }) + body)
    const r = await c.response(5000)
    assert.equal(r.status, 401, JSON.stringify(extra))
    c.destroy()
  }
  // The same token without the empty tag is accepted.
  const r = await call(srv.url, dan, 'POST', '/tenants')
  assert.equal(r.status, 201)
})

// The list reads of clients that left are not run: a flood of clients that queue large list
// pages and vanish used to keep the readers busy with answers nobody would read (and, at
// shutdown, past the stop's deadline). 60 connections ask for a ~1 MB page each and reset
// once the reads are queued; the reads not started by then are dropped (request line 499).
test('queued list reads of clients that closed their connections are dropped, not run', async () => {
  const admin = newUser()
  const metricsPort = await freePort()
  const lists = await startServer({ env: { ADMINS: admin.pk, METRICS_PORT: String(metricsPort) } })
  const conns = []
  try {
    const t0 = 1700000000
    lists.sql(`INSERT INTO tenant(pubkey, created_at) VALUES ('${'ab'.repeat(32)}', ${t0});`)
    let rows = []
    for (let i = 0; i < 250; i++) {
      if (rows.length === 50) { lists.sql(`BEGIN; ${rows.join('\n')} COMMIT;`); rows = [] }
      const id = i.toString(16).padStart(32, '0')
      rows.push('INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, ' +
        `info_name, info_description, created_at, updated_at) VALUES ('${id}', '${'ab'.repeat(32)}', ` +
        `'gone${i}', 'gone${i}', '${'cd'.repeat(32)}', 'growth', 'active', 1, 'Relay ${i}', ` +
        `'${'d'.repeat(125)}', ${t0 + i}, ${t0 + i});`)
    }
    // 4000-byte descriptions, doubled in SQL (the statement text stays small).
    for (let i = 0; i < 5; i++) rows.push("UPDATE relay SET info_description = info_description || info_description WHERE subdomain LIKE 'gone%';")
    lists.sql(`BEGIN; ${rows.join('\n')} COMMIT;`)
    const auth = sessionToken(admin, lists.url)
    const n = 60
    for (let i = 0; i < n; i++) {
      const c = await rawConnect(lists.port)
      await c.write(head('GET', '/relays?limit=500', { Authorization: auth }))
      conns.push(c)
    }
    // At most two lists run at once: most of the 60 wait in the database's list lane.
    await waitFor(async () => (await gauge(metricsPort, 'caravel_db_queue_depth')) >= n / 2,
      'the list reads queued (caravel_db_queue_depth)')
    for (const c of conns) c.sock.resetAndDestroy() // RST: the clients are gone
    const lines = (status) => (lists.logs().match(new RegExp(`GET /relays ${status} `, 'g')) || []).length
    await waitFor(() => lines(499) + lines(200) === n, 'a request line for each of the 60 lists', 60000)
    assert.ok(lines(499) >= n / 4, `dropped: ${lines(499)} of ${n} (run: ${lines(200)})`)
    assert.doesNotMatch(lists.logs(), /failed in the database/)
    // The server still answers lists to a client that stays.
    const r = await call(lists.url, admin, 'GET', '/relays?limit=2')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.body.data.length, 2)
  } finally {
    for (const c of conns) c.destroy()
    assert.equal(await lists.stop(), 0)
  }
})
