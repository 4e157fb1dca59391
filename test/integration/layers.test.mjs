// Dependencies point down (docs/ARCHITECTURE.md, "Dependencies point down"): a file under
// src/<folder>/ includes headers only from folders on a lower line of the stack, or its own.
// A cheap read of the #include lines, no build. When a new folder or a new edge is right,
// change the stack here and in ARCHITECTURE.md together.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { repoRoot } from './lib/server.mjs'

// Lower lines first; folders on one line may not include each other.
const stack = [
  ['util'],
  ['nostr'],
  ['http', 'net', 'db'],
  ['core'],
  ['metrics'],
  ['sync', 'robot', 'blocklist'],
  ['members'],
  ['api'],
  ['billing']
]
const level = new Map(stack.flatMap((line, i) => line.map((f) => [f, i])))
const src = path.join(repoRoot, 'src')

// [{file, line, from, to}] for every #include "<folder>/..." in src/.
function includes () {
  const out = []
  for (const folder of fs.readdirSync(src)) {
    const dir = path.join(src, folder)
    if (!fs.statSync(dir).isDirectory()) continue
    for (const name of fs.readdirSync(dir).filter((f) => /\.[ch]$/.test(f))) {
      const text = fs.readFileSync(path.join(dir, name), 'utf8').split('\n')
      text.forEach((l, i) => {
        const m = l.match(/^\s*#\s*include\s+"([a-z_]+)\//)
        if (m) out.push({ file: `src/${folder}/${name}`, line: i + 1, from: folder, to: m[1] })
      })
    }
  }
  return out
}

test('every folder under src/ has a place in the stack', () => {
  const folders = fs.readdirSync(src).filter((f) => fs.statSync(path.join(src, f)).isDirectory())
  const missing = folders.filter((f) => !level.has(f))
  assert.deepEqual(missing, [], 'add the new folder to the stack here and in docs/ARCHITECTURE.md')
})

// The includes that do not point down (an unknown folder never does).
function violations (list) {
  return list.filter((e) => e.from !== e.to && !(level.get(e.to) < level.get(e.from)))
    .map((e) => `${e.file}:${e.line}: ${e.from}/ includes ${e.to}/`)
}

test('every #include between src/ folders points down the stack', () => {
  const all = includes()
  assert.ok(all.length > 100, `read ${all.length} includes`)
  assert.ok(all.some((e) => e.from === 'billing' && e.to === 'db'), 'a known include was read')
  assert.deepEqual(violations(all), [], 'includes that point up or sideways')
})

test('the check refuses upward, sideways and unknown includes', () => {
  const e = (from, to) => ({ file: `src/${from}/x.c`, line: 1, from, to })
  assert.deepEqual(violations([e('db', 'robot')]), ['src/db/x.c:1: db/ includes robot/'])
  assert.equal(violations([e('sync', 'robot')]).length, 1)
  assert.equal(violations([e('http', 'net')]).length, 1)
  assert.equal(violations([e('api', 'nosuch')]).length, 1)
  assert.deepEqual(violations([e('billing', 'util'), e('api', 'api'), e('core', 'db')]), [])
})
