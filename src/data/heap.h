// heap.h: a binary heap of fixed-size items, ordered by the caller's before(a, b): the item
// for which before() holds against every other sits on top and is popped first. The BPE
// trainer keeps its (count, pair) max-heap in one and the BPE encoder its (rank, position)
// min-heap of merge candidates. Equal items come out in no defined order, so a caller that
// needs a deterministic order makes before() break ties.
//
// HEAP_DEFINE(name, Type, before, first_cap) writes the typed functions a user calls:
//   void name_push(Heap *h, const Type *item);  copies *item in, O(log n)
//   Type name_pop(Heap *h);                     removes and returns the top item, O(log n);
//                                               the heap must not be empty
// They are inline with the item size and before() known at compile time, so the sifting loops
// compile to the same code as a heap written out for that one type (the BPE encoder spends a
// good part of its time here).
#ifndef ROUTELAB_HEAP_H
#define ROUTELAB_HEAP_H
#include <stddef.h>
#include <string.h>

#include "common.h"

typedef struct {
    char *item;      // item[0] is the top
    size_t n, cap;   // items held, items allocated
} Heap;

typedef int (*HeapBefore)(const void *a, const void *b);

// Empties the heap and keeps its memory.
static inline void heap_clear(Heap *h) { h->n = 0; }
static inline void heap_free(Heap *h) {
    xfree(h->item);
    *h = (Heap){0};
}

#define HEAP_AT(h, i, size) ((h)->item + (i) * (size))

// The untyped pieces HEAP_DEFINE wraps. `item` must not point into the heap.
static inline __attribute__((always_inline)) void heap_push_item(Heap *h, const void *item,
                                                                 size_t size, size_t first_cap,
                                                                 HeapBefore before) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : first_cap;
        h->item = xrealloc(h->item, h->cap * size);
    }
    size_t i = h->n++;
    while (i > 0 && before(item, HEAP_AT(h, (i - 1) / 2, size))) {
        memcpy(HEAP_AT(h, i, size), HEAP_AT(h, (i - 1) / 2, size), size);
        i = (i - 1) / 2;
    }
    memcpy(HEAP_AT(h, i, size), item, size);
}

static inline __attribute__((always_inline)) void heap_pop_item(Heap *h, void *top, size_t size,
                                                                HeapBefore before) {
    ASSERT(h->n > 0);
    memcpy(top, HEAP_AT(h, 0, size), size);
    // The last item, which refills the hole, stays in its slot beyond n while the hole sinks.
    const char *last = HEAP_AT(h, --h->n, size);
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(HEAP_AT(h, c + 1, size), HEAP_AT(h, c, size))) c++;
        if (!before(HEAP_AT(h, c, size), last)) break;
        memcpy(HEAP_AT(h, i, size), HEAP_AT(h, c, size), size);
        i = c;
    }
    if (h->n) memcpy(HEAP_AT(h, i, size), last, size);
}

#define HEAP_DEFINE(name, Type, before, first_cap)                                  \
    static inline void name##_push(Heap *h, const Type *item) {                     \
        heap_push_item(h, item, sizeof(Type), (first_cap), (before));               \
    }                                                                               \
    static inline Type name##_pop(Heap *h) {                                        \
        Type top;                                                                   \
        heap_pop_item(h, &top, sizeof(Type), (before));                             \
        return top;                                                                 \
    }
#endif
