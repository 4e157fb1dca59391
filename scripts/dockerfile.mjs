// A small Dockerfile parser and the lint rules for this project's image (hadolint is not in
// Debian). Used by scripts/image-check.mjs and test/integration/dockerfile.test.mjs.
//   parseDockerfile(text) -> [{ stage, alias, instructions: [{ op, args, line }] }]
//   lintDockerfile(text, dockerignoreText) -> [{ rule, line, message }]   (empty = clean)

// Instructions with their continuation lines joined; comments and blank lines dropped.
export function parseInstructions (text) {
  const out = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1
    let cur = lines[i]
    if (/^\s*(#|$)/.test(cur)) continue
    let cont = /\\\s*$/.test(cur)
    cur = cur.replace(/\\\s*$/, ' ')
    while (cont && i + 1 < lines.length) {
      const l = lines[++i]
      if (/^\s*#/.test(l)) continue // a comment inside a continuation is dropped
      cont = /\\\s*$/.test(l)
      cur += l.replace(/\\\s*$/, ' ')
    }
    const m = cur.trim().match(/^([A-Za-z]+)\s+([\s\S]*)$/)
    if (!m) throw new Error(`line ${first}: cannot parse "${cur.trim()}"`)
    out.push({ op: m[1].toUpperCase(), args: m[2].replace(/\s+/g, ' ').trim(), line: first })
  }
  return out
}

// ARG NAME[=default] before the first FROM: usable in FROM lines (${NAME} or $NAME). buildArgs
// overrides the defaults like `--build-arg NAME=value`.
function substituteArgs (s, args) {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a, b) => args[a || b] ?? '')
}

export function parseDockerfile (text, buildArgs = {}) {
  const stages = []
  const args = {}
  for (const ins of parseInstructions(text)) {
    if (ins.op === 'ARG' && !stages.length) {
      const [name, ...def] = ins.args.split('=')
      args[name] = buildArgs[name] ?? def.join('=')
      continue
    }
    if (ins.op === 'FROM') {
      const m = substituteArgs(ins.args, args).match(/^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i)
      if (!m) throw new Error(`line ${ins.line}: bad FROM`)
      stages.push({ image: m[1], alias: m[2] || String(stages.length), line: ins.line, instructions: [] })
      continue
    }
    if (!stages.length) throw new Error(`line ${ins.line}: ${ins.op} before FROM`)
    stages[stages.length - 1].instructions.push(ins)
  }
  return stages
}

// ENV KEY=VALUE [KEY=VALUE...] (quotes allowed) or the legacy ENV KEY VALUE.
export function parseEnv (args) {
  const env = {}
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const [k, ...rest] = args.split(' ')
    env[k] = rest.join(' ')
    return env
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|'([^']*)'|(\S*))/g)) {
    env[m[1]] = m[3] ?? m[4] ?? m[5]
  }
  return env
}

export const RUNTIME_LIBS = ['libuv1', 'libsqlite3-0', 'libpq5', 'libsecp256k1-1', 'libcjson1', 'libcurl4',
  'libwslay1', 'libmbedtls14', 'ca-certificates']

function stageEnv (stage) {
  const env = {}
  for (const i of stage.instructions) if (i.op === 'ENV') Object.assign(env, parseEnv(i.args))
  return env
}

function lintGeneral (stages, problems) {
  const aliases = new Set()
  for (const st of stages) {
    if (/:latest$|^[^:@]+$/.test(st.image) && !aliases.has(st.image)) {
      problems.push({ rule: 'pinned-base', line: st.line, message: `base image ${st.image} has no explicit tag` })
    }
    for (const i of st.instructions) {
      const run = i.op === 'RUN' ? i.args : ''
      if (/\bapt-get install\b/.test(run) && !/\s-y\b|--yes\b/.test(run)) problems.push({ rule: 'apt-yes', line: i.line, message: 'apt-get install without -y' })
      if (/\bapt-get install\b/.test(run) && !/--no-install-recommends/.test(run)) problems.push({ rule: 'apt-no-recommends', line: i.line, message: 'apt-get install without --no-install-recommends' })
      if (/\bapt-get install\b/.test(run) && !/apt-get update/.test(run)) problems.push({ rule: 'apt-update-same-layer', line: i.line, message: 'apt-get install without apt-get update in the same RUN' })
      if (/\bapt-get (update|install)\b/.test(run) && !/rm -rf \/var\/lib\/apt\/lists/.test(run)) problems.push({ rule: 'apt-lists-cleaned', line: i.line, message: 'apt lists are not removed in the same RUN' })
      if (/\bsudo\b/.test(run)) problems.push({ rule: 'no-sudo', line: i.line, message: 'sudo in RUN' })
      if (/^\s*cd\s/.test(run)) problems.push({ rule: 'use-workdir', line: i.line, message: 'RUN cd ...: use WORKDIR' })
      if (i.op === 'ADD') problems.push({ rule: 'copy-not-add', line: i.line, message: 'ADD: use COPY' })
      if (i.op === 'MAINTAINER') problems.push({ rule: 'no-maintainer', line: i.line, message: 'MAINTAINER is deprecated' })
      const from = i.op === 'COPY' && i.args.match(/--from=(\S+)/)
      if (from && !aliases.has(from[1])) problems.push({ rule: 'copy-from-stage', line: i.line, message: `COPY --from=${from[1]}: no earlier stage of that name` })
      if (i.op === 'ENV' && Object.keys(parseEnv(i.args)).some((k) => /SECRET|NWC_URL|PASSWORD|TOKEN/.test(k))) {
        problems.push({ rule: 'no-secrets', line: i.line, message: 'a secret set with ENV is baked into the image' })
      }
    }
    aliases.add(st.alias)
  }
}

function lintBuild (build, problems) {
  const runs = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')
  if (!/scripts\/deps\.sh build/.test(runs)) problems.push({ rule: 'build-deps', line: build.line, message: 'build stage does not run scripts/deps.sh build' })
  if (!/\bmake\b/.test(runs)) problems.push({ rule: 'build-make', line: build.line, message: 'build stage does not run make' })
}

function need (cond, problems, rule, line, message) {
  if (!cond) problems.push({ rule, line, message })
}

function lintRuntime (rt, buildAlias, problems) {
  const ins = rt.instructions
  const find = (op) => ins.filter((i) => i.op === op)
  const last = (op) => find(op).at(-1)
  const installs = find('RUN').map((i) => i.args).filter((a) => /apt-get install/.test(a)).join(' ')
  const words = new Set(installs.split(/\s+/))
  for (const lib of RUNTIME_LIBS) need(words.has(lib), problems, 'runtime-libs', rt.line, `runtime stage does not install ${lib}`)
  for (const w of words) {
    need(!/-dev$|^build-essential$|^gcc$|^make$|^clang$|^node-llhttp$/.test(w), problems, 'runtime-no-build-tools', rt.line, `runtime stage installs the build package ${w}`)
  }
  const env = stageEnv(rt)
  need(env.DATABASE_URL === 'sqlite:///data/caravel.db', problems, 'env-database-url', rt.line, 'ENV DATABASE_URL=sqlite:///data/caravel.db missing')
  need(env.HOST === '0.0.0.0', problems, 'env-host', rt.line, 'ENV HOST=0.0.0.0 missing')
  const vol = last('VOLUME')
  need(vol && /(^|[\s"[])\/data([\s"\]]|$)/.test(vol.args), problems, 'volume-data', rt.line, 'VOLUME /data missing')
  const user = last('USER')
  need(user && !/^(root|0)(:|$)/.test(user.args), problems, 'non-root-user', user ? user.line : rt.line, 'the runtime stage must end as a non-root USER')
  need(find('EXPOSE').some((i) => i.args.split(' ').includes('3000')), problems, 'expose-3000', rt.line, 'EXPOSE 3000 missing')
  const stop = last('STOPSIGNAL')
  need(stop && stop.args === 'SIGTERM', problems, 'stopsignal', rt.line, 'STOPSIGNAL SIGTERM missing')
  const hc = last('HEALTHCHECK')
  need(hc && /\bCMD\b[\s\S]*\/healthz/.test(hc.args), problems, 'healthcheck', rt.line, 'HEALTHCHECK on /healthz missing')
  if (hc && /\bcurl\b/.test(hc.args)) need(words.has('curl'), problems, 'healthcheck-tool', hc.line, 'the HEALTHCHECK uses curl but the runtime stage does not install it')
  const ep = last('ENTRYPOINT') || last('CMD')
  need(ep && /^\[.*\]$/.test(ep.args), problems, 'exec-form-entrypoint', ep ? ep.line : rt.line, 'ENTRYPOINT must be in exec (JSON) form so the service is PID 1 and gets SIGTERM')
  need(find('COPY').some((i) => i.args.includes(`--from=${buildAlias}`)), problems, 'copy-binary', rt.line, 'the runtime stage does not copy the binary from the build stage')
  if (user && ep) need(user.line < ep.line, problems, 'user-before-entrypoint', user.line, 'USER comes after ENTRYPOINT')
}

function lintIgnore (ignoreText, problems) {
  const pats = new Set((ignoreText || '').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')))
  for (const p of ['.git', 'build', 'test/node_modules', '*.db']) {
    need(pats.has(p), problems, 'dockerignore', 0, `.dockerignore does not exclude ${p}`)
  }
}

export function lintDockerfile (text, dockerignoreText) {
  const problems = []
  let stages
  try {
    stages = parseDockerfile(text)
  } catch (e) {
    return [{ rule: 'parse', line: 0, message: e.message }]
  }
  need(stages.length >= 2, problems, 'multi-stage', 0, 'a build stage and a runtime stage are required')
  for (const st of stages) need(/^debian:12(\b|-|$)|^debian:bookworm/.test(st.image), problems, 'debian-12', st.line, `base ${st.image} is not debian:12`)
  lintGeneral(stages, problems)
  if (stages.length >= 2) {
    lintBuild(stages[0], problems)
    lintRuntime(stages.at(-1), stages[0].alias, problems)
  }
  lintIgnore(dockerignoreText, problems)
  return problems
}
