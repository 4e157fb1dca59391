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
import { readFileSync, writeFileSync } from 'node:fs'
import { newUser, call } from '../test/integration/lib/auth.mjs'
import { startServer } from '../test/integration/lib/server.mjs'
import { startZooid } from '../test/integration/lib/zooid.mjs'
import { freePort } from '../test/integration/lib/nginx.mjs'
import { sleep, fmt, cpuTicks, loadavg, startHealthz, healthzReport, loopWatch, seedZooidRelays } from './lib.mjs'

const N = Number(process.argv[2] ?? 10000)
const CONCURRENCY = process.argv[3] ?? '16'
const admin = newUser()
const owner = newUser().pk
const domain = 'bench.test'

// ns a process spent runnable but waiting for a CPU (its main thread's schedstat).
const waitNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1])

async function probeFor (url, ms) {
  const p = startHealthz(url)
  await sleep(ms)
  return (await p.stop()).lat
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
  seedZooidRelays(srv, zooid, owner, N, domain)

  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
  const idleLoop = loopWatch(metricsUrl)
  const idle = await probeFor(`${srv.url}/healthz`, 15000)
  const idleLoopText = await idleLoop()
  const idleLoad = loadavg()

  const target = newUser().pk
  const probe = startHealthz(`${srv.url}/healthz`)
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
  const busy = (await probe.stop()).lat
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
    ...healthzReport('rollout', idle, busy, idleLoopText, busyLoopText),
  ]
  console.log(lines.join('\n'))
  if (process.env.BENCH_LOG) writeFileSync(process.env.BENCH_LOG, srv.logs())
} finally {
  await srv.kill9()
  await zooid.stop()
}
