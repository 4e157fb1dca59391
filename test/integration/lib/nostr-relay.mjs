// Starts the real test relay (nostr-relay-server.mjs) as a child process on 127.0.0.1 with a
// random port. const r = await startRelay(); r.url ('ws://127.0.0.1:PORT'); await r.stop()
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { track } from './lifecycle.mjs'

const SERVER = fileURLToPath(new URL('./nostr-relay-server.mjs', import.meta.url))

export async function startRelay(env = {}) {
  const child = track(spawn(process.execPath, [SERVER], {
    env: { ...process.env, PORT: '0', QUIET: '1', STORE: 'memory', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  }))
  const url = await new Promise((resolve, reject) => {
    let out = ''
    // Start-up bounds only catch a relay that never comes up: generous, so a loaded machine
    // does not fail a healthy start (a slow start costs nothing when it succeeds).
    const t = setTimeout(() => reject(new Error(`relay did not start in 60 s: ${out}`)), 60000)
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/READY (ws:\/\/\S+)/)
      if (m) { clearTimeout(t); resolve(m[1]) }
    })
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`relay exited ${code}`)) })
  })
  child.stdout.resume()
  return {
    url,
    pid: child.pid,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', resolve)
      child.kill('SIGKILL')
    }),
  }
}
