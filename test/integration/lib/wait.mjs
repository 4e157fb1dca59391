// Waiting for a condition instead of sleeping for a guessed time: a loaded CI machine can be
// many times slower than a developer's, so tests wait for what they need to see, with a
// deadline that fails with what was awaited.
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Calls fn every `every` ms until it returns a truthy value (returned), or throws after ms.
export async function waitFor (fn, what, ms = 20000, every = 50) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(every)
  }
}

// waitFor polling every 20 ms, for tests that report how fast something happened: the
// milliseconds until fn returned a truthy value.
export async function timeUntil (fn, what, ms = 20000) {
  const t0 = Date.now()
  await waitFor(fn, what, ms, 20)
  return Date.now() - t0
}
