/* Intrusive doubly-linked circular list, in the style of libuv's queue.h and the Linux kernel's
 * list.h: a struct list node is embedded in the element, the head is a struct list of its own,
 * and list_entry (container_of) goes from a node back to its element. No allocation; every
 * operation is O(1) except the walks. Not thread-safe: a list belongs to whoever owns its head
 * (the owner's header states the thread).
 *
 * A node that is in no list points at itself (list_init, and list_remove leaves it so): removing
 * it again is a no-op and list_linked tells whether it is in a list. Zeroed memory is not a
 * valid head or node: call list_init first.
 *
 *   struct item { int v; struct list node; };
 *   struct list items;                      list_init(&items);
 *   list_insert_tail(&items, &it->node);
 *   struct list *q;
 *   LIST_FOREACH(q, &items) use(list_entry(q, struct item, node));
 *   struct list *tmp;                       (the element may be unlinked or freed in the body)
 *   LIST_FOREACH_SAFE(q, tmp, &items) { list_remove(q); free(list_entry(q, struct item, node)); }
 */
#ifndef CARAVEL_UTIL_LIST_H
#define CARAVEL_UTIL_LIST_H

#include <stddef.h>

#include "util/util.h"

struct list {
    struct list *next, *prev;
};

static inline void list_init(struct list *h)
{
    h->next = h;
    h->prev = h;
}

static inline int list_empty(const struct list *h)
{
    return h->next == h;
}

/* 1 when node n is in a list (initialised nodes that were never inserted, or were removed: 0). */
static inline int list_linked(const struct list *n)
{
    return n->next != n;
}

/* Links n between prev and next (which are adjacent). */
static inline void list__link(struct list *n, struct list *prev, struct list *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

static inline void list_insert_head(struct list *h, struct list *n)
{
    list__link(n, h, h->next);
}

static inline void list_insert_tail(struct list *h, struct list *n)
{
    list__link(n, h->prev, h);
}

/* Unlinks n from its list (a no-op when it is in none) and leaves it self-linked. */
static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* First / last node of h, or NULL when h is empty. */
static inline struct list *list_first(const struct list *h)
{
    return list_empty(h) ? NULL : h->next;
}

static inline struct list *list_last(const struct list *h)
{
    return list_empty(h) ? NULL : h->prev;
}

/* Removes and returns the first node of h, or NULL when h is empty. */
static inline struct list *list_pop(struct list *h)
{
    struct list *n = list_first(h);
    if (n)
        list_remove(n);
    return n;
}

/* Number of nodes: a walk, O(n). */
static inline size_t list_count(const struct list *h)
{
    size_t n = 0;
    for (const struct list *q = h->next; q != h; q = q->next)
        n++;
    return n;
}

#define list_entry(node, type, member) container_of(node, type, member)
/* The same from a const node to a const element. */
#define list_entry_const(node, type, member)                                                       \
    ((const type *)((const char *)(node)-offsetof(type, member)))

/* Walks head's nodes in order; the body must not unlink the current node (LIST_FOREACH_SAFE). */
#define LIST_FOREACH(q, head) for ((q) = (head)->next; (q) != (head); (q) = (q)->next)
/* The same from the last node back. */
#define LIST_FOREACH_REVERSE(q, head) for ((q) = (head)->prev; (q) != (head); (q) = (q)->prev)
/* Walks the elements (type, linked through member) of head as `type *e`, declared by the loop;
 * the body must not unlink e. */
#define LIST_FOREACH_ENTRY(type, e, head, member)                                                  \
    for (type *e = list_entry((head)->next, type, member); &e->member != (head);                   \
         e = list_entry(e->member.next, type, member))
/* The body may unlink or free the current node (not the next one). */
#define LIST_FOREACH_SAFE(q, tmp, head)                                                            \
    for ((q) = (head)->next, (tmp) = (q)->next; (q) != (head); (q) = (tmp), (tmp) = (q)->next)

#endif
