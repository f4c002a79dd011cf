// ffn.c: see ffn.h. Read top to bottom: routing (router, choice, capacity, dispatch), the
// experts (one GEMM pair each), the combine, then the same backwards.
#include "ffn.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "profile.h"

// --------------------------------------------------------------------------- the plan
static const char *const ACT_KEYS[] = {"dense", "swiglu", "geglu"};  // as the keys spell them
static const char *const ACT_NAMES[] = {"gelu", "swiglu", "geglu"};  // as summaries print them

const char *ffn_act_name(FfnAct a) { return ACT_NAMES[a]; }

const char *router_name(RouterKind r) {
    static const char *const names[] = {"", "learned", "random", "hash"};
    return names[r];
}

static int parse_act(const char *s, FfnAct *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, ACT_KEYS[i])) return *out = (FfnAct)i, 1;
    return 0;
}

void ffn_plan_resolve(FfnPlan *p, const Config *c, FfnAct family_act) {
    memset(p, 0, sizeof *p);
    if (!strcmp(c->gelu, "erf")) p->gelu = GELU_ERF;
    else if (!strcmp(c->gelu, "tanh")) p->gelu = GELU_TANH;
    else fatal("key 'gelu' must be erf or tanh, got '%s'", c->gelu);
    FfnAct expert_act = FFN_ACT_GELU;
    if (!parse_act(c->expert, &expert_act))
        fatal("key 'expert' must be dense, swiglu or geglu, got '%s'", c->expert);
    RouterKind router = ROUTER_NONE;
    if (!strcmp(c->router, "learned")) router = ROUTER_LEARNED;
    else if (!strcmp(c->router, "random")) router = ROUTER_RANDOM;
    else if (!strcmp(c->router, "hash")) router = ROUTER_HASH;
    else fatal("key 'router' must be learned, random or hash, got '%s'", c->router);
    // d_expert 0: the dense FFN's parameters split E ways
    int d_expert = c->d_expert ? c->d_expert : c->d_ff / c->n_expert;
    char vals[MAX_LAYERS][LAYER_VALUE_LEN];
    config_per_layer(c, "ffn", c->ffn, vals);
    for (int l = 0; l < c->n_layer; l++)
        if (!strcmp(vals[l], "moe") && d_expert < 1) fatal("d_ff / n_expert is 0: set key 'd_expert'");
    for (int l = 0; l < c->n_layer; l++) {
        p->experts[l] = 1, p->width[l] = c->d_ff, p->router[l] = ROUTER_NONE;
        if (!strcmp(vals[l], "moe")) {
            p->act[l] = expert_act;
            if (c->moe_dense_control) p->width[l] = c->top_experts * d_expert;  // active width
            else p->experts[l] = c->n_expert, p->width[l] = d_expert, p->router[l] = router;
        } else if (!parse_act(vals[l], &p->act[l])) {
            fatal("key 'ffn': unknown kind '%s' (dense, swiglu, geglu, moe)", vals[l]);
        } else if (p->act[l] == FFN_ACT_GELU) {
            p->act[l] = family_act;
        }
    }
}

// --------------------------------------------------------------------------- sizes
void ffn_act_sizes(const FfnArgs *a, size_t sz[FA_COUNT]) {
    size_t R = ffn_rows(a), N = a->N;
    int routed = ffn_is_routed(a), probs = a->router == ROUTER_LEARNED || a->router == ROUTER_RANDOM;
    sz[FA_H] = R * ffn_fc_rows(a);
    sz[FA_A] = R * a->F;
    sz[FA_XG] = routed ? R * a->C : 0;
    sz[FA_Y] = routed ? R * a->C : 0;
    sz[FA_PROBS] = probs ? N * a->E : 0;
    sz[FA_WEIGHT] = routed ? N * a->topk : 0;
    sz[FA_CHOICE] = routed ? N * a->topk : 0;
    sz[FA_SLOT] = routed ? N * a->topk : 0;
    sz[FA_ROW_TOKEN] = routed ? R : 0;
    sz[FA_EXPERT_START] = routed ? (size_t)a->E + 1 : 0;
}

void ffn_scratch_sizes(const FfnArgs *a, size_t sz[FS_COUNT]) {
    size_t R = ffn_rows(a), N = a->N;
    int routed = ffn_is_routed(a);
    sz[FS_DH] = R * ffn_fc_rows(a);
    sz[FS_DA] = a->act == FFN_ACT_GELU ? 0 : R * a->F;  // GELU works in place in dh
    sz[FS_DY] = routed ? R * a->C : 0;
    sz[FS_DXG] = routed ? R * a->C : 0;
    sz[FS_DWEIGHT] = routed ? N * a->topk : 0;
    sz[FS_DPROBS] = a->router == ROUTER_LEARNED || a->router == ROUTER_RANDOM ? N * a->E : 0;
}

// --------------------------------------------------------------------------- one expert
// A plain FFN keeps the model's dropout key unchanged; expert e hashes it with e.
static uint64_t expert_key(const FfnArgs *a, int e) {
    return a->router == ROUTER_NONE ? a->dropout_key : hash64(a->dropout_key, (uint64_t)e);
}

// h = x W1^T + b1; a = drop(act(h)); y = a W2^T + b2, for n rows of expert e.
static void expert_forward(float *y, float *h, float *act, const float *x, size_t n, int e,
                           const FfnWeights *w, const FfnArgs *a) {
    int C = a->C, F = a->F, Fi = ffn_fc_rows(a);
    PROFILED(OP_MATMUL, matmul_forward(h, x, w->fc_w + (size_t)e * Fi * C, w->fc_b ? w->fc_b + (size_t)e * Fi : NULL, n, C, Fi, a->prec));
    if (a->act == FFN_ACT_GELU) PROFILED(OP_GELU, gelu_forward(act, h, n * F, a->gelu));
    else PROFILED(OP_GELU, glu_forward(act, h, n, F, a->act == FFN_ACT_SWIGLU, a->gelu));
    PROFILED(OP_ELEMENTWISE, dropout_apply(act, n * F, a->dropout, expert_key(a, e)));
    PROFILED(OP_MATMUL, matmul_forward(y, act, w->proj_w + (size_t)e * C * F, w->proj_b ? w->proj_b + (size_t)e * C : NULL, n, F, C, a->prec));
}

static void expert_backward(float *dx, const FfnGrads *g, float *dh, float *da, const float *dy,
                            const float *x, const float *h, const float *act, size_t n, int e,
                            const FfnWeights *w, const FfnArgs *a) {
    int C = a->C, F = a->F, Fi = ffn_fc_rows(a);
    size_t o1 = (size_t)e * Fi, o2 = (size_t)e * C;
    if (a->act == FFN_ACT_GELU) da = dh;  // d(act) becomes d(h) in place
    PROFILED(OP_MATMUL, matmul_backward(da, g->proj_w ? g->proj_w + o2 * F : NULL,
                                        g->proj_b ? g->proj_b + o2 : NULL, dy, act, w->proj_w + o2 * F, n, F, C, 0, a->prec));
    PROFILED(OP_ELEMENTWISE, dropout_apply(da, n * F, a->dropout, expert_key(a, e)));
    if (a->act == FFN_ACT_GELU) PROFILED(OP_GELU, gelu_backward(dh, h, da, n * F, a->gelu));
    else PROFILED(OP_GELU, glu_backward(dh, h, da, n, F, a->act == FFN_ACT_SWIGLU, a->gelu));
    PROFILED(OP_MATMUL, matmul_backward(dx, g->fc_w ? g->fc_w + o1 * C : NULL, g->fc_b ? g->fc_b + o1 : NULL,
                                        dh, x, w->fc_w + o1 * C, n, C, Fi, 0, a->prec));
}

// --------------------------------------------------------------------------- routing
static int hash_expert(uint64_t seed, int token, int E, int second, int first) {
    if (!second) return (int)(hash64(seed, (uint64_t)token) % (uint64_t)E);
    int off = 1 + (int)(hash64(seed ^ 0x5EC0Dull, (uint64_t)token) % (uint64_t)(E - 1));
    return (first + off) % E;
}

// Picks experts and weights per token, fills probs/choice/weight.
static void route(FfnActs *s, const float *x, const FfnWeights *w, const FfnArgs *a) {
    size_t N = a->N;
    int E = a->E, K = a->topk;
    if (a->router == ROUTER_HASH) {
        for (size_t n = 0; n < N; n++) {
            int e0 = hash_expert(a->hash_seed, a->tokens[n], E, 0, 0);
            s->choice[n * K] = e0, s->weight[n * K] = 1.0f / K;
            if (K == 2) s->choice[n * K + 1] = hash_expert(a->hash_seed, a->tokens[n], E, 1, e0),
                        s->weight[n * K + 1] = 0.5f;
        }
        s->router_entropy = NAN;
        return;
    }
    matmul_forward(s->probs, x, w->router_w, NULL, N, a->C, E, a->prec);
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *p = s->probs + n * E, mx = p[0], sum = 0.0f;
        for (int e = 1; e < E; e++) mx = fmaxf(mx, p[e]);
        for (int e = 0; e < E; e++) sum += (p[e] = expf(p[e] - mx));
        for (int e = 0; e < E; e++) p[e] /= sum;
        int b0 = 0, b1 = -1;  // ties: lower index
        for (int e = 1; e < E; e++) if (p[e] > p[b0]) b0 = e;
        if (K == 2) {
            for (int e = 0; e < E; e++) if (e != b0 && (b1 < 0 || p[e] > p[b1])) b1 = e;
            float z = p[b0] + p[b1];
            s->choice[n * 2] = b0, s->weight[n * 2] = p[b0] / z;
            s->choice[n * 2 + 1] = b1, s->weight[n * 2 + 1] = p[b1] / z;
        } else {
            s->choice[n] = b0, s->weight[n] = p[b0];
        }
    }
    double ent = 0.0;  // serial: the same bits for the same run
    for (size_t i = 0; i < N * (size_t)E; i++)
        ent -= s->probs[i] > 0 ? s->probs[i] * log(s->probs[i]) : isnan(s->probs[i]) ? NAN : 0.0;
    s->router_entropy = E > 1 ? ent / (double)N / log((double)E) : 0.0;
}

// Capacity and dispatch: rows grouped by expert, first choices before second, token order.
// A token whose router weight is NaN (a NaN or inf router logit) goes to no expert and takes
// no capacity; the combine gives it a NaN output (it is not expert 0's, nor dropped to 0).
static void dispatch(FfnActs *s, const FfnArgs *a) {
    size_t N = a->N, cap = N * (size_t)a->topk;
    int E = a->E, K = a->topk, count[MAX_EXPERTS] = {0};
    if (a->capacity_factor > 0) cap = (size_t)ceil(a->capacity_factor * (double)N * K / E);
    size_t dropped = 0;
    for (int r = 0; r < K; r++)
        for (size_t n = 0; n < N; n++) {
            int e = s->choice[n * K + r];
            if (isnan(s->weight[n * K + r])) s->slot[n * K + r] = -1;
            else if ((size_t)count[e] < cap) s->slot[n * K + r] = count[e]++;  // rank inside e for now
            else s->slot[n * K + r] = -1, dropped++;
        }
    s->expert_start[0] = 0;
    for (int e = 0; e < E; e++) s->expert_start[e + 1] = s->expert_start[e] + count[e];
    for (size_t i = 0; i < N * (size_t)K; i++) {
        if (s->slot[i] < 0) continue;
        s->slot[i] += s->expert_start[s->choice[i]];
        s->row_token[s->slot[i]] = (int)(i / K);
    }
    size_t rows = (size_t)s->expert_start[E];
    for (int e = 0; e < E; e++) s->util[e] = rows ? (float)count[e] / rows : 0.0f;
    s->dropped = (double)dropped / (double)(N * K);
}

// Switch load balancing: aux_coef * E * sum_e f_e P_e (f from first choices, before capacity).
static double aux_loss(const FfnActs *s, const FfnArgs *a, double *f) {
    size_t N = a->N;
    int E = a->E;
    for (int e = 0; e < E; e++) f[e] = 0.0;
    for (size_t n = 0; n < N; n++) f[s->choice[n * a->topk]] += 1.0 / N;
    double loss = 0.0;
    for (int e = 0; e < E; e++) {
        double P = 0.0;
        for (size_t n = 0; n < N; n++) P += s->probs[n * E + e];
        loss += f[e] * P / N;
    }
    return a->aux_coef * E * loss;
}

// --------------------------------------------------------------------------- forward
void ffn_forward(float *out, FfnActs *s, const float *x, const FfnWeights *w, const FfnArgs *a) {
    int C = a->C;
    size_t N = a->N;
    s->aux_loss = s->dropped = 0.0;
    if (!ffn_is_routed(a)) {  // plain FFN: no gather, no combine
        expert_forward(out, s->h, s->a, x, N, 0, w, a);
        return;
    }
    route(s, x, w, a);
    dispatch(s, a);
    size_t R = (size_t)s->expert_start[a->E];
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < R; r++) memcpy(s->xg + r * C, x + (size_t)s->row_token[r] * C, C * sizeof(float));
    int Fi = ffn_fc_rows(a);
    for (int e = 0; e < a->E; e++) {
        size_t r0 = (size_t)s->expert_start[e], n = (size_t)s->expert_start[e + 1] - r0;
        if (n) expert_forward(s->y + r0 * C, s->h + r0 * Fi, s->a + r0 * a->F, s->xg + r0 * C, n, e, w, a);
    }
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *o = out + n * C;
        memset(o, 0, C * sizeof(float));
        for (int k = 0; k < a->topk; k++) {
            int r = s->slot[n * a->topk + k];
            float wt = s->weight[n * a->topk + k];
            if (r < 0 && isnan(wt))  // a NaN router weight: the token's output is NaN
                for (int c = 0; c < C; c++) o[c] = wt;
            if (r < 0) continue;
            const float *y = s->y + (size_t)r * C;
            for (int c = 0; c < C; c++) o[c] += wt * y[c];
        }
    }
    if (a->aux_coef > 0 && s->probs) {
        double f[MAX_EXPERTS];
        s->aux_loss = aux_loss(s, a, f);
    }
}

// --------------------------------------------------------------------------- backward
void ffn_backward(float *dx, const FfnGrads *g, const float *dout, const float *x,
                  const FfnActs *s, const FfnWeights *w, const FfnArgs *a, const FfnScratch *sc) {
    int C = a->C, K = a->topk, E = a->E, Fi = ffn_fc_rows(a);
    size_t N = a->N;
    if (!ffn_is_routed(a)) {
        expert_backward(dx, g, sc->dh, sc->da, dout, x, s->h, s->a, N, 0, w, a);
        return;
    }
    // combine: out_n = sum_k w_nk y_r  =>  dy_r = w_nk dout_n;  dw_nk = <dout_n, y_r>
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * C;
        for (int k = 0; k < K; k++) {
            int r = s->slot[n * K + k];
            float dot = 0.0f;
            if (r >= 0) {
                float wt = s->weight[n * K + k], *dy = sc->dy + (size_t)r * C;
                const float *y = s->y + (size_t)r * C;
                for (int c = 0; c < C; c++) dy[c] = wt * d[c], dot += d[c] * y[c];
            }
            sc->dweight[n * K + k] = dot;
        }
    }
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)s->expert_start[e], n = (size_t)s->expert_start[e + 1] - r0;
        if (n) expert_backward(sc->dxg + r0 * C, g, sc->dh + r0 * Fi, sc->da ? sc->da + r0 * a->F : NULL,
                               sc->dy + r0 * C, s->xg + r0 * C,
                               s->h + r0 * Fi, s->a + r0 * a->F, n, e, w, a);
    }
    // scatter: every token sums its own rows in choice order (deterministic, no atomics)
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *o = dx + n * C;
        memset(o, 0, C * sizeof(float));
        for (int k = 0; k < K; k++) {
            int r = s->slot[n * K + k];
            if (r < 0) continue;
            const float *d = sc->dxg + (size_t)r * C;
            for (int c = 0; c < C; c++) o[c] += d[c];
        }
    }
    if (!s->probs) return;  // hash router: constant weights
    // weights -> probabilities (top-1: w = p; top-2: w_i = p_i / (p_a + p_b)), plus the aux
    // loss, then through the softmax to the router logits.
    double f[MAX_EXPERTS] = {0};
    if (a->aux_coef > 0) {
        for (size_t n = 0; n < N; n++) f[s->choice[n * K]] += 1.0 / N;
    }
    float aux_scale = a->aux_coef * E * a->aux_grad_scale / (float)N;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *p = s->probs + n * E;
        float *dp = sc->dprobs + n * E;
        for (int e = 0; e < E; e++) dp[e] = aux_scale * (float)f[e];
        const int *ch = s->choice + n * K;
        const float *dw = sc->dweight + n * K;
        if (K == 1) {
            dp[ch[0]] += dw[0];
        } else {
            float pa = p[ch[0]], pb = p[ch[1]], z = pa + pb, z2 = z * z;
            dp[ch[0]] += dw[0] * pb / z2 - dw[1] * pb / z2;
            dp[ch[1]] += dw[1] * pa / z2 - dw[0] * pa / z2;
        }
        float dot = 0.0f;
        for (int e = 0; e < E; e++) dot += p[e] * dp[e];
        for (int e = 0; e < E; e++) dp[e] = p[e] * (dp[e] - dot);  // now d(logits)
    }
    matmul_backward(dx, g->router_w, NULL, sc->dprobs, x, w->router_w, N, C, E, 1, a->prec);
}
