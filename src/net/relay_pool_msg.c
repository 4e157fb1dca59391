/* Relay messages, NIP-42 and the REQ/EVENT sending side of the relay pool (see
 * relay_pool.h, relay_pool_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "net/relay_pool.h"
#include "net/relay_pool_int.h"
#include "nostr/hex.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

/* ---- NIP-42 ---- */

static struct identity *identity_for(struct conn *c, const uint8_t pubkey[32], int create)
{
    for (size_t i = 0; i < c->n_ids; i++)
        if (memcmp(c->ids[i].pubkey, pubkey, 32) == 0)
            return &c->ids[i];
    if (!create || c->n_ids == MAX_IDENTITIES)
        return NULL;
    struct identity *id = &c->ids[c->n_ids++];
    memset(id, 0, sizeof *id);
    memcpy(id->pubkey, pubkey, 32);
    return id;
}

static void send_auth(struct conn *c, const struct nostr_keypair *kp)
{
    struct identity *id = identity_for(c, kp->pubkey, 1);
    struct nostr_event ev;
    if (!id || !c->challenge || !c->open || id->state == A_SENT || id->state == A_OK)
        return;
    nostr_event_init(&ev);
    ev.kind = 22242;
    ev.created_at = clock_now();
    nostr_event_add_tag2(&ev, "relay", c->url);
    nostr_event_add_tag2(&ev, "challenge", c->challenge);
    if (nostr_event_sign(&ev, kp) == 0) {
        char *json = nostr_event_to_json(&ev, 1);
        struct buf m;
        buf_init(&m, strlen(json) + 16);
        buf_printf(&m, "[\"AUTH\",%s]", json);
        hex_encode(ev.id, 32, id->event_id);
        id->state = A_SENT;
        rp_conn_send(c, m.data);
        buf_free(&m);
        free(json);
    }
    nostr_event_free(&ev);
}

/* Every identity with work on c authenticates (new challenge, or a retry). */
static void auth_all(struct conn *c)
{
    LIST_FOREACH_ENTRY (struct relay_sub, s, &c->pool->subs, node)
        for (size_t i = 0; i < s->n; i++)
            if (s->t[i].conn == c && s->auth)
                send_auth(c, s->auth);
    LIST_FOREACH_ENTRY (struct pub, p, &c->pool->pubs, node)
        for (size_t i = 0; i < p->n; i++)
            if (p->t[i].conn == c && p->auth && p->t[i].state < T_OK)
                send_auth(c, p->auth);
}

/* ---- sending work ---- */

static void sub_send_req(struct relay_sub *s, struct target *t)
{
    struct buf m;
    buf_init(&m, strlen(s->filters) + 64);
    buf_printf(&m, "[\"REQ\",\"%s\",%s]", s->id, s->filters);
    rp_conn_send(t->conn, m.data);
    buf_free(&m);
    t->state = T_SENT;
    t->since = clock_mono_ms();
}

void rp_conn_send_work(struct conn *c)
{
    LIST_FOREACH_ENTRY (struct relay_sub, s, &c->pool->subs, node)
        for (size_t i = 0; i < s->n; i++)
            if (s->t[i].conn == c && s->t[i].state == T_PENDING)
                sub_send_req(s, &s->t[i]);
    LIST_FOREACH_ENTRY (struct pub, p, &c->pool->pubs, node)
        for (size_t i = 0; i < p->n; i++)
            if (p->t[i].conn == c && p->t[i].state == T_PENDING) {
                rp_conn_send(c, p->msg);
                p->t[i].state = T_SENT;
            }
}

/* Targets waiting for an identity's AUTH: resend once it succeeded, give up if refused. */
static void resume_after_auth(struct conn *c, const uint8_t pubkey[32], int ok)
{
    LIST_FOREACH_ENTRY (struct relay_sub, s, &c->pool->subs, node)
        for (size_t i = 0; i < s->n; i++) {
            struct target *t = &s->t[i];
            if (t->conn != c || t->state != T_WAIT_AUTH || memcmp(s->auth->pubkey, pubkey, 32))
                continue;
            if (ok)
                sub_send_req(s, t);
            else
                t->state = T_CLOSED, t->done = 1;
        }
    LIST_FOREACH_ENTRY (struct pub, p, &c->pool->pubs, node)
        for (size_t i = 0; i < p->n; i++) {
            struct target *t = &p->t[i];
            if (t->conn != c || t->state != T_WAIT_AUTH || memcmp(p->auth->pubkey, pubkey, 32))
                continue;
            if (ok) {
                rp_conn_send(c, p->msg);
                t->state = T_SENT;
            } else {
                t->state = T_FAILED;
                free(p->last_error);
                p->last_error = xstrdup("auth-required: authentication refused");
            }
        }
}

/* "auth-required:" on a target: authenticate and retry once. Returns 1 when retrying. */
static int retry_with_auth(struct conn *c, struct target *t, const struct nostr_keypair *kp,
                           const char *msg)
{
    if (!kp || t->auth_retried || strncmp(msg, "auth-required:", 14) != 0)
        return 0;
    struct identity *id = identity_for(c, kp->pubkey, 1);
    if (!id)
        return 0;
    t->auth_retried = 1;
    t->state = T_WAIT_AUTH;
    if (id->state == A_OK) {
        /* authenticated meanwhile: the relay saw the request before our AUTH */
        resume_after_auth(c, kp->pubkey, 1);
    } else if (id->state != A_SENT) {
        id->state = A_NONE;
        send_auth(c, kp); /* no challenge yet: it goes out when one arrives */
    }
    return 1;
}

/* ---- relay messages ---- */

static struct relay_sub *sub_by_id(struct relay_pool *pool, const char *id)
{
    LIST_FOREACH_ENTRY (struct relay_sub, s, &pool->subs, node)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

/* 1 if this event was delivered recently (another relay of the same subscription). */
static int seen_before(struct relay_sub *s, const uint8_t id[32])
{
    for (size_t i = 0; i < MIN(s->n_seen, (size_t)SEEN_IDS); i++)
        if (memcmp(s->seen[i], id, 8) == 0)
            return 1;
    memcpy(s->seen[s->n_seen++ % SEEN_IDS], id, 8);
    return 0;
}

static void on_relay_event(struct conn *c, const cJSON *msg)
{
    const char *sid = cJSON_GetStringValue(cJSON_GetArrayItem(msg, 1));
    struct relay_sub *s = sid ? sub_by_id(c->pool, sid) : NULL;
    struct nostr_event ev;
    if (!s || !rp_target_on(s->t, s->n, c))
        return;
    nostr_event_init(&ev);
    if (nostr_event_from_cjson(&ev, cJSON_GetArrayItem(msg, 2)) != 0 ||
        nostr_event_verify(&ev) != 0) {
        LOG_DEBUG("relay %s: dropped an invalid event", c->url);
    } else if (s->on_event && !seen_before(s, ev.id)) {
        s->in_cb++;
        s->on_event(&ev, c->url, s->arg);
        rp_sub_call_done(s);
    }
    nostr_event_free(&ev);
}

static void on_relay_ok(struct conn *c, const char *id, int accepted, const char *text)
{
    for (size_t i = 0; i < c->n_ids; i++) {
        struct identity *ident = &c->ids[i];
        if (ident->state != A_SENT || strcmp(ident->event_id, id) != 0)
            continue;
        ident->state = accepted ? A_OK : A_FAILED;
        if (!accepted)
            LOG_WARN("relay %s: AUTH refused: %.*s", c->url, MAX_RELAY_STRING, text);
        resume_after_auth(c, ident->pubkey, accepted);
        return;
    }
    LIST_FOREACH_ENTRY (struct pub, p, &c->pool->pubs, node) {
        struct target *t = strcmp(p->id, id) == 0 ? rp_target_on(p->t, p->n, c) : NULL;
        if (!t || (t->state != T_SENT && t->state != T_WAIT_AUTH))
            continue;
        if (accepted) {
            t->state = T_OK;
        } else if (!retry_with_auth(c, t, p->auth, text)) {
            t->state = T_FAILED;
            free(p->last_error);
            p->last_error = rp_capped_dup(text);
        }
    }
}

static void on_relay_closed(struct conn *c, const char *sid, const char *text)
{
    struct relay_sub *s = sub_by_id(c->pool, sid);
    struct target *t = s ? rp_target_on(s->t, s->n, c) : NULL;
    if (!t || t->state == T_CLOSED)
        return;
    if (retry_with_auth(c, t, s->auth, text))
        return;
    LOG_DEBUG("relay %s: subscription closed: %.*s", c->url, MAX_RELAY_STRING, text);
    t->state = T_CLOSED;
    t->done = 1;
}

static void on_relay_auth(struct conn *c, const char *challenge)
{
    free(c->challenge);
    c->challenge = rp_capped_dup(challenge);
    /* A new challenge replaces the old one: earlier authentications no longer count. */
    for (size_t i = 0; i < c->n_ids; i++)
        c->ids[i].state = A_NONE;
    auth_all(c);
}

void rp_handle_message(struct conn *c, const char *data, size_t len)
{
    cJSON *msg = cJSON_ParseWithLength(data, len);
    const char *type = cJSON_GetStringValue(cJSON_GetArrayItem(msg, 0));
    const char *a1 = cJSON_GetStringValue(cJSON_GetArrayItem(msg, 1));
    const char *a2 = cJSON_GetStringValue(cJSON_GetArrayItem(msg, 2));
    const char *a3 = cJSON_GetStringValue(cJSON_GetArrayItem(msg, 3));
    if (!cJSON_IsArray(msg) || !type || !a1) {
        LOG_DEBUG("relay %s: unexpected message", c->url);
    } else if (strcmp(type, "EVENT") == 0) {
        on_relay_event(c, msg);
    } else if (strcmp(type, "OK") == 0) {
        on_relay_ok(c, a1, cJSON_IsTrue(cJSON_GetArrayItem(msg, 2)), a3 ? a3 : "");
    } else if (strcmp(type, "EOSE") == 0) {
        struct relay_sub *s = sub_by_id(c->pool, a1);
        struct target *t = s ? rp_target_on(s->t, s->n, c) : NULL;
        if (t)
            t->done = 1;
    } else if (strcmp(type, "CLOSED") == 0) {
        on_relay_closed(c, a1, a2 ? a2 : "");
    } else if (strcmp(type, "NOTICE") == 0) {
        LOG_DEBUG("relay %s: notice: %.*s", c->url, MAX_RELAY_STRING, a1);
    } else if (strcmp(type, "AUTH") == 0) {
        on_relay_auth(c, a1);
    }
    cJSON_Delete(msg);
    rp_finish_pubs(c->pool);
    rp_fire_eoses(c->pool);
}
