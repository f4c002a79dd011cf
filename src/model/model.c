// model.c: see model.h.
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "freeze.h"
#include "gemm_bf16.h"
#include "ops.h"
#include "profile.h"
#include "rotary.h"

// Dropout sites, so each dropout in a forward pass has its own stateless mask key.
enum { SITE_EMBED, SITE_ATTN, SITE_GELU, SITE_FFN_OUT, N_SITES };

static uint64_t site_key(const Model *m, int layer, int site) {
    return hash64(m->fwd_key, (uint64_t)(layer + 1) * N_SITES + site);
}

void model_build(Model *m, const Config *c) { model_build_init(m, c, ~0u); }

void model_build_for_load(Model *m, const Config *c) {
    model_build_init(m, c, (1u << ROLE_GATE) | (1u << ROLE_ROUTER));
}

void model_build_init(Model *m, const Config *c, unsigned init_roles) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    model_plan_resolve(&m->plan, c);
    param_table_build(&m->table, c, &m->plan);
    size_t P = m->table.total;
    m->params = xcalloc(P, sizeof(float));
    m->grads = xcalloc(P, sizeof(float));
    m->adam_m = xcalloc(P, sizeof(float));
    m->adam_v = xcalloc(P, sizeof(float));
    weights_carve(&m->w, &m->table, c, m->params);
    weights_carve(&m->g, &m->table, c, m->grads);
    params_init_roles(m->params, &m->table, c, init_roles);
    m->trainable = xcalloc((size_t)m->table.count, 1);
    m->gets_grad = xcalloc((size_t)m->table.count, 1);
    m->adam_t = xcalloc((size_t)m->table.count, sizeof(long));
    m->nthreads = omp_get_max_threads();
    model_set_trainable(m, NULL, OBJECTIVE_LM);
    if (m->plan.precision == PREC_BF16 && !gemm_bf16_available())
        fatal("precision=bf16: oneDNN has no bf16 matmul for this CPU (it needs AVX-512); pass "
              "--precision=fp32");
}

static void free_acts(Model *m) {
    xfree(m->acts);
    xfree(m->iacts);
    xfree(m->bwd);
    xfree(m->attn_scratch);
    xfree(m->inputs);
    xfree(m->targets);
    m->acts = m->bwd = m->attn_scratch = NULL;
    m->iacts = NULL;
    m->inputs = m->targets = NULL;
    m->B = m->T = 0;
}

void model_free(Model *m) {
    free_acts(m);
    xfree(m->params);
    xfree(m->grads);
    xfree(m->adam_m);
    xfree(m->adam_v);
    xfree(m->trainable);
    xfree(m->gets_grad);
    xfree(m->trainable_override);
    xfree(m->adam_t);
    param_table_free(&m->table);
}

void model_set_trainable(Model *m, const unsigned char *override, Objective objective) {
    if (override != m->trainable_override) {
        xfree(m->trainable_override);
        m->trainable_override = NULL;
        if (override) {
            m->trainable_override = xcalloc((size_t)m->table.count, 1);
            memcpy(m->trainable_override, override, (size_t)m->table.count);
        }
    }
    m->objective = objective;
    unsigned char *had = xcalloc((size_t)m->table.count, 1);
    memcpy(had, m->gets_grad, (size_t)m->table.count);
    freeze_resolve(m->trainable, m->gets_grad, &m->table, m->cfg.train, &m->plan,
                   m->trainable_override, objective);
    // A tensor that stops getting a gradient keeps none (model_zero_grad clears only the
    // tensors that get one, so the untouched gradients of frozen weights never cost memory).
    for (int i = 0; i < m->table.count; i++)
        if (had[i] && !m->gets_grad[i])
            memset(m->grads + m->table.info[i].offset, 0, m->table.info[i].numel * sizeof(float));
    xfree(had);
}

void model_set_routing(Model *m, const AttnMode *modes, const int *k) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        if (modes) m->plan.attn.mode[l] = modes[l];
        if (k) m->plan.attn.k[l] = k[l];
    }
    model_plan_write(&m->plan, &m->cfg);
    model_set_trainable(m, m->trainable_override, m->objective);
}

// ----------------------------------------------------------------------------- activations
typedef struct {
    float **ptr;
    size_t count;
} Slot;

typedef struct {
    int **ptr;
    size_t count;
} IntSlot;

static int *carve_ints(IntSlot *slots, int n) {
    size_t total = 0, off = 0;
    for (int i = 0; i < n; i++) total += slots[i].count;
    int *base = xcalloc(total ? total : 1, sizeof(int));
    for (int i = 0; i < n; i++) *slots[i].ptr = slots[i].count ? base + off : NULL, off += slots[i].count;
    return base;
}

static float *carve(Slot *slots, int n, size_t *total_out) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (slots[i].count + 15) & ~(size_t)15;
    float *base = xcalloc(total ? total : 1, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *slots[i].ptr = slots[i].count ? base + off : NULL;
        off += (slots[i].count + 15) & ~(size_t)15;
    }
    *total_out = total;
    return base;
}

// Lays out activations for (B, T) and the current modes; only what backward needs is kept.
static void ensure_acts(Model *m, int B, int T) {
    const Config *c = &m->cfg;
    int same = m->acts && m->B == B && m->T == T;
    for (int l = 0; same && l < c->n_layer; l++) same = m->act_modes[l] == m->plan.attn.mode[l];
    if (same) return;
    free_acts(m);
    m->B = B;
    m->T = T;
    const ShapePlan *sp = &m->plan.shape;
    size_t N = (size_t)B * T, C = c->d_model, V = c->vocab_size;
    size_t NH = c->n_head, GW = NH * c->d_g, TT = (size_t)T * T;
    size_t QKV = sp->qkv_width, QW = sp->q_width;
    int layernorm = m->plan.family->norm == NORM_LAYERNORM, qk_norm = m->plan.family->qk_norm;
    Slot s[32 * MAX_LAYERS];
    IntSlot is[8 * MAX_LAYERS];
    int n = 0, ni = 0;
#define SLOT(p, cnt) s[n++] = (Slot){&(p), (cnt)}
#define ISLOT(p, cnt) is[ni++] = (IntSlot){&(p), (cnt)}
    SLOT(m->encoded, N * C);
    int any_gate = 0;
    for (int l = 0; l < c->n_layer; l++) {
        LayerActs *L = &m->layer[l];
        AttnMode mode = m->plan.attn.mode[l];
        GateGrad gg = m->plan.attn.gate_grad;
        m->act_modes[l] = mode;
        int ste = route_rule(mode)->gate == GATE_RANKS_ONLY && gg != GATE_GRAD_NONE;
        int needs_gate = route_needs_gate(mode);
        int gate_grad = route_gate_in_graph(mode, gg);  // backward needs S and s
        any_gate |= gate_grad;
        SLOT(L->ln1, N * C);
        SLOT(L->ln1_mean, layernorm ? N : 0);
        SLOT(L->ln1_rstd, N);
        SLOT(L->qkv_pre, qk_norm ? N * QKV : 0);
        SLOT(L->qk_rstd, qk_norm ? N * (NH + sp->n_kv_head) : 0);
        SLOT(L->qkv, N * QKV);
        SLOT(L->gq, needs_gate ? N * GW : 0);
        SLOT(L->gk, needs_gate ? N * GW : 0);
        SLOT(L->att, B * NH * TT);
        SLOT(L->aux_S, gate_grad ? B * NH * TT : 0);
        SLOT(L->aux_s, gate_grad ? B * NH * TT : 0);
        SLOT(L->lse, ste ? B * NH * T : 0);
        SLOT(L->atty, N * QW);
        SLOT(L->res_att, N * C);
        SLOT(L->ln2, N * C);
        SLOT(L->ln2_mean, layernorm ? N : 0);
        SLOT(L->ln2_rstd, N);
        FfnArgs fa = model_ffn_args(m, l);
        size_t fs[FA_COUNT];
        ffn_act_sizes(&fa, fs);
        SLOT(L->ffn.h, fs[FA_H]);
        SLOT(L->ffn.a, fs[FA_A]);
        SLOT(L->ffn.xg, fs[FA_XG]);
        SLOT(L->ffn.y, fs[FA_Y]);
        SLOT(L->ffn.probs, fs[FA_PROBS]);
        SLOT(L->ffn.weight, fs[FA_WEIGHT]);
        ISLOT(L->ffn.choice, fs[FA_CHOICE]);
        ISLOT(L->ffn.slot, fs[FA_SLOT]);
        ISLOT(L->ffn.row_token, fs[FA_ROW_TOKEN]);
        ISLOT(L->ffn.expert_start, fs[FA_EXPERT_START]);
        SLOT(L->res_ffn, N * C);
    }
    SLOT(m->lnf, N * C);
    SLOT(m->lnf_mean, layernorm ? N : 0);
    SLOT(m->lnf_rstd, N);
    int rotary = m->plan.family->positions == POS_ROTARY;
    SLOT(m->rope_cos, rotary ? (size_t)T * sp->head_dim / 2 : 0);
    SLOT(m->rope_sin, rotary ? (size_t)T * sp->head_dim / 2 : 0);
    SLOT(m->logits, N * V);
    SLOT(m->losses, N);
    SLOT(m->lse, N);
    size_t total;
    m->acts = carve(s, n, &total);
    m->iacts = carve_ints(is, ni);
    if (rotary) {
        RopeParams rp = {c->rope_theta, sp->rope_scaling == ROPE_SCALING_LLAMA3, c->rope_factor,
                         c->rope_low_freq_factor, c->rope_high_freq_factor,
                         c->rope_original_max_pos};
        float *inv_freq = xcalloc((size_t)sp->head_dim / 2, sizeof(float));
        rope_inv_freq(inv_freq, sp->head_dim, &rp);
        rope_tables(m->rope_cos, m->rope_sin, inv_freq, T, sp->head_dim);
        xfree(inv_freq);
    }
    n = 0;
    SLOT(m->dres, N * C);
    SLOT(m->dln, N * C);
    SLOT(m->dtmp, N * C);
    SLOT(m->dqkv, N * QKV);
    SLOT(m->dqkv_pre, qk_norm ? N * QKV : 0);
    SLOT(m->datty, N * QW);
    size_t biggest[FS_COUNT] = {0};
    for (int l = 0; l < c->n_layer; l++) {
        FfnArgs fa = model_ffn_args(m, l);
        size_t fs[FS_COUNT];
        ffn_scratch_sizes(&fa, fs);
        for (int i = 0; i < FS_COUNT; i++) biggest[i] = fs[i] > biggest[i] ? fs[i] : biggest[i];
    }
    SLOT(m->dffn.dh, biggest[FS_DH]);
    SLOT(m->dffn.da, biggest[FS_DA]);
    SLOT(m->dffn.dy, biggest[FS_DY]);
    SLOT(m->dffn.dxg, biggest[FS_DXG]);
    SLOT(m->dffn.dweight, biggest[FS_DWEIGHT]);
    SLOT(m->dffn.dprobs, biggest[FS_DPROBS]);
    SLOT(m->dgq, any_gate ? N * GW : 0);
    SLOT(m->dgk, any_gate ? N * GW : 0);
#undef SLOT
#undef ISLOT
    m->bwd = carve(s, n, &total);
    m->attn_scratch = xcalloc((size_t)m->nthreads * attention_scratch_floats(T), sizeof(float));
    m->inputs = xcalloc(N, sizeof(int));
    m->targets = xcalloc(N, sizeof(int));
}

AttnArgs model_attn_args(const Model *m, int l, const KeepMasks *given) {
    const Config *c = &m->cfg;
    const AttnPlan *ap = &m->plan.attn;
    AttnArgs a = {0};
    a.B = m->B;
    a.T = m->T;
    a.C = m->plan.shape.q_width;
    a.NH = c->n_head;
    a.NKV = m->plan.shape.n_kv_head;
    a.hd = m->plan.shape.head_dim;
    a.dg = c->d_g;
    a.mode = ap->mode[l];
    a.k = ap->k[l];
    a.block_size = ap->block_size;
    a.k_blocks = ap->k_blocks;
    a.block_window = ap->block_window;
    a.scope = ap->scope;
    a.gate_grad = ap->gate_grad;
    a.tau = c->tau;
    a.dropout = m->training ? c->dropout : 0.0f;
    a.dropout_key = site_key(m, l, SITE_ATTN);
    // Fresh masks change with every forward pass; fixed ones depend on the layer alone.
    a.noise_key = a.mode == ATTN_STOCHASTIC
                      ? hash64(hash64((uint64_t)c->mask_seed, m->fwd_index), (uint64_t)l)
                      : hash64((uint64_t)c->mask_seed ^ 0xF1CEDull, (uint64_t)l);
    a.given_keep = given ? given->mask[l] : NULL;
    a.given_keep_per_batch = given ? given->per_batch[l] : 0;
    a.nthreads = m->nthreads;
    a.scratch = m->attn_scratch;
    return a;
}

FfnArgs model_ffn_args(const Model *m, int l) {
    const Config *c = &m->cfg;
    const FfnPlan *fp = &m->plan.ffn;
    FfnArgs a = {0};
    a.N = (size_t)m->B * m->T;
    a.C = c->d_model;
    a.E = fp->experts[l];
    a.F = fp->width[l];
    a.topk = a.E > 1 ? c->top_experts : 1;
    a.act = fp->act[l];
    a.gelu = fp->gelu;
    a.router = fp->router[l];
    a.prec = m->plan.precision;
    a.capacity_factor = c->capacity_factor;
    a.aux_coef = c->aux_loss;
    a.aux_grad_scale = 1.0f;
    a.tokens = m->inputs;
    a.hash_seed = hash64((uint64_t)c->router_seed ^ 0x4A54ull, (uint64_t)l);
    a.dropout = m->training ? c->dropout : 0.0f;
    a.dropout_key = site_key(m, l, SITE_GELU);
    return a;
}

static FfnWeights ffn_weights(const LayerWeights *w) {
    return (FfnWeights){w->fc_w, w->fc_b, w->fcproj_w, w->fcproj_b, w->router_w};
}

// Mean ablation: every row of x (N,C) becomes the mean row (evaluation only; no backward).
static void mean_ablate(float *x, size_t N, int C) {
    float *mean = xcalloc((size_t)C, sizeof(float));
    column_sum_accumulate(mean, x, N, C);
    for (int c = 0; c < C; c++) mean[c] /= (float)N;
    for (size_t n = 0; n < N; n++) memcpy(x + n * C, mean, C * sizeof(float));
    xfree(mean);
}

// ----------------------------------------------------------------------------- family ops
// The norm a family's row names, before attention, before the FFN and at the end. mean and b
// are unused by norms without centring (RMSNorm). out (N,C), mean, rstd (N), inp (N,C), w, b (C) or NULL.
static void norm_forward(const ModelFamily *f, float *out, float *mean, float *rstd,
                         const float *inp, const float *w, const float *b, size_t N, int C,
                         float eps) {
    switch (f->norm) {
    case NORM_LAYERNORM: layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps); break;
    case NORM_RMSNORM: rmsnorm_forward(out, rstd, inp, w, N, C, eps); break;
    }
}

// dinp (N,C) += ...; dw, db (C) += ... (NULL when frozen or absent)
static void norm_backward(const ModelFamily *f, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w, const float *mean,
                          const float *rstd, size_t N, int C) {
    switch (f->norm) {
    case NORM_LAYERNORM: layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C); break;
    case NORM_RMSNORM: rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C); break;
    }
}

// The attention inputs: qkv = rope(qk_norm(ln1 Wqkv^T + b)) on the q and k heads (each step as
// the family's row says). Saves qkv_pre and qk_rstd for the q/k norm's backward.
static void qkv_forward(Model *m, LayerActs *L, const LayerWeights *w, size_t N) {
    const ShapePlan *sp = &m->plan.shape;
    const ModelFamily *f = m->plan.family;
    int C = m->cfg.d_model, QKV = sp->qkv_width, heads = sp->n_head + sp->n_kv_head;
    float *proj = f->qk_norm ? L->qkv_pre : L->qkv;
    PROFILED(OP_MATMUL, matmul_forward(proj, L->ln1, w->qkv_w, w->qkv_b, N, C, QKV, m->plan.precision));
    if (f->qk_norm)
        PROFILED(OP_LAYERNORM, head_norm_forward(L->qkv, L->qk_rstd, L->qkv_pre, w->q_norm, w->k_norm, N,
                                                 sp->n_head, sp->n_kv_head, sp->head_dim, QKV, m->cfg.ln_eps));
    if (f->positions == POS_ROTARY)  // the q heads and the k heads lead every row
        PROFILED(OP_ELEMENTWISE, rope_forward(L->qkv, m->rope_cos, m->rope_sin, N, m->T, heads, sp->head_dim, QKV));
}

// From dqkv (the attention's input gradient, consumed in place) to dln (overwritten) and the
// projection's (and q/k norm's) parameter gradients.
static float *grad_of(const Model *m, const float *param_ptr);
static void qkv_backward(Model *m, LayerActs *L, const LayerWeights *w, size_t N) {
    const ShapePlan *sp = &m->plan.shape;
    const ModelFamily *f = m->plan.family;
    int C = m->cfg.d_model, QKV = sp->qkv_width, heads = sp->n_head + sp->n_kv_head;
    if (f->positions == POS_ROTARY)
        PROFILED(OP_ELEMENTWISE, rope_backward(m->dqkv, m->rope_cos, m->rope_sin, N, m->T, heads, sp->head_dim, QKV));
    const float *dproj = m->dqkv;
    if (f->qk_norm) {
        PROFILED(OP_LAYERNORM, head_norm_backward(m->dqkv_pre, grad_of(m, w->q_norm), grad_of(m, w->k_norm), m->dqkv,
                                                  L->qkv_pre, w->q_norm, w->k_norm, L->qk_rstd, N, sp->n_head,
                                                  sp->n_kv_head, sp->head_dim, QKV));
        dproj = m->dqkv_pre;
    }
    PROFILED(OP_MATMUL, matmul_backward(m->dln, grad_of(m, w->qkv_w), grad_of(m, w->qkv_b), dproj, L->ln1,
                                        w->qkv_w, N, C, QKV, 0, m->plan.precision));
}

// ----------------------------------------------------------------------------- forward
double model_forward(Model *m, const int *inputs, const int *targets, int B, int T) {
    return model_forward_given(m, inputs, targets, B, T, NULL);
}

double model_forward_given(Model *m, const int *inputs, const int *targets, int B, int T,
                           const KeepMasks *given) {
    const Config *c = &m->cfg;
    const ModelPlan *plan = &m->plan;
    const ShapePlan *sp = &plan->shape;
    const Precision prec = plan->precision;
    if (T > c->seq_len) fatal("sequence of %d tokens is longer than seq_len %d", T, c->seq_len);
    ensure_acts(m, B, T);
    size_t N = (size_t)B * T;
    int C = c->d_model, V = c->vocab_size, GW = c->n_head * c->d_g;
    float p = m->training ? c->dropout : 0.0f;
    // Training forwards and evaluation forwards count separately, so evaluating in the middle
    // of a run never shifts the dropout and stochastic-mask streams of training (resume needs
    // that); evaluation streams restart with every evaluation (eval_count reset by the caller).
    m->fwd_index = m->training ? m->forward_count++ : ((uint64_t)1 << 62) + m->eval_count++;
    m->fwd_key = hash64((uint64_t)c->seed ^ 0xD50Full, m->fwd_index);
    if (m->training && m->stream) m->fwd_key = hash64(m->fwd_key, m->stream);
    for (size_t n = 0; n < N; n++) {
        if (inputs[n] < 0 || inputs[n] >= V)
            fatal("token id %d at position %zu is outside the vocabulary [0, %d): check that the "
                  "data matches vocab_size", inputs[n], n, V);
        m->inputs[n] = inputs[n];
        m->targets[n] = targets ? targets[n] : IGNORE_INDEX;
        if (targets && (targets[n] < IGNORE_INDEX || targets[n] >= V))
            fatal("target id %d at position %zu is outside [0, %d) and is not the ignore index -1",
                  targets[n], n, V);
    }
    switch (plan->family->positions) {
    case POS_LEARNED:  // x = wte[token] + wpe[position]
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++) {
            const float *te = m->w.wte + (size_t)m->inputs[n] * C, *pe = m->w.wpe + (n % T) * C;
            float *x = m->encoded + n * C;
            for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
        }
        break;
    case POS_ROTARY:  // x = wte[token]; positions enter as rotations of q and k (below)
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++)
            memcpy(m->encoded + n * C, m->w.wte + (size_t)m->inputs[n] * C, C * sizeof(float));
        break;
    }
    PROFILED(OP_ELEMENTWISE, dropout_apply(m->encoded, N * C, p, site_key(m, -1, SITE_EMBED)));
    const float *x = m->encoded;
    m->aux_loss = 0.0;
    for (int l = 0; l < c->n_layer; l++) {
        LayerActs *L = &m->layer[l];
        const LayerWeights *w = &m->w.layer[l];
        PROFILED(OP_LAYERNORM, norm_forward(plan->family, L->ln1, L->ln1_mean, L->ln1_rstd, x, w->ln1_w, w->ln1_b, N, C, c->ln_eps));
        qkv_forward(m, L, w, N);
        if (L->gq) {  // a token router reads gk's first column only: gq is not computed
            if (!route_routes_tokens(m->plan.attn.mode[l]))
                PROFILED(OP_MATMUL, matmul_forward(L->gq, L->ln1, w->gate_q, NULL, N, C, GW, prec));
            PROFILED(OP_MATMUL, matmul_forward(L->gk, L->ln1, w->gate_k, NULL, N, C, GW, prec));
        }
        AttnArgs a = model_attn_args(m, l, given);
        PROFILED(OP_ATTENTION, attention_forward(L->atty, L->att, L->aux_S, L->aux_s, L->lse, L->qkv, L->gq, L->gk, &a));
        PROFILED(OP_MATMUL, matmul_forward(m->dtmp, L->atty, w->proj_w, w->proj_b, N, sp->q_width, C, prec));
        if (plan->ablate_attn[l]) mean_ablate(m->dtmp, N, C);
        PROFILED(OP_ELEMENTWISE, residual_forward(L->res_att, x, m->dtmp, N * C));
        PROFILED(OP_LAYERNORM, norm_forward(plan->family, L->ln2, L->ln2_mean, L->ln2_rstd, L->res_att, w->ln2_w, w->ln2_b, N, C,
                          c->ln_eps));
        FfnArgs fa = model_ffn_args(m, l);
        FfnWeights fw = ffn_weights(w);
        ffn_forward(m->dtmp, &L->ffn, L->ln2, &fw, &fa);  // profiled inside
        m->aux_loss += L->ffn.aux_loss;
        if (plan->ablate_ffn[l]) mean_ablate(m->dtmp, N, C);
        PROFILED(OP_ELEMENTWISE, dropout_apply(m->dtmp, N * C, p, site_key(m, l, SITE_FFN_OUT)));
        PROFILED(OP_ELEMENTWISE, residual_forward(L->res_ffn, L->res_att, m->dtmp, N * C));
        x = L->res_ffn;
    }
    m->loss = 0.0;
    m->n_scored = 0;
    if (m->blocks_only) return 0.0;  // distillation reads the blocks' activations only
    PROFILED(OP_LAYERNORM, norm_forward(plan->family, m->lnf, m->lnf_mean, m->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b, N, C, c->ln_eps));
    PROFILED(OP_MATMUL, matmul_forward(m->logits, m->lnf, m->w.lm_head, NULL, N, C, V, prec));
    m->n_scored = 0;
    if (!targets) return 0.0;
    double total;
    PROFILED(OP_LOSS, total = crossentropy_forward(m->losses, m->lse, &m->n_scored, m->logits, m->targets, N, V));
    m->loss = m->n_scored ? total / (double)m->n_scored : 0.0;
    return m->loss;
}

// ----------------------------------------------------------------------------- backward
void model_zero_grad(Model *m) {
    // Only tensors that get a gradient are ever written (the rest stay zero from allocation).
    for (int i = 0; i < m->table.count; i++)
        if (m->gets_grad[i])
            memset(m->grads + m->table.info[i].offset, 0, m->table.info[i].numel * sizeof(float));
}

// Gradient pointer of a tensor, or NULL when it gets none (frozen or off the loss's path).
static float *grad_of(const Model *m, const float *param_ptr) {
    if (!param_ptr) return NULL;
    size_t off = (size_t)(param_ptr - m->params);
    for (int i = 0; i < m->table.count; i++)
        if (m->table.info[i].offset == off) return m->gets_grad[i] ? m->grads + off : NULL;
    ASSERT(0);
    return NULL;
}

// Undoes an inverted dropout on a gradient in place (same stateless mask as the forward).
static void dropout_backward(float *d, size_t n, float p, uint64_t key) { dropout_apply(d, n, p, key); }

// The lowest block whose backward is needed: 0 when an embedding gets a gradient, else the
// lowest block holding a tensor that gets one (n_layer when none does: the head alone).
static int backward_stop_layer(const Model *m) {
    int stop = m->cfg.n_layer;
    for (int i = 0; i < m->table.count; i++) {
        const ParamInfo *p = &m->table.info[i];
        if (!m->gets_grad[i]) continue;
        if (p->role == ROLE_EMBED) return 0;
        if (p->layer >= 0 && p->layer < stop) stop = p->layer;
    }
    return stop;
}

void model_backward(Model *m, float grad_scale) {
    const Config *c = &m->cfg;
    ASSERT(m->acts && m->n_scored > 0);
    if (c->ablate[0]) fatal("key 'ablate' is for evaluation only (routelab eval --ablate=...)");
    const Precision prec = m->plan.precision;
    int B = m->B, T = m->T, C = c->d_model, V = c->vocab_size;
    int GW = c->n_head * c->d_g;
    size_t N = (size_t)B * T;
    float p = m->training ? c->dropout : 0.0f;
    PROFILED(OP_LOSS, crossentropy_backward(m->logits, m->lse, m->targets, N, V, grad_scale / (float)m->n_scored));
    const float *dlogits = m->logits;
    // logits = lnf lm_head^T
    PROFILED(OP_MATMUL, matmul_backward(m->dln, grad_of(m, m->w.lm_head), NULL, dlogits, m->lnf, m->w.lm_head, N, C, V, 0, prec));
    memset(m->dres, 0, N * C * sizeof(float));
    const float *x_last = c->n_layer ? m->layer[c->n_layer - 1].res_ffn : m->encoded;
    PROFILED(OP_LAYERNORM, norm_backward(m->plan.family, m->dres, grad_of(m, m->w.lnf_w), grad_of(m, m->w.lnf_b), m->dln, x_last,
                       m->w.lnf_w, m->lnf_mean, m->lnf_rstd, N, C));
    // Blocks below the lowest one with a tensor that gets a gradient need no backward at all
    // (frozen blocks above it still pass gradients through their activations).
    int stop = backward_stop_layer(m);
    for (int l = c->n_layer - 1; l >= stop; l--) {
        LayerActs *L = &m->layer[l];
        const LayerWeights *w = &m->w.layer[l];
        const float *x_in = l ? m->layer[l - 1].res_ffn : m->encoded;
        // FFN: res_ffn = res_att + drop(ffn(ln2))
        memcpy(m->dtmp, m->dres, N * C * sizeof(float));
        PROFILED(OP_ELEMENTWISE, dropout_backward(m->dtmp, N * C, p, site_key(m, l, SITE_FFN_OUT)));
        FfnArgs fa = model_ffn_args(m, l);
        fa.aux_grad_scale = grad_scale;
        FfnWeights fw = ffn_weights(w);
        FfnGrads fg = {grad_of(m, w->fc_w), grad_of(m, w->fc_b), grad_of(m, w->fcproj_w),
                       grad_of(m, w->fcproj_b), grad_of(m, w->router_w)};
        ffn_backward(m->dln, &fg, m->dtmp, L->ln2, &L->ffn, &fw, &fa, &m->dffn);
        PROFILED(OP_LAYERNORM, norm_backward(m->plan.family, m->dres, grad_of(m, w->ln2_w), grad_of(m, w->ln2_b), m->dln, L->res_att,
                           w->ln2_w, L->ln2_mean, L->ln2_rstd, N, C));
        // attention: res_att = x_in + proj(atty)
        PROFILED(OP_MATMUL, matmul_backward(m->datty, grad_of(m, w->proj_w), grad_of(m, w->proj_b), m->dres, L->atty,
                        w->proj_w, N, m->plan.shape.q_width, C, 0, prec));
        AttnArgs a = model_attn_args(m, l, NULL);  // backward reads the saved weights, not masks
        int gate_path = route_gate_in_graph(m->plan.attn.mode[l], m->plan.attn.gate_grad);
        PROFILED(OP_ATTENTION, attention_backward(m->dqkv, gate_path ? m->dgq : NULL, gate_path ? m->dgk : NULL, m->datty,
                           L->qkv, L->gq, L->gk, L->att, L->aux_S, L->aux_s, L->lse, &a));
        qkv_backward(m, L, w, N);
        if (gate_path) {  // the gate reads LN1's output too, frozen or not (a router: gk only)
            if (!route_routes_tokens(m->plan.attn.mode[l]))
                PROFILED(OP_MATMUL, matmul_backward(m->dln, grad_of(m, w->gate_q), NULL, m->dgq, L->ln1, w->gate_q, N, C, GW, 1, prec));
            PROFILED(OP_MATMUL, matmul_backward(m->dln, grad_of(m, w->gate_k), NULL, m->dgk, L->ln1, w->gate_k, N, C, GW, 1, prec));
        }
        PROFILED(OP_LAYERNORM, norm_backward(m->plan.family, m->dres, grad_of(m, w->ln1_w), grad_of(m, w->ln1_b), m->dln, x_in,
                           w->ln1_w, L->ln1_mean, L->ln1_rstd, N, C));
    }
    if (stop > 0) return;  // nothing below block `stop` trains: no embedding gradient either
    // embeddings: encoded = drop(wte[idx] + wpe[t])
    PROFILED(OP_ELEMENTWISE, dropout_backward(m->dres, N * C, p, site_key(m, -1, SITE_EMBED)));
    float *dwte = grad_of(m, m->w.wte), *dwpe = grad_of(m, m->w.wpe);
    // Parallel over feature columns: every thread owns its columns, so sums are deterministic.
#pragma omp parallel for schedule(static)
    for (int i = 0; i < C; i++) {
        for (size_t n = 0; n < N; n++) {
            float d = m->dres[n * C + i];
            if (dwte) dwte[(size_t)m->inputs[n] * C + i] += d;
            if (dwpe) dwpe[(n % T) * C + i] += d;
        }
    }
}

void model_print_summary(const Model *m, FILE *f) {
    size_t unique, paper, gates;
    params_count(&m->table, &m->cfg, &unique, &paper, &gates);
    size_t trainable = 0;
    for (int i = 0; i < m->table.count; i++)
        if (m->trainable[i]) trainable += m->table.info[i].numel;
    const ShapePlan *sp = &m->plan.shape;
    fprintf(f, "model: family %s, %d layers, d_model %d, %d heads", m->plan.family->name,
            m->cfg.n_layer, m->cfg.d_model, m->cfg.n_head);
    if (sp->n_kv_head != sp->n_head) fprintf(f, " (%d K/V)", sp->n_kv_head);
    if (sp->head_dim * sp->n_head != m->cfg.d_model) fprintf(f, " of width %d", sp->head_dim);
    fprintf(f,
            ", d_ff %d, seq_len %d, vocab %d\n"
            "params: %zu unique (%.2fM); as the paper counts (tied matrix twice, no gates): "
            "%.2fM; gate parameters: %zu; trainable: %zu\n",
            m->cfg.d_ff, m->cfg.seq_len, m->cfg.vocab_size, unique, unique / 1e6, (paper - gates) / 1e6, gates, trainable);
    const AttnPlan *ap = &m->plan.attn;
    const FfnPlan *fp = &m->plan.ffn;
    fprintf(f, "attention:");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        AttnMode md = ap->mode[l];
        fprintf(f, " %s", attn_mode_name(md));
        KeepRule keep = route_rule(md)->keep;
        if (keep == KEEP_BLOCKS_GATE || keep == KEEP_BLOCKS_SCORES)
            fprintf(f, "(%d blocks of %d, window %d)", ap->k_blocks, ap->block_size, ap->block_window);
        else if (route_routes_tokens(md)) fprintf(f, "(k=%d tokens per head)", ap->k[l]);
        else if (keep != KEEP_ALL_VISIBLE) fprintf(f, "(k=%d)", ap->k[l]);
        if (route_needs_gate(md))
            fprintf(f, "[%s %s]", ap->gate_frozen[l] ? "random" : "learned",
                    route_routes_tokens(md) ? "router" : "gate");
    }
    fprintf(f, "\nffn:");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        if (fp->router[l] == ROUTER_NONE) fprintf(f, " %s(%d)", ffn_act_name(fp->act[l]), fp->width[l]);
        else fprintf(f, " moe(E=%d x %s(%d), top-%d, %s router)", fp->experts[l],
                     ffn_act_name(fp->act[l]), fp->width[l], m->cfg.top_experts,
                     router_name(fp->router[l]));
    }
    fprintf(f, "\n");
}
