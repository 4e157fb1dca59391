// Cursor paging of the four lists (GET /relays, /tenants, /invoices, /activity): every answer
// carries `next` (the cursor of its last item, null on the last page); walking with
// ?after=<next> returns every item that existed when the walk began exactly once, in order,
// while new items are inserted between the pages (they are newer, so they sort before the
// cursor); offset still works and counts from the cursor; a cursor that no list could have
// answered is 400 invalid-body.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { newUser, call } from './lib/auth.mjs'

let srv
const admin = newUser()
const alice = newUser()
const bob = newUser()

before(async () => {
  srv = await startServer({ env: { ADMINS: admin.pk } })
  for (const u of [alice, bob]) assert.equal((await call(srv.url, u, 'POST', '/tenants', {})).status, 201)
})
after(async () => { if (srv) assert.equal(await srv.stop(), 0) })

async function get (user, path) {
  const r = await call(srv.url, user, 'GET', path)
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(Object.keys(r.body), ['data', 'next', 'code'])
  return r.body
}

// growth: the plan that allows the most relays per tenant (50), enough for every walk here.
let seq = 0
async function newRelay (user) {
  const r = await call(srv.url, user, 'POST', '/relays', { subdomain: `page-${seq++}`, plan: 'growth' })
  assert.equal(r.status, 201, r.text)
  return r.body.data.id
}

function sql (text) {
  srv.sql(text)
}

// Walks path (with its own query, or none) limit items at a time; between pages, insert()
// adds rows and returns their keys. Every item listed just before the walk must come exactly
// once and in the same order; an item inserted during the walk may come too (one created in
// the same second as the cursor's item sorts by id, on either side of it), but only once.
// Returns the keys seen and the number of pages.
async function walk (user, path, limit, key, insert = async () => []) {
  const sep = path.includes('?') ? '&' : '?'
  const before = (await get(user, `${path}${sep}limit=500`)).data.map((x) => x[key])
  const inserted = new Set()
  const seen = []
  let next = null
  let pages = 0
  do {
    const q = `${path}${sep}limit=${limit}` + (next === null ? '' : `&after=${encodeURIComponent(next)}`)
    const page = await get(user, q)
    assert.ok(page.data.length <= limit)
    seen.push(...page.data.map((x) => x[key]))
    next = page.next
    if (next !== null) {
      assert.equal(page.data.length, limit, 'a page with a next is full')
      assert.equal(typeof next, 'string')
    }
    pages++
    for (const k of await insert()) inserted.add(k)
  } while (next !== null && pages < 100)
  assert.equal(new Set(seen).size, seen.length, 'an item came twice')
  assert.deepEqual(seen.filter((k) => !inserted.has(k)), before)
  return { seen, before, pages }
}

test('GET /relays: the cursor walks every relay once across inserts, own and all', async () => {
  for (let i = 0; i < 13; i++) await newRelay(alice)
  for (let i = 0; i < 4; i++) await newRelay(bob)
  const a = await walk(alice, '/relays', 4, 'id', async () => [await newRelay(alice)])
  assert.equal(a.before.length, 13)
  assert.ok(a.pages >= 4) // 4 + 4 + 4 + 1, and perhaps a few inserted
  const b = await walk(admin, '/relays', 5, 'id', async () => [await newRelay(bob)])
  assert.ok(b.before.length >= 17 + 4)
  const c = await walk(admin, `/relays?tenant=${bob.pk}`, 2, 'id', async () => [await newRelay(bob)])
  assert.equal(c.before.length, 4 + b.pages)
  // A page that ends with the last relay has next null (no empty page after it); one less
  // and next is the cursor of its last relay.
  const total = (await get(alice, '/relays?limit=500')).data
  const exact = await get(alice, `/relays?limit=${total.length}`)
  assert.equal(exact.data.length, total.length)
  assert.equal(exact.next, null)
  const short = await get(alice, `/relays?limit=${total.length - 1}`)
  const rest = await get(alice, `/relays?after=${encodeURIComponent(short.next)}`)
  assert.deepEqual(rest.data.map((r) => r.id), [total.at(-1).id])
  assert.equal(rest.next, null)
})

test('offset and after together: offset counts from the cursor; next also on offset pages', async () => {
  const all = (await get(admin, '/relays?limit=500')).data.map((r) => r.id)
  const first = await get(admin, '/relays?limit=3&offset=2')
  assert.deepEqual(first.data.map((r) => r.id), all.slice(2, 5))
  assert.equal(typeof first.next, 'string')
  const rest = await get(admin, `/relays?limit=2&offset=1&after=${encodeURIComponent(first.next)}`)
  assert.deepEqual(rest.data.map((r) => r.id), all.slice(6, 8))
  const last = await get(admin, `/relays?limit=500&offset=${all.length - 1}`)
  assert.deepEqual(last.data.map((r) => r.id), all.slice(-1))
  assert.equal(last.next, null)
  assert.deepEqual(await get(admin, `/relays?offset=${all.length}`), { data: [], next: null, code: 'ok' })
})

test('GET /activity: id cursors, own and all, across inserts', async () => {
  // A new relay's activity row has a higher id: it sorts before every cursor, never in the walk.
  const none = async () => { await newRelay(alice); return [] }
  const a = await walk(alice, '/activity', 3, 'id', none)
  assert.ok(a.before.length > 10)
  const b = await walk(admin, '/activity', 7, 'id', none)
  assert.ok(b.before.length > a.before.length)
})

test('GET /tenants: the cursor walks every tenant once while tenants sign up', async () => {
  for (let i = 0; i < 5; i++) assert.equal((await call(srv.url, newUser(), 'POST', '/tenants', {})).status, 201)
  const w = await walk(admin, '/tenants', 2, 'pubkey', async () => {
    const u = newUser()
    assert.equal((await call(srv.url, u, 'POST', '/tenants', {})).status, 201)
    return [u.pk]
  })
  assert.equal(w.before.length, 7)
})

test('GET /invoices: the cursor walks every invoice once, ties in created_at included', async () => {
  const now = Math.floor(Date.now() / 1000)
  let n = 0
  // Rows as billing writes them; three share each created_at, so the id orders them.
  const insert = (tenant, count) => {
    const rows = []
    for (let i = 0; i < count; i++, n++) {
      rows.push(`INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at)
        VALUES ('${String(n).padStart(4, '0')}${'f'.repeat(28)}', '${tenant}', ${100 + n}, 'pending', ${n}, ${n + 1}, ${now + Math.floor(n / 3)});
        INSERT INTO invoice_item(invoice, relay, plan, hours, amount)
        VALUES ('${String(n).padStart(4, '0')}${'f'.repeat(28)}', 'r', 'basic', 1, ${100 + n});`)
    }
    sql(`BEGIN; ${rows.join('\n')} COMMIT;`)
  }
  insert(alice.pk, 11)
  insert(bob.pk, 4)
  const mine = (await get(alice, '/invoices?limit=500')).data
  assert.equal(mine.length, 11)
  assert.ok(mine.every((i) => i.items.length === 1 && i.items[0].amount === i.amount))
  // Inserted invoices are newer: they sort before every cursor.
  const a = await walk(alice, '/invoices', 4, 'id', async () => { insert(alice.pk, 2); return [] })
  assert.deepEqual(a.before, mine.map((i) => i.id))
  const b = await walk(admin, '/invoices', 6, 'id', async () => { insert(bob.pk, 1); return [] })
  assert.equal(b.before.length, 15 + 2 * a.pages)
})

test('a cursor no list answered is 400 invalid-body', async () => {
  const withId = ['', 'x', '17', '17.', '.abc', '17.a b', '17.a.b', '-1.abc', '1.' + 'a'.repeat(65),
    '9'.repeat(19) + '.abc', '17.abc%00']
  const idOnly = ['', 'x', '17.abc', '-1', '+1', '9'.repeat(19), '1 ']
  const cases = [
    ...withId.map((c) => [alice, '/relays', c]),
    ...withId.map((c) => [alice, '/invoices', c]),
    ...withId.map((c) => [admin, '/tenants', c]),
    ...idOnly.map((c) => [alice, '/activity', c])
  ]
  for (const [user, path, cursor] of cases) {
    const r = await call(srv.url, user, 'GET', `${path}?after=${encodeURIComponent(cursor)}`)
    assert.equal(r.status, 400, `${path} after=${JSON.stringify(cursor)}: ${r.text}`)
    assert.equal(r.body.code, 'invalid-body')
    assert.match(r.body.error, /after/)
  }
  // A well-formed cursor of a row that does not exist is a position, not an error.
  const far = await get(alice, '/relays?after=1.zzz')
  assert.deepEqual(far, { data: [], next: null, code: 'ok' })
  const top = await get(alice, `/activity?after=${'9'.repeat(18)}`)
  assert.ok(top.data.length > 0)
})
