// The process as an operator sees it: start-up with no configuration, --help/--version,
// configuration errors naming the variable (never echoing a secret), SIGTERM, restart.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import * as nip19 from 'nostr-tools/nip19'
import { startServer, runOnce, binPath } from './lib/server.mjs'

const dirs = []
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

// The robot's npub from its start-up line (the log never carries the key itself).
const robotNpub = (logs) => (logs.match(/robot key [^\n]*\(robot (npub1[a-z0-9]+)\)/) || [])[1]

test('starts with no variables at all, serves /healthz, disables workers with one line each', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-bare-'))
  dirs.push(dir)
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
    'AUTH_MAX_AGE', 'BILLING_INTERVAL', 'BILLING_PERIOD', 'BILLING_GRACE', 'BILLING_WALLET_REQUESTS',
    'BILLING_CONCURRENCY', 'METRICS_PORT', 'LOG_LEVEL',
    'HTTP_REQUEST_TIMEOUT', 'HTTP_REQUEST_BUFFER', 'HTTP_RESPONSE_BUFFER', 'HTTP_MAX_CONNECTIONS', 'HTTP_MAX_CONNECTIONS_PER_IP']) {
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
  [{ ZOOID_API_URL: 'https://proxy.example/zooid', ZOOID_API_SECRET: 'ab'.repeat(32) }, 'ZOOID_API_URL'],
  [{ ROBOT_SECRET: secret }, 'ROBOT_SECRET'],
  [{ NWC_URL: `nostr+walletconnect://abc?relay=wss://r&secret=${secret}` }, 'NWC_URL'],
  [{ ROBOT_OUTBOX_RELAYS: 'https://not-a-relay' }, 'ROBOT_OUTBOX_RELAYS'],
  [{ AUTH_MAX_AGE: '-5' }, 'AUTH_MAX_AGE'],
  [{ BILLING_INTERVAL: '0' }, 'BILLING_INTERVAL'],
  [{ BILLING_GRACE: '1e9' }, 'BILLING_GRACE'],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  [{ DATABASE_URL: 'mysql://db/x' }, 'DATABASE_URL']
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
    const npub = robotNpub(srv.logs())
    assert.ok(npub, 'the first start names the robot npub')
    assert.equal(robotNpub(again.logs()), npub, 'same robot identity after a restart')
    assert.equal(await again.kill9(), null)
    const third = await again.restart() // after kill -9 too
    try {
      assert.equal(robotNpub(third.logs()), npub)
    } finally {
      assert.equal(await third.stop(), 0)
    }
  } finally {
    if (again.proc.exitCode === null && again.proc.signalCode === null) await again.stop()
  }
})

test('ROBOT_SECRET (nsec) is the robot identity, checked with nostr-tools', async () => {
  const sk = generateSecretKey()
  const nsec = nip19.nsecEncode(sk)
  const srv = await startServer({ env: { ROBOT_SECRET: nsec } })
  try {
    const logs = srv.logs()
    assert.ok(logs.includes(nip19.npubEncode(getPublicKey(sk))), 'npub derived by nostr-tools')
    assert.doesNotMatch(logs, /ROBOT_SECRET is not set/)
    assert.ok(!logs.includes(nsec) && !logs.includes(Buffer.from(sk).toString('hex')))
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})

test('SIGINT exits 0; an idle keep-alive connection does not hold the shutdown', async () => {
  const srv = await startServer()
  const sock = net.connect(srv.port, '127.0.0.1')
  await new Promise((resolve) => sock.once('connect', resolve))
  const closed = new Promise((resolve) => sock.once('close', resolve))
  sock.on('error', () => {})
  sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  const first = await new Promise((resolve) => sock.once('data', (d) => resolve(d.toString())))
  assert.match(first, /^HTTP\/1\.1 200 /)
  const half = net.connect(srv.port, '127.0.0.1') // a request head that never completes
  half.on('error', () => {})
  await new Promise((resolve) => half.once('connect', resolve))
  half.write('GET /healthz HTTP/1.1\r\nHo')
  srv.proc.kill('SIGINT')
  const code = await new Promise((resolve) => srv.proc.once('exit', resolve))
  assert.equal(code, 0)
  await closed
  half.destroy()
  assert.match(srv.logs(), /shutting down/)
  assert.match(srv.logs(), /stopped/)
})

test('the listening line is printed even with LOG_LEVEL=error, and PORT=0 names the real port', async () => {
  const srv = await startServer({ env: { LOG_LEVEL: 'error' } })
  try {
    assert.ok(srv.port > 0)
    assert.doesNotMatch(srv.logs(), / WARN /)
    const r = await fetch(`${srv.url}/healthz`)
    assert.equal(r.status, 200)
  } finally {
    assert.equal(await srv.stop(), 0)
  }
})

test('a port already in use stops start-up with exit 1 naming HOST/PORT', async () => {
  const blocker = net.createServer()
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  try {
    const r = await runOnce([], { PORT: String(blocker.address().port) })
    assert.equal(r.code, 1)
    assert.match(r.err, /HOST\/PORT: cannot listen/)
  } finally {
    blocker.close()
  }
})

test('the binary under test exists', () => {
  assert.ok(fs.existsSync(binPath()))
})
