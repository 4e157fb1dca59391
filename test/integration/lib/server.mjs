// Starts the real caravel binary on 127.0.0.1 with a temporary database, the way an operator
// would (environment variables only), and stops it by PID.
//   const srv = await startServer({ env: { ADMINS: pk } })
//   srv.url, srv.port, srv.pid, srv.dbPath, srv.logs(), await srv.stop(), await srv.kill9()
//   srv.sql('select count(*) from relay')   the database's answer as text, on either engine
// The binary is CARAVEL_BIN (CI: build-asan/caravel) or build/caravel.
// The engine is CARAVEL_TEST_ENGINE: sqlite (default: a file in the server's folder) or
// postgres (a new database per server folder, lib/postgres.mjs). An explicit
// env.DATABASE_URL wins over both.
import { execFileSync, spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { track, tempDir } from './lifecycle.mjs'
import { psql, testDatabase } from './postgres.mjs'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

export const engine = process.env.CARAVEL_TEST_ENGINE || 'sqlite'
if (!['sqlite', 'postgres'].includes(engine)) throw new Error(`CARAVEL_TEST_ENGINE=${engine}: sqlite or postgres`)

// The PostgreSQL database of a server folder: a server started again on the same folder (a
// restart) finds its data again, as it finds caravel.db on SQLite.
const pgDatabases = new Map()
async function databaseUrl (dir, dbPath) {
  if (engine === 'sqlite') return `sqlite://${dbPath}`
  if (!pgDatabases.has(dir)) pgDatabases.set(dir, await testDatabase())
  return pgDatabases.get(dir)
}

// The database behind a server's dbPath (srv.dbPath, for helpers that take a path): its
// PostgreSQL database when the server folder has one, else the SQLite file.
export function databaseUrlOf (dbPath) {
  return pgDatabases.get(path.dirname(dbPath)) ?? `sqlite://${dbPath}`
}

// Runs SQL on a server's database (the URL it was started with): rows as text, one per line,
// columns joined by '|' (sqlite3's list mode; psql -At prints the same). Several statements
// may be given at once; PostgreSQL then prints the last one's rows only. Keep the SQL portable
// (no strftime, group_concat or boolean results: CASE WHEN ... THEN 1 ELSE 0 END).
export function sqlOn (databaseUrlText, q) {
  if (/^postgres(ql)?:/.test(databaseUrlText)) return psql(databaseUrlText, q)
  const file = databaseUrlText.replace(/^sqlite:\/\//, '')
  return execFileSync('sqlite3', ['-cmd', '.timeout 5000', file, q], { encoding: 'utf8' }).trim()
}

export function binPath () {
  return path.resolve(repoRoot, process.env.CARAVEL_BIN || 'build/caravel')
}

function waitExit (proc, ms) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode)
    const t = setTimeout(() => { proc.kill('SIGKILL') }, ms)
    proc.once('exit', (code) => { clearTimeout(t); resolve(code) })
  })
}

// Options: env (merged over a clean minimal environment), dir or dbDir (reuse a data directory,
// e.g. to restart on the same database; default a fresh temporary one, removed at exit), port
// (default 0 = ephemeral), args, readyTimeout (default 60 s: only a server that never comes up
// should fail it, not a slow start on a loaded machine).
export async function startServer ({ env = {}, dir, dbDir, port = 0, args = [], readyTimeout = 60000 } = {}) {
  dir = dir || dbDir || tempDir('caravel-it-')
  const dbPath = path.join(dir, 'caravel.db')
  const dbUrl = env.DATABASE_URL ?? await databaseUrl(dir, dbPath)
  const fullEnv = {
    PATH: process.env.PATH,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1',
    HOST: '127.0.0.1',
    PORT: String(port),
    // The suite's clients are no proxy: a stop closes their idle keep-alive connections at
    // once instead of waiting for a last request (instances.test.mjs runs the default).
    HTTP_SHUTDOWN_IDLE: '0',
    ...env,
    DATABASE_URL: dbUrl
  }
  const proc = track(spawn(binPath(), args, { env: fullEnv, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  let log = ''
  const onData = (d) => { log += d.toString() }
  proc.stdout.on('data', onData)
  proc.stderr.on('data', onData)
  const actualPort = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in ${readyTimeout} ms:\n${log}`)), readyTimeout)
    const check = () => {
      const m = log.match(/listening on http:\/\/(?:\[[^\]\s]*\]|[^\s:/]+):(\d+)/)
      if (m) { clearTimeout(timer); resolve(Number(m[1])) }
    }
    proc.stderr.on('data', check)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)) })
  }).catch(async (e) => { await waitExit(proc, 0); throw e }) // never leave it running
  const url = `http://127.0.0.1:${actualPort}`
  return {
    url,
    port: actualPort,
    pid: proc.pid,
    proc,
    dir,
    dbPath,
    dbUrl,
    engine: /^postgres(ql)?:/.test(dbUrl) ? 'postgres' : 'sqlite',
    sql: (q) => sqlOn(dbUrl, q),
    env: fullEnv,
    logs: () => log,
    // Graceful stop: SIGTERM, SIGKILL after 10 s; resolves to the exit code.
    stop: async () => { proc.kill('SIGTERM'); return waitExit(proc, 10000) },
    kill9: async () => { proc.kill('SIGKILL'); return waitExit(proc, 5000) },
    // Restart on the same data directory and environment (after stop or kill9).
    restart: async (extra = {}) => startServer({ env: { ...env, ...extra }, dir, port, args, readyTimeout })
  }
}

// Runs the binary to completion (for --help, --version, configuration errors).
export function runOnce (args, env = {}, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const dir = tempDir('caravel-once-')
    const proc = track(spawn(binPath(), args, {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', DATABASE_URL: `sqlite://${dir}/c.db`, ...env },
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe']
    }))
    let out = ''
    let err = ''
    proc.stdout.on('data', (d) => { out += d })
    proc.stderr.on('data', (d) => { err += d })
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
    proc.once('exit', (code) => { clearTimeout(t); resolve({ code, out, err }) })
  })
}
