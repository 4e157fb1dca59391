#include "util/heap.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define HEAP_MIN_CAP 16

void heap_init(struct heap *h)
{
    memset(h, 0, sizeof(*h));
}

void heap_free(struct heap *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->a[i]->index = 0;
    free(h->a);
    heap_init(h);
}

static int less(const struct heap_node *x, const struct heap_node *y)
{
    return x->key < y->key || (x->key == y->key && x->seq < y->seq);
}

/* a[] is 0-based; node->index is the 1-based position, so 0 means "not in the heap". */
static void place(struct heap *h, size_t i, struct heap_node *n)
{
    h->a[i] = n;
    n->index = i + 1;
}

static void sift_up(struct heap *h, size_t i)
{
    struct heap_node *n = h->a[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(n, h->a[parent]))
            break;
        place(h, i, h->a[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(struct heap *h, size_t i)
{
    struct heap_node *n = h->a[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && less(h->a[child + 1], h->a[child]))
            child++;
        if (!less(h->a[child], n))
            break;
        place(h, i, h->a[child]);
        i = child;
    }
    place(h, i, n);
}

void heap_push(struct heap *h, struct heap_node *n, uint64_t key)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : HEAP_MIN_CAP;
        h->a = xrealloc(h->a, h->cap * sizeof(*h->a));
    }
    n->key = key;
    n->seq = h->next_seq++;
    place(h, h->len++, n);
    sift_up(h, h->len - 1);
}

void heap_remove(struct heap *h, struct heap_node *n)
{
    if (!n->index || n->index > h->len || h->a[n->index - 1] != n)
        return;
    size_t i = n->index - 1;
    struct heap_node *last = h->a[--h->len];
    n->index = 0;
    if (last == n)
        return;
    place(h, i, last);
    /* The moved node may belong above or below its new position. */
    if (i > 0 && less(last, h->a[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct heap_node *heap_min(const struct heap *h)
{
    return h->len ? h->a[0] : NULL;
}

struct heap_node *heap_pop_due(struct heap *h, uint64_t now)
{
    struct heap_node *n = heap_min(h);
    if (!n || n->key > now)
        return NULL;
    heap_remove(h, n);
    return n;
}
