// Builds the Dockerfile with podman and runs the image (`make image-check`; in make test with
// CARAVEL_IMAGE_CHECK=1). Podman 4.3 from Debian 12, rootful, as on a CI machine without a
// registry mirror:
//   1. lints Dockerfile and .dockerignore (scripts/dockerfile.mjs);
//   2. the base image: a Debian 12 root made with debootstrap (cached under
//      $CARAVEL_DEBOOTSTRAP_CACHE, default /var/cache/caravel-debootstrap) imported as
//      localhost/debian:12, unless that image exists already;
//   3. podman build with --build-arg BASE=localhost/debian:12 (vfs storage, chroot isolation,
//      host network, docker format so that HEALTHCHECK is kept);
//   4. measures the runtime image (and estimates it on debian:12-slim);
//   5. runs it (runc, cgroupfs, no default ulimits: crun and the default nofile ulimit are
//      refused on these machines) on 127.0.0.1 with a named volume on /data: the process is the
//      non-root USER, `podman healthcheck run` passes, a tenant is created through the API,
//      `podman stop` ends it with exit 0 after a clean SIGTERM shutdown, and a new container on
//      the same volume still has the tenant.
// Containers and volumes it creates are removed at the end, also on failure; the image
// caravel:check and the build cache stay (`podman --storage-driver vfs rmi caravel:check`).
// Prints one line per check and "N passed, N failed" last.
//   node scripts/image-check.mjs [--lint-only]
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { lintDockerfile } from './dockerfile.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const cache = process.env.CARAVEL_DEBOOTSTRAP_CACHE || '/var/cache/caravel-debootstrap'
const mirror = process.env.CARAVEL_DEBIAN_MIRROR || 'http://deb.debian.org/debian'
const BASE = 'localhost/debian:12'
const IMAGE = 'caravel:check'
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-image-'))
const logFile = path.join(work, 'image-check.log')
const tag = path.basename(work).replace(/^caravel-image-/, '').toLowerCase()
const cleanups = []
let passed = 0
let failed = 0

function log (s) { fs.appendFileSync(logFile, s.endsWith('\n') ? s : s + '\n') }

function check (name, ok, detail = '') {
  if (ok) passed++; else failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail && !ok ? ': ' + detail : ''}`)
  return ok
}

// Runs a command, its output into the log; throws with the output's tail when it fails
// (unless allowFail: then the result is returned as is).
function sh (cmd, args, { allowFail = false, ...opts } = {}) {
  log(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts })
  log((r.stdout || '') + (r.stderr || ''))
  if (r.status !== 0 && !allowFail) {
    const tail = ((r.stdout || '') + (r.stderr || '') + (r.error ? String(r.error) : '')).split('\n').slice(-25).join('\n')
    throw new Error(`${cmd} ${args.slice(0, 8).join(' ')} exited ${r.status}\n${tail}`)
  }
  return r
}

// Every podman call: vfs storage (no overlay on these kernels' nested setups), and a
// containers.conf without default ulimits.
const containersConf = path.join(work, 'containers.conf')
fs.writeFileSync(containersConf, '[containers]\ndefault_ulimits = []\n')
const podmanEnv = { ...process.env, CONTAINERS_CONF: containersConf }
const podman = (args, opts = {}) => sh('podman', ['--storage-driver', 'vfs', ...args], { env: podmanEnv, ...opts })
const podmanRun = (args, opts) => podman(['--runtime', 'runc', '--cgroup-manager', 'cgroupfs', ...args], opts)

// ---- the base image ----

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
  // Like the published image: no downloaded packages, no package lists.
  for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    fs.rmSync(path.join(tmp, d), { recursive: true, force: true })
    fs.mkdirSync(path.join(tmp, d, 'partial'), { recursive: true })
  }
  fs.writeFileSync(path.join(tmp, '.caravel-complete'), new Date().toISOString() + '\n')
  fs.renameSync(tmp, root)
  console.log(`     (debootstrap: ${Math.round((Date.now() - t0) / 1000)} s, cached in ${root})`)
  return root
}

function baseImage () {
  if (podman(['image', 'exists', BASE], { allowFail: true }).status === 0) return
  const root = baseRoot()
  const t0 = Date.now()
  // tar of the root (without our marker) piped into podman import.
  sh('sh', ['-c', `tar -C "${root}" --exclude=./.caravel-complete -c . | podman --storage-driver vfs import - ${BASE}`],
    { env: podmanEnv })
  console.log(`     (imported ${BASE} in ${Math.round((Date.now() - t0) / 1000)} s)`)
}

// ---- build ----

// podman build, its output streamed into the log with the seconds since the start on every
// line (where the time goes); throws with the output's tail when it fails.
function build () {
  const args = ['--storage-driver', 'vfs', 'build', '--isolation', 'chroot', '--network', 'host',
    '--format', 'docker', '--build-arg', `BASE=${BASE}`, '-t', IMAGE, repo]
  log(`$ podman ${args.join(' ')}`)
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const p = spawn('podman', args, { env: podmanEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let tail = ''
    let partial = ''
    const onData = (d) => {
      const lines = (partial + d).split('\n')
      partial = lines.pop()
      for (const l of lines) log(`[${Math.round((Date.now() - t0) / 1000)} s] ${l}`)
      tail = (tail + d).slice(-4000)
    }
    p.stdout.on('data', onData)
    p.stderr.on('data', onData)
    p.once('error', reject)
    p.once('exit', (code) => {
      if (partial) log(partial)
      if (code === 0) resolve(Math.round((Date.now() - t0) / 1000))
      else reject(new Error(`podman build exited ${code}\n${tail}`))
    })
  })
}

const mb = (bytes) => (bytes / 1e6).toFixed(1)

// The runtime image's size, and what it would be on debian:12-slim: the slim image is the
// same Debian 12 package set with documentation, man pages and locales left out (also for
// every package installed later, by its dpkg configuration), so the estimate is the image
// minus those directories.
function sizes () {
  const size = (img) => Number(podman(['image', 'inspect', img, '--format', '{{.Size}}']).stdout.trim())
  const image = size(IMAGE)
  const base = size(BASE)
  const slimmed = ['/usr/share/doc', '/usr/share/man', '/usr/share/info', '/usr/share/locale',
    '/usr/share/groff', '/usr/share/lintian', '/usr/share/linda', '/var/cache/man']
  const du = podmanRun(['run', '--rm', '--network', 'none', '--user', 'root', '--entrypoint', '/bin/sh', IMAGE, '-c',
    `du -skc ${slimmed.join(' ')} 2>/dev/null | tail -1; ls /var/lib/apt/lists | grep -vc '^lock$\\|^partial$' || true;` +
    ' command -v cc gcc make || true']).stdout.trim().split('\n')
  const docsKb = Number(du[0].split(/\s+/)[0])
  const pkgs = (img) => new Map(podmanRun(['run', '--rm', '--network', 'none', '--user', 'root', '--entrypoint',
    'dpkg-query', img, '-W', '-f', '${Package} ${Installed-Size}\\n']).stdout.trim().split('\n').map((l) => l.split(' ')))
  const inBase = pkgs(BASE)
  const added = [...pkgs(IMAGE)].filter(([p]) => !inBase.has(p))
  const addedKb = added.reduce((t, [, kb]) => t + Number(kb), 0)
  console.log(`     packages added to the base: ${added.length}, ${mb(addedKb * 1024)} MB installed size ` +
    `(${added.map(([p]) => p).join(' ')})`)
  check(`runtime image: ${mb(image)} MB on the imported Debian 12 root (its base ${mb(base)} MB, ` +
    `the service's layers ${mb(image - base)} MB); on debian:12-slim about ${mb(image - docsKb * 1024)} MB ` +
    `(${mb(docsKb * 1024)} MB of docs, man pages and locales that slim leaves out)`, true)
  check('runtime image: no apt lists, no compiler', du[1] === '0' && du.length === 2, du.slice(1).join(' '))
}

// ---- run ----

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor (what, ms, fn) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(200)
  }
}

const logsOf = (name) => { const r = podman(['logs', name], { allowFail: true }); return (r.stdout || '') + (r.stderr || '') }

// Starts a container of the image on 127.0.0.1:port with the volume on /data; resolves once
// it listens. The container is removed at the end whatever happens.
async function start (name, volume, port) {
  cleanups.push(() => podman(['rm', '-f', '-t', '0', name], { allowFail: true }))
  podmanRun(['run', '-d', '--name', name, '--network', 'host', '-e', 'HOST=127.0.0.1', '-e', `PORT=${port}`,
    '-v', `${volume}:/data`, '--stop-timeout', '35', IMAGE])
  await waitFor(`${name} listening`, 30000, () => {
    const l = logsOf(name)
    if (/listening on/.test(l)) return true
    const state = podman(['inspect', name, '--format', '{{.State.Status}}'], { allowFail: true }).stdout.trim()
    if (state === 'exited') throw new Error(`${name} exited:\n${l.slice(-2000)}`)
    return false
  })
}

async function stop (name) {
  const t0 = Date.now()
  podman(['stop', name])
  const code = podman(['inspect', name, '--format', '{{.State.ExitCode}}']).stdout.trim()
  const l = logsOf(name)
  check(`runtime: podman stop ends it with exit code 0 in ${((Date.now() - t0) / 1000).toFixed(1)} s`, code === '0', `exit ${code}\n${l.slice(-1500)}`)
  check('runtime: a clean SIGTERM shutdown in the logs', /Terminated: shutting down/.test(l) && /\bstopped\b/.test(l) &&
    !/ERROR|AddressSanitizer|runtime error/.test(l), l.slice(-1500))
}

async function run () {
  // The API client of the tests: NIP-98 tokens signed with nostr-tools (test/node_modules).
  const { newUser, call } = await import('../test/integration/lib/auth.mjs')
  const volume = `caravel-check-${tag}`
  const [first, second] = [`caravel-check-${tag}-1`, `caravel-check-${tag}-2`]
  podman(['volume', 'create', volume])
  cleanups.push(() => podman(['volume', 'rm', '-f', volume], { allowFail: true }))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  await start(first, volume, port)
  check('runtime: the service starts and listens', true)

  const pid = podman(['inspect', first, '--format', '{{.State.Pid}}']).stdout.trim()
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const uid = status.match(/^Uid:\s+(\d+)/m)[1]
  const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  check(`runtime: PID 1 of the container is caravel as USER caravel (uid ${uid}), not root`,
    comm === 'caravel' && uid === '10001', `comm ${comm} uid ${uid}`)

  const hc = podman(['healthcheck', 'run', first], { allowFail: true })
  check('runtime: podman healthcheck run passes', hc.status === 0, (hc.stdout || '') + (hc.stderr || ''))

  const user = newUser()
  const created = await call(url, user, 'POST', '/tenants', {})
  check('runtime: a tenant is created through the API (201)', created.status === 201, created.text)
  await stop(first)

  await start(second, volume, port)
  const who = await call(url, user, 'GET', '/identity')
  check('runtime: a new container on the same volume still has the tenant',
    who.status === 200 && who.body?.data?.is_tenant === true, who.text)
  await stop(second)
}

async function main () {
  const text = fs.readFileSync(path.join(repo, 'Dockerfile'), 'utf8')
  const ignore = fs.readFileSync(path.join(repo, '.dockerignore'), 'utf8')
  const problems = lintDockerfile(text, ignore)
  check('lint: Dockerfile and .dockerignore', problems.length === 0,
    problems.map((p) => `line ${p.line} [${p.rule}] ${p.message}`).join('; '))
  if (process.argv.includes('--lint-only')) return
  baseImage()
  const secs = await build()
  check(`podman build of the Dockerfile (BASE=${BASE}, ${secs} s)`, true)
  sizes()
  // test/run.sh starts this check at the lowest CPU priority (nice 19) alongside the tests,
  // which only makes the build take longer; the runtime checks wait with timeouts, so they
  // and the processes they start run at normal priority (root may raise it back).
  try { os.setPriority(0) } catch {}
  await run()
}

try {
  await main()
} catch (e) {
  check('image check', false, e.stack)
} finally {
  for (const c of cleanups.reverse()) c()
  if (failed) console.log('---- last lines of the log ----\n' + fs.readFileSync(logFile, 'utf8').split('\n').slice(-80).join('\n'))
  fs.rmSync(work, { recursive: true, force: true })
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
