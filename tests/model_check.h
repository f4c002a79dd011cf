// model_check.h: what the test_model_*.c programs share: a small model configuration, random
// batches, a few training helpers. They check properties of the model, the optimizer and the
// routing machinery:
//   test_model_params.c   which tensors get gate gradients, frozen tensors under AdamW, the
//                         `train` grammar (and its fatal errors), parameter counts
//   test_model_train.c    bit-identical reruns, the one-step AdamW property, the lr schedule
//   test_model_routing.c  top-k against brute force, window / kept-fraction structure, causality
//   test_model_moe.c      mixtures of experts: dense equivalence, the hash router, router training
#ifndef ROUTELAB_MODEL_CHECK_H
#define ROUTELAB_MODEL_CHECK_H
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adamw.h"
#include "attention.h"
#include "check.h"
#include "common.h"
#include "config.h"
#include "diagnostics.h"
#include "freeze.h"
#include "model.h"
#include "params.h"

static Rng rng;

// ----------------------------------------------------------------------------- helpers
static inline void small_config(Config *c, const char *const *kv) {
    config_defaults(c);
    static const char *const base[] = {
        "n_layer", "2", "d_model", "16", "n_head", "2", "d_ff", "32", "seq_len", "8",
        "vocab_size", "11", "d_g", "4", "k", "3", "dropout", "0", "init_std", "0.3",
        "gate_init_std", "0.5", "batch", "2", NULL};
    for (const char *const *p = base; *p; p += 2) config_set(c, p[0], p[1], "test");
    for (const char *const *p = kv; p && *p; p += 2) config_set(c, p[0], p[1], "test");
    config_resolve(c);
}

static inline void random_batch(int *in, int *tg, int n, int V) {
    for (int i = 0; i < n; i++) {
        in[i] = (int)rng_below(&rng, (uint64_t)V);
        if (tg) tg[i] = (int)rng_below(&rng, (uint64_t)V);
    }
}

static inline int is_gate(const ParamInfo *p) { return p->role == ROLE_GATE; }

static inline double sum_sq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static inline void train_steps(Model *m, const int *in, const int *tg, int steps, float lr) {
    for (int s = 0; s < steps; s++) {
        model_zero_grad(m);
        model_forward(m, in, tg, 2, m->cfg.seq_len);
        model_backward(m, 1.0f);
        adamw_step(m, lr);
    }
}

// fn(arg) must die with a one-line error mentioning `needle`.
static inline void expect_fatal(void (*fn)(const void *), const void *arg, const char *needle,
                                const char *what) {
    CHECK(check_child_fails(fn, arg, needle), "%s: expected a one-line fatal error naming '%s'",
          what, needle);
}

// Every program starts alike: one OpenMP thread (tiny models: one thread is fastest; the
// determinism test uses 2), and the random generator at `start`, or seeded with 7771 when start
// is NULL. These checks were one program, test_model.c, that seeded once; a later program whose
// checks draw random inputs starts (and, where it skips checks of another program, resumes)
// where that one had left the generator on reaching them, so every check still sees the same
// random inputs.
static inline void model_check_init(const Rng *start) {
    omp_set_num_threads(1);
    if (start) rng = *start;
    else rng_seed(&rng, 7771);
}

// The last lines of every program: its time, then check.h's tally "N passed, N failed".
static inline int model_check_summary(const char *suite, double t_start) {
    printf("%s: %.1f s\n", suite, now_seconds() - t_start);
    return check_summary(suite);
}
#endif
