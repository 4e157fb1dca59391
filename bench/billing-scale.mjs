// One billing period at 1k / 10k / 100k relays: wallet requests, CPU and time of the service,
// and the latency of API writes while the invoice pass runs.
//
//   node bench/billing-scale.mjs [1000 10000 100000]     (bash bench/billing-scale.sh builds first)
//
// Per size N: a database of N relays for N/5 tenants (one basic and one growth relay each, three
// free ones; three activity rows per relay) written through the real schema (the binary
// migrates an empty file, sqlite3 fills it); half of the tenants have an NWC URL (one tenant
// wallet service answers for all of them). The real caravel binary (CARAVEL_BIN, default
// build/caravel) runs with the fake clock just past the end of the first 7-day period, the
// platform wallet and the tenant wallet are @getalby/sdk NWC services on a fake Lightning
// network (test/integration/lib/wallet.mjs), over the test relay.
// The period, in fake time: invoices and BOLT11s at its start (NWC tenants pay at once; the
// others get the BOLT11 by DM); 80% of those pay it before the first lookup, the rest 10 min
// later; the clock then goes through the lookup schedule (+1 min, +5 min, +30 min, then every
// hour for a day) and on to the end of the period. After each clock step the bench waits for
// two completed billing runs (caravel_billing_runs_total).
// Meanwhile a separate process sends API writes (PUT /tenants/:pk/billing) one at a time and
// records their latency (p50/p99) during the invoice pass, and for 5 s before it with nothing
// due (the baseline of the same run). CPU and time count from the clock move, not the start.
// CPU figures are the whole process's; writes_cpu_s estimates the API writes' share (CPU per
// write in the baseline times the writes during the pass).
// BENCH_PERF=file records the pass with perf (file.N per size; BENCH_PERF_CALLGRAPH=dwarf
// unwinds through libuv and libc, which have no frame pointers); BILLING_CONCURRENCY passes
// through (default 8).
// Not a test: prints a table; record it in docs/BENCHMARKS.md.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { removeDir, tempDir, track } from '../test/integration/lib/lifecycle.mjs'
import { startRelay } from '../test/integration/lib/nostr-relay.mjs'
import { startServer } from '../test/integration/lib/server.mjs'
import { freePort } from '../test/integration/lib/nginx.mjs'
import { newUser } from '../test/integration/lib/auth.mjs'
import { FakeLightning, startWallet } from '../test/integration/lib/wallet.mjs'

const P = 7 * 86400
const T0 = Math.floor(Date.now() / 1000) + 30 * 86400 // ahead: NIP-47 expiration tags stay valid
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0)
// BENCH_INVOICES_ONLY=1: stop once every invoice is written (the invoice pass, the part that
// grew with the tables), then SIGTERM with wallet requests in flight; no collection period.
const onlyInvoices = process.env.BENCH_INVOICES_ONLY === '1'
if (!sizes.length) sizes.push(1000, 10000, 100000)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const hex64 = (n) => n.toString(16).padStart(64, '0')

function sql(db, q) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 10000', db, q], { encoding: 'utf8', maxBuffer: 1 << 28 }).trim()
}

// N relays, N/5 tenants, through the real schema (the binary applied every migration).
function fill(db, n, tenantWalletUrl) {
  const tenants = Math.ceil(n / 5)
  sql(db, `
    BEGIN;
    WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ${tenants - 1})
    INSERT INTO tenant(pubkey, nwc_url, created_at)
      SELECT printf('%064x', i + 1), CASE WHEN i % 2 = 0 THEN '${tenantWalletUrl}' END, ${T0} FROM k;
    WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ${n - 1})
    INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, created_at, updated_at)
      SELECT printf('%032x', i + 1), printf('%064x', i / 5 + 1), 'r' || i, 'r' || i, 'x',
             CASE i % 5 WHEN 0 THEN 'basic' WHEN 1 THEN 'growth' ELSE 'free' END, 'active', 1,
             ${T0}, ${T0} FROM k;
    INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id, plan, status)
      SELECT tenant, ${T0} + j * 100, CASE j WHEN 0 THEN 'create_relay' ELSE 'update_relay' END,
             'relay', id, plan, status FROM relay, (SELECT 0 AS j UNION ALL SELECT 1 UNION ALL SELECT 2)
      ORDER BY ${T0} + j * 100, id;
    COMMIT;`)
  return tenants
}

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime + stime, USER_HZ = 100
}

const scrape = async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()

async function counters(port) {
  const text = await scrape(port)
  const out = {}
  for (const m of text.matchAll(/^(caravel_(?:billing|loop)_\w+(?:\{[^}]*\})?) (\d+)$/gm)) out[m[1]] = Number(m[2])
  return out
}

// The server's own view of the probe's writes (its latency histogram, from a request's
// arrival to its answer): how many so far, and how many took over 10 ms.
async function serverWrites(port) {
  const text = await scrape(port)
  const line = (rest) => {
    const m = new RegExp(`^caravel_http_request_duration_seconds_${rest} (\\d+)$`, 'm').exec(text)
    return m ? Number(m[1]) : 0
  }
  const route = 'route="/tenants/:pubkey/billing"' // the probe's PUTs only
  const total = line(`count\\{${route}\\}`)
  return { total, over10: total - line(`bucket\\{${route},le="0.01"\\}`) }
}
const overShare = (a, b) => b.total > a.total ? (100 * (b.over10 - a.over10) / (b.total - a.total)).toFixed(2) : '-'

// A server that died (a crash) fails the run with its log instead of being polled forever.
function alive(srv) {
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null)
    throw new Error(`caravel exited (${srv.proc.exitCode ?? srv.proc.signalCode}):\n${srv.logs().slice(-4000)}`)
}

async function waitRuns(port, k = 2) {
  const start = (await counters(port)).caravel_billing_runs_total ?? 0
  for (;;) {
    if (((await counters(port)).caravel_billing_runs_total ?? 0) >= start + k) return
    await sleep(100)
  }
}

// API writes from their own process (this one is busy being two wallets), one at a time.
function startWriter(url, admin, target, clockFile) {
  // One keep-alive connection and a hand-written HTTP/1.1 request: Node's fetch (undici) cost
  // ~2 ms per request on this machine and its pauses showed up as the server's latency. The
  // token is made before the clock starts; the latency is from the first byte written to the
  // last byte of the answer read.
  const script = `
    const { rawToken } = await import(${JSON.stringify(new URL('../test/integration/lib/auth.mjs', import.meta.url).href)})
    const { readFileSync } = await import('node:fs')
    const net = await import('node:net')
    const [url, sk, target, clockFile] = process.argv.slice(1)
    const admin = { sk: Uint8Array.from(Buffer.from(sk, 'hex')) }
    const lat = []
    let running = true
    process.stdin.on('data', () => { running = false })
    const body = JSON.stringify({ nwc_url: null })
    const { createHash } = await import('node:crypto')
    const payload = createHash('sha256').update(body).digest('hex')
    const u = url + '/tenants/' + target + '/billing'
    const { hostname, port, pathname } = new URL(u)
    // A refused token (the clock moved between its making and its check) closes the
    // connection before the body is read: the probe connects again and goes on.
    let sock = null, buf = Buffer.alloc(0), waiting = null
    const answer = (status) => { const w = waiting; waiting = null; if (w) w(status) }
    const onData = (d) => {
      buf = Buffer.concat([buf, d])
      const end = buf.indexOf('\\r\\n\\r\\n')
      if (end < 0 || !waiting) return
      const head = buf.subarray(0, end).toString('latin1')
      const len = Number(/content-length: *(\\d+)/i.exec(head)?.[1] ?? 0)
      if (buf.length < end + 4 + len) return
      buf = buf.subarray(end + 4 + len)
      answer(Number(head.split(' ')[1]))
    }
    const connect = async () => {
      const s = net.connect(Number(port), hostname)
      s.setNoDelay(true)
      await new Promise((res, rej) => { s.once('connect', res); s.once('error', rej) })
      s.on('data', onData)
      s.on('error', () => {})
      s.on('close', () => { if (sock === s) { sock = null; answer(0) } })
      buf = Buffer.alloc(0)
      sock = s
    }
    while (running) {
      if (!sock) await connect()
      const now = Number(readFileSync(clockFile, 'utf8'))
      const token = rawToken(admin, { u, method: 'PUT', payload, createdAt: now })
      const req = 'PUT ' + pathname + ' HTTP/1.1\\r\\nHost: ' + hostname + ':' + port +
        '\\r\\nAuthorization: ' + token + '\\r\\nContent-Type: application/json\\r\\nContent-Length: ' +
        Buffer.byteLength(body) + '\\r\\n\\r\\n' + body
      const t0 = performance.now()
      const status = await new Promise((res) => { waiting = res; sock.write(req) })
      if (status === 200) lat.push([Date.now(), performance.now() - t0])
      await new Promise((res) => setTimeout(res, 5))
    }
    sock?.destroy()
    process.stdout.write(JSON.stringify(lat))`
  const child = track(spawn(process.execPath, ['--input-type=module', '-e', script, url, Buffer.from(admin.sk).toString('hex'), target, clockFile],
    { stdio: ['pipe', 'pipe', 'inherit'] }))
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  return {
    stop: () => new Promise((resolve) => {
      // 'close', not 'exit': at 'exit' the child's answer may still be in the pipe (half of
      // the runs then recorded no write at all).
      child.once('close', () => resolve(JSON.parse(out || '[]'))) // [[unix ms, latency ms]]
      child.stdin.end('x')
    }),
  }
}

const pct = (a, p) => {
  if (!a.length) return NaN
  const s = [...a].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

async function one(n, relay) {
  const dir = tempDir('caravel-billing-bench-') // removed also when the bench is interrupted
  const clockFile = path.join(dir, 'clock')
  const setClock = (t) => writeFileSync(clockFile, String(t))
  const ln = new FakeLightning({ clockFile })
  const platform = await startWallet({ relayUrl: relay.url, ln })
  const tenantWallet = await startWallet({ relayUrl: relay.url, ln })
  const admin = newUser()
  let srv
  try {
    setClock(T0)
    const base = { ADMINS: admin.pk, LOG_LEVEL: 'warn', CARAVEL_TEST_CLOCK_FILE: clockFile }
    srv = await startServer({ dir, env: base }) // migrates the empty file
    await srv.stop()
    const db = path.join(dir, 'caravel.db')
    const tenants = fill(db, n, tenantWallet.url)
    const metricsPort = await freePort()
    srv = await startServer({
      dir,
      env: {
        ...base, METRICS_PORT: String(metricsPort), NWC_URL: platform.url,
        BILLING_PERIOD: String(P), BILLING_INTERVAL: '1', BILLING_GRACE: String(P),
        BILLING_CONCURRENCY: process.env.BILLING_CONCURRENCY || '8',
      },
    })
    // Baseline in the same run: API writes while billing has nothing due (the clock is still
    // inside the first period; the first run is over).
    await waitRuns(metricsPort)
    const idleCpu0 = cpuSeconds(srv.pid)
    const idleWriter = startWriter(srv.url, admin, hex64(2), clockFile)
    await sleep(5000)
    const idleWrites = (await idleWriter.stop()).map(([, l]) => l)
    // What the API writes themselves cost (NIP-98 check, the write): taken out of billing's CPU.
    // (Only with enough samples; else nothing is taken out and the CPU figures include them.)
    const cpuPerWrite = idleWrites.length >= 50 ? (cpuSeconds(srv.pid) - idleCpu0) / idleWrites.length : 0
    const perf = process.env.BENCH_PERF
      ? track(spawn('perf', ['record', '-F', '499', '--call-graph', process.env.BENCH_PERF_CALLGRAPH || 'fp', '-o', `${process.env.BENCH_PERF}.${n}`, '-p', String(srv.pid)], { stdio: 'ignore' }))
      : null
    const writer = startWriter(srv.url, admin, hex64(2), clockFile)
    await sleep(2000) // the writer process is up and writing before the period ends
    const cpu0 = cpuSeconds(srv.pid)
    const server0 = await serverWrites(metricsPort)
    const t0 = performance.now()
    const passStart = Date.now()
    setClock(T0 + P + 1)
    // The invoice pass and the first collection: every invoice paid or its BOLT11 sent. A
    // wallet request that failed (an overloaded machine: 30 s timeouts) is retried at the next
    // run after now + 1 s of the service's clock: without progress for 20 s the clock moves 2 s.
    let last = '', still = 0, nudges = 0, invoicedSeconds = 0, invoicedCpu = 0
    for (;;) {
      alive(srv)
      const left = sql(db, "SELECT COUNT(*) FROM invoice WHERE status = 'pending' AND reminders = 0")
      const made = Number(sql(db, 'SELECT COUNT(*) FROM invoice'))
      if (made >= tenants && !invoicedSeconds) {
        invoicedSeconds = (performance.now() - t0) / 1000
        invoicedCpu = cpuSeconds(srv.pid) - cpu0
        if (onlyInvoices) break
      }
      if (made >= tenants && left === '0') break
      if (left === last && ++still >= 100) {
        setClock(T0 + P + 1 + 2 * ++nudges)
        still = 0
      } else if (left !== last) {
        still = 0
      }
      last = left
      await sleep(200)
    }
    const passSeconds = (performance.now() - t0) / 1000
    const passCpu = cpuSeconds(srv.pid) - cpu0
    const passEnd = Date.now()
    const server1 = await serverWrites(metricsPort)
    const allWrites = await writer.stop()
    const writes = allWrites.filter(([at]) => at >= passStart && at <= passEnd).map(([, l]) => l)
    if (perf) { perf.kill('SIGINT'); await new Promise((resolve) => perf.once('exit', resolve)) }
    if (onlyInvoices) {
      const s0 = performance.now()
      const code = await srv.stop()
      srv = null
      return {
        relays: n, invoices: Number(sql(db, 'SELECT COUNT(*) FROM invoice')),
        invoiced_s: invoicedSeconds.toFixed(1), invoiced_cpu_s: invoicedCpu.toFixed(2),
        writes_cpu_s: (writes.length * cpuPerWrite).toFixed(2),
        writes: writes.length, write_p50_ms: pct(writes, 50).toFixed(2), write_p99_ms: pct(writes, 99).toFixed(2),
        write_max_ms: Math.max(...writes).toFixed(1), server_over_10ms_pct: overShare(server0, server1),
        idle_p50_ms: pct(idleWrites, 50).toFixed(2), idle_p99_ms: pct(idleWrites, 99).toFixed(2),
        sigterm_exit: code, sigterm_s: ((performance.now() - s0) / 1000).toFixed(1),
      }
    }
    // The DM tenants pay: 80% at once, the rest after the 5-minute lookup.
    const unpaid = sql(db, "SELECT b.bolt11 FROM bolt11 b JOIN invoice i ON i.id = b.invoice WHERE i.status = 'pending'").split('\n').filter(Boolean)
    const late = unpaid.filter((_, i) => i % 5 === 0)
    for (const [i, b] of unpaid.entries()) if (i % 5 !== 0) ln.settle(b)
    const steps = [60, 300, 600, 1800]
    for (let h = 1; h <= 24; h++) steps.push(h * 3600)
    steps.push(P - 2)
    for (const s of steps) {
      setClock(T0 + P + 1 + s)
      if (s === 600) for (const b of late) ln.settle(b)
      alive(srv)
      await waitRuns(metricsPort)
    }
    const c = await counters(metricsPort)
    const pending = Number(sql(db, "SELECT COUNT(*) FROM invoice WHERE status = 'pending'"))
    const row = {
      relays: n, invoices: Number(sql(db, 'SELECT COUNT(*) FROM invoice')), unpaid: pending,
      make: c['caravel_billing_wallet_requests_total{method="make_invoice"}'] ?? 0,
      lookup: c['caravel_billing_wallet_requests_total{method="lookup_invoice"}'] ?? 0,
      pay: c['caravel_billing_wallet_requests_total{method="pay_invoice"}'] ?? 0,
      pass_s: passSeconds.toFixed(1), pass_cpu_s: passCpu.toFixed(1),
      period_cpu_s: (cpuSeconds(srv.pid) - cpu0).toFixed(1),
      writes_cpu_s: (writes.length * cpuPerWrite).toFixed(1),
      writes: writes.length, write_p50_ms: pct(writes, 50).toFixed(2), write_p99_ms: pct(writes, 99).toFixed(2),
      write_max_ms: Math.max(...writes).toFixed(1), server_over_10ms_pct: overShare(server0, server1),
      idle_p50_ms: pct(idleWrites, 50).toFixed(2), idle_p99_ms: pct(idleWrites, 99).toFixed(2),
      loop_stalls_50ms: c.caravel_loop_stalls_over_50ms_total ?? '-',
    }
    row.requests_per_invoice = ((row.make + row.lookup + row.pay) / row.invoices).toFixed(2)
    row.invoiced_s = invoicedSeconds.toFixed(1)
    row.clock_nudges = nudges
    return row
  } finally {
    if (srv) await srv.stop()
    await platform.close()
    await tenantWallet.close()
    removeDir(dir)
  }
}

const relay = await startRelay()
try {
  const rows = []
  for (const n of sizes) {
    const r = await one(n, relay)
    console.log(JSON.stringify(r))
    rows.push(r)
  }
  const keys = Object.keys(rows[0])
  console.log('| ' + keys.join(' | ') + ' |')
  console.log('|' + keys.map(() => '---:').join('|') + '|')
  for (const r of rows) console.log('| ' + keys.map((k) => r[k]).join(' | ') + ' |')
} finally {
  await relay.stop()
}
