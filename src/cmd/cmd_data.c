// cmd_data.c: the data commands of the CLI: `routelab prepare` (text -> token shards) and
// `routelab tokenizer-train` (text -> trained BPE file).
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "shard.h"
#include "tokenizer.h"

// ----------------------------------------------------------------------------- options
typedef struct {
    const char *key;    // without the leading "--"
    const char *value;  // default, replaced by --key=value
} Option;

// Fills opts from argv[1..]; returns 1 when --help was asked for.
static int parse_options(int argc, char **argv, Option *opts, size_t n_opts) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return 1;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0 || !eq)
            fatal("%s: argument '%s' is not of the form --key=value (see `routelab %s --help`)",
                  argv[0], arg, argv[0]);
        size_t klen = (size_t)(eq - arg - 2);
        size_t k = 0;
        while (k < n_opts && !(strlen(opts[k].key) == klen && !strncmp(opts[k].key, arg + 2, klen)))
            k++;
        if (k == n_opts)
            fatal("%s: unknown option '%.*s' (see `routelab %s --help`)", argv[0],
                  (int)(eq - arg), arg, argv[0]);
        opts[k].value = eq + 1;
    }
    return 0;
}

static const char *require_option(const char *cmd, const Option *o, const char *example) {
    if (!o->value || !*o->value)
        fatal("%s: --%s is required, e.g. --%s=%s (see `routelab %s --help`)", cmd, o->key,
              o->key, example, cmd);
    return o->value;
}

// Reads the comma-separated files of --input back to back; sources gets each path.
static char *read_inputs(const char *list, size_t *len, cJSON *sources) {
    char *paths = xstrdup(list), *save = NULL;
    char *text = NULL;
    size_t total = 0, n_files = 0;
    for (char *p = strtok_r(paths, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        size_t n;
        char *part = read_file(p, &n, "--input file");
        text = xrealloc(text, total + n + 1);
        memcpy(text + total, part, n);
        total += n;
        xfree(part);
        n_files++;
        if (sources) cJSON_AddItemToArray(sources, cJSON_CreateString(p));
    }
    if (!n_files) fatal("--input='%s' names no file (give FILE[,FILE...])", list);
    if (!text) text = xcalloc(1, 1);
    text[total] = 0;
    xfree(paths);
    *len = total;
    return text;
}

// ----------------------------------------------------------------------------- prepare
static const char PREPARE_USAGE[] =
    "usage: routelab prepare --input=FILE[,FILE...] --tokenizer=SPEC --out=DIR "
    "[--val_fraction=0.1]\n"
    "  Tokenizes the inputs (read back to back as one text) and writes DIR/train.bin and\n"
    "  DIR/val.bin (llm.c uint16 token shards) and DIR/dataset.json.\n"
    "  --tokenizer    bytes | gpt2 (files in ../shared/data/gpt2-tokenizer) | gpt2:DIR |\n"
    "                 PATH of a BPE trained by `routelab tokenizer-train`\n"
    "  --val_fraction the LAST this fraction of the tokens becomes val.bin, the rest\n"
    "                 train.bin (no shuffling); in (0, 1), default 0.1\n";

int cmd_prepare(int argc, char **argv) {
    Option opts[] = {{"input", NULL}, {"tokenizer", NULL}, {"out", NULL}, {"val_fraction", "0.1"}};
    if (parse_options(argc, argv, opts, sizeof opts / sizeof *opts)) {
        fputs(PREPARE_USAGE, stdout);
        return 0;
    }
    const char *cmd = argv[0];
    const char *input = require_option(cmd, &opts[0], "data/input.txt");
    const char *spec = require_option(cmd, &opts[1], "gpt2");
    const char *out_dir = require_option(cmd, &opts[2], "data/shards");
    char *end;
    errno = 0;
    double val_fraction = strtod(opts[3].value, &end);
    if (errno || end == opts[3].value || *end || !(val_fraction > 0 && val_fraction < 1))
        fatal("%s: --val_fraction='%s' must be a number in (0, 1), e.g. --val_fraction=0.1", cmd,
              opts[3].value);

    double t0 = now_seconds();
    Tokenizer *tok = tokenizer_load(spec);
    int vocab = tokenizer_vocab_size(tok);
    if (vocab > SHARD_MAX_VOCAB)
        fatal("%s: tokenizer '%s' has %d tokens but shards store uint16 ids (at most %d); use "
              "a smaller tokenizer", cmd, spec, vocab, SHARD_MAX_VOCAB);
    cJSON *info = cJSON_CreateObject();
    cJSON *sources = cJSON_CreateArray();
    size_t len;
    char *text = read_inputs(input, &len, sources);
    size_t n;
    int32_t *ids = tokenizer_encode(tok, text, len, &n);
    size_t n_val = (size_t)((double)n * val_fraction + 0.5);
    if (n_val == 0 || n_val >= n)
        fatal("%s: %zu tokens from --input='%s' are too few to split with --val_fraction=%g "
              "(give more text or change --val_fraction)", cmd, n, input, val_fraction);
    size_t n_train = n - n_val;

    make_dirs(out_dir);
    char path[4096];
    join_path(path, sizeof path, out_dir, "train.bin");
    shard_write(path, ids, n_train);
    join_path(path, sizeof path, out_dir, "val.bin");
    shard_write(path, ids + n_train, n_val);
    cJSON_AddStringToObject(info, "tokenizer", tokenizer_spec(tok));
    cJSON_AddNumberToObject(info, "vocab_size", vocab);
    cJSON_AddNumberToObject(info, "train_tokens", (double)n_train);
    cJSON_AddNumberToObject(info, "val_tokens", (double)n_val);
    cJSON_AddNumberToObject(info, "val_fraction", val_fraction);
    cJSON_AddNumberToObject(info, "text_bytes", (double)len);
    cJSON_AddItemToObject(info, "sources", sources);
    char *json = cJSON_Print(info);
    size_t json_len = strlen(json);
    json = xrealloc(json, json_len + 2);
    json[json_len++] = '\n';
    join_path(path, sizeof path, out_dir, "dataset.json");
    write_file_atomic(path, json, json_len);

    printf("prepared %s: %zu tokens (train %zu, val %zu) from %zu bytes, %.3f bytes/token, "
           "tokenizer %s (vocab %d), %.2f s\n", out_dir, n, n_train, n_val, len,
           n ? (double)len / (double)n : 0.0, spec, vocab, now_seconds() - t0);
    free(json);
    cJSON_Delete(info);
    xfree(ids);
    xfree(text);
    tokenizer_free(tok);
    return 0;
}

// ----------------------------------------------------------------------------- tokenizer-train
static const char TRAIN_USAGE[] =
    "usage: routelab tokenizer-train --input=FILE[,FILE...] --out=PATH [--vocab_size=8192] "
    "[--verbose=1]\n"
    "  Learns a byte-level BPE (256 byte tokens + merges, GPT-2 pre-tokenization) from the\n"
    "  inputs read back to back, and writes it to PATH; use it as --tokenizer=PATH.\n"
    "  --vocab_size   256..65536, default 8192\n"
    "  --verbose      1 prints progress, 0 only the summary\n";

static long parse_long(const char *cmd, const char *key, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        fatal("%s: --%s='%s' must be an integer in [%ld, %ld]", cmd, key, s, lo, hi);
    return v;
}

int cmd_tokenizer_train(int argc, char **argv) {
    Option opts[] = {{"input", NULL}, {"out", NULL}, {"vocab_size", "8192"}, {"verbose", "1"}};
    if (parse_options(argc, argv, opts, sizeof opts / sizeof *opts)) {
        fputs(TRAIN_USAGE, stdout);
        return 0;
    }
    const char *cmd = argv[0];
    const char *input = require_option(cmd, &opts[0], "data/input.txt");
    const char *out = require_option(cmd, &opts[1], "data/bpe8k.txt");
    int vocab = (int)parse_long(cmd, "vocab_size", opts[2].value, 256, 65536);
    int verbose = (int)parse_long(cmd, "verbose", opts[3].value, 0, 1);

    size_t len;
    char *text = read_inputs(input, &len, NULL);
    double t0 = now_seconds();
    bpe_train(text, len, vocab, out, verbose);
    double train_s = now_seconds() - t0;
    Tokenizer *tok = tokenizer_load(out);
    size_t n;
    int32_t *ids = tokenizer_encode(tok, text, len, &n);
    printf("trained %s: vocab %d, %.2f s; it encodes the %zu input bytes as %zu tokens "
           "(%.3f bytes/token)\n", out, tokenizer_vocab_size(tok), train_s, len, n,
           n ? (double)len / (double)n : 0.0);
    xfree(ids);
    tokenizer_free(tok);
    xfree(text);
    return 0;
}
