// The image's build steps on a fresh `git clone` of the repository (what a CI checkout or
// `docker build` of a clean tree sees): only committed files, filtered by .dockerignore like
// Docker's build context, then the build stage's RUN lines that follow `COPY . .` run there
// with bash. Catches a build that depends on an untracked or ignored file. The built binary
// must answer --version exactly like the tree's own build and serve /healthz from another
// directory (migrations are embedded). The full image (packages, user, health check) is
// checked by `make image-check` (scripts/image-check.mjs: podman builds and runs the image).
//
// The same clone also shows that the repository stands alone: it sits in a temporary
// directory with no shared folder beside it, its unit tests are built (plain flags, on top of
// the objects built above) and run there, and when this process may make a private mount
// namespace (root) the directory that holds the original checkout is hidden from that run,
// so a test that reads anything beside the checkout fails instead of passing by accident.
// scripts/check-self-contained.sh must find no citation of anything outside the repository.
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

// What the clone tests share: the build context, built by the first test or by the second
// when it runs alone.
function unitEnv () {
  const env = { ...process.env, MAKEFLAGS: '' }
  for (const k of Object.keys(env)) if (k.startsWith('CARAVEL_')) delete env[k]
  return env
}

// What to hide from the clone's unit run: the top-level directory that holds the original
// checkout (and so any folder beside it, such as a sibling `shared`), else the checkout's
// parent; never a system directory or one that holds the temporary directory.
function dirToHide () {
  const real = fs.realpathSync(repoRoot)
  const system = ['/', '/usr', '/etc', '/lib', '/lib64', '/bin', '/sbin', '/var', '/proc',
    '/sys', '/dev', '/run', '/opt', '/root', '/tmp']
  const tmp = fs.realpathSync(os.tmpdir())
  const top = '/' + real.split('/')[1]
  for (const dir of [top, path.dirname(real)]) {
    if (!system.includes(dir) && tmp !== dir && !tmp.startsWith(dir + '/')) return dir
  }
  return null
}

function canUnshare () {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false
  return spawnSync('unshare', ['--mount', '--propagation', 'private', 'true']).status === 0
}

// Runs ./build/unit in ctx; with hide, inside a mount namespace where hide is an empty tmpfs
// (and the original checkout is checked to be gone).
function runUnit (ctx, hide) {
  const opts = { cwd: ctx, env: unitEnv(), encoding: 'utf8', maxBuffer: 1 << 26 }
  if (!hide) return spawnSync('./build/unit', [], opts)
  const script = 'mount -t tmpfs -o size=1m,mode=0755 caravel-hide "$1" || exit 90; ' +
    '[ ! -e "$2" ] || { echo "the original checkout is still visible"; exit 91; }; ' +
    'exec ./build/unit'
  return spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh',
    hide, fs.realpathSync(repoRoot)], opts)
}

test('the clone stands alone: its unit tests pass with nothing beside it, and nothing in it cites outside', {
  skip: isGit ? false : 'not a git checkout', timeout: 300000
}, (t) => {
  const clone = path.join(work, 'clone')
  const ctx = path.join(work, 'ctx')
  if (!fs.existsSync(clone)) run('git', ['clone', '-q', '--no-hardlinks', repoRoot, clone])
  if (!fs.existsSync(ctx)) fs.cpSync(clone, ctx, { recursive: true, filter: (f) => !f.endsWith('/.git') })
  assert.ok(!fs.existsSync(path.join(work, 'shared')), 'no shared folder beside the clone')

  const lint = spawnSync('bash', ['scripts/check-self-contained.sh'], { cwd: clone, encoding: 'utf8' })
  assert.equal(lint.status, 0, `the clone cites something outside the repository:\n${lint.stdout}${lint.stderr}`)

  run('make', ['-j2', 'WERROR=1', 'build/unit'], { cwd: ctx, env: unitEnv() })
  const hide = canUnshare() ? dirToHide() : null
  t.diagnostic(hide ? `unit tests run with ${hide} hidden` : 'unit tests run without hiding anything (needs root and unshare)')
  const r = runUnit(ctx, hide)
  const out = (r.stdout || '') + (r.stderr || '')
  // Each FAIL line with the assertion or signal lines the runner printed just before it.
  const lines = out.split('\n')
  const failures = lines.flatMap((l, i) => /^FAIL /.test(l)
    ? [...lines.slice(Math.max(0, i - 4), i).filter((x) => /^ {2}\S/.test(x)), l]
    : []).join('\n')
  assert.equal(r.status, 0, `unit tests in the clone exited ${r.status}:\n${failures || out.slice(-3000)}`)
  const m = out.match(/^(\d+) passed, (\d+) failed$/m)
  assert.ok(m, 'the unit runner printed its "N passed, N failed" line')
  assert.equal(Number(m[2]), 0)
  // Every TEST(...) of the clone ran: none was compiled out or left unregistered.
  const defined = fs.readdirSync(path.join(ctx, 'test/unit')).filter((f) => f.endsWith('.c'))
    .map((f) => fs.readFileSync(path.join(ctx, 'test/unit', f), 'utf8').match(/^TEST(_TIMEOUT)?\(/gm) || [])
    .reduce((n, a) => n + a.length, 0)
  assert.ok(defined > 0)
  assert.equal(Number(m[1]), defined, 'unit tests run in the clone = TEST definitions in test/unit')
})
