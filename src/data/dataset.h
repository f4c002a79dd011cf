// dataset.h: where training and evaluation batches come from: built-in MQAR or prepared
// shards. Both give (inputs, targets) rows of seq_len tokens; targets of -1 are not scored.
#ifndef ROUTELAB_DATASET_H
#define ROUTELAB_DATASET_H
#include <stddef.h>
#include <stdint.h>

#include "common.h"  // IGNORE_INDEX
#include "config.h"

typedef struct {
    const char *data;      // "mqar", "addition" or a directory written by `routelab prepare`
    int seq_len;           // T
    int vocab_size;        // V of the model: every token must be < V
    int mqar_pairs;        // MQAR: key-value pairs per example
    int mqar_random_filler;// MQAR: 0 = filler token 0, 1 = random filler tokens
    float mqar_alpha;      // MQAR: power-law exponent a of the query gaps, p(g) ~ g^(a-1)
    int mqar_eval_examples;// MQAR: size of the test split
    uint64_t seed;         // data seed (MQAR train examples; test uses a disjoint stream)
    int add_digits;        // addition: operand digits n
    int add_msd_first;     // addition: answer most-significant digit first
    int eval_examples;     // generated tasks: size of the test split
} DataSpec;

// The data keys of a resolved config (the Config must outlive the spec: data points into it).
DataSpec dataspec_from_config(const Config *c);

typedef enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1 } Split;

typedef struct Dataset Dataset;

Dataset *dataset_open(const DataSpec *spec, Split split);
void dataset_free(Dataset *ds);
// Next B training rows into inputs/targets (B, T); advances the position (wraps around).
void dataset_next_batch(Dataset *ds, int B, int32_t *inputs, int32_t *targets);
// Position for checkpoints, so a resumed run sees the same batches.
uint64_t dataset_position(const Dataset *ds);
void dataset_set_position(Dataset *ds, uint64_t pos);
// Evaluation windows: shards are cut into disjoint windows of T+1 tokens at stride T; MQAR
// has mqar_eval_examples test examples. Window w goes to inputs/targets (T each).
size_t dataset_num_windows(const Dataset *ds);
// The window length T the dataset was opened with.
int dataset_seq_len(const Dataset *ds);
void dataset_window(const Dataset *ds, size_t w, int32_t *inputs, int32_t *targets);
const char *dataset_describe(const Dataset *ds);  // one line for logs
// Class of evaluation window w for split-by-class metrics: addition 1 = needs a carry,
// 0 = no carry; -1 for data without classes.
int dataset_window_class(const Dataset *ds, size_t w);

#endif
