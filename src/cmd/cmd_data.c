// cmd_data.c: the data commands of the CLI: `routelab prepare` (text -> token shards) and
// `routelab tokenizer-train` (text -> trained BPE file).
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "common.h"
#include "json_out.h"
#include "options.h"
#include "result_keys.h"
#include "shard.h"
#include "tokenizer.h"

// ----------------------------------------------------------------------------- options
static const char *require_option(const char *cmd, const Option *o, const char *example) {
    const char *v = *(const char *const *)o->dest;
    if (!v || !*v)
        fatal("%s: --%s is required, e.g. --%s=%s (see `routelab %s --help`)", cmd, o->name,
              o->name, example, cmd);
    return v;
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
    "  DIR/val.bin (llm.c token shards: uint16 ids, version 2 with uint32 ids when the\n"
    "  vocabulary exceeds 65,536) and DIR/dataset.json.\n"
    "  --tokenizer    bytes | gpt2 (files in ../shared/data/gpt2-tokenizer) | gpt2:DIR |\n"
    "                 hf:DIR (DIR/tokenizer.json: a Hugging Face byte-level BPE, e.g. Qwen3,\n"
    "                 Llama 3) | PATH of a BPE trained by `routelab tokenizer-train`\n"
    "  --val_fraction the LAST this fraction of the tokens becomes val.bin, the rest\n"
    "                 train.bin (no shuffling); in (0, 1), default 0.1\n";

int cmd_prepare(int argc, char **argv) {
    const char *input_opt, *spec_opt, *out_opt;
    double val_fraction;
    const Option opts[] = {
        {"input", OPT_STRING, &input_opt, NULL, "text files, comma-separated", 0, 0},
        {"tokenizer", OPT_STRING, &spec_opt, NULL, "bytes | gpt2 | gpt2:DIR | hf:DIR | PATH", 0, 0},
        {"out", OPT_STRING, &out_opt, NULL, "output directory", 0, 0},
        {"val_fraction", OPT_DOUBLE, &val_fraction, "0.1", "last share of tokens for val", 0, 1},
    };
    const char *cmd = "prepare";
    OptSpec os = {.cmd = cmd, .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        fputs(PREPARE_USAGE, stdout);
        return 0;
    }
    const char *input = require_option(cmd, &opts[0], "data/input.txt");
    const char *spec = require_option(cmd, &opts[1], "gpt2");
    const char *out_dir = require_option(cmd, &opts[2], "data/shards");
    if (!(val_fraction > 0 && val_fraction < 1))
        fatal("%s: --val_fraction=%g must be a number in (0, 1), e.g. --val_fraction=0.1", cmd,
              val_fraction);

    double t0 = now_seconds();
    Tokenizer *tok = tokenizer_load(spec);
    int vocab = tokenizer_vocab_size(tok);
    if ((double)vocab > SHARD_MAX_VOCAB)  // double: no always-false warning on int
        fatal("%s: tokenizer '%s' has %d tokens but shards hold ids below %d (version 2, "
              "uint32); use a smaller tokenizer", cmd, spec, vocab, SHARD_MAX_VOCAB);
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
    // dataset.json: the DatasetInfo that dataset.c reads back (tokenizer, vocab_size)
    cJSON_AddStringToObject(info, RK_TOKENIZER, tokenizer_spec(tok));
    json_add_number(info, RK_VOCAB_SIZE, vocab);
    json_add_number(info, "train_tokens", (double)n_train);
    json_add_number(info, "val_tokens", (double)n_val);
    json_add_number(info, "val_fraction", val_fraction);
    json_add_number(info, "text_bytes", (double)len);
    cJSON_AddItemToObject(info, "sources", sources);
    char *json = json_to_line(info);
    join_path(path, sizeof path, out_dir, "dataset.json");
    write_file_atomic(path, json, strlen(json));

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

int cmd_tokenizer_train(int argc, char **argv) {
    const char *input_opt, *out_opt;
    int vocab, verbose;
    const Option opts[] = {
        {"input", OPT_STRING, &input_opt, NULL, "text files, comma-separated", 0, 0},
        {"out", OPT_STRING, &out_opt, NULL, "path of the trained BPE", 0, 0},
        {"vocab_size", OPT_INT, &vocab, "8192", "tokens, bytes included", 256, 65536},
        {"verbose", OPT_INT, &verbose, "1", "1: progress; 0: only the summary", 0, 1},
    };
    const char *cmd = "tokenizer-train";
    OptSpec os = {.cmd = cmd, .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        fputs(TRAIN_USAGE, stdout);
        return 0;
    }
    const char *input = require_option(cmd, &opts[0], "data/input.txt");
    const char *out = require_option(cmd, &opts[1], "data/bpe8k.txt");

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
