// Soak for the C relay pool (not in the default suite):
//   node test/soak/relay-soak.mjs [SECONDS=180] [BIN=build-asan/bench/relay_soak]
// Starts the real test relay (AUTH required, so every reconnect re-authenticates) behind a
// TCP proxy that drops every connection every 1-4 s, runs bench/relay_soak against it, and
// prints its STAT lines (RSS, publishes, OKs, events received). The ASan build makes
// LeakSanitizer check for leaks at exit; exit code 0 means no leak and uv_loop_close()==0.
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRelay } from '../integration/lib/nostr-relay.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const seconds = Number(process.argv[2] ?? 180)
const bin = process.argv[3] ?? path.join(ROOT, 'build-asan/bench/relay_soak')

const relay = await startRelay({ AUTH_HOSTNAME: '127.0.0.1', AUTH_REQUIRED: '1' })
const relayPort = Number(new URL(relay.url).port)
const live = new Set()
let drops = 0
const proxy = net.createServer((c) => {
  const up = net.connect(relayPort, '127.0.0.1')
  live.add(c)
  c.pipe(up).pipe(c)
  const end = () => { c.destroy(); up.destroy(); live.delete(c) }
  c.on('error', end).on('close', end)
  up.on('error', end).on('close', end)
})
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
const url = `ws://127.0.0.1:${proxy.address().port}`
let dropTimer
const scheduleDrop = () => {
  dropTimer = setTimeout(() => {
    for (const c of live) { c.destroy(); drops++ }
    scheduleDrop()
  }, 1000 + Math.random() * 3000)
}
scheduleDrop()

const child = spawn(bin, [url, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] })
let errTail = ''
child.stdout.on('data', (d) => process.stdout.write(d))
child.stderr.on('data', (d) => { errTail = (errTail + d).slice(-4000) })
const code = await new Promise((resolve) => child.on('exit', resolve))
clearTimeout(dropTimer)
proxy.close()
for (const c of live) c.destroy()
await relay.stop()
console.log(`connections dropped: ${drops}; soak exit code ${code}`)
if (code !== 0) console.log(errTail)
process.exit(code === 0 ? 0 : 1)
