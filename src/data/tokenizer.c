// tokenizer.c: loading by spec, the trained-BPE file reader, and the BPE encoder and decoder
// that GPT-2 and trained tokenizers share (the file format is documented in tokenizer.h).
#include "tokenizer_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "heap.h"

// ----------------------------------------------------------------------------- merge table
void merge_table_init(MergeTable *m, size_t max_entries) {
    m->cap = 16;
    while (m->cap < 2 * max_entries) m->cap <<= 1;
    m->keys = xcalloc(m->cap, sizeof(uint64_t));
    m->rank = xcalloc(m->cap, sizeof(int32_t));
    m->result = xcalloc(m->cap, sizeof(int32_t));
    for (size_t i = 0; i < m->cap; i++) m->keys[i] = MERGE_EMPTY;
    m->count = 0;
}

void merge_table_free(MergeTable *m) {
    xfree(m->keys);
    xfree(m->rank);
    xfree(m->result);
    memset(m, 0, sizeof *m);
}

int merge_table_put(MergeTable *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    ASSERT(2 * (m->count + 1) <= m->cap);
    uint64_t key = pair_key(left, right);
    size_t mask = m->cap - 1, i = hash_u64(key) & mask;
    while (m->keys[i] != MERGE_EMPTY) {
        if (m->keys[i] == key) return 0;
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->result[i] = result;
    m->count++;
    return 1;
}

// ----------------------------------------------------------------------------- bytes -> id
static size_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return (size_t)h;
}

int32_t token_index_find(const TokenIndex *ix, const uint8_t *p, size_t n) {
    if (!ix->cap) return -1;
    for (size_t i = hash_bytes(p, n) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        int32_t id = ix->slot[i];
        if (id < 0) return -1;
        size_t len = ix->offset[id + 1] - ix->offset[id];
        if (len == n && memcmp(ix->bytes + ix->offset[id], p, n) == 0) return id;
    }
}

void token_index_build(TokenIndex *ix, const uint8_t *bytes, const size_t *offset, size_t n,
                       const uint8_t *include) {
    ix->bytes = bytes;
    ix->offset = offset;
    ix->cap = 1;
    while (ix->cap < 2 * n + 2) ix->cap <<= 1;
    ix->slot = xcalloc(ix->cap, sizeof(int32_t));
    for (size_t i = 0; i < ix->cap; i++) ix->slot[i] = -1;
    for (size_t id = 0; id < n; id++) {
        if (include && !include[id]) continue;
        const uint8_t *p = bytes + offset[id];
        size_t len = offset[id + 1] - offset[id];
        if (token_index_find(ix, p, len) >= 0) continue;  // duplicate bytes: keep the lower id
        size_t i = hash_bytes(p, len) & (ix->cap - 1);
        while (ix->slot[i] >= 0) i = (i + 1) & (ix->cap - 1);
        ix->slot[i] = (int32_t)id;
    }
}

void token_index_free(TokenIndex *ix) {
    xfree(ix->slot);
    memset(ix, 0, sizeof *ix);
}

// ----------------------------------------------------------------------------- loading
static Tokenizer *bytes_tokenizer(const char *spec) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->spec = xstrdup(spec);
    t->vocab_size = 256;
    t->bytes = xcalloc(256, 1);
    t->offset = xcalloc(257, sizeof(size_t));
    for (int b = 0; b < 256; b++) {
        t->byte_token[b] = b;
        t->bytes[b] = (uint8_t)b;
        t->offset[b + 1] = (size_t)b + 1;
    }
    return t;
}

// Reads "KEY N" from the line starting at *p; advances *p past it. Returns 0 on a mismatch.
static int read_keyed_int(const char **p, const char *end, const char *key, long *value) {
    size_t klen = strlen(key);
    if ((size_t)(end - *p) <= klen || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ') return 0;
    char *after;
    *value = strtol(*p + klen + 1, &after, 10);
    if (after == *p + klen + 1 || after >= end || *after != '\n') return 0;
    *p = after + 1;
    return 1;
}

#define BPE_MAX_BYTES (256 << 20)  // all tokens' bytes together
#define BPE_FIX "re-create it with `routelab tokenizer-train`"

static Tokenizer *load_trained_bpe(const char *path) {
    size_t len;
    char *text = read_file(path, &len, "BPE tokenizer file");
    Tokenizer *t = tokenizer_parse_bpe(text, len, path);
    xfree(text);
    return t;
}

Tokenizer *tokenizer_parse_bpe(const char *data, size_t len, const char *path) {
    char *text = xcalloc(len + 1, 1);  // NUL-terminated copy: strtol stops at the end
    memcpy(text, data, len);
    const char *p = text, *end = text + len;
    static const char MAGIC[] = "routelab-bpe 1\n";
    if (len < sizeof MAGIC - 1 || memcmp(text, MAGIC, sizeof MAGIC - 1) != 0)
        fatal("tokenizer file '%s' is not a routelab BPE file (its first line must be "
              "'routelab-bpe 1'); pass --tokenizer=bytes, gpt2, gpt2:DIR or a file written by "
              "`routelab tokenizer-train`", path);
    p += sizeof MAGIC - 1;
    long vocab, n_merges;
    static const char PRE[] = "pretokenizer gpt2\n";
    if (!read_keyed_int(&p, end, "vocab_size", &vocab) || vocab < 256 || vocab > (1L << 24))
        fatal("tokenizer file '%s' line 2: expected 'vocab_size V' with 256 <= V <= 2^24 (the file is "
              "corrupt; " BPE_FIX ")", path);
    if ((size_t)(end - p) < sizeof PRE - 1 || memcmp(p, PRE, sizeof PRE - 1) != 0)
        fatal("tokenizer file '%s' line 3: expected 'pretokenizer gpt2' (the only pre-tokenizer "
              "this version knows; " BPE_FIX ")", path);
    p += sizeof PRE - 1;
    if (!read_keyed_int(&p, end, "merges", &n_merges) || n_merges != vocab - 256)
        fatal("tokenizer file '%s' line 4: expected 'merges %ld' (vocab_size - 256); the file is "
              "corrupt (" BPE_FIX ")", path, vocab - 256);
    if (n_merges > (end - p) / 4)  // each merge line takes at least 4 bytes ("L R\n")
        fatal("tokenizer file '%s' is truncated: %zu bytes cannot hold %ld merges (" BPE_FIX ")",
              path, len, n_merges);

    Tokenizer *t = xcalloc(1, sizeof *t);
    t->spec = xstrdup(path);
    t->vocab_size = (int)vocab;
    t->offset = xcalloc((size_t)vocab + 1, sizeof(size_t));
    int32_t *left = xcalloc((size_t)n_merges + 1, sizeof(int32_t));
    int32_t *right = xcalloc((size_t)n_merges + 1, sizeof(int32_t));
    merge_table_init(&t->merges, (size_t)n_merges);
    for (long i = 0; i < n_merges; i++) {
        char *after;
        long a = -1, b = -1;
        int ok = p < end && *p >= '0' && *p <= '9';  // strtol would skip spaces and newlines
        if (ok) {
            a = strtol(p, &after, 10);
            ok = *after == ' ' && after[1] >= '0' && after[1] <= '9';
        }
        if (ok) {
            const char *q = after + 1;
            b = strtol(q, &after, 10);
            ok = after > q && after < end && *after == '\n';
        }
        long limit = 256 + i;  // a merge may only use tokens that exist before it
        if (!ok || a < 0 || b < 0 || a >= limit || b >= limit ||
            !merge_table_put(&t->merges, (int32_t)a, (int32_t)b, (int32_t)i, (int32_t)limit))
            fatal("tokenizer file '%s' line %ld: expected a new merge 'L R' with L, R < %ld (the "
                  "file is corrupt; " BPE_FIX ")", path, i + 5, limit);
        left[i] = (int32_t)a;
        right[i] = (int32_t)b;
        p = after + 1;
    }
    for (; p < end; p++)
        if (*p != '\n' && *p != ' ')
            fatal("tokenizer file '%s': unexpected text after the %ld merges (the file is "
                  "corrupt; " BPE_FIX ")", path, n_merges);
    // Token bytes: byte b, then each merge is the concatenation of its two parts.
    for (int b = 0; b < 256; b++) t->offset[b + 1] = (size_t)b + 1;
    for (long i = 0; i < n_merges; i++) {
        size_t la = t->offset[left[i] + 1] - t->offset[left[i]];
        size_t lb = t->offset[right[i] + 1] - t->offset[right[i]];
        // Tokens can double in length with each merge: bound the total before allocating it.
        if (la + lb > BPE_MAX_BYTES - t->offset[256 + i])
            fatal("tokenizer file '%s': the tokens' bytes exceed %d MiB at merge %ld (the file is "
                  "corrupt; " BPE_FIX ")", path, BPE_MAX_BYTES >> 20, i);
        t->offset[257 + i] = t->offset[256 + i] + la + lb;
    }
    t->bytes = xcalloc(t->offset[vocab] + 1, 1);
    for (int b = 0; b < 256; b++) {
        t->bytes[b] = (uint8_t)b;
        t->byte_token[b] = b;
    }
    for (long i = 0; i < n_merges; i++) {
        uint8_t *dst = t->bytes + t->offset[256 + i];
        size_t la = t->offset[left[i] + 1] - t->offset[left[i]];
        memcpy(dst, t->bytes + t->offset[left[i]], la);
        memcpy(dst + la, t->bytes + t->offset[right[i]],
               t->offset[right[i] + 1] - t->offset[right[i]]);
    }
    xfree(left);
    xfree(right);
    xfree(text);
    return t;
}

Tokenizer *tokenizer_load(const char *spec) {
    if (!spec || !*spec)
        fatal("tokenizer: empty spec (expected bytes, gpt2, gpt2:DIR, hf:DIR or a trained BPE "
              "file)");
    if (strcmp(spec, "bytes") == 0) return bytes_tokenizer(spec);
    if (strncmp(spec, "hf:", 3) == 0) return hf_tokenizer_load(spec, spec + 3);
    if (strncmp(spec, "gpt2:", 5) == 0) return gpt2_load(spec, spec + 5);
    if (strcmp(spec, "gpt2") == 0) {
        const char *dir = "../shared/data/gpt2-tokenizer";
        if (!dir_exists(dir))
            fatal("tokenizer 'gpt2': the default directory %s (relative to the current "
                  "directory) does not exist; pass gpt2:DIR with DIR holding GPT-2's "
                  "encoder.json and vocab.bpe", dir);
        return gpt2_load(spec, dir);
    }
    if (!file_exists(spec))
        fatal("tokenizer '%s': not 'bytes', 'gpt2', 'gpt2:DIR' or 'hf:DIR', and no such file (train one "
              "with `routelab tokenizer-train --out=%s`)", spec, spec);
    return load_trained_bpe(spec);
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    merge_table_free(&t->merges);
    token_index_free(&t->whole);
    hf_free(t->hf);
    xfree(t->bytes);
    xfree(t->offset);
    xfree(t->spec);
    xfree(t);
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
const char *tokenizer_spec(const Tokenizer *t) { return t->spec; }

// ----------------------------------------------------------------------------- BPE on a word
// One pre-token is merged as a linked list of tokens plus a min-heap of candidate merges
// ordered by (rank, position): O(n log n), so a megabyte without spaces is no problem. Taking
// the leftmost of equal ranks reproduces GPT-2's "merge every occurrence left to right".
typedef struct {
    int32_t rank, pos, left, right;  // left/right: the tokens the entry saw, to spot stale ones
    int32_t result;                  // the token the merge makes
} Candidate;

typedef struct {
    int32_t *tok;   // (n) token at each node, -1 once merged into its left neighbour
    int32_t *prev;  // (n) previous live node, -1 at the start
    int32_t *next;  // (n) next live node, n at the end
    size_t cap;
    Heap heap;      // of Candidate, by candidate_before
} WordScratch;

static int candidate_before(const void *pa, const void *pb) {
    const Candidate *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

HEAP_DEFINE(candidates, Candidate, candidate_before, 64)

static void push_if_mergeable(const Tokenizer *t, WordScratch *s, int32_t pos, int32_t right) {
    long slot = merge_table_find(&t->merges, s->tok[pos], s->tok[right]);
    if (slot >= 0)
        candidates_push(&s->heap, &(Candidate){t->merges.rank[slot], pos, s->tok[pos],
                                                s->tok[right], t->merges.result[slot]});
}

// Merges the bytes w[0..n) into tokens written to out (at most n); returns their count.
static size_t bpe_word(const Tokenizer *t, const uint8_t *w, size_t n, WordScratch *s,
                       int32_t *out) {
    if (n == 1 || !t->merges.count) {
        for (size_t i = 0; i < n; i++) out[i] = t->byte_token[w[i]];
        return n;
    }
    if (n > s->cap) {
        s->cap = n > 2 * s->cap ? n : 2 * s->cap;
        s->tok = xrealloc(s->tok, s->cap * sizeof(int32_t));
        s->prev = xrealloc(s->prev, s->cap * sizeof(int32_t));
        s->next = xrealloc(s->next, s->cap * sizeof(int32_t));
    }
    int32_t nn = (int32_t)n;
    for (int32_t i = 0; i < nn; i++) {
        s->tok[i] = t->byte_token[w[i]];
        s->prev[i] = i - 1;
        s->next[i] = i + 1;
    }
    heap_clear(&s->heap);
    for (int32_t i = 0; i + 1 < nn; i++) push_if_mergeable(t, s, i, i + 1);
    while (s->heap.n) {
        Candidate c = candidates_pop(&s->heap);
        int32_t i = c.pos, j = s->next[i];
        // Stale when either node has changed since: merged tokens only ever get longer, so
        // equal ids mean the same two nodes are still there.
        if (s->tok[i] != c.left || j >= nn || s->tok[j] != c.right) continue;
        s->tok[i] = c.result;
        s->tok[j] = -1;
        s->next[i] = s->next[j];
        if (s->next[i] < nn) s->prev[s->next[i]] = i;
        if (s->prev[i] >= 0) push_if_mergeable(t, s, s->prev[i], i);
        if (s->next[i] < nn) push_if_mergeable(t, s, i, s->next[i]);
    }
    size_t k = 0;
    for (int32_t i = 0; i < nn; i = s->next[i]) out[k++] = s->tok[i];
    return k;
}

// ----------------------------------------------------------------------------- word cache
// Natural text repeats words constantly; caching word -> ids makes encoding cost one hash
// lookup per pre-token. One cache per encoding thread, emptied when it gets large.
#define CACHE_MAX_WORD 64          // longer pieces are rare; merging them directly is cheap
#define CACHE_MAX_ENTRIES (1u << 20)

typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off;  // into key_pool / id_pool
    uint16_t key_len, ids_len;
} CacheEntry;

typedef struct {
    uint32_t *slot;  // (cap) entry index + 1, 0 = empty
    size_t cap;
    CacheEntry *entries;
    size_t n, entries_cap;
    uint8_t *key_pool;
    int32_t *id_pool;
    size_t key_used, id_used, pool_cap;  // both pools hold pool_cap items
} WordCache;

static uint64_t hash_word(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

static void cache_clear(WordCache *c) {
    if (!c->cap) {
        c->cap = 1 << 12;
        c->slot = xcalloc(c->cap, sizeof(uint32_t));
    } else {
        memset(c->slot, 0, c->cap * sizeof(uint32_t));
    }
    c->n = c->key_used = c->id_used = 0;
}

static void cache_free(WordCache *c) {
    xfree(c->slot);
    xfree(c->entries);
    xfree(c->key_pool);
    xfree(c->id_pool);
}

static const CacheEntry *cache_find(const WordCache *c, const uint8_t *w, size_t n, uint64_t h) {
    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (!c->slot[i]) return NULL;
        const CacheEntry *e = &c->entries[c->slot[i] - 1];
        if (e->hash == h && e->key_len == n && memcmp(c->key_pool + e->key_off, w, n) == 0)
            return e;
    }
}

static void cache_insert_slot(WordCache *c, uint64_t h, uint32_t index_plus_1) {
    size_t i = h & (c->cap - 1);
    while (c->slot[i]) i = (i + 1) & (c->cap - 1);
    c->slot[i] = index_plus_1;
}

static void cache_add(WordCache *c, const uint8_t *w, size_t n, uint64_t h, const int32_t *ids,
                      size_t k) {
    if (c->n >= CACHE_MAX_ENTRIES) cache_clear(c);
    if (2 * (c->n + 1) > c->cap) {  // grow and rehash
        xfree(c->slot);
        c->cap *= 2;
        c->slot = xcalloc(c->cap, sizeof(uint32_t));
        for (size_t e = 0; e < c->n; e++) cache_insert_slot(c, c->entries[e].hash, (uint32_t)e + 1);
    }
    if (c->n == c->entries_cap) {
        c->entries_cap = c->entries_cap ? 2 * c->entries_cap : 1024;
        c->entries = xrealloc(c->entries, c->entries_cap * sizeof(CacheEntry));
    }
    while (c->key_used + n > c->pool_cap || c->id_used + k > c->pool_cap) {
        c->pool_cap = c->pool_cap ? 2 * c->pool_cap : 1 << 16;
        c->key_pool = xrealloc(c->key_pool, c->pool_cap);
        c->id_pool = xrealloc(c->id_pool, c->pool_cap * sizeof(int32_t));
    }
    CacheEntry *e = &c->entries[c->n];
    *e = (CacheEntry){h, (uint32_t)c->key_used, (uint32_t)c->id_used, (uint16_t)n, (uint16_t)k};
    memcpy(c->key_pool + c->key_used, w, n);
    memcpy(c->id_pool + c->id_used, ids, k * sizeof(int32_t));
    c->key_used += n;
    c->id_used += k;
    c->n++;
    cache_insert_slot(c, h, (uint32_t)c->n);
}

// ----------------------------------------------------------------------------- encoding
typedef struct {
    const Tokenizer *tok;
    WordScratch scratch;
    WordCache cache;
    int32_t *ids;  // (cap) output so far
    size_t n, cap;
} Encoder;

static void encode_piece(const uint8_t *w, size_t n, void *ctx) {
    Encoder *e = ctx;
    if (e->n + n > e->cap) {  // a piece of n bytes gives at most n tokens
        e->cap = e->n + n > 2 * e->cap ? e->n + n : 2 * e->cap;
        e->ids = xrealloc(e->ids, e->cap * sizeof(int32_t));
    }
    if (e->tok->whole.cap) {  // ignore_merges: a piece that is a token stays whole
        int32_t id = token_index_find(&e->tok->whole, w, n);
        if (id >= 0) {
            e->ids[e->n++] = id;
            return;
        }
    }
    if (n > CACHE_MAX_WORD) {
        e->n += bpe_word(e->tok, w, n, &e->scratch, e->ids + e->n);
        return;
    }
    uint64_t h = hash_word(w, n);
    const CacheEntry *hit = cache_find(&e->cache, w, n, h);
    if (hit) {
        memcpy(e->ids + e->n, e->cache.id_pool + hit->ids_off, hit->ids_len * sizeof(int32_t));
        e->n += hit->ids_len;
        return;
    }
    size_t k = bpe_word(e->tok, w, n, &e->scratch, e->ids + e->n);
    cache_add(&e->cache, w, n, h, e->ids + e->n, k);
    e->n += k;
}

static void encode_part(const Tokenizer *t, const char *text, size_t len, size_t begin,
                        size_t end, Encoder *e) {
    memset(e, 0, sizeof *e);
    e->tok = t;
    e->cap = (end - begin) / 3 + 16;  // about 4 bytes per token in English; grows when needed
    e->ids = xcalloc(e->cap, sizeof(int32_t));
    cache_clear(&e->cache);
    if (t->hf) hf_pretokenize(t->hf, text, len, begin, end, encode_piece, e);
    else gpt2_pretokenize(text, len, begin, end, encode_piece, e);
    cache_free(&e->cache);
    xfree(e->scratch.tok);
    xfree(e->scratch.prev);
    xfree(e->scratch.next);
    heap_free(&e->scratch.heap);
}

int32_t *tokenizer_encode(const Tokenizer *t, const char *text, size_t len, size_t *n_out) {
    if (t->hf) return hf_encode(t, text, len, n_out);
    if (!t->merges.count) {  // "bytes": no pre-tokenization needed
        int32_t *ids = xcalloc(len + 1, sizeof(int32_t));
        for (size_t i = 0; i < len; i++) ids[i] = t->byte_token[(uint8_t)text[i]];
        *n_out = len;
        return ids;
    }
    return bpe_encode(t, text, len, n_out);
}

int32_t *bpe_encode(const Tokenizer *t, const char *text, size_t len, size_t *n_out) {
    // Cut large texts where a piece surely starts, so the parts encode independently.
    size_t threads = (size_t)omp_get_max_threads();
    int cuttable = !t->hf || hf_cut_safe(t->hf);
    size_t parts = len >= (1 << 20) && threads > 1 && cuttable ? 4 * threads : 1;
    size_t *cut = xcalloc(parts + 1, sizeof(size_t));
    for (size_t k = 1; k < parts; k++) {
        size_t want = (size_t)((double)len * (double)k / (double)parts);
        cut[k] = gpt2_safe_cut(text, len, want > cut[k - 1] ? want : cut[k - 1]);
    }
    cut[parts] = len;
    Encoder *enc = xcalloc(parts, sizeof(Encoder));
#pragma omp parallel for schedule(dynamic, 1) if (parts > 1)
    for (size_t k = 0; k < parts; k++) encode_part(t, text, len, cut[k], cut[k + 1], &enc[k]);
    size_t total = 0;
    for (size_t k = 0; k < parts; k++) total += enc[k].n;
    int32_t *ids = xcalloc(total + 1, sizeof(int32_t));
    size_t at = 0;
    for (size_t k = 0; k < parts; k++) {
        memcpy(ids + at, enc[k].ids, enc[k].n * sizeof(int32_t));
        at += enc[k].n;
        xfree(enc[k].ids);
    }
    xfree(enc);
    xfree(cut);
    *n_out = total;
    return ids;
}

// ----------------------------------------------------------------------------- decoding
static const char REPLACEMENT[] = "\xEF\xBF\xBD";  // U+FFFD for ids outside the vocabulary

char *tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, size_t *len_out) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        total += id >= 0 && id < t->vocab_size ? t->offset[id + 1] - t->offset[id]
                                               : sizeof REPLACEMENT - 1;
    }
    char *out = xcalloc(total + 1, 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id >= 0 && id < t->vocab_size) {
            size_t l = t->offset[id + 1] - t->offset[id];
            memcpy(out + at, t->bytes + t->offset[id], l);
            at += l;
        } else {
            memcpy(out + at, REPLACEMENT, sizeof REPLACEMENT - 1);
            at += sizeof REPLACEMENT - 1;
        }
    }
    out[at] = 0;
    if (len_out) *len_out = at;
    return out;
}
