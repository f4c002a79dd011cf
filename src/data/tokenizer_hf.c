// tokenizer_hf.c: Hugging Face byte-level BPE tokenizers (tokenizer.json of Qwen2/Qwen3, Llama 3,
// GPT-2 style), encoding as the `tokenizers` library's encode(text, add_special_tokens=False):
//   1. added tokens are cut out of the raw text, leftmost then longest first (those with
//      "normalized": true in a second pass over the normalized stretches, as the library does);
//   2. each stretch between them is normalized (null, NFC through libutf8proc, or a Sequence);
//   3. the pre-tokenizer splits it: Split steps (pattern.Regex, behavior Isolated), then
//      ByteLevel (add_prefix_space, use_regex with GPT-2's pattern);
//   4. each piece goes through the one BPE merge engine of tokenizer.c (bpe_encode), with
//      ignore_merges honoured there.
// The regexes are written for Oniguruma, which the library uses; PCRE2 (UTF, UCP) runs them with
// one rewrite: \s becomes Oniguruma's Unicode \s (TAB..CR, U+0085, Zs, U+2028, U+2029), since
// PCRE2's own \s also takes U+180E. Whatever else the file asks for is a fatal error naming the
// field: never an approximation.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"

#define HF_MAX_ID (1 << 24)  // the model's MAX_VOCAB
#define HF_MAX_STEPS 64
#define HF_WHAT "routelab reads byte-level BPE tokenizer.json files: model BPE, normalizer " \
                "null/NFC, pre_tokenizer Split(Isolated) + ByteLevel, decoder ByteLevel"

// ----------------------------------------------------------------------------- the pipeline
typedef enum { STEP_SPLIT, STEP_BYTELEVEL } StepKind;

typedef struct {
    StepKind kind;
    const char *source;    // SPLIT: pattern.Regex as written (points into the JSON until compiled)
    int add_prefix_space;  // BYTELEVEL
    int use_regex;         // BYTELEVEL: split with GPT-2's pattern
    pcre2_code *re;        // owned; SPLIT: the pattern, BYTELEVEL: GPT-2's when use_regex, or NULL
} Step;

typedef struct {
    uint8_t *content;  // (len) owned
    size_t len;
    int32_t id;
    int normalized;    // matched in the normalized text (second pass)
} Added;

struct HfTokenizer {
    int nfc;            // the normalizer applies NFC
    Step *steps;        // (n_steps) the pre-tokenizer, ByteLevel last
    size_t n_steps;
    Added *added;       // (n_added) sorted by first byte, then longest first
    size_t n_added;
    size_t first[257];  // added tokens starting with byte b: added[first[b] .. first[b + 1])
    int cut_safe;       // see hf_cut_safe
};

// The Split patterns whose pieces never span "\n" + an ASCII non-space byte, so that
// gpt2_safe_cut's positions are piece starts (checked alternative by alternative: only the
// whitespace alternatives and the trailing [\r\n]* of punctuation take a newline, and none of
// them continues with a non-space character).
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int hf_cut_safe(const HfTokenizer *hf) { return hf->cut_safe; }

void hf_free(HfTokenizer *hf) {
    if (!hf) return;
    for (size_t i = 0; i < hf->n_steps; i++) pcre2_code_free(hf->steps[i].re);
    for (size_t i = 0; i < hf->n_added; i++) xfree(hf->added[i].content);
    xfree(hf->steps);
    xfree(hf->added);
    xfree(hf);
}

// ----------------------------------------------------------------------------- regexes
// PCRE2 allocates through xrealloc/xfree, so that a fuzz target's jump out of fatal() frees
// what PCRE2 held too (common.h's allocation tracking).
static void *pcre2_alloc(size_t n, void *data) { return (void)data, xrealloc(NULL, n ? n : 1); }
static void pcre2_release(void *p, void *data) { (void)data, xfree(p); }
static pcre2_general_context *pcre2_context;
static pthread_once_t pcre2_context_once = PTHREAD_ONCE_INIT;
static void make_pcre2_context(void) {
    pcre2_context = pcre2_general_context_create(pcre2_alloc, pcre2_release, NULL);
    if (!pcre2_context) fatal("out of memory creating a PCRE2 context");
}
static pcre2_general_context *pcre2_ctx(void) {
    pthread_once(&pcre2_context_once, make_pcre2_context);
    return pcre2_context;
}

// Oniguruma's Unicode \s, as the inside of a character class.
static const char ONIG_SPACE[] = "\\t-\\r\\x{85}\\p{Zs}\\x{2028}\\x{2029}";

// Rewrites \s and \S for PCRE2 (see the top); returns a new string, or NULL with *why set when
// the pattern uses \S inside a class (no single-class rewrite exists).
static char *onig_to_pcre2(const char *src, const char **why) {
    size_t n = strlen(src), at = 0;
    char *out = xcalloc(n * (sizeof ONIG_SPACE + 3) + 1, 1);  // each \s grows to at most this
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char d = src[++i];
            if (d == 's' || d == 'S') {
                if (d == 'S' && in_class) {
                    xfree(out);
                    *why = "\\S inside a character class";
                    return NULL;
                }
                const char *open = in_class ? "" : d == 's' ? "[" : "[^";
                at += (size_t)sprintf(out + at, "%s%s%s", open, ONIG_SPACE, in_class ? "" : "]");
            } else {
                out[at++] = c;
                out[at++] = d;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            out[at++] = c;
            if (i + 1 < n && src[i + 1] == '^') out[at++] = src[++i];
            if (i + 1 < n && src[i + 1] == ']') out[at++] = src[++i];  // a literal ']' first
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        out[at++] = c;
    }
    out[at] = 0;
    return out;
}

// Compiles every step's regex; on an error frees those compiled so far, then a fatal error.
static void compile_steps(HfTokenizer *hf, const char *path) {
    for (size_t k = 0; k < hf->n_steps; k++) {
        Step *st = &hf->steps[k];
        const char *src = st->kind == STEP_SPLIT ? st->source : st->use_regex ? GPT2_PATTERN : NULL;
        if (!src) continue;
        const char *why = NULL;
        char *pattern = onig_to_pcre2(src, &why);
        int err = 0;
        PCRE2_SIZE err_at = 0;
        PCRE2_UCHAR msg[256] = "";
        if (pattern) {
            // MATCH_INVALID_UTF (implies UTF): invalid UTF-8 is skipped, never rejected.
            pcre2_compile_context *cc = pcre2_compile_context_create(pcre2_ctx());
            st->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_MATCH_INVALID_UTF | PCRE2_UCP, &err, &err_at, cc);
            pcre2_compile_context_free(cc);
            xfree(pattern);
            if (!st->re) {
                pcre2_get_error_message(err, msg, sizeof msg);
                why = (const char *)msg;
            }
        }
        if (!st->re) {
            for (size_t j = 0; j < k; j++) pcre2_code_free(hf->steps[j].re), hf->steps[j].re = NULL;
            fatal("tokenizer '%s': pre_tokenizer step %zu: pattern.Regex cannot be compiled "
                  "(%s, at offset %zu); " HF_WHAT, path, k, why, (size_t)err_at);
        }
        pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE);  // without JIT, matching still works
    }
}

// ----------------------------------------------------------------------------- pre-tokenizer
typedef struct {
    const HfTokenizer *hf;
    pcre2_match_data **md;  // (n_steps) one per step: the steps nest
    pcre2_match_context *mctx;
    PretokenFn fn;
    void *ctx;
} Splitter;

static size_t utf8_char_len(const uint8_t *s, size_t n) {  // 1 for an invalid byte
    size_t l = s[0] < 0xC0 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    return l <= n ? l : 1;
}

static void run_step(const Splitter *sp, size_t k, const uint8_t *s, size_t len, size_t begin,
                     size_t end);

// Step k's own splitting of s[begin, end) (the subject is s[0, len), so a look-ahead sees past
// `end`); each piece goes on to step k + 1.
static void split_piece(const Splitter *sp, size_t k, const uint8_t *s, size_t len,
                        size_t begin, size_t end) {
    const Step *st = &sp->hf->steps[k];
    if (!st->re) {  // ByteLevel without regex: the piece as it is
        run_step(sp, k + 1, s, len, begin, end);
        return;
    }
    pcre2_match_data *md = sp->md[k];
    size_t done = begin, from_pos = begin;  // s[begin, done) handed on; search from from_pos
    while (from_pos < end) {
        int rc = pcre2_match(st->re, s, len, from_pos, 0, md, sp->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            fatal("PCRE2 failed pre-tokenizing at byte %zu: %s (simplify the tokenizer.json "
                  "pattern, or report)", from_pos, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t from = ov[0], to = ov[1];
        if (from >= end) break;
        if (to > end) to = end;  // only at a cut, which the known patterns never cross
        if (from > done) run_step(sp, k + 1, s, len, done, from);  // Isolated: the gap too
        if (to > from) {
            run_step(sp, k + 1, s, len, from, to);
            done = from_pos = to;
        } else {  // an empty match splits nothing; look again one character on
            from_pos = from + utf8_char_len(s + from, end - from);
        }
    }
    run_step(sp, k + 1, s, len, done, end);
}

// Steps k.. on s[begin, end). Step 0 gets a stretch (or a part of one) as s[0, len); later
// steps get one piece each, as the library runs each step on each piece of the one before.
static void run_step(const Splitter *sp, size_t k, const uint8_t *s, size_t len, size_t begin,
                     size_t end) {
    if (begin >= end) return;
    if (k == sp->hf->n_steps) {
        sp->fn(s + begin, end - begin, sp->ctx);
        return;
    }
    if (k > 0) {  // a piece is its own subject
        s += begin, len = end - begin, end -= begin, begin = 0;
    }
    const Step *st = &sp->hf->steps[k];
    if (st->kind == STEP_BYTELEVEL && st->add_prefix_space && s[begin] != ' ') {
        size_t n = end - begin;
        uint8_t *buf = xcalloc(n + 1, 1);  // " " + piece: the library prepends to each piece
        buf[0] = ' ';
        memcpy(buf + 1, s + begin, n);
        split_piece(sp, k, buf, n + 1, 0, n + 1);
        xfree(buf);
        return;
    }
    split_piece(sp, k, s, len, begin, end);
}

void hf_pretokenize(const HfTokenizer *hf, const char *text, size_t len, size_t begin,
                    size_t end, PretokenFn fn, void *ctx) {
    Splitter sp = {hf, xcalloc(hf->n_steps + 1, sizeof(pcre2_match_data *)), NULL, fn, ctx};
    sp.mctx = pcre2_match_context_create(pcre2_ctx());
    pcre2_jit_stack *jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, pcre2_ctx());
    int ok = sp.mctx && jit_stack;
    for (size_t k = 0; k < hf->n_steps; k++)
        if (hf->steps[k].re) {
            sp.md[k] = pcre2_match_data_create_from_pattern(hf->steps[k].re, pcre2_ctx());
            ok &= sp.md[k] != NULL;
        }
    if (!ok) fatal("out of memory creating PCRE2 match data");
    pcre2_jit_stack_assign(sp.mctx, NULL, jit_stack);
    run_step(&sp, 0, (const uint8_t *)text, len, begin, end);
    for (size_t k = 0; k < hf->n_steps; k++) pcre2_match_data_free(sp.md[k]);
    xfree(sp.md);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(sp.mctx);
}

// ----------------------------------------------------------------------------- normalizer
// Length of the strictly valid UTF-8 character at s (no overlong forms, no surrogates, at most
// U+10FFFF), or 0: what PCRE2's MATCH_INVALID_UTF also calls invalid.
static size_t valid_utf8(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t l = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!l || l > n) return 0;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && s[1] >= 0xA0) return 0;  // surrogate
    if (c == 0xF0 && s[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && s[1] >= 0x90) return 0;  // beyond U+10FFFF
    return l;
}

typedef struct {
    char *p;  // (cap)
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const void *src, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = b->n + n + 1 > 2 * b->cap ? b->n + n + 1 : 2 * b->cap;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

// NFC of each valid UTF-8 stretch of s; invalid bytes pass through (the library only sees
// valid UTF-8, so nothing is lost by keeping them as they are). Returns a new buffer.
static char *nfc(const char *s, size_t n, size_t *out_len) {
    const uint8_t *u = (const uint8_t *)s;
    Buf out = {xcalloc(n + 1, 1), 0, n + 1};
    size_t i = 0;
    while (i < n) {
        size_t j = i, ascii = 1, l;
        while (j < n && (l = valid_utf8(u + j, n - j)) > 0) {
            ascii &= l == 1;
            j += l;
        }
        if (j == i) {  // one invalid byte
            buf_put(&out, s + i, 1);
            i++;
            continue;
        }
        if (ascii) {  // NFC leaves ASCII as it is
            buf_put(&out, s + i, j - i);
        } else {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t m = utf8proc_map(u + i, (utf8proc_ssize_t)(j - i), &dst,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m < 0) fatal("NFC normalization failed: %s (please report)", utf8proc_errmsg(m));
            buf_put(&out, dst, (size_t)m);
            free(dst);  // utf8proc allocates with malloc
        }
        i = j;
    }
    out.p[out.n] = 0;
    *out_len = out.n;
    return out.p;
}

// ----------------------------------------------------------------------------- encoding
typedef struct {
    int32_t *ids;  // (cap)
    size_t n, cap;
} Ids;

static void ids_put(Ids *v, const int32_t *ids, size_t n) {
    if (v->n + n + 1 > v->cap) {
        v->cap = v->n + n + 1 > 2 * v->cap ? v->n + n + 1 : 2 * v->cap;
        v->ids = xrealloc(v->ids, v->cap * sizeof(int32_t));
    }
    memcpy(v->ids + v->n, ids, n * sizeof(int32_t));
    v->n += n;
}

// The leftmost, then longest, added token of the given pass in s[from, n): its index, its
// position in *at; -1 when there is none.
static long find_added(const HfTokenizer *hf, const uint8_t *s, size_t n, size_t from,
                       int normalized, size_t *at) {
    for (size_t i = from; i < n; i++) {
        for (size_t k = hf->first[s[i]]; k < hf->first[s[i] + 1]; k++) {
            const Added *a = &hf->added[k];
            if (a->normalized == normalized && a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) {
                *at = i;
                return (long)k;
            }
        }
    }
    return -1;
}

static void encode_bpe(const Tokenizer *t, const char *s, size_t n, Ids *out) {
    if (!n) return;
    size_t k;
    int32_t *ids = bpe_encode(t, s, n, &k);
    ids_put(out, ids, k);
    xfree(ids);
}

// A normalized stretch: cut out the "normalized" added tokens, BPE the rest.
static void encode_normalized(const Tokenizer *t, const char *s, size_t n, Ids *out) {
    size_t pos = 0, at;
    long k;
    while ((k = find_added(t->hf, (const uint8_t *)s, n, pos, 1, &at)) >= 0) {
        encode_bpe(t, s + pos, at - pos, out);
        ids_put(out, &t->hf->added[k].id, 1);
        pos = at + t->hf->added[k].len;
    }
    encode_bpe(t, s + pos, n - pos, out);
}

static void encode_stretch(const Tokenizer *t, const char *s, size_t n, Ids *out) {
    if (!n) return;
    if (!t->hf->nfc) {
        encode_normalized(t, s, n, out);
        return;
    }
    size_t m;
    char *norm = nfc(s, n, &m);
    encode_normalized(t, norm, m, out);
    xfree(norm);
}

int32_t *hf_encode(const Tokenizer *t, const char *text, size_t len, size_t *n_out) {
    Ids out = {xcalloc(len / 3 + 16, sizeof(int32_t)), 0, len / 3 + 16};
    size_t pos = 0, at;
    long k;
    while ((k = find_added(t->hf, (const uint8_t *)text, len, pos, 0, &at)) >= 0) {
        encode_stretch(t, text + pos, at - pos, &out);
        ids_put(&out, &t->hf->added[k].id, 1);
        pos = at + t->hf->added[k].len;
    }
    encode_stretch(t, text + pos, len - pos, &out);
    *n_out = out.n;
    return out.ids;
}

// ----------------------------------------------------------------------------- reading JSON
static const cJSON *field(const cJSON *o, const char *name) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static int is_null(const cJSON *o) { return !o || cJSON_IsNull(o); }

static _Noreturn void unsupported(const char *path, const char *where, const char *value) {
    fatal("tokenizer '%s': %s = %s is not supported (%s)", path, where, value, HF_WHAT);
}

// o's "type" string, or fatal naming where.
static const char *type_of(const cJSON *o, const char *path, const char *where) {
    const cJSON *t = field(o, "type");
    if (!cJSON_IsString(t))
        fatal("tokenizer '%s': %s needs a \"type\" string (is this a tokenizer.json of the "
              "`tokenizers` library?)", path, where);
    return t->valuestring;
}

static int get_bool(const cJSON *o, const char *name, int dflt, const char *path,
                    const char *where) {
    const cJSON *v = field(o, name);
    if (is_null(v)) return dflt;
    if (!cJSON_IsBool(v))
        fatal("tokenizer '%s': %s.%s must be true or false (the file is corrupt)", path, where,
              name);
    return cJSON_IsTrue(v);
}

static int parse_normalizer(const cJSON *n, const char *path, int depth) {
    if (is_null(n)) return 0;
    const char *type = type_of(n, path, "normalizer");
    if (strcmp(type, "NFC") == 0) return 1;
    if (strcmp(type, "Sequence") == 0 && depth < 8) {
        const cJSON *list = field(n, "normalizers");
        if (!cJSON_IsArray(list))
            fatal("tokenizer '%s': normalizer Sequence needs a \"normalizers\" list (the file is "
                  "corrupt)", path);
        int any = 0;
        for (const cJSON *e = list->child; e; e = e->next) any |= parse_normalizer(e, path, depth + 1);
        return any;
    }
    unsupported(path, "normalizer.type", type);
}

static void parse_pre_step(HfTokenizer *hf, const cJSON *p, const char *path) {
    const char *type = type_of(p, path, "pre_tokenizer");
    if (hf->n_steps == HF_MAX_STEPS)
        fatal("tokenizer '%s': more than %d pre_tokenizer steps", path, HF_MAX_STEPS);
    Step *st = &hf->steps[hf->n_steps];
    if (strcmp(type, "Split") == 0) {
        const cJSON *pattern = field(p, "pattern");
        const cJSON *re = field(pattern, "Regex");
        if (!cJSON_IsString(re)) {
            if (field(pattern, "String")) unsupported(path, "pre_tokenizer Split pattern", "String");
            fatal("tokenizer '%s': pre_tokenizer Split needs pattern.Regex (the file is corrupt)",
                  path);
        }
        const cJSON *behavior = field(p, "behavior");
        if (!cJSON_IsString(behavior))
            fatal("tokenizer '%s': pre_tokenizer Split needs a \"behavior\" string", path);
        if (strcmp(behavior->valuestring, "Isolated") != 0)
            unsupported(path, "pre_tokenizer Split behavior", behavior->valuestring);
        if (get_bool(p, "invert", 0, path, "pre_tokenizer Split"))
            unsupported(path, "pre_tokenizer Split invert", "true");
        *st = (Step){STEP_SPLIT, re->valuestring, 0, 0, NULL};
    } else if (strcmp(type, "ByteLevel") == 0) {
        // The library's defaults for fields an older file leaves out.
        *st = (Step){STEP_BYTELEVEL, NULL, get_bool(p, "add_prefix_space", 1, path, "ByteLevel"),
                     get_bool(p, "use_regex", 1, path, "ByteLevel"), NULL};
    } else {
        unsupported(path, "pre_tokenizer.type", type);
    }
    hf->n_steps++;
}

static void parse_pre_tokenizer(HfTokenizer *hf, const cJSON *p, const char *path) {
    if (is_null(p)) unsupported(path, "pre_tokenizer", "null (a byte-level BPE needs ByteLevel)");
    hf->steps = xcalloc(HF_MAX_STEPS, sizeof(Step));
    if (strcmp(type_of(p, path, "pre_tokenizer"), "Sequence") == 0) {
        const cJSON *list = field(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            fatal("tokenizer '%s': pre_tokenizer Sequence needs a \"pretokenizers\" list", path);
        for (const cJSON *e = list->child; e; e = e->next) parse_pre_step(hf, e, path);
    } else {
        parse_pre_step(hf, p, path);
    }
    for (size_t k = 0; k < hf->n_steps; k++)
        if ((hf->steps[k].kind == STEP_BYTELEVEL) != (k + 1 == hf->n_steps))
            unsupported(path, "pre_tokenizer", "a sequence that does not end in exactly one "
                        "ByteLevel");
    const Step *first = &hf->steps[0];
    hf->cut_safe = first->kind == STEP_SPLIT
                       ? strcmp(first->source, QWEN2_PATTERN) == 0 ||
                             strcmp(first->source, LLAMA3_PATTERN) == 0 ||
                             strcmp(first->source, GPT2_PATTERN) == 0
                       : first->use_regex && !first->add_prefix_space;
}

static void check_model(const cJSON *m, const char *path) {
    if (!cJSON_IsObject(m)) fatal("tokenizer '%s': no \"model\" object (not a tokenizer.json)", path);
    const char *type = type_of(m, path, "model");
    if (strcmp(type, "BPE") != 0) unsupported(path, "model.type", type);
    const cJSON *dropout = field(m, "dropout");
    if (!is_null(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        unsupported(path, "model.dropout", "a non-zero value");
    if (get_bool(m, "byte_fallback", 0, path, "model")) unsupported(path, "model.byte_fallback", "true");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *a = field(m, affixes[i]);
        if (!is_null(a) && !(cJSON_IsString(a) && !a->valuestring[0]))
            fatal("tokenizer '%s': model.%s must be null or \"\" (%s)", path, affixes[i], HF_WHAT);
    }
}

static int32_t get_id(const cJSON *v, const char *path, const char *what, const char *name) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= HF_MAX_ID ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        fatal("tokenizer '%s': %s '%s' needs an integer id in [0, %d) (the file is corrupt)", path,
              what, name ? name : "?", HF_MAX_ID);
    return (int32_t)v->valuedouble;
}

static void parse_added(HfTokenizer *hf, const cJSON *list, const char *path) {
    if (is_null(list)) return;
    if (!cJSON_IsArray(list)) fatal("tokenizer '%s': added_tokens must be a list", path);
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    hf->added = xcalloc(n + 1, sizeof(Added));
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        const cJSON *content = field(e, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            fatal("tokenizer '%s': added_tokens[%zu] needs a non-empty \"content\" string", path, i);
        static const char *const flags[] = {"single_word", "lstrip", "rstrip"};
        for (int f = 0; f < 3; f++)
            if (get_bool(e, flags[f], 0, path, "added_tokens[]")) {
                char where[64];
                snprintf(where, sizeof where, "added_tokens[%zu].%s", i, flags[f]);
                unsupported(path, where, "true");
            }
        Added *a = &hf->added[hf->n_added++];
        a->id = get_id(field(e, "id"), path, "added token", content->valuestring);
        a->len = strlen(content->valuestring);
        a->content = xcalloc(a->len + 1, 1);
        memcpy(a->content, content->valuestring, a->len);
        a->normalized = get_bool(e, "normalized", 0, path, "added_tokens[]");
    }
}

static int added_before(const void *pa, const void *pb) {  // by first byte, longest first
    const Added *a = pa, *b = pb;
    if (a->content[0] != b->content[0]) return a->content[0] < b->content[0] ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void index_added(HfTokenizer *hf) {
    if (hf->n_added) qsort(hf->added, hf->n_added, sizeof(Added), added_before);  // added may be NULL
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (b < 256 && k < hf->n_added && hf->added[k].content[0] < b) k++;
        hf->first[b] = k;
    }
    hf->first[256] = hf->n_added;
}

// ----------------------------------------------------------------------------- vocab, merges
// Token bytes: a vocab string is byte-level characters (else its UTF-8 is taken as it is, as
// for GPT-2's special tokens); an added token's bytes are its content; other ids are U+FFFD.
static void build_vocab(Tokenizer *t, const cJSON *vocab, const HfTokenizer *hf,
                        const int cp_to_byte[512], uint8_t **in_vocab, const char *path) {
    if (!cJSON_IsObject(vocab)) fatal("tokenizer '%s': model.vocab must be an object", path);
    int32_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = get_id(e, path, "model.vocab entry", e->string);
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; i < hf->n_added; i++)
        if (hf->added[i].id > max_id) max_id = hf->added[i].id;
    if (max_id < 0) fatal("tokenizer '%s': model.vocab is empty", path);
    size_t n = (size_t)max_id + 1;
    t->vocab_size = (int)n;
    uint8_t **tok = xcalloc(n, sizeof(uint8_t *));
    size_t *tok_len = xcalloc(n, sizeof(size_t));
    *in_vocab = xcalloc(n, 1);
    size_t total = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = (int32_t)e->valuedouble;
        if ((*in_vocab)[id])
            fatal("tokenizer '%s': model.vocab gives id %d to two tokens (the file is corrupt)",
                  path, id);
        (*in_vocab)[id] = 1;
        size_t klen = strlen(e->string);
        tok[id] = xcalloc(klen + 1, 1);
        long b = gpt2_unmap(e->string, klen, cp_to_byte, tok[id]);
        if (b < 0) {
            memcpy(tok[id], e->string, klen);
            b = (long)klen;
        }
        tok_len[id] = (size_t)b;
        total += (size_t)b;
    }
    for (size_t i = 0; i < hf->n_added; i++) {
        const Added *a = &hf->added[i];
        if ((*in_vocab)[a->id]) {
            if (tok_len[a->id] != a->len || memcmp(tok[a->id], a->content, a->len) != 0)
                fatal("tokenizer '%s': added token '%s' has id %d, which model.vocab gives to "
                      "another token (the file is corrupt)", path, (const char *)a->content, a->id);
            continue;
        }
        if (tok[a->id]) {
            if (tok_len[a->id] != a->len || memcmp(tok[a->id], a->content, a->len) != 0)
                fatal("tokenizer '%s': two added tokens have id %d", path, a->id);
            continue;
        }
        tok[a->id] = xcalloc(a->len + 1, 1);
        memcpy(tok[a->id], a->content, a->len);
        tok_len[a->id] = a->len;
        total += a->len;
    }
    static const char REPLACEMENT[] = "\xEF\xBF\xBD";
    for (size_t id = 0; id < n; id++)
        if (!tok[id]) total += 3;
    t->bytes = xcalloc(total + 1, 1);
    t->offset = xcalloc(n + 1, sizeof(size_t));
    for (size_t id = 0; id < n; id++) {
        const uint8_t *src = tok[id] ? tok[id] : (const uint8_t *)REPLACEMENT;
        size_t l = tok[id] ? tok_len[id] : 3;
        memcpy(t->bytes + t->offset[id], src, l);
        t->offset[id + 1] = t->offset[id] + l;
        xfree(tok[id]);
    }
    xfree(tok);
    xfree(tok_len);
}

// A merge's two sides: "a b" (one space) or ["a", "b"].
static int merge_sides(const cJSON *m, const char **a, size_t *la, const char **b, size_t *lb) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return 0;
        *a = s, *la = (size_t)(sp - s), *b = sp + 1, *lb = strlen(sp + 1);
        return *la && *lb;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *la = strlen(*a);
        *b = m->child->next->valuestring, *lb = strlen(*b);
        return *la && *lb;
    }
    return 0;
}

static void build_merges(Tokenizer *t, const cJSON *merges, const TokenIndex *ix,
                         const int cp_to_byte[512], const char *path) {
    if (is_null(merges)) merges = NULL;
    else if (!cJSON_IsArray(merges)) fatal("tokenizer '%s': model.merges must be a list", path);
    size_t n = merges ? (size_t)cJSON_GetArraySize(merges) : 0;
    const cJSON **list = xcalloc(n + 1, sizeof(cJSON *));
    size_t i = 0, longest = 0;
    for (const cJSON *m = merges ? merges->child : NULL; m; m = m->next) {
        const char *a, *b;
        size_t la, lb;
        if (!merge_sides(m, &a, &la, &b, &lb))
            fatal("tokenizer '%s': model.merges[%zu] must be \"a b\" (one space) or [\"a\", \"b\"] "
                  "with both sides non-empty (the file is corrupt)", path, i);
        if (la + lb > longest) longest = la + lb;
        list[i++] = m;
    }
    merge_table_init(&t->merges, n);
    uint8_t *buf = xcalloc(longest + 1, 1);
    // Last to first: of a pair listed twice the table keeps the one put first, and the library
    // keeps the last one's rank.
    for (size_t r = n; r-- > 0;) {
        const char *a, *b;
        size_t la, lb;
        merge_sides(list[r], &a, &la, &b, &lb);
        long ba = gpt2_unmap(a, la, cp_to_byte, buf);
        if (ba < 0) memcpy(buf, a, la), ba = (long)la;
        long bb = gpt2_unmap(b, lb, cp_to_byte, buf + ba);
        if (bb < 0) memcpy(buf + ba, b, lb), bb = (long)lb;
        int32_t left = token_index_find(ix, buf, (size_t)ba);
        int32_t right = token_index_find(ix, buf + ba, (size_t)bb);
        int32_t joined = token_index_find(ix, buf, (size_t)(ba + bb));
        if (left < 0 || right < 0 || joined < 0)
            fatal("tokenizer '%s': model.merges[%zu] joins tokens that are not all in model.vocab "
                  "(both sides and their concatenation must be; the file is corrupt)", path, r);
        merge_table_put(&t->merges, left, right, (int32_t)r, joined);
    }
    xfree(buf);
    xfree(list);
}

// ----------------------------------------------------------------------------- loading
Tokenizer *tokenizer_parse_hf(const char *json, size_t len, const char *path) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root))
        fatal("tokenizer '%s' is not a JSON object (expected a Hugging Face tokenizer.json)", path);
    const cJSON *model = field(root, "model");
    check_model(model, path);
    const cJSON *decoder = field(root, "decoder");
    if (!is_null(decoder) && strcmp(type_of(decoder, path, "decoder"), "ByteLevel") != 0)
        unsupported(path, "decoder.type", type_of(decoder, path, "decoder"));

    Tokenizer *t = xcalloc(1, sizeof *t);
    HfTokenizer *hf = t->hf = xcalloc(1, sizeof *hf);
    t->spec = xstrdup(path);
    hf->nfc = parse_normalizer(field(root, "normalizer"), path, 0);
    parse_pre_tokenizer(hf, field(root, "pre_tokenizer"), path);
    parse_added(hf, field(root, "added_tokens"), path);
    int ignore_merges = get_bool(model, "ignore_merges", 0, path, "model");

    int byte_to_cp[256], cp_to_byte[512];
    gpt2_byte_maps(byte_to_cp, cp_to_byte);
    uint8_t *in_vocab;
    build_vocab(t, field(model, "vocab"), hf, cp_to_byte, &in_vocab, path);
    TokenIndex ix;  // model.vocab only: merges and ignore_merges never see added tokens
    token_index_build(&ix, t->bytes, t->offset, (size_t)t->vocab_size, in_vocab);
    xfree(in_vocab);
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        t->byte_token[b] = token_index_find(&ix, &byte, 1);
        if (t->byte_token[b] < 0)
            fatal("tokenizer '%s': model.vocab lacks the byte-level token of byte %d (U+%04X); "
                  "%s", path, b, byte_to_cp[b], HF_WHAT);
    }
    build_merges(t, field(model, "merges"), &ix, cp_to_byte, path);
    if (ignore_merges) t->whole = ix;
    else token_index_free(&ix);
    index_added(hf);
    compile_steps(hf, path);  // last: nothing after it can fail and leave a regex behind
    cJSON_Delete(root);
    return t;
}

Tokenizer *hf_tokenizer_load(const char *spec, const char *dir) {
    char path[4096];
    join_path(path, sizeof path, dir, "tokenizer.json");
    if (!file_exists(path))
        fatal("tokenizer '%s': '%s' does not exist (pass hf:DIR with DIR holding a Hugging Face "
              "tokenizer.json)", spec, path);
    size_t len;
    char *json = read_file(path, &len, "Hugging Face tokenizer.json");
    Tokenizer *t = tokenizer_parse_hf(json, len, path);
    xfree(json);
    xfree(t->spec);
    t->spec = xstrdup(spec);
    return t;
}
