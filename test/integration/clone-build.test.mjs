// The image's build steps on a fresh `git clone` of the repository (what a CI checkout or
// `docker build` of a clean tree sees): only committed files, filtered by .dockerignore like
// Docker's build context, then the build stage's RUN lines that follow `COPY . .` run there
// with bash. Catches a build that depends on an untracked or ignored file. The built binary
// must answer --version exactly like the tree's own build and serve /healthz from another
// directory (migrations are embedded). The full image (packages, user, health check) is
// checked by `make image-check` (scripts/image-check.mjs, root + debootstrap).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { repoRoot, binPath, startServer } from './lib/server.mjs'
import { parseDockerfile } from '../../scripts/dockerfile.mjs'

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-clone-'))
after(() => fs.rmSync(work, { recursive: true, force: true }))

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts })
  if (r.status !== 0) {
    const out = ((r.stdout || '') + (r.stderr || '')).split('\n').slice(-30).join('\n')
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${out}`)
  }
  return r.stdout
}

// The build stage's RUN commands after the context is copied in (the earlier ones install
// packages and clean apt lists: not for the host).
function buildRunsAfterCopy () {
  const stages = parseDockerfile(fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'))
  const build = stages.find((s) => s.alias === 'build')
  const copyAt = build.instructions.findIndex((i) => i.op === 'COPY' && /^\.\s+\S+$/.test(i.args))
  assert.ok(copyAt >= 0, 'the build stage copies the context with COPY . <dir>')
  return build.instructions.slice(copyAt + 1).filter((i) => i.op === 'RUN').map((i) => i.args)
}

const isGit = spawnSync('git', ['-C', repoRoot, 'rev-parse', '--git-dir']).status === 0

test('a fresh clone, as the build context, builds with the Dockerfile\'s steps', {
  skip: isGit ? false : 'not a git checkout', timeout: 240000
}, async () => {
  const clone = path.join(work, 'clone')
  const ctx = path.join(work, 'ctx')
  run('git', ['clone', '-q', '--no-hardlinks', repoRoot, clone])
  fs.mkdirSync(ctx)
  run('sh', ['-c', `tar -C "${clone}" --exclude=.git --exclude-from="${clone}/.dockerignore" -cf - . | tar -C "${ctx}" -xf -`])
  assert.ok(!fs.existsSync(path.join(ctx, 'build')), 'a clean context has no build directory')
  const runs = buildRunsAfterCopy()
  assert.ok(runs.some((r) => /\bmake\b/.test(r)), 'the build stage runs make')
  for (const r of runs) run('bash', ['-c', r], { cwd: ctx, env: { ...process.env, MAKEFLAGS: '' } })

  const bin = path.join(ctx, 'build/caravel')
  const version = run(bin, ['--version']).trim()
  assert.match(version, /^caravel \d+\.\d+\.\d+/)
  assert.equal(version, run(binPath(), ['--version']).trim())

  // Started from an empty directory (no migrations/ beside it), as the image does.
  const prev = process.env.CARAVEL_BIN
  process.env.CARAVEL_BIN = bin
  let srv = null
  try {
    srv = await startServer()
    const res = await fetch(`${srv.url}/healthz`)
    assert.equal(res.status, 200)
  } finally {
    if (prev === undefined) delete process.env.CARAVEL_BIN; else process.env.CARAVEL_BIN = prev
    if (srv) await srv.stop()
  }
})
