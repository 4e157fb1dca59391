// Benchmark (not a test): the background member-count refresh over N relays (default 10,000)
// against the faithful test zooid (test/integration/lib/zooid.mjs, which checks every request's
// NIP-98 signature), with GET /healthz probed from its own process, first with the service idle
// (the baseline of the same run, before the relays exist), then while the counts are read.
//
//   node bench/members-refresh.mjs [N=10000] [INTERVAL_S=60] [CONCURRENCY=4] [WINDOWS=2]
//   (CARAVEL_BIN, default build/caravel)
//
// The relays are written straight into the database (active, synced, created in zooid) and into
// the test zooid's configs; the refresh finds them at its next claim (at most a minute later),
// places each at a random point of the interval, and then reads each once per interval. Prints:
// reads per tenth of the interval (flat = spread, not all at once), reads in all, the most at
// once seen by zooid, the service's CPU per read, /healthz p50/p99 idle and during, the service's
// longest loop iteration (wall, CPU) idle and during, and the load average.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { newUser } from '../test/integration/lib/auth.mjs'
import { startServer } from '../test/integration/lib/server.mjs'
import { startZooid } from '../test/integration/lib/zooid.mjs'
import { startProbe, percentile } from '../test/integration/lib/probe.mjs'
import { freePort } from '../test/integration/lib/nginx.mjs'

const N = Number(process.argv[2] ?? 10000)
const INTERVAL = Number(process.argv[3] ?? 60)
const CONCURRENCY = process.argv[4] ?? '4'
const WINDOWS = Number(process.argv[5] ?? 2)
const owner = newUser().pk
const zooidKey = newUser() // the key caravel signs zooid's API requests with
const WARMUP = 20

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12])
}
const fmt = (v) => v.toFixed(1)
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

// Longest loop iteration (wall, CPU) per second, from /metrics (reset at each scrape).
function loopWatch(metricsUrl) {
  const wall = [], cpu = []
  let on = true
  const done = (async () => {
    while (on) {
      try {
        const t = await (await fetch(metricsUrl)).text()
        wall.push(Number(t.match(/^caravel_loop_stall_max_ms (\d+)/m)?.[1] ?? NaN))
        cpu.push(Number(t.match(/^caravel_loop_stall_cpu_max_ms (\d+)/m)?.[1] ?? NaN))
      } catch {}
      await sleep(1000)
    }
  })()
  return async () => {
    on = false
    await done
    const f = (v) => `max ${Math.max(...v)} p50 ${percentile(v, 0.5)}`
    return `wall ${f(wall.slice(1))}; CPU ${f(cpu.slice(1))} (ms, per-second maxima of ${wall.length - 1} s)`
  }
}

const zooid = await startZooid({ whitelist: [zooidKey.pk] })
const metricsPort = await freePort()
const srv = await startServer({
  env: {
    METRICS_PORT: String(metricsPort),
    ZOOID_API_URL: zooid.url,
    ZOOID_API_SECRET: Buffer.from(zooidKey.sk).toString('hex'),
    RELAY_DOMAIN: 'bench.test',
    MEMBERS_REFRESH_INTERVAL: String(INTERVAL),
    MEMBERS_REFRESH_CONCURRENCY: CONCURRENCY,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  },
})
try {
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
  const idleLoop = loopWatch(metricsUrl)
  const p0 = startProbe(`${srv.url}/healthz`, 10)
  await sleep(15000)
  const idle = (await p0.stop()).lat.slice(WARMUP)
  const idleLoopText = await idleLoop()
  const idleLoad = loadavg()

  const now = Math.floor(Date.now() / 1000)
  const rows = [`INSERT INTO tenant(pubkey, created_at) VALUES ('${owner}', ${now});`]
  for (let i = 0; i < N; i++) {
    const id = randomBytes(16).toString('hex')
    const sub = `r${i}`
    const secret = randomBytes(32).toString('hex')
    rows.push(`INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, sync_created,
      management_enabled, created_at, updated_at) VALUES ('${id}', '${owner}', '${sub}', '${sub}', '${secret}',
      'growth', 'active', 1, 1, 1, ${now}, ${now});`)
    zooid.configs.set(id, {
      host: `${sub}.bench.test`, schema: sub, secret, inactive: false,
      info: { name: '', icon: '', pubkey: owner, description: '' }, policy: {}, management: { enabled: true }, roles: {},
    })
  }
  const sqlFile = path.join(srv.dir, 'relays.sql')
  writeFileSync(sqlFile, `BEGIN;\n${rows.join('\n')}\nCOMMIT;\n`)
  execFileSync('sqlite3', ['-cmd', '.timeout 10000', srv.dbPath, `.read ${sqlFile}`])

  // The refresh finds the relays at its next claim (at most a minute): measure from the first read.
  const isRead = (q) => q.method === 'GET' && q.path?.endsWith('/members')
  const t0 = Date.now()
  while (!zooid.requests.some(isRead)) {
    if (Date.now() - t0 > 90000) throw new Error('no member-count read within 90 s')
    await sleep(100)
  }
  const start = zooid.requests.findIndex(isRead)
  zooid.maxConcurrent = 0
  const probe = startProbe(`${srv.url}/healthz`, 10)
  const busyLoop = loopWatch(metricsUrl)
  const c0 = cpuTicks(srv.pid)
  const tStart = performance.now()
  const slices = []
  for (let w = 0; w < WINDOWS * 10; w++) {
    const before = zooid.requests.slice(start).filter(isRead).length
    await sleep((INTERVAL * 1000) / 10)
    slices.push(zooid.requests.slice(start).filter(isRead).length - before)
  }
  const secs = (performance.now() - tStart) / 1000
  const cpu = (cpuTicks(srv.pid) - c0) / 100
  const busy = (await probe.stop()).lat.slice(WARMUP)
  const busyLoopText = await busyLoop()
  const reads = zooid.requests.slice(start).filter(isRead)
  const perRelay = new Map()
  for (const q of reads) perRelay.set(q.id, (perRelay.get(q.id) ?? 0) + 1)
  const failed = reads.filter((q) => q.status !== 200).length
  const lines = [
    `relays ${N}, MEMBERS_REFRESH_INTERVAL ${INTERVAL} s, MEMBERS_REFRESH_CONCURRENCY ${CONCURRENCY}, ${WINDOWS} intervals measured`,
    `reads: ${reads.length} in ${fmt(secs)} s (${fmt(reads.length / secs)}/s; expected ${fmt(N / INTERVAL)}/s), ${failed} not 200, relays read ${perRelay.size}, most reads of one relay ${Math.max(...perRelay.values())}`,
    `reads per tenth of the interval: ${slices.join(' ')}`,
    `most requests at once seen by zooid: ${zooid.maxConcurrent}`,
    `service CPU: ${fmt(cpu)} s (${Math.round((cpu * 1e6) / Math.max(1, reads.length))} us per read)`,
    `load average (1/5/15 min): after the idle baseline ${idleLoad}, at the end ${loadavg()}`,
    `/healthz idle (baseline): p50 ${fmt(percentile(idle, 0.5))} p99 ${fmt(percentile(idle, 0.99))} max ${fmt(Math.max(...idle))} ms (${idle.length} probes)`,
    `/healthz during the refresh: p50 ${fmt(percentile(busy, 0.5))} p99 ${fmt(percentile(busy, 0.99))} max ${fmt(Math.max(...busy))} ms (${busy.length} probes)`,
    `p99 during / idle: ${(percentile(busy, 0.99) / percentile(idle, 0.99)).toFixed(2)}`,
    `event-loop iterations, idle: ${idleLoopText}`,
    `event-loop iterations, during the refresh: ${busyLoopText}`,
  ]
  console.log(lines.join('\n'))
  if (process.env.BENCH_LOG) writeFileSync(process.env.BENCH_LOG, srv.logs())
} finally {
  await srv.kill9()
  await zooid.stop()
}
