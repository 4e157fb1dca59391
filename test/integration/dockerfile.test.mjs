// The image's lint rules (scripts/dockerfile.mjs) on the real Dockerfile, and on broken
// variants of it: each mutation must be caught by the rule it breaks. The image itself is
// built and run with podman by scripts/image-check.mjs (`make image-check`; in make test with
// CARAVEL_IMAGE_CHECK=1).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { repoRoot } from './lib/server.mjs'
import { lintDockerfile, parseDockerfile, parseEnv, RUNTIME_LIBS } from '../../scripts/dockerfile.mjs'

const dockerfile = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8')
const ignore = fs.readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')

test('the Dockerfile and .dockerignore pass every rule', () => {
  assert.deepEqual(lintDockerfile(dockerfile, ignore), [])
})

test('two stages on debian:12-slim (ARG BASE); the runtime stage has the documented settings', () => {
  const stages = parseDockerfile(dockerfile)
  assert.deepEqual(stages.map((s) => [s.image, s.alias]), [['debian:12-slim', 'build'], ['debian:12-slim', 'runtime']])
  const local = parseDockerfile(dockerfile, { BASE: 'localhost/debian:12' })
  assert.deepEqual(local.map((s) => s.image), ['localhost/debian:12', 'localhost/debian:12'])
  const env = {}
  for (const i of stages[1].instructions) if (i.op === 'ENV') Object.assign(env, parseEnv(i.args))
  assert.equal(env.DATABASE_URL, 'sqlite:///data/caravel.db')
  assert.equal(env.HOST, '0.0.0.0')
  assert.equal(env.PORT, '3000')
})

test('parser: continuations, comments inside them, ENV forms', () => {
  const st = parseDockerfile('FROM debian:12 AS a\n# c\nRUN a \\\n  # inner\n  && b\nENV X=1 Y="two words"\nENV Z 3\n')
  assert.deepEqual(st[0].instructions.map((i) => [i.op, i.args, i.line]),
    [['RUN', 'a && b', 3], ['ENV', 'X=1 Y="two words"', 6], ['ENV', 'Z 3', 7]])
  assert.deepEqual(parseEnv('X=1 Y="two words"'), { X: '1', Y: 'two words' })
  assert.deepEqual(parseEnv('Z 3'), { Z: '3' })
  const args = 'ARG A=x:1\nARG B\nFROM ${A} AS one\nFROM $A$B AS two\n'
  assert.deepEqual(parseDockerfile(args).map((s) => s.image), ['x:1', 'x:1'])
  assert.deepEqual(parseDockerfile(args, { B: '-y' }).map((s) => s.image), ['x:1', 'x:1-y'])
})

const mutations = [
  ['debian-12', (d) => d.replace('FROM ${BASE} AS runtime', 'FROM debian:11 AS runtime')],
  ['debian-12', (d) => d.replace('ARG BASE=debian:12-slim', 'ARG BASE=debian:11-slim')],
  ['pinned-base', (d) => d.replace('ARG BASE=debian:12-slim', 'ARG BASE=debian')],
  ['multi-stage', (d) => d.slice(0, d.indexOf('FROM ${BASE} AS runtime'))],
  ['build-deps', (d) => d.replace('bash scripts/deps.sh build', 'true')],
  ['non-root-user', (d) => d.replace('USER caravel', 'USER root')],
  ['non-root-user', (d) => d.replace('USER caravel\n', '')],
  ['volume-data', (d) => d.replace('VOLUME ["/data"]\n', '')],
  ['env-database-url', (d) => d.replace('sqlite:///data/caravel.db', 'sqlite://data/caravel.db')],
  ['env-host', (d) => d.replace('HOST=0.0.0.0', 'HOST=127.0.0.1')],
  ['expose-3000', (d) => d.replace('EXPOSE 3000', 'EXPOSE 8080')],
  ['stopsignal', (d) => d.replace('STOPSIGNAL SIGTERM', 'STOPSIGNAL SIGKILL')],
  ['healthcheck', (d) => d.replace('/healthz', '/plans')],
  ['healthcheck-tool', (d) => d.replace('ca-certificates curl', 'ca-certificates')],
  ['runtime-libs', (d) => d.replace('libwslay1 ', '')],
  ['runtime-no-build-tools', (d) => d.replace('libuv1 libsqlite3-0', 'libuv1 libuv1-dev libsqlite3-0')],
  ['apt-no-recommends', (d) => d.replace('install -y --no-install-recommends', 'install -y')],
  ['apt-lists-cleaned', (d) => d.replace('    && rm -rf /var/lib/apt/lists/*\nRUN groupadd', 'RUN groupadd')],
  ['exec-form-entrypoint', (d) => d.replace('ENTRYPOINT ["/usr/local/bin/caravel"]', 'ENTRYPOINT /usr/local/bin/caravel')],
  ['copy-from-stage', (d) => d.replace('--from=build', '--from=builder')],
  ['no-secrets', (d) => d.replace('    PORT=3000', '    PORT=3000 \\\n    ROBOT_SECRET=abc')],
  ['copy-not-add', (d) => d.replace('COPY . .', 'ADD . .')]
]

for (const [rule, mutate] of mutations) {
  test(`a Dockerfile breaking ${rule} is refused`, () => {
    const bad = mutate(dockerfile)
    assert.notEqual(bad, dockerfile, 'the mutation did not apply')
    const rules = lintDockerfile(bad, ignore).map((p) => p.rule)
    assert.ok(rules.includes(rule), `expected ${rule}, got ${JSON.stringify(rules)}`)
  })
}

test('a .dockerignore that lets .git or node_modules in is refused', () => {
  for (const p of ['.git', 'test/node_modules', 'build']) {
    const bad = ignore.split('\n').filter((l) => l.trim() !== p).join('\n')
    assert.ok(lintDockerfile(dockerfile, bad).some((x) => x.rule === 'dockerignore' && x.message.endsWith(p)))
  }
})

test('the runtime library list matches what the binary links', () => {
  assert.deepEqual(RUNTIME_LIBS.slice().sort(), ['ca-certificates', 'libcjson1', 'libcurl4', 'libmbedtls14', 'libpq5',
    'libsecp256k1-1', 'libsqlite3-0', 'libuv1', 'libwslay1'])
})
