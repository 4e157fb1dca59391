// Runs a build tool (test/tools/NAME.c -> <build>/tools/NAME) with one JSON command on stdin
// and returns its parsed JSON output. The build directory is CARAVEL_BUILD_DIR, else the
// directory of CARAVEL_BIN (CI runs the ASan build: build-asan/caravel -> build-asan), else
// "build" at the repository root.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

export function buildDir () {
  if (process.env.CARAVEL_BUILD_DIR) return path.resolve(repoRoot, process.env.CARAVEL_BUILD_DIR)
  if (process.env.CARAVEL_BIN) return path.dirname(path.resolve(repoRoot, process.env.CARAVEL_BIN))
  return path.join(repoRoot, 'build')
}

export function toolPath (name) {
  return path.join(buildDir(), 'tools', name)
}

// Returns { status, out } where out is the parsed JSON the tool printed.
export function runTool (name, cmd, { timeout = 20000 } = {}) {
  const r = spawnSync(toolPath(name), [], { input: JSON.stringify(cmd), timeout, maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  const text = r.stdout.toString().trim()
  let out
  try {
    out = JSON.parse(text)
  } catch {
    throw new Error(`${name} printed no JSON (status ${r.status}): ${text.slice(0, 200)} ${r.stderr}`)
  }
  return { status: r.status, out }
}

// Like runTool but throws unless the tool succeeded.
export function tool (name, cmd, opts) {
  const { status, out } = runTool(name, cmd, opts)
  if (status !== 0 || out.error) throw new Error(`${name} ${cmd.op} failed: ${JSON.stringify(out)}`)
  return out
}
