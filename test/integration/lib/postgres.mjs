// A throwaway PostgreSQL for the tests: initdb in a temporary folder, postgres on a free
// 127.0.0.1 port (and a unix socket in that folder), trust authentication for the role
// "caravel", durability off (fsync, synchronous_commit, full_page_writes: nothing must survive
// a crash of a test cluster). Stopped by PID and its folder removed at the end, even on failure.
//
// When the tests run as root (CI), initdb and postgres run as the system user caravel-test
// (scripts/deps.sh creates it; postgres refuses to run as root), so every parent folder of the
// cluster's folder must be traversable by that user (test/run.sh makes its TMPDIR so).
//
// One cluster serves a whole run when CARAVEL_TEST_PG_URL names it (test/run.sh starts it with
// this file's command line); a test file run on its own starts its own on first use. Each caller
// gets a database of its own, so no two tests share state:
//   const url = await testDatabase()        postgres://caravel@127.0.0.1:PORT/NAME, dropped at exit
//   psql(url, 'select count(*) from relay') rows as text, columns joined by '|' (like sqlite3's)
//   const c = await startCluster(); c.url; await c.createDatabase(); await c.stop()
// Command line (test/run.sh):
//   node postgres.mjs start DIR   starts a cluster in DIR (must not exist), prints its URL
//   node postgres.mjs stop DIR    stops it (fast shutdown, SIGKILL after 30 s), removes DIR
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { onExit, removeDir, tempDir, track } from './lifecycle.mjs'

export const PG_OS_USER = 'caravel-test'
export const PG_ROLE = 'caravel'
const READY_MS = 60000 // only a cluster that never comes up should fail (a loaded machine is slow)
const STOP_MS = 30000

// The server programs (initdb, postgres) are not on PATH on Debian.
export function pgBinDir () {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
  } catch {
    const base = '/usr/lib/postgresql'
    const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : []
    if (!versions.length) throw new Error('PostgreSQL is not installed (scripts/deps.sh all installs it)')
    return path.join(base, versions[0], 'bin')
  }
}

// {uid, gid} to run the server programs as, or {} when the tests do not run as root.
function serverIdentity () {
  if (process.getuid() !== 0) return {}
  const line = spawnSync('getent', ['passwd', PG_OS_USER], { encoding: 'utf8' }).stdout.trim()
  if (!line) throw new Error(`the system user ${PG_OS_USER} is missing: run scripts/deps.sh all`)
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

function run (file, args, id, opts = {}) {
  const r = spawnSync(file, args, { ...id, encoding: 'utf8', ...opts })
  if (r.status !== 0) throw new Error(`${path.basename(file)} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`)
  return r.stdout
}

function sleep (ms) { return new Promise((resolve) => setTimeout(resolve, ms)) }

// A zombie is gone too: our own child is only reaped when the event loop runs, and the
// synchronous waits below block it.
function alive (pid) {
  try { process.kill(pid, 0) } catch (e) { if (e.code !== 'EPERM') return false }
  try { return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false }
}

// Synchronous wait (usable in an exit hook): true once pid is gone.
function waitGoneSync (pid, ms) {
  const buf = new Int32Array(new SharedArrayBuffer(4))
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (!alive(pid)) return true
    Atomics.wait(buf, 0, 0, 20)
  }
  return !alive(pid)
}

// Runs SQL with psql and returns its output: one line per row, columns joined by '|', no
// header (the format of sqlite3's default list mode, so tests compare the two engines' text).
export function psql (url, sql) {
  return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

// Connection URL of database `db` on a cluster reachable at base (any database of it).
function withDatabase (base, db) {
  const u = new URL(base)
  u.pathname = '/' + db
  return u.toString()
}

let dbCounter = 0
const toDrop = new Map() // base URL -> names
// Creates an empty database (a file copy of template1: with fsync off its checkpoint is cheap,
// and it measured faster than the default WAL_LOG copy) and returns its URL; with
// dropAtExit it is dropped when this process ends (a shared cluster must not fill its disk with
// hundreds of test databases; servers still connected then are disconnected).
export function createDatabase (base, { dropAtExit = true } = {}) {
  const name = `t_${process.pid}_${++dbCounter}`
  psql(base, `CREATE DATABASE ${name} STRATEGY = FILE_COPY`)
  if (dropAtExit) {
    if (!toDrop.has(base)) {
      toDrop.set(base, [])
      onExit(() => {
        const args = toDrop.get(base).flatMap((n) => ['-c', `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`])
        spawnSync('psql', ['-X', '-q', '-d', base, ...args], { stdio: 'ignore', timeout: 20000 })
      })
    }
    toDrop.get(base).push(name)
  }
  return withDatabase(base, name)
}

function pidOf (dir) {
  try { return Number(fs.readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]) } catch { return 0 }
}

// Stops the postmaster of the cluster in dir by its PID (fast shutdown: its backends end with
// it), SIGKILL after ms, then removes dir.
export function stopClusterSync (dir, ms = STOP_MS) {
  const pid = pidOf(dir)
  if (pid && alive(pid)) {
    try { process.kill(pid, 'SIGINT') } catch {}
    if (!waitGoneSync(pid, ms)) {
      try { process.kill(pid, 'SIGQUIT') } catch {}
      if (!waitGoneSync(pid, 5000)) try { process.kill(pid, 'SIGKILL') } catch {}
      waitGoneSync(pid, 5000)
    }
  }
  removeDir(dir)
}

// Starts postgres on a free port; retries with another port when one was taken meanwhile.
async function launch (bin, data, dir, id, detached) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const logFile = path.join(dir, 'postgres.log')
    const log = fs.openSync(logFile, 'w')
    const proc = spawn(path.join(bin, 'postgres'), ['-D', data, '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=300', '-c', 'shared_buffers=32MB', '-c', 'log_min_messages=warning',
      '-c', 'log_min_error_statement=panic'],
    { ...id, stdio: ['ignore', log, log], detached: false })
    fs.closeSync(log)
    // Unreferenced either way: a test file must end when its tests do (its exit hook stops the
    // cluster then), and the command line returns while the cluster runs on.
    if (!detached) track(proc)
    proc.unref()
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)))
    const url = `postgres://${PG_ROLE}@127.0.0.1:${port}/postgres`
    for (const end = Date.now() + READY_MS; Date.now() < end;) {
      const gone = await Promise.race([exited, sleep(50).then(() => null)])
      if (gone !== null) {
        const text = fs.readFileSync(logFile, 'utf8')
        if (/could not bind|Address already in use/.test(text) && attempt < 5) break
        throw new Error(`postgres exited (${gone}):\n${text}`)
      }
      const r = spawnSync(path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)])
      if (r.status === 0) return { proc, port, url }
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      throw new Error(`postgres not ready in ${READY_MS} ms:\n${fs.readFileSync(logFile, 'utf8')}`)
    }
  }
}

// Starts a cluster. dir: a folder to create (default a new temporary one); detached: leave it
// running when this process ends (the command line; otherwise it is stopped at exit).
export async function startCluster ({ dir, detached = false } = {}) {
  const t0 = Date.now()
  if (dir) fs.mkdirSync(dir, { mode: 0o700 })
  else dir = tempDir('caravel-pg-')
  const bin = pgBinDir()
  const id = serverIdentity()
  let cancel = () => {}
  try {
    if (id.uid !== undefined) {
      fs.chownSync(dir, id.uid, id.gid)
      const r = spawnSync('test', ['-w', dir], id)
      if (r.status !== 0) throw new Error(`${PG_OS_USER} cannot reach ${dir}: its parent folders must be traversable (chmod o+x)`)
    }
    const data = path.join(dir, 'data')
    run(path.join(bin, 'initdb'), ['-D', data, '-U', PG_ROLE, '--auth=trust', '--no-sync',
      '--no-instructions', '-E', 'UTF8', '--locale=C'], id)
    const initdbMs = Date.now() - t0
    if (!detached) cancel = onExit(() => stopClusterSync(dir, 10000))
    const { proc, port, url } = await launch(bin, data, dir, id, detached)
    return {
      dir,
      port,
      pid: proc.pid,
      url,
      startMs: { initdb: initdbMs, total: Date.now() - t0 },
      createDatabase: (opts) => createDatabase(url, opts),
      // Fast shutdown, awaited on the event loop (so this process reaps its child).
      stop: async () => {
        cancel()
        if (proc.exitCode === null && proc.signalCode === null) {
          const gone = new Promise((resolve) => proc.once('exit', resolve))
          proc.kill('SIGINT')
          let timer
          const late = new Promise((resolve) => { timer = setTimeout(resolve, STOP_MS, 'late') })
          if (await Promise.race([gone, late]) === 'late') { proc.kill('SIGKILL'); await gone }
          clearTimeout(timer)
        }
        removeDir(dir)
      }
    }
  } catch (e) {
    cancel()
    stopClusterSync(dir, 5000)
    throw e
  }
}

let own = null
// A new empty database for one test server: in the run's cluster (CARAVEL_TEST_PG_URL) or in
// this process's own, started on first use and stopped when the process ends.
export async function testDatabase () {
  let base = process.env.CARAVEL_TEST_PG_URL
  if (!base) {
    own = own || startCluster()
    return createDatabase((await own).url, { dropAtExit: false }) // goes with the cluster
  }
  return createDatabase(base)
}

// Command line for test/run.sh.
async function main (argv) {
  const [cmd, dir] = argv
  if (cmd === 'start' && dir) {
    const c = await startCluster({ dir: path.resolve(dir), detached: true })
    console.error(`postgres: cluster in ${c.dir} (pid ${c.pid}) ready in ${c.startMs.total} ms (initdb ${c.startMs.initdb} ms)`)
    console.log(c.url)
    return 0
  }
  if (cmd === 'stop' && dir) {
    stopClusterSync(path.resolve(dir))
    return 0
  }
  console.error('usage: node postgres.mjs start DIR | stop DIR')
  return 2
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code },
    (e) => { console.error(e.message); process.exitCode = 1 })
}
