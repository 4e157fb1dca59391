// Several caravel instances on one PostgreSQL database, the work they share: two instances
// started together on an empty database without ROBOT_SECRET agree on one generated robot key.
// The file chooses its engine itself (PostgreSQL: it is about several instances).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { psql, testDatabase } from './lib/postgres.mjs'

const servers = new Set()
after(async () => {
  for (const s of servers) await s.kill9()
})

async function startPair (env) {
  const started = await Promise.allSettled([startServer({ env }), startServer({ env })])
  for (const r of started) if (r.status === 'fulfilled') servers.add(r.value) // after() stops them
  for (const r of started) if (r.status === 'rejected') throw r.reason
  return started.map((r) => r.value)
}

async function stop (s) {
  servers.delete(s)
  assert.equal(await s.stop(), 0, s.logs())
}

const npubOf = (s) => s.logs().match(/\(robot (npub1[0-9a-z]+)\)/)?.[1]

test('two instances started together on an empty database generate and keep one robot key', async () => {
  // Each round is a new empty database: both instances find no key, generate one and store it
  // in the same moment; the first INSERT wins and both read that one back.
  for (let round = 0; round < 3; round++) {
    const [a, b] = await startPair({ DATABASE_URL: await testDatabase() })
    assert.ok(npubOf(a), a.logs())
    assert.equal(npubOf(b), npubOf(a), `${a.logs()}\n----\n${b.logs()}`)
    const generated = [a, b].filter((s) => /robot key just generated/.test(s.logs())).length
    assert.equal(generated, 1, 'one instance stored its key, the other read it')
    assert.equal(psql(a.dbUrl, "SELECT count(*) FROM setting WHERE key = 'robot_secret'"), '1')
    await stop(a)
    await stop(b)
  }
})
