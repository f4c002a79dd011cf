// grad_check.h: what the test_grad_*.c programs share: the finite-difference checker and the
// small model configuration. Each program checks one part of the backward passes:
//   test_grad_ops.c        matmul, layernorm, GELU (erf, tanh), cross-entropy, residual, dropout
//   test_grad_attention.c  attention in every routing mode, also against plain loops (attn_ref.h)
//   test_grad_ffn.c        feed-forward variants and mixtures of experts
//   test_grad_model.c      the whole model: every mode, per-layer mixes, variants, threads
//   test_grad_distill.c    distillation losses w.r.t. the gate matrices
//   test_grad_probe.c      the label probe of gateinfo (router_probe.h) w.r.t. its weights
// Differences are fourth-order central ((8[f(x+h) - f(x-h)] - [f(x+2h) - f(x-2h)]) / 12h), so
// h can be large enough to keep float32 round-off in the loss small; the loss of an op is a
// random linear functional of its output (generic gradients). Each coordinate passes when
//   |fd - an| <= RTOL max(|fd|, |an|) + (atol_rel max|an over the tensor| + atol_abs) (h0 / h).
// Top-k modes: a step that changes any kept set (the nonzero pattern of W) is retried with h/4,
// then h/16; a coordinate still changing is skipped, and most coordinates must be checked.
// Most of it runs on one OpenMP thread (thousands of tiny forwards: a loaded 2-core machine
// turns barriers into waits); every third attention case and test_model_threads use two.
// GRAD_VERBOSE=1 prints every check's worst err/tol.
#ifndef ROUTELAB_GRAD_CHECK_H
#define ROUTELAB_GRAD_CHECK_H
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "check.h"
#include "common.h"
#include "config.h"
#include "ffn.h"
#include "distill.h"
#include "model.h"
#include "ops.h"
#include "params.h"

#define RTOL 2e-2

static Rng rng;
static long n_fd_checked, n_fd_skipped, n_fd_retried, n_fd_cases;

// ----------------------------------------------------------------------------- helpers
static inline float *falloc(size_t n) { return xcalloc(n ? n : 1, sizeof(float)); }

static inline void fill_normal(float *x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(&rng);
}

static inline double dot_fd(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static inline double max_abs(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

// Loss of the current state; *changed = 1 when a discrete choice (a kept set) differs from the
// unperturbed state, which makes the central difference meaningless.
typedef double (*EvalFn)(void *ctx, int *changed);

typedef struct {
    double eps, atol_rel, atol_abs;
    int nsample;            // coordinates per tensor (all when the tensor is that small)
    double min_checked;     // fraction of tried coordinates that must be checked (not skipped)
} FdOpts;

// Fourth-order central difference at x[idx] (steps +-h, +-2h: truncation O(h^4), so h can be
// large enough to keep float32 round-off small); returns 0 (skip) when a kept set changed.
static inline int fd_at(double *fd, float *x, size_t idx, double h, EvalFn f, void *ctx) {
    float x0 = x[idx];
    double l[4];
    int changed = 0;
    static const double step[4] = {1, -1, 2, -2};
    for (int s = 0; s < 4; s++) {
        int c = 0;
        x[idx] = (float)(x0 + step[s] * h);
        l[s] = f(ctx, &c);
        changed |= c;
    }
    x[idx] = x0;
    if (changed) return 0;
    *fd = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * h);
    return 1;
}

// Compares an (n) with finite differences of f w.r.t. x (n) at a sample of coordinates.
static inline void fd_check(const char *what, float *x, const float *an, size_t n, const FdOpts *o,
                     EvalFn f, void *ctx) {
    double scale = max_abs(an, n), atol = o->atol_rel * scale + o->atol_abs;
    size_t tries = n <= (size_t)o->nsample ? n : (size_t)o->nsample;
    int checked = 0, skipped = 0, failed = 0;
    double worst = 0.0, w_fd = 0, w_an = 0;
    size_t w_idx = 0;
    for (size_t t = 0; t < tries; t++) {
        size_t idx = tries == n ? t : (size_t)rng_below(&rng, n);
        // a step that changes a kept set is retried smaller; round-off grows as 1/h
        double fd, h = o->eps;
        int ok = 0;
        for (int r = 0; r < 3 && !ok; r++, h /= 4) {
            ok = fd_at(&fd, x, idx, h, f, ctx);
            n_fd_retried += r > 0;
        }
        if (!ok) {
            skipped++;
            continue;
        }
        h *= 4;
        checked++;
        double err = fabs(fd - an[idx]);
        double tol = RTOL * fmax(fabs(fd), fabs(an[idx])) + atol * (o->eps / h);
        if (err > tol) failed++;
        if (err / tol > worst) worst = err / tol, w_fd = fd, w_an = an[idx], w_idx = idx;
    }
    n_fd_checked += checked;
    n_fd_skipped += skipped;
    if (getenv("GRAD_VERBOSE"))
        printf("  %-60s checked %3d skipped %2d worst err/tol %.3f (fd %.4g an %.4g)\n", what,
               checked, skipped, worst, w_fd, w_an);
    CHECK(failed == 0, "%s: %d of %d coordinates off; worst [%zu] fd %.6g vs analytic %.6g "
          "(err/tol %.2f, max|an| %.3g)", what, failed, checked, w_idx, w_fd, w_an, worst, scale);
    CHECK(checked >= o->min_checked * (double)tries, "%s: only %d of %zu coordinates checked "
          "(%d skipped: the kept sets changed)", what, checked, tries, skipped);
}

// The FD options of the plain ops (test_grad_ops.c) and of the FFN (test_grad_ffn.c).
static const FdOpts OPS_FD __attribute__((unused)) = {1e-2, 1e-4, 1e-6, 1 << 30, 1.0};

// The 2-layer model the model-level checks build, with kv (name, value, ..., NULL) on top.
static inline void small_config(Config *c, const char *const *kv) {
    config_defaults(c);
    static const char *const base[] = {
        "n_layer", "2", "d_model", "16", "n_head", "2", "d_ff", "32", "seq_len", "8",
        "vocab_size", "11", "d_g", "4", "k", "3", "dropout", "0", "init_std", "0.3",
        "gate_init_std", "0.5", "batch", "2", "threads", "2", NULL};
    for (const char *const *p = base; *p; p += 2) config_set(c, p[0], p[1], "test");
    for (const char *const *p = kv; p && *p; p += 2) config_set(c, p[0], p[1], "test");
    config_resolve(c);
}

// Every program starts alike: one OpenMP thread for the bulk (thousands of tiny forwards, where
// a parallel region costs more than the work), and the random generator at `start`, or seeded
// with 20240611 when start is NULL. These checks were one program, test_grad.c, that seeded
// once; each later program starts where that one had left the generator on reaching its
// checks, so every check still sees the same random inputs (and counts the same: how many
// rows come out empty, for one, depends on them).
static inline void grad_init(const Rng *start) {
    omp_set_num_threads(1);
    if (start) rng = *start;
    else rng_seed(&rng, 20240611);
}

// The last lines of every program: FD statistics, then check.h's tally "N passed, N failed".
static inline int grad_summary(const char *suite, double t_start) {
    printf("%s: %ld finite-difference coordinates checked (%ld retried with a smaller step, %ld "
           "skipped: kept set changed), %ld cases, %.1f s\n",
           suite, n_fd_checked, n_fd_retried, n_fd_skipped, n_fd_cases, now_seconds() - t_start);
    return check_summary(suite);
}
#endif
