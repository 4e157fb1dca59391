// NIP-98 tokens for the HTTP API benchmark (bench/run.sh), made with nostr-tools like a real
// client, so the server's verification is checked against an independent signer.
//   node bench/tokens.mjs key                      -> "<skhex> <pkhex>" (a new key)
//   node bench/tokens.mjs session SKHEX URL        -> one session-style token (u = URL, no method)
//   node bench/tokens.mjs fresh N URL OUT [MAXAGE] -> N distinct per-request GET tokens for URL,
//        one per line in OUT, signed by 100 different keys on every core (worker threads).
//        OUT is reused when it already holds >= N tokens for URL younger than MAXAGE seconds
//        (signing in JavaScript is slow: a few hundred tokens per second per core).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'

const here = path.dirname(fileURLToPath(import.meta.url))
const req = createRequire(path.join(here, '../test/package.json'))
const mod = await import(req.resolve('nostr-tools/pure'))
const { generateSecretKey, getPublicKey, finalizeEvent } = mod.generateSecretKey ? mod : mod.default

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))

function tokenOf (sk, tags, createdAt) {
  const ev = finalizeEvent({ kind: 27235, created_at: createdAt, tags, content: '' }, sk)
  return 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64')
}

function signRange ({ from, to, url, createdAt }) {
  const keys = Array.from({ length: 100 }, () => generateSecretKey())
  const out = []
  for (let i = from; i < to; i++) {
    // The nonce tag makes every token distinct even with one key and one second.
    out.push(tokenOf(keys[i % keys.length], [['u', url], ['method', 'GET'], ['nonce', String(i)]], createdAt))
  }
  return out
}

async function fresh (n, url, outFile, maxAge) {
  const meta = outFile + '.meta'
  const now = Math.floor(Date.now() / 1000)
  try {
    const m = JSON.parse(fs.readFileSync(meta, 'utf8'))
    if (m.url === url && m.n >= n && now - m.createdAt < maxAge) {
      console.error(`tokens: reusing ${m.n} tokens in ${outFile} (${now - m.createdAt} s old)`)
      return
    }
  } catch {}
  const workers = Math.max(1, os.cpus().length)
  const per = Math.ceil(n / workers)
  const t0 = Date.now()
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((resolve, reject) => {
    const job = { from: w * per, to: Math.min(n, (w + 1) * per), url, createdAt: now }
    const wk = new Worker(fileURLToPath(import.meta.url), { workerData: job })
    wk.once('message', resolve)
    wk.once('error', reject)
  })))
  fs.writeFileSync(outFile, parts.flat().join('\n') + '\n')
  fs.writeFileSync(meta, JSON.stringify({ url, n, createdAt: now }))
  console.error(`tokens: signed ${n} in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${workers} threads`)
}

if (!isMainThread) {
  parentPort.postMessage(signRange(workerData))
} else {
  const [mode, ...a] = process.argv.slice(2)
  if (mode === 'key') {
    const sk = generateSecretKey()
    console.log(hex(sk), getPublicKey(sk))
  } else if (mode === 'session') {
    console.log(tokenOf(unhex(a[0]), [['u', a[1]]], Math.floor(Date.now() / 1000)))
  } else if (mode === 'fresh') {
    await fresh(Number(a[0]), a[1], a[2], Number(a[3] || 3600))
  } else {
    console.error('usage: tokens.mjs key | session SKHEX URL | fresh N URL OUT [MAXAGE]')
    process.exit(2)
  }
}
