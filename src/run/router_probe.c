// router_probe.c: see router_probe.h.
#include "router_probe.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common.h"

// Queries of each example, as [first, last) index ranges into the query arrays (the arrays are
// grouped by example, in order).
static void example_ranges(const ProbeSet *s, size_t *first, size_t *last) {
    for (size_t e = 0; e < s->n_examples; e++) first[e] = last[e] = 0;
    for (size_t i = s->n_queries; i-- > 0;) first[s->query_ex[i]] = i;
    for (size_t i = 0; i < s->n_queries; i++) last[s->query_ex[i]] = i + 1;
}

// A = H Wq, B = H Wk for one example: H (T, D), W (D, r), A, B (T, r).
static void project(float *A, float *B, const float *H, const float *Wq, const float *Wk, int T,
                    int D, int r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, D, 1.0f, H, D, Wq, r, 0.0f, A, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, D, 1.0f, H, D, Wk, r, 0.0f, B, r);
}

// S (T, T) = A B^T * scale: row q holds the scores of query q over every position.
static void score_matrix(float *S, const float *A, const float *B, int T, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, r, scale, A, r, B, r, 0.0f, S, T);
}

// The gradient of S = A B^T * scale into the weights, for one example: G (T, T) is dL/dS times
// scale; accumulates gq += H^T (G B), gk += H^T (G^T A). dA, dB (T, r) are scratch.
static void bilinear_backward(float *gq, float *gk, float *dA, float *dB, const float *G, const float *A,
                              const float *B, const float *H, int T, int D, int r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, T, 1.0f, G, T, B, r, 0.0f, dA, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, r, T, 1.0f, G, T, A, r, 0.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, r, T, 1.0f, H, D, dA, r, 1.0f, gq, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, r, T, 1.0f, H, D, dB, r, 1.0f, gk, r);
}

// argmax over j < q of row q (ties to the lower index)
static int top1_row(const float *row, int q) {
    int best = 0;
    for (int j = 1; j < q; j++) best = row[j] > row[best] ? j : best;
    return best;
}

static void adam(float *w, const float *g, float *m, float *v, size_t n, float lr, long t) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

double router_probe_chance(const ProbeSet *s) {
    double p = 0.0;
    for (size_t i = 0; i < s->n_queries; i++) p += 1.0 / s->query_pos[i];
    return s->n_queries ? p / (double)s->n_queries : 0.0;
}

double router_probe_fit(const ProbeSet *train, const ProbeSet *test, const RouterOpts *o) {
    int T = train->T, D = train->D, r = o->rank;
    ASSERT(test->T == T && test->D == D && r >= 1);
    size_t W = (size_t)D * r;
    float *Wq = xcalloc(W, sizeof(float)), *Wk = xcalloc(W, sizeof(float));
    float *gq = xcalloc(W, sizeof(float)), *gk = xcalloc(W, sizeof(float));
    float *mq = xcalloc(W, sizeof(float)), *vq = xcalloc(W, sizeof(float));
    float *mk = xcalloc(W, sizeof(float)), *vk = xcalloc(W, sizeof(float));
    float *A = xcalloc((size_t)T * r, sizeof(float)), *B = xcalloc((size_t)T * r, sizeof(float));
    float *dA = xcalloc((size_t)T * r, sizeof(float)), *dB = xcalloc((size_t)T * r, sizeof(float));
    float *S = xcalloc((size_t)T * T, sizeof(float)), *G = xcalloc((size_t)T * T, sizeof(float));
    Rng rng;
    rng_seed(&rng, o->seed);
    float init = 1.0f / sqrtf((float)D), scale = 1.0f / sqrtf((float)r);
    for (size_t i = 0; i < W; i++) Wq[i] = init * rng_normal(&rng), Wk[i] = init * rng_normal(&rng);
    size_t ne = train->n_examples;
    size_t *first = xcalloc(ne, sizeof(size_t)), *last = xcalloc(ne, sizeof(size_t));
    example_ranges(train, first, last);
    for (int step = 0; step < o->steps; step++) {
        memset(gq, 0, W * sizeof(float));
        memset(gk, 0, W * sizeof(float));
        size_t nq = 0;
        // the batch: examples drawn with replacement from the seeded stream
        size_t batch[1024];
        int nb = o->batch_examples < 1024 ? o->batch_examples : 1024;
        for (int b = 0; b < nb; b++) {
            batch[b] = (size_t)rng_below(&rng, ne);
            nq += last[batch[b]] - first[batch[b]];
        }
        if (!nq) continue;
        for (int b = 0; b < nb; b++) {
            size_t e = batch[b];
            const float *H = train->feat + e * (size_t)T * D;
            project(A, B, H, Wq, Wk, T, D, r);
            score_matrix(S, A, B, T, r, scale);
            memset(G, 0, (size_t)T * T * sizeof(float));
            for (size_t i = first[e]; i < last[e]; i++) {
                int q = train->query_pos[i], key = train->key_pos[i];
                const float *row = S + (size_t)q * T;
                float mx = row[0];
                for (int j = 1; j < q; j++) mx = row[j] > mx ? row[j] : mx;
                double z = 0.0;
                for (int j = 0; j < q; j++) z += exp((double)row[j] - mx);
                for (int j = 0; j < q; j++)  // dL/ds_j = (p_j - [j = key]) / queries, times scale
                    G[(size_t)q * T + j] += (float)((exp((double)row[j] - mx) / z - (j == key)) / (double)nq) * scale;
            }
            bilinear_backward(gq, gk, dA, dB, G, A, B, H, T, D, r);
        }
        adam(Wq, gq, mq, vq, W, o->lr, step + 1);
        adam(Wk, gk, mk, vk, W, o->lr, step + 1);
    }
    // test precision
    size_t hits = 0;
    size_t nt = test->n_examples;
    size_t *tf = xcalloc(nt, sizeof(size_t)), *tl = xcalloc(nt, sizeof(size_t));
    example_ranges(test, tf, tl);
    for (size_t e = 0; e < nt; e++) {
        if (tf[e] == tl[e]) continue;
        project(A, B, test->feat + e * (size_t)T * D, Wq, Wk, T, D, r);
        score_matrix(S, A, B, T, r, scale);
        for (size_t i = tf[e]; i < tl[e]; i++)
            hits += top1_row(S + (size_t)test->query_pos[i] * T, test->query_pos[i]) == test->key_pos[i];
    }
    double precision = test->n_queries ? (double)hits / (double)test->n_queries : 0.0;
    xfree(Wq), xfree(Wk), xfree(gq), xfree(gk), xfree(mq), xfree(vq), xfree(mk), xfree(vk);
    xfree(A), xfree(B), xfree(dA), xfree(dB), xfree(S), xfree(G), xfree(first), xfree(last), xfree(tf), xfree(tl);
    return precision;
}

// ----------------------------------------------------------------------------- label router
void router_scores(float *S, const float *Wq, const float *Wk, const float *H, int T, int D, int r) {
    float *A = xcalloc((size_t)T * r, sizeof(float)), *B = xcalloc((size_t)T * r, sizeof(float));
    project(A, B, H, Wq, Wk, T, D, r);
    score_matrix(S, A, B, T, r, 1.0f / sqrtf((float)r));
    xfree(A), xfree(B);
}

// log(1 + e^x) without overflow
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double router_label_loss(float *gq, float *gk, const float *Wq, const float *Wk, const LabelSet *s,
                         int r, const size_t *examples, size_t n) {
    int T = s->T, D = s->D;
    size_t W = (size_t)D * r;
    float *A = xcalloc((size_t)T * r, sizeof(float)), *B = xcalloc((size_t)T * r, sizeof(float));
    float *dA = xcalloc((size_t)T * r, sizeof(float)), *dB = xcalloc((size_t)T * r, sizeof(float));
    float *S = xcalloc((size_t)T * T, sizeof(float)), *G = xcalloc((size_t)T * T, sizeof(float));
    float scale = 1.0f / sqrtf((float)r);
    double pairs = 0.0, loss = 0.0;
    for (size_t b = 0; b < n; b++) {
        const unsigned char *Y = s->label + examples[b] * (size_t)T * T;
        for (size_t p = 0; p < (size_t)T * T; p++) pairs += Y[p] < 2;
    }
    if (gq) memset(gq, 0, W * sizeof(float)), memset(gk, 0, W * sizeof(float));
    for (size_t b = 0; b < n && pairs > 0; b++) {
        size_t e = examples[b];
        const float *H = s->feat + e * (size_t)T * D;
        const unsigned char *Y = s->label + e * (size_t)T * T;
        project(A, B, H, Wq, Wk, T, D, r);
        score_matrix(S, A, B, T, r, scale);
        for (size_t p = 0; p < (size_t)T * T; p++) {
            G[p] = 0.0f;
            if (Y[p] == 2) continue;
            double x = S[p];  // BCE with logits: y softplus(-x) + (1 - y) softplus(x)
            loss += (Y[p] ? softplus(-x) : softplus(x)) / pairs;
            G[p] = (float)((1.0 / (1.0 + exp(-x)) - Y[p]) / pairs) * scale;
        }
        if (gq) bilinear_backward(gq, gk, dA, dB, G, A, B, H, T, D, r);
    }
    xfree(A), xfree(B), xfree(dA), xfree(dB), xfree(S), xfree(G);
    return loss;
}

void router_label_fit(float *Wq, float *Wk, const LabelSet *train, const RouterOpts *o) {
    int D = train->D, r = o->rank;
    size_t W = (size_t)D * r, ne = train->n_examples;
    ASSERT(r >= 1 && ne > 0);
    float *gq = xcalloc(W, sizeof(float)), *gk = xcalloc(W, sizeof(float));
    float *mq = xcalloc(W, sizeof(float)), *vq = xcalloc(W, sizeof(float));
    float *mk = xcalloc(W, sizeof(float)), *vk = xcalloc(W, sizeof(float));
    Rng rng;
    rng_seed(&rng, o->seed);
    float init = 1.0f / sqrtf((float)D);
    for (size_t i = 0; i < W; i++) Wq[i] = init * rng_normal(&rng), Wk[i] = init * rng_normal(&rng);
    int nb = o->batch_examples < 1024 ? o->batch_examples : 1024;
    size_t batch[1024];
    for (int step = 0; step < o->steps; step++) {
        for (int b = 0; b < nb; b++) batch[b] = (size_t)rng_below(&rng, ne);  // with replacement
        router_label_loss(gq, gk, Wq, Wk, train, r, batch, (size_t)nb);
        adam(Wq, gq, mq, vq, W, o->lr, step + 1);
        adam(Wk, gk, mk, vk, W, o->lr, step + 1);
    }
    xfree(gq), xfree(gk), xfree(mq), xfree(vq), xfree(mk), xfree(vk);
}
