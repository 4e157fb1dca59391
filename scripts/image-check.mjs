// Checks the container image without a Docker engine (none runs on our machines):
//   1. lints Dockerfile and .dockerignore (scripts/dockerfile.mjs),
//   2. executes the Dockerfile's stages in clean Debian 12 roots made with debootstrap
//      (cached under $CARAVEL_DEBOOTSTRAP_CACHE, default /var/cache/caravel-debootstrap;
//      each stage gets an overlay on top of the cached root): WORKDIR, ENV, COPY (the build
//      context filtered by .dockerignore, or --from an earlier stage) and RUN through chroot,
//   3. starts the runtime stage's ENTRYPOINT as its USER on 127.0.0.1, runs the HEALTHCHECK
//      command inside the root, checks the database lands in the volume, stops it with the
//      STOPSIGNAL and expects exit 0.
// Needs root, debootstrap, mount (overlay; falls back to a copy). Prints one line per check
// and "N passed, N failed" last.  Usage: node scripts/image-check.mjs [--lint-only]
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { lintDockerfile, parseDockerfile, parseEnv } from './dockerfile.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const cache = process.env.CARAVEL_DEBOOTSTRAP_CACHE || '/var/cache/caravel-debootstrap'
const mirror = process.env.CARAVEL_DEBIAN_MIRROR || 'http://deb.debian.org/debian'
const PATH_DEFAULT = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-image-'))
const logFile = path.join(work, 'image-check.log')
const cleanups = []
let passed = 0
let failed = 0

function log (s) { fs.appendFileSync(logFile, s.endsWith('\n') ? s : s + '\n') }

function check (name, ok, detail = '') {
  if (ok) passed++; else failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail && !ok ? ': ' + detail : ''}`)
  return ok
}

// Runs a command, its output into the log; throws with the log's tail on failure.
function sh (cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts })
  log((r.stdout || '') + (r.stderr || ''))
  if (r.status !== 0) {
    const tail = ((r.stdout || '') + (r.stderr || '')).split('\n').slice(-25).join('\n')
    throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} exited ${r.status}\n${tail}`)
  }
  return r.stdout
}

// ---- the cached Debian 12 root ----

function baseRoot () {
  const root = path.join(cache, 'bookworm-minbase')
  if (fs.existsSync(path.join(root, '.caravel-complete'))) return root
  fs.mkdirSync(cache, { recursive: true })
  const tmp = root + '.tmp'
  fs.rmSync(tmp, { recursive: true, force: true })
  const t0 = Date.now()
  sh('debootstrap', ['--variant=minbase', 'bookworm', tmp, mirror])
  // As the debian:12 image: the release, its updates and security.
  fs.rmSync(path.join(tmp, 'etc/apt/sources.list'), { force: true })
  fs.writeFileSync(path.join(tmp, 'etc/apt/sources.list.d/debian.sources'),
    `Types: deb\nURIs: ${mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n` +
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' +
    `Types: deb\nURIs: ${mirror.replace(/\/debian\/?$/, '/debian-security')}\nSuites: bookworm-security\n` +
    'Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n')
  fs.writeFileSync(path.join(tmp, '.caravel-complete'), new Date().toISOString() + '\n')
  fs.renameSync(tmp, root)
  console.log(`     (debootstrap: ${Math.round((Date.now() - t0) / 1000)} s, cached in ${root})`)
  return root
}

// A writable root for one stage: an overlay on the cached root (or a copy).
function stageRoot (base, name) {
  const d = path.join(work, name)
  const root = path.join(d, 'root')
  for (const s of ['upper', 'work', 'root']) fs.mkdirSync(path.join(d, s), { recursive: true })
  const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o',
    `lowerdir=${base},upperdir=${d}/upper,workdir=${d}/work`, root])
  if (r.status === 0) cleanups.push(() => spawnSync('umount', ['-l', root]))
  else sh('cp', ['-a', base + '/.', root])
  fs.copyFileSync('/etc/resolv.conf', path.join(root, 'etc/resolv.conf'))
  sh('mount', ['-t', 'proc', 'proc', path.join(root, 'proc')])
  cleanups.push(() => spawnSync('umount', ['-l', path.join(root, 'proc')]))
  // Like a BuildKit cache mount: downloaded .debs survive between runs.
  const debs = path.join(cache, 'apt-archives')
  fs.mkdirSync(path.join(debs, 'partial'), { recursive: true })
  sh('mount', ['--bind', debs, path.join(root, 'var/cache/apt/archives')])
  cleanups.push(() => spawnSync('umount', ['-l', path.join(root, 'var/cache/apt/archives')]))
  return root
}

// ---- executing a stage ----

function envArgs (env) {
  return Object.entries({ PATH: PATH_DEFAULT, HOME: '/root', ...env }).map(([k, v]) => `${k}=${v}`)
}

function copyInto (stage, ins, stages) {
  const parts = ins.args.split(' ').filter((p) => !p.startsWith('--chown') && !p.startsWith('--chmod'))
  const from = parts[0].startsWith('--from=') ? parts.shift().slice(7) : null
  const dest = parts.pop()
  const destAbs = path.posix.resolve(stage.cwd, dest)
  for (const src of parts) {
    if (from) {
      const other = stages.find((s) => s.alias === from)
      fs.mkdirSync(path.dirname(path.join(stage.root, destAbs)), { recursive: true })
      sh('cp', ['-a', path.join(other.root, src), path.join(stage.root, destAbs)])
    } else if (src === '.') {
      fs.mkdirSync(path.join(stage.root, destAbs), { recursive: true })
      const ex = path.join(repo, '.dockerignore')
      sh('sh', ['-c', `tar -C "${repo}" --exclude-from="${ex}" -cf - . | tar -C "${path.join(stage.root, destAbs)}" -xf -`])
    } else {
      const target = dest.endsWith('/') ? path.join(destAbs, path.basename(src)) : destAbs
      fs.mkdirSync(path.dirname(path.join(stage.root, target)), { recursive: true })
      sh('cp', ['-a', path.join(repo, src), path.join(stage.root, target)])
    }
  }
}

function runStage (stage, stages) {
  stage.env = {}
  stage.cwd = '/'
  for (const ins of stage.instructions) {
    if (ins.op === 'ENV') Object.assign(stage.env, parseEnv(ins.args))
    else if (ins.op === 'WORKDIR') {
      stage.cwd = path.posix.resolve(stage.cwd, ins.args)
      fs.mkdirSync(path.join(stage.root, stage.cwd), { recursive: true })
    } else if (ins.op === 'COPY') copyInto(stage, ins, stages)
    else if (ins.op === 'RUN') {
      const t0 = Date.now()
      sh('chroot', [stage.root, '/usr/bin/env', '-i', ...envArgs(stage.env), '/bin/sh', '-c',
        `cd "${stage.cwd}" && ${ins.args}`])
      console.log(`     ${stage.alias}: RUN (line ${ins.line}) ${Math.round((Date.now() - t0) / 1000)} s`)
    } else if (ins.op === 'USER') stage.user = ins.args
    else if (ins.op === 'HEALTHCHECK') stage.healthcheck = ins.args.replace(/^.*?\bCMD\s+/, '')
    else if (ins.op === 'ENTRYPOINT') stage.entrypoint = JSON.parse(ins.args)
    else if (ins.op === 'STOPSIGNAL') stage.stopsignal = ins.args
  }
}

// ---- the runtime smoke test ----

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

function userIds (root, user) {
  const line = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.split(':')[0] === user)
  if (!line) throw new Error(`USER ${user} is not in the image's /etc/passwd`)
  const f = line.split(':')
  return { uid: Number(f[2]), gid: Number(f[3]) }
}

async function smoke (rt) {
  const port = await freePort()
  const { uid, gid } = userIds(rt.root, rt.user)
  // The image says HOST=0.0.0.0; here it shares the host's network, so loopback only.
  const env = { ...rt.env, HOST: '127.0.0.1', PORT: String(port) }
  const missing = sh('chroot', [rt.root, 'sh', '-c', `ldd ${rt.entrypoint[0]} | grep 'not found' || true`]).trim()
  check('runtime: every shared library of the binary is in the image', missing === '', missing)
  const proc = spawn('chroot', [`--userspec=${uid}:${gid}`, rt.root, '/usr/bin/env', '-i', ...envArgs(env),
    '/bin/sh', '-c', `cd "${rt.cwd}" && exec "$0" "$@"`, ...rt.entrypoint], { stdio: ['ignore', 'pipe', 'pipe'] })
  cleanups.push(() => { try { proc.kill('SIGKILL') } catch {} })
  let out = ''
  proc.stderr.on('data', (d) => { out += d })
  proc.stdout.on('data', (d) => { out += d })
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)))
  const ready = await Promise.race([
    new Promise((resolve) => { const i = setInterval(() => { if (/listening on/.test(out)) { clearInterval(i); resolve(true) } }, 50) }),
    exited.then(() => false),
    new Promise((resolve) => setTimeout(() => resolve(false), 20000))
  ])
  if (!check('runtime: the service starts as USER ' + rt.user, ready, ready ? '' : out.slice(-2000))) return
  const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8')
  const kids = spawnSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).stdout.trim()
  const pidStatus = kids ? fs.readFileSync(`/proc/${kids.split('\n')[0]}/status`, 'utf8') : status
  check('runtime: the process is not root', new RegExp(`^Uid:\\s+${uid}\\b`, 'm').test(pidStatus))
  const hc = spawnSync('chroot', [`--userspec=${uid}:${gid}`, rt.root, '/usr/bin/env', '-i', ...envArgs(env), '/bin/sh', '-c', rt.healthcheck], { encoding: 'utf8' })
  check('runtime: HEALTHCHECK command succeeds', hc.status === 0, hc.stderr)
  const db = path.join(rt.root, rt.env.DATABASE_URL.replace(/^sqlite:\/\//, ''))
  const st = fs.existsSync(db) && fs.statSync(db)
  check('runtime: the database is created in the volume, owned by the user', st && st.uid === uid, db)
  proc.kill(rt.stopsignal || 'SIGTERM')
  const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 15000))])
  check(`runtime: ${rt.stopsignal} stops it with exit 0`, code === 0, String(code) + '\n' + out.slice(-1500))
}

async function main () {
  const text = fs.readFileSync(path.join(repo, 'Dockerfile'), 'utf8')
  const ignore = fs.readFileSync(path.join(repo, '.dockerignore'), 'utf8')
  const problems = lintDockerfile(text, ignore)
  check('lint: Dockerfile and .dockerignore', problems.length === 0,
    problems.map((p) => `line ${p.line} [${p.rule}] ${p.message}`).join('; '))
  if (process.argv.includes('--lint-only')) return
  const base = baseRoot()
  const stages = parseDockerfile(text)
  for (const st of stages) {
    const t0 = Date.now()
    st.root = stageRoot(base, st.alias)
    try {
      runStage(st, stages)
      check(`stage ${st.alias}: all steps ran (${Math.round((Date.now() - t0) / 1000)} s)`, true)
    } catch (e) {
      check(`stage ${st.alias}: all steps ran`, false, e.message)
      return
    }
  }
  await smoke(stages.at(-1))
}

try {
  await main()
} catch (e) {
  check('image check', false, e.stack)
} finally {
  for (const c of cleanups.reverse()) c()
  // Never remove a tree that still has something mounted in it (the .deb cache).
  const mounted = fs.readFileSync('/proc/mounts', 'utf8').includes(work)
  if (failed === 0 && !mounted) fs.rmSync(work, { recursive: true, force: true })
  else console.log(`log: ${logFile}`)
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
