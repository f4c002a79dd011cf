// dataset.c: see dataset.h. Two sources behind one interface:
//   MQAR:   example i of a split is mqar_example(stream, i); the position is the example counter.
//   shards: one token file per split (uint16 or uint32 ids, shard.h); the position is the token offset of the next row.
#include "dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "addition.h"
#include "mqar.h"
#include "shard.h"

#define DESCRIBE_LEN 1200

typedef enum { SOURCE_MQAR, SOURCE_ADDITION, SOURCE_SHARDS } Source;

struct Dataset {
    Source source;
    Split split;
    int T;
    uint64_t position;  // MQAR: next example index; shards: token offset of the next row
    // MQAR, addition
    MqarSpec mqar;
    AdditionSpec add;
    uint64_t stream;    // seed of this split's example stream
    size_t eval_examples;
    // shards
    uint32_t *tokens;   // (n_tokens)
    size_t n_tokens;
    char describe[DESCRIBE_LEN];
};

// The test stream is derived from the data seed by a hash so that it is a different stream from
// the training one (`seed` itself) for every seed, including neighbouring seeds.
static uint64_t mqar_test_stream(uint64_t seed) { return hash64(seed, 0x7e577e577e577e57ull); }

// log2 of the number of distinct key/value prefixes: a lower bound on the number of distinct
// examples, used to warn when test examples are likely to appear in training too.
static double mqar_log2_prefixes(const MqarSpec *m) {
    int half = m->vocab_size / 2;
    double bits = 0.0;
    for (int i = 0; i < m->pairs; i++)
        bits += log2((double)(half - 1 - i)) + log2((double)(m->vocab_size - half - i));
    return bits;
}

static void open_mqar(Dataset *ds, const DataSpec *spec) {
    ds->mqar = (MqarSpec){.seq_len = spec->seq_len,
                          .vocab_size = spec->vocab_size,
                          .pairs = spec->mqar_pairs,
                          .random_filler = spec->mqar_random_filler,
                          .alpha = spec->mqar_alpha};
    mqar_validate(&ds->mqar);
    if (ds->split == SPLIT_VAL && spec->mqar_eval_examples < 1)
        fatal("mqar_eval_examples=%d: the MQAR test split needs at least 1 example (pass "
              "--mqar_eval_examples=1000)", spec->mqar_eval_examples);
    // The train split offers the same number of windows (its first examples) for train accuracy.
    ds->eval_examples = spec->mqar_eval_examples > 0 ? (size_t)spec->mqar_eval_examples : 0;
    ds->stream = ds->split == SPLIT_TRAIN ? spec->seed : mqar_test_stream(spec->seed);
    // The two streams are independent, so a test example repeats a training one only by chance;
    // that chance is negligible unless the task itself has few distinct examples.
    if (ds->split == SPLIT_VAL && mqar_log2_prefixes(&ds->mqar) < 24.0)
        warnf("MQAR with vocab_size=%d and mqar_pairs=%d has few distinct examples (2^%.0f key-"
              "value prefixes): test examples may also occur in training, so test accuracy "
              "partly measures memorisation (use a larger --vocab_size or more --mqar_pairs)",
              spec->vocab_size, spec->mqar_pairs, mqar_log2_prefixes(&ds->mqar));
    snprintf(ds->describe, DESCRIBE_LEN, "mqar (V=%d, T=%d, %d pairs%s%s)", spec->vocab_size,
             spec->seq_len, spec->mqar_pairs, spec->mqar_random_filler ? ", random filler" : "",
             ds->split == SPLIT_VAL ? ", test split" : "");
}

static void open_addition(Dataset *ds, const DataSpec *spec) {
    ds->add = (AdditionSpec){spec->seq_len, spec->vocab_size, spec->add_digits, spec->add_msd_first};
    addition_validate(&ds->add);
    if (ds->split == SPLIT_VAL && spec->eval_examples < 1)
        fatal("mqar_eval_examples=%d: the addition test split needs at least 1 example (pass "
              "--mqar_eval_examples=1000)", spec->eval_examples);
    ds->eval_examples = (size_t)spec->eval_examples;
    ds->stream = spec->seed;
    snprintf(ds->describe, DESCRIBE_LEN, "addition (%d digits, answer %s first, T=%d%s)",
             spec->add_digits, spec->add_msd_first ? "most-significant digit" :
             "least-significant digit", spec->seq_len, ds->split == SPLIT_VAL ? ", test split" : "");
}

// dataset.json's vocab_size and tokenizer; *tokenizer is a new string.
static int read_shard_metadata(const char *dir, char **tokenizer) {
    char path[4096];
    join_path(path, sizeof path, dir, "dataset.json");
    if (!file_exists(path))
        fatal("data directory '%s' has no dataset.json: expected a directory written by "
              "`routelab prepare` (or pass --data=mqar)", dir);
    size_t len;
    char *text = read_file(path, &len, "dataset description");
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root))
        fatal("%s is not a JSON object: re-run `routelab prepare` to rewrite it", path);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(root, "vocab_size");
    if (!cJSON_IsNumber(vocab) || vocab->valuedouble < 1 ||
        vocab->valuedouble > SHARD_MAX_VOCAB || vocab->valuedouble != floor(vocab->valuedouble))
        fatal("%s: expected \"vocab_size\" to be an integer in [1, %d]: re-run `routelab "
              "prepare` to rewrite it", path, SHARD_MAX_VOCAB);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    if (!cJSON_IsString(tok) || !tok->valuestring[0])
        fatal("%s: expected \"tokenizer\" to be a non-empty string: re-run `routelab prepare` "
              "to rewrite it", path);
    int shard_vocab = (int)vocab->valuedouble;
    *tokenizer = xstrdup(tok->valuestring);
    cJSON_Delete(root);
    xfree(text);
    return shard_vocab;
}

static void open_shards(Dataset *ds, const DataSpec *spec) {
    const char *dir = spec->data;
    if (!dir_exists(dir))
        fatal("--data=%s: expected 'mqar', 'addition' or a directory written by `routelab prepare`, but no "
              "such directory exists (check the path)", dir);
    char *tokenizer;
    int shard_vocab = read_shard_metadata(dir, &tokenizer);
    if (shard_vocab > spec->vocab_size)
        fatal("shard %s was tokenized with vocab %d but model vocab_size is %d: pass "
              "--vocab_size=%d or more", dir, shard_vocab, spec->vocab_size, shard_vocab);

    const char *name = ds->split == SPLIT_TRAIN ? "train.bin" : "val.bin";
    char path[4096];
    join_path(path, sizeof path, dir, name);
    if (!file_exists(path))
        fatal("data directory '%s' has no %s: re-run `routelab prepare` to write it", dir, name);
    ds->tokens = shard_read(path, &ds->n_tokens);
    // dataset.json's vocab is at most the model's, so this also keeps every token < model vocab.
    for (size_t i = 0; i < ds->n_tokens; i++)
        if (ds->tokens[i] >= (uint32_t)shard_vocab)
            fatal("%s: token %u at offset %zu is outside the vocab_size %d that dataset.json "
                  "declares: the shard is corrupt or from another tokenizer (re-run `routelab "
                  "prepare`)", path, ds->tokens[i], i, shard_vocab);
    size_t need = (size_t)ds->T + 1;
    if (ds->n_tokens < need)
        fatal("%s holds %zu tokens but one window of seq_len+1 = %zu tokens is needed: pass a "
              "smaller --seq_len or prepare more text", path, ds->n_tokens, need);
    snprintf(ds->describe, DESCRIBE_LEN, "shards %s (%s %zu tokens, tokenizer %s)", dir,
             ds->split == SPLIT_TRAIN ? "train" : "val", ds->n_tokens, tokenizer);
    xfree(tokenizer);
}

Dataset *dataset_open(const DataSpec *spec, Split split) {
    if (!spec->data || !spec->data[0])
        fatal("--data is empty: pass --data=mqar or a directory written by `routelab prepare`");
    if (spec->seq_len < 1)
        fatal("seq_len=%d: expected a positive sequence length (pass --seq_len=64)",
              spec->seq_len);
    Dataset *ds = xcalloc(1, sizeof(Dataset));
    ds->split = split;
    ds->T = spec->seq_len;
    if (strcmp(spec->data, "mqar") == 0) {
        ds->source = SOURCE_MQAR;
        open_mqar(ds, spec);
    } else if (strcmp(spec->data, "addition") == 0) {
        ds->source = SOURCE_ADDITION;
        open_addition(ds, spec);
    } else {
        ds->source = SOURCE_SHARDS;
        open_shards(ds, spec);
    }
    return ds;
}

void dataset_free(Dataset *ds) {
    if (!ds) return;
    xfree(ds->tokens);
    xfree(ds);
}

// Window of T+1 tokens from `start`: inputs are its first T, targets its last T.
static void copy_window(const Dataset *ds, size_t start, int32_t *inputs, int32_t *targets) {
    // inputs, targets are (T)
    const uint32_t *w = ds->tokens + start;
    for (int t = 0; t < ds->T; t++) {
        inputs[t] = (int32_t)w[t];  // < dataset.json's vocab_size <= SHARD_MAX_VOCAB
        targets[t] = (int32_t)w[t + 1];
    }
}

void dataset_next_batch(Dataset *ds, int B, int32_t *inputs, int32_t *targets) {
    // inputs, targets are (B, T)
    ASSERT(B >= 1);
    size_t T = (size_t)ds->T;
    if (ds->source == SOURCE_MQAR) {
        uint64_t first = ds->position;
        // Each example depends only on (stream, index), so rows can be made in any order.
        #pragma omp parallel for schedule(static) if (B * T >= 4096)
        for (int b = 0; b < B; b++)
            mqar_example(&ds->mqar, ds->stream, first + (uint64_t)b, inputs + (size_t)b * T,
                         targets + (size_t)b * T);
        ds->position += (uint64_t)B;
        return;
    }
    if (ds->source == SOURCE_ADDITION) {
        for (int b = 0; b < B; b++)
            addition_example(&ds->add, ds->stream, ds->split == SPLIT_VAL, ds->position + (uint64_t)b,
                             inputs + (size_t)b * T, targets + (size_t)b * T);
        ds->position += (uint64_t)B;
        return;
    }
    size_t last_start = ds->n_tokens - (T + 1);  // the last offset where a window still fits
    for (int b = 0; b < B; b++) {
        if (ds->position > last_start) ds->position = 0;  // wrap: the tail is skipped
        copy_window(ds, (size_t)ds->position, inputs + (size_t)b * T, targets + (size_t)b * T);
        ds->position += T;  // stride T: each token is a target exactly once per pass
    }
}

uint64_t dataset_position(const Dataset *ds) { return ds->position; }

// Any value is accepted: a shard offset past the end simply wraps at the next batch.
void dataset_set_position(Dataset *ds, uint64_t pos) { ds->position = pos; }

int dataset_seq_len(const Dataset *ds) { return ds->T; }

size_t dataset_num_windows(const Dataset *ds) {
    if (ds->source != SOURCE_SHARDS) return ds->eval_examples;
    return (ds->n_tokens - 1) / (size_t)ds->T;
}

void dataset_window(const Dataset *ds, size_t w, int32_t *inputs, int32_t *targets) {
    // inputs, targets are (T)
    ASSERT(w < dataset_num_windows(ds));
    if (ds->source == SOURCE_MQAR) {
        mqar_example(&ds->mqar, ds->stream, (uint64_t)w, inputs, targets);
        return;
    }
    if (ds->source == SOURCE_ADDITION) {
        addition_example(&ds->add, ds->stream, 1, (uint64_t)w, inputs, targets);
        return;
    }
    copy_window(ds, w * (size_t)ds->T, inputs, targets);
}

const char *dataset_describe(const Dataset *ds) { return ds->describe; }

int dataset_window_class(const Dataset *ds, size_t w) {
    if (ds->source != SOURCE_ADDITION) return -1;
    int32_t in[ds->T], tg[ds->T];
    return addition_example(&ds->add, ds->stream, 1, (uint64_t)w, in, tg);
}

DataSpec dataspec_from_config(const Config *c) {
    if (strcmp(c->add_order, "lsd") && strcmp(c->add_order, "msd"))
        fatal("key 'add_order' must be lsd or msd, got '%s'", c->add_order);
    DataSpec s = {c->data, c->seq_len, c->vocab_size, c->mqar_pairs, c->mqar_random_filler,
                  c->mqar_alpha, c->mqar_eval_examples, (uint64_t)c->data_seed, c->add_digits,
                  !strcmp(c->add_order, "msd"), c->mqar_eval_examples};
    return s;
}
