// test_grad.c: finite-difference checks of every backward pass.
//   ops: matmul, layernorm, GELU (erf, tanh), cross-entropy (ignore -1), residual, dropout.
//   attention: every routing mode, both top-k scopes (empty rows), tau != 1, attention dropout,
//     fed masks; each forward also against an independent double-precision plain-loop version.
//   whole model: every mode, per-layer mixes, bias / tie / GELU variants, freezing, dropout.
//   distillation: KL and BCE w.r.t. the gate matrices.
// Differences are fourth-order central ((8[f(x+h) - f(x-h)] - [f(x+2h) - f(x-2h)]) / 12h), so
// h can be large enough to keep float32 round-off in the loss small; the loss of an op is a
// random linear functional of its output (generic gradients). Each coordinate passes when
//   |fd - an| <= RTOL max(|fd|, |an|) + (atol_rel max|an over the tensor| + atol_abs) (h0 / h).
// Top-k modes: a step that changes any kept set (the nonzero pattern of W) is retried with h/4,
// then h/16; a coordinate still changing is skipped, and most coordinates must be checked.
// The straight-through gate gradient (hard + ste) is not a true gradient: it is compared with an
// independent plain-loop implementation of the STE formula of ../shared/ref/README.md instead.
// Most of it runs on one OpenMP thread (thousands of tiny forwards: a loaded 2-core machine
// turns barriers into waits); every third attention case and test_model_threads use two.
// GRAD_VERBOSE=1 prints every check's worst err/tol and the time per section.
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
static float *falloc(size_t n) { return xcalloc(n ? n : 1, sizeof(float)); }

static void fill_normal(float *x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(&rng);
}

static double dot_fd(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_abs(const float *x, size_t n) {
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
static int fd_at(double *fd, float *x, size_t idx, double h, EvalFn f, void *ctx) {
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
static void fd_check(const char *what, float *x, const float *an, size_t n, const FdOpts *o,
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

// ----------------------------------------------------------------------------- plain ops
typedef struct {
    const float *r;           // the random functional
    float *out;
    size_t nout;
    void (*run)(void *ctx);   // recomputes out
} OpCtx;

static double op_eval(void *vctx, int *changed) {
    OpCtx *c = vctx;
    *changed = 0;
    c->run(c);
    return dot_fd(c->r, c->out, c->nout);
}

static const FdOpts OPS_FD = {1e-2, 1e-4, 1e-6, 1 << 30, 1.0};

typedef struct {
    OpCtx op;
    float *inp, *w, *b;
    size_t N;
    int C, OC;
} MatmulCtx;

static void matmul_run(void *v) {
    MatmulCtx *c = v;
    matmul_forward(c->op.out, c->inp, c->w, c->b, c->N, c->C, c->OC, PREC_FP32);
}

static void test_matmul(void) {
    size_t N = 6;
    int C = 7, OC = 5;
    MatmulCtx c = {{0}, falloc(N * C), falloc((size_t)OC * C), falloc(OC), N, C, OC};
    float *r = falloc(N * OC), *out = falloc(N * OC);
    fill_normal(c.inp, N * C, 1.0f);
    fill_normal(c.w, (size_t)OC * C, 1.0f);
    fill_normal(c.b, OC, 1.0f);
    fill_normal(r, N * OC, 1.0f);
    c.op = (OpCtx){r, out, N * OC, matmul_run};
    // forward against plain loops
    matmul_run(&c);
    double err = 0.0;
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = c.b[o];
            for (int i = 0; i < C; i++) s += (double)c.inp[n * C + i] * c.w[(size_t)o * C + i];
            err = fmax(err, fabs(s - out[n * OC + o]));
        }
    CHECK(err < 1e-5, "matmul_forward vs loops: max err %g", err);
    // backward: dweight/dbias accumulate (start from a known offset), dinp overwritten
    float *dinp = falloc(N * C), *dw = falloc((size_t)OC * C), *db = falloc(OC);
    for (size_t i = 0; i < N * C; i++) dinp[i] = 123.0f;
    for (size_t i = 0; i < (size_t)OC * C; i++) dw[i] = 1.0f;
    for (int i = 0; i < OC; i++) db[i] = 2.0f;
    matmul_backward(dinp, dw, db, r, c.inp, c.w, N, C, OC, 0, PREC_FP32);
    for (size_t i = 0; i < (size_t)OC * C; i++) dw[i] -= 1.0f;
    for (int i = 0; i < OC; i++) db[i] -= 2.0f;
    fd_check("matmul dinp", c.inp, dinp, N * C, &OPS_FD, op_eval, &c);
    fd_check("matmul dweight", c.w, dw, (size_t)OC * C, &OPS_FD, op_eval, &c);
    fd_check("matmul dbias", c.b, db, OC, &OPS_FD, op_eval, &c);
    // accumulate_dinp adds; NULL gradients are skipped; no bias
    float *dinp2 = falloc(N * C);
    memcpy(dinp2, dinp, N * C * sizeof(float));
    matmul_backward(dinp2, NULL, NULL, r, c.inp, c.w, N, C, OC, 1, PREC_FP32);
    double e2 = 0.0;
    for (size_t i = 0; i < N * C; i++) e2 = fmax(e2, fabs(dinp2[i] - 2.0 * dinp[i]));
    CHECK(e2 < 1e-5, "matmul_backward accumulate_dinp: max err %g", e2);
    matmul_backward(NULL, dw, NULL, r, c.inp, c.w, N, C, OC, 0, PREC_FP32);  // dinp NULL: no crash
    float *bias = c.b;
    c.b = NULL;
    matmul_run(&c);
    double e3 = 0.0;
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int i = 0; i < C; i++) s += (double)c.inp[n * C + i] * c.w[(size_t)o * C + i];
            e3 = fmax(e3, fabs(s - out[n * OC + o]));
        }
    CHECK(e3 < 1e-5, "matmul_forward without bias: max err %g", e3);
    xfree(c.inp), xfree(c.w), xfree(bias), xfree(db), xfree(r), xfree(out), xfree(dinp);
    xfree(dw), xfree(dinp2);
}

typedef struct {
    OpCtx op;
    float *inp, *w, *b, *mean, *rstd;
    size_t N;
    int C;
} LnCtx;

static void ln_run(void *v) {
    LnCtx *c = v;
    layernorm_forward(c->op.out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
}

static void test_layernorm(void) {
    size_t N = 5;
    int C = 9;
    LnCtx c = {{0}, falloc(N * C), falloc(C), falloc(C), falloc(N), falloc(N), N, C};
    float *r = falloc(N * C), *out = falloc(N * C);
    fill_normal(c.inp, N * C, 1.5f);
    for (size_t i = 0; i < N * C; i++) c.inp[i] += 0.7f;  // a non-zero mean
    fill_normal(c.w, C, 1.0f);
    fill_normal(c.b, C, 1.0f);
    fill_normal(r, N * C, 1.0f);
    c.op = (OpCtx){r, out, N * C, ln_run};
    ln_run(&c);
    double err = 0.0;
    for (size_t n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += c.inp[n * C + i];
        m /= C;
        for (int i = 0; i < C; i++) v += (c.inp[n * C + i] - m) * (c.inp[n * C + i] - m);
        v /= C;
        for (int i = 0; i < C; i++) {
            double y = (c.inp[n * C + i] - m) / sqrt(v + 1e-5) * c.w[i] + c.b[i];
            err = fmax(err, fabs(y - out[n * C + i]));
        }
    }
    CHECK(err < 1e-5, "layernorm_forward vs loops: max err %g", err);
    float *dinp = falloc(N * C), *dw = falloc(C), *db = falloc(C);
    for (size_t i = 0; i < N * C; i++) dinp[i] = 0.5f;  // dinp accumulates too
    for (int i = 0; i < C; i++) dw[i] = -1.0f, db[i] = 3.0f;
    layernorm_backward(dinp, dw, db, r, c.inp, c.w, c.mean, c.rstd, N, C);
    for (size_t i = 0; i < N * C; i++) dinp[i] -= 0.5f;
    for (int i = 0; i < C; i++) dw[i] += 1.0f, db[i] -= 3.0f;
    fd_check("layernorm dinp", c.inp, dinp, N * C, &OPS_FD, op_eval, &c);
    fd_check("layernorm dweight", c.w, dw, C, &OPS_FD, op_eval, &c);
    fd_check("layernorm dbias", c.b, db, C, &OPS_FD, op_eval, &c);
    // frozen weights: NULL dw/db still gives the same dinp
    float *dinp2 = falloc(N * C);
    layernorm_backward(dinp2, NULL, NULL, r, c.inp, c.w, c.mean, c.rstd, N, C);
    double e2 = 0.0;
    for (size_t i = 0; i < N * C; i++) e2 = fmax(e2, fabs(dinp2[i] - dinp[i]));
    CHECK(e2 < 1e-5, "layernorm_backward with frozen weights: dinp differs by %g", e2);
    xfree(c.inp), xfree(c.w), xfree(c.b), xfree(c.mean), xfree(c.rstd), xfree(r), xfree(out);
    xfree(dinp), xfree(dw), xfree(db), xfree(dinp2);
}

typedef struct {
    OpCtx op;
    float *inp;
    size_t n;
    GeluKind kind;
} GeluCtx;

static void gelu_run(void *v) {
    GeluCtx *c = v;
    gelu_forward(c->op.out, c->inp, c->n, c->kind);
}

static void test_gelu(GeluKind kind) {
    size_t n = 64;
    GeluCtx c = {{0}, falloc(n), n, kind};
    float *r = falloc(n), *out = falloc(n), *din = falloc(n);
    fill_normal(c.inp, n, 2.0f);
    fill_normal(r, n, 1.0f);
    c.op = (OpCtx){r, out, n, gelu_run};
    gelu_run(&c);
    double err = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = c.inp[i];
        double y = kind == GELU_ERF ? 0.5 * x * (1 + erf(x / sqrt(2.0)))
                                    : 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        err = fmax(err, fabs(y - out[i]));
    }
    CHECK(err < 2e-6, "gelu_forward (%s) vs formula: max err %g", kind == GELU_ERF ? "erf" : "tanh", err);
    gelu_backward(din, c.inp, r, n, kind);
    fd_check(kind == GELU_ERF ? "gelu erf" : "gelu tanh", c.inp, din, n, &OPS_FD, op_eval, &c);
    // dinp may alias dout
    float *alias = falloc(n);
    memcpy(alias, r, n * sizeof(float));
    gelu_backward(alias, c.inp, alias, n, kind);
    CHECK(memcmp(alias, din, n * sizeof(float)) == 0, "gelu_backward in place differs");
    xfree(c.inp), xfree(r), xfree(out), xfree(din), xfree(alias);
}

typedef struct {
    float *logits, *losses, *lse;
    const int *targets;
    size_t N;
    int V;
} CeCtx;

static double ce_eval(void *v, int *changed) {
    CeCtx *c = v;
    *changed = 0;
    size_t scored;
    double total = crossentropy_forward(c->losses, c->lse, &scored, c->logits, c->targets, c->N, c->V);
    return total / (double)scored;
}

static void test_crossentropy(void) {
    size_t N = 8;
    int V = 7;
    int targets[8] = {3, -1, 0, 6, -1, 2, 2, 5};
    CeCtx c = {falloc(N * V), falloc(N), falloc(N), targets, N, V};
    fill_normal(c.logits, N * V, 2.0f);
    size_t scored;
    double total = crossentropy_forward(c.losses, c.lse, &scored, c.logits, targets, N, V);
    CHECK(scored == 6, "crossentropy n_scored %zu, expected 6", scored);
    double ref = 0.0, err = 0.0;
    for (size_t n = 0; n < N; n++) {
        if (targets[n] < 0) {
            CHECK(c.losses[n] == 0.0f, "ignored position %zu has loss %g", n, c.losses[n]);
            continue;
        }
        double mx = -1e30, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, c.logits[n * V + v]);
        for (int v = 0; v < V; v++) s += exp(c.logits[n * V + v] - mx);
        double nll = log(s) + mx - c.logits[n * V + targets[n]];
        ref += nll;
        err = fmax(err, fabs(nll - c.losses[n]));
    }
    CHECK(err < 1e-5 && fabs(ref - total) < 1e-4, "crossentropy vs loops: per-row err %g, total "
          "%.8g vs %.8g", err, total, ref);
    float *d = falloc(N * V);
    memcpy(d, c.logits, N * V * sizeof(float));
    crossentropy_backward(d, c.lse, targets, N, V, 1.0f / (float)scored);
    for (size_t n = 0; n < N; n++)
        if (targets[n] < 0)
            CHECK(max_abs(d + n * V, V) == 0.0, "ignored row %zu has a gradient", n);
    fd_check("crossentropy (mean, ignore -1)", c.logits, d, N * V, &OPS_FD, ce_eval, &c);
    xfree(c.logits), xfree(c.losses), xfree(c.lse), xfree(d);
}

typedef struct {
    OpCtx op;
    const float *a, *b;
} ResCtx;

static void res_run(void *v) {
    ResCtx *c = v;
    residual_forward(c->op.out, c->a, c->b, c->op.nout);
}

static void test_residual_dropout(void) {
    size_t n = 4096;
    float *a = falloc(n), *b = falloc(n), *out = falloc(n);
    fill_normal(a, n, 1.0f);
    fill_normal(b, n, 1.0f);
    residual_forward(out, a, b, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= out[i] == a[i] + b[i];
    CHECK(ok, "residual_forward is not a + b");
    // residual backward is the identity for both inputs: finite differences of r . (a + b)
    float *r = falloc(n);
    fill_normal(r, n, 1.0f);
    ResCtx rc = {{r, out, n, res_run}, a, b};
    const FdOpts few = {1e-2, 1e-4, 1e-6, 24, 1.0};
    fd_check("residual d a", a, r, n, &few, op_eval, &rc);
    fd_check("residual d b", b, r, n, &few, op_eval, &rc);
    // dropout: stateless mask keyed by (key, i); backward = the same call on the gradient
    float p = 0.25f;
    unsigned long long key = 0xABCDEF12345ull;
    float *x = falloc(n), *y = falloc(n), *ones = falloc(n);
    fill_normal(x, n, 1.0f);
    memcpy(y, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    dropout_apply(y, n, p, key);
    dropout_apply(ones, n, p, key);
    size_t kept = 0;
    int consistent = 1, scaled = 1;
    for (size_t i = 0; i < n; i++) {
        int k = ones[i] != 0.0f;
        kept += k;
        consistent &= k ? y[i] == x[i] * (1.0f / (1.0f - p)) : y[i] == 0.0f;
        scaled &= !k || ones[i] == 1.0f / (1.0f - p);
    }
    CHECK(consistent && scaled, "dropout: same key gives a different mask or scale");
    CHECK(fabs((double)kept / n - (1 - p)) < 0.03, "dropout keeps %.3f, expected %.3f",
          (double)kept / n, 1 - p);
    float *y2 = falloc(n);
    memcpy(y2, x, n * sizeof(float));
    dropout_apply(y2, n, p, key + 1);
    CHECK(memcmp(y, y2, n * sizeof(float)) != 0, "dropout: another key gives the same mask");
    memcpy(y2, x, n * sizeof(float));
    dropout_apply(y2, n, 0.0f, key);
    CHECK(memcmp(y2, x, n * sizeof(float)) == 0, "dropout with p = 0 changed the input");
    // finite differences of r . dropout(x) against dropout(r) (the backward)
    float *rr = falloc(n), *dr = falloc(n);
    fill_normal(rr, n, 1.0f);
    memcpy(dr, rr, n * sizeof(float));
    dropout_apply(dr, n, p, key);
    int bad = 0;
    for (int t = 0; t < 200; t++) {
        size_t i = (size_t)rng_below(&rng, n);
        float x0 = x[i];
        double lp, lm;
        memcpy(y2, x, n * sizeof(float));
        y2[i] = x0 + 1e-2f;
        dropout_apply(y2, n, p, key);
        lp = dot_fd(rr, y2, n);
        memcpy(y2, x, n * sizeof(float));
        y2[i] = x0 - 1e-2f;
        dropout_apply(y2, n, p, key);
        lm = dot_fd(rr, y2, n);
        double fd = (lp - lm) / ((double)(x0 + 1e-2f) - (double)(x0 - 1e-2f));
        if (fabs(fd - dr[i]) > 2e-2 * fabs(dr[i]) + 1e-2) bad++;
        n_fd_checked++;
    }
    CHECK(bad == 0, "dropout backward vs finite differences: %d of 200 off", bad);
    xfree(a), xfree(b), xfree(out), xfree(r), xfree(x), xfree(y), xfree(ones);
    xfree(y2), xfree(rr), xfree(dr);
}

// ----------------------------------------------------------------------------- attention
typedef struct {
    AttnArgs a;
    float *qkv, *gq, *gk, *out, *att, *auxS, *auxs, *lse, *r;
    unsigned char *base;   // kept pattern (att != 0) of the unperturbed forward
    int check_pattern;
} AttnCtx;

static size_t attn_tt(const AttnCtx *x) { return (size_t)x->a.B * x->a.NH * x->a.T * x->a.T; }

static double attn_eval(void *v, int *changed) {
    AttnCtx *x = v;
    attention_forward(x->out, x->att, x->auxS, x->auxs, x->lse, x->qkv, x->gq, x->gk, &x->a);
    *changed = 0;
    if (x->check_pattern) {
        size_t n = attn_tt(x);
        for (size_t e = 0; e < n && !*changed; e++) *changed = (x->att[e] != 0.0f) != x->base[e];
    }
    return dot_fd(x->r, x->out, (size_t)x->a.B * x->a.T * x->a.C);
}

typedef struct {
    AttnMode mode;
    int k;
    TopkScope scope;
    GateGrad gg;
    float tau, dropout;
    int B, T, NH, hd, dg;
    int feed;                 // 1: mask_feed (NH,T,T), 2: mask_feed per batch (B,NH,T,T)
    const char *label;
} AttnCase;

// Brute-force top-k of x (n): keep the min(k, n) best by (value desc, index asc).
static void brute_topk(unsigned char *keep, const double *x, int n, int k) {
    int idx[256];
    for (int j = 0; j < n; j++) idx[j] = j;
    for (int a = 1; a < n; a++)  // insertion sort: larger value first, lower index on ties
        for (int b = a; b > 0; b--) {
            int p = idx[b - 1], q = idx[b];
            if (x[q] > x[p] || (x[q] == x[p] && q < p)) idx[b - 1] = q, idx[b] = p;
            else break;
        }
    memset(keep, 0, (size_t)n);
    for (int j = 0; j < (k < n ? k : n); j++) keep[idx[j]] = 1;
}

// Smallest gap between the k-th and (k+1)-th ranked values of x (n); inf when none.
static double topk_gap(const double *x, int n, int k) {
    if (k >= n) return INFINITY;
    double v[256];
    memcpy(v, x, (size_t)n * sizeof(double));
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && v[b] > v[b - 1]; b--) {
            double t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    return v[k - 1] - v[k];
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

// The README's mode table, written out here so the reference does not read the library's.
typedef enum { R_ALL, R_TOPK_S, R_TOPK_G, R_FRESH, R_FIXED, R_WINDOW } RefKeep;
static RefKeep ref_keep(AttnMode m) {
    switch (m) {
    case ATTN_ORACLE: return R_TOPK_S;
    case ATTN_HARD: return R_TOPK_G;
    case ATTN_STOCHASTIC: return R_FRESH;
    case ATTN_RANDOM_FIXED: return R_FIXED;
    case ATTN_WINDOW: return R_WINDOW;
    default: return R_ALL;  // dense, soft, soft_prob
    }
}
static int ref_needs_gate(AttnMode m) {
    return m == ATTN_SOFT || m == ATTN_SOFT_PROB || m == ATTN_HARD;
}
static int ref_gate_in_graph(AttnMode m, GateGrad gg) {
    return m == ATTN_SOFT || m == ATTN_SOFT_PROB || (m == ATTN_HARD && gg == GATE_GRAD_STE);
}

static void test_route_table(void) {
    static const KeepRule keeps[] = {KEEP_ALL_VISIBLE, KEEP_TOPK_SCORES, KEEP_TOPK_GATE,
                                     KEEP_TOPK_FRESH, KEEP_TOPK_FIXED, KEEP_WINDOW};
    for (int m = 0; m < ATTN_NUM_MODES; m++) {
        const RouteRule *r = route_rule((AttnMode)m);
        GateUse want = m == ATTN_SOFT ? GATE_ON_LOGITS : m == ATTN_SOFT_PROB ? GATE_ON_PROBS
                       : m == ATTN_HARD ? GATE_RANKS_ONLY : GATE_UNUSED;
        CHECK(r->keep == keeps[ref_keep((AttnMode)m)] && r->gate == want &&
                  !strcmp(r->name, attn_mode_name((AttnMode)m)) &&
                  route_needs_gate((AttnMode)m) == ref_needs_gate((AttnMode)m) &&
                  route_gate_in_graph((AttnMode)m, GATE_GRAD_NONE) ==
                      ref_gate_in_graph((AttnMode)m, GATE_GRAD_NONE) &&
                  route_gate_in_graph((AttnMode)m, GATE_GRAD_STE) ==
                      ref_gate_in_graph((AttnMode)m, GATE_GRAD_STE),
              "routing table row of mode %s disagrees with the README", attn_mode_name((AttnMode)m));
    }
}

// Independent double-precision forward (and the STE gate gradient) in plain loops. keep_in: the
// kept pattern to use for stochastic / random_fixed / fed masks (the others are computed here).
// Writes W (B,NH,T,T), y (B,T,C); with dgq, dgk non-NULL the STE gate gradient (B,T,NH*dg) for
// dout r. *near_tie: rows whose top-k boundary gap is too small to call.
static void attn_reference(double *W, double *y, double *dgq, double *dgk, const AttnCtx *x,
                           const AttnCase *cs, const unsigned char *keep_in, int *near_tie) {
    const AttnArgs *a = &x->a;
    int B = a->B, T = a->T, C = a->C, NH = a->NH, hd = a->hd, dg = a->dg, GW = NH * dg;
    RefKeep rk = ref_keep(a->mode);
    double S[64 * 64], G[64 * 64], Z[64], dW[64];
    unsigned char keep[64 * 64];
    *near_tie = 0;
    if (dgq) memset(dgq, 0, (size_t)B * T * GW * sizeof(double));
    if (dgk) memset(dgk, 0, (size_t)B * T * GW * sizeof(double));
    memset(y, 0, (size_t)B * T * C * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t bh = (size_t)b * NH + h;
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double s = 0, g = 0;
                    for (int d = 0; d < hd; d++)
                        s += (double)x->qkv[((size_t)b * T + i) * 3 * C + h * hd + d] *
                             x->qkv[((size_t)b * T + j) * 3 * C + C + h * hd + d];
                    S[i * T + j] = s / sqrt((double)hd);
                    if (x->gq) {
                        for (int d = 0; d < dg; d++)
                            g += (double)x->gq[((size_t)b * T + i) * GW + h * dg + d] *
                                 x->gk[((size_t)b * T + j) * GW + h * dg + d];
                        G[i * T + j] = g / sqrt((double)dg);
                    }
                }
            // kept sets
            for (int i = 0; i < T; i++) {
                unsigned char *kr = keep + i * T;
                const double *src = NULL;
                if (cs->feed) {
                    for (int j = 0; j < T; j++) kr[j] = keep_in[bh * T * T + (size_t)i * T + j];
                    continue;
                }
                switch (rk) {
                case R_ALL:
                    for (int j = 0; j < T; j++) kr[j] = j <= i;
                    break;
                case R_WINDOW:
                    for (int j = 0; j < T; j++) kr[j] = j <= i && j >= i - a->k + 1;
                    break;
                case R_FRESH:
                case R_FIXED:
                    for (int j = 0; j < T; j++) kr[j] = keep_in[bh * T * T + (size_t)i * T + j];
                    break;
                case R_TOPK_S: src = S + i * T; break;
                case R_TOPK_G: src = G + i * T; break;
                }
                if (src) {
                    int n = a->scope == TOPK_CAUSAL ? i + 1 : T;
                    brute_topk(kr, src, n, a->k);
                    for (int j = n; j < T; j++) kr[j] = 0;
                    for (int j = i + 1; j < T; j++) kr[j] = 0;
                    if (topk_gap(src, n, a->k) < 1e-4) (*near_tie)++;
                }
            }
            // weights
            for (int i = 0; i < T; i++) {
                double *w = W + bh * T * T + (size_t)i * T, z[64], mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double s = sigm(x->gq ? G[i * T + j] / a->tau : 0);
                    z[j] = a->mode == ATTN_SOFT ? S[i * T + j] * s : S[i * T + j];
                    if (keep[i * T + j]) mx = fmax(mx, z[j]);
                }
                for (int j = 0; j < T; j++) {
                    w[j] = keep[i * T + j] ? exp(z[j] - mx) : 0.0;
                    sum += w[j];
                }
                for (int j = 0; j < T; j++) {
                    w[j] = sum > 0 ? w[j] / sum : 0.0;
                    if (a->mode == ATTN_SOFT_PROB) w[j] *= sigm(G[i * T + j] / a->tau);
                }
                Z[i] = sum > 0 ? mx + log(sum) : -INFINITY;  // log-normaliser of the kept keys
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        acc += w[j] * x->qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hd + d];
                    y[((size_t)b * T + i) * C + h * hd + d] = acc;
                }
            }
            if (!dgq) continue;
            // STE: dM_ij = C_ij exp(S_ij - logZ_i)(dW_ij - sum_j' W_ij' dW_ij'), ds = dM,
            // dG = ds s (1 - s) / tau, dgq = dG gk / sqrt(dg), dgk = dG^T gq / sqrt(dg)
            for (int i = 0; i < T; i++) {
                const double *w = W + bh * T * T + (size_t)i * T;
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    dW[j] = 0;
                    for (int d = 0; d < hd; d++)
                        dW[j] += (double)x->r[((size_t)b * T + i) * C + h * hd + d] *
                                 x->qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hd + d];
                    dot += w[j] * dW[j];
                }
                for (int j = 0; j <= i; j++) {
                    if (isinf(Z[i])) continue;  // empty row: no gradient
                    double dM = exp(S[i * T + j] - Z[i]) * (dW[j] - dot);
                    double s = sigm(G[i * T + j] / a->tau);
                    double dG = dM * s * (1 - s) / a->tau / sqrt((double)dg);
                    for (int d = 0; d < dg; d++) {
                        dgq[((size_t)b * T + i) * GW + h * dg + d] +=
                            dG * x->gk[((size_t)b * T + j) * GW + h * dg + d];
                        dgk[((size_t)b * T + j) * GW + h * dg + d] +=
                            dG * x->gq[((size_t)b * T + i) * GW + h * dg + d];
                    }
                }
            }
        }
}

static const FdOpts ATTN_FD = {1e-2, 1e-4, 1e-5, 1 << 30, 0.75};
static const FdOpts ATTN_FD_SAMPLED = {1e-2, 1e-4, 1e-5, 48, 0.75};  // two-thread cases

static void attn_case(const AttnCase *cs, int nthreads) {
    AttnCtx x;
    memset(&x, 0, sizeof x);
    AttnArgs *a = &x.a;
    a->B = cs->B;
    a->T = cs->T;
    a->NH = cs->NH;
    a->hd = cs->hd;
    a->C = cs->NH * cs->hd;
    a->dg = cs->dg;
    a->mode = cs->mode;
    a->k = cs->k;
    a->scope = cs->scope;
    a->gate_grad = cs->gg;
    a->tau = cs->tau;
    a->dropout = cs->dropout;
    a->dropout_key = rng_next(&rng);
    a->noise_key = rng_next(&rng);
    a->nthreads = nthreads;
    a->scratch = falloc((size_t)nthreads * attention_scratch_floats(cs->T));
    int B = a->B, T = a->T, C = a->C, NH = a->NH, GW = NH * a->dg;
    size_t TT = (size_t)B * NH * T * T, N = (size_t)B * T;
    RefKeep rk = ref_keep(cs->mode);
    int needs_gate = ref_needs_gate(cs->mode);
    int in_graph = ref_gate_in_graph(cs->mode, cs->gg);
    int ste = cs->mode == ATTN_HARD && cs->gg == GATE_GRAD_STE;
    int aux = cs->mode == ATTN_SOFT || cs->mode == ATTN_SOFT_PROB || ste;  // as model.c lays out
    x.qkv = falloc(N * 3 * C);
    fill_normal(x.qkv, N * 3 * C, 1.0f);
    if (needs_gate) {
        x.gq = falloc(N * GW);
        x.gk = falloc(N * GW);
        fill_normal(x.gq, N * GW, 1.0f);
        fill_normal(x.gk, N * GW, 1.0f);
    }
    x.out = falloc(N * C);
    x.att = falloc(TT);
    x.auxS = aux ? falloc(TT) : NULL;
    x.auxs = aux ? falloc(TT) : NULL;
    x.lse = ste ? falloc((size_t)B * NH * T) : NULL;
    x.r = falloc(N * C);
    fill_normal(x.r, N * C, 1.0f);
    float *feed = NULL;
    if (cs->feed) {  // random 0/1 masks, causal applied, sometimes an empty row
        size_t nf = cs->feed == 2 ? TT : (size_t)NH * T * T;
        feed = falloc(nf);
        for (size_t e = 0; e < nf; e++) {
            int i = (int)((e / T) % T), j = (int)(e % T);
            feed[e] = j <= i && rng_uniform(&rng) < 0.6f ? 1.0f : 0.0f;
        }
        a->given_keep = feed;
        a->given_keep_per_batch = cs->feed == 2;
    }
    char what[160];
    const FdOpts *fo = nthreads > 1 ? &ATTN_FD_SAMPLED : &ATTN_FD;

    // --- forward vs the independent reference
    double L0 = attn_eval(&x, &(int){0});
    x.base = xcalloc(TT, 1);
    for (size_t e = 0; e < TT; e++) x.base[e] = x.att[e] != 0.0f;
    unsigned char *keep_in = xcalloc(TT, 1);
    if (cs->feed) {
        for (size_t e = 0; e < TT; e++) {
            size_t bh = e / ((size_t)T * T), w = e % ((size_t)T * T);
            keep_in[e] = feed[(cs->feed == 2 ? bh : bh % NH) * T * T + w] > 0.5f;
        }
    } else {
        memcpy(keep_in, x.base, TT);
    }
    double *Wr = xcalloc(TT, sizeof(double)), *yr = xcalloc(N * C, sizeof(double));
    double *dgq_r = ste ? xcalloc(N * GW, sizeof(double)) : NULL;
    double *dgk_r = ste ? xcalloc(N * GW, sizeof(double)) : NULL;
    int near_tie;
    attn_reference(Wr, yr, dgq_r, dgk_r, &x, cs, keep_in, &near_tie);
    if (cs->dropout == 0.0f) {
        double ew = 0, ey = 0;
        for (size_t e = 0; e < TT; e++) ew = fmax(ew, fabs(Wr[e] - x.att[e]));
        for (size_t e = 0; e < N * C; e++) ey = fmax(ey, fabs(yr[e] - x.out[e]));
        snprintf(what, sizeof what, "%s: forward vs plain loops (W err %.3g, y err %.3g, %d near "
                 "ties)", cs->label, ew, ey, near_tie);
        CHECK(near_tie == 0 && ew < 2e-5 && ey < 5e-5, "%s", what);
    }
    // structure of the kept sets
    long empty = 0, wrong_count = 0;
    for (int bh = 0; bh < B * NH; bh++)
        for (int i = 0; i < T; i++) {
            const unsigned char *kr = x.base + ((size_t)bh * T + i) * T;
            int n = 0, future = 0;
            for (int j = 0; j < T; j++) n += kr[j], future += j > i && kr[j];
            empty += n == 0;
            CHECK(future == 0, "%s: row %d keeps a future key", cs->label, i);
            int expect = rk == R_ALL ? i + 1
                         : rk == R_WINDOW || cs->scope == TOPK_CAUSAL
                             ? (i + 1 < cs->k ? i + 1 : cs->k) : -1;
            if (!cs->feed && expect >= 0 && n != expect) wrong_count++;
            if (n == 0) {  // an empty row outputs 0
                int b = bh / NH, h = bh % NH;
                CHECK(max_abs(x.out + ((size_t)b * T + i) * C + h * a->hd, a->hd) == 0.0,
                      "%s: empty row (bh %d, i %d) has a non-zero output", cs->label, bh, i);
            }
        }
    CHECK(wrong_count == 0, "%s: %ld rows keep the wrong number of keys", cs->label, wrong_count);
    if (cs->scope == TOPK_ALL && rk != R_ALL && rk != R_WINDOW && !cs->feed)
        CHECK(empty > 0, "%s: expected some empty rows with topk_scope=all", cs->label);
    if (rk == R_FIXED && !cs->feed)  // the same mask for every batch row
        CHECK(memcmp(x.base, x.base + (size_t)NH * T * T, (size_t)(B - 1) * NH * T * T) == 0,
              "%s: random_fixed masks differ between batch rows", cs->label);
    if (rk == R_FRESH && !cs->feed) {
        CHECK(memcmp(x.base, x.base + (size_t)NH * T * T, (size_t)NH * T * T) != 0,
              "%s: stochastic masks identical for two batch rows", cs->label);
        AttnArgs save = *a;  // another forward pass (noise key) draws another mask
        a->noise_key ^= 0x5555;
        attention_forward(x.out, x.att, x.auxS, x.auxs, x.lse, x.qkv, x.gq, x.gk, a);
        int same = 1;
        for (size_t e = 0; e < TT; e++) same &= (x.att[e] != 0.0f) == x.base[e];
        CHECK(!same, "%s: another noise key gives the same stochastic masks", cs->label);
        *a = save;
    }

    // --- analytic gradients
    double L1 = attn_eval(&x, &(int){0});
    CHECK(L0 == L1, "%s: forward is not deterministic", cs->label);
    float *dqkv = falloc(N * 3 * C);
    float *dgq = needs_gate ? falloc(N * GW) : NULL, *dgk = needs_gate ? falloc(N * GW) : NULL;
    if (dgq)
        for (size_t e = 0; e < N * GW; e++) dgq[e] = dgk[e] = 7.0f;  // sentinel
    for (size_t e = 0; e < N * 3 * C; e++) dqkv[e] = 9.0f;  // overwritten, not accumulated
    attention_backward(dqkv, dgq, dgk, x.r, x.qkv, x.gq, x.gk, x.att, x.auxS, x.auxs, x.lse, a);
    if (needs_gate && !in_graph) {  // hard, gate_grad none: no gate gradient is produced
        int untouched = 1;
        for (size_t e = 0; e < N * GW; e++) untouched &= dgq[e] == 7.0f && dgk[e] == 7.0f;
        CHECK(untouched, "%s: attention_backward wrote dgq/dgk with the gate out of the graph",
              cs->label);
    }
    x.check_pattern = rk == R_TOPK_S || rk == R_TOPK_G;
    snprintf(what, sizeof what, "%s%s: d qkv", cs->label, nthreads > 1 ? " (2 threads)" : "");
    fd_check(what, x.qkv, dqkv, N * 3 * C, fo, attn_eval, &x);
    if (in_graph && !ste) {
        snprintf(what, sizeof what, "%s: d gq", cs->label);
        fd_check(what, x.gq, dgq, N * GW, fo, attn_eval, &x);
        snprintf(what, sizeof what, "%s: d gk", cs->label);
        fd_check(what, x.gk, dgk, N * GW, fo, attn_eval, &x);
    }
    if (needs_gate && !in_graph) {
        // the loss depends on G through its ranking only: unchanged kept sets, unchanged loss
        int moved = 0, tried = 0;
        for (int t = 0; t < 40; t++) {
            float *g = t & 1 ? x.gk : x.gq;
            size_t idx = (size_t)rng_below(&rng, N * GW);
            float g0 = g[idx];
            int cp, cm;
            g[idx] = g0 + 1e-3f;
            double lp = attn_eval(&x, &cp);
            g[idx] = g0 - 1e-3f;
            double lm = attn_eval(&x, &cm);
            g[idx] = g0;
            if (cp || cm) continue;
            tried++;
            moved += lp != lm;
        }
        CHECK(tried >= 30 && moved == 0, "%s: gate values (not only their ranking) move the loss "
              "(%d of %d)", cs->label, moved, tried);
    }
    if (ste) {  // straight-through gate gradient vs the plain-loop formula
        attn_eval(&x, &(int){0});  // restore the saved forward state
        attention_backward(dqkv, dgq, dgk, x.r, x.qkv, x.gq, x.gk, x.att, x.auxS, x.auxs, x.lse, a);
        double mq = 0, mk = 0, eq = 0, ek = 0;
        for (size_t e = 0; e < N * GW; e++) {
            mq = fmax(mq, fabs(dgq_r[e]));
            mk = fmax(mk, fabs(dgk_r[e]));
        }
        int bad = 0;
        for (size_t e = 0; e < N * GW; e++) {
            double d1 = fabs(dgq[e] - dgq_r[e]), d2 = fabs(dgk[e] - dgk_r[e]);
            eq = fmax(eq, d1);
            ek = fmax(ek, d2);
            bad += d1 > 1e-4 * fabs(dgq_r[e]) + 1e-5 * mq + 1e-7;
            bad += d2 > 1e-4 * fabs(dgk_r[e]) + 1e-5 * mk + 1e-7;
        }
        CHECK(bad == 0 && mq > 0 && mk > 0, "%s: STE gate gradient vs formula: %d off (max err "
              "%.3g / %.3g of max %.3g / %.3g)", cs->label, bad, eq, ek, mq, mk);
        n_fd_checked += 2 * (long)(N * GW);
    }
    n_fd_cases++;
    xfree(a->scratch), xfree(x.qkv), xfree(x.gq), xfree(x.gk), xfree(x.out), xfree(x.att);
    xfree(x.auxS), xfree(x.auxs), xfree(x.lse), xfree(x.r), xfree(feed), xfree(x.base);
    xfree(keep_in), xfree(Wr), xfree(yr), xfree(dgq_r), xfree(dgk_r), xfree(dqkv), xfree(dgq);
    xfree(dgk);
}

static void test_attention(void) {
    const AttnCase cases[] = {
        // mode            k  scope        gate_grad       tau   drop  B  T NH hd dg feed label
        {ATTN_DENSE,        3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "dense"},
        {ATTN_ORACLE,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "oracle causal"},
        {ATTN_ORACLE,       2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "oracle all"},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "soft"},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 0.5f, 0.0f, 2, 6, 2, 4, 3, 0, "soft tau 0.5"},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "soft_prob"},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 2.5f, 0.0f, 1, 8, 3, 2, 2, 0, "soft_prob tau 2.5"},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard causal"},
        {ATTN_HARD,         2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard all"},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_STE,  1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard ste causal"},
        {ATTN_HARD,         2, TOPK_ALL,    GATE_GRAD_STE,  1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard ste all"},
        {ATTN_HARD,         4, TOPK_CAUSAL, GATE_GRAD_STE,  0.4f, 0.0f, 2, 9, 2, 3, 5, 0, "hard ste tau 0.4"},
        {ATTN_STOCHASTIC,   3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "stochastic causal"},
        {ATTN_STOCHASTIC,   2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "stochastic all"},
        {ATTN_RANDOM_FIXED, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "random_fixed causal"},
        {ATTN_RANDOM_FIXED, 2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 3, 7, 2, 4, 3, 0, "random_fixed all"},
        {ATTN_WINDOW,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "window"},
        {ATTN_WINDOW,       1, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 5, 1, 4, 3, 0, "window k 1"},
        {ATTN_STOCHASTIC,   3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 6, 2, 4, 3, 2, "stochastic fed masks"},
        {ATTN_RANDOM_FIXED, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 6, 2, 4, 3, 1, "random_fixed fed masks"},
        // dropout on the attention weights: stateless masks, so the same key re-runs the same
        {ATTN_DENSE,        3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "dense dropout"},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 0.8f, 0.3f, 2, 7, 2, 4, 3, 0, "soft dropout"},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "soft_prob dropout"},
        {ATTN_ORACLE,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "oracle dropout"},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "hard dropout"},
    };
    // one thread for most (fast and steady on a loaded machine), every third with two
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_case(&cases[i], i % 3 ? 1 : 2);
}

// ----------------------------------------------------------------------------- FFN and MoE
typedef struct {
    FfnArgs a;
    FfnWeights w;
    float *fc_w, *fc_b, *proj_w, *proj_b, *router_w, *x, *out, *r;
    FfnActs acts;
    float *abuf;
    int *ibuf, *base_slot;
} FfnCtx;

static void ffn_ctx_acts(FfnCtx *c) {
    size_t sz[FA_COUNT], fo = 0, io = 0;
    ffn_act_sizes(&c->a, sz);
    c->abuf = falloc(sz[FA_H] + sz[FA_A] + sz[FA_XG] + sz[FA_Y] + sz[FA_PROBS] + sz[FA_WEIGHT]);
    c->ibuf = xcalloc(sz[FA_CHOICE] + sz[FA_SLOT] + sz[FA_ROW_TOKEN] + sz[FA_EXPERT_START] + 1, sizeof(int));
#define FCARVE(p, slot) c->acts.p = sz[slot] ? c->abuf + fo : NULL, fo += sz[slot]
#define ICARVE(p, slot) c->acts.p = sz[slot] ? c->ibuf + io : NULL, io += sz[slot]
    FCARVE(h, FA_H); FCARVE(a, FA_A); FCARVE(xg, FA_XG); FCARVE(y, FA_Y);
    FCARVE(probs, FA_PROBS); FCARVE(weight, FA_WEIGHT);
    ICARVE(choice, FA_CHOICE); ICARVE(slot, FA_SLOT); ICARVE(row_token, FA_ROW_TOKEN);
    ICARVE(expert_start, FA_EXPERT_START);
#undef FCARVE
#undef ICARVE
}

static double ffn_eval(void *v, int *changed) {
    FfnCtx *c = v;
    ffn_forward(c->out, &c->acts, c->x, &c->w, &c->a);
    size_t cnt = c->a.N * c->a.topk;  // choices too: see moe_slots
    *changed = c->base_slot && ffn_is_routed(&c->a) &&
               (memcmp(c->base_slot, c->acts.slot, cnt * sizeof(int)) ||
                memcmp(c->base_slot + cnt, c->acts.choice, cnt * sizeof(int)));
    return dot_fd(c->r, c->out, c->a.N * (size_t)c->a.C) + c->acts.aux_loss;
}

// One configuration: FD of x and every weight; the forward of a 1-expert plain FFN is also
// compared with plain loops elsewhere (test_model: dense equivalence).
static void ffn_case(const char *label, int E, int F, int topk, FfnAct act, RouterKind router,
                     float capacity, float aux) {
    size_t N = 12;
    int C = 6, Fi = act == FFN_ACT_GELU ? F : 2 * F;
    FfnCtx c = {0};
    int tokens[12];
    for (size_t n = 0; n < N; n++) tokens[n] = (int)rng_below(&rng, 9);
    c.a = (FfnArgs){.N = N, .C = C, .E = E, .F = F, .topk = topk, .act = act, .gelu = GELU_ERF,
                    .router = router, .capacity_factor = capacity, .aux_coef = aux,
                    .aux_grad_scale = 1.0f, .tokens = tokens, .hash_seed = 77};
    c.fc_w = falloc((size_t)E * Fi * C), c.fc_b = falloc((size_t)E * Fi);
    c.proj_w = falloc((size_t)E * C * F), c.proj_b = falloc((size_t)E * C);
    c.router_w = falloc((size_t)E * C), c.x = falloc(N * C), c.out = falloc(N * C), c.r = falloc(N * C);
    fill_normal(c.fc_w, (size_t)E * Fi * C, 0.6f), fill_normal(c.fc_b, (size_t)E * Fi, 0.3f);
    fill_normal(c.proj_w, (size_t)E * C * F, 0.6f), fill_normal(c.proj_b, (size_t)E * C, 0.3f);
    fill_normal(c.router_w, (size_t)E * C, 1.0f), fill_normal(c.x, N * C, 1.0f), fill_normal(c.r, N * C, 1.0f);
    c.w = (FfnWeights){c.fc_w, c.fc_b, c.proj_w, c.proj_b, router == ROUTER_NONE || router == ROUTER_HASH ? NULL : c.router_w};
    ffn_ctx_acts(&c);
    ffn_eval(&c, &(int){0});
    if (ffn_is_routed(&c.a)) {
        c.base_slot = xcalloc(2 * N * topk, sizeof(int));
        memcpy(c.base_slot, c.acts.slot, N * topk * sizeof(int));
        memcpy(c.base_slot + N * topk, c.acts.choice, N * topk * sizeof(int));
    }
    size_t ss[FS_COUNT];
    ffn_scratch_sizes(&c.a, ss);
    FfnScratch sc = {falloc(ss[FS_DH]), falloc(ss[FS_DA]), falloc(ss[FS_DY]), falloc(ss[FS_DXG]),
                     falloc(ss[FS_DWEIGHT]), falloc(ss[FS_DPROBS])};
    if (!ss[FS_DA]) sc.da = NULL;
    float *dx = falloc(N * C);
    FfnGrads g = {falloc((size_t)E * Fi * C), falloc((size_t)E * Fi), falloc((size_t)E * C * F),
                  falloc((size_t)E * C), c.w.router_w ? falloc((size_t)E * C) : NULL};
    ffn_backward(dx, &g, c.r, c.x, &c.acts, &c.w, &c.a, &sc);
    char what[160];
#define FD(name, p, an, n) snprintf(what, sizeof what, "%s: %s", label, name), \
                           fd_check(what, p, an, n, &OPS_FD, ffn_eval, &c)
    FD("dx", c.x, dx, N * C);
    FD("dfc_w", c.fc_w, g.fc_w, (size_t)E * Fi * C);
    FD("dfc_b", c.fc_b, g.fc_b, (size_t)E * Fi);
    FD("dproj_w", c.proj_w, g.proj_w, (size_t)E * C * F);
    FD("dproj_b", c.proj_b, g.proj_b, (size_t)E * C);
    if (g.router_w) FD("drouter_w", c.router_w, g.router_w, (size_t)E * C);
#undef FD
    if (ffn_is_routed(&c.a)) {  // dispatch invariants: every row is one kept choice
        size_t kept = 0;
        for (size_t i = 0; i < N * topk; i++) kept += c.acts.slot[i] >= 0;
        CHECK(kept == (size_t)c.acts.expert_start[E], "%s: %zu kept choices vs %d rows", label, kept,
              c.acts.expert_start[E]);
        if (capacity > 0) {
            int cap = (int)ceil(capacity * (double)N * topk / E);
            for (int e = 0; e < E; e++)
                CHECK(c.acts.expert_start[e + 1] - c.acts.expert_start[e] <= cap, "%s: expert %d over "
                      "capacity", label, e);
        }
    }
    n_fd_cases++;
    xfree(c.fc_w), xfree(c.fc_b), xfree(c.proj_w), xfree(c.proj_b), xfree(c.router_w), xfree(c.x);
    xfree(c.out), xfree(c.r), xfree(c.abuf), xfree(c.ibuf), xfree(c.base_slot), xfree(dx);
    xfree(sc.dh), xfree(sc.da), xfree(sc.dy), xfree(sc.dxg), xfree(sc.dweight), xfree(sc.dprobs);
    xfree(g.fc_w), xfree(g.fc_b), xfree(g.proj_w), xfree(g.proj_b), xfree(g.router_w);
}

static void test_ffn(void) {
    ffn_case("ffn plain gelu", 1, 5, 1, FFN_ACT_GELU, ROUTER_NONE, 0, 0);
    ffn_case("ffn plain swiglu", 1, 5, 1, FFN_ACT_SWIGLU, ROUTER_NONE, 0, 0);
    ffn_case("ffn plain geglu", 1, 4, 1, FFN_ACT_GEGLU, ROUTER_NONE, 0, 0);
    ffn_case("moe learned top-1", 4, 3, 1, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0);
    ffn_case("moe learned top-2", 4, 3, 2, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0);
    ffn_case("moe learned top-1 aux", 3, 3, 1, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0.3f);
    ffn_case("moe learned top-2 aux", 3, 3, 2, FFN_ACT_SWIGLU, ROUTER_LEARNED, 0, 0.3f);
    ffn_case("moe random top-1 capacity", 3, 4, 1, FFN_ACT_GELU, ROUTER_RANDOM, 1.0f, 0);
    ffn_case("moe random top-1 capacity aux", 3, 4, 1, FFN_ACT_GELU, ROUTER_RANDOM, 1.0f, 0.2f);
    ffn_case("moe learned top-2 capacity", 4, 3, 2, FFN_ACT_GEGLU, ROUTER_LEARNED, 0.5f, 0.1f);
    ffn_case("moe hash top-1", 4, 3, 1, FFN_ACT_GELU, ROUTER_HASH, 0, 0);
    ffn_case("moe hash top-2 capacity", 4, 3, 2, FFN_ACT_SWIGLU, ROUTER_HASH, 0.75f, 0);
}

// ----------------------------------------------------------------------------- whole model
static void small_config(Config *c, const char *const *kv) {
    config_defaults(c);
    static const char *const base[] = {
        "n_layer", "2", "d_model", "16", "n_head", "2", "d_ff", "32", "seq_len", "8",
        "vocab_size", "11", "d_g", "4", "k", "3", "dropout", "0", "init_std", "0.3",
        "gate_init_std", "0.5", "batch", "2", "threads", "2", NULL};
    for (const char *const *p = base; *p; p += 2) config_set(c, p[0], p[1], "test");
    for (const char *const *p = kv; p && *p; p += 2) config_set(c, p[0], p[1], "test");
    config_resolve(c);
}

typedef struct {
    Model *m;
    const int *in, *tg;
    int B, T;
    uint64_t fc;            // forward index reused by every forward (dropout, stochastic masks)
    unsigned char *base;    // kept pattern of every layer's W in the unperturbed forward
    size_t per_layer;
    int *base_slots;        // MoE: every layer's dispatch (slot per choice) unperturbed
} ModelCtx;

// MoE routing of every routed layer, concatenated: choices and slots (N*topk each). Choices
// too: a dropped token moving between two full experts keeps its slot (-1) but moves the
// load-balancing loss.
static size_t moe_slots(const Model *m, int *out) {
    size_t n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        FfnArgs a = model_ffn_args(m, l);
        if (!ffn_is_routed(&a)) continue;
        size_t cnt = a.N * (size_t)a.topk;
        if (out) memcpy(out + n, m->layer[l].ffn.slot, cnt * sizeof(int)),
                 memcpy(out + n + cnt, m->layer[l].ffn.choice, cnt * sizeof(int));
        n += 2 * cnt;
    }
    return n;
}

static double model_eval(void *v, int *changed) {
    ModelCtx *x = v;
    x->m->forward_count = x->fc;
    double L = model_forward(x->m, x->in, x->tg, x->B, x->T) + x->m->aux_loss;
    *changed = 0;
    if (x->base_slots) {  // a perturbation that moves a token to another expert is a kink
        size_t n = moe_slots(x->m, NULL);
        int *now = xcalloc(n + 1, sizeof(int));
        moe_slots(x->m, now);
        *changed = memcmp(now, x->base_slots, n * sizeof(int)) != 0;
        xfree(now);
    }
    if (x->base)
        for (int l = 0; l < x->m->cfg.n_layer && !*changed; l++) {
            const float *att = x->m->layer[l].att;
            const unsigned char *b = x->base + (size_t)l * x->per_layer;
            for (size_t e = 0; e < x->per_layer && !*changed; e++) *changed = (att[e] != 0.0f) != b[e];
        }
    return L;
}

static const FdOpts MODEL_FD = {1e-2, 1e-4, 3e-5, 16, 0.75};

// FD on every tensor that gets a gradient; tensors that get none must hold exactly 0.
// skip_fd: name fragments whose FD is not meaningful (straight-through contaminated).
static void model_case(const char *label, const char *const *kv, const char *const *skip_fd) {
    Config c;
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    m.training = 1;  // dropout (when configured) on; the forward index is pinned below
    int B = 2, T = c.seq_len, V = c.vocab_size;
    int in[64], tg[64];
    for (int n = 0; n < B * T; n++) {
        in[n] = (int)rng_below(&rng, (uint64_t)V);
        tg[n] = (int)rng_below(&rng, (uint64_t)V);
        if (n % 5 == 2) tg[n] = -1;  // a few ignored positions
    }
    ModelCtx x = {&m, in, tg, B, T, 17, NULL, (size_t)B * c.n_head * T * T, NULL};
    model_zero_grad(&m);
    double L0 = model_eval(&x, &(int){0});
    x.base_slots = xcalloc(moe_slots(&m, NULL) + 1, sizeof(int));
    moe_slots(&m, x.base_slots);
    CHECK(isfinite(L0) && L0 > 0, "%s: loss %g", label, L0);
    x.base = xcalloc((size_t)c.n_layer * x.per_layer, 1);
    for (int l = 0; l < c.n_layer; l++)
        for (size_t e = 0; e < x.per_layer; e++)
            x.base[(size_t)l * x.per_layer + e] = m.layer[l].att[e] != 0.0f;
    model_backward(&m, 1.0f);
    float *an = falloc(m.table.total);
    memcpy(an, m.grads, m.table.total * sizeof(float));
    int n_grad = 0;
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        char what[200];
        if (p->role == ROLE_GATE) {  // the gate is in the graph in soft, soft_prob, hard + ste
            AttnMode md = m.plan.attn.mode[p->layer];
            int in_graph = md == ATTN_SOFT || md == ATTN_SOFT_PROB ||
                           (md == ATTN_HARD && m.plan.attn.gate_grad == GATE_GRAD_STE);
            CHECK(m.gets_grad[i] == (m.trainable[i] && in_graph) &&
                      (!m.plan.attn.gate_frozen[p->layer] || !m.trainable[i]),
                  "%s: %s gets_grad %d (trainable %d, mode %s)", label, p->name, m.gets_grad[i],
                  m.trainable[i], attn_mode_name(md));
        } else {
            CHECK(m.gets_grad[i] == m.trainable[i], "%s: %s gets_grad %d, trainable %d", label,
                  p->name, m.gets_grad[i], m.trainable[i]);
        }
        if (!m.gets_grad[i]) {
            int zero = 1;
            for (size_t j = 0; j < p->numel; j++) zero &= an[p->offset + j] == 0.0f;
            CHECK(zero, "%s: %s gets no gradient but m.grads is not exactly 0", label, p->name);
            continue;
        }
        n_grad++;
        int skip = 0;
        for (const char *const *s = skip_fd; s && *s; s++) skip |= strstr(p->name, *s) != NULL;
        if (skip) continue;
        snprintf(what, sizeof what, "%s: %s", label, p->name);
        fd_check(what, m.params + p->offset, an + p->offset, p->numel, &MODEL_FD, model_eval, &x);
    }
    CHECK(n_grad > 0, "%s: no tensor gets a gradient", label);
    // the hard gate (gate_grad none) enters through its ranking only
    for (int l = 0; l < c.n_layer; l++) {
        if (m.plan.attn.mode[l] != ATTN_HARD || m.plan.attn.gate_grad != GATE_GRAD_NONE) continue;
        int moved = 0, tried = 0;
        for (int t = 0; t < 20; t++) {
            float *g = t & 1 ? m.w.layer[l].gate_k : m.w.layer[l].gate_q;
            size_t idx = (size_t)rng_below(&rng, (uint64_t)c.n_head * c.d_g * c.d_model);
            float g0 = g[idx];
            int cp, cm;
            g[idx] = g0 + 1e-3f;
            double lp = model_eval(&x, &cp);
            g[idx] = g0 - 1e-3f;
            double lm = model_eval(&x, &cm);
            g[idx] = g0;
            if (cp || cm) continue;
            tried++;
            moved += lp != lm;
        }
        CHECK(tried >= 10 && moved == 0, "%s: layer %d hard gate values move the loss (%d of %d)",
              label, l, moved, tried);
    }
    n_fd_cases++;
    xfree(an);
    xfree(x.base);
    xfree(x.base_slots);
    model_free(&m);
}

// Backward accumulates into m.grads and scales with grad_scale.
static void test_model_accumulation(void) {
    Config c;
    const char *const kv[] = {"attn", "soft,hard", "gate_grad", "ste", "attn_bias", "1", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = n % 11, tg[n] = (3 * n + 1) % 11;
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    float *g1 = falloc(m.table.total);
    memcpy(g1, m.grads, m.table.total * sizeof(float));
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 0.5f);
    double err = 0, mx = max_abs(g1, m.table.total);
    for (size_t j = 0; j < m.table.total; j++) err = fmax(err, fabs(m.grads[j] - 1.5 * g1[j]));
    CHECK(mx > 0 && err <= 1e-5 * mx, "backward(1) + backward(0.5) != 1.5 x backward(1): err %g "
          "of max %g", err, mx);
    xfree(g1);
    model_free(&m);
}

// The STE gate gradient of a whole model: layer 0's gate gradient equals dgq^T ln1 with dgq
// from the plain-loop STE formula applied to layer 0's saved activations and the gradient that
// reached its head outputs (m.datty after backward: layer 0 is the last one processed).
static void test_model_ste_gate(void) {
    Config c;
    const char *const kv[] = {"attn", "hard,dense", "gate_grad", "ste", "tau", "0.7", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = (int)rng_below(&rng, 11), tg[n] = (int)rng_below(&rng, 11);
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    AttnArgs a = model_attn_args(&m, 0, NULL);
    AttnCtx x;
    memset(&x, 0, sizeof x);
    x.a = a;
    x.qkv = m.layer[0].qkv;
    x.gq = m.layer[0].gq;
    x.gk = m.layer[0].gk;
    x.r = m.datty;
    AttnCase cs = {ATTN_HARD, m.plan.attn.k[0], m.plan.attn.scope, GATE_GRAD_STE, c.tau, 0, 2, 8, 2, 8, 4, 0, ""};
    size_t TT = (size_t)2 * 2 * 8 * 8, N = 16, GW = 8;
    unsigned char *keep = xcalloc(TT, 1);
    for (size_t e = 0; e < TT; e++) keep[e] = m.layer[0].att[e] != 0.0f;
    double *W = xcalloc(TT, sizeof(double)), *y = xcalloc(N * 16, sizeof(double));
    double *dgq = xcalloc(N * GW, sizeof(double)), *dgk = xcalloc(N * GW, sizeof(double));
    int near;
    attn_reference(W, y, dgq, dgk, &x, &cs, keep, &near);
    double ew = 0;
    for (size_t e = 0; e < TT; e++) ew = fmax(ew, fabs(W[e] - m.layer[0].att[e]));
    CHECK(near == 0 && ew < 2e-5, "model hard layer: W vs plain loops err %g (%d near ties)", ew, near);
    // dW_gq = dgq^T ln1, dW_gk = dgk^T ln1
    const float *ln1 = m.layer[0].ln1;
    double mq = 0, eq = 0, mk = 0, ek = 0;
    for (size_t o = 0; o < GW; o++)
        for (int i = 0; i < 16; i++) {
            double sq = 0, sk = 0;
            for (size_t n = 0; n < N; n++) {
                sq += dgq[n * GW + o] * ln1[n * 16 + i];
                sk += dgk[n * GW + o] * ln1[n * 16 + i];
            }
            mq = fmax(mq, fabs(sq));
            mk = fmax(mk, fabs(sk));
            eq = fmax(eq, fabs(sq - m.g.layer[0].gate_q[o * 16 + i]));
            ek = fmax(ek, fabs(sk - m.g.layer[0].gate_k[o * 16 + i]));
        }
    CHECK(mq > 0 && mk > 0 && eq <= 1e-4 * mq && ek <= 1e-4 * mk, "model STE gate gradient vs "
          "formula: err %.3g / %.3g of max %.3g / %.3g", eq, ek, mq, mk);
    xfree(keep), xfree(W), xfree(y), xfree(dgq), xfree(dgk);
    model_free(&m);
}

static void test_model(void) {
    // every mode, cycling attn_bias / tie_embeddings / gelu
    static const char *const combos[8][6] = {
        {"attn_bias", "0", "tie_embeddings", "1", "gelu", "erf"},
        {"attn_bias", "1", "tie_embeddings", "0", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "1", "gelu", "erf"},
        {"attn_bias", "0", "tie_embeddings", "0", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "1", "gelu", "tanh"},
        {"attn_bias", "0", "tie_embeddings", "0", "gelu", "erf"},
        {"attn_bias", "0", "tie_embeddings", "1", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "0", "gelu", "erf"},
    };
    for (int i = 0; i < 8; i++) {  // dense in all 8 combinations
        const char *kv[16] = {0};
        memcpy(kv, combos[i], sizeof combos[i]);
        kv[6] = "attn", kv[7] = "dense";
        char label[64];
        snprintf(label, sizeof label, "model dense bias%s tie%s %s", combos[i][1], combos[i][3],
                 combos[i][5]);
        model_case(label, kv, NULL);
    }
    static const struct {
        const char *label;
        const char *kv[12];
        const char *skip[6];
    } cases[] = {
        {"model oracle", {"attn", "oracle"}, {NULL}},
        {"model oracle all", {"attn", "oracle", "topk_scope", "all", "k", "2"}, {NULL}},
        {"model soft", {"attn", "soft"}, {NULL}},
        {"model soft tau 0.5", {"attn", "soft", "tau", "0.5"}, {NULL}},
        {"model soft random gate", {"attn", "soft", "gate", "random"}, {NULL}},
        {"model soft_prob", {"attn", "soft_prob"}, {NULL}},
        {"model soft_prob tau 2", {"attn", "soft_prob", "tau", "2"}, {NULL}},
        {"model hard", {"attn", "hard"}, {NULL}},
        {"model hard all", {"attn", "hard", "topk_scope", "all", "k", "2"}, {NULL}},
        // ste: the straight-through term reaches ln1 of its layer and everything below it
        {"model hard ste (layer 0)", {"attn", "hard,dense", "gate_grad", "ste"},
         {"blocks.0.ln1", "blocks.0.attn.gate", "wte", "wpe", NULL}},
        {"model stochastic", {"attn", "stochastic"}, {NULL}},
        {"model stochastic all", {"attn", "stochastic", "topk_scope", "all", "k", "2"}, {NULL}},
        {"model random_fixed", {"attn", "random_fixed"}, {NULL}},
        {"model window", {"attn", "window"}, {NULL}},
        {"model mixed hard,soft", {"attn", "hard,soft", "gate", "random,learned"}, {NULL}},
        {"model mixed soft,hard", {"attn", "soft,hard", "gate", "learned,random", "k", "2,4"}, {NULL}},
        {"model mixed oracle,soft_prob", {"attn", "oracle,soft_prob", "k", "4,2"}, {NULL}},
        {"model mixed window,stochastic", {"attn", "window,stochastic"}, {NULL}},
        {"model mixed random_fixed,dense", {"attn", "random_fixed,dense"}, {NULL}},
        {"model train=gates soft", {"attn", "soft", "train", "gates"}, {NULL}},
        {"model train=top:1+embed", {"attn", "soft_prob", "train", "top:1+embed"}, {NULL}},
        {"model dropout dense", {"attn", "dense", "dropout", "0.2"}, {NULL}},
        {"model dropout soft", {"attn", "soft", "dropout", "0.2", "attn_bias", "1"}, {NULL}},
        {"model dropout stochastic,hard", {"attn", "stochastic,hard", "dropout", "0.15"}, {NULL}},
        // feed-forward variants and mixtures of experts (ffn.c)
        {"model ffn swiglu", {"ffn", "swiglu"}, {NULL}},
        {"model ffn geglu,dense", {"ffn", "geglu,dense", "attn", "soft"}, {NULL}},
        {"model moe learned top-1", {"ffn", "moe", "n_expert", "4", "d_expert", "8"}, {NULL}},
        {"model moe learned top-2 aux", {"ffn", "moe", "n_expert", "4", "d_expert", "8",
                                         "top_experts", "2", "aux_loss", "0.05"}, {NULL}},
        {"model moe random top-1 capacity", {"ffn", "moe,dense", "n_expert", "3", "router", "random",
                                             "capacity_factor", "1.0", "aux_loss", "0.1"}, {NULL}},
        {"model moe hash top-2", {"ffn", "dense,moe", "router", "hash", "top_experts", "2",
                                  "n_expert", "4", "d_expert", "6"}, {NULL}},
        {"model moe swiglu experts top-2 capacity", {"ffn", "moe", "expert", "swiglu", "top_experts", "2",
                                                     "capacity_factor", "0.75", "n_expert", "4"}, {NULL}},
        {"model moe geglu dropout", {"ffn", "moe", "expert", "geglu", "dropout", "0.2", "n_expert", "2",
                                     "aux_loss", "0.01"}, {NULL}},
        {"model moe dense control", {"ffn", "moe", "moe_dense_control", "1", "expert", "swiglu",
                                     "top_experts", "2", "n_expert", "4"}, {NULL}},
        {"model moe train=mlp:1", {"ffn", "moe", "train", "mlp:1", "top_experts", "2"}, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *kv[20] = {0};
        int n = 0;
        for (int j = 0; cases[i].kv[j]; j++) kv[n++] = cases[i].kv[j];
        for (int j = 0; j < 6; j++) kv[n++] = combos[i % 8][j];
        model_case(cases[i].label, kv, cases[i].skip);
    }
    test_model_accumulation();
    test_model_ste_gate();
}

// Dropout masks are keyed by the forward index: another index, another loss.
static void test_model_dropout_keys(void) {
    Config c;
    const char *const kv[] = {"dropout", "0.2", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    m.training = 1;
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = n % 11, tg[n] = (5 * n + 2) % 11;
    m.forward_count = 3;
    double a = model_forward(&m, in, tg, 2, 8);
    m.forward_count = 3;
    double b = model_forward(&m, in, tg, 2, 8);
    double d = model_forward(&m, in, tg, 2, 8);  // forward index 4
    CHECK(a == b && a != d, "dropout keys: same index %.9g vs %.9g, next index %.9g", a, b, d);
    model_free(&m);
}

// ----------------------------------------------------------------------------- distillation
typedef struct {
    Model *m;
    const int *in;
    int B, T, k;
    DistillKind kind;
} DistillCtx;

static double distill_eval(void *v, int *changed) {
    DistillCtx *x = v;
    *changed = 0;  // the BCE target is top-k of S, which the gates do not move
    return distill_loss(x->m, x->in, x->B, x->T, x->kind, x->k, 0, NULL);
}

static void test_distill(DistillKind kind, const char *gelu) {
    Config c;
    const char *const kv[] = {"attn", "dense", "train", "gates", "gelu", gelu, NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    // a frozen dense model whose gates train: the gates get a gradient from the distillation
    for (int i = 0; i < m.table.count; i++) m.gets_grad[i] = m.table.info[i].role == ROLE_GATE;
    int in[16];
    for (int n = 0; n < 16; n++) in[n] = (int)rng_below(&rng, 11);
    DistillCtx x = {&m, in, 2, 8, 3, kind};
    model_zero_grad(&m);
    double per[MAX_LAYERS];
    double L = distill_loss(&m, in, 2, 8, kind, 3, 1, per);
    const char *name = kind == DISTILL_KL ? "distill kl" : "distill bce";
    CHECK(isfinite(L) && L > 0 && fabs(L - (per[0] + per[1]) / 2) < 1e-12 * fabs(L) + 1e-15,
          "%s: loss %.9g, per layer %.9g %.9g", name, L, per[0], per[1]);
    double L2 = distill_loss(&m, in, 2, 8, kind, 3, 0, NULL);
    CHECK(L == L2, "%s: loss with and without backward differ", name);
    float *an = falloc(m.table.total);
    memcpy(an, m.grads, m.table.total * sizeof(float));
    const FdOpts o = {1e-2, 1e-4, 1e-7, 48, 1.0};
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        char what[160];
        if (p->role != ROLE_GATE) {
            CHECK(max_abs(an + p->offset, p->numel) == 0.0, "%s: %s got a gradient", name, p->name);
            continue;
        }
        snprintf(what, sizeof what, "%s (%s): %s", name, gelu, p->name);
        CHECK(max_abs(an + p->offset, p->numel) > 0, "%s: zero gate gradient", what);
        fd_check(what, m.params + p->offset, an + p->offset, p->numel, &o, distill_eval, &x);
    }
    n_fd_cases++;
    xfree(an);
    model_free(&m);
}

// The same gradients with two threads as with one (per-thread partial sums, scratch).
static void test_model_threads(void) {
    Config c;
    const char *const kv[] = {"attn", "soft,hard", "gate_grad", "ste", "attn_bias", "1",
                              "tie_embeddings", "0", "dropout", "0.1", NULL};
    small_config(&c, kv);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = (n * 7) % 11, tg[n] = (n * 3 + 5) % 11;
    float *g[2];
    double loss[2];
    size_t total = 0;
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        Model m;
        model_build(&m, &c);
        m.training = 1;
        model_zero_grad(&m);
        loss[t] = model_forward(&m, in, tg, 2, 8);
        model_backward(&m, 1.0f);
        total = m.table.total;
        g[t] = falloc(total);
        memcpy(g[t], m.grads, total * sizeof(float));
        model_free(&m);
        omp_set_num_threads(1);
    }
    double err = 0, mx = max_abs(g[0], total);
    for (size_t j = 0; j < total; j++) err = fmax(err, fabs(g[0][j] - g[1][j]));
    CHECK(total > 0 && mx > 0 && fabs(loss[0] - loss[1]) <= 1e-6 * fabs(loss[0]) &&
          err <= 1e-5 * mx, "1 vs 2 threads: loss %.9g vs %.9g, grads differ by %g (max %g)",
          loss[0], loss[1], err, mx);
    xfree(g[0]), xfree(g[1]);
}

static double t_start;

static void timed(const char *what, double *t) {
    double now = now_seconds();
    if (getenv("GRAD_VERBOSE")) printf("TIME %-12s %.2f s\n", what, now - *t);
    *t = now;
}

int main(void) {
    t_start = now_seconds();
    // One OpenMP thread for the bulk: thousands of tiny forwards, where a parallel region costs
    // more than the work and a loaded 2-core machine turns barriers into waits. Selected
    // attention cases and test_model_threads run with two.
    omp_set_num_threads(1);
    rng_seed(&rng, 20240611);
    double t0 = now_seconds();
    test_matmul();
    test_layernorm();
    test_gelu(GELU_ERF);
    test_gelu(GELU_TANH);
    test_crossentropy();
    test_residual_dropout();
    timed("ops", &t0);
    test_route_table();
    test_attention();
    test_ffn();
    timed("attention", &t0);
    test_model();
    test_model_dropout_keys();
    test_model_threads();
    timed("model", &t0);
    test_distill(DISTILL_KL, "erf");
    test_distill(DISTILL_BCE, "tanh");
    timed("distill", &t0);
    printf("grad: %ld finite-difference coordinates checked (%ld retried with a smaller step, %ld "
           "skipped: kept set changed), %ld attention/model/distill cases, %.1f s\n",
           n_fd_checked, n_fd_retried, n_fd_skipped, n_fd_cases, now_seconds() - t_start);
    return check_summary("grad");
}
