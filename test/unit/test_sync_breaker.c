/* The sync worker's circuit breaker (sync/breaker.c): table-driven event sequences on an
 * injected clock (each step gives the time in ms). */
#include "test.h"

#include "sync/breaker.h"
#include "util/util.h"

/* 'a' admit, expect `want` (enum breaker_admit); 'o' outage answer from relay `relay`
 * (probe if `probe`), expect `want` = 1 when it opens; 'k' a non-outage answer; 'x' the probe
 * ended without an answer. After each step: state `state` (-1: not checked) and, when open,
 * wait_ms `wait` (-1: not checked). */
struct step {
    char op;
    uint64_t t;
    int relay, probe, want, state;
    int64_t wait;
};

#define A(t, want, st)                                                                             \
    {                                                                                              \
        'a', t, 0, 0, want, st, -1                                                                 \
    }
#define O(t, relay, probe, opened, st, wait)                                                       \
    {                                                                                              \
        'o', t, relay, probe, opened, st, wait                                                     \
    }
#define K(t, relay, probe)                                                                         \
    {                                                                                              \
        'k', t, relay, probe, 0, BREAKER_CLOSED, 0                                                 \
    }
#define X(t)                                                                                       \
    {                                                                                              \
        'x', t, 0, 0, 0, -1, -1                                                                    \
    }

/* threshold 3, window 100 ms doubling up to 400 ms */
static const struct {
    const char *name;
    struct step s[16];
} cases[] = {
    {"closed admits", {A(0, BREAKER_GO, BREAKER_CLOSED)}},
    {"three distinct failing relays open it for the base window",
     {O(0, 1, 0, 0, BREAKER_CLOSED, 0), O(1, 2, 0, 0, BREAKER_CLOSED, 0),
      O(2, 3, 0, 1, BREAKER_OPEN, 100), A(50, BREAKER_WAIT, BREAKER_OPEN)}},
    {"the same relay failing again does not count twice",
     {O(0, 1, 0, 0, BREAKER_CLOSED, 0), O(1, 1, 0, 0, BREAKER_CLOSED, 0),
      O(2, 1, 0, 0, BREAKER_CLOSED, 0), O(3, 2, 0, 0, BREAKER_CLOSED, 0),
      A(4, BREAKER_GO, BREAKER_CLOSED)}},
    {"a success in between ends the streak",
     {O(0, 1, 0, 0, BREAKER_CLOSED, 0), O(1, 2, 0, 0, BREAKER_CLOSED, 0), K(2, 4, 0),
      O(3, 3, 0, 0, BREAKER_CLOSED, 0), O(4, 1, 0, 0, BREAKER_CLOSED, 0),
      O(5, 2, 0, 1, BREAKER_OPEN, 100)}},
    {"after the window one probe goes, a second waits",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, BREAKER_OPEN, 100),
      A(99, BREAKER_WAIT, BREAKER_OPEN), A(100, BREAKER_PROBE, BREAKER_HALF_OPEN),
      A(101, BREAKER_WAIT, BREAKER_HALF_OPEN)}},
    {"failed probes double the window up to the cap",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, BREAKER_OPEN, 100),
      A(100, BREAKER_PROBE, -1), O(110, 1, 1, 1, BREAKER_OPEN, 200), A(310, BREAKER_PROBE, -1),
      O(310, 2, 1, 1, BREAKER_OPEN, 400), A(710, BREAKER_PROBE, -1),
      O(710, 3, 1, 1, BREAKER_OPEN, 400)}},
    {"a probe that succeeds closes it and resets the window",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, -1, -1),
      A(100, BREAKER_PROBE, -1), O(110, 1, 1, 1, BREAKER_OPEN, 200), A(310, BREAKER_PROBE, -1),
      K(320, 2, 1), A(321, BREAKER_GO, BREAKER_CLOSED), O(330, 1, 0, 0, -1, -1),
      O(330, 2, 0, 0, -1, -1), O(330, 3, 0, 1, BREAKER_OPEN, 100)}},
    {"an abandoned probe lets the next one go",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, -1, -1),
      A(100, BREAKER_PROBE, -1), A(100, BREAKER_WAIT, -1), X(105),
      A(105, BREAKER_PROBE, BREAKER_HALF_OPEN)}},
    {"late outage answers of requests sent before it opened change nothing",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, -1, -1),
      O(10, 4, 0, 0, BREAKER_OPEN, 90), O(20, 5, 0, 0, BREAKER_OPEN, 80)}},
    {"a late success of a request sent before it opened closes it",
     {O(0, 1, 0, 0, -1, -1), O(0, 2, 0, 0, -1, -1), O(0, 3, 0, 1, -1, -1), K(10, 4, 0),
      A(11, BREAKER_GO, BREAKER_CLOSED)}},
};

TEST(breaker_table)
{
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct breaker b;
        uint64_t marks[8] = {0};
        breaker_init(&b, 3, 100, 400);
        for (size_t i = 0; i < ARRAY_SIZE(cases[c].s) && cases[c].s[i].op; i++) {
            const struct step *s = &cases[c].s[i];
            int got = 0;
            if (s->op == 'a')
                got = (int)breaker_admit(&b, s->t);
            else if (s->op == 'o' || s->op == 'k')
                got = breaker_observe(&b, s->t, s->op == 'o', s->probe, &marks[s->relay]);
            else
                breaker_probe_abandoned(&b);
            if (got != s->want)
                TEST_FAIL_("%s: step %zu ('%c') gave %d, want %d", cases[c].name, i, s->op, got,
                           s->want);
            if (s->state >= 0 && (int)b.state != s->state)
                TEST_FAIL_("%s: step %zu: state %d, want %d", cases[c].name, i, (int)b.state,
                           s->state);
            if (s->wait >= 0 && (int64_t)breaker_wait_ms(&b, s->t) != s->wait)
                TEST_FAIL_("%s: step %zu: wait %llu, want %lld", cases[c].name, i,
                           (unsigned long long)breaker_wait_ms(&b, s->t), (long long)s->wait);
        }
    }
}

TEST(breaker_counts_opens_and_classifies_answers)
{
    static const struct {
        int err;
        long status;
        int outage;
    } answers[] = {
        {0, 200, 0},  {0, 201, 0}, {0, 404, 0}, {0, 409, 0}, {0, 400, 0},  {0, 401, 0}, {0, 429, 1},
        {0, 408, 1},  {0, 500, 1}, {0, 502, 1}, {0, 503, 1}, {-110, 0, 1}, /* timeout */
        {-111, 0, 1},                                                      /* refused */
    };
    for (size_t i = 0; i < ARRAY_SIZE(answers); i++)
        ASSERT_EQ(breaker_is_outage(answers[i].err, answers[i].status), answers[i].outage);
    struct breaker b;
    uint64_t m1 = 0, m2 = 0;
    breaker_init(&b, 1, 10, 10);
    ASSERT_EQ(breaker_observe(&b, 0, 1, 0, &m1), 1);
    ASSERT_EQ(breaker_admit(&b, 10), BREAKER_PROBE);
    ASSERT_EQ(breaker_observe(&b, 10, 0, 1, &m1), 0);
    ASSERT_EQ(breaker_observe(&b, 11, 1, 0, &m2), 1);
    ASSERT_EQ(b.opens, 2);
}
