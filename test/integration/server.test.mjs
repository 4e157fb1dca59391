// The process as an operator sees it: start-up with no configuration, --help/--version,
// configuration errors naming the variable (never echoing a secret), SIGTERM, restart.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startServer, runOnce, binPath } from './lib/server.mjs'

test('starts with no variables at all, serves /healthz, disables workers with one line each', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-bare-'))
  const srv = await startServer({ dir, env: { DATABASE_URL: '' } }) // the default: data/ under cwd
  try {
    assert.ok(fs.existsSync(path.join(dir, 'data', 'caravel.db')))
    const r = await fetch(`${srv.url}/healthz`)
    assert.equal(r.status, 200)
    assert.deepEqual(await r.json(), { data: { status: 'ok' }, code: 'ok' })
    const logs = srv.logs()
    for (const v of ['ZOOID_API_URL', 'NWC_URL', 'ROBOT_OUTBOX_RELAYS']) {
      assert.equal(logs.split('\n').filter((l) => l.includes(v)).length, 1, `one line naming ${v}`)
    }
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})

test('--help lists every variable; --version prints the version', async () => {
  const help = await runOnce(['--help'])
  assert.equal(help.code, 0)
  for (const v of ['DATABASE_URL', 'HOST', 'PORT', 'PUBLIC_URL', 'ADMINS', 'ALLOW_ORIGINS',
    'ZOOID_API_URL', 'ZOOID_API_SECRET', 'RELAY_DOMAIN', 'LIVEKIT_URL', 'NWC_URL', 'ROBOT_SECRET',
    'ROBOT_NAME', 'ROBOT_OUTBOX_RELAYS', 'ROBOT_INDEXER_RELAYS', 'ROBOT_MESSAGING_RELAYS',
    'AUTH_MAX_AGE', 'BILLING_INTERVAL', 'BILLING_PERIOD', 'BILLING_GRACE', 'METRICS_PORT', 'LOG_LEVEL']) {
    assert.match(help.out, new RegExp(`\\b${v}\\b`), v)
  }
  const version = await runOnce(['--version'])
  assert.equal(version.code, 0)
  assert.match(version.out, /^caravel \d+\.\d+\.\d+/)
  const bad = await runOnce(['--bogus'])
  assert.equal(bad.code, 2)
})

const secret = 'f'.repeat(63) + 'x' // malformed, must never be echoed
const badConfigs = [
  [{ PORT: '70000' }, 'PORT'],
  [{ PORT: 'abc' }, 'PORT'],
  [{ ADMINS: 'npub1notakey' }, 'ADMINS'],
  [{ PUBLIC_URL: 'ftp://x' }, 'PUBLIC_URL'],
  [{ ZOOID_API_URL: 'http://127.0.0.1:1' }, 'ZOOID_API_SECRET'],
  [{ ZOOID_API_URL: 'http://127.0.0.1:1', ZOOID_API_SECRET: secret }, 'ZOOID_API_SECRET'],
  [{ ROBOT_SECRET: secret }, 'ROBOT_SECRET'],
  [{ NWC_URL: `nostr+walletconnect://abc?relay=wss://r&secret=${secret}` }, 'NWC_URL'],
  [{ ROBOT_OUTBOX_RELAYS: 'https://not-a-relay' }, 'ROBOT_OUTBOX_RELAYS'],
  [{ AUTH_MAX_AGE: '-5' }, 'AUTH_MAX_AGE'],
  [{ BILLING_INTERVAL: '0' }, 'BILLING_INTERVAL'],
  [{ BILLING_GRACE: '1e9' }, 'BILLING_GRACE'],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  [{ DATABASE_URL: 'postgres://db/x' }, 'DATABASE_URL']
]

for (const [env, name] of badConfigs) {
  test(`bad ${Object.keys(env).join('+')} stops start-up naming ${name}`, async () => {
    const r = await runOnce([], env)
    assert.equal(r.code, 2, r.err)
    assert.match(r.err, new RegExp(`${name}:`))
    assert.ok(!r.err.includes(secret), 'the secret value is never echoed')
  })
}

test('the generated robot key survives a restart; SIGTERM exits 0', async () => {
  const srv = await startServer()
  assert.match(srv.logs(), /robot key just generated/)
  assert.equal(await srv.stop(), 0)
  assert.match(srv.logs(), /stopped/)
  const again = await srv.restart()
  try {
    assert.match(again.logs(), /robot key stored in the database/)
    assert.doesNotMatch(again.logs(), /[0-9a-f]{64}/, 'no key material in the log')
  } finally {
    assert.equal(await again.stop(), 0)
  }
})

test('the binary under test exists', () => {
  assert.ok(fs.existsSync(binPath()))
})
