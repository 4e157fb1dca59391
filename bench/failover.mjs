// Failover under load (bench/instances.sh; not a test): a steady mixed load through the proxy,
// one instance killed with SIGKILL in the middle, and what the clients saw.
//   node bench/failover.mjs URL RELAY_ID SESSION_TOKEN ADMIN_TOKEN KILL_PID [SECONDS]
// WORKERS concurrent loops (default 16), each: GET /relays/RELAY_ID with the owner's session
// token, then POST /relays for one of the tenants bench_tenants inserted (the admin's token,
// three relays per tenant, tenant numbers from 3,000,000 on so they differ from wrk's). The kill
// comes after a third of SECONDS (default 15). Prints one JSON line: requests, failures by
// method and status, the first and last failure relative to the kill, the time from the kill
// until every request succeeds again (the end of the last failed request; 0 when none failed),
// and the p50/p99/max latency before and after the kill.
const [url, relayId, session, admin, killPid, secondsArg] = process.argv.slice(2)
const seconds = Number(secondsArg || 15)
const workers = Number(process.env.WORKERS || 16)
const killAt = seconds * 1000 / 3
const t0 = performance.now()
const now = () => performance.now() - t0
const records = []
let tenantNo = 3000000 * 3
let killedAt = null

async function one (method, path, token, body) {
  const start = now()
  let status
  try {
    const r = await fetch(url + path, {
      method,
      headers: { Authorization: token, 'Content-Type': 'application/json' },
      body
    })
    await r.arrayBuffer()
    status = r.status
  } catch (e) {
    status = e.cause?.code || e.message
  }
  records.push({ method, start, end: now(), status })
}

async function worker () {
  while (now() < seconds * 1000) {
    await one('GET', `/relays/${relayId}`, session)
    const n = tenantNo++
    const tenant = Math.floor(n / 3).toString(16).padStart(64, '0')
    await one('POST', '/relays', admin, JSON.stringify({ subdomain: `fo-${n}`, plan: 'free', tenant }))
  }
}

function pct (xs, p) {
  if (!xs.length) return null
  const s = xs.slice().sort((a, b) => a - b)
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] * 10) / 10
}

setTimeout(() => { process.kill(Number(killPid), 'SIGKILL'); killedAt = now() }, killAt)
await Promise.all(Array.from({ length: workers }, worker))

const ok = (r) => (r.method === 'GET' && r.status === 200) || (r.method === 'POST' && r.status === 201)
const failed = records.filter((r) => !ok(r))
const byKind = {}
for (const r of failed) byKind[`${r.method} ${r.status}`] = (byKind[`${r.method} ${r.status}`] || 0) + 1
const lat = (rs) => rs.map((r) => r.end - r.start)
const before = records.filter((r) => r.end < killedAt)
const after = records.filter((r) => r.start >= killedAt)
const rel = (t) => Math.round((t - killedAt) * 10) / 10
console.log(JSON.stringify({
  requests: records.length,
  workers,
  failed: failed.length,
  failures: byKind,
  first_failure_ms: failed.length ? rel(Math.min(...failed.map((r) => r.start))) : null,
  last_failure_ms: failed.length ? rel(Math.max(...failed.map((r) => r.end))) : null,
  recovered_ms: failed.length ? Math.max(0, rel(Math.max(...failed.map((r) => r.end)))) : 0,
  before_p50_ms: pct(lat(before), 0.5),
  before_p99_ms: pct(lat(before), 0.99),
  after_p50_ms: pct(lat(after), 0.5),
  after_p99_ms: pct(lat(after), 0.99),
  after_max_ms: pct(lat(after), 1),
  slow_after_kill: after.filter((r) => r.end - r.start > 500).length
}))
