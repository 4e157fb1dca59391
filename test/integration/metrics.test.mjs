// METRICS_PORT: Prometheus exposition on a second listener. Drives some API requests, then
// scrapes /metrics and checks the counters, the histogram and the gauges against what was sent.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { engine, startServer } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

// name{labels} value -> [{name, labels: {..}, value}]; throws on a malformed line.
function parseExposition (text) {
  const out = []
  const types = new Map()
  for (const line of text.split('\n')) {
    if (line === '') continue
    let m
    if ((m = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/))) {
      assert.ok(!types.has(m[1]), `TYPE ${m[1]} twice`)
      types.set(m[1], m[2])
      continue
    }
    if (line.startsWith('# HELP ')) continue
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/)
    assert.ok(m, `malformed line: ${line}`)
    const labels = {}
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    const family = m[1].replace(/_(bucket|sum|count)$/, '')
    assert.ok(types.has(m[1]) || types.has(family), `sample before its TYPE: ${line}`)
    out.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return out
}

function value (samples, name, labels = {}) {
  const s = samples.find((x) => x.name === name &&
    Object.entries(labels).every(([k, v]) => x.labels[k] === v))
  return s ? s.value : undefined
}

let srv, metricsUrl
before(async () => {
  const port = await freePort()
  srv = await startServer({ env: { METRICS_PORT: String(port) } })
  metricsUrl = `http://127.0.0.1:${port}`
  assert.match(srv.logs(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${port}/metrics`))
})
after(async () => { if (srv) assert.equal(await srv.stop(), 0) })

test('requests are counted by route pattern and status, with latency', async () => {
  const user = newUser()
  for (let i = 0; i < 3; i++) assert.equal((await call(srv.url, null, 'GET', '/healthz')).status, 200)
  assert.equal((await call(srv.url, null, 'GET', '/plans/basic')).status, 200)
  assert.equal((await call(srv.url, null, 'GET', '/plans/nope')).status, 404)
  assert.equal((await call(srv.url, user, 'POST', '/tenants', {})).status, 201)
  assert.equal((await call(srv.url, user, 'POST', '/tenants', {})).status, 422)
  assert.equal((await call(srv.url, null, 'GET', '/relays/abc')).status, 401)
  assert.equal((await call(srv.url, null, 'GET', '/no/such/route')).status, 404)

  const r = await fetch(metricsUrl + '/metrics')
  assert.equal(r.status, 200)
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const s = parseExposition(await r.text())
  const req = 'caravel_http_requests_total'
  assert.equal(value(s, req, { route: '/healthz', status: '200' }), 3)
  assert.equal(value(s, req, { route: '/plans/:id', status: '200' }), 1)
  assert.equal(value(s, req, { route: '/plans/:id', status: '404' }), 1)
  assert.equal(value(s, req, { route: '/tenants', status: '201' }), 1)
  assert.equal(value(s, req, { route: '/tenants', status: '422' }), 1)
  assert.equal(value(s, req, { route: '/relays/:id', status: '401' }), 1)
  assert.equal(value(s, req, { route: 'other', status: '404' }), 1)
  // No raw paths: /relays/abc is counted under its pattern only.
  assert.ok(!s.some((x) => x.labels.route === '/relays/abc'))

  const h = 'caravel_http_request_duration_seconds'
  assert.equal(value(s, h + '_count', { route: '/healthz' }), 3)
  assert.equal(value(s, h + '_bucket', { route: '/healthz', le: '+Inf' }), 3)
  const buckets = s.filter((x) => x.name === h + '_bucket' && x.labels.route === '/tenants')
  assert.equal(buckets.length, 13)
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value)
  assert.ok(value(s, h + '_sum', { route: '/tenants' }) > 0)

  // Gauges of the services that run; the sync worker and relay pool are off here.
  assert.equal(value(s, 'caravel_db_queue_depth'), 0)
  // this test's writes, not yet checkpointed (SQLite's WAL; PostgreSQL has none of ours: 0)
  if (engine === 'sqlite') assert.ok(value(s, 'caravel_db_wal_frames') > 0)
  else assert.equal(value(s, 'caravel_db_wal_frames'), 0)
  // WAL upkeep counters: these few writes never made the writer checkpoint itself; a
  // background checkpoint may have run (the 1 s sync timer); PostgreSQL has none.
  assert.equal(value(s, 'caravel_db_writer_checkpoints_total'), 0)
  if (engine === 'sqlite') {
    assert.ok(value(s, 'caravel_db_checkpoints_total') >= 0)
    assert.ok(value(s, 'caravel_db_wal_restarts_total') >= 0)
  } else {
    assert.equal(value(s, 'caravel_db_checkpoints_total'), 0)
    assert.equal(value(s, 'caravel_db_wal_restarts_total'), 0)
  }
  assert.equal(value(s, 'caravel_http_requests_in_flight'), 0)
  assert.equal(value(s, 'caravel_outbox_queued_messages'), 0)
  assert.equal(value(s, 'caravel_sync_backlog'), undefined)
  assert.equal(value(s, 'caravel_relay_connections'), undefined)
  // The loop's longest iteration since the previous scrape (a few ms at most while idle).
  const stall = value(s, 'caravel_loop_stall_max_ms')
  assert.ok(stall >= 0 && stall < 1000, `loop stall ${stall}`)
  assert.ok(value(s, 'caravel_loop_stalls_over_50ms_total') >= 0)
  const cpu = value(s, 'caravel_loop_stall_cpu_max_ms')
  assert.ok(cpu >= 0 && cpu <= stall + 1, `loop stall CPU ${cpu} (wall ${stall})`)
  const start = value(s, 'caravel_process_start_time_seconds')
  assert.ok(Math.abs(start - Date.now() / 1000) < 600)
})

test('the metrics listener serves only /metrics and is not counted as API traffic', async () => {
  assert.equal((await fetch(metricsUrl + '/healthz')).status, 404)
  assert.equal((await fetch(metricsUrl + '/metrics', { method: 'POST' })).status, 405)
  const s = parseExposition(await (await fetch(metricsUrl + '/metrics')).text())
  assert.equal(value(s, 'caravel_http_requests_total', { route: '/healthz', status: '404' }), undefined)
  // The API does not serve /metrics.
  assert.equal((await fetch(srv.url + '/metrics')).status, 404)
})

test('METRICS_PORT unset: no listener, no metrics line', async () => {
  const plain = await startServer()
  try {
    assert.doesNotMatch(plain.logs(), /metrics on/)
  } finally {
    assert.equal(await plain.stop(), 0)
  }
})
