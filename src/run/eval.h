// eval.h: evaluation on a split: mean loss, perplexity = exp(total NLL / tokens scored),
// accuracy (exact prediction of scored positions, averaged over examples: the MQAR metric;
// next-token accuracy on text), and the routing diagnostics of the first batch. Addition adds
// exact match (all answer digits right; teacher-forced, which equals greedy decoding for exact
// match), split by carry / no carry, and accuracy per answer digit position.
#ifndef ROUTELAB_EVAL_H
#define ROUTELAB_EVAL_H
#include <stdio.h>

#include "json_out.h"

#include "dataset.h"
#include "diagnostics.h"
#include "model.h"
#include "options.h"

typedef struct {
    double loss, ppl, accuracy;
    size_t tokens, windows;
    LayerDiag diag[MAX_LAYERS];
    int has_diag;
    // tasks with example classes (addition: class 1 = needs a carry)
    int has_classes;
    double exact_match;             // examples with every scored position right
    double exact_by_class[2];       // the same within class 0 (no carry) and 1 (carry)
    size_t examples_by_class[2];
    int n_positions;                // scored positions per example (answer digits)
    double position_accuracy[32];   // accuracy at the p-th scored position of the examples
} EvalResult;

// max_batches 0 = every window. Leaves the model in evaluation mode (dropout off).
void evaluate(EvalResult *r, Model *m, Dataset *ds, int B, int max_batches, int with_diag);
// Loads a checkpoint (run directory, checkpoint file or Hugging Face directory; its resolved
// path into path[cap]) into m, with os's config keys from argv applied to its config c (os
// NULL: none). c->seq_len is the evaluation window (learned positions: at most the model's).
void eval_open_model(Model *m, Config *c, char *path, size_t cap, const char *ckpt, const OptSpec *os,
                     int argc, char **argv);
// Adds the result's keys (val_*, addition's exact match, per-layer diagnostics) to obj.
void eval_result_add_json(cJSON *obj, const EvalResult *r, int n_layer);

#endif
