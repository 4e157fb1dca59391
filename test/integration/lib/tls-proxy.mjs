// A TLS terminator for wss:// tests: a private CA and a "localhost" certificate made with the
// openssl CLI in a temporary directory, and a node:tls server on 127.0.0.1 that pipes each
// connection to a plain TCP port (the test relay).
//   const p = await startTlsProxy(relayPort); p.url ('wss://localhost:PORT'), p.caFile; await p.stop()
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { tempDir } from './lifecycle.mjs'

export function makeTestPki() {
  const dir = tempDir('caravel-pki-') // removed when the test process exits
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  ssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=Caravel Test CA', '-keyout', 'ca.key', '-out', 'ca.pem')
  ssl('req', ...ec, '-subj', '/CN=localhost', '-keyout', 'srv.key', '-out', 'srv.csr')
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=DNS:localhost\n')
  ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'ext', '-out', 'srv.pem')
  return { dir, caFile: path.join(dir, 'ca.pem'), cert: path.join(dir, 'srv.pem'), key: path.join(dir, 'srv.key') }
}

export async function startTlsProxy(targetPort, pki = makeTestPki()) {
  const sockets = new Set()
  const server = tls.createServer({ cert: fs.readFileSync(pki.cert), key: fs.readFileSync(pki.key) }, (client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream).pipe(client)
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = server.address().port
  return {
    url: `wss://localhost:${port}`,
    caFile: pki.caFile,
    pki,
    stop: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
