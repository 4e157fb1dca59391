/* One error space for the whole program. Every function that fails returns 0 or a negative
 * code: a libuv code (UV_E*, negative errno, passed through as it is) or one of the codes
 * below, each module in its own range so a number never means two things. err_name gives
 * the symbol ("DB_EBUSY", "ETIMEDOUT"), err_str a short English description ("database
 * locked"); log lines name the error with err_name. Adding a code is one row of ERR_TABLE.
 * Pure functions, any thread. */
#ifndef CARAVEL_ERR_H
#define CARAVEL_ERR_H

/* X(symbol, value, description) */
#define ERR_TABLE(X)                                                                               \
    /* db/: engine results mapped by db/ */                                                        \
    X(DB_EGENERIC, -30001, "database error")                                                       \
    X(DB_ECONSTRAINT, -30002, "constraint violated") /* UNIQUE/FOREIGN KEY/CHECK */                \
    X(DB_ENOTFOUND, -30003, "no such row")           /* work functions report "no such row" */     \
    X(DB_EQUEUEFULL, -30004, "too many database jobs queued") /* DB_MAX_QUEUED */                  \
    X(DB_ECLOSED, -30005, "database closed")                                                       \
    X(DB_EBUSY, -30006, "database locked")                       /* locked past busy_timeout */    \
    X(DB_EFULL, -30007, "disk or database full")                 /* SQLITE_FULL */                 \
    X(DB_EREADONLY, -30008, "database read-only")                /* SQLITE_READONLY */             \
    X(DB_EMOVED, -30009, "database file moved or deleted")       /* SQLITE_FCNTL_HAS_MOVED */      \
    X(DB_ECANCELED, -30010, "read dropped: nobody waits for it") /* db_read_for */                 \
    X(DB_ELEASE, -30011, "leader lease lost") /* db/lease.h: another instance took over */         \
    /* net/fetch: HTTP client */                                                                   \
    X(FETCH_ETOOBIG, -31001, "response too large") /* body over the request's cap */               \
    X(FETCH_EFAILED, -31002, "transfer failed")    /* detail logged at DEBUG */                    \
    X(FETCH_ECLOSED, -31003, "client closed")      /* fetch_start after fetch_close */             \
    /* net/tls */                                                                                  \
    X(TLS_AGAIN, -32001, "TLS wants more input or output") /* not an error: call again */          \
    X(TLS_EFAIL, -32002, "TLS failure")                    /* protocol or internal */              \
    X(TLS_EVERIFY, -32003, "certificate not accepted")     /* chain or hostname */                 \
    X(TLS_ECLOSED, -32004, "TLS peer closed")              /* close_notify or EOF */               \
    X(TLS_ETOOBIG, -32005, "TLS input buffer full")                                                \
    X(TLS_ECONFIG, -32006, "CA file unreadable or empty")                                          \
    /* net/ws: WebSocket client */                                                                 \
    X(WS_EURL, -33001, "not a ws:// or wss:// URL")     /* or too long */                          \
    X(WS_ESTATUS, -33002, "upgrade refused")            /* a status other than 101 */              \
    X(WS_EHANDSHAKE, -33003, "bad WebSocket handshake") /* Upgrade/Connection/Accept */            \
    X(WS_ETOOBIG, -33004, "message too large")      /* over max_message or the send queue cap */   \
    X(WS_ECLOSED, -33005, "connection closed")      /* by the peer, or lost */                     \
    X(WS_EPROTO, -33006, "WebSocket framing error") /* reported by wslay */                        \
    X(WS_ENOTLS, -33007, "wss:// without TLS configuration")                                       \
    /* billing/nwc: Nostr Wallet Connect client */                                                 \
    X(NWC_EWALLET, -34001, "the wallet answered with an error")  /* resp->error_code */            \
    X(NWC_ETIMEOUT, -34002, "no answer from the wallet in time") /* or no info/EOSE */             \
    X(NWC_EPUBLISH, -34003, "no relay accepted the request")                                       \
    X(NWC_EURI, -34004, "invalid NWC URI")                                                         \
    X(NWC_ECANCELED, -34005, "NWC client closed") /* nwc_free ran first */                         \
    X(NWC_EINTERNAL, -34006, "NWC internal error")

#define ERR_ENUM_(sym, val, desc) sym = (val),
enum caravel_error { ERR_TABLE(ERR_ENUM_) };
#undef ERR_ENUM_

/* "DB_EBUSY", "ETIMEDOUT" (libuv's name), "OK" for 0; never NULL. */
const char *err_name(int code);
/* "database locked", "timed out", "ok" for 0; never NULL. */
const char *err_str(int code);

#endif
