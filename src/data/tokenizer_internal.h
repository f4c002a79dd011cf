// tokenizer_internal.h: the pieces tokenizer.c, tokenizer_gpt2.c and bpe_train.c share. Other
// code uses tokenizer.h only.
#ifndef ROUTELAB_TOKENIZER_INTERNAL_H
#define ROUTELAB_TOKENIZER_INTERNAL_H
#include "tokenizer.h"

// ----------------------------------------------------------------------------- merge table
// (left, right) -> (rank, result): open addressing with linear probing; entries are never
// removed, so a lookup stops at the first empty slot.
typedef struct {
    uint64_t *keys;   // (cap) pair_key(left, right), or MERGE_EMPTY
    int32_t *rank;    // (cap) lower rank = merged first
    int32_t *result;  // (cap) id of the merged token
    size_t cap;       // power of two, at least twice the entry count
    size_t count;
} MergeTable;

#define MERGE_EMPTY UINT64_MAX

static inline uint64_t pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}
static inline size_t hash_u64(uint64_t x) {  // Fibonacci-style mixing: keys differ in few bits
    x ^= x >> 31;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29));
}

void merge_table_init(MergeTable *m, size_t max_entries);
void merge_table_free(MergeTable *m);
// Returns 0 when (left, right) is already present (the table keeps the first one).
int merge_table_put(MergeTable *m, int32_t left, int32_t right, int32_t rank, int32_t result);
// Returns the slot of (left, right), or -1 when that pair has no merge.
static inline long merge_table_find(const MergeTable *m, int32_t left, int32_t right) {
    if (!m->cap) return -1;
    uint64_t key = pair_key(left, right);
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return (long)i;
        if (m->keys[i] == MERGE_EMPTY) return -1;
    }
}

// ----------------------------------------------------------------------------- tokenizer
struct Tokenizer {
    char *spec;
    int vocab_size;
    int32_t byte_token[256];  // id of the token that is exactly byte b
    uint8_t *bytes;           // all tokens' bytes, back to back
    size_t *offset;           // (vocab_size + 1) token i = bytes[offset[i] .. offset[i + 1])
    MergeTable merges;        // empty for "bytes"
};

// ----------------------------------------------------------------------------- GPT-2 parts
// Calls fn on each GPT-2 pre-token of text[begin, end) in order; the pieces cover every byte
// exactly once. begin and end must be 0, len or positions from gpt2_safe_cut(). Bytes that are
// not valid UTF-8 match no part of the regex; each run of them is one piece.
typedef void (*PretokenFn)(const uint8_t *piece, size_t len, void *ctx);
void gpt2_pretokenize(const char *text, size_t len, size_t begin, size_t end, PretokenFn fn,
                      void *ctx);
// The first position p >= from where a piece is sure to start (an ASCII non-space byte right
// after '\n'), or len. Pre-tokenizing [0, p) and [p, len) with gpt2_pretokenize() gives the
// pieces of the whole text, which is what lets encoding run in parallel.
size_t gpt2_safe_cut(const char *text, size_t len, size_t from);
// Reads DIR/encoder.json and DIR/vocab.bpe; spec is what tokenizer_spec() will report.
Tokenizer *gpt2_load(const char *spec, const char *dir);

#endif
