// A zooid stand-in for benchmarks: answers PUT/POST/PATCH /relay/{id} at once, without
// checking NIP-98 or storing anything (test/integration/lib/zooid.mjs is the faithful one; its
// signature checks would make the fake the bottleneck). Binds 127.0.0.1 on a free port.
//
//   node bench/zooid-fast.mjs MODE     MODE: ok (POST 201, PUT/PATCH 200) | 500 (every request)
//
// Prints "port N" once listening; on SIGTERM prints "requests N" and exits.
import http from 'node:http'

const mode = process.argv[2] ?? 'ok'
let requests = 0
const server = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    requests++
    let status = req.method === 'POST' ? 201 : 200
    let body = '{"message":"ok"}'
    if (mode === '500') {
      status = 500
      body = '{"error":"internal error (benchmark)"}'
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.keepAliveTimeout = 60000
server.listen(0, '127.0.0.1', () => console.log(`port ${server.address().port}`))
process.on('SIGTERM', () => {
  console.log(`requests ${requests}`)
  process.exit(0)
})
