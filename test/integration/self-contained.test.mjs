// The repository stands alone (docs/PRODUCT.md §1): scripts/check-self-contained.sh finds no
// file that reads or cites something outside it, and the check itself catches each kind of
// citation it exists for (so a broken pattern cannot pass silently), and every "PRODUCT.md §N"
// citation names a section that exists. Cheap reads, no build.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { repoRoot } from './lib/server.mjs'

const script = path.join(repoRoot, 'scripts/check-self-contained.sh')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-selfcheck-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

function check (dir) {
  return spawnSync('bash', [script, dir], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
}

test('no file of the repository reads or cites anything outside it', () => {
  const r = check(repoRoot)
  assert.equal(r.status, 0, `outside references found:\n${r.stdout}${r.stderr}`)
})

// Each line is assembled from pieces so that this file does not match the check itself.
const offending = [
  ['a sibling folder', `read("..` + `/shared/vectors/x.json")`],
  ['an absolute path to it', `see /work` + `/shared/SPEC.md`],
  ['a specification section', `/* as spec` + ` §5 says */`],
  ['an issue number', `// fixes Issue` + ` 11`],
  ['an issue number with #', `(issue` + ` #3)`],
  ['a note outside the repository', `from notes` + `/zooid-api.md`]
]

for (const [what, line] of offending) {
  test(`the check catches ${what}`, () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'case-'))
    fs.mkdirSync(path.join(dir, 'src'))
    fs.writeFileSync(path.join(dir, 'src/a.c'), `int a;\n${line}\n`)
    const r = check(dir)
    assert.equal(r.status, 1, `not caught: ${line}`)
    assert.match(r.stdout, /src\/a\.c:2:/)
  })
}

test('the check passes what the repository does cite', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'ok-'))
  fs.writeFileSync(path.join(dir, 'a.md'),
    '/* PRODUCT.md §3.2 */\nRFC 4648 §10 vectors\ntest/vectors/README.md\n../docs/API.md\n')
  const r = check(dir)
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

// "PRODUCT.md §N" citations in the repository name sections that exist in docs/PRODUCT.md
// ("§3.2/3.3", "§7, 8" and "§2, §9" cite several).
test('every PRODUCT.md §N cited in the repository is a section of docs/PRODUCT.md', () => {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs/PRODUCT.md'), 'utf8')
  const sections = new Set([...doc.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map((m) => m[1]))
  assert.ok(sections.has('3.2') && sections.has('9'), `sections read: ${[...sections]}`)
  const files = spawnSync('git', ['-C', repoRoot, 'ls-files', 'src', 'test', 'bench', 'scripts', 'docs'],
    { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
  assert.ok(files.length > 100)
  const cited = []
  for (const f of files) {
    const p = path.join(repoRoot, f)
    if (!fs.existsSync(p)) continue
    const text = fs.readFileSync(p, 'utf8')
    for (const m of text.matchAll(/PRODUCT\.md §(\d+(?:\.\d+)?(?:(?:, ?|\/)§?\d+(?:\.\d+)?)*)/g)) {
      for (const n of m[1].split(/, ?|\//)) cited.push([f, n.replace('§', '')])
    }
  }
  assert.ok(cited.length > 30, `found ${cited.length} citations`)
  const missing = cited.filter(([, n]) => !sections.has(n)).map(([f, n]) => `${f}: §${n}`)
  assert.deepEqual(missing, [])
})
