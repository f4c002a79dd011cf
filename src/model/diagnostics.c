// diagnostics.c: see diagnostics.h.
#include "diagnostics.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "result_keys.h"

typedef struct {
    double mass, ent;
    long rows, ent_rows, tp, fp, fn, kept, visible, empty;
} Counts;

void diagnostics_gate_grad_norms(LayerDiag *diag, const Model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        double s = 0.0;
        for (int i = 0; i < m->table.count; i++) {
            const ParamInfo *p = &m->table.info[i];
            if (p->role != ROLE_GATE || p->layer != l || !m->gets_grad[i]) continue;
            const float *g = m->grads + p->offset;
            for (size_t j = 0; j < p->numel; j++) s += (double)g[j] * g[j];
        }
        diag[l].gate_grad_norm = sqrt(s);
    }
}

void diagnostics_compute(LayerDiag *diag, const Model *m) { diagnostics_compute_given(diag, m, NULL); }

void diagnostics_compute_given(LayerDiag *diag, const Model *m, const KeepMasks *given) {
    const Config *c = &m->cfg;
    ASSERT(m->acts);
    int B = m->B, T = m->T, NH = c->n_head, GW = NH * c->d_g;
    size_t N = (size_t)B * T;
    float *gq = xcalloc(N * GW, sizeof(float)), *gk = xcalloc(N * GW, sizeof(float));
    int nt = m->nthreads;
    size_t per = 2 * (size_t)T * T + 7 * (size_t)T + 64;
    float *scratch = xcalloc((size_t)nt * per, sizeof(float));
    Counts *cnt = xcalloc((size_t)nt, sizeof(Counts));
    for (int l = 0; l < c->n_layer; l++) {
        const LayerActs *L = &m->layer[l];
        matmul_forward(gq, L->ln1, m->w.layer[l].gate_q, NULL, N, c->d_model, GW, m->plan.precision);
        matmul_forward(gk, L->ln1, m->w.layer[l].gate_k, NULL, N, c->d_model, GW, m->plan.precision);
        AttnArgs a = model_attn_args(m, l, given);
        int k = a.k;
        int keeps_all = route_rule(a.mode)->keep == KEEP_ALL_VISIBLE && !a.given_keep;
        memset(cnt, 0, (size_t)nt * sizeof(Counts));
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH, t = omp_get_thread_num();
            Counts *C = &cnt[t];
            float *S = scratch + (size_t)t * per, *G = S + (size_t)T * T, *P = G + (size_t)T * T;
            float *pairs = P + T, *noise = pairs + 2 * T, *router = noise + T;
            unsigned char *ko = (unsigned char *)(router + T), *kg = ko + T, *km = kg + T;
            attention_scores(S, L->qkv, b, h, &a);
            attention_gate_scores(G, gq, gk, b, h, &a);
            if (route_routes_tokens(a.mode)) attention_router_logits(router, gk, b, h, &a);
            for (int i = 0; i < T; i++) {
                const float *s = S + (size_t)i * T;
                float mx = -INFINITY;
                for (int j = 0; j <= i; j++) mx = s[j] > mx ? s[j] : mx;
                double sum = 0.0;
                for (int j = 0; j <= i; j++) sum += exp((double)s[j] - mx);
                double ent = 0.0;
                for (int j = 0; j <= i; j++) {
                    P[j] = (float)(exp((double)s[j] - mx) / sum);
                    if (P[j] > 0) ent -= (double)P[j] * log((double)P[j]);
                }
                // top-k mass of P among visible keys (same ranking as topk of S)
                topk_row(ko, s, i, T, k, TOPK_CAUSAL, pairs);
                double mass = 0.0;
                for (int j = 0; j <= i; j++) if (ko[j]) mass += P[j];
                C->mass += mass;
                C->rows++;
                if (i >= 1) {
                    C->ent += ent / log((double)(i + 1));
                    C->ent_rows++;
                }
                topk_row(kg, G + (size_t)i * T, i, T, k, TOPK_CAUSAL, pairs);
                for (int j = 0; j <= i; j++) {
                    C->tp += ko[j] && kg[j];
                    C->fp += !ko[j] && kg[j];
                    C->fn += ko[j] && !kg[j];
                }
                long kept = i + 1;
                if (!keeps_all) {
                    attention_keep_row(km, i, b, h, S, G, router, noise, pairs, &a);
                    kept = 0;
                    for (int j = 0; j <= i; j++) kept += km[j];
                }
                C->kept += kept;
                C->visible += i + 1;
                C->empty += kept == 0;
            }
        }
        Counts tot = {0};
        for (int t = 0; t < nt; t++) {  // fixed order: deterministic
            tot.mass += cnt[t].mass;
            tot.ent += cnt[t].ent;
            tot.rows += cnt[t].rows;
            tot.ent_rows += cnt[t].ent_rows;
            tot.tp += cnt[t].tp;
            tot.fp += cnt[t].fp;
            tot.fn += cnt[t].fn;
            tot.kept += cnt[t].kept;
            tot.visible += cnt[t].visible;
            tot.empty += cnt[t].empty;
        }
        LayerDiag *d = &diag[l];
        d->topk_mass = tot.rows ? tot.mass / tot.rows : 0.0;
        d->entropy_ratio = tot.ent_rows ? tot.ent / tot.ent_rows : 0.0;
        d->gate_precision = tot.tp + tot.fp ? (double)tot.tp / (tot.tp + tot.fp) : 0.0;
        d->gate_recall = tot.tp + tot.fn ? (double)tot.tp / (tot.tp + tot.fn) : 0.0;
        d->gate_f1 = tot.tp + tot.fp + tot.fn ? 2.0 * tot.tp / (2.0 * tot.tp + tot.fp + tot.fn) : 0.0;
        d->kept_fraction = tot.visible ? (double)tot.kept / tot.visible : 0.0;
        d->empty_rows = tot.empty;
    }
    diagnostics_gate_grad_norms(diag, m);
    xfree(gq);
    xfree(gk);
    xfree(scratch);
    xfree(cnt);
}

void diagnostics_add_json(cJSON *obj, const LayerDiag *diag, int n_layer) {
    size_t L = n_layer > 0 ? (size_t)n_layer : 0;
    double v[MAX_LAYERS] = {0};
    long rows[MAX_LAYERS] = {0};
#define LIST(key, field)                                   \
    do {                                                   \
        for (size_t l = 0; l < L; l++) v[l] = diag[l].field; \
        json_add_doubles(obj, key, v, L);                  \
    } while (0)
    LIST(RK_TOPK_MASS, topk_mass);
    LIST(RK_ENTROPY_RATIO, entropy_ratio);
    LIST(RK_GATE_PRECISION, gate_precision);
    LIST(RK_GATE_RECALL, gate_recall);
    LIST(RK_GATE_F1, gate_f1);
    LIST(RK_KEPT_FRACTION, kept_fraction);
    for (size_t l = 0; l < L; l++) rows[l] = diag[l].empty_rows;
    json_add_longs(obj, RK_EMPTY_ROWS, rows, L);
    LIST(RK_GATE_GRAD_NORM, gate_grad_norm);
#undef LIST
}

void diagnostics_add_moe_json(cJSON *obj, const Model *m) {
    int L = m->cfg.n_layer, any = 0;
    for (int l = 0; l < L; l++) any |= m->plan.ffn.router[l] != ROUTER_NONE;
    if (!any || !m->acts) return;
    json_add_number(obj, RK_AUX_LOSS, m->aux_loss);
    cJSON *ent = cJSON_AddArrayToObject(obj, RK_ROUTER_ENTROPY);
    for (int l = 0; l < L; l++)  // null for plain FFN layers and hash routers (NaN)
        cJSON_AddItemToArray(ent, m->plan.ffn.router[l] == ROUTER_NONE
                                      ? cJSON_CreateNull() : json_number(m->layer[l].ffn.router_entropy));
    cJSON *util = cJSON_AddArrayToObject(obj, RK_EXPERT_UTIL);
    for (int l = 0; l < L; l++) {
        if (m->plan.ffn.router[l] == ROUTER_NONE) {
            cJSON_AddItemToArray(util, cJSON_CreateNull());
            continue;
        }
        cJSON *u = cJSON_CreateArray();
        for (int e = 0; e < m->plan.ffn.experts[l]; e++)
            cJSON_AddItemToArray(u, json_number(m->layer[l].ffn.util[e]));
        cJSON_AddItemToArray(util, u);
    }
    cJSON *drop = cJSON_AddArrayToObject(obj, RK_DROPPED);
    for (int l = 0; l < L; l++)
        cJSON_AddItemToArray(drop, m->plan.ffn.router[l] == ROUTER_NONE
                                       ? cJSON_CreateNull() : json_number(m->layer[l].ffn.dropped));
}
