// tokenizer_gpt2.c: what is specific to GPT-2: its pre-tokenization regex (run by PCRE2, whose
// Unicode tables decide \p{L}, \p{N} and \s), its byte <-> printable-character mapping, and
// reading OpenAI's encoder.json + vocab.bpe into a Tokenizer.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ----------------------------------------------------------------------------- pre-tokenizer
const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static pcre2_code *gpt2_regex;
static pthread_once_t gpt2_regex_once = PTHREAD_ONCE_INIT;

static void compile_gpt2_regex(void) {
    // MATCH_INVALID_UTF (implies UTF): invalid UTF-8 is skipped instead of rejected, so any
    // byte string can be pre-tokenized. UCP: \s, \p{..} use Unicode properties, as in Python.
    int err;
    PCRE2_SIZE err_at;
    gpt2_regex = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                               PCRE2_MATCH_INVALID_UTF | PCRE2_UCP, &err, &err_at, NULL);
    if (!gpt2_regex) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fatal("PCRE2 cannot compile the GPT-2 pattern at offset %zu: %s (libpcre2-8 10.34 or "
              "newer is needed: apt-get install libpcre2-dev)", (size_t)err_at, (char *)msg);
    }
    pcre2_jit_compile(gpt2_regex, PCRE2_JIT_COMPLETE);  // without JIT, matching still works
}

void gpt2_pretokenize(const char *text, size_t len, size_t begin, size_t end, PretokenFn fn,
                      void *ctx) {
    pthread_once(&gpt2_regex_once, compile_gpt2_regex);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(gpt2_regex, NULL);
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    pcre2_jit_stack *jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!md || !mctx || !jit_stack) fatal("out of memory creating PCRE2 match data");
    pcre2_jit_stack_assign(mctx, NULL, jit_stack);
    const uint8_t *s = (const uint8_t *)text;
    // The subject is always the whole text: the pattern's look-ahead (?!\S) must see past `end`.
    size_t done = begin;  // text[begin, done) has been handed to fn
    while (done < end) {
        int rc = pcre2_match(gpt2_regex, s, len, done, 0, md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            fatal("PCRE2 failed pre-tokenizing at byte %zu: %s (please report)", done, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t from = ov[0], to = ov[1];
        if (from >= end) break;
        // Every alternative eats >= 1 char, and `end` is a piece boundary (gpt2_safe_cut).
        ASSERT(from >= done && to > from && to <= end);
        if (from > done) fn(s + done, from - done, ctx);  // invalid UTF-8 the regex skipped
        fn(s + from, to - from, ctx);
        done = to;
    }
    if (done < end) fn(s + done, end - done, ctx);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
}

size_t gpt2_safe_cut(const char *text, size_t len, size_t from) {
    // A match that contains '\n' is all whitespace (only the \s alternatives accept it), so no
    // match spans the '\n' and an ASCII non-space byte at p: a piece starts at p. The pattern
    // has no look-behind, so matching from p does not depend on the text before it either.
    for (size_t p = from < 1 ? 1 : from; p < len; p++) {
        unsigned char c = (unsigned char)text[p];
        if (text[p - 1] == '\n' && c > ' ' && c < 0x7f) return p;
    }
    return len;
}

// ----------------------------------------------------------------------------- byte mapping
// GPT-2 stores token bytes as printable characters: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF
// stand for themselves; the other 68 bytes, in increasing order, become U+0100, U+0101, ...
void gpt2_byte_maps(int byte_to_cp[256], int cp_to_byte[512]) {
    for (int c = 0; c < 512; c++) cp_to_byte[c] = -1;
    int next_extra = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_to_cp[b] = printable ? b : next_extra++;
        cp_to_byte[byte_to_cp[b]] = b;
    }
}

// A character that is not a stand-in: a special token such as <|endoftext|>.
long gpt2_unmap(const char *s, size_t n, const int cp_to_byte[512], uint8_t *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    long k = 0;
    while (i < n) {
        int cp;
        if (u[i] < 0x80) {
            cp = u[i++];
        } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n) {
            cp = ((u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1;  // stand-ins are all below U+0800
        }
        if (cp >= 512 || cp_to_byte[cp] < 0) return -1;
        out[k++] = (uint8_t)cp_to_byte[cp];
    }
    return k;
}

// ----------------------------------------------------------------------------- loading
static void read_encoder(Tokenizer *t, const char *path, const int cp_to_byte[512]) {
    size_t len;
    char *text = read_file(path, &len, "GPT-2 encoder.json");
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root))
        fatal("GPT-2 encoder '%s' is not a JSON object of token -> id (re-copy encoder.json from "
              "the GPT-2 release)", path);
    int n = cJSON_GetArraySize(root);
    if (n < 256 || n > (1 << 24))
        fatal("GPT-2 encoder '%s' has %d entries, expected 50257 (re-copy encoder.json)", path, n);
    t->vocab_size = n;
    uint8_t **tok_bytes = xcalloc((size_t)n, sizeof(uint8_t *));
    size_t *tok_len = xcalloc((size_t)n, sizeof(size_t));
    size_t total = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= n ||
            e->valuedouble != (double)e->valueint)
            fatal("GPT-2 encoder '%s': entry '%s' needs an integer id in [0, %d) (re-copy "
                  "encoder.json)", path, e->string, n);
        int id = e->valueint;
        if (tok_bytes[id])
            fatal("GPT-2 encoder '%s': id %d appears twice (re-copy encoder.json)", path, id);
        size_t klen = strlen(e->string);
        tok_bytes[id] = xcalloc(klen + 1, 1);
        long b = gpt2_unmap(e->string, klen, cp_to_byte, tok_bytes[id]);
        if (b < 0) {  // a special token: its text is its bytes
            memcpy(tok_bytes[id], e->string, klen);
            b = (long)klen;
        }
        tok_len[id] = (size_t)b;
        total += (size_t)b;
    }
    t->bytes = xcalloc(total + 1, 1);
    t->offset = xcalloc((size_t)n + 1, sizeof(size_t));
    for (int id = 0; id < n; id++) {
        t->offset[id + 1] = t->offset[id] + tok_len[id];
        memcpy(t->bytes + t->offset[id], tok_bytes[id], tok_len[id]);
        xfree(tok_bytes[id]);
    }
    xfree(tok_bytes);
    xfree(tok_len);
    cJSON_Delete(root);
    xfree(text);
}

static void read_merges(Tokenizer *t, const char *path, const int cp_to_byte[512]) {
    size_t len;
    char *text = read_file(path, &len, "GPT-2 vocab.bpe");
    TokenIndex ix;
    token_index_build(&ix, t->bytes, t->offset, (size_t)t->vocab_size, NULL);
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        t->byte_token[b] = token_index_find(&ix, &byte, 1);
        if (t->byte_token[b] < 0)
            fatal("GPT-2 encoder.json next to '%s' lacks the token for byte %d (re-copy it)", path,
                  b);
    }
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    merge_table_init(&t->merges, n_lines + 1);
    uint8_t *buf = xcalloc(len + 1, 1);
    size_t line_no = 0;
    int32_t rank = 0;
    for (char *line = text; line < text + len;) {
        char *eol = memchr(line, '\n', (size_t)(text + len - line));
        if (!eol) eol = text + len;
        line_no++;
        size_t n = (size_t)(eol - line);
        if (n && line[n - 1] == '\r') n--;
        if (n && !(line_no == 1 && line[0] == '#')) {  // "#version: 0.2" header
            char *space = memchr(line, ' ', n);
            long a = -1;
            if (space) {
                a = gpt2_unmap(line, (size_t)(space - line), cp_to_byte, buf);
                long bl = a < 0 ? -1 : gpt2_unmap(space + 1, n - (size_t)(space + 1 - line),
                                                  cp_to_byte, buf + a);
                if (bl > 0 && a > 0) {
                    int32_t left = token_index_find(&ix, buf, (size_t)a);
                    int32_t right = token_index_find(&ix, buf + a, (size_t)bl);
                    int32_t joined = token_index_find(&ix, buf, (size_t)(a + bl));
                    if (left >= 0 && right >= 0 && joined >= 0) {
                        merge_table_put(&t->merges, left, right, rank++, joined);
                        line = eol + 1;
                        continue;
                    }
                }
            }
            fatal("GPT-2 merges '%s' line %zu: expected two tokens of encoder.json separated by "
                  "one space, whose concatenation is also a token (is this the vocab.bpe that "
                  "belongs to that encoder.json?)", path, line_no);
        }
        line = eol + 1;
    }
    if (rank == 0) fatal("GPT-2 merges '%s' holds no merges (re-copy vocab.bpe)", path);
    xfree(buf);
    token_index_free(&ix);
    xfree(text);
}

Tokenizer *gpt2_load(const char *spec, const char *dir) {
    char enc_path[4096], bpe_path[4096];
    join_path(enc_path, sizeof enc_path, dir, "encoder.json");
    join_path(bpe_path, sizeof bpe_path, dir, "vocab.bpe");
    if (!file_exists(enc_path) || !file_exists(bpe_path))
        fatal("tokenizer '%s': '%s' and '%s' must both exist (pass gpt2:DIR with DIR holding "
              "GPT-2's encoder.json and vocab.bpe)", spec, enc_path, bpe_path);
    int byte_to_cp[256], cp_to_byte[512];
    gpt2_byte_maps(byte_to_cp, cp_to_byte);
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->spec = xstrdup(spec);
    read_encoder(t, enc_path, cp_to_byte);
    read_merges(t, bpe_path, cp_to_byte);
    return t;
}
