/* The timer heap: table-driven operation sequences, then random pushes and removals checked
 * against a brute-force minimum after every step. */
#include "test.h"

#include "util/heap.h"
#include "util/util.h"

struct item {
    struct heap_node node;
    int id;
};

/* Every parent <= its children, every index matches its position. */
static void check_shape(const struct heap *h)
{
    for (size_t i = 0; i < h->len; i++) {
        ASSERT_EQ(h->a[i]->index, i + 1);
        if (i > 0) {
            const struct heap_node *p = h->a[(i - 1) / 2], *c = h->a[i];
            ASSERT(p->key < c->key || (p->key == c->key && p->seq < c->seq));
        }
    }
}

/* op: 'p' push item `id` at key, 'r' remove item `id`, 'o' pop due at `key` expecting `id`
 * (-1: nothing due). */
struct op {
    char op;
    int id;
    uint64_t key;
};

static const struct {
    const char *name;
    struct op ops[12];
} cases[] = {
    {"empty pops nothing", {{'o', -1, 1000}}},
    {"pops in key order",
     {{'p', 0, 30},
      {'p', 1, 10},
      {'p', 2, 20},
      {'o', 1, 100},
      {'o', 2, 100},
      {'o', 0, 100},
      {'o', -1, 100}}},
    {"nothing due before the smallest key", {{'p', 0, 50}, {'o', -1, 49}, {'o', 0, 50}}},
    {"ties pop first pushed first",
     {{'p', 3, 7}, {'p', 1, 7}, {'p', 2, 7}, {'o', 3, 7}, {'o', 1, 7}, {'o', 2, 7}}},
    {"remove the minimum",
     {{'p', 0, 5}, {'p', 1, 6}, {'p', 2, 4}, {'r', 2, 0}, {'o', 0, 9}, {'o', 1, 9}}},
    {"remove a middle node and the last",
     {{'p', 0, 1},
      {'p', 1, 2},
      {'p', 2, 3},
      {'p', 3, 4},
      {'r', 1, 0},
      {'r', 3, 0},
      {'o', 0, 9},
      {'o', 2, 9},
      {'o', -1, 9}}},
    {"removing twice is harmless", {{'p', 0, 1}, {'r', 0, 0}, {'r', 0, 0}, {'o', -1, 9}}},
    {"re-push after remove takes the new key",
     {{'p', 0, 1}, {'p', 1, 5}, {'r', 0, 0}, {'p', 0, 9}, {'o', 1, 9}, {'o', 0, 9}}},
};

TEST(heap_table)
{
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct heap h;
        struct item it[8];
        heap_init(&h);
        memset(it, 0, sizeof(it));
        for (size_t k = 0; k < ARRAY_SIZE(it); k++)
            it[k].id = (int)k;
        for (size_t i = 0; i < ARRAY_SIZE(cases[c].ops) && cases[c].ops[i].op; i++) {
            const struct op *o = &cases[c].ops[i];
            if (o->op == 'p') {
                heap_push(&h, &it[o->id].node, o->key);
            } else if (o->op == 'r') {
                heap_remove(&h, &it[o->id].node);
                ASSERT(!heap_contains(&it[o->id].node));
            } else {
                struct heap_node *n = heap_pop_due(&h, o->key);
                int got = n ? container_of(n, struct item, node)->id : -1;
                if (got != o->id)
                    TEST_FAIL_("%s: step %zu popped %d, want %d", cases[c].name, i, got, o->id);
                if (n)
                    ASSERT(!heap_contains(n));
            }
            check_shape(&h);
        }
        heap_free(&h);
    }
}

TEST(heap_random_against_brute_force)
{
    enum { N = 2000 };
    static struct item it[N];
    struct heap h = {0};
    uint64_t rnd = 88172645463325252ull;
    memset(it, 0, sizeof(it));
    for (int step = 0; step < 20000; step++) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        struct item *x = &it[rnd % N];
        if (heap_contains(&x->node))
            heap_remove(&h, &x->node);
        else
            heap_push(&h, &x->node, (rnd >> 20) % 500);
        const struct heap_node *best = NULL;
        size_t len = 0;
        for (int i = 0; i < N; i++) {
            const struct heap_node *n = &it[i].node;
            if (!heap_contains(n))
                continue;
            len++;
            if (!best || n->key < best->key || (n->key == best->key && n->seq < best->seq))
                best = n;
        }
        ASSERT_EQ(heap_len(&h), len);
        ASSERT(heap_min(&h) == best);
        if (step % 1000 == 0)
            check_shape(&h);
    }
    uint64_t last = 0;
    struct heap_node *n;
    while ((n = heap_pop_due(&h, UINT64_MAX))) {
        ASSERT_GE(n->key, last);
        last = n->key;
    }
    ASSERT_EQ(heap_len(&h), 0);
    heap_free(&h);
}
