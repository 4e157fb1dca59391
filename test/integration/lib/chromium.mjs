// Debian's headless Chromium driven over the Chrome DevTools Protocol (the `ws` package), with
// the flags known to work on our machines, a new temporary profile, and a kill by PID.
//   const b = await launchChromium(); const page = await b.newPage()
//   await page.goto(url); await page.evaluate('expr'); page.events ; await b.close()
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import WebSocket from 'ws'

export const CHROMIUM = '/usr/bin/chromium'

class Session {
  constructor (ws) {
    this.ws = ws
    this.nextId = 1
    this.pending = new Map()
    this.events = []
    this.waiters = []
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw)
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id)
        this.pending.delete(msg.id)
        if (msg.error) reject(new Error(`${msg.error.message} ${msg.error.data || ''}`))
        else resolve(msg.result)
      } else if (msg.method) {
        this.events.push(msg)
        this.waiters = this.waiters.filter((w) => !(w.method === msg.method && (w.resolve(msg.params), true)))
      }
    })
    // Chromium gone (crashed, killed): every command still waiting fails instead of hanging
    // the suite (a CDP request has no timeout of its own).
    ws.on('close', () => {
      for (const { reject } of this.pending.values()) reject(new Error('DevTools connection closed'))
      this.pending.clear()
    })
  }

  send (method, params = {}, ms = 30000) {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${method}: no answer in ${ms} ms`))
      }, ms)
      const done = (f) => (v) => { clearTimeout(t); f(v) }
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  waitFor (method, ms = 15000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${method} in ${ms} ms`)), ms)
      this.waiters.push({ method, resolve: (p) => { clearTimeout(t); resolve(p) } })
    })
  }

  async goto (url) {
    const loaded = this.waitFor('Page.loadEventFired')
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

export async function launchChromium ({ timeout = 20000 } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'caravel-chromium-'))
  const proc = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] })
  const killer = () => { try { proc.kill('SIGKILL') } catch {} }
  process.once('exit', killer)
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  let err = ''
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), timeout)
    proc.stderr.on('data', (d) => {
      err += d
      const m = err.match(/DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//)
      if (m) { clearTimeout(t); resolve(Number(m[1])) }
    })
    proc.once('exit', (c) => { clearTimeout(t); reject(new Error(`chromium exited ${c}: ${err}`)) })
  }).catch((e) => { killer(); throw e })
  const sessions = []
  return {
    pid: proc.pid,
    async newPage () {
      const r = await fetch(`http://127.0.0.1:${port}/json/new?about:blank`, { method: 'PUT' })
      const target = await r.json()
      const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false })
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
      const s = new Session(ws)
      sessions.push(s)
      await s.send('Page.enable')
      await s.send('Runtime.enable')
      await s.send('Network.enable')
      return s
    },
    async close () {
      for (const s of sessions) s.ws.close()
      proc.kill('SIGTERM')
      const t = setTimeout(killer, 5000)
      await exited
      clearTimeout(t)
      process.removeListener('exit', killer)
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}
