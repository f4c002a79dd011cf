// distill.c: see distill.h.
#include "distill.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "ops.h"

DistillKind distill_kind_parse(const char *s) {
    if (!strcmp(s, "kl") || !strcmp(s, "distill_kl")) return DISTILL_KL;
    if (!strcmp(s, "bce") || !strcmp(s, "distill_bce")) return DISTILL_BCE;
    fatal("distillation loss '%s' is unknown: use kl or bce", s);
}

double distill_forward_backward(Model *m, const int *inputs, int B, int T, const char *kind,
                                int k, int do_backward) {
    return distill_loss(m, inputs, B, T, distill_kind_parse(kind), k, do_backward, NULL);
}

double distill_loss(Model *m, const int *inputs, int B, int T, DistillKind kind, int k,
                    int do_backward, double *per_layer) {
    const Config *c = &m->cfg;
    // which gates get a gradient: model_set_trainable(m, ..., OBJECTIVE_GATE_DISTILL)
    ASSERT(!do_backward || m->objective == OBJECTIVE_GATE_DISTILL);
    model_forward(m, inputs, NULL, B, T);
    int NH = c->n_head, dg = c->d_g, GW = NH * dg, C = c->d_model, L = c->n_layer;
    size_t N = (size_t)B * T, TT = (size_t)T * T;
    float *gq = xcalloc(N * GW, sizeof(float)), *gk = xcalloc(N * GW, sizeof(float));
    float *dgq = xcalloc(N * GW, sizeof(float)), *dgk = xcalloc(N * GW, sizeof(float));
    int nt = m->nthreads;
    size_t per = 3 * TT + 3 * (size_t)T + 64;
    float *scratch = xcalloc((size_t)nt * per, sizeof(float));
    double *bh_loss = xcalloc((size_t)B * NH, sizeof(double));
    double visible = (double)B * NH * ((double)T * (T + 1) / 2);
    double rows = (double)B * NH * T, total = 0.0;
    float gscale = 1.0f / sqrtf((float)dg);
    for (int l = 0; l < L; l++) {
        const LayerActs *La = &m->layer[l];
        matmul_forward(gq, La->ln1, m->w.layer[l].gate_q, NULL, N, C, GW, m->plan.precision);
        matmul_forward(gk, La->ln1, m->w.layer[l].gate_k, NULL, N, C, GW, m->plan.precision);
        AttnArgs a = model_attn_args(m, l, NULL);
        // d(loss)/dG of this layer's term, with the mean over layers folded in
        float norm = (float)(1.0 / ((kind == DISTILL_KL ? rows : visible) * L));
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            float *S = scratch + (size_t)omp_get_thread_num() * per, *G = S + TT, *dG = G + TT;
            float *pairs = dG + TT;
            unsigned char *keep = (unsigned char *)(pairs + 2 * T);
            attention_scores(S, La->qkv, b, h, &a);
            attention_gate_scores(G, gq, gk, b, h, &a);
            double acc = 0.0;
            for (int i = 0; i < T; i++) {
                const float *s = S + (size_t)i * T, *g = G + (size_t)i * T;
                float *d = dG + (size_t)i * T;
                memset(d, 0, (size_t)T * sizeof(float));
                if (kind == DISTILL_KL) {
                    float ms = -INFINITY, mg = -INFINITY;
                    for (int j = 0; j <= i; j++) {
                        ms = s[j] > ms ? s[j] : ms;
                        mg = g[j] > mg ? g[j] : mg;
                    }
                    double zs = 0.0, zg = 0.0;
                    for (int j = 0; j <= i; j++) {
                        zs += exp((double)s[j] - ms);
                        zg += exp((double)g[j] - mg);
                    }
                    double lzs = log(zs) + ms, lzg = log(zg) + mg;
                    for (int j = 0; j <= i; j++) {
                        double logp = s[j] - lzs, logq = g[j] - lzg, p = exp(logp);
                        if (p > 0) acc += p * (logp - logq);
                        d[j] = (float)((exp(logq) - p) * norm);  // d/dG of -sum P log Q
                    }
                } else {
                    topk_row(keep, s, i, T, k, TOPK_CAUSAL, pairs);
                    for (int j = 0; j <= i; j++) {
                        double x = g[j], t = keep[j];
                        acc += fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
                        d[j] = (float)((1.0 / (1.0 + exp(-x)) - t) * norm);
                    }
                }
            }
            bh_loss[bh] = acc;
            if (do_backward) {  // G = gq gk^T * gscale
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dg, T, gscale, dG, T,
                            gk + (size_t)b * T * GW + h * dg, GW, 0.0f, dgq + (size_t)b * T * GW + h * dg, GW);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dg, T, gscale, dG, T,
                            gq + (size_t)b * T * GW + h * dg, GW, 0.0f, dgk + (size_t)b * T * GW + h * dg, GW);
            }
        }
        double layer_loss = 0.0;
        for (int bh = 0; bh < B * NH; bh++) layer_loss += bh_loss[bh];
        layer_loss /= kind == DISTILL_KL ? rows : visible;
        if (per_layer) per_layer[l] = layer_loss;
        total += layer_loss / L;
        if (do_backward) {
            float *gwq = NULL, *gwk = NULL;
            for (int i = 0; i < m->table.count; i++) {
                const ParamInfo *p = &m->table.info[i];
                if (p->layer != l || p->role != ROLE_GATE || !m->gets_grad[i]) continue;
                if (strstr(p->name, "gate_q")) gwq = m->grads + p->offset;
                else gwk = m->grads + p->offset;
            }
            matmul_backward(NULL, gwq, NULL, dgq, La->ln1, m->w.layer[l].gate_q, N, C, GW, 0, m->plan.precision);
            matmul_backward(NULL, gwk, NULL, dgk, La->ln1, m->w.layer[l].gate_k, N, C, GW, 0, m->plan.precision);
        }
    }
    m->loss = total;
    xfree(gq);
    xfree(gk);
    xfree(dgq);
    xfree(dgk);
    xfree(scratch);
    xfree(bh_loss);
    return total;
}
