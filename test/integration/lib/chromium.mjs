// Debian's headless Chromium driven over the Chrome DevTools Protocol (the `ws` package), with
// the flags known to work on our machines, a new temporary profile, and a kill by PID.
//   const b = await launchChromium(); const page = await b.newPage()
//   await page.goto(url); await page.evaluate('expr')
//   await page.waitForEvent('Network.loadingFailed', (p) => p.corsErrorStatus); page.events
//   await b.close()
// Every wait has a timeout whose error says what was seen instead. close() returns once every
// Chromium process of the profile has exited (its helpers outlive the browser process by
// seconds and keep writing into the profile), then removes the profile.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import WebSocket from 'ws'
import { onExit, removeDir, tempDir, track } from './lifecycle.mjs'

// The browser binary itself, not the /usr/bin/chromium wrapper script: the flags below are all
// it needs, and the PID we hold is the browser's.
export const CHROMIUM = '/usr/lib/chromium/chromium'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// What a timeout reports: the last events (method and a short summary of the params).
function describe (events) {
  if (events.length === 0) return 'no events'
  return events.slice(-15).map((e) => `${e.method} ${JSON.stringify(e.params).slice(0, 160)}`).join('\n  ')
}

class Session {
  constructor (ws) {
    this.ws = ws
    this.nextId = 1
    this.pending = new Map()
    this.events = []
    this.waiters = new Set()
    this.closed = null
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw)
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id)
        this.pending.delete(msg.id)
        if (msg.error) reject(new Error(`${msg.error.message} ${msg.error.data || ''}`))
        else resolve(msg.result)
      } else if (msg.method) {
        this.events.push(msg)
        for (const w of this.waiters) w.check(msg)
      }
    })
    // Chromium gone (crashed, killed): every command and wait still pending fails instead of
    // hanging the suite.
    ws.on('close', () => {
      this.closed = new Error('DevTools connection closed')
      for (const { reject } of this.pending.values()) reject(this.closed)
      this.pending.clear()
      for (const w of this.waiters) w.fail(this.closed)
    })
  }

  send (method, params = {}, ms = 30000) {
    if (this.closed) return Promise.reject(this.closed)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${method}: no answer in ${ms} ms; events so far:\n  ${describe(this.events)}`))
      }, ms)
      const done = (f) => (v) => { clearTimeout(t); f(v) }
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  // Resolves with the params of the first event `method` (matching `match`, if given) at index
  // >= `since` in this.events (default: from now on; 0 includes what already arrived).
  waitForEvent (method, match = () => true, { since = this.events.length, ms = 15000 } = {}) {
    const found = this.events.slice(since).find((e) => e.method === method && match(e.params))
    if (found) return Promise.resolve(found.params)
    if (this.closed) return Promise.reject(this.closed)
    return new Promise((resolve, reject) => {
      const w = {
        check: (msg) => { if (msg.method === method && match(msg.params)) { end(); resolve(msg.params) } },
        fail: (e) => { end(); reject(e) }
      }
      const t = setTimeout(() => {
        end()
        reject(new Error(`no ${method}${match.length ? ' matching ' + match : ''} in ${ms} ms; seen:\n  ${describe(this.events)}`))
      }, ms)
      const end = () => { clearTimeout(t); this.waiters.delete(w) }
      this.waiters.add(w)
    })
  }

  async goto (url) {
    const loaded = this.waitForEvent('Page.loadEventFired')
    loaded.catch(() => {}) // when navigate fails, its error is the one reported
    const r = await this.send('Page.navigate', { url })
    if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`)
    await loaded
  }

  // Evaluates an expression in the page (awaiting a promise); returns its JSON value.
  async evaluate (expression) {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true })
    if (r.exceptionDetails) throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails.exception?.description || r.exceptionDetails.text)}`)
    return r.result.value
  }
}

// PIDs of the processes started for this profile: the browser, every helper it forked
// (zygotes, renderers, GPU, network and storage services: --user-data-dir=PROFILE) and the
// crashpad handlers (--database=PROFILE/.config/..., HOME is the profile), including those
// already reparented to init after the browser exited. The helpers rewrite their command line
// as one string, hence a substring match (the profile path is unique: mkdtemp).
function profileProcesses (profile) {
  const pids = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let cmd
    try { cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8') } catch { continue }
    if (cmd.includes(profile)) pids.push(Number(name))
  }
  return pids
}

function killAll (pids, sig) {
  for (const p of pids) try { process.kill(p, sig) } catch {}
}

// Waits until no process of the profile is left; SIGKILL after `ms`.
async function waitGone (profile, ms) {
  const end = Date.now() + ms
  for (;;) {
    const left = profileProcesses(profile)
    if (left.length === 0) return
    if (Date.now() > end) {
      killAll(left, 'SIGKILL')
      if (Date.now() > end + 5000) throw new Error(`chromium processes ${left.join(' ')} survive SIGKILL`)
    }
    await sleep(50)
  }
}

function withTimeout (promise, ms, what) {
  let t
  return Promise.race([promise, new Promise((resolve, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: nothing in ${ms} ms`)), ms)
  })]).finally(() => clearTimeout(t))
}

export async function launchChromium ({ timeout = 60000 } = {}) {
  const profile = tempDir('caravel-chromium-')
  // Chromium's own temporary files (its singleton socket directory, shared memory with
  // --disable-dev-shm-usage) and its crash database ($HOME/.config) go into the profile too,
  // so removing it removes everything.
  const proc = track(spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', 'about:blank'], {
    env: { ...process.env, TMPDIR: profile, HOME: profile },
    stdio: ['ignore', 'ignore', 'pipe']
  }))
  const cancelExitKill = onExit(() => killAll(profileProcesses(profile), 'SIGKILL'))
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)))
  let err = ''
  proc.stderr.on('data', (d) => { err = (err + d).slice(-20000) })
  let closing = null
  const close = () => {
    closing ??= (async () => {
      for (const s of sessions) s.ws.close()
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
      await waitGone(profile, 5000)
      cancelExitKill()
      removeDir(profile)
    })()
    return closing
  }
  const sessions = []
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`chromium did not start in ${timeout} ms: ${err}`)), timeout)
    proc.stderr.on('data', () => {
      const m = err.match(/DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//)
      if (m) { clearTimeout(t); resolve(Number(m[1])) }
    })
    exited.then((c) => { clearTimeout(t); reject(new Error(`chromium exited ${c}: ${err}`)) })
  }).catch(async (e) => { await close(); throw e })
  return {
    pid: proc.pid,
    profile,
    async newPage () {
      const r = await fetch(`http://127.0.0.1:${port}/json/new?about:blank`, { method: 'PUT', signal: AbortSignal.timeout(15000) })
      const target = await r.json()
      const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false })
      await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) }),
        15000, `DevTools connection to ${target.webSocketDebuggerUrl}`)
      const s = new Session(ws)
      sessions.push(s)
      await s.send('Page.enable')
      await s.send('Runtime.enable')
      await s.send('Network.enable')
      return s
    },
    // Stops the browser and waits for all its processes before removing the profile; safe to
    // call more than once.
    close
  }
}
