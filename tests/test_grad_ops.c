// test_grad_ops.c: finite-difference checks of the plain ops' backward passes: matmul,
// layernorm, GELU (erf, tanh), cross-entropy (ignore -1), residual, dropout, RMSNorm, the
// per-head q/k norm and rotary embeddings (each forward also against plain double loops). The method and
// tolerances are described in grad_check.h.
#include "grad_check.h"
#include "rotary.h"

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

// ----------------------------------------------------------------------------- RMSNorm
typedef struct {
    OpCtx op;
    float *inp, *w, *rstd;
    size_t N;
    int C;
} RmsCtx;

static void rms_run(void *v) {
    RmsCtx *c = v;
    rmsnorm_forward(c->op.out, c->rstd, c->inp, c->w, c->N, c->C, 1e-6f);
}

static void test_rmsnorm(void) {
    size_t N = 5;
    int C = 11;
    RmsCtx c = {{0}, falloc(N * C), falloc(C), falloc(N), N, C};
    float *r = falloc(N * C), *out = falloc(N * C);
    fill_normal(c.inp, N * C, 1.5f);
    for (size_t i = 0; i < N * C; i++) c.inp[i] += 0.4f;
    fill_normal(c.w, C, 1.0f);
    fill_normal(r, N * C, 1.0f);
    c.op = (OpCtx){r, out, N * C, rms_run};
    rms_run(&c);
    double err = 0.0;
    for (size_t n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)c.inp[n * C + i] * c.inp[n * C + i];
        for (int i = 0; i < C; i++)
            err = fmax(err, fabs(c.w[i] * c.inp[n * C + i] / sqrt(ss / C + 1e-6) - out[n * C + i]));
    }
    CHECK(err < 1e-5, "rmsnorm_forward vs loops: max err %g", err);
    float *dinp = falloc(N * C), *dw = falloc(C);
    for (size_t i = 0; i < N * C; i++) dinp[i] = 0.5f;  // dinp accumulates
    for (int i = 0; i < C; i++) dw[i] = -1.0f;          // dw accumulates
    rmsnorm_backward(dinp, dw, r, c.inp, c.w, c.rstd, N, C);
    for (size_t i = 0; i < N * C; i++) dinp[i] -= 0.5f;
    for (int i = 0; i < C; i++) dw[i] += 1.0f;
    fd_check("rmsnorm dinp", c.inp, dinp, N * C, &OPS_FD, op_eval, &c);
    fd_check("rmsnorm dweight", c.w, dw, C, &OPS_FD, op_eval, &c);
    xfree(c.inp), xfree(c.w), xfree(c.rstd), xfree(r), xfree(out), xfree(dinp), xfree(dw);
}

// ----------------------------------------------------------------------------- q/k norm
typedef struct {
    OpCtx op;
    float *inp, *wq, *wk, *rstd;
    size_t N;
    int NH, NKV, hd, stride;
} HeadNormCtx;

static void head_norm_run(void *v) {
    HeadNormCtx *c = v;
    head_norm_forward(c->op.out, c->rstd, c->inp, c->wq, c->wk, c->N, c->NH, c->NKV, c->hd,
                      c->stride, 1e-6f);
}

static void test_head_norm(void) {
    size_t N = 4;
    int NH = 4, NKV = 2, hd = 6, stride = (NH + 2 * NKV) * hd;
    HeadNormCtx c = {{0}, falloc(N * stride), falloc(hd), falloc(hd), falloc(N * (NH + NKV)), N,
                     NH, NKV, hd, stride};
    float *r = falloc(N * stride), *out = falloc(N * stride);
    fill_normal(c.inp, N * stride, 1.2f);
    fill_normal(c.wq, hd, 1.0f);
    fill_normal(c.wk, hd, 1.0f);
    fill_normal(r, N * stride, 1.0f);
    c.op = (OpCtx){r, out, N * stride, head_norm_run};
    head_norm_run(&c);
    double err = 0.0;
    for (size_t n = 0; n < N; n++)
        for (int h = 0; h < NH + 2 * NKV; h++) {
            const float *x = c.inp + n * stride + h * hd, *w = h < NH ? c.wq : c.wk;
            double ss = 0;
            for (int i = 0; i < hd; i++) ss += (double)x[i] * x[i];
            for (int i = 0; i < hd; i++) {
                double y = h < NH + NKV ? w[i] * x[i] / sqrt(ss / hd + 1e-6) : x[i];  // v: copied
                err = fmax(err, fabs(y - out[n * stride + h * hd + i]));
            }
        }
    CHECK(err < 1e-5, "head_norm_forward vs loops (q, k normed, v copied): max err %g", err);
    float *dinp = falloc(N * stride), *dwq = falloc(hd), *dwk = falloc(hd);
    for (size_t i = 0; i < N * stride; i++) dinp[i] = 9.0f;  // overwritten
    head_norm_backward(dinp, dwq, dwk, r, c.inp, c.wq, c.wk, c.rstd, N, NH, NKV, hd, stride);
    fd_check("q/k norm dinp", c.inp, dinp, N * stride, &OPS_FD, op_eval, &c);
    fd_check("q/k norm d q_norm", c.wq, dwq, hd, &OPS_FD, op_eval, &c);
    fd_check("q/k norm d k_norm", c.wk, dwk, hd, &OPS_FD, op_eval, &c);
    xfree(c.inp), xfree(c.wq), xfree(c.wk), xfree(c.rstd), xfree(r), xfree(out);
    xfree(dinp), xfree(dwq), xfree(dwk);
}

// ----------------------------------------------------------------------------- rotary
typedef struct {
    OpCtx op;
    float *inp, *cos_t, *sin_t;
    size_t N;
    int T, heads, hd, stride;
} RopeCtx;

static void rope_run(void *v) {
    RopeCtx *c = v;
    memcpy(c->op.out, c->inp, c->N * c->stride * sizeof(float));
    rope_forward(c->op.out, c->cos_t, c->sin_t, c->N, c->T, c->heads, c->hd, c->stride);
}

static void test_rope(void) {
    // inverse frequencies: 1 / theta^(2i/hd), and Llama 3's rule from its definition
    // (transformers' _compute_llama3_parameters), in double
    int hd = 16, half = hd / 2;
    RopeParams p = {500000.0f, 1, 8.0f, 1.0f, 4.0f, 64};
    float inv[8], inv_plain[8];
    RopeParams plain = p;
    plain.llama3 = 0;
    rope_inv_freq(inv_plain, hd, &plain);
    rope_inv_freq(inv, hd, &p);
    double err_plain = 0, err_l3 = 0;
    int n_low = 0, n_mid = 0, n_high = 0;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(500000.0, 2.0 * i / hd), wl = 2 * M_PI / f, want;
        err_plain = fmax(err_plain, fabs(inv_plain[i] - f) / f);
        if (wl < 64.0 / 4.0) want = f, n_high++;          // short wavelength: kept
        else if (wl > 64.0 / 1.0) want = f / 8.0, n_low++; // long: slowed by the factor
        else {
            double sm = (64.0 / wl - 1.0) / (4.0 - 1.0);
            want = (1 - sm) * f / 8.0 + sm * f, n_mid++;
        }
        err_l3 = fmax(err_l3, fabs(inv[i] - want) / want);
    }
    CHECK(err_plain < 1e-6, "rope inverse frequencies vs 1/theta^(2i/hd): rel err %g", err_plain);
    CHECK(err_l3 < 1e-5 && n_low && n_mid && n_high,
          "llama3 rope scaling vs its definition: rel err %g (low %d, medium %d, high %d bands)",
          err_l3, n_low, n_mid, n_high);

    // forward against the complex rotation (x1 + i x2) e^{i t f} in double; backward by FD
    int T = 5, B = 2, heads = 3, stride = heads * hd + 7;  // 7 trailing columns stay untouched
    size_t N = (size_t)B * T;
    RopeCtx c = {{0}, falloc(N * stride), falloc((size_t)T * half), falloc((size_t)T * half), N, T,
                 heads, hd, stride};
    rope_tables(c.cos_t, c.sin_t, inv, T, hd);
    float *r = falloc(N * stride), *out = falloc(N * stride);
    fill_normal(c.inp, N * stride, 1.0f);
    fill_normal(r, N * stride, 1.0f);
    c.op = (OpCtx){r, out, N * stride, rope_run};
    rope_run(&c);
    double err = 0;
    for (size_t n = 0; n < N; n++) {
        int t = (int)(n % T);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++) {
                const float *x = c.inp + n * stride + h * hd;
                double ang = (double)inv[i] * t, a = x[i], b = x[i + half];
                double y1 = a * cos(ang) - b * sin(ang), y2 = a * sin(ang) + b * cos(ang);
                err = fmax(err, fabs(y1 - out[n * stride + h * hd + i]));
                err = fmax(err, fabs(y2 - out[n * stride + h * hd + i + half]));
            }
        for (int j = heads * hd; j < stride; j++)
            err = fmax(err, fabs(c.inp[n * stride + j] - out[n * stride + j]));
    }
    CHECK(err < 1e-5, "rope_forward vs the complex rotation: max err %g", err);
    float *d = falloc(N * stride);
    memcpy(d, r, N * stride * sizeof(float));
    rope_backward(d, c.cos_t, c.sin_t, N, T, heads, hd, stride);
    fd_check("rope dinp", c.inp, d, N * stride, &OPS_FD, op_eval, &c);
    xfree(c.inp), xfree(c.cos_t), xfree(c.sin_t), xfree(r), xfree(out), xfree(d);
}

int main(void) {
    double t_start = now_seconds();
    grad_init(NULL);
    test_matmul();
    test_layernorm();
    test_gelu(GELU_ERF);
    test_gelu(GELU_TANH);
    test_crossentropy();
    test_residual_dropout();
    test_rmsnorm();
    test_head_norm();
    test_rope();
    return grad_summary("grad_ops", t_start);
}
