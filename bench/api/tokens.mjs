// Pre-generates NIP-98 tokens with nostr-tools for the API benchmark (bench/api/run.sh).
//   node bench/api/tokens.mjs OUTDIR BASE_URL COUNT
// Writes OUTDIR/admin.hex (pubkey), OUTDIR/session.txt (one session-style token: u = API
// root, no method tag, valid for every route), OUTDIR/fresh.txt (COUNT distinct per-request
// getToken tokens for GET /identity, one per line) and OUTDIR/fresh-hit-rate.txt: the share of
// requests that the server's direct-mapped verified-token cache (src/api/nip98.c: 4096 slots,
// slot = token_hash() of the token % 4096) answers when wrk cycles through the file.
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../../test/package.json'))
const { finalizeEvent, getPublicKey } = require('nostr-tools/pure')
const nip98 = require('nostr-tools/nip98')

if (!isMainThread) {
  const { sk, url, count } = workerData
  const key = Uint8Array.from(Buffer.from(sk, 'hex'))
  const out = []
  for (let i = 0; i < count; i++) {
    // getToken's created_at is "now": distinct tokens need distinct events, so the u tag
    // stays the same and a nonce-free variation comes from the clock and the signature's
    // random aux data (BIP-340 signing in noble uses fresh randomness).
    out.push(await nip98.getToken(url, 'GET', (e) => finalizeEvent(e, key), true))
  }
  parentPort.postMessage(out)
} else {
  const [outDir, base, countStr] = process.argv.slice(2)
  const count = Number(countStr || 10000)
  const sk = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex')
  const key = Uint8Array.from(Buffer.from(sk, 'hex'))
  fs.mkdirSync(outDir, { recursive: true })
  fs.writeFileSync(path.join(outDir, 'admin.hex'), getPublicKey(key))
  const session = finalizeEvent({ kind: 27235, created_at: Math.floor(Date.now() / 1000), tags: [['u', base + '/']], content: '' }, key)
  fs.writeFileSync(path.join(outDir, 'session.txt'), 'Nostr ' + Buffer.from(JSON.stringify(session)).toString('base64'))
  const workers = Math.max(1, Math.min(os.cpus().length, 4))
  const per = Math.ceil(count / workers)
  const parts = await Promise.all(Array.from({ length: workers }, () => new Promise((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { sk, url: base + '/identity', count: per } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  const all = [...new Set(parts.flat())].slice(0, count)
  if (all.length < count) throw new Error(`only ${all.length} distinct tokens`)
  fs.writeFileSync(path.join(outDir, 'fresh.txt'), all.join('\n') + '\n')
  // Steady-state hit rate of the cache when the list is cycled in order.
  const slots = new Map()
  // token_hash() of src/api/nip98.c (64-bit multiply-xorshift over little-endian words).
  const M = 0xffffffffffffffffn
  const slotOf = (t) => {
    const b = Buffer.from(t.slice(6))
    let h = 0x9e3779b97f4a7c15n ^ BigInt(b.length)
    let i = 0
    for (; b.length - i >= 8; i += 8) {
      h = ((h ^ b.readBigUInt64LE(i)) * 0xff51afd7ed558ccdn) & M
      h ^= h >> 32n
    }
    const tail = Buffer.alloc(8)
    b.copy(tail, 0, i)
    h = ((h ^ tail.readBigUInt64LE(0)) * 0xc4ceb9fe1a85ec53n) & M
    h ^= h >> 29n
    return Number(h % 4096n)
  }
  let hits = 0
  for (let pass = 0; pass < 2; pass++) {
    for (const t of all) {
      const s = slotOf(t)
      if (pass === 1 && slots.get(s) === t) hits++
      slots.set(s, t)
    }
  }
  fs.writeFileSync(path.join(outDir, 'fresh-hit-rate.txt'), (hits / all.length).toFixed(3))
}
