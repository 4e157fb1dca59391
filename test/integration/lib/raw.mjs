// Raw TCP clients for hostile-client tests: send exactly the bytes given, read what comes back.
//   const c = await rawConnect(port); c.write('GET / HTTP/1.1\r\n...'); const r = await c.response()
import net from 'node:net'

// from: the local address to connect from (any of 127.0.0.0/8 works on Linux loopback).
export function rawConnect (port, host = '127.0.0.1', from) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host, ...(from ? { localAddress: from } : {}) })
    let data = Buffer.alloc(0)
    let closed = false
    const waiters = []
    const wake = () => { for (const w of waiters.splice(0)) w() }
    sock.on('data', (d) => { data = Buffer.concat([data, d]); wake() })
    sock.on('close', () => { closed = true; wake() })
    sock.on('error', () => {}) // a reset shows as close
    sock.once('connect', () => {
      const c = {
        sock,
        get closed () { return closed },
        get data () { return data },
        write: (s) => new Promise((resolve) => {
          if (closed || sock.destroyed) return resolve(false)
          sock.write(s, (err) => resolve(!err))
        }),
        // The first complete response (head + Content-Length body): { status, head, body },
        // or null when the connection closes first or timeoutMs passes.
        response: (timeoutMs = 10000) => new Promise((resolve) => {
          const t = setTimeout(() => resolve(null), timeoutMs)
          const check = () => {
            const text = data.toString('latin1')
            const end = text.indexOf('\r\n\r\n')
            if (end >= 0) {
              const head = text.slice(0, end)
              const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
              const len = m ? Number(m[1]) : 0
              if (data.length >= end + 4 + len) {
                clearTimeout(t)
                data = data.subarray(end + 4 + len)
                return resolve({ status: Number(head.slice(9, 12)), head, body: text.slice(end + 4, end + 4 + len) })
              }
            }
            if (closed) { clearTimeout(t); return resolve(null) }
            waiters.push(check)
          }
          check()
        }),
        // Resolves true once the server closed the connection, false after timeoutMs.
        waitClose: (timeoutMs = 10000) => new Promise((resolve) => {
          const t = setTimeout(() => resolve(false), timeoutMs)
          const check = () => { if (closed) { clearTimeout(t); resolve(true) } else waiters.push(check) }
          check()
        }),
        destroy: () => sock.destroy()
      }
      resolve(c)
    })
    sock.once('error', reject)
  })
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
