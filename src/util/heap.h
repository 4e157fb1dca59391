/* A binary min-heap of intrusive nodes keyed by a 64-bit time (the shape of libuv's own timer
 * heap): push, remove and pop are O(log n), the minimum is O(1), so a worker with many
 * scheduled entries never walks them all. Ties are broken by insertion order (first pushed,
 * first out). The heap owns only its array of pointers; nodes belong to the caller and must
 * stay valid while they are in the heap. Not thread-safe: one owner thread. */
#ifndef CARAVEL_HEAP_H
#define CARAVEL_HEAP_H

#include <stddef.h>
#include <stdint.h>

/* Embed in the scheduled object; read `key` only. Zeroed = not in any heap. */
struct heap_node {
    uint64_t key;
    uint64_t seq; /* insertion order, for ties */
    size_t index; /* 1-based position in the heap; 0 when not in it */
};

struct heap {
    struct heap_node **a;
    size_t len, cap;
    uint64_t next_seq;
};

/* An empty heap ({0} is one too). */
void heap_init(struct heap *h);
/* Frees the array (the nodes are the caller's); the heap is empty afterwards. */
void heap_free(struct heap *h);
/* Inserts n with key (n must not be in a heap; to move it, heap_remove first). */
void heap_push(struct heap *h, struct heap_node *n, uint64_t key);
/* Removes n if it is in h (a node not in a heap is left alone). */
void heap_remove(struct heap *h, struct heap_node *n);
/* The node with the smallest key, or NULL. */
struct heap_node *heap_min(const struct heap *h);
/* Removes and returns the smallest node whose key is <= now, or NULL (then nothing is due). */
struct heap_node *heap_pop_due(struct heap *h, uint64_t now);
static inline int heap_contains(const struct heap_node *n)
{
    return n->index != 0;
}
static inline size_t heap_len(const struct heap *h)
{
    return h->len;
}

#endif
