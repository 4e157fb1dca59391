// The real sync worker (src/sync/worker.c, through build/tools/sync_tool) against the test zooid, which
// checks every request's NIP-98 with nostr-tools. Independent of the HTTP API; the API-driven
// scenarios are in sync.test.mjs. Retry timings are shortened with CARAVEL_TEST_SYNC_RETRY_MS.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils.js'
import { toolPath } from './lib/tool.mjs'
import { startZooid } from './lib/zooid.mjs'

const sk = generateSecretKey()
const tenant = getPublicKey(generateSecretKey())
let z
const dirs = []
const children = new Set()

before(async () => {
  z = await startZooid({ whitelist: [getPublicKey(sk)] })
})
after(async () => {
  for (const c of children) c.kill('SIGKILL')
  await z?.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

// Runs sync_tool asynchronously (the test zooid lives in this process's event loop). The tool
// gives up when not every relay has synced after timeout_ms: a bound for "it converges", far
// above what a healthy run needs (1,300 relays took 47 s with the machine at load 15-20), so
// a run on a loaded machine is not mistaken for one that stalls.
function runSync(relays, prefix, env = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'caravel-syncw-'))
  dirs.push(dir)
  const cmd = { db: path.join(dir, 'c.db'), zooid_url: z.url, sk: bytesToHex(sk), tenant, relays, prefix,
    relay_domain: 'spaces.test', timeout_ms: 240000 }
  return new Promise((resolve, reject) => {
    const c = spawn(toolPath('sync_tool'), [], {
      env: { ...process.env, LOG_LEVEL: 'error', CARAVEL_TEST_SYNC_RETRY_MS: '100', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    children.add(c)
    let out = ''
    let err = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (err = (err + d).slice(-4000)))
    c.on('error', reject)
    c.on('exit', (code) => {
      children.delete(c)
      try {
        resolve({ code, ...JSON.parse(out) })
      } catch {
        reject(new Error(`sync_tool printed ${out} (exit ${code}): ${err}`))
      }
    })
    c.stdin.end(JSON.stringify(cmd))
  })
}

test('1,000 relays converge with at most 8 requests at once, all NIP-98 valid', { timeout: 300000 }, async () => {
  const start = z.requests.length
  z.maxConcurrent = 0
  z.delayMs = 5
  const r = await runSync(1000, 'burst').finally(() => (z.delayMs = 0))
  assert.equal(r.code, 0, JSON.stringify(r))
  assert.equal(r.synced, 1000)
  assert.equal(r.loop_close, 0)
  const reqs = z.requests.slice(start)
  assert.equal(reqs.length, 1000)
  assert.ok(reqs.every((q) => q.method === 'POST' && q.status === 201), 'every POST accepted (NIP-98 valid)')
  assert.ok(z.maxConcurrent <= 8 && z.maxConcurrent >= 2, `max concurrent ${z.maxConcurrent}`)
  assert.equal(z.configs.get('burst999').host, 'bursts999.spaces.test')
  console.log(`# sync_tool: 1000 relays synced in ${r.ms} ms, max ${z.maxConcurrent} requests at once, ` +
    `loop timer lateness p99 ${r.lag_p99_ms} ms`)
})

test('zooid refusing, then answering 500, then back: relays converge', async () => {
  await z.refuse()
  const done = runSync(3, 'down')
  await z.waitFor(() => false, 600, 'time').catch(() => {}) // ~3 refused attempts each
  z.fault('500', 3)
  await z.accept()
  const r = await done
  assert.equal(r.code, 0, JSON.stringify(r))
  assert.equal(r.synced, 3)
  z.fault(null)
  const down = z.requests.filter((q) => q.id?.startsWith('down'))
  assert.equal(down.filter((q) => q.status === 500).length, 3)
  for (const id of ['down0', 'down1', 'down2']) assert.equal(z.configs.get(id).schema, id.replace(/(\d)$/, 's$1'))
})

// On a loaded machine an answer can also arrive after the client's timeout: the worker then
// retries that request too (POST meets 409, PUT replaces). Such extra retries are the behaviour
// under test, so the sequences allow any number of them after the fault's own request.
const RETRIED = '( POST 409 PUT 200)*'

test('a hung zooid request times out and is retried', async () => {
  const start = z.requests.length
  z.fault('hang', 1)
  const r = await runSync(1, 'hang', { CARAVEL_TEST_SYNC_TIMEOUT_MS: '1500' })
  assert.equal(r.code, 0, JSON.stringify(r))
  const seq = (from) => z.requests.slice(from).map((q) => ` ${q.method} ${q.status}`).join('')
  // Unanswered (timed out), then retried.
  assert.match(seq(start), new RegExp(`^ POST 0 POST 201${RETRIED}$`))
  const stored = z.requests.length
  z.fault('hang-after-store', 1)
  const r2 = await runSync(1, 'stored', { CARAVEL_TEST_SYNC_TIMEOUT_MS: '1500' })
  assert.equal(r2.code, 0, JSON.stringify(r2))
  // Stored by zooid but the answer never came: the retry meets 409 and replaces with PUT.
  assert.match(seq(stored), new RegExp(`^ POST 201 POST 409 PUT 200${RETRIED}$`))
  assert.equal(z.configs.get('stored0').schema, 'storeds0')
})

test('more relays than one batch drain without waiting for the reconcile tick', async () => {
  const start = z.requests.length
  // Batches of 1,100 and a reconcile tick that never comes again: only the worker's own
  // "queue running short, load the next batch" can reach the last 200 relays. The first batch
  // also takes the worker's hash table past its first 1,024 buckets (it doubles, then halves
  // as the relays sync).
  const r = await runSync(1300, 'drain', { CARAVEL_TEST_SYNC_BATCH: '1100', CARAVEL_TEST_SYNC_RECONCILE_MS: '600000' })
  assert.equal(r.code, 0, JSON.stringify(r))
  assert.equal(r.synced, 1300)
  const reqs = z.requests.slice(start).filter((q) => q.id?.startsWith('drain'))
  assert.equal(reqs.length, 1300, 'one request per relay: a batch never re-sends what is queued or in flight')
  assert.equal(new Set(reqs.map((q) => q.id)).size, 1300)
  console.log(`# sync_tool: 1,300 relays in batches of 1,100 synced in ${r.ms} ms`)
})

test('while zooid fails everything the circuit breaker stops the requests, one probe at a time, then all converge', async () => {
  const start = z.requests.length
  z.fault('500')
  const done = runSync(40, 'brk', { CARAVEL_TEST_SYNC_RETRY_MS: '100', CARAVEL_TEST_SYNC_BREAKER_MS: '300' })
  const failures = () => z.requests.slice(start).filter((q) => q.id?.startsWith('brk') && q.status === 500).length
  // The outage lasts 2 s from the first failed request, not from the spawn: on a loaded
  // machine the tool may need longer than that to start (a run once synced everything
  // before its first request, having never seen the outage).
  await z.waitFor(() => failures() > 0, 60000, 'the first request during the outage')
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const failed = failures()
  z.fault(null)
  const r = await done
  assert.equal(r.code, 0, JSON.stringify(r))
  assert.equal(r.synced, 40)
  assert.ok(r.breaker_opens >= 1, JSON.stringify(r))
  // 8 in flight opened it; then probes at +0.3, +0.9, +2.1 s (window doubling). Without the
  // breaker every relay would have been tried at least once (40), most of them several times.
  assert.ok(failed >= 8 && failed <= 8 + 8 + 4, `${failed} failed requests in 2 s`)
  const reqs = z.requests.slice(start).filter((q) => q.id?.startsWith('brk'))
  assert.equal(r.failures, reqs.filter((q) => q.status === 500).length, 'every failure recorded')
  assert.equal(reqs.filter((q) => q.status === 201).length, 40)
  console.log(`# sync_tool: 40 relays under a 2 s outage: ${failed} failed requests, breaker opened ${r.breaker_opens}x, synced in ${r.ms} ms`)
})
