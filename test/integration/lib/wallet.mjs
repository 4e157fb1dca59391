// Real NIP-47 wallet services for the billing tests: @getalby/sdk 8.0.3 NWCWalletService
// answering over the test relay, on a shared fake Lightning "network" (in this process).
//
//   const ln = new FakeLightning({ clockFile })     // expiry follows the service's fake clock
//   const platform = await startWallet({ relayUrl, ln })            // NWC_URL (make/lookup)
//   const tenant = await startWallet({ relayUrl, ln, encryption: 'nip04' })  // pay_invoice
//   tenant.url                 nostr+walletconnect://... for PUT /tenants/:pk/billing
//   tenant.fail = 'INSUFFICIENT_BALANCE'   answer pay_invoice with that error code (null: pay)
//   tenant.hang = true         never answer pay_invoice (but still pay: an "unknown outcome")
//   ln.payments                Map bolt11 -> number of times it was paid (must never exceed 1)
//   ln.settle(bolt11)          the tenant paid it some other way (outside NWC)
//   ln.invoices                Map payment_hash -> transaction
//   wallet.requests            [{method, params, encryption}] received
//   await wallet.notify(tx)    publish a kind 23197 payment_received notification (NIP-44) of tx
//                              to the client key; with { notifications: true } the info event
//                              advertises payment_received
//   await wallet.close()
// encryption: 'nip44' (info event advertises "nip04 nip44_v2", as the sdk publishes it) or
// 'nip04' (our own info event without an encryption tag: the client must fall back to NIP-04).
import WebSocket from 'ws'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { generateSecretKey, getPublicKey, finalizeEvent } from 'nostr-tools/pure'
import { Relay } from 'nostr-tools/relay'
import * as nip44 from 'nostr-tools/nip44'

globalThis.WebSocket ??= WebSocket // the sdk needs a global WebSocket on Node 20
const { NWCWalletService, NWCWalletServiceKeyPair } = await import('@getalby/sdk/nwc')

const hex = (b) => Buffer.from(b).toString('hex')

export class FakeLightning {
  constructor({ clockFile } = {}) {
    this.clockFile = clockFile
    this.invoices = new Map()
    this.payments = new Map()
  }
  now() {
    if (this.clockFile) {
      try { return Number(readFileSync(this.clockFile, 'utf8').trim()) } catch { /* real time */ }
    }
    return Math.floor(Date.now() / 1000)
  }
  make(amount, description, expiry) {
    const preimage = randomBytes(32).toString('hex')
    const payment_hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')
    const tx = {
      type: 'incoming', state: 'pending', invoice: `lnbcrt${Math.floor(amount / 1000)}n1fake${payment_hash.slice(0, 24)}`,
      description, description_hash: '', preimage: '', payment_hash, amount, fees_paid: 0,
      created_at: this.now(), expires_at: this.now() + (expiry ?? 3600), settled_at: 0, _preimage: preimage,
    }
    this.invoices.set(payment_hash, tx)
    return tx
  }
  find(invoice) { return [...this.invoices.values()].find((t) => t.invoice === invoice) }
  expired(tx) { return tx.state === 'pending' && this.now() >= tx.expires_at }
  settle(invoice) {
    const tx = this.find(invoice)
    if (!tx || tx.state === 'settled' || this.expired(tx)) return null
    tx.state = 'settled'; tx.settled_at = this.now(); tx.preimage = tx._preimage
    this.payments.set(invoice, (this.payments.get(invoice) ?? 0) + 1)
    return tx
  }
  view(tx) {
    const { _preimage, ...pub } = tx
    return { ...pub, state: this.expired(tx) ? 'expired' : tx.state }
  }
}

export async function startWallet({ relayUrl, ln, encryption = 'nip44', notifications = false }) {
  const walletSecret = hex(generateSecretKey())
  const walletPubkey = getPublicKey(Buffer.from(walletSecret, 'hex'))
  const clientSecret = hex(generateSecretKey())
  const clientPubkey = getPublicKey(Buffer.from(clientSecret, 'hex'))
  const w = {
    url: `nostr+walletconnect://${walletPubkey}?relay=${encodeURIComponent(relayUrl)}&secret=${clientSecret}`,
    walletPubkey, clientPubkey, requests: [], fail: null, hang: false,
  }
  const methods = ['get_info', 'make_invoice', 'pay_invoice', 'lookup_invoice']
  const service = new NWCWalletService({ relayUrls: [relayUrl] })
  if (encryption === 'nip44') {
    await service.publishWalletServiceInfoEvent(walletSecret, notifications ? [...methods, 'notifications'] : methods, notifications ? ['payment_received'] : [])
  } else {
    const relay = await Relay.connect(relayUrl, { websocketImplementation: WebSocket })
    await relay.publish(finalizeEvent({ kind: 13194, created_at: Math.floor(Date.now() / 1000), tags: [], content: methods.join(' ') }, Buffer.from(walletSecret, 'hex')))
    relay.close()
  }
  const note = (method, params) => w.requests.push({ method, params })
  const unsub = await service.subscribe(new NWCWalletServiceKeyPair(walletSecret, clientPubkey), {
    async makeInvoice(p) { note('make_invoice', p); return { result: ln.view(ln.make(p.amount, p.description, p.expiry)), error: undefined } },
    async lookupInvoice(p) {
      note('lookup_invoice', p)
      const tx = p.payment_hash ? ln.invoices.get(p.payment_hash) : ln.find(p.invoice)
      if (!tx) return { result: undefined, error: { code: 'NOT_FOUND', message: 'invoice not found' } }
      return { result: ln.view(tx), error: undefined }
    },
    async payInvoice(p) {
      note('pay_invoice', p)
      if (w.fail) return { result: undefined, error: { code: w.fail, message: 'test wallet refuses' } }
      const tx = ln.settle(p.invoice)
      if (w.hang) return new Promise(() => {}) // paid, but the answer never comes
      if (!tx) return { result: undefined, error: { code: 'PAYMENT_FAILED', message: 'unknown, expired or already paid invoice' } }
      return { result: { preimage: tx.preimage, fees_paid: 0 }, error: undefined }
    },
  })
  await new Promise((r) => setTimeout(r, 300)) // the REQ must be live (23194 is ephemeral)
  w.notify = async (tx) => {
    const body = JSON.stringify({ notification_type: 'payment_received', notification: ln.view(tx) })
    const ck = nip44.getConversationKey(Buffer.from(walletSecret, 'hex'), clientPubkey)
    const ev = finalizeEvent({ kind: 23197, created_at: Math.floor(Date.now() / 1000), tags: [['p', clientPubkey]], content: nip44.encrypt(body, ck) }, Buffer.from(walletSecret, 'hex'))
    const relay = await Relay.connect(relayUrl, { websocketImplementation: WebSocket })
    await relay.publish(ev)
    relay.close()
  }
  // Let answers in flight finish publishing first: the sdk rejects them on close otherwise.
  w.close = async () => { unsub(); await new Promise((r) => setTimeout(r, 200)); service.close() }
  return w
}
