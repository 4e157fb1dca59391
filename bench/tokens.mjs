// NIP-98 tokens for the HTTP API benchmark (bench/run.sh). Keys and session tokens are made
// with nostr-tools like a real client; the many per-request tokens of `fresh` are signed by the
// project's C signer (build/tools/nip98_tokens, every core: seconds for 300,000 where
// nostr-tools took ~17 minutes), which nip98-tokens.test.mjs cross-checks with nostr-tools.
//   node bench/tokens.mjs key                      -> "<skhex> <pkhex>" (a new key)
//   node bench/tokens.mjs session SKHEX URL        -> one session-style token (u = URL, no method)
//   node bench/tokens.mjs fresh N URL OUT [MAXAGE] -> N distinct per-request GET tokens for URL,
//        one per line in OUT, signed by 100 different keys. OUT is reused when it already holds
//        >= N tokens for URL younger than MAXAGE seconds.
// BENCH_BUILD_DIR (default build) is where the tool is.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const req = createRequire(path.join(here, '../test/package.json'))
const mod = await import(req.resolve('nostr-tools/pure'))
const { generateSecretKey, getPublicKey, finalizeEvent } = mod.generateSecretKey ? mod : mod.default
const TOOL = path.resolve(here, '..', process.env.BENCH_BUILD_DIR || 'build', 'tools/nip98_tokens')

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))

function tokenOf (sk, tags, createdAt) {
  const ev = finalizeEvent({ kind: 27235, created_at: createdAt, tags, content: '' }, sk)
  return 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64')
}

function fresh (n, url, outFile, maxAge) {
  const meta = outFile + '.meta'
  const now = Math.floor(Date.now() / 1000)
  try {
    const m = JSON.parse(fs.readFileSync(meta, 'utf8'))
    if (m.url === url && m.n >= n && now - m.createdAt < maxAge) {
      console.error(`tokens: reusing ${m.n} tokens in ${outFile} (${now - m.createdAt} s old)`)
      return
    }
  } catch {}
  const t0 = Date.now()
  const r = spawnSync(TOOL, [String(n), url, outFile, String(now)], { stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) throw new Error(`${TOOL} failed (${r.error || 'exit ' + r.status}); make all builds it`)
  fs.writeFileSync(meta, JSON.stringify({ url, n, createdAt: now }))
  console.error(`tokens: signed ${n} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${path.relative(process.cwd(), TOOL)})`)
}

const [mode, ...a] = process.argv.slice(2)
if (mode === 'key') {
  const sk = generateSecretKey()
  console.log(hex(sk), getPublicKey(sk))
} else if (mode === 'session') {
  console.log(tokenOf(unhex(a[0]), [['u', a[1]]], Math.floor(Date.now() / 1000)))
} else if (mode === 'fresh') {
  fresh(Number(a[0]), a[1], a[2], Number(a[3] || 3600))
} else {
  console.error('usage: tokens.mjs key | session SKHEX URL | fresh N URL OUT [MAXAGE]')
  process.exit(2)
}
