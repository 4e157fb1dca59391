// Hostile-client floods at full size against a running caravel (bench/flood.sh starts it):
// while each flood runs, one normal client sends GET /healthz in a loop and its latency is
// recorded; the server's RSS is sampled from /proc. Not a test: it prints figures.
//   node bench/flood.mjs   (env: URL, PID, TOKEN = an admin session token, METRICS,
//                           SLOW = slow connections, READERS = non-reading clients, SECS)
import net from 'node:net'
import fs from 'node:fs'
import { sleep, loadavg, startHealthz, loopWatch, percentile } from './lib.mjs'

const url = new URL(process.env.URL)
const port = Number(url.port)
const pid = process.env.PID
const token = process.env.TOKEN
const SLOW = Number(process.env.SLOW || 10000)
const READERS = Number(process.env.READERS || 1000)
const SECS = Number(process.env.SECS || 30)

const rssMb = () => {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

// The normal client: sequential GET /healthz on one keep-alive connection every 10 ms, from a
// process of its own (bench/lib.mjs; this process's event loop is busy with the flood's
// sockets and would add its own delays), for ms milliseconds; meanwhile the server's RSS every
// 100 ms and its longest loop iterations from /metrics. Latency in ms.
async function normalClient (ms) {
  const probe = startHealthz(`${url.origin}/healthz`)
  const loop = process.env.METRICS ? loopWatch(process.env.METRICS) : null
  let rssMax = 0
  const end = Date.now() + ms
  while (Date.now() < end) {
    rssMax = Math.max(rssMax, rssMb())
    await sleep(100)
  }
  const { lat, failed } = await probe.stop()
  const loopText = loop ? await loop() : ''
  return {
    n: lat.length,
    failed,
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    max: Math.max(...lat),
    rssMax,
    loopText
  }
}

// Many source addresses: the per-address limit is 256 by default.
const fromAddr = (i) => `127.0.${1 + Math.floor(i / 200) % 250}.${2 + i % 200}`

function connect (i) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: fromAddr(i) })
    s.on('error', () => {})
    s.once('connect', () => resolve(s))
    s.once('close', () => resolve(s))
  })
}

// Slow clients, kept at `count` open: half send a head and then one byte every 5 s (never
// completing it), half send a complete head with a valid token and Content-Length: 100000 and
// then trickle the body one byte every 5 s. A closed one is replaced at once.
async function slowFlood (count, stopAt) {
  const open = new Set()
  let opened = 0
  const start = async (i) => {
    const s = await connect(i)
    if (s.destroyed) return
    opened++
    open.add(s)
    const body = i % 2 === 1
    s.write(body
      ? `POST /tenants HTTP/1.1\r\nHost: x\r\nAuthorization: ${token}\r\nContent-Length: 100000\r\n\r\n`
      : 'POST /relays HTTP/1.1\r\nHost: x\r\n')
    const timer = setInterval(() => { if (!s.destroyed) s.write('X') }, 5000)
    s.on('data', () => {})
    s.once('close', () => {
      clearInterval(timer)
      open.delete(s)
      if (Date.now() < stopAt) start(i)
    })
  }
  for (let i = 0; i < count; i++) {
    start(i)
    if (i % 500 === 499) await sleep(50)
  }
  return { open, opened: () => opened }
}

// Non-reading clients: each pipelines 5 x GET /relays?limit=500 (the largest list) and reads
// nothing.
async function readerFlood (count) {
  const socks = []
  const req = `GET /relays?limit=500 HTTP/1.1\r\nHost: x\r\nAuthorization: ${token}\r\n\r\n`.repeat(5)
  for (let i = 0; i < count; i++) {
    const s = await connect(i)
    s.pause()
    s.write(req)
    socks.push(s)
  }
  return socks
}

async function metric (name) {
  if (!process.env.METRICS) return ''
  const text = await (await fetch(process.env.METRICS)).text()
  return text.split('\n').filter((l) => l.startsWith(name)).join(', ')
}

const fmt = (r) => `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms, ` +
  `${r.n} answered, ${r.failed} failed, RSS max ${r.rssMax.toFixed(0)} MB, load ${loadavg()}` +
  (r.loopText ? `\n  service event loop: ${r.loopText}` : '')

console.log(`RSS at start ${rssMb().toFixed(0)} MB`)
const base = await normalClient(10000)
console.log(`baseline (normal client alone, 10 s): ${fmt(base)}`)

const stopSlow = Date.now() + SECS * 1000
const flood = await slowFlood(SLOW, stopSlow)
await sleep(3000)
const slow = await normalClient(SECS * 1000 - 3000)
console.log(`${SLOW} slow clients (heads and bodies trickled, replaced when closed), ${SECS} s: ${fmt(slow)}; ` +
  `${flood.open.size} open at the end, ${flood.opened()} opened`)
for (const s of flood.open) s.destroy()
console.log(`  ${await metric('caravel_http_shed_total')}`)
await sleep(2000)
console.log(`RSS after the slow flood ${rssMb().toFixed(0)} MB`)

const readers = await readerFlood(READERS)
const nr = await normalClient(SECS * 1000)
console.log(`${READERS} clients pipelining 5 x GET /relays?limit=500 and never reading, ${SECS} s: ${fmt(nr)}`)
for (const s of readers) s.destroy()
console.log(`  ${await metric('caravel_http_shed_total')}`)
await sleep(2000)
console.log(`RSS at the end ${rssMb().toFixed(0)} MB; GET /relays answers by status (499: dropped, ` +
  `the client had gone): ${await metric('caravel_http_requests_total{route="/relays"')}`)
