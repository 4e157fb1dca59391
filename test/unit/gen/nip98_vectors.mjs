// Generates test/unit/nip98_vectors.h: NIP-98 Authorization header values made by nostr-tools
// (the oracle: our C code never checks tokens it signed itself). Rerun after changing a case:
//   node test/unit/gen/nip98_vectors.mjs > test/unit/nip98_vectors.h
// Every token is signed at CREATED with SK; the C test passes `now` explicitly.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../../package.json'))
const { finalizeEvent, getPublicKey } = require('nostr-tools/pure')
const nip98 = require('nostr-tools/nip98')

const SK = Uint8Array.from(Buffer.from('7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a', 'hex'))
const CREATED = 1700000000
const ORIGIN = 'http://127.0.0.1:3000'

const realNow = Date.now
async function getToken (url, method, body) {
  Date.now = () => CREATED * 1000
  const origGetTime = Date.prototype.getTime
  Date.prototype.getTime = function () { return CREATED * 1000 } // getToken uses new Date().getTime()
  try {
    return await nip98.getToken(url, method, (e) => finalizeEvent(e, SK), true, body)
  } finally {
    Date.now = realNow
    Date.prototype.getTime = origGetTime
  }
}

function raw (tags, { kind = 27235, createdAt = CREATED, mutate, content = '' } = {}) {
  const ev = finalizeEvent({ kind, created_at: createdAt, tags, content }, SK)
  if (mutate) mutate(ev)
  return 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64')
}

const body = { subdomain: 'my-relay', plan: 'free' }
const bodyText = JSON.stringify(body)
// [name, header, method, target, body, now, public_url (or ""), expect ok]
const cases = []
const add = (name, header, method, target, bodyStr, now, pub, ok) =>
  cases.push({ name, header, method, target, body: bodyStr, now, pub, ok })

add('get_token_get', await getToken(ORIGIN + '/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 1)
add('get_token_lowercase_method', await getToken(ORIGIN + '/identity', 'get'), 'GET', '/identity', '', CREATED, '', 1)
add('get_token_post_payload', await getToken(ORIGIN + '/relays', 'POST', body), 'POST', '/relays', bodyText, CREATED, '', 1)
add('get_token_with_query', await getToken(ORIGIN + '/relays?limit=5', 'GET'), 'GET', '/relays?limit=5', '', CREATED, '', 1)
add('get_token_path_only_for_query', await getToken(ORIGIN + '/relays', 'GET'), 'GET', '/relays?limit=5', '', CREATED, '', 1)
add('get_token_no_port', await getToken('http://127.0.0.1/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 1)
add('get_token_https', await getToken('https://127.0.0.1:3000/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 1)
add('session_root_no_slash', raw([['u', ORIGIN]]), 'GET', '/relays', '', CREATED, '', 1)
add('session_root_slash', raw([['u', ORIGIN + '/']]), 'PUT', '/relays/abc', bodyText, CREATED, '', 1)
add('session_any_post', raw([['u', ORIGIN + '/']]), 'POST', '/tenants', '', CREATED + 599, '', 1)
add('age_exactly_max', await getToken(ORIGIN + '/identity', 'GET'), 'GET', '/identity', '', CREATED + 600, '', 1)
add('age_future_max', await getToken(ORIGIN + '/identity', 'GET'), 'GET', '/identity', '', CREATED - 600, '', 1)
add('public_url', await getToken('https://api.example.com/identity', 'GET'), 'GET', '/identity', '', CREATED, 'https://api.example.com', 1)
add('public_url_session', raw([['u', 'https://api.example.com/']]), 'GET', '/identity', '', CREATED, 'https://api.example.com', 1)
{
  const t = await getToken(ORIGIN + '/identity', 'GET')
  add('unpadded_base64', t.replace(/=+$/, ''), 'GET', '/identity', '', CREATED, '', 1)
  add('scheme_lowercase', t.replace(/^Nostr /, 'nostr '), 'GET', '/identity', '', CREATED, '', 1)
  add('scheme_extra_spaces', t.replace(/^Nostr /, 'Nostr   '), 'GET', '/identity', '', CREATED, '', 1)
  add('expired', t, 'GET', '/identity', '', CREATED + 601, '', 0)
  add('from_future', t, 'GET', '/identity', '', CREATED - 601, '', 0)
  add('wrong_path', t, 'GET', '/relays', '', CREATED, '', 0)
  add('wrong_method', t, 'POST', '/identity', '', CREATED, '', 0)
  add('bearer_scheme', t.replace(/^Nostr /, 'Bearer '), 'GET', '/identity', '', CREATED, '', 0)
  add('no_space_after_scheme', t.replace(/^Nostr /, 'Nostr'), 'GET', '/identity', '', CREATED, '', 0)
  add('public_url_but_host_named', t, 'GET', '/identity', '', CREATED, 'https://api.example.com', 0)
  const b64 = t.slice(6).replace(/=+$/, '')
  add('b64_length_4k_plus_1', 'Nostr ' + b64.slice(0, Math.floor(b64.length / 4) * 4 - 3), 'GET', '/identity', '', CREATED, '', 0)
  add('trailing_space', t + '  ', 'GET', '/identity', '', CREATED, '', 1)
  add('trailing_junk', t + ' junk', 'GET', '/identity', '', CREATED, '', 0)
  add('b64_inner_space', 'Nostr ' + b64.slice(0, 40) + ' ' + b64.slice(40), 'GET', '/identity', '', CREATED, '', 0)
}
add('empty_token', 'Nostr ', 'GET', '/identity', '', CREATED, '', 0)
add('not_base64', 'Nostr !!!!not-base64!!!!', 'GET', '/identity', '', CREATED, '', 0)
add('base64_not_json', 'Nostr ' + Buffer.from('hello world').toString('base64'), 'GET', '/identity', '', CREATED, '', 0)
add('too_large', 'Nostr ' + 'A'.repeat(8196), 'GET', '/identity', '', CREATED, '', 0)
add('kind_1', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], { kind: 1 }), 'GET', '/identity', '', CREATED, '', 0)
add('tampered_content', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], { mutate: (e) => { e.content = 'x' } }), 'GET', '/identity', '', CREATED, '', 0)
add('tampered_created_at', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], { mutate: (e) => { e.created_at += 1 } }), 'GET', '/identity', '', CREATED, '', 0)
add('bad_signature', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], {
  mutate: (e) => { e.sig = (e.sig[0] === '0' ? '1' : '0') + e.sig.slice(1) }
}), 'GET', '/identity', '', CREATED, '', 0)
add('other_pubkey_same_sig', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], {
  mutate: (e) => { e.pubkey = getPublicKey(Uint8Array.from(Buffer.from('11'.repeat(32), 'hex'))) }
}), 'GET', '/identity', '', CREATED, '', 0)
add('no_u_tag', raw([['method', 'GET']]), 'GET', '/identity', '', CREATED, '', 0)
add('relative_u', raw([['u', '/identity'], ['method', 'GET']]), 'GET', '/identity', '', CREATED, '', 0)
add('wrong_host', await getToken('http://evil.example:3000/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 0)
add('wrong_port', await getToken('http://127.0.0.1:3001/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 0)
add('userinfo_host', await getToken('http://127.0.0.1:3000@evil.example/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 0)
add('ws_scheme', await getToken('ws://127.0.0.1:3000/identity', 'GET'), 'GET', '/identity', '', CREATED, '', 0)
add('trailing_slash_non_root', await getToken(ORIGIN + '/identity/', 'GET'), 'GET', '/identity', '', CREATED, '', 0)
add('prefix_path', await getToken(ORIGIN + '/relays', 'GET'), 'GET', '/relays/abc', '', CREATED, '', 0)
add('other_query', await getToken(ORIGIN + '/relays?limit=6', 'GET'), 'GET', '/relays?limit=5', '', CREATED, '', 0)
add('payload_mismatch', await getToken(ORIGIN + '/relays', 'POST', body), 'POST', '/relays', JSON.stringify({ ...body, plan: 'basic' }), CREATED, '', 0)
add('payload_but_empty_body', await getToken(ORIGIN + '/relays', 'POST', body), 'POST', '/relays', '', CREATED, '', 0)
add('payload_reformatted_body', await getToken(ORIGIN + '/relays', 'POST', body), 'POST', '/relays', JSON.stringify(body, null, 1), CREATED, '', 0)
add('session_wrong_origin', raw([['u', 'http://127.0.0.1:3001/']]), 'GET', '/identity', '', CREATED, '', 0)
add('large_token_not_cached', raw([['u', ORIGIN + '/identity'], ['method', 'GET']], { content: 'x'.repeat(2000) }), 'GET', '/identity', '', CREATED, '', 1)
add('session_expired', raw([['u', ORIGIN]]), 'GET', '/identity', '', CREATED + 601, '', 0)

const c = (s) => JSON.stringify(s) // JSON string escaping is valid C for these ASCII strings
const out = []
out.push('/* Generated by test/unit/gen/nip98_vectors.mjs with nostr-tools; do not edit. */')
out.push('#define NIP98_VEC_CREATED ' + CREATED)
out.push('#define NIP98_VEC_PUBKEY ' + c(getPublicKey(SK)))
out.push('#define NIP98_VEC_ORIGIN ' + c(ORIGIN))
out.push('struct nip98_vec { const char *name, *header, *method, *target, *body; long long now; const char *public_url; int ok; };')
out.push('static const struct nip98_vec nip98_vecs[] = {')
for (const v of cases) {
  if (!/^[\x20-\x7e\n]*$/.test(v.header + v.body + v.target)) throw new Error('non-ASCII in ' + v.name)
  out.push(`    {${c(v.name)}, ${c(v.header)}, ${c(v.method)}, ${c(v.target)}, ${c(v.body)}, ${v.now}LL, ${c(v.pub)}, ${v.ok}},`)
}
out.push('};')
console.log(out.join('\n'))
