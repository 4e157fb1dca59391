// Cross-checks the C Nostr core (through build/tools/nostr_tool) against nostr-tools, both
// ways: what C signs/encrypts/wraps, nostr-tools verifies/decrypts/unwraps, and vice versa.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey, finalizeEvent, verifyEvent } from 'nostr-tools'
import { getEventHash } from 'nostr-tools/pure'
import * as nip04 from 'nostr-tools/nip04'
import * as nip17 from 'nostr-tools/nip17'
import * as nip44 from 'nostr-tools/nip44'
import * as nip59 from 'nostr-tools/nip59'
import * as nip98 from 'nostr-tools/nip98'
import { bytesToHex } from '@noble/hashes/utils.js'
import { tool, runTool } from './lib/tool.mjs'

const nt = (cmd) => tool('nostr_tool', cmd)
const keys = () => {
  const sk = generateSecretKey()
  return { sk, skHex: bytesToHex(sk), pk: getPublicKey(sk) }
}

const nasty = [
  '',
  'plain ascii',
  'quotes " and \\ backslash / slash',
  '\b\f\n\r\t and \u0001\u0002\u001f and DEL \u007f',
  'unicode é ñ 中文 العربية',
  'emoji 😀🦄👨‍👩‍👧 and U+2028 \u2028 U+2029 \u2029',
  '<script>alert("x")</script> &amp;',
  'x'.repeat(70000),
  '🦄'.repeat(5000) + '\u0003',
]

test('events signed in C verify in nostr-tools with the same id', () => {
  const a = keys()
  for (const content of nasty) {
    const tags = [['t', content.slice(0, 50)], ['p', a.pk, 'wss://r.example'], [], ['e', '\u0005"\\']]
    const { event_json: json } = nt({ op: 'sign', sk: a.skHex, kind: 1, created_at: 1700000000, tags, content })
    const ev = JSON.parse(json)
    assert.equal(ev.content, content)
    assert.deepEqual(ev.tags, tags)
    assert.equal(ev.pubkey, a.pk)
    assert.equal(ev.id, getEventHash(ev), `id for ${JSON.stringify(content.slice(0, 40))}`)
    assert.equal(verifyEvent({ ...ev }), true)
    // Our to_json is what JSON.stringify would write for the same field order.
    assert.equal(json, JSON.stringify(ev))
  }
})

test('events signed by nostr-tools verify in C; tampered ones do not', () => {
  const a = keys()
  for (const content of nasty) {
    const ev = finalizeEvent({ kind: 30023, created_at: 4102444800, tags: [['d', content.slice(0, 20)]], content }, a.sk)
    const r = nt({ op: 'verify', event_json: JSON.stringify(ev) })
    assert.equal(r.ok, true)
    assert.equal(r.id, ev.id)
    const bad = { ...ev, content: content + ' ' }
    assert.equal(nt({ op: 'verify', event_json: JSON.stringify(bad) }).ok, false)
    const badSig = { ...ev, sig: ev.sig.slice(0, 10) + (ev.sig[10] === '0' ? '1' : '0') + ev.sig.slice(11) }
    assert.equal(nt({ op: 'verify', event_json: JSON.stringify(badSig) }).ok, false)
  }
})

test('NIP-44 both ways', () => {
  const a = keys(); const b = keys()
  const ckB = nip44.getConversationKey(b.sk, a.pk)
  const ckA = nip44.getConversationKey(a.sk, b.pk)
  for (const text of ['a', 'hello NIP-44 😀', 'ctl \u0001\n"\\', 'y'.repeat(65535)]) {
    const { payload } = nt({ op: 'nip44_encrypt', sk: a.skHex, pk: b.pk, plaintext: text })
    assert.equal(nip44.decrypt(payload, ckB), text)
    const theirs = nip44.encrypt(text, ckA)
    assert.equal(nt({ op: 'nip44_decrypt', sk: b.skHex, pk: a.pk, payload: theirs }).plaintext, text)
  }
  // Wrong key and tampered payloads are refused by C.
  const theirs = nip44.encrypt('secret', ckA)
  assert.equal(runTool('nostr_tool', { op: 'nip44_decrypt', sk: keys().skHex, pk: a.pk, payload: theirs }).status, 1)
  const flipped = theirs.slice(0, 50) + (theirs[50] === 'A' ? 'B' : 'A') + theirs.slice(51)
  assert.equal(runTool('nostr_tool', { op: 'nip44_decrypt', sk: b.skHex, pk: a.pk, payload: flipped }).status, 1)
  // Plaintext over 65535 bytes is refused on send.
  assert.equal(runTool('nostr_tool', { op: 'nip44_encrypt', sk: a.skHex, pk: b.pk, plaintext: 'z'.repeat(65536) }).status, 1)
})

test('NIP-04 both ways', () => {
  const a = keys(); const b = keys()
  for (const text of ['x', 'legacy dm ✓', 'z'.repeat(800), '0123456789abcdef']) {
    const { payload } = nt({ op: 'nip04_encrypt', sk: a.skHex, pk: b.pk, plaintext: text })
    assert.match(payload, /^[A-Za-z0-9+/]+=*\?iv=[A-Za-z0-9+/]{22}==$/)
    assert.equal(nip04.decrypt(b.sk, a.pk, payload), text)
    const theirs = nip04.encrypt(a.sk, b.pk, text)
    assert.equal(nt({ op: 'nip04_decrypt', sk: b.skHex, pk: a.pk, payload: theirs }).plaintext, text)
  }
})

test('our NIP-17 gift wraps open in nostr-tools; the seal is signed by our key', () => {
  const a = keys(); const b = keys()
  const now = Math.floor(Date.now() / 1000)
  for (const text of ['Hola, que tal?', 'nasty \u0001 "q" \\ 😀\n', 'w'.repeat(30000)]) {
    const { wrap_json: json } = nt({ op: 'wrap_dm', sk: a.skHex, to: b.pk, text, now })
    const wrap = JSON.parse(json)
    assert.equal(wrap.kind, 1059)
    assert.equal(verifyEvent({ ...wrap }), true)
    assert.notEqual(wrap.pubkey, a.pk)
    assert.deepEqual(wrap.tags, [['p', b.pk]])
    assert.ok(wrap.created_at <= now && wrap.created_at >= now - 2 * 86400)
    const rumor = nip17.unwrapEvent(wrap, b.sk)
    assert.equal(rumor.content, text)
    assert.equal(rumor.kind, 14)
    assert.equal(rumor.pubkey, a.pk)
    assert.equal(rumor.id, getEventHash(rumor))
    assert.deepEqual(rumor.tags, [['p', b.pk]])
    // Open the outer layer by hand to check the seal itself.
    const seal = JSON.parse(nip44.decrypt(wrap.content, nip44.getConversationKey(b.sk, wrap.pubkey)))
    assert.equal(seal.kind, 13)
    assert.equal(seal.pubkey, a.pk)
    assert.deepEqual(seal.tags, [])
    assert.equal(verifyEvent(seal), true)
    assert.ok(seal.created_at <= now && seal.created_at >= now - 2 * 86400)
  }
})

test('nostr-tools gift wraps open in C', () => {
  const a = keys(); const b = keys()
  const dm = nip17.wrapEvent(a.sk, { publicKey: b.pk }, 'from nostr-tools 🦄 "x"', 'subj')
  const { rumor_json: rj } = nt({ op: 'unwrap', sk: b.skHex, wrap_json: JSON.stringify(dm) })
  const rumor = JSON.parse(rj)
  assert.equal(rumor.content, 'from nostr-tools 🦄 "x"')
  assert.equal(rumor.pubkey, a.pk)
  assert.equal(rumor.kind, 14)
  assert.equal(rumor.id, getEventHash(rumor))
  const w2 = nip59.wrapEvent({ kind: 1, content: 'one-shot', tags: [['t', 'x']] }, a.sk, b.pk)
  assert.equal(JSON.parse(nt({ op: 'unwrap', sk: b.skHex, wrap_json: JSON.stringify(w2) }).rumor_json).content, 'one-shot')
  // Not addressed to this key: refused.
  assert.equal(runTool('nostr_tool', { op: 'unwrap', sk: keys().skHex, wrap_json: JSON.stringify(dm) }).status, 1)
  // Impersonation: Mallory seals a rumor that claims Alice as author.
  const m = keys()
  const forged = nip59.createRumor({ kind: 14, content: 'forged', tags: [['p', b.pk]] }, m.sk)
  forged.pubkey = a.pk
  forged.id = getEventHash(forged)
  const fw = nip59.createWrap(nip59.createSeal(forged, m.sk, b.pk), b.pk)
  assert.equal(runTool('nostr_tool', { op: 'unwrap', sk: b.skHex, wrap_json: JSON.stringify(fw) }).status, 1)
})

test('a NIP-98 token from nostr-tools parses and verifies in C', async () => {
  const a = keys()
  const url = 'http://127.0.0.1:8080/api/v1/relays?x=1'
  const token = await nip98.getToken(url, 'POST', (e) => finalizeEvent(e, a.sk), true, { name: 'r1' })
  const r = nt({ op: 'nip98_parse', token })
  assert.equal(r.ok, true)
  assert.equal(r.kind, 27235)
  assert.equal(r.u, url)
  assert.equal(r.method, 'POST')
  const ev = JSON.parse(r.event_json)
  assert.equal(ev.pubkey, a.pk)
  assert.deepEqual(ev, await nip98.unpackEventFromToken(token))
  // Unpadded base64 (as in the NIP's own example) is accepted; a tampered event is not valid.
  assert.equal(nt({ op: 'nip98_parse', token: token.replace(/=+$/, '') }).ok, true)
  const tampered = { ...ev, created_at: ev.created_at + 1 }
  const t2 = 'Nostr ' + Buffer.from(JSON.stringify(tampered)).toString('base64')
  assert.equal(nt({ op: 'nip98_parse', token: t2 }).ok, false)
})
