// eval.h: evaluation on a split: mean loss, perplexity = exp(total NLL / tokens scored),
// accuracy (exact prediction of scored positions, averaged over examples: the MQAR metric;
// next-token accuracy on text), and the routing diagnostics of the first batch.
#ifndef ROUTELAB_EVAL_H
#define ROUTELAB_EVAL_H
#include <stdio.h>

#include "dataset.h"
#include "diagnostics.h"
#include "model.h"

typedef struct {
    double loss, ppl, accuracy;
    size_t tokens, windows;
    LayerDiag diag[MAX_LAYERS];
    int has_diag;
} EvalResult;

// max_batches 0 = every window. Leaves the model in evaluation mode (dropout off).
void evaluate(EvalResult *r, Model *m, Dataset *ds, int B, int max_batches, int with_diag);
void eval_result_write_json(FILE *f, const EvalResult *r, int n_layer);

int cmd_eval(int argc, char **argv);

#endif
