#include "util/err.h"

#include <stdio.h>

#include <uv.h>

struct err_row {
    int code;
    const char *name, *desc;
};

#define ERR_ROW_(sym, val, desc) {(val), #sym, (desc)},
static const struct err_row rows[] = {ERR_TABLE(ERR_ROW_)};
#undef ERR_ROW_

/* libuv codes whose own text reads badly in a relay's sync error or a log line. */
static const struct err_row uv_rows[] = {
    {UV_ETIMEDOUT, "ETIMEDOUT", "timed out"},
    {UV_ECONNREFUSED, "ECONNREFUSED", "connection refused"},
    {UV_EAI_NONAME, "EAI_NONAME", "host not found"},
    {UV_ECONNRESET, "ECONNRESET", "connection closed before the response was complete"},
    {UV_EPROTONOSUPPORT, "EPROTONOSUPPORT", "unsupported URL scheme"},
    {UV_ECANCELED, "ECANCELED", "canceled"},
};

static const struct err_row *find(int code)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (rows[i].code == code)
            return &rows[i];
    for (size_t i = 0; i < sizeof(uv_rows) / sizeof(uv_rows[0]); i++)
        if (uv_rows[i].code == code)
            return &uv_rows[i];
    return NULL;
}

const char *err_name(int code)
{
    static _Thread_local char buf[64];
    const struct err_row *r = find(code);
    if (code == 0)
        return "OK";
    if (r)
        return r->name;
    /* uv_err_name_r, unlike uv_err_name, does not allocate for an unknown code. */
    return uv_err_name_r(code, buf, sizeof(buf));
}

const char *err_str(int code)
{
    static _Thread_local char buf[128];
    const struct err_row *r = find(code);
    if (code == 0)
        return "ok";
    if (r)
        return r->desc;
    return uv_strerror_r(code, buf, sizeof(buf));
}
