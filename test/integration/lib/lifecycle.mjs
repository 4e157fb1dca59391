// What a test process starts is stopped when it ends, however it ends: a failed assertion that
// skips the test's own stop(), an exception in a hook, Ctrl-C or the runner's SIGTERM.
//   track(child)          a spawned process: SIGKILLed at exit if still running; returns child
//   tempDir('caravel-x-') a new directory under os.tmpdir() (TMPDIR), removed at exit unless
//                         removeDir() removed it before
//   onExit(fn)            a synchronous last-resort cleanup (returns a function that cancels it)
// Tests still stop what they start themselves (with the exit code checked); this is the net
// under them. test/run.sh fails the run if anything survives anyway.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const children = new Set()
const dirs = new Set()
const hooks = new Set()

export function track (child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export function tempDir (prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  dirs.add(d)
  return d
}

// Removes a directory made by tempDir (or any other); retries while a process that was just
// stopped still has files in it being closed.
export function removeDir (d) {
  fs.rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
  dirs.delete(d)
}

export function onExit (fn) {
  hooks.add(fn)
  return () => hooks.delete(fn)
}

function cleanup () {
  for (const fn of hooks) try { fn() } catch {}
  for (const c of children) try { c.kill('SIGKILL') } catch {}
  for (const d of dirs) try { fs.rmSync(d, { recursive: true, force: true, maxRetries: 3 }) } catch {}
}

process.on('exit', cleanup)
// A signal would end the process without running 'exit' handlers: turn it into an exit.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => process.exit(128 + os.constants.signals[sig]))
}
