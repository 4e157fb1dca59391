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
import { writeFileSync } from 'node:fs'
import { newUser } from '../test/integration/lib/auth.mjs'
import { startServer } from '../test/integration/lib/server.mjs'
import { startZooid } from '../test/integration/lib/zooid.mjs'
import { freePort } from '../test/integration/lib/nginx.mjs'
import { sleep, fmt, cpuTicks, loadavg, startHealthz, healthzReport, loopWatch, seedZooidRelays } from './lib.mjs'

const N = Number(process.argv[2] ?? 10000)
const INTERVAL = Number(process.argv[3] ?? 60)
const CONCURRENCY = process.argv[4] ?? '4'
const WINDOWS = Number(process.argv[5] ?? 2)
const owner = newUser().pk
const zooidKey = newUser() // the key caravel signs zooid's API requests with

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
  const p0 = startHealthz(`${srv.url}/healthz`)
  await sleep(15000)
  const idle = (await p0.stop()).lat
  const idleLoopText = await idleLoop()
  const idleLoad = loadavg()

  seedZooidRelays(srv, zooid, owner, N, 'bench.test')

  // The refresh finds the relays at its next claim (at most a minute): measure from the first read.
  const isRead = (q) => q.method === 'GET' && q.path?.endsWith('/members')
  const t0 = Date.now()
  while (!zooid.requests.some(isRead)) {
    if (Date.now() - t0 > 90000) throw new Error('no member-count read within 90 s')
    await sleep(100)
  }
  const start = zooid.requests.findIndex(isRead)
  zooid.maxConcurrent = 0
  const probe = startHealthz(`${srv.url}/healthz`)
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
  const busy = (await probe.stop()).lat
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
    ...healthzReport('refresh', idle, busy, idleLoopText, busyLoopText),
  ]
  console.log(lines.join('\n'))
  if (process.env.BENCH_LOG) writeFileSync(process.env.BENCH_LOG, srv.logs())
} finally {
  await srv.kill9()
  await zooid.stop()
}
