#include "test.h"

#include <uv.h>

#include "util/err.h"

#define ERR_ROW_(sym, val, desc) {(val), #sym, (desc)},
static const struct {
    int code;
    const char *name, *desc;
} rows[] = {ERR_TABLE(ERR_ROW_)};
#undef ERR_ROW_

/* Every code is negative, distinct from every other code and from libuv's range, and named. */
TEST(err_codes_are_distinct_and_named)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ASSERT_LT(rows[i].code, -30000);
        ASSERT_STR_EQ(err_name(rows[i].code), rows[i].name);
        ASSERT_STR_EQ(err_str(rows[i].code), rows[i].desc);
        for (size_t k = 0; k < i; k++)
            if (rows[k].code == rows[i].code)
                TEST_FAIL_("%s and %s share %d", rows[k].name, rows[i].name, rows[i].code);
    }
}

TEST(err_libuv_codes_pass_through)
{
    static const struct {
        int code;
        const char *name, *desc;
    } cases[] = {
        {0, "OK", "ok"},
        {UV_ETIMEDOUT, "ETIMEDOUT", "timed out"},
        {UV_ECONNREFUSED, "ECONNREFUSED", "connection refused"},
        {UV_ECANCELED, "ECANCELED", "canceled"},
        {UV_ENOMEM, "ENOMEM", NULL},
        {DB_EBUSY, "DB_EBUSY", "database locked"},
        {NWC_ETIMEOUT, "NWC_ETIMEOUT", "no answer from the wallet in time"},
        {FETCH_ETOOBIG, "FETCH_ETOOBIG", "response too large"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASSERT_STR_EQ(err_name(cases[i].code), cases[i].name);
        ASSERT_STR_EQ(err_str(cases[i].code),
                      cases[i].desc ? cases[i].desc : uv_strerror(cases[i].code));
    }
    /* An unknown code still gets a name (libuv's "Unknown system error"), never NULL. */
    ASSERT_NOT_NULL(err_name(-29999));
    ASSERT_NOT_NULL(err_str(-29999));
}
