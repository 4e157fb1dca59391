// A node:test reporter (test/run.sh): how long each test file took, slowest first, one
// "name seconds" line per file. node 20 reports the tests of all files flat, without a
// duration per file, so this one times each file from the first event about it after it was
// queued (all files are queued at the start; the file is dequeued when a slot frees up) to the
// last (its last test passing or failing): its wall time less its after() hooks.
//   node --test --test-reporter=tap --test-reporter-destination=stdout \
//     --test-reporter=./test/integration/lib/file-times.mjs --test-reporter-destination=OUT ...
import path from 'node:path'

export default async function * fileTimes (source) {
  const first = new Map()
  const last = new Map()
  for await (const event of source) {
    const file = event.data?.file
    if (!file || event.type === 'test:enqueue') continue
    const now = Date.now()
    if (!first.has(file)) first.set(file, now)
    last.set(file, now)
  }
  const rows = [...first].map(([file, t]) => [path.basename(file, '.test.mjs'), (last.get(file) - t) / 1000])
  rows.sort((a, b) => b[1] - a[1])
  for (const [name, seconds] of rows) yield `${name} ${seconds.toFixed(0)}\n`
}
