// bpe_train.c: learns a byte-level BPE from text. The text is cut into GPT-2 pre-tokens and
// counted as unique words; each merge then touches only the words that contain its pair:
//   pair table: (left, right) -> count over all words (weighted by word frequency) and the list
//               of words where the pair was seen (may hold stale entries, re-checked on use)
//   max-heap:   (count, pair) entries, lazily corrected: a popped entry whose count is out of
//               date is pushed back with the current count.
// So the cost per merge is proportional to the words it changes, not to the whole corpus.
//
// Output file (read back by tokenizer_load; full description in tokenizer.h):
//   routelab-bpe 1 / vocab_size V / pretokenizer gpt2 / merges M, then M lines "L R": merge i
//   joins tokens L and R into token 256 + i. Tokens 0..255 are the bytes.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "heap.h"
#include "tokenizer_internal.h"

// ----------------------------------------------------------------------------- unique words
typedef struct {
    int32_t *tok;    // (tok_cap) all words' tokens back to back; merging shortens in place
    size_t tok_used, tok_cap;
    size_t *start;   // (cap) word w = tok[start[w] .. start[w] + len[w])
    uint32_t *len;   // (cap)
    int64_t *freq;   // (cap) occurrences in the text
    int32_t *stamp;  // (cap) last merge that visited the word, to skip duplicates in a list
    size_t n, cap;
    uint32_t *slot;  // (slot_cap) word index + 1 by hash of its bytes; used while counting
    size_t slot_cap;
    size_t pieces;   // pre-tokens seen
} Words;

static size_t hash_piece(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 29));
}

static int word_equals(const Words *ws, uint32_t w, const uint8_t *p, size_t n) {
    if (ws->len[w] != n) return 0;
    const int32_t *t = ws->tok + ws->start[w];
    for (size_t i = 0; i < n; i++)
        if (t[i] != p[i]) return 0;
    return 1;
}

// Adds one pre-token occurrence (called by gpt2_pretokenize).
static void count_piece(const uint8_t *p, size_t n, void *ctx) {
    Words *ws = ctx;
    ws->pieces++;
    if (2 * (ws->n + 1) > ws->slot_cap) {  // rehash from the stored tokens (still bytes here)
        xfree(ws->slot);
        ws->slot_cap = ws->slot_cap ? 2 * ws->slot_cap : 1 << 14;
        ws->slot = xcalloc(ws->slot_cap, sizeof(uint32_t));
        uint8_t *buf = NULL;
        size_t buf_cap = 0;
        for (uint32_t w = 0; w < ws->n; w++) {
            if (ws->len[w] > buf_cap) {
                buf_cap = 2 * ws->len[w];
                buf = xrealloc(buf, buf_cap);
            }
            for (uint32_t i = 0; i < ws->len[w]; i++) buf[i] = (uint8_t)ws->tok[ws->start[w] + i];
            size_t i = hash_piece(buf, ws->len[w]) & (ws->slot_cap - 1);
            while (ws->slot[i]) i = (i + 1) & (ws->slot_cap - 1);
            ws->slot[i] = w + 1;
        }
        xfree(buf);
    }
    size_t i = hash_piece(p, n) & (ws->slot_cap - 1);
    for (; ws->slot[i]; i = (i + 1) & (ws->slot_cap - 1)) {
        if (word_equals(ws, ws->slot[i] - 1, p, n)) {
            ws->freq[ws->slot[i] - 1]++;
            return;
        }
    }
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 1 << 12;
        ws->start = xrealloc(ws->start, ws->cap * sizeof(size_t));
        ws->len = xrealloc(ws->len, ws->cap * sizeof(uint32_t));
        ws->freq = xrealloc(ws->freq, ws->cap * sizeof(int64_t));
        ws->stamp = xrealloc(ws->stamp, ws->cap * sizeof(int32_t));
    }
    if (ws->tok_used + n > ws->tok_cap) {
        ws->tok_cap = ws->tok_used + n > 2 * ws->tok_cap ? ws->tok_used + n : 2 * ws->tok_cap;
        ws->tok = xrealloc(ws->tok, ws->tok_cap * sizeof(int32_t));
    }
    if (n > UINT32_MAX) fatal("bpe_train: a single pre-token of %zu bytes is too long", n);
    size_t w = ws->n++;
    ws->start[w] = ws->tok_used;
    ws->len[w] = (uint32_t)n;
    ws->freq[w] = 1;
    ws->stamp[w] = -1;
    for (size_t k = 0; k < n; k++) ws->tok[ws->tok_used++] = p[k];
    ws->slot[i] = (uint32_t)w + 1;
}

// ----------------------------------------------------------------------------- pair table
typedef struct {
    uint64_t key;
    int64_t count;
    uint32_t *words;  // (words_cap) words where the pair appeared; may repeat or be stale
    uint32_t n_words, words_cap;
    int32_t dirty;    // last merge that raised the count, to queue one heap push per merge
} PairStat;

typedef struct {
    uint32_t *slot;  // (cap) stat index + 1
    size_t cap;
    PairStat *stat;
    size_t n, stat_cap;
} PairTable;

static uint32_t pair_index(PairTable *pt, uint64_t key) {
    size_t mask = pt->cap - 1, i = hash_u64(key) & mask;
    for (; pt->slot[i]; i = (i + 1) & mask)
        if (pt->stat[pt->slot[i] - 1].key == key) return pt->slot[i] - 1;
    if (2 * (pt->n + 1) > pt->cap) {  // grow, then find the free slot again
        xfree(pt->slot);
        pt->cap *= 2;
        pt->slot = xcalloc(pt->cap, sizeof(uint32_t));
        mask = pt->cap - 1;
        for (size_t s = 0; s < pt->n; s++) {
            size_t j = hash_u64(pt->stat[s].key) & mask;
            while (pt->slot[j]) j = (j + 1) & mask;
            pt->slot[j] = (uint32_t)s + 1;
        }
        for (i = hash_u64(key) & mask; pt->slot[i]; i = (i + 1) & mask) {}
    }
    if (pt->n == pt->stat_cap) {
        pt->stat_cap = pt->stat_cap ? 2 * pt->stat_cap : 1 << 14;
        pt->stat = xrealloc(pt->stat, pt->stat_cap * sizeof(PairStat));
    }
    pt->stat[pt->n] = (PairStat){.key = key, .dirty = -1};
    pt->slot[i] = (uint32_t)pt->n + 1;
    return (uint32_t)pt->n++;
}

static void pair_add_word(PairStat *ps, uint32_t w) {
    if (ps->n_words && ps->words[ps->n_words - 1] == w) return;
    if (ps->n_words == ps->words_cap) {
        ps->words_cap = ps->words_cap ? 2 * ps->words_cap : 4;
        ps->words = xrealloc(ps->words, ps->words_cap * sizeof(uint32_t));
    }
    ps->words[ps->n_words++] = w;
}

// ----------------------------------------------------------------------------- max-heap
typedef struct {
    int64_t count;
    uint64_t key;
} HeapItem;

// Higher count first; among equal counts the smaller (left, right), which makes ties
// deterministic.
static int item_before(const void *pa, const void *pb) {
    const HeapItem *a = pa, *b = pb;
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

HEAP_DEFINE(pair_heap, HeapItem, item_before, 1 << 14)

static void push_pair(Heap *h, int64_t count, uint64_t key) {
    pair_heap_push(h, &(HeapItem){count, key});
}

// ----------------------------------------------------------------------------- training
typedef struct {
    Words words;
    PairTable pairs;
    Heap heap;  // of HeapItem, by item_before
    uint32_t *dirty;  // (dirty_cap) pairs whose count rose during the current merge
    size_t n_dirty, dirty_cap;
    uint8_t *in_span;  // (span_cap) scratch: token i is part of an occurrence of the merged pair
    size_t span_cap;
} Trainer;

static void change_count(Trainer *tr, int32_t left, int32_t right, int64_t delta, uint32_t w,
                         int32_t merge) {
    uint32_t s = pair_index(&tr->pairs, pair_key(left, right));
    PairStat *ps = &tr->pairs.stat[s];
    ps->count += delta;
    if (delta <= 0) return;  // a stale heap entry is corrected when it surfaces
    pair_add_word(ps, w);
    if (ps->dirty != merge) {
        ps->dirty = merge;
        if (tr->n_dirty == tr->dirty_cap) {
            tr->dirty_cap = tr->dirty_cap ? 2 * tr->dirty_cap : 1024;
            tr->dirty = xrealloc(tr->dirty, tr->dirty_cap * sizeof(uint32_t));
        }
        tr->dirty[tr->n_dirty++] = s;
    }
}

// Replaces every (a, b) in word w by `made`, left to right, and updates the pair counts of
// the pairs that touch a replaced occurrence (all others are unchanged).
static void merge_in_word(Trainer *tr, uint32_t w, int32_t a, int32_t b, int32_t made,
                          int32_t merge) {
    Words *ws = &tr->words;
    int32_t *x = ws->tok + ws->start[w];
    size_t n = ws->len[w];
    int64_t f = ws->freq[w];
    if (n > tr->span_cap) {
        tr->span_cap = 2 * n;
        tr->in_span = xrealloc(tr->in_span, tr->span_cap);
    }
    uint8_t *span = tr->in_span;
    memset(span, 0, n);
    int found = 0;
    for (size_t i = 0; i + 1 < n;) {
        if (x[i] == a && x[i + 1] == b) {
            span[i] = span[i + 1] = 1;
            found = 1;
            i += 2;
        } else {
            i++;
        }
    }
    if (!found) return;  // a stale entry in the pair's word list
    for (size_t j = 0; j + 1 < n; j++)
        if (span[j] || span[j + 1]) change_count(tr, x[j], x[j + 1], -f, w, merge);
    size_t k = 0;
    for (size_t i = 0; i < n;) {  // the same greedy scan, rewriting in place
        if (i + 1 < n && x[i] == a && x[i + 1] == b) {
            x[k++] = made;
            i += 2;
        } else {
            x[k++] = x[i++];
        }
    }
    for (size_t j = 0; j + 1 < k; j++)
        if (x[j] == made || x[j + 1] == made) change_count(tr, x[j], x[j + 1], f, w, merge);
    ws->len[w] = (uint32_t)k;
}

// Bytes of a token as a short printable string for progress lines.
static void describe_token(const int32_t *left, const int32_t *right, int32_t id, char *out,
                           size_t cap, size_t *at) {
    if (id >= 256) {
        describe_token(left, right, left[id - 256], out, cap, at);
        describe_token(left, right, right[id - 256], out, cap, at);
        return;
    }
    if (*at + 5 >= cap) return;
    if (id >= 0x20 && id < 0x7f && id != '\\') *at += (size_t)snprintf(out + *at, cap - *at, "%c", id);
    else *at += (size_t)snprintf(out + *at, cap - *at, "\\x%02x", id);
}

static void write_bpe_file(const char *path, int vocab, const int32_t *left,
                           const int32_t *right) {
    size_t n_merges = (size_t)vocab - 256, cap = 128 + n_merges * 24, at = 0;
    char *buf = xcalloc(cap, 1);
    at += (size_t)snprintf(buf, cap, "routelab-bpe 1\nvocab_size %d\npretokenizer gpt2\n"
                                     "merges %zu\n", vocab, n_merges);
    for (size_t i = 0; i < n_merges; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%d %d\n", left[i], right[i]);
    write_file_atomic(path, buf, at);
    xfree(buf);
}

void bpe_train(const char *text, size_t len, int vocab_size, const char *out_path,
               int verbose) {
    if (vocab_size < 256 || vocab_size > 65536)
        fatal("bpe_train: vocab_size %d is out of range: expected 256..65536 (256 byte tokens "
              "plus merges; shards store token ids as uint16)", vocab_size);
    double t0 = now_seconds();
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    Words *ws = &tr.words;
    gpt2_pretokenize(text, len, 0, len, count_piece, ws);
    xfree(ws->slot);
    ws->slot = NULL;
    if (verbose)
        printf("bpe_train: %zu bytes, %zu pre-tokens, %zu unique (%.2f s)\n", len, ws->pieces,
               ws->n, now_seconds() - t0);

    tr.pairs.cap = 1 << 16;
    tr.pairs.slot = xcalloc(tr.pairs.cap, sizeof(uint32_t));
    for (uint32_t w = 0; w < ws->n; w++) {
        const int32_t *x = ws->tok + ws->start[w];
        for (uint32_t j = 0; j + 1 < ws->len[w]; j++) {
            uint32_t s = pair_index(&tr.pairs, pair_key(x[j], x[j + 1]));  // may move stat[]
            PairStat *ps = &tr.pairs.stat[s];
            ps->count += ws->freq[w];
            pair_add_word(ps, w);
        }
    }
    for (size_t s = 0; s < tr.pairs.n; s++)
        push_pair(&tr.heap, tr.pairs.stat[s].count, tr.pairs.stat[s].key);

    int n_wanted = vocab_size - 256, n_done = 0;
    int32_t *left = xcalloc((size_t)n_wanted + 1, sizeof(int32_t));
    int32_t *right = xcalloc((size_t)n_wanted + 1, sizeof(int32_t));
    while (n_done < n_wanted) {
        // The best pair whose heap entry is current.
        HeapItem best = {0, 0};
        uint32_t s = 0;
        while (tr.heap.n) {
            best = pair_heap_pop(&tr.heap);
            s = pair_index(&tr.pairs, best.key);
            int64_t now = tr.pairs.stat[s].count;
            if (now == best.count) break;
            if (now > 0) push_pair(&tr.heap, now, best.key);
            best.count = 0;
        }
        if (best.count < 2) {
            warnf("bpe_train: stopped at vocab %d of %d: no pair of tokens occurs twice in the "
                  "%zu bytes of text (give more text or a smaller --vocab_size)", 256 + n_done,
                  vocab_size, len);
            break;
        }
        int32_t a = (int32_t)(best.key >> 32), b = (int32_t)(uint32_t)best.key;
        int32_t made = 256 + n_done;
        left[n_done] = a;
        right[n_done] = b;
        // Take the word list: the pair disappears everywhere, so it is never needed again.
        PairStat *ps = &tr.pairs.stat[s];
        uint32_t *list = ps->words, n_list = ps->n_words;
        ps->words = NULL;
        ps->n_words = ps->words_cap = 0;
        tr.n_dirty = 0;
        for (uint32_t i = 0; i < n_list; i++) {
            uint32_t w = list[i];
            if (ws->stamp[w] == n_done) continue;
            ws->stamp[w] = n_done;
            merge_in_word(&tr, w, a, b, made, n_done);
        }
        xfree(list);
        ASSERT(tr.pairs.stat[s].count == 0);
        for (size_t d = 0; d < tr.n_dirty; d++)
            push_pair(&tr.heap, tr.pairs.stat[tr.dirty[d]].count, tr.pairs.stat[tr.dirty[d]].key);
        n_done++;
        if (verbose && (n_done % 1000 == 0 || n_done == n_wanted)) {
            char desc[64];
            size_t at = 0;
            desc[0] = 0;
            describe_token(left, right, made, desc, sizeof desc, &at);
            printf("bpe_train: merge %d/%d: token %d = \"%s\" (count %lld, %.2f s)\n", n_done,
                   n_wanted, made, desc, (long long)best.count, now_seconds() - t0);
        }
    }
    write_bpe_file(out_path, 256 + n_done, left, right);
    if (verbose)
        printf("bpe_train: wrote %s: vocab %d in %.2f s\n", out_path, 256 + n_done,
               now_seconds() - t0);

    xfree(left);
    xfree(right);
    for (size_t i = 0; i < tr.pairs.n; i++) xfree(tr.pairs.stat[i].words);
    xfree(tr.pairs.stat);
    xfree(tr.pairs.slot);
    heap_free(&tr.heap);
    xfree(tr.dirty);
    xfree(tr.in_span);
    xfree(ws->tok);
    xfree(ws->start);
    xfree(ws->len);
    xfree(ws->freq);
    xfree(ws->stamp);
}
