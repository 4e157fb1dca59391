// Benchmark (not a test): the rollout of one operator block-list entry to N relays (default
// 10,000) against the faithful test zooid (test/integration/lib/zooid.mjs, which checks every
// NIP-86 call's NIP-98 signature with nostr-tools, so it is the slower side), with GET /healthz
// latency measured from its own process meanwhile and, as the baseline of the same run, while
// the service is idle just before.
//
//   node bench/blocklist-rollout.mjs [N=10000] [CONCURRENCY=16]     (CARAVEL_BIN, default build/caravel)
//
// The relays are written straight into the database (active, synced, management on, each with
// its own key) and into the test zooid's configs, so the sync worker is not involved (it is off:
// no ZOOID_API_URL). Prints: rollout time, calls/s, the most calls in flight (the service's own
// count, from its "rollout idle" log line, and what the test zooid saw at once), the service's
// CPU, /healthz p50/p99/max idle and during the rollout (the same run: the idle baseline is
// measured just before), and the machine's load average at both times (a shared machine's
// scheduling delays are in every latency).
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { newUser, call } from '../test/integration/lib/auth.mjs'
import { startServer } from '../test/integration/lib/server.mjs'
import { startZooid } from '../test/integration/lib/zooid.mjs'
import { startProbe, percentile } from '../test/integration/lib/probe.mjs'
import { freePort } from '../test/integration/lib/nginx.mjs'

const N = Number(process.argv[2] ?? 10000)
const CONCURRENCY = process.argv[3] ?? '16'
const admin = newUser()
const owner = newUser().pk
const domain = 'bench.test'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12])
}
const fmt = (v) => v.toFixed(1)
// ns a process spent runnable but waiting for a CPU (its main thread's schedstat).
const waitNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1])

// The first probes pay for the probe process's own start (a new Node process, its first
// connection): left out of both series.
const WARMUP = 20
async function probeFor(url, ms) {
  const p = startProbe(url, 10)
  await sleep(ms)
  const { lat } = await p.stop()
  return lat.slice(WARMUP)
}

// The service's own view of its event loop, from /metrics (reset at each scrape): the longest
// iteration (wall: callbacks plus any wait for a CPU) and the most CPU one iteration used (what
// the loop itself runs). Scraped every second; the worst second and the 99th percentile of the
// seconds are reported.
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
    const f = (v) => `max ${Math.max(...v)} p99 ${percentile(v, 0.99)} p50 ${percentile(v, 0.5)}`
    return `wall ${f(wall.slice(1))}; CPU ${f(cpu.slice(1))} (ms, per-second maxima of ${wall.length - 1} s)`
  }
}

const zooid = await startZooid({ whitelist: [] })
const metricsPort = await freePort()
const srv = await startServer({
  env: {
    METRICS_PORT: String(metricsPort),
    ADMINS: admin.pk,
    RELAY_DOMAIN: domain,
    RELAY_URL_TEMPLATE: zooid.url,
    BLOCKLIST_CONCURRENCY: CONCURRENCY,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  },
})
try {
  // N relays with their own keys, in the database and in zooid.
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
      host: `${sub}.${domain}`, schema: sub, secret, inactive: false,
      info: { name: '', icon: '', pubkey: owner, description: '' }, policy: {}, management: { enabled: true }, roles: {},
    })
  }
  const sqlFile = path.join(srv.dir, 'relays.sql')
  writeFileSync(sqlFile, `BEGIN;\n${rows.join('\n')}\nCOMMIT;\n`)
  execFileSync('sqlite3', ['-cmd', '.timeout 10000', srv.dbPath, `.read ${sqlFile}`])

  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
  const idleLoop = loopWatch(metricsUrl)
  const idle = await probeFor(`${srv.url}/healthz`, 15000)
  const idleLoopText = await idleLoop()
  const idleLoad = loadavg()

  const target = newUser().pk
  const probe = startProbe(`${srv.url}/healthz`, 10)
  const busyLoop = loopWatch(metricsUrl)
  const c0 = cpuTicks(srv.pid)
  const z0 = process.cpuUsage() // the test zooid runs in this process
  const w0 = [waitNs(srv.pid), waitNs(process.pid)]
  const t0 = performance.now()
  const r = await call(srv.url, admin, 'POST', '/blocklist', { pubkey: target, reason: 'benchmark' })
  if (r.status !== 201) throw new Error(`POST /blocklist: ${r.status} ${r.text}`)
  let seen = 0
  for (;;) {
    seen = zooid.rpcs.filter((x) => x.method === 'banpubkey' && x.status === 200 && x.result === true).length
    if (seen >= N && srv.logs().includes('rollout idle')) break
    if (performance.now() - t0 > 900000) throw new Error(`only ${seen} of ${N} relays banned after 900 s`)
    await sleep(200)
  }
  const secs = (performance.now() - t0) / 1000
  const cpu = (cpuTicks(srv.pid) - c0) / 100
  const zu = process.cpuUsage(z0)
  const zcpu = (zu.user + zu.system) / 1e6
  const wait = [waitNs(srv.pid) - w0[0], waitNs(process.pid) - w0[1]].map((w) => Math.round(w / 1e7 / secs))
  const busy = (await probe.stop()).lat.slice(WARMUP)
  const busyLoopText = await busyLoop()
  const m = srv.logs().match(/rollout idle: (\d+) changes confirmed, at most (\d+) calls in flight/)
  const failed = zooid.rpcs.filter((x) => x.method === 'banpubkey' && !(x.status === 200 && x.result === true)).length
  const lines = [
    `relays ${N}, BLOCKLIST_CONCURRENCY ${CONCURRENCY}`,
    `rollout: ${fmt(secs)} s, ${Math.round(N / secs)} relays/s, ${m ? m[1] : '?'} confirmed, ${failed} calls refused`,
    `most calls in flight: ${m ? m[2] : '?'} (the service's own count)`,
    `waiting for a CPU (% of the rollout): service loop thread ${wait[0]}, test zooid ${wait[1]}`,
    `load average (1/5/15 min): after the idle baseline ${idleLoad}, after the rollout ${loadavg()}`,
    `service CPU: ${fmt(cpu)} s (${Math.round((cpu * 1e6) / N)} us per relay); test zooid CPU: ${fmt(zcpu)} s (${Math.round((zcpu / secs) * 100)}% of the rollout: the zooid is the bottleneck when near 100%)`,
    `/healthz idle (baseline): p50 ${fmt(percentile(idle, 0.5))} p99 ${fmt(percentile(idle, 0.99))} max ${fmt(Math.max(...idle))} ms (${idle.length} probes)`,
    `/healthz during the rollout: p50 ${fmt(percentile(busy, 0.5))} p99 ${fmt(percentile(busy, 0.99))} max ${fmt(Math.max(...busy))} ms (${busy.length} probes)`,
    `p99 during / idle: ${(percentile(busy, 0.99) / percentile(idle, 0.99)).toFixed(2)}`,
    `event-loop iterations, idle: ${idleLoopText}`,
    `event-loop iterations, during the rollout: ${busyLoopText}`,
  ]
  console.log(lines.join('\n'))
  if (process.env.BENCH_LOG) writeFileSync(process.env.BENCH_LOG, srv.logs())
} finally {
  await srv.kill9()
  await zooid.stop()
}
