// test_grad_probe.c: the label probe of `gateinfo` (router_probe.h): the gradient of its binary
// cross-entropy with respect to both weight matrices against finite differences, and that
// fitting it learns a label its form can express (a rank-1 bilinear rule on the features) but
// not a label drawn independently of the features (held-out BCE stays at the base rate's).
#include "grad_check.h"
#include "router_probe.h"

typedef struct {
    float *wq, *wk;
    const LabelSet *s;
    int r;
    const size_t *ex;
    size_t n;
} ProbeCtx;

static double probe_eval(void *ctx, int *changed) {
    const ProbeCtx *p = ctx;
    *changed = 0;
    return router_label_loss(NULL, NULL, p->wq, p->wk, p->s, p->r, p->ex, p->n);
}

// Labels (n, T, T) for j < i: the rule (1: (h_i u)(h_j u) > 0.5) or a fair coin; 2 elsewhere.
static void make_labels(unsigned char *Y, const float *feat, const float *u, size_t n, int T, int D,
                        int by_rule) {
    for (size_t e = 0; e < n; e++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++) {
                unsigned char *y = Y + (e * T + i) * T + j;
                if (j >= i) {
                    *y = 2;
                    continue;
                }
                double a = 0, b = 0;
                for (int d = 0; d < D; d++)
                    a += feat[(e * T + i) * D + d] * u[d], b += feat[(e * T + j) * D + d] * u[d];
                *y = by_rule ? a * b > 0.5 : rng_uniform(&rng) < 0.5f;
            }
}

static void test_gradient(void) {
    const int T = 6, D = 5, r = 3;
    const size_t n = 3;
    float *feat = falloc(n * T * D), *wq = falloc((size_t)D * r), *wk = falloc((size_t)D * r);
    float *gq = falloc((size_t)D * r), *gk = falloc((size_t)D * r), u[5];
    unsigned char *Y = xcalloc(n * T * T, 1);
    fill_normal(feat, n * T * D, 1.0f);
    fill_normal(wq, (size_t)D * r, 0.7f);
    fill_normal(wk, (size_t)D * r, 0.7f);
    fill_normal(u, 5, 1.0f);
    make_labels(Y, feat, u, n, T, D, 0);
    LabelSet s = {feat, Y, n, T, D};
    size_t ex[] = {2, 0, 2};  // a minibatch with a repeat, as the fit draws them
    double loss = router_label_loss(gq, gk, wq, wk, &s, r, ex, 3);
    CHECK(isfinite(loss) && loss > 0, "label probe BCE %g", loss);
    ProbeCtx ctx = {wq, wk, &s, r, ex, 3};
    fd_check("label probe BCE w.r.t. W_q", wq, gq, (size_t)D * r, &OPS_FD, probe_eval, &ctx);
    fd_check("label probe BCE w.r.t. W_k", wk, gk, (size_t)D * r, &OPS_FD, probe_eval, &ctx);
    xfree(feat), xfree(wq), xfree(wk), xfree(gq), xfree(gk), xfree(Y);
}

// Held-out BCE after fitting, beside the BCE of predicting the training base rate everywhere.
static void fit_case(int by_rule, double *fitted, double *base) {
    const int T = 12, D = 8, r = 2;
    const size_t n_train = 64, n_test = 32;
    float *ft = falloc(n_train * T * D), *fv = falloc(n_test * T * D), u[8];
    unsigned char *Yt = xcalloc(n_train * T * T, 1), *Yv = xcalloc(n_test * T * T, 1);
    fill_normal(ft, n_train * T * D, 1.0f);
    fill_normal(fv, n_test * T * D, 1.0f);
    fill_normal(u, 8, 0.6f);
    make_labels(Yt, ft, u, n_train, T, D, by_rule);
    make_labels(Yv, fv, u, n_test, T, D, by_rule);
    LabelSet train = {ft, Yt, n_train, T, D}, test = {fv, Yv, n_test, T, D};
    RouterOpts o = {r, 300, 16, 1e-2f, 5};
    float *wq = falloc((size_t)D * r), *wk = falloc((size_t)D * r);
    router_label_fit(wq, wk, &train, &o);
    size_t all[32];
    for (size_t e = 0; e < n_test; e++) all[e] = e;
    *fitted = router_label_loss(NULL, NULL, wq, wk, &test, r, all, n_test);
    double pos = 0, cnt = 0, p, nll = 0;
    for (size_t i = 0; i < n_train * T * T; i++) pos += Yt[i] == 1, cnt += Yt[i] < 2;
    p = pos / cnt;
    for (size_t i = 0; i < n_test * T * T; i++)
        if (Yv[i] < 2) nll += Yv[i] ? -log(p) : -log(1 - p);
    double nv = 0;
    for (size_t i = 0; i < n_test * T * T; i++) nv += Yv[i] < 2;
    *base = nll / nv;
    xfree(ft), xfree(fv), xfree(Yt), xfree(Yv), xfree(wq), xfree(wk);
}

static void test_fit(void) {
    double fitted, base;
    fit_case(1, &fitted, &base);
    CHECK(fitted < 0.6 * base, "a bilinear rule is learned: held-out BCE %.4f vs the base rate's %.4f", fitted, base);
    fit_case(0, &fitted, &base);
    CHECK(fitted > 0.97 * base, "an independent label is not: held-out BCE %.4f vs the base rate's %.4f", fitted, base);
}

int main(void) {
    rng_seed(&rng, 17);
    omp_set_num_threads(1);
    test_gradient();
    test_fit();
    return check_summary("grad_probe");
}
