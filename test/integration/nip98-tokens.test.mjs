// The benchmark's token generator (build/tools/nip98_tokens, the project's C signer on every
// core) checked by an independent implementation: every token of a sample passes nostr-tools'
// verifyEvent and nip98.validateToken for its URL and method, tokens are distinct, signed by
// 100 keys in turn, and the service itself accepts them (what the benchmark measures is
// verification, not 401s).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { verifyEvent } from 'nostr-tools/pure'
import * as nip98 from 'nostr-tools/nip98'
import { removeDir, tempDir } from './lib/lifecycle.mjs'
import { startServer } from './lib/server.mjs'
import { toolPath } from './lib/tool.mjs'

const dir = tempDir('caravel-tokens-')
after(() => removeDir(dir))
const PUBLIC_URL = 'https://api.caravel.bench'
const URL_ = `${PUBLIC_URL}/identity`

function generate (n, createdAt) {
  const out = path.join(dir, `tokens-${n}.txt`)
  const r = spawnSync(toolPath('nip98_tokens'), [String(n), URL_, out, String(createdAt)], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  return fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)
}

const decode = (t) => JSON.parse(Buffer.from(t.slice('Nostr '.length), 'base64').toString())

test('a sample of 300 tokens: valid for nostr-tools, distinct, 100 keys, the given created_at', async () => {
  const now = Math.floor(Date.now() / 1000)
  const tokens = generate(300, now)
  assert.equal(tokens.length, 300)
  const events = tokens.map(decode)
  for (const [i, ev] of events.entries()) {
    assert.ok(verifyEvent(ev), `token ${i} verifies`)
    assert.equal(ev.kind, 27235)
    assert.equal(ev.created_at, now)
    assert.equal(ev.content, '')
    assert.deepEqual(ev.tags, [['u', URL_], ['method', 'GET'], ['nonce', String(i)]])
    assert.equal(await nip98.validateToken(tokens[i], URL_, 'GET'), true)
  }
  assert.equal(new Set(events.map((e) => e.id)).size, 300)
  const keys = events.map((e) => e.pubkey)
  assert.equal(new Set(keys).size, 100)
  assert.equal(keys[0], keys[100], 'keys are used in turn')
  assert.notEqual(keys[0], keys[1])
})

test('zero tokens is an empty file; bad arguments are refused', () => {
  assert.deepEqual(generate(0, 1), [])
  const bad = spawnSync(toolPath('nip98_tokens'), ['-1', URL_, path.join(dir, 'x')], { encoding: 'utf8' })
  assert.equal(bad.status, 2)
  assert.ok(!fs.existsSync(path.join(dir, 'x')))
})

test('the service accepts them as the benchmark sends them', async () => {
  const srv = await startServer({ env: { PUBLIC_URL } })
  try {
    const tokens = generate(20, Math.floor(Date.now() / 1000))
    for (const t of tokens) {
      const r = await fetch(`${srv.url}/identity`, { headers: { Authorization: t } })
      assert.equal(r.status, 200, await r.text())
    }
    // ...and really checks them: the same token with another nonce no longer verifies.
    const ev = decode(tokens[0])
    ev.tags[2][1] = 'other'
    const forged = 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64')
    const r = await fetch(`${srv.url}/identity`, { headers: { Authorization: forged } })
    assert.equal(r.status, 401)
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})
