// docs/OPERATIONS.md's online backup: `sqlite3 caravel.db ".backup ..."` and `VACUUM INTO`
// while the service is writing. Every tenant acknowledged before a backup started must be in
// it, the copy passes integrity_check, and a second service started on the copy serves it.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { engine, startServer } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'

const run = promisify(execFile)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-backup-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

// SQLite's online backups (on PostgreSQL backups are pg_dump's business, docs/OPERATIONS.md).
const skip = engine === 'postgres' && 'SQLite only'

test('online backups taken during writes are consistent and usable', { skip }, async () => {
  const admin = newUser()
  const srv = await startServer({ env: { ADMINS: admin.pk } })
  const acked = []
  let writing = true
  const writer = (async () => {
    while (writing) {
      const u = newUser()
      const r = await call(srv.url, u, 'POST', '/tenants', {})
      assert.equal(r.status, 201)
      acked.push(u.pk)
    }
  })()
  try {
    while (acked.length < 20) await new Promise((resolve) => setTimeout(resolve, 20))
    const copies = []
    for (const [name, sql] of [['dot-backup', (f) => `.backup '${f}'`], ['vacuum-into', (f) => `VACUUM INTO '${f}'`]]) {
      const dir = path.join(tmp, name)
      fs.mkdirSync(dir)
      const file = path.join(dir, 'caravel.db')
      const before = acked.slice()
      await run('sqlite3', [srv.dbPath, sql(file)])
      copies.push({ dir, file, before })
    }
    writing = false
    await writer
    for (const c of copies) {
      assert.equal((await run('sqlite3', [c.file, 'PRAGMA integrity_check'])).stdout.trim(), 'ok')
      const rows = (await run('sqlite3', [c.file, 'SELECT pubkey FROM tenant'])).stdout.trim().split('\n')
      const have = new Set(rows)
      for (const pk of c.before) assert.ok(have.has(pk), `${path.basename(c.dir)}: acknowledged tenant missing`)
      // A service started on the copy (the restore path) serves the same data.
      const restored = await startServer({ dir: c.dir, env: { ADMINS: admin.pk } })
      try {
        const list = await call(restored.url, admin, 'GET', '/tenants?limit=500')
        assert.equal(list.status, 200)
        assert.equal(list.body.data.length, rows.length)
      } finally {
        assert.equal(await restored.stop(), 0)
      }
    }
  } finally {
    writing = false
    await writer.catch(() => {})
    assert.equal(await srv.stop(), 0)
  }
})
