/* NIP-47 messages, pure (no loop): the wallet's kind 13194 info, kind 23194 requests and
 * kind 23195 responses (PRODUCT.md §7). Thread-safe; nostr_init() must have run.
 * The relay side (subscribe, publish, timeouts) is src/billing/nwc.c. */
#ifndef CARAVEL_NWC_MSG_H
#define CARAVEL_NWC_MSG_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "nostr/event.h"
#include "nostr/nwc_uri.h"

#define NWC_KIND_INFO 13194
#define NWC_KIND_REQUEST 23194
#define NWC_KIND_RESPONSE 23195
#define NWC_KIND_NOTIFY_NIP04 23196   /* notification, NIP-04 (legacy) */
#define NWC_KIND_NOTIFY_NIP44 23197   /* notification, NIP-44 v2 */
#define NWC_MAX_PLAINTEXT (64 * 1024) /* a decrypted response larger than this is refused */
#define NWC_ERR_CODE_MAX 64
#define NWC_ERR_MSG_MAX 256

enum nwc_encryption { NWC_NIP04 = 0, NWC_NIP44 = 1 };

/* Parsed kind 13194 info event. */
struct nwc_info {
    enum nwc_encryption encryption; /* NIP-44 v2 when "nip44_v2" is in the encryption tag */
    int notifications;              /* a "notifications" tag lists payment_received */
};

/* Fills info from the wallet's info event (no encryption tag = NIP-04). Returns 0, or -1
 * if ev is not a kind 13194 event. */
int nwc_info_parse(const struct nostr_event *ev, struct nwc_info *info);

/* Builds and signs (with the URI secret) a kind 23194 request {"method","params"} to the
 * wallet: tags p = wallet, expiration = expiration, and ["encryption","nip44_v2"] when enc
 * is NWC_NIP44 (NIP-04 sends no tag: wallets treat a missing tag as NIP-04). params is
 * borrowed. out must be initialised (nostr_event_init); on success it holds the event.
 * Returns 0 or -1. */
int nwc_build_request(const struct nwc_uri *uri, enum nwc_encryption enc, const char *method,
                      const cJSON *params, int64_t now, int64_t expiration,
                      struct nostr_event *out);

/* The requests and answers of a client and its wallet reuse the client's public key and
 * their NIP-44 key, derived once per thread for the last few pairs. This wipes that memo
 * of the calling thread (the NWC client's nwc_free). */
void nwc_keys_forget(void);

/* A decrypted kind 23195 answer. */
struct nwc_response {
    cJSON *root;                       /* owned: the whole decrypted JSON */
    const cJSON *result;               /* borrowed from root: the result object, NULL on an error */
    char error_code[NWC_ERR_CODE_MAX]; /* the wallet's code verbatim ("" when no error) */
    char error_message[NWC_ERR_MSG_MAX];
};

void nwc_response_free(struct nwc_response *resp);
/* Decrypts ev (NIP-04 when the content has "?iv=", else NIP-44 v2: the wallet answers in
 * the scheme of the request) with the URI secret and the wallet's key, checks the author is
 * the wallet and result_type equals method. On success resp owns root: either error_code is
 * set (wallet error; its code kept verbatim, capped, message sanitised) or result is an
 * object. Returns 0, or -1 for anything malformed (resp left empty). */
int nwc_parse_response(const struct nwc_uri *uri, const struct nostr_event *ev, const char *method,
                       struct nwc_response *resp);

/* A decrypted kind 23196/23197 notification {"notification_type", "notification"}. */
struct nwc_notification {
    cJSON *root;      /* owned: the whole decrypted JSON */
    const char *type; /* borrowed from root, e.g. "payment_received" */
    const cJSON *tx;  /* borrowed from root: the transaction object */
};

/* Decrypts ev (kind 23196 or 23197, NIP-04 when the content has "?iv=", else NIP-44 v2)
 * with the URI secret, checks the author is the wallet and the body has a string
 * notification_type and an object notification. On success out owns root (free with
 * nwc_notification_free). Returns 0, or -1 for anything else (out left empty). */
int nwc_parse_notification(const struct nwc_uri *uri, const struct nostr_event *ev,
                           struct nwc_notification *out);
void nwc_notification_free(struct nwc_notification *n);

/* A lookup_invoice / make_invoice transaction object is settled when its state is
 * "settled"; without a state (older wallets), when settled_at is a positive number or a
 * non-empty preimage is present. 1 settled, 0 not. */
int nwc_tx_is_settled(const cJSON *tx);
/* A transaction's expires_at, or 0 when absent. */
int64_t nwc_tx_expires_at(const cJSON *tx);
/* Borrowed string field of tx, or NULL when absent or not a string. */
const char *nwc_tx_string(const cJSON *tx, const char *name);

#endif
