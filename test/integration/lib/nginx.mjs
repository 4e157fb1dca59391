// Runs Debian's nginx with deploy/nginx.conf in front of the service, in a temporary prefix
// (own config, pid file, error log, temp paths), on free 127.0.0.1 ports, stopped by PID.
//   const px = await startNginxProxy({ upstreamPort, httpsPort, httpPort, pki })
//   px.origin ('https://localhost:PORT'), px.httpOrigin, px.errorLog(), await px.stop()
//   px.upstreams()   ['127.0.0.1:PORT GET /path', ...]: the instances each request was sent to
//                    ('A:PORT, B:PORT GET /x' when A failed and B answered), in order
// With site: 'deploy/nginx-instances.conf' and upstreamPorts: [a, b], the example with several
// instances.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { removeDir, tempDir, track } from './lifecycle.mjs'
import { repoRoot } from './server.mjs'

export const NGINX = '/usr/sbin/nginx'

export function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

function waitListening (port, ms) {
  const end = Date.now() + ms
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1')
      c.once('connect', () => { c.destroy(); resolve() })
      c.once('error', () => {
        if (Date.now() > end) reject(new Error(`nginx not listening on ${port}`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

// deploy/nginx.conf with the test's addresses: listen ports on 127.0.0.1, the upstream, the
// certificate, and server_name localhost. Everything else is the file as shipped.
export function testSiteConfig ({ site: file = 'deploy/nginx.conf', upstreamPort, upstreamPorts, httpsPort, httpPort, pki }) {
  let site = fs.readFileSync(path.join(repoRoot, file), 'utf8')
  const swap = (from, to) => {
    if (!site.includes(from)) throw new Error(`${file} no longer contains "${from}"`)
    site = site.split(from).join(to)
  }
  if (upstreamPorts) upstreamPorts.forEach((p, i) => swap(`server 127.0.0.1:${3001 + i} `, `server 127.0.0.1:${p} `))
  else swap('server 127.0.0.1:3000;', `server 127.0.0.1:${upstreamPort};`)
  swap('listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`)
  swap('listen 80;', `listen 127.0.0.1:${httpPort};`)
  swap('server_name api.example.com;', 'server_name localhost;')
  swap('/etc/letsencrypt/live/api.example.com/fullchain.pem', pki.cert)
  swap('/etc/letsencrypt/live/api.example.com/privkey.pem', pki.key)
  return site
}

export async function startNginxProxy (opts) {
  const dir = tempDir('caravel-nginx-')
  const user = process.getuid && process.getuid() === 0 ? 'user root;\n' : ''
  const conf = `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  log_format upstream '$upstream_addr $request_method $uri';
  access_log ${dir}/upstream.log upstream;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`
  fs.writeFileSync(path.join(dir, 'site.conf'), testSiteConfig(opts))
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf)
  const proc = track(spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''
  proc.stdout.on('data', (d) => { out += d })
  proc.stderr.on('data', (d) => { out += d })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const killer = () => { try { proc.kill('SIGKILL') } catch {} }
  const errorLog = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8') } catch { return '' } }
  try {
    await Promise.race([
      waitListening(opts.httpsPort, 60000),
      exited.then((c) => { throw new Error(`nginx exited ${c}: ${out}\n${errorLog()}`) })
    ])
  } catch (e) {
    killer()
    await exited
    removeDir(dir)
    throw e
  }
  return {
    origin: `https://localhost:${opts.httpsPort}`,
    httpOrigin: `http://localhost:${opts.httpPort}`,
    pid: proc.pid,
    dir,
    errorLog,
    accessLog: () => fs.readFileSync(path.join(dir, 'access.log'), 'utf8'),
    upstreams: () => fs.readFileSync(path.join(dir, 'upstream.log'), 'utf8').split('\n').filter(Boolean),
    stop: async () => {
      proc.kill('SIGQUIT') // graceful stop of the master, by its PID
      const t = setTimeout(killer, 5000)
      const code = await exited
      clearTimeout(t)
      removeDir(dir)
      return code
    }
  }
}
