// A latency probe in its own process: GET url every intervalMs, one request at a time, until
// stop(). Measured outside the test's process, whose event loop is busy signing and checking
// NIP-98 tokens with nostr-tools during a load test and would otherwise add its own delays to
// every sample. stop() resolves with the latencies in ms and the statuses seen.
import { spawn } from 'node:child_process'
import { track } from './lifecycle.mjs'

const script = `
const [url, interval] = [process.argv[1], Number(process.argv[2])]
const lat = [], statuses = {}
let running = true
process.stdin.on('data', () => { running = false })
process.stdin.on('end', () => { running = false })
;(async () => {
  while (running) {
    const t0 = performance.now()
    try {
      const r = await fetch(url)
      await r.text()
      statuses[r.status] = (statuses[r.status] || 0) + 1
    } catch (e) { statuses.error = (statuses.error || 0) + 1 }
    lat.push(performance.now() - t0)
    await new Promise((res) => setTimeout(res, interval))
  }
  process.stdout.write(JSON.stringify({ lat, statuses }))
})()
`

export function startProbe (url, intervalMs = 5) {
  const child = track(spawn(process.execPath, ['-e', script, url, String(intervalMs)],
    { stdio: ['pipe', 'pipe', 'inherit'] }))
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  return {
    async stop () {
      child.stdin.end('stop\n')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
      await exited
      clearTimeout(timer)
      return JSON.parse(out)
    }
  }
}

export function percentile (values, p) {
  const v = [...values].sort((a, b) => a - b)
  return v[Math.min(v.length - 1, Math.floor(v.length * p))]
}
