// Helpers shared by the Node benchmarks (bench/*.mjs; the shell ones have bench/lib.sh): the
// service's CPU and the machine's load, /healthz latency probed from its own process, the
// service's own view of its event loop, and relays written straight into the database and the
// test zooid. Not a test: figures only.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { startProbe, percentile } from '../test/integration/lib/probe.mjs'

export { percentile }
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export const fmt = (v) => v.toFixed(1)
// utime + stime of a process, in clock ticks (1/100 s).
export const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12])
}
export const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

// GET url every 10 ms from a process of its own (test/integration/lib/probe.mjs) until stop(),
// which resolves with { lat: the latencies in ms, failed: answers other than 200 and errors }.
// The first probes pay for the probe process's own start (a new Node process, its first
// connection): left out.
const WARMUP = 20
export function startHealthz (url) {
  const p = startProbe(url, 10)
  return {
    stop: async () => {
      const { lat, statuses } = await p.stop()
      const failed = Object.entries(statuses).reduce((n, [k, v]) => n + (k === '200' ? 0 : v), 0)
      return { lat: lat.slice(WARMUP), failed }
    }
  }
}

// "/healthz <label>: p50 p99 max ms (n probes)".
export const healthzLine = (label, lat) =>
  `/healthz ${label}: p50 ${fmt(percentile(lat, 0.5))} p99 ${fmt(percentile(lat, 0.99))} ` +
  `max ${fmt(Math.max(...lat))} ms (${lat.length} probes)`

// The lines comparing /healthz and the event loop during some work with the idle baseline of
// the same run (during: what ran, e.g. 'rollout').
export const healthzReport = (during, idle, busy, idleLoopText, busyLoopText) => [
  healthzLine('idle (baseline)', idle),
  healthzLine(`during the ${during}`, busy),
  `p99 during / idle: ${(percentile(busy, 0.99) / percentile(idle, 0.99)).toFixed(2)}`,
  `event-loop iterations, idle: ${idleLoopText}`,
  `event-loop iterations, during the ${during}: ${busyLoopText}`
]

// The service's own view of its event loop, from /metrics (reset at each scrape): the longest
// iteration (wall: callbacks plus any wait for a CPU) and the most CPU one iteration used (what
// the loop itself runs). Scraped every second until the returned function is called, which
// resolves with the worst second and the 99th and 50th percentiles of the seconds.
export function loopWatch (metricsUrl) {
  const wall = []
  const cpu = []
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

// n relays of one tenant (active, synced, created in zooid, management on, each with its own
// key), written into srv's SQLite database in one transaction and into the test zooid's configs.
export function seedZooidRelays (srv, zooid, owner, n, domain) {
  const now = Math.floor(Date.now() / 1000)
  const rows = [`INSERT INTO tenant(pubkey, created_at) VALUES ('${owner}', ${now});`]
  for (let i = 0; i < n; i++) {
    const id = randomBytes(16).toString('hex')
    const sub = `r${i}`
    const secret = randomBytes(32).toString('hex')
    rows.push(`INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, sync_created,
      management_enabled, created_at, updated_at) VALUES ('${id}', '${owner}', '${sub}', '${sub}', '${secret}',
      'growth', 'active', 1, 1, 1, ${now}, ${now});`)
    zooid.configs.set(id, {
      host: `${sub}.${domain}`, schema: sub, secret, inactive: false,
      info: { name: '', icon: '', pubkey: owner, description: '' }, policy: {}, management: { enabled: true }, roles: {}
    })
  }
  const sqlFile = path.join(srv.dir, 'relays.sql')
  writeFileSync(sqlFile, `BEGIN;\n${rows.join('\n')}\nCOMMIT;\n`)
  execFileSync('sqlite3', ['-cmd', '.timeout 10000', srv.dbPath, `.read ${sqlFile}`])
}
