// Starts build/tools/robot_tool (the robot module with the relay pool and the database) for
// the robot tests: const r = await startRobot(dbPath, env); r.pubkey; r.kick(); await r.stop()
// (graceful: stdin EOF, resolves with the exit code) or r.kill9().
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { track } from './lifecycle.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const ROBOT_TOOL = process.env.CARAVEL_BIN
  ? path.join(path.dirname(process.env.CARAVEL_BIN), 'tools/robot_tool')
  : path.join(ROOT, 'build/tools/robot_tool')

export async function startRobot(dbPath, env) {
  const child = track(spawn(ROBOT_TOOL, [dbPath], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] }))
  let log = ''
  child.stderr.on('data', (d) => { log = (log + d).slice(-20000) })
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig)))
  const pubkey = await new Promise((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error('robot_tool did not start in 60 s: ' + log)), 60000)
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/READY ([0-9a-f]{64})/)
      if (m) { clearTimeout(t); resolve(m[1]) }
    })
    exited.then((c) => { clearTimeout(t); reject(new Error(`robot_tool exited ${c}: ${log}`)) })
  })
  return {
    pubkey,
    pid: child.pid,
    log: () => log,
    kick: () => child.stdin.write('kick\n'),
    stop: async () => { child.stdin.end(); return exited },
    kill9: async () => { child.kill('SIGKILL'); return exited },
  }
}
