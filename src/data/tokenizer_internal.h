// tokenizer_internal.h: the pieces tokenizer.c, tokenizer_gpt2.c, tokenizer_hf.c and bpe_train.c
// share. Other code uses tokenizer.h only.
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

// ----------------------------------------------------------------------------- bytes -> id
// Hash of token bytes -> id over the ids with include[id] != 0 (all ids when include is NULL);
// of equal byte strings the lower id is kept.
typedef struct {
    int32_t *slot;          // (cap) token id or -1
    size_t cap;
    const uint8_t *bytes;   // the indexed tokens' bytes (not owned)
    const size_t *offset;   // (n + 1) token i = bytes[offset[i] .. offset[i + 1])
} TokenIndex;

void token_index_build(TokenIndex *ix, const uint8_t *bytes, const size_t *offset, size_t n,
                       const uint8_t *include);
int32_t token_index_find(const TokenIndex *ix, const uint8_t *p, size_t n);
void token_index_free(TokenIndex *ix);

// ----------------------------------------------------------------------------- tokenizer
typedef struct HfTokenizer HfTokenizer;  // tokenizer_hf.c: the tokenizer.json pipeline

struct Tokenizer {
    char *spec;
    int vocab_size;
    int32_t byte_token[256];  // id of the token that is exactly byte b
    uint8_t *bytes;           // all tokens' bytes, back to back
    size_t *offset;           // (vocab_size + 1) token i = bytes[offset[i] .. offset[i + 1])
    MergeTable merges;        // empty for "bytes"
    // Pre-tokens found here are emitted whole, unmerged (Hugging Face's ignore_merges); empty
    // (cap 0) otherwise.
    TokenIndex whole;
    HfTokenizer *hf;          // owned; NULL unless loaded from a tokenizer.json
};

// The BPE half of encoding, shared by every kind: pre-tokenizes text (GPT-2's regex, or the
// hf pipeline's pre-tokenizer) and merges each piece; what tokenizer_encode does for gpt2 and
// trained BPEs. Returns *n_out ids (caller frees).
int32_t *bpe_encode(const Tokenizer *t, const char *text, size_t len, size_t *n_out);

// ----------------------------------------------------------------------------- GPT-2 parts
// GPT-2's pre-tokenization regex (PCRE2 syntax).
extern const char GPT2_PATTERN[];
// GPT-2's byte <-> printable-character mapping (also Hugging Face's ByteLevel alphabet):
// byte_to_cp[b] is the code point standing for byte b; cp_to_byte[c] the byte, or -1.
void gpt2_byte_maps(int byte_to_cp[256], int cp_to_byte[512]);
// Decodes UTF-8 `s` whose code points are all byte stand-ins into out (at most n bytes); returns
// the byte count, or -1 when some character is not a stand-in.
long gpt2_unmap(const char *s, size_t n, const int cp_to_byte[512], uint8_t *out);
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

// ----------------------------------------------------------------------------- Hugging Face
// tokenizer_hf.c. hf_encode: added tokens, normalizer, then bpe_encode on each stretch between
// added tokens. hf_pretokenize: the pre-tokenizer of tokenizer.json on text[begin, end), with
// gpt2_pretokenize's contract; hf_cut_safe: whether gpt2_safe_cut's positions are piece starts
// for this pre-tokenizer too (known patterns only), else the text is encoded in one part.
Tokenizer *hf_tokenizer_load(const char *spec, const char *dir);  // reads DIR/tokenizer.json
int32_t *hf_encode(const Tokenizer *t, const char *text, size_t len, size_t *n_out);
void hf_pretokenize(const HfTokenizer *hf, const char *text, size_t len, size_t begin,
                    size_t end, PretokenFn fn, void *ctx);
int hf_cut_safe(const HfTokenizer *hf);
void hf_free(HfTokenizer *hf);

#endif
