// Latency of GET URL from its own process (the service's loop, not this one, is measured): one
// request at a time, every INTERVAL ms, until SIGTERM; then prints
// "p50 p99 max n errors" (milliseconds; errors: failed requests and non-200 answers).
//
//   node bench/healthz-probe.mjs URL [INTERVAL_MS=10]
const [url, interval = '10'] = process.argv.slice(2)
const lat = []
let errors = 0
let running = true
process.on('SIGTERM', () => { running = false })
const pct = (s, p) => (s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : 0)
while (running) {
  const t0 = performance.now()
  try {
    const r = await fetch(url)
    await r.arrayBuffer()
    if (r.status !== 200) errors++
  } catch {
    errors++
  }
  lat.push(performance.now() - t0)
  await new Promise((resolve) => setTimeout(resolve, Number(interval)))
}
lat.sort((a, b) => a - b)
const f = (v) => v.toFixed(2)
console.log(`${f(pct(lat, 0.5))} ${f(pct(lat, 0.99))} ${f(lat.at(-1) ?? 0)} ${lat.length} ${errors}`)
