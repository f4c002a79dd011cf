// params.c: see params.h.
#include "params.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

static void add(ParamTable *t, int *cap, const char *name, int rows, int cols, int layer,
                ParamRole role) {
    if (t->count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        t->info = xrealloc(t->info, (size_t)*cap * sizeof(ParamInfo));
    }
    ParamInfo *p = &t->info[t->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 1;
    p->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    // 16-float (64-byte) alignment of every tensor keeps vector loads aligned.
    p->offset = t->total;
    t->total += (p->numel + 15) & ~(size_t)15;
    p->layer = layer;
    p->role = role;
}

void param_table_build(ParamTable *t, const Config *c, const ModelPlan *plan) {
    memset(t, 0, sizeof *t);
    int cap = 0, d = c->d_model, V = c->vocab_size, T = c->seq_len;
    int Hg = c->n_head * c->d_g;
    const ShapePlan *sp = &plan->shape;
    int learned_pos = plan->family->positions == POS_LEARNED, norm_bias = sp->norm_bias;
    const FfnPlan *fp = &plan->ffn;
    char n[64];
    add(t, &cap, "wte.weight", V, d, -1, ROLE_EMBED);
    if (learned_pos) add(t, &cap, "wpe.weight", T, d, -1, ROLE_EMBED);
    for (int l = 0; l < c->n_layer; l++) {
#define P(suffix, rows, cols, role) \
    snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), add(t, &cap, n, rows, cols, l, role)
        P("ln1.weight", d, 0, ROLE_LN);
        if (norm_bias) P("ln1.bias", d, 0, ROLE_LN);
        // rows: the q heads, then the k heads, then the v heads (grouped: n_kv_head of each)
        P("attn.qkv.weight", sp->qkv_width, d, ROLE_ATTN);
        if (sp->qkv_bias) P("attn.qkv.bias", sp->qkv_width, 0, ROLE_ATTN);
        if (plan->family->qk_norm) {
            P("attn.q_norm.weight", sp->head_dim, 0, ROLE_ATTN);
            P("attn.k_norm.weight", sp->head_dim, 0, ROLE_ATTN);
        }
        P("attn.proj.weight", d, sp->q_width, ROLE_ATTN);
        if (sp->o_bias) P("attn.proj.bias", d, 0, ROLE_ATTN);
        P("attn.gate_q.weight", Hg, d, ROLE_GATE);
        P("attn.gate_k.weight", Hg, d, ROLE_GATE);
        P("ln2.weight", d, 0, ROLE_LN);
        if (norm_bias) P("ln2.bias", d, 0, ROLE_LN);
        // FFN: E experts (1 = a plain FFN) stacked along the rows; GLU's fc has gate rows, then up
        int E = fp->experts[l], Fw = fp->width[l];
        int Fi = fp->act[l] == FFN_ACT_GELU ? Fw : 2 * Fw;
        RouterKind rk = fp->router[l];
        if (rk == ROUTER_LEARNED || rk == ROUTER_RANDOM) P("mlp.router.weight", E, d, ROLE_ROUTER);
        P("mlp.fc.weight", E * Fi, d, ROLE_MLP);
        if (sp->mlp_bias) P("mlp.fc.bias", E * Fi, 0, ROLE_MLP);
        P("mlp.proj.weight", E * d, Fw, ROLE_MLP);
        if (sp->mlp_bias) P("mlp.proj.bias", E * d, 0, ROLE_MLP);
#undef P
    }
    add(t, &cap, "ln_f.weight", d, 0, -1, ROLE_HEAD);
    if (norm_bias) add(t, &cap, "ln_f.bias", d, 0, -1, ROLE_HEAD);
    if (!c->tie_embeddings) add(t, &cap, "lm_head.weight", V, d, -1, ROLE_HEAD);
}

void param_table_free(ParamTable *t) {
    xfree(t->info);
    memset(t, 0, sizeof *t);
}

const ParamInfo *param_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->info[i].name, name) == 0) return &t->info[i];
    return NULL;
}

static float *ptr(const ParamTable *t, float *base, const char *name) {
    const ParamInfo *p = param_find(t, name);
    return p ? base + p->offset : NULL;
}

void weights_carve(Weights *w, const ParamTable *t, const Config *c, float *base) {
    memset(w, 0, sizeof *w);
    char n[64];
    w->wte = ptr(t, base, "wte.weight");
    w->wpe = ptr(t, base, "wpe.weight");
    for (int l = 0; l < c->n_layer; l++) {
        LayerWeights *L = &w->layer[l];
#define G(field, suffix) snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), L->field = ptr(t, base, n)
        G(ln1_w, "ln1.weight");
        G(ln1_b, "ln1.bias");
        G(qkv_w, "attn.qkv.weight");
        G(qkv_b, "attn.qkv.bias");
        G(q_norm, "attn.q_norm.weight");
        G(k_norm, "attn.k_norm.weight");
        G(proj_w, "attn.proj.weight");
        G(proj_b, "attn.proj.bias");
        G(gate_q, "attn.gate_q.weight");
        G(gate_k, "attn.gate_k.weight");
        G(ln2_w, "ln2.weight");
        G(ln2_b, "ln2.bias");
        G(router_w, "mlp.router.weight");
        G(fc_w, "mlp.fc.weight");
        G(fc_b, "mlp.fc.bias");
        G(fcproj_w, "mlp.proj.weight");
        G(fcproj_b, "mlp.proj.bias");
#undef G
    }
    w->lnf_w = ptr(t, base, "ln_f.weight");
    w->lnf_b = ptr(t, base, "ln_f.bias");
    w->lm_head = c->tie_embeddings ? w->wte : ptr(t, base, "lm_head.weight");
}

void params_init(float *params, const ParamTable *t, const Config *c) {
    params_init_roles(params, t, c, ~0u);
}

void params_init_roles(float *params, const ParamTable *t, const Config *c, unsigned roles) {
    Rng rng, gate_rng, router_rng;
    rng_seed(&rng, (uint64_t)c->seed);
    rng_seed(&gate_rng, (uint64_t)c->gate_seed ^ 0x6A7E5EEDull);
    rng_seed(&router_rng, (uint64_t)c->router_seed ^ 0x2007E5ull);  // learned and random alike
    for (int i = 0; i < t->count; i++) {
        const ParamInfo *p = &t->info[i];
        if (!(roles & (1u << p->role))) continue;  // gates and routers draw from their own streams
        float *x = params + p->offset;
        int is_bias = strstr(p->name, ".bias") != NULL;
        if (p->role == ROLE_LN || !strncmp(p->name, "ln_f", 4) || strstr(p->name, "_norm.weight")) {
            for (size_t j = 0; j < p->numel; j++) x[j] = is_bias ? 0.0f : 1.0f;
        } else if (is_bias) {
            memset(x, 0, p->numel * sizeof(float));
        } else if (p->role == ROLE_GATE) {
            for (size_t j = 0; j < p->numel; j++) x[j] = c->gate_init_std * rng_normal(&gate_rng);
        } else if (p->role == ROLE_ROUTER) {
            for (size_t j = 0; j < p->numel; j++) x[j] = c->init_std * rng_normal(&router_rng);
        } else {
            for (size_t j = 0; j < p->numel; j++) x[j] = c->init_std * rng_normal(&rng);
        }
    }
}

void params_count(const ParamTable *t, const Config *c, size_t *unique, size_t *paper,
                  size_t *gates) {
    size_t u = 0, g = 0;
    for (int i = 0; i < t->count; i++) {
        u += t->info[i].numel;
        if (t->info[i].role == ROLE_GATE) g += t->info[i].numel;
    }
    *unique = u;
    *paper = u + (c->tie_embeddings ? (size_t)c->vocab_size * c->d_model : 0);
    *gates = g;
}
