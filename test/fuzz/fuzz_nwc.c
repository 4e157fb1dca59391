/* libFuzzer target: what a Nostr Wallet Connect wallet (or a tenant) can send us
 * (src/nostr/nip47.c, src/nostr/nwc_uri.c). The first byte picks what the rest is:
 *   0  the plaintext of a kind 23195 pay_invoice answer, NIP-44 encrypted by the wallet
 *   1  the same, NIP-04 encrypted
 *   2  the plaintext of a kind 23197 notification (NIP-44), then the tx helpers billing uses
 *   3  a connection URI as a tenant would PUT it (PUT /tenants/:pubkey/billing)
 * Encryption is done here with fixed keys so the fuzzer reaches the JSON handling of hostile
 * plaintext instead of stopping at the MAC. Invariants: a parsed answer is either an error
 * with a code or a result object, never both; a refused URI has a reason. */
// FUZZ_MAX_LEN: 70000
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip04.h"
#include "nostr/nip44.h"
#include "nostr/nwc_uri.h"
#include "nostr/nip47.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nostr_keypair wallet, client;
static struct nwc_uri uri;
static uint8_t conv[32];

static int setup(void)
{
    uint8_t wsk[32], csk[32];
    char w_hex[65], c_hex[65], s[300];
    memset(wsk, 0x11, 32);
    memset(csk, 0x22, 32);
    if (nostr_init() != 0 || nostr_keypair_from_seckey(&wallet, wsk) != 0 ||
        nostr_keypair_from_seckey(&client, csk) != 0)
        return -1;
    hex_encode(wallet.pubkey, 32, w_hex);
    hex_encode(client.seckey, 32, c_hex);
    snprintf(s, sizeof(s), "nostr+walletconnect://%s?relay=wss%%3A%%2F%%2Fr.test&secret=%s", w_hex,
             c_hex);
    if (nwc_uri_parse(s, &uri, NULL) != 0)
        return -1;
    return nip44_conversation_key(wallet.seckey, client.pubkey, conv);
}

/* The wallet's event of kind carrying plaintext, encrypted as NIP-44 or NIP-04. */
static int wallet_event(int kind, int nip04, const char *plain, size_t n, struct nostr_event *ev)
{
    char *content = NULL;
    int rc = nip04 ? nip04_encrypt(wallet.seckey, client.pubkey, plain, n, &content)
                   : nip44_encrypt(conv, plain, n, NULL, &content);
    if (rc != 0)
        return -1;
    ev->kind = kind;
    memcpy(ev->pubkey, wallet.pubkey, 32);
    nostr_event_set_content(ev, content, strlen(content));
    nostr_event_add_tag2(ev, "e",
                         "0000000000000000000000000000000000000000000000000000000000000001");
    free(content);
    return 0;
}

static void answer(int nip04, const char *plain, size_t n)
{
    struct nostr_event ev;
    struct nwc_response resp;
    nostr_event_init(&ev);
    if (wallet_event(NWC_KIND_RESPONSE, nip04, plain, n, &ev) == 0 &&
        nwc_parse_response(&uri, &ev, "pay_invoice", &resp) == 0) {
        int is_error = resp.error_code[0] != '\0';
        if (is_error == (resp.result != NULL) || strlen(resp.error_code) >= NWC_ERR_CODE_MAX ||
            strlen(resp.error_message) >= NWC_ERR_MSG_MAX)
            abort();
        if (resp.result)
            (void)nwc_tx_string(resp.result, "preimage");
        nwc_response_free(&resp);
    }
    nostr_event_free(&ev);
}

static void notification(const char *plain, size_t n)
{
    struct nostr_event ev;
    struct nwc_notification note;
    nostr_event_init(&ev);
    if (wallet_event(NWC_KIND_NOTIFY_NIP44, 0, plain, n, &ev) == 0 &&
        nwc_parse_notification(&uri, &ev, &note) == 0) {
        if (!note.type || !note.tx)
            abort();
        (void)nwc_tx_is_settled(note.tx);
        (void)nwc_tx_expires_at(note.tx);
        (void)nwc_tx_string(note.tx, "payment_hash");
        nwc_notification_free(&note);
    }
    nostr_event_free(&ev);
}

static void connection_uri(const char *s)
{
    struct nwc_uri u;
    const char *err = NULL;
    if (nwc_uri_parse(s, &u, &err) == 0) {
        if (err || u.n_relays == 0 || u.n_relays > NWC_URI_MAX_RELAYS)
            abort();
        nwc_uri_free(&u);
    } else if (!err || !err[0]) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    if (ready < 0)
        ready = setup() == 0;
    if (!ready)
        abort();
    if (size < 2 || size - 1 > NIP44_MAX_PLAINTEXT)
        return 0;
    char *text = malloc(size);
    if (!text)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0:
        answer(0, text, size - 1);
        break;
    case 1:
        answer(1, text, size - 1);
        break;
    case 2:
        notification(text, size - 1);
        break;
    default:
        connection_uri(text);
    }
    free(text);
    return 0;
}
