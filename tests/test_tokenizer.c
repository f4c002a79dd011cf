// test_tokenizer.c: GPT-2 ids against the reference dumps in ../shared, exact round trips for
// every tokenizer kind (arbitrary bytes included), BPE training determinism, token shards and
// their error paths, and the `prepare` command end to end.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common.h"
#include "shard.h"
#include "cmd.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"  // gpt2_pretokenize, for the brute-force training reference

#define SHARED "../shared/data"
#define GPT2_DIR SHARED "/gpt2-tokenizer"

static char tmp_dir[64];

static void tmp_path(char *out, size_t cap, const char *name) { join_path(out, cap, tmp_dir, name); }

static int round_trips(const Tokenizer *tok, const char *text, size_t len) {
    size_t n, back_len;
    int32_t *ids = tokenizer_encode(tok, text, len, &n);
    char *back = tokenizer_decode(tok, ids, n, &back_len);
    int ok = back_len == len && memcmp(back, text, len) == 0;
    for (size_t i = 0; i < n; i++) ok &= ids[i] >= 0 && ids[i] < tokenizer_vocab_size(tok);
    xfree(ids);
    xfree(back);
    return ok;
}

// Random byte strings: uniform bytes (mostly invalid UTF-8, NULs included), then mixtures of
// ASCII words, whitespace runs and multi-byte characters cut anywhere.
static void check_random_round_trips(const Tokenizer *tok, const char *name) {
    static const char *pieces[] = {"the", " ", "  ", "\n", "\t", "'s", "'ll", "é", "日本",
                                   "🙂", "123", "!?", "\xff", "\xc3", "\x80", "\0", "\xed\xa0\x80"};
    Rng rng;
    rng_seed(&rng, 1234);
    char buf[600];
    int ok = 1;
    for (int trial = 0; trial < 300; trial++) {
        size_t len = 0, want = rng_below(&rng, 400);
        while (len < want) {
            if (trial % 2 == 0) {
                buf[len++] = (char)rng_below(&rng, 256);
            } else {
                size_t k = rng_below(&rng, sizeof pieces / sizeof *pieces);
                size_t l = k == 15 ? 1 : strlen(pieces[k]);  // piece 15 is a NUL byte
                memcpy(buf + len, pieces[k], l);
                len += l;
            }
        }
        ok &= round_trips(tok, buf, len);
    }
    CHECK(ok, "%s: decode(encode(x)) != x for some random byte string", name);
    CHECK(round_trips(tok, "", 0), "%s: empty string does not round-trip", name);
}

static int fails_naming(void (*fn)(const void *), const void *arg, const char *must_mention) {
    return check_child_fails(fn, arg, must_mention);
}

static void load_tokenizer_child(const void *spec) { tokenizer_load(spec); }
static void read_shard_child(const void *path) {
    size_t n;
    shard_read(path, &n);
}
static void write_negative_token_child(const void *path) {
    int32_t bad[2] = {5, -1};
    shard_write(path, bad, 2);
}

// ----------------------------------------------------------------------------- GPT-2
static void check_reference_file(const Tokenizer *tok, const char *text_path,
                                 const char *ref_path) {
    size_t len, ref_len, n;
    char *text = read_file(text_path, &len, "reference text");
    uint8_t *ref = read_file(ref_path, &ref_len, "reference ids");
    double t0 = now_seconds();
    int32_t *ids = tokenizer_encode(tok, text, len, &n);
    double dt = now_seconds() - t0;
    printf("gpt2 encode %s: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", text_path, len, n,
           dt, len / 1e6 / dt);
    size_t n_ref = ref_len / 2, first_diff = n < n_ref ? n : n_ref;
    for (size_t i = 0; i < n && i < n_ref; i++) {
        if (ids[i] != (ref[2 * i] | ref[2 * i + 1] << 8)) {
            first_diff = i;
            break;
        }
    }
    CHECK(n == n_ref && first_diff == n, "%s: %zu ids vs %zu reference, first difference at %zu",
          text_path, n, n_ref, first_diff);
    size_t back_len;
    char *back = tokenizer_decode(tok, ids, n, &back_len);
    CHECK(back_len == len && memcmp(back, text, len) == 0, "%s: decode(encode) differs",
          text_path);
    xfree(back);
    xfree(ids);
    xfree(ref);
    xfree(text);
}

static void check_test_vectors(const Tokenizer *tok) {
    size_t len;
    char *tsv = read_file(GPT2_DIR "/reference/test_vectors.tsv", &len, "test vectors");
    int vectors = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        cJSON *js = cJSON_Parse(line);
        CHECK(cJSON_IsString(js), "test vector %s: not a JSON string", line);
        if (!cJSON_IsString(js)) continue;
        const char *text = js->valuestring;
        int32_t want[256];
        size_t n_want = 0;
        for (char *p = tab + 1, *end; *p && n_want < 256; p = end) {
            want[n_want] = (int32_t)strtol(p, &end, 10);
            if (end == p) break;
            n_want++;
        }
        size_t n;
        int32_t *ids = tokenizer_encode(tok, text, strlen(text), &n);
        int same = n == n_want;
        for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
        CHECK(same, "test vector %s: got %zu ids, want %zu (first got %d)", line, n, n_want,
              n ? ids[0] : -1);
        CHECK(round_trips(tok, text, strlen(text)), "test vector %s: no round trip", line);
        xfree(ids);
        cJSON_Delete(js);
        vectors++;
    }
    CHECK(vectors == 10, "expected 10 test vectors, read %d", vectors);
    xfree(tsv);
}

static void check_gpt2(void) {
    double t0 = now_seconds();
    Tokenizer *tok = tokenizer_load("gpt2");  // the default directory, relative to the repo root
    printf("gpt2 load: %.3f s\n", now_seconds() - t0);
    CHECK(tokenizer_vocab_size(tok) == 50257, "gpt2 vocab %d", tokenizer_vocab_size(tok));
    CHECK(strcmp(tokenizer_spec(tok), "gpt2") == 0, "spec %s", tokenizer_spec(tok));
    int32_t eot = 50256;
    size_t l;
    char *s = tokenizer_decode(tok, &eot, 1, &l);
    CHECK(l == 13 && strcmp(s, "<|endoftext|>") == 0, "id 50256 decodes to '%s'", s);
    xfree(s);
    check_test_vectors(tok);
    check_reference_file(tok, SHARED "/wikitext-103-raw/wiki.valid.raw",
                         GPT2_DIR "/reference/wiki.valid.raw.gpt2.u16le");
    check_reference_file(tok, SHARED "/tinyshakespeare/input.txt",
                         GPT2_DIR "/reference/tinyshakespeare.input.gpt2.u16le");
    check_random_round_trips(tok, "gpt2");
    tokenizer_free(tok);
    Tokenizer *dir_tok = tokenizer_load("gpt2:" GPT2_DIR);
    CHECK(tokenizer_vocab_size(dir_tok) == 50257, "gpt2:DIR vocab");
    tokenizer_free(dir_tok);
}

// ----------------------------------------------------------------------------- trained BPE
// A corpus that needs no ../shared: pseudo-words of 1-4 random syllables, with punctuation.
static char *synthetic_corpus(size_t len) {
    static const char *syllables[] = {"th", "e", "an", "ing", "qu", "een", "lo", "ve", "ki",
                                      "ng", "sh", "all", "mo", "re", "ti", "on", "st", "ar",
                                      "bo", "ld", "é", "ü", "ch", "ow"};
    static const char *gaps[] = {" ", " ", " ", " ", ", ", ".\n", "\n\n", "! ", "'s "};
    Rng rng;
    rng_seed(&rng, 7);
    char *text = xcalloc(len + 16, 1);
    size_t at = 0;
    while (at < len) {
        for (uint64_t k = 1 + rng_below(&rng, 4); k > 0; k--) {
            const char *syl = syllables[rng_below(&rng, sizeof syllables / sizeof *syllables)];
            memcpy(text + at, syl, strlen(syl));
            at += strlen(syl);
        }
        const char *gap = gaps[rng_below(&rng, sizeof gaps / sizeof *gaps)];
        memcpy(text + at, gap, strlen(gap));
        at += strlen(gap);
    }
    text[len] = 0;  // cut to exactly len bytes (possibly inside a character: fine)
    return text;
}

static int files_equal(const char *a, const char *b) {
    size_t la, lb;
    char *x = read_file(a, &la, "file"), *y = read_file(b, &lb, "file");
    int same = la == lb && memcmp(x, y, la) == 0;
    xfree(x);
    xfree(y);
    return same;
}

// Brute-force BPE training: recount every pair of every piece before each merge. Returns the
// merges (left, right interleaved) that bpe_train must reproduce exactly.
typedef struct {
    int32_t *tok;  // all pieces back to back
    size_t *end;   // (n) piece i = tok[end[i-1] .. end[i])
    size_t n, used;
} Pieces;

static void collect_piece(const uint8_t *p, size_t n, void *ctx) {
    Pieces *ps = ctx;
    for (size_t i = 0; i < n; i++) ps->tok[ps->used++] = p[i];
    ps->end[ps->n++] = ps->used;
}

static size_t brute_force_bpe(const char *text, size_t len, int vocab, int32_t *merges) {
    Pieces ps = {xcalloc(len + 1, sizeof(int32_t)), xcalloc(len + 1, sizeof(size_t)), 0, 0};
    gpt2_pretokenize(text, len, 0, len, collect_piece, &ps);
    int64_t *count = xcalloc((size_t)vocab * vocab, sizeof(int64_t));
    size_t m = 0;
    for (; (int)m < vocab - 256; m++) {
        memset(count, 0, (size_t)vocab * vocab * sizeof(int64_t));
        for (size_t i = 0, start = 0; i < ps.n; start = ps.end[i++])
            for (size_t j = start; j + 1 < ps.end[i]; j++) count[ps.tok[j] * vocab + ps.tok[j + 1]]++;
        int64_t best = 1;
        int32_t a = -1, b = -1;
        for (int32_t x = 0; x < vocab; x++)
            for (int32_t y = 0; y < vocab; y++)
                if (count[x * vocab + y] > best) best = count[x * vocab + y], a = x, b = y;
        if (a < 0) break;  // no pair occurs twice
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        size_t out = 0;  // pieces shrink in place
        for (size_t i = 0, start = 0; i < ps.n; i++) {
            size_t end = ps.end[i];
            for (size_t j = start; j < end;) {
                if (j + 1 < end && ps.tok[j] == a && ps.tok[j + 1] == b) {
                    ps.tok[out++] = 256 + (int32_t)m;
                    j += 2;
                } else {
                    ps.tok[out++] = ps.tok[j++];
                }
            }
            start = end;
            ps.end[i] = out;
        }
    }
    xfree(count);
    xfree(ps.tok);
    xfree(ps.end);
    return m;
}

static void check_training_matches_brute_force(const char *corpus, size_t len) {
    enum { VOCAB = 400 };
    char path[128];
    tmp_path(path, sizeof path, "bpe_small.txt");
    bpe_train(corpus, len, VOCAB, path, 0);
    int32_t want[2 * VOCAB];
    size_t n_want = brute_force_bpe(corpus, len, VOCAB, want);
    size_t flen;
    char *file = read_file(path, &flen, "trained BPE");
    char *p = file;
    for (int line = 0; line < 4; line++) p = strchr(p, '\n') + 1;  // the header
    size_t n_got = 0, first_diff = SIZE_MAX;
    for (char *end; *p; p = end + 1, n_got++) {
        long a = strtol(p, &end, 10), b = strtol(end, &end, 10);
        if (first_diff == SIZE_MAX && (n_got >= n_want || a != want[2 * n_got] ||
                                       b != want[2 * n_got + 1]))
            first_diff = n_got;
    }
    CHECK(n_got == n_want && first_diff == SIZE_MAX,
          "bpe_train vs brute force: %zu vs %zu merges, first difference at merge %zu", n_got,
          n_want, first_diff);
    xfree(file);
}

static void check_trained_bpe(const char *corpus, size_t len) {
    char path_a[128], path_b[128];
    tmp_path(path_a, sizeof path_a, "bpe_a.txt");
    tmp_path(path_b, sizeof path_b, "bpe_b.txt");
    double t0 = now_seconds();
    bpe_train(corpus, len, 512, path_a, 0);
    printf("bpe_train: %zu bytes -> vocab 512 in %.3f s\n", len, now_seconds() - t0);
    bpe_train(corpus, len, 512, path_b, 0);
    CHECK(files_equal(path_a, path_b), "two trainings on the same text differ");

    Tokenizer *tok = tokenizer_load(path_a);
    CHECK(tokenizer_vocab_size(tok) == 512, "trained vocab %d", tokenizer_vocab_size(tok));
    CHECK(strcmp(tokenizer_spec(tok), path_a) == 0, "trained spec %s", tokenizer_spec(tok));
    CHECK(round_trips(tok, corpus, len), "trained BPE: corpus does not round-trip");
    size_t n;
    int32_t *ids = tokenizer_encode(tok, corpus, len, &n);
    CHECK((double)len / (double)n > 1.8, "trained BPE compresses only %.2f bytes/token",
          (double)len / (double)n);
    xfree(ids);
    check_random_round_trips(tok, "trained BPE");
    tokenizer_free(tok);

    // The smallest vocab is plain bytes; a too-small corpus stops early but stays usable.
    bpe_train(corpus, len, 256, path_b, 0);
    tok = tokenizer_load(path_b);
    CHECK(tokenizer_vocab_size(tok) == 256 && round_trips(tok, corpus, len), "vocab-256 BPE");
    tokenizer_free(tok);
    fputs("(a warning about stopping early is expected next)\n", stdout);
    bpe_train("abcabc", 6, 1000, path_b, 0);
    tok = tokenizer_load(path_b);
    CHECK(tokenizer_vocab_size(tok) > 256 && tokenizer_vocab_size(tok) < 1000 &&
              round_trips(tok, "abcabc", 6), "early stop: vocab %d", tokenizer_vocab_size(tok));
    tokenizer_free(tok);
}

static void write_text(const char *path, const char *text) {
    write_file_atomic(path, text, strlen(text));
}

static void check_bad_tokenizer_files(void) {
    char path[128];
    tmp_path(path, sizeof path, "foreign.txt");
    write_text(path, "{\"not\": \"a tokenizer\"}\n");
    CHECK(fails_naming(load_tokenizer_child, path, path), "foreign tokenizer file accepted");
    tmp_path(path, sizeof path, "corrupt.txt");
    write_text(path, "routelab-bpe 1\nvocab_size 258\npretokenizer gpt2\nmerges 2\n1 2\n300 1\n");
    CHECK(fails_naming(load_tokenizer_child, path, path), "merge of a future token accepted");
    write_text(path, "routelab-bpe 1\nvocab_size 259\npretokenizer gpt2\nmerges 3\n1 2\n");
    CHECK(fails_naming(load_tokenizer_child, path, path), "truncated tokenizer file accepted");
    tmp_path(path, sizeof path, "missing.txt");
    CHECK(fails_naming(load_tokenizer_child, path, path), "missing tokenizer file accepted");
    CHECK(fails_naming(load_tokenizer_child, "gpt2:/nonexistent", "/nonexistent"),
          "missing gpt2 dir accepted");
}

// ----------------------------------------------------------------------------- bytes, shards
static void check_bytes_tokenizer(void) {
    Tokenizer *tok = tokenizer_load("bytes");
    CHECK(tokenizer_vocab_size(tok) == 256, "bytes vocab");
    const char text[] = "a\0\xff\n";
    size_t n;
    int32_t *ids = tokenizer_encode(tok, text, 4, &n);
    CHECK(n == 4 && ids[0] == 'a' && ids[1] == 0 && ids[2] == 255 && ids[3] == '\n',
          "bytes ids");
    xfree(ids);
    int32_t bad[2] = {65, 9999};
    size_t l;
    char *s = tokenizer_decode(tok, bad, 2, &l);
    CHECK(l == 4 && memcmp(s, "A\xEF\xBF\xBD", 4) == 0, "out-of-vocab id decodes to U+FFFD");
    xfree(s);
    check_random_round_trips(tok, "bytes");
    tokenizer_free(tok);
}

static void check_shards(void) {
    char path[128], bad[128];
    tmp_path(path, sizeof path, "tokens.bin");
    int32_t tokens[1000];
    for (int i = 0; i < 1000; i++) tokens[i] = (i * 7919) % 65536;
    shard_write(path, tokens, 1000);
    size_t n, len;
    uint32_t *back = shard_read(path, &n);
    int same = n == 1000;
    for (size_t i = 0; same && i < n; i++) same = back[i] == (uint32_t)tokens[i];
    CHECK(same, "shard round trip (n=%zu)", n);
    xfree(back);
    uint8_t *raw = read_file(path, &len, "shard");
    CHECK(len == 1024 + 2000 && raw[0] == (20240520 & 0xff) && raw[4] == 1 && raw[8] == 0xe8 &&
              raw[9] == 0x03, "llm.c header layout");
    shard_write(path, tokens, 0);
    back = shard_read(path, &n);
    CHECK(n == 0, "empty shard");
    xfree(back);

    tmp_path(bad, sizeof bad, "bad.bin");
    raw[0] ^= 1;  // wrong magic
    write_file_atomic(bad, raw, len);
    CHECK(fails_naming(read_shard_child, bad, bad), "wrong magic accepted");
    raw[0] ^= 1;
    raw[4] = 3;  // unknown version
    write_file_atomic(bad, raw, len);
    CHECK(fails_naming(read_shard_child, bad, bad), "wrong version accepted");
    raw[4] = 1;
    write_file_atomic(bad, raw, len - 2);  // one token short
    CHECK(fails_naming(read_shard_child, bad, bad), "truncated shard accepted");
    write_file_atomic(bad, raw, 100);  // not even a header
    CHECK(fails_naming(read_shard_child, bad, bad), "headerless shard accepted");
    raw[4] = 2;  // version 2 (uint32) with a version-1 body: the size no longer matches
    write_file_atomic(bad, raw, len);
    CHECK(fails_naming(read_shard_child, bad, bad), "v1 body under a v2 header accepted");
    CHECK(fails_naming(write_negative_token_child, bad, bad), "token -1 written to a shard");
    xfree(raw);

    // Version 2: any id >= 65536 switches the whole shard to uint32 ids.
    tokens[3] = 151668;
    tokens[7] = SHARD_MAX_VOCAB - 1;
    shard_write(path, tokens, 1000);
    raw = read_file(path, &len, "shard");
    CHECK(len == 1024 + 4000 && raw[4] == 2 && raw[8] == 0xe8 && raw[9] == 0x03,
          "version-2 header layout (len %zu, version %d)", len, raw[4]);
    back = shard_read(path, &n);
    same = n == 1000;
    for (size_t i = 0; same && i < n; i++) same = back[i] == (uint32_t)tokens[i];
    CHECK(same, "version-2 shard round trip (n=%zu)", n);
    xfree(back);
    raw[1024 + 4 * 5 + 3] = 0x80;  // id 2^31 + ...: beyond what the model's int32 ids hold
    write_file_atomic(bad, raw, len);
    CHECK(fails_naming(read_shard_child, bad, bad), "version-2 id >= 2^31 accepted");
    write_file_atomic(bad, raw, len - 2);  // half a uint32 short
    CHECK(fails_naming(read_shard_child, bad, bad), "truncated version-2 shard accepted");
    xfree(raw);
}

static void check_prepare(const char *corpus, size_t len) {
    char input[128], out[128], ds[160], bin[160];
    tmp_path(input, sizeof input, "corpus.txt");
    tmp_path(out, sizeof out, "shards");
    write_file_atomic(input, corpus, len);
    char a_input[300], a_out[200];
    snprintf(a_input, sizeof a_input, "--input=%s,%s", input, input);
    snprintf(a_out, sizeof a_out, "--out=%s", out);
    char *argv[] = {"prepare", a_input, "--tokenizer=bytes", a_out, "--val_fraction=0.25", NULL};
    CHECK(cmd_prepare(5, argv) == 0, "prepare failed");
    join_path(ds, sizeof ds, out, "dataset.json");
    size_t jl, n_train, n_val;
    char *json = read_file(ds, &jl, "dataset.json");
    cJSON *info = cJSON_Parse(json);
    join_path(bin, sizeof bin, out, "train.bin");
    uint32_t *train = shard_read(bin, &n_train);
    join_path(bin, sizeof bin, out, "val.bin");
    uint32_t *val = shard_read(bin, &n_val);
    CHECK(n_train + n_val == 2 * len && n_val == (size_t)(2 * len * 0.25 + 0.5), "split %zu+%zu",
          n_train, n_val);
    CHECK(n_val > 0 && val[n_val - 1] == (uint8_t)corpus[len - 1] && train[0] == (uint8_t)corpus[0],
          "val is the end of the text");
    cJSON *spec = cJSON_GetObjectItem(info, "tokenizer");
    CHECK(cJSON_IsString(spec) && strcmp(spec->valuestring, "bytes") == 0, "dataset.json spec");
    CHECK(cJSON_GetObjectItem(info, "vocab_size")->valueint == 256 &&
              (size_t)cJSON_GetObjectItem(info, "train_tokens")->valuedouble == n_train &&
              (size_t)cJSON_GetObjectItem(info, "val_tokens")->valuedouble == n_val &&
              cJSON_GetArraySize(cJSON_GetObjectItem(info, "sources")) == 2,
          "dataset.json fields: %s", json);
    cJSON_Delete(info);
    xfree(json);
    xfree(train);
    xfree(val);
    char *help[] = {"prepare", "--help", NULL};
    CHECK(cmd_prepare(2, help) == 0, "prepare --help");
}

// ----------------------------------------------------------------------------- Hugging Face
// A small byte-level tokenizer.json: the 256 byte tokens (GPT-2's stand-in characters), a few
// merges in "a b" or ["a", "b"] form, an added token; normalizer and extra model fields given.
static char *small_hf_json(int pair_form, const char *normalizer, const char *model_extra) {
    int byte_to_cp[256], cp_to_byte[512];
    gpt2_byte_maps(byte_to_cp, cp_to_byte);
    static const char *const merges[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                            {"\u0120", "w"}, {"o", "r"}, {"\u0120w", "or"},
                                            {"l", "d"}, {"\u0120wor", "ld"}, {"1", "2"}};
    static const char *const joined[] = {"he", "ll", "hell", "hello", "\u0120w", "or",
                                         "\u0120wor", "ld", "\u0120world", "12"};
    size_t cap = 1 << 16, at = 0;
    char *j = xcalloc(cap, 1);
    at += (size_t)snprintf(j + at, cap - at, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": "
                           "300, \"content\": \"<|endoftext|>\", \"single_word\": false, "
                           "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                           "\"special\": true}], \"normalizer\": %s, \"pre_tokenizer\": "
                           "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                           "\"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n"
                           "\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+"
                           "[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
                           "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
                           "\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
                           "\"use_regex\": false}]}, \"post_processor\": null, \"decoder\": "
                           "{\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\"%s, "
                           "\"vocab\": {", normalizer, model_extra);
    for (int b = 0; b < 256; b++)
        at += (size_t)snprintf(j + at, cap - at, "\"\\u%04x\": %d, ", byte_to_cp[b], b);
    for (int m = 0; m < 10; m++)
        at += (size_t)snprintf(j + at, cap - at, "\"%s\": %d%s", joined[m], 256 + m,
                               m < 9 ? ", " : "}, \"merges\": [");
    for (int m = 0; m < 10; m++)
        at += (size_t)snprintf(j + at, cap - at, pair_form ? "[\"%s\", \"%s\"]%s" : "\"%s %s\"%s",
                               merges[m][0], merges[m][1], m < 9 ? ", " : "]}}");
    return j;
}

static void write_hf_dir(const char *name, const char *json) {
    char dir[128], path[160];
    tmp_path(dir, sizeof dir, name);
    make_dirs(dir);
    join_path(path, sizeof path, dir, "tokenizer.json");
    write_text(path, json);
}

static Tokenizer *parse_small_hf(int pair_form, const char *normalizer, const char *extra) {
    char *json = small_hf_json(pair_form, normalizer, extra);
    Tokenizer *tok = tokenizer_parse_hf(json, strlen(json), "small/tokenizer.json");
    xfree(json);
    return tok;
}

static int ids_are(const Tokenizer *tok, const char *text, const int32_t *want, size_t n_want) {
    size_t n;
    int32_t *ids = tokenizer_encode(tok, text, strlen(text), &n);
    int same = n == n_want;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
    if (!same) {
        printf("  '%s' ->", text);
        for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    xfree(ids);
    return same;
}

static void load_hf_child(const void *name) {
    char spec[160];
    snprintf(spec, sizeof spec, "hf:%s/%s", tmp_dir, (const char *)name);
    tokenizer_load(spec);
}

static void check_hf_tokenizer(void) {
    Tokenizer *strings = parse_small_hf(0, "null", "");
    Tokenizer *pairs = parse_small_hf(1, "null", "");
    CHECK(tokenizer_vocab_size(pairs) == 301, "hf vocab = max id + 1 = 301, got %d",
          tokenizer_vocab_size(pairs));
    // "hello world" -> hello, " world"; "<|endoftext|>" is the added token even inside a word.
    const int32_t want[] = {259, 264, 300, 'x', 300};
    CHECK(ids_are(strings, "hello world<|endoftext|>x<|endoftext|>", want, 5),
          "hf string-form merges: wrong ids");
    CHECK(ids_are(pairs, "hello world<|endoftext|>x<|endoftext|>", want, 5),
          "hf pair-form merges: wrong ids");
    static const char sample[] = "Hello hello, world! DON'T he's 12345 \t\r\n  x \xff\xfe\x00 "
                                 "caf\xc3\xa9 <|endoftext|";
    size_t na, nb;
    int32_t *a = tokenizer_encode(strings, sample, sizeof sample - 1, &na);
    int32_t *b = tokenizer_encode(pairs, sample, sizeof sample - 1, &nb);
    CHECK(na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0,
          "hf: string-form and pair-form merges encode differently");
    xfree(a);
    xfree(b);
    int32_t eot = 300, gap = 280;
    size_t l;
    char *s = tokenizer_decode(pairs, &eot, 1, &l);
    CHECK(l == 13 && strcmp(s, "<|endoftext|>") == 0, "added token decodes to '%s'", s);
    xfree(s);
    s = tokenizer_decode(pairs, &gap, 1, &l);
    CHECK(strcmp(s, "\xEF\xBF\xBD") == 0, "an id in neither vocab nor added tokens: '%s'", s);
    xfree(s);
    check_random_round_trips(pairs, "hf (no normalizer)");  // exact on any bytes
    tokenizer_free(strings);
    tokenizer_free(pairs);

    // NFC: decode(encode(x)) == x where x is already NFC; decomposed input comes back composed.
    Tokenizer *nfc = parse_small_hf(1, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": "
                                       "\"NFC\"}]}", ", \"ignore_merges\": true");
    static const char *const nfc_texts[] = {"caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac "
                                            "\xf0\x9f\x99\x82 hello world 12 ",
                                            "\xea\xb0\x81 \xc3\x85 DON'T\r\n\n", ""};
    for (int i = 0; i < 3; i++)
        CHECK(round_trips(nfc, nfc_texts[i], strlen(nfc_texts[i])), "hf NFC: '%s' does not "
              "round-trip", nfc_texts[i]);
    static const char decomposed[] = "cafe\xcc\x81 \xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 "
                                     "\xe2\x84\xab \xff";
    static const char composed[] = "caf\xc3\xa9 \xea\xb0\x81 \xc3\x85 \xff";
    size_t n;
    int32_t *ids = tokenizer_encode(nfc, decomposed, sizeof decomposed - 1, &n);
    s = tokenizer_decode(nfc, ids, n, &l);
    CHECK(l == sizeof composed - 1 && memcmp(s, composed, l) == 0, "hf NFC: e+U+0301, jamo, "
          "U+212B should decode composed (invalid byte kept), got '%s'", s);
    xfree(s);
    xfree(ids);
    const int32_t hello[] = {259};
    CHECK(ids_are(nfc, "hello", hello, 1), "hf ignore_merges: 'hello' is one vocab token");
    tokenizer_free(nfc);

    // What routelab does not implement is a one-line error naming the file, field and value.
    char *json = small_hf_json(1, "{\"type\": \"NFKC\"}", "");
    write_hf_dir("hf_nfkc", json);
    xfree(json);
    CHECK(fails_naming(load_hf_child, "hf_nfkc", "normalizer.type = NFKC"),
          "unsupported normalizer NFKC accepted");
    CHECK(fails_naming(load_hf_child, "hf_nfkc", "hf_nfkc/tokenizer.json"),
          "the unsupported-normalizer error does not name the file");
    json = small_hf_json(1, "null", ", \"byte_fallback\": true");
    write_hf_dir("hf_fallback", json);
    xfree(json);
    CHECK(fails_naming(load_hf_child, "hf_fallback", "model.byte_fallback"),
          "byte_fallback accepted");
    write_hf_dir("hf_wordpiece", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    CHECK(fails_naming(load_hf_child, "hf_wordpiece", "model.type = WordPiece"),
          "WordPiece model accepted");
    CHECK(fails_naming(load_hf_child, "hf_missing", "tokenizer.json"), "missing hf dir accepted");
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/routelab_test_tokenizer_XXXXXX");
    if (!mkdtemp(tmp_dir)) fatal("cannot create a temporary directory under /tmp");
    int shared = dir_exists(SHARED);
    check_bytes_tokenizer();
    check_shards();
    check_bad_tokenizer_files();

    size_t len = 200000;
    char *corpus;
    if (shared) {
        size_t full;
        corpus = read_file(SHARED "/tinyshakespeare/input.txt", &full, "Tiny Shakespeare");
        if (full < len) len = full;
    } else {
        corpus = synthetic_corpus(len);
    }
    check_trained_bpe(corpus, len);
    check_training_matches_brute_force(corpus, 30000);
    check_prepare(corpus, 20000);
    xfree(corpus);

    check_hf_tokenizer();
    if (shared) check_gpt2();
    else SKIP("../shared not found (GPT-2 reference checks need ../shared/data)");

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp_dir);
    return check_summary("tokenizer");
}
