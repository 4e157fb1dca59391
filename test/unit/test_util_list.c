/* The intrusive list: table-driven operation sequences checked after every step against the
 * expected order (both directions, the links' consistency, list_linked of every item), then the
 * walks that may unlink (LIST_FOREACH_SAFE) and the typed walk. */
#include "test.h"

#include "util/list.h"
#include "util/util.h"

struct item {
    int id;
    struct list node;
};

enum { N_ITEMS = 6 };

/* op: 'h' insert item id at the head, 't' at the tail, 'r' remove item id, 'p' pop the first
 * expecting id (-1: empty). want: the order after the step, ids ending at -1. */
struct op {
    char op;
    int id;
    int want[N_ITEMS + 1];
};

static const struct {
    const char *name;
    struct op ops[8];
} cases[] = {
    {"a new list is empty", {{'p', -1, {-1}}}},
    {"tail inserts keep arrival order",
     {{'t', 0, {0, -1}}, {'t', 1, {0, 1, -1}}, {'t', 2, {0, 1, 2, -1}}}},
    {"head inserts reverse it", {{'h', 0, {0, -1}}, {'h', 1, {1, 0, -1}}, {'h', 2, {2, 1, 0, -1}}}},
    {"pop takes from the head until empty",
     {{'t', 3, {3, -1}}, {'t', 4, {3, 4, -1}}, {'p', 3, {4, -1}}, {'p', 4, {-1}}, {'p', -1, {-1}}}},
    {"remove the first, a middle one and the last",
     {{'t', 0, {0, -1}},
      {'t', 1, {0, 1, -1}},
      {'t', 2, {0, 1, 2, -1}},
      {'t', 3, {0, 1, 2, 3, -1}},
      {'r', 0, {1, 2, 3, -1}},
      {'r', 2, {1, 3, -1}},
      {'r', 3, {1, -1}},
      {'r', 1, {-1}}}},
    {"removing twice, or an item never inserted, is harmless",
     {{'t', 0, {0, -1}}, {'r', 0, {-1}}, {'r', 0, {-1}}, {'r', 5, {-1}}, {'t', 1, {1, -1}}}},
    {"a removed item can go back in, at the other end",
     {{'t', 0, {0, -1}}, {'t', 1, {0, 1, -1}}, {'r', 0, {1, -1}}, {'t', 0, {1, 0, -1}}}},
    {"moving to the front (remove, insert at head)",
     {{'t', 0, {0, -1}},
      {'t', 1, {0, 1, -1}},
      {'t', 2, {0, 1, 2, -1}},
      {'r', 2, {0, 1, -1}},
      {'h', 2, {2, 0, 1, -1}}}},
};

/* The list holds exactly want, in order, linked consistently both ways. */
static void check(const char *name, size_t step, struct list *h, const struct item *it,
                  const int *want)
{
    size_t n = 0;
    while (want[n] >= 0)
        n++;
    ASSERT_EQ(list_count(h), n);
    ASSERT_EQ(list_empty(h), n == 0);
    size_t i = 0;
    struct list *q;
    LIST_FOREACH (q, h) {
        ASSERT(q->next->prev == q && q->prev->next == q);
        int got = list_entry(q, struct item, node)->id;
        if (i >= n || got != want[i])
            TEST_FAIL_("%s: step %zu: position %zu holds %d, want %d", name, step, i, got,
                       i < n ? want[i] : -1);
        i++;
    }
    LIST_FOREACH_REVERSE (q, h)
        ASSERT_EQ(list_entry(q, struct item, node)->id, want[--i]);
    ASSERT(list_first(h) == (n ? &it[want[0]].node : NULL));
    ASSERT(list_last(h) == (n ? &it[want[n - 1]].node : NULL));
    for (int k = 0; k < N_ITEMS; k++) {
        int in = 0;
        for (size_t j = 0; j < n; j++)
            in |= want[j] == k;
        ASSERT_EQ(list_linked(&it[k].node), in);
    }
}

TEST(list_table)
{
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct list h;
        struct item it[N_ITEMS];
        list_init(&h);
        for (int k = 0; k < N_ITEMS; k++) {
            it[k].id = k;
            list_init(&it[k].node);
        }
        for (size_t i = 0; i < ARRAY_SIZE(cases[c].ops) && cases[c].ops[i].op; i++) {
            const struct op *o = &cases[c].ops[i];
            if (o->op == 'h') {
                list_insert_head(&h, &it[o->id].node);
            } else if (o->op == 't') {
                list_insert_tail(&h, &it[o->id].node);
            } else if (o->op == 'r') {
                list_remove(&it[o->id].node);
            } else {
                struct list *q = list_pop(&h);
                int got = q ? list_entry(q, struct item, node)->id : -1;
                if (got != o->id)
                    TEST_FAIL_("%s: step %zu popped %d, want %d", cases[c].name, i, got, o->id);
            }
            check(cases[c].name, i, &h, it, o->want);
        }
    }
}

TEST(list_foreach_safe_unlinks_while_walking)
{
    struct list h, kept;
    struct item it[N_ITEMS];
    list_init(&h);
    list_init(&kept);
    for (int k = 0; k < N_ITEMS; k++) {
        it[k].id = k;
        list_insert_tail(&h, &it[k].node);
    }
    /* Odd ids move to another list, even ones are unlinked: each while it is the current one. */
    struct list *q, *tmp;
    LIST_FOREACH_SAFE (q, tmp, &h) {
        list_remove(q);
        if (list_entry(q, struct item, node)->id % 2)
            list_insert_tail(&kept, q);
    }
    ASSERT(list_empty(&h));
    int want[] = {1, 3, 5, -1};
    check("safe walk", 0, &kept, it, want);
}

TEST(list_foreach_entry_walks_elements)
{
    struct list h;
    struct item it[N_ITEMS];
    list_init(&h);
    for (int k = 0; k < N_ITEMS; k++) {
        it[k].id = k * 10;
        list_insert_head(&h, &it[k].node);
    }
    int sum = 0, last = 1000;
    LIST_FOREACH_ENTRY (struct item, e, &h, node) {
        ASSERT_LT(e->id, last); /* head inserts: descending */
        last = e->id;
        sum += e->id;
    }
    ASSERT_EQ(sum, 150);
    const struct list *ch = &h;
    ASSERT_EQ(list_entry_const(ch->next, struct item, node)->id, 50);
}
