// The repository stands alone (docs/PRODUCT.md §1): scripts/check-self-contained.sh finds no
// file that reads or cites something outside it, and the check itself catches each kind of
// citation it exists for (so a broken pattern cannot pass silently). A cheap grep, no build.
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
