// The tests' throwaway PostgreSQL (lib/postgres.mjs): it runs as the unprivileged user when the
// tests run as root, listens on 127.0.0.1 only, gives each caller a database of its own, and
// leaves no process and no folder behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { PG_OS_USER, psql, startCluster, testDatabase } from './lib/postgres.mjs'

function owner (pid) {
  const uid = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)[1]
  return Number(uid)
}

test('a cluster starts, separates databases, and stop leaves nothing behind', async () => {
  const c = await startCluster()
  let stopped = false
  try {
    assert.match(c.url, /^postgres:\/\/caravel@127\.0\.0\.1:\d+\/postgres$/)
    if (process.getuid() === 0) {
      assert.notEqual(owner(c.pid), 0, `postgres runs as ${PG_OS_USER}, not root`)
    }
    assert.equal(psql(c.url, 'show fsync'), 'off')
    assert.equal(psql(c.url, 'show listen_addresses'), '127.0.0.1')
    const a = c.createDatabase()
    const b = c.createDatabase()
    assert.notEqual(a, b)
    psql(a, "create table t (x int, y text); insert into t values (1, 'one'), (2, 'two')")
    assert.equal(psql(a, 'select x, y from t order by x'), '1|one\n2|two', 'rows as sqlite3 prints them')
    assert.equal(psql(b, "select count(*) from pg_tables where tablename = 't'"), '0', 'b does not see a')
    await c.stop()
    stopped = true
    assert.throws(() => process.kill(c.pid, 0), /ESRCH/, 'the postmaster is gone')
    assert.equal(fs.existsSync(c.dir), false, 'its folder is removed')
  } finally {
    if (!stopped) await c.stop()
  }
})

test('testDatabase gives every caller a new empty database', async () => {
  const a = await testDatabase()
  const b = await testDatabase()
  assert.notEqual(a, b)
  if (process.env.CARAVEL_TEST_PG_URL) {
    assert.equal(new URL(a).host, new URL(process.env.CARAVEL_TEST_PG_URL).host, 'in the run\'s cluster')
  }
  psql(a, 'create table t (x int)')
  assert.equal(psql(b, "select count(*) from pg_tables where schemaname = 'public'"), '0')
})
