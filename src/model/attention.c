// attention.c: the routing table and the one attention kernel that reads it. Read top to
// bottom: the table, top-k selection, the per-row forward (keep rule, then gate use), the
// per-row backward, and the (batch, head) loops around them.
#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"

// ----------------------------------------------------------------------------- the table
static const RouteRule ROUTES[ATTN_NUM_MODES] = {
    [ATTN_DENSE] = {"dense", KEEP_ALL_VISIBLE, GATE_UNUSED, "softmax(S)"},
    [ATTN_ORACLE] = {"oracle", KEEP_TOPK_SCORES, GATE_UNUSED, "softmax(S | top-k of S)"},
    [ATTN_SOFT] = {"soft", KEEP_ALL_VISIBLE, GATE_ON_LOGITS, "softmax(S * sigmoid(G/tau))"},
    [ATTN_SOFT_PROB] = {"soft_prob", KEEP_ALL_VISIBLE, GATE_ON_PROBS,
                        "softmax(S) * sigmoid(G/tau), not renormalised"},
    [ATTN_HARD] = {"hard", KEEP_TOPK_GATE, GATE_RANKS_ONLY, "softmax(S | top-k of G)"},
    [ATTN_STOCHASTIC] = {"stochastic", KEEP_TOPK_FRESH, GATE_UNUSED,
                         "softmax(S | top-k of fresh uniform noise)"},
    [ATTN_RANDOM_FIXED] = {"random_fixed", KEEP_TOPK_FIXED, GATE_UNUSED,
                           "softmax(S | top-k of fixed noise per layer, head, query)"},
    [ATTN_WINDOW] = {"window", KEEP_WINDOW, GATE_UNUSED, "softmax(S | keys i-k+1..i)"},
    [ATTN_BLOCK] = {"block", KEEP_BLOCKS_GATE, GATE_RANKS_ONLY,
                    "softmax(S | top-k_blocks blocks by max of G, plus a window)"},
    [ATTN_BLOCK_ORACLE] = {"block_oracle", KEEP_BLOCKS_SCORES, GATE_UNUSED,
                           "softmax(S | top-k_blocks blocks by max of S, plus a window)"},
    [ATTN_EXPERT_CHOICE] = {"expert_choice", KEEP_TOKENS, GATE_ON_PROBS,
                            "softmax(S | i, j in the top-k tokens of r) * sigmoid(r_i/tau)"},
    [ATTN_EXPERT_CHOICE_CAUSAL] = {"expert_choice_causal", KEEP_TOKENS_PREFIX, GATE_ON_PROBS,
                                   "softmax(S | i, j in the top-k of r over 0..i) * sigmoid(r_i/tau)"},
};

const RouteRule *route_rule(AttnMode m) {
    ASSERT(m >= 0 && m < ATTN_NUM_MODES);
    return &ROUTES[m];
}

const char *attn_mode_name(AttnMode m) { return m < ATTN_NUM_MODES ? ROUTES[m].name : "?"; }

int attn_mode_parse(const char *s, AttnMode *out) {
    for (int i = 0; i < ATTN_NUM_MODES; i++)
        if (!strcmp(s, ROUTES[i].name)) return *out = (AttnMode)i, 1;
    return 0;
}

// ----------------------------------------------------------------------------- the plan
void attention_plan_resolve(AttnPlan *p, const Config *c) {
    memset(p, 0, sizeof *p);
    if (!strcmp(c->topk_scope, "causal")) p->scope = TOPK_CAUSAL;
    else if (!strcmp(c->topk_scope, "all")) p->scope = TOPK_ALL;
    else fatal("key 'topk_scope' must be causal or all, got '%s'", c->topk_scope);
    if (!strcmp(c->gate_grad, "none")) p->gate_grad = GATE_GRAD_NONE;
    else if (!strcmp(c->gate_grad, "ste")) p->gate_grad = GATE_GRAD_STE;
    else if (!strcmp(c->gate_grad, "ste_dense")) p->gate_grad = GATE_GRAD_STE_DENSE;
    else fatal("key 'gate_grad' must be none, ste or ste_dense, got '%s'", c->gate_grad);
    char vals[MAX_LAYERS][LAYER_VALUE_LEN];
    config_per_layer(c, "attn", c->attn, vals);
    for (int l = 0; l < c->n_layer; l++)
        if (!attn_mode_parse(vals[l], &p->mode[l]))
            fatal("key 'attn': unknown mode '%s' (dense, oracle, soft, soft_prob, hard, "
                  "stochastic, random_fixed, window, block, block_oracle, expert_choice, "
                  "expert_choice_causal)", vals[l]);
    config_per_layer(c, "k", c->k, vals);
    for (int l = 0; l < c->n_layer; l++) {
        char *end;
        long v = strtol(vals[l], &end, 10);
        if (!vals[l][0] || *end || v < 1 || v > 1 << 30)
            fatal("key 'k': expected a positive integer per layer, got '%s'", vals[l]);
        p->k[l] = (int)v;
    }
    config_per_layer(c, "gate", c->gate, vals);
    for (int l = 0; l < c->n_layer; l++) {
        if (!strcmp(vals[l], "learned")) p->gate_frozen[l] = 0;
        else if (!strcmp(vals[l], "random")) p->gate_frozen[l] = 1;
        else fatal("key 'gate': expected learned or random, got '%s'", vals[l]);
    }
    p->block_size = c->block_size;
    p->k_blocks = c->k_blocks;
    p->block_window = c->block_window;
    for (int l = 0; l < c->n_layer; l++) {
        KeepRule keep = ROUTES[p->mode[l]].keep;
        if ((keep == KEEP_BLOCKS_GATE || keep == KEEP_BLOCKS_SCORES) && p->scope == TOPK_ALL)
            fatal("key 'topk_scope': 'all' is not defined for the block modes (layer %d is %s: "
                  "blocks rank the keys a query sees); use topk_scope=causal", l,
                  ROUTES[p->mode[l]].name);
        if ((keep == KEEP_TOKENS || keep == KEEP_TOKENS_PREFIX) && p->scope == TOPK_ALL)
            fatal("key 'topk_scope': 'all' is not defined for the expert-choice modes (layer %d "
                  "is %s: the head ranks tokens, expert_choice over the whole sequence already); "
                  "use topk_scope=causal", l, ROUTES[p->mode[l]].name);
    }
}

void attention_plan_write(const AttnPlan *p, Config *c) {
    int L = c->n_layer;
    const char *modes[MAX_LAYERS], *gates[MAX_LAYERS];
    char kbuf[MAX_LAYERS][16];
    const char *ks[MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        modes[l] = attn_mode_name(p->mode[l]);
        gates[l] = p->gate_frozen[l] ? "random" : "learned";
        snprintf(kbuf[l], sizeof kbuf[l], "%d", p->k[l]);
        ks[l] = kbuf[l];
    }
    config_set_per_layer(c, "attn", modes, L);
    config_set_per_layer(c, "k", ks, L);
    config_set_per_layer(c, "gate", gates, L);
}

int route_needs_gate(AttnMode m) { return ROUTES[m].gate != GATE_UNUSED; }

int route_routes_tokens(AttnMode m) {
    return ROUTES[m].keep == KEEP_TOKENS || ROUTES[m].keep == KEEP_TOKENS_PREFIX;
}

int route_gate_in_graph(AttnMode m, GateGrad gg) {
    GateUse g = ROUTES[m].gate;
    return g == GATE_ON_LOGITS || g == GATE_ON_PROBS || (g == GATE_RANKS_ONLY && gg != GATE_GRAD_NONE);
}

// ----------------------------------------------------------------------------- top-k
typedef struct {
    float value;
    int index;
} Ranked;

// Strict total order: larger value first, then lower index (deterministic ties). NaN ranks
// first, above +inf (as torch.topk orders it): a NaN score or gate is kept, so it reaches the
// weights and propagates instead of being routed around.
static inline int ranks_before(Ranked a, Ranked b) {
    int an = isnan(a.value), bn = isnan(b.value);
    if (an != bn) return an;
    if (!an && a.value != b.value) return a.value > b.value;
    return a.index < b.index;
}

// Quickselect: afterwards r[0..k) holds the k best (in any order).
static void select_best(Ranked *r, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        // median of three as pivot, moved to hi
        if (ranks_before(r[mid], r[lo])) { Ranked t = r[mid]; r[mid] = r[lo]; r[lo] = t; }
        if (ranks_before(r[hi], r[lo])) { Ranked t = r[hi]; r[hi] = r[lo]; r[lo] = t; }
        if (ranks_before(r[mid], r[hi])) { Ranked t = r[mid]; r[mid] = r[hi]; r[hi] = t; }
        Ranked pivot = r[hi];
        int store = lo;
        for (int i = lo; i < hi; i++)
            if (ranks_before(r[i], pivot)) { Ranked t = r[i]; r[i] = r[store]; r[store] = t; store++; }
        Ranked t = r[store]; r[store] = r[hi]; r[hi] = t;
        if (store == k - 1 || store == k) return;
        if (store < k) lo = store + 1;
        else hi = store - 1;
    }
}

int topk_select(unsigned char *keep, const float *x, int n, int k, float *pairs) {
    if (k >= n) {
        memset(keep, 1, (size_t)n);
        return n;
    }
    Ranked *r = (Ranked *)pairs;
    for (int j = 0; j < n; j++) r[j] = (Ranked){x[j], j};
    select_best(r, n, k);
    memset(keep, 0, (size_t)n);
    for (int j = 0; j < k; j++) keep[r[j].index] = 1;
    return k;
}

void topk_row(unsigned char *keep, const float *row, int i, int T, int k, TopkScope scope,
              float *pairs) {
    if (scope == TOPK_CAUSAL) {
        topk_select(keep, row, i + 1, k, pairs);
        memset(keep + i + 1, 0, (size_t)(T - i - 1));
    } else {  // the paper's code: rank all T keys, then drop the future ones
        topk_select(keep, row, T, k, pairs);
        memset(keep + i + 1, 0, (size_t)(T - i - 1));
    }
}

// ----------------------------------------------------------------------------- scores
size_t attention_scratch_floats(int T) {
    // S, G, dW, dropped W (T x T each), top-k pairs (2T), noise row (T), router logits (T),
    // keep row (T bytes)
    return 4 * (size_t)T * T + 2 * (size_t)T + (size_t)T + (size_t)T + (size_t)T + 64;
}

// Grouped K/V heads: query head h reads K/V head h / (NH / NKV). Columns of a qkv row.
static inline int n_kv_heads(const AttnArgs *a) { return a->NKV ? a->NKV : a->NH; }
int attention_qkv_width(const AttnArgs *a) { return a->C + 2 * n_kv_heads(a) * a->hd; }
static inline size_t q_col(const AttnArgs *a, int h) { return (size_t)h * a->hd; }
static inline size_t k_col(const AttnArgs *a, int h) {
    return (size_t)a->C + (size_t)(h / (a->NH / n_kv_heads(a))) * a->hd;
}
static inline size_t v_col(const AttnArgs *a, int h) {
    return k_col(a, h) + (size_t)n_kv_heads(a) * a->hd;
}

void attention_scores(float *S, const float *qkv, int b, int h, const AttnArgs *a) {
    int T = a->T, hd = a->hd, W = attention_qkv_width(a);
    const float *row0 = qkv + (size_t)b * T * W;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f / sqrtf((float)hd),
                row0 + q_col(a, h), W, row0 + k_col(a, h), W, 0.0f, S, T);
}

void attention_gate_scores(float *G, const float *gq, const float *gk, int b, int h,
                           const AttnArgs *a) {
    int T = a->T, W = a->NH * a->dg;
    const float *q = gq + (size_t)b * T * W + h * a->dg;
    const float *k = gk + (size_t)b * T * W + h * a->dg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, a->dg, 1.0f / sqrtf((float)a->dg),
                q, W, k, W, 0.0f, G, T);
}

void attention_router_logits(float *r, const float *gk, int b, int h, const AttnArgs *a) {
    size_t W = (size_t)a->NH * a->dg;
    const float *col = gk + (size_t)b * a->T * W + (size_t)h * a->dg;
    for (int t = 0; t < a->T; t++) r[t] = col[(size_t)t * W];
}

// sigmoid(x), branch-free so that loops over it vectorise (exp of -|x| never overflows).
static inline float sigmoid_vec(float x) {
    float neg = (float)(x < 0.0f), t = exp_nonpositive(-fabsf(x));
    return (1.0f - neg + neg * t) / (1.0f + t);
}

// Keys query i keeps (keep[0..T), zero beyond i), by the mode's keep rule.
void attention_keep_row(unsigned char *keep, int i, int b, int h, const float *S, const float *G,
                        const float *router, float *noise, float *pairs, const AttnArgs *a) {
    int T = a->T;
    const RouteRule *r = route_rule(a->mode);
    if (a->given_keep) {
        const float *m = a->given_keep +
                         ((size_t)(a->given_keep_per_batch ? b * a->NH + h : h) * T + i) * T;
        for (int j = 0; j < T; j++) keep[j] = j <= i && m[j] > 0.5f;
        return;
    }
    switch (r->keep) {
    case KEEP_ALL_VISIBLE:
        for (int j = 0; j < T; j++) keep[j] = j <= i;
        break;
    case KEEP_TOPK_SCORES: topk_row(keep, S + (size_t)i * T, i, T, a->k, a->scope, pairs); break;
    case KEEP_TOPK_GATE: topk_row(keep, G + (size_t)i * T, i, T, a->k, a->scope, pairs); break;
    case KEEP_TOPK_FRESH:
    case KEEP_TOPK_FIXED: {
        // Fresh noise is keyed by the forward pass (noise_key) and the batch row; fixed noise
        // only by layer and head, so it is the same for every batch row and step.
        uint64_t key = r->keep == KEEP_TOPK_FRESH ? hash64(a->noise_key, (uint64_t)b * a->NH + h)
                                                  : hash64(a->noise_key, (uint64_t)h);
        // Indexed by (i, j), not i*T + j, so a shorter sequence sees the same noise.
        for (int j = 0; j < T; j++) noise[j] = hash_uniform(key, ((uint64_t)i << 32) | (uint64_t)j);
        topk_row(keep, noise, i, T, a->k, a->scope, pairs);
        break;
    }
    case KEEP_WINDOW:
        for (int j = 0; j < T; j++) keep[j] = j <= i && j >= i - a->k + 1;
        break;
    case KEEP_BLOCKS_GATE:
    case KEEP_BLOCKS_SCORES: {
        const float *x = (r->keep == KEEP_BLOCKS_GATE ? G : S) + (size_t)i * T;
        int bs = a->block_size, nb = i / bs + 1;  // blocks holding a visible key
        float *score = noise;                     // (nb) block scores
        for (int blk = 0; blk < nb; blk++) {
            int end = blk * bs + bs - 1 < i ? blk * bs + bs - 1 : i;
            float m = -INFINITY;
            for (int j = blk * bs; j <= end; j++) {
                if (isnan(x[j])) { m = x[j]; break; }  // NaN ranks first: never routed around
                if (x[j] > m) m = x[j];
            }
            score[blk] = m;
        }
        topk_select(keep, score, nb, a->k_blocks, pairs);  // keep[0..nb): the chosen blocks
        // Expand in place from the last key down: keep[j / bs] (j / bs <= j) is still a block flag.
        for (int j = i; j >= 0; j--) keep[j] = keep[j / bs] || j > i - a->block_window;
        memset(keep + i + 1, 0, (size_t)(T - i - 1));
        break;
    }
    case KEEP_TOKENS:         // the head's k tokens of the whole row (NaN ranks first)
    case KEEP_TOKENS_PREFIX: {  // the head's k tokens among 0..i: nothing after i is read
        int n = r->keep == KEEP_TOKENS ? T : i + 1;
        topk_select(keep, router, n, a->k, pairs);
        int active = keep[i];  // a query the head did not pick gets no output from it
        memset(keep + i + 1, 0, (size_t)(T - i - 1));
        if (!active) memset(keep, 0, (size_t)i + 1);
        break;
    }
    }
}

// ----------------------------------------------------------------------------- forward
typedef struct {
    float *S, *G, *dW, *Wd, *pairs, *noise, *router;
    unsigned char *keep;
} Scratch;

static Scratch scratch_of(const AttnArgs *a, int thread) {
    size_t TT = (size_t)a->T * a->T;
    float *base = a->scratch + (size_t)thread * attention_scratch_floats(a->T);
    Scratch s = {base, base + TT, base + 2 * TT, base + 3 * TT, base + 4 * TT,
                 base + 4 * TT + 2 * a->T, NULL, NULL};
    s.router = s.noise + a->T;
    s.keep = (unsigned char *)(s.router + a->T);
    return s;
}

// Attention weights of row i (W[0..T)), given the kept keys; saves what backward needs.
static void weights_row(float *W, float *saveS, float *saves, float *lse, const float *S,
                        const float *G, const unsigned char *keep, int i, const AttnArgs *a) {
    int T = a->T;
    GateUse use = route_rule(a->mode)->gate;
    int ste = use == GATE_RANKS_ONLY && a->gate_grad != GATE_GRAD_NONE;
    float mx = -INFINITY, inv_tau = 1.0f / a->tau;
    if (use == GATE_ON_LOGITS)
        for (int j = 0; j <= i; j++) saves[j] = sigmoid_vec(G[j] * inv_tau);
    int poisoned = 0;  // a NaN visible score or kept logit: the row is NaN, never "no kept key"
    for (int j = 0; j <= i; j++) {
        float z = 0.0f;  // every visible entry is written: the exp loop below reads them all
        if (keep[j]) {
            z = use == GATE_ON_LOGITS ? S[j] * saves[j] : S[j];
            mx = z > mx ? z : mx;
            poisoned |= isnan(z);
        }
        poisoned |= isnan(S[j]);
        W[j] = z;
    }
    memset(W + i + 1, 0, (size_t)(T - i - 1) * sizeof(float));
    float sum = 0.0f;
    if (poisoned) {
        sum = NAN;
    } else if (mx > -INFINITY) {
        // Branch-free so gcc vectorises it: a dropped key's exponent is 0 (its W is 0 and
        // finite) and its weight is multiplied by 0. Partial sums in 16 lanes, fixed order.
        float lane[16] = {0};
        int j = 0;
        for (; j + 16 <= i + 1; j += 16)
            for (int l = 0; l < 16; l++) {
                float kf = (float)keep[j + l];
                float w = exp_nonpositive((W[j + l] - mx) * kf) * kf;
                W[j + l] = w;
                lane[l] += w;
            }
        for (; j <= i; j++) {
            float kf = (float)keep[j];
            W[j] = exp_nonpositive((W[j] - mx) * kf) * kf;
            lane[0] += W[j];
        }
        for (int l = 0; l < 16; l++) sum += lane[l];
    }
    if (sum > 0.0f) {  // a row with no kept key (topk_scope=all) stays all zero
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) W[j] *= inv;
    } else if (isnan(sum)) {  // NaN score, or +inf (inf - inf): every visible weight is NaN
        for (int j = 0; j <= i; j++) W[j] = sum;
    }
    if (use == GATE_ON_LOGITS) {
        memcpy(saveS, S, (size_t)T * sizeof(float));
    } else if (use == GATE_ON_PROBS) {
        memcpy(saveS, W, (size_t)T * sizeof(float));  // P, the dense causal softmax
        for (int j = 0; j <= i; j++) {
            saves[j] = sigmoid_vec(G[j] * inv_tau);
            W[j] *= saves[j];
        }
    } else if (ste) {
        memcpy(saveS, S, (size_t)T * sizeof(float));
        for (int j = 0; j <= i; j++) saves[j] = sigmoid_vec(G[j] * inv_tau);
        *lse = sum > 0.0f ? mx + logf(sum) : isnan(sum) ? sum : -INFINITY;
        if (a->gate_grad == GATE_GRAD_STE_DENSE && sum > 0.0f) {  // Z over every visible key
            float m = -INFINITY;
            double z = 0.0;
            for (int j = 0; j <= i; j++) m = S[j] > m ? S[j] : m;
            for (int j = 0; j <= i; j++) z += exp((double)S[j] - m);
            *lse = m + (float)log(z);
        }
    }
}

// Writes the dropped-out weights of one (b,h) block into Wd (or returns W when no dropout).
static const float *dropped_weights(float *Wd, const float *W, size_t block, const AttnArgs *a) {
    if (a->dropout <= 0.0f) return W;
    size_t TT = (size_t)a->T * a->T;
    float scale = 1.0f / (1.0f - a->dropout);
    for (size_t e = 0; e < TT; e++)
        Wd[e] = hash_uniform(a->dropout_key, block * TT + e) >= a->dropout ? W[e] * scale
                                                                           : W[e] - W[e];
    return Wd;
}

void attention_forward(float *out, float *att, float *aux_S, float *aux_s, float *lse,
                       const float *qkv, const float *gq, const float *gk, const AttnArgs *a) {
    int B = a->B, T = a->T, C = a->C, NH = a->NH, hd = a->hd, QW = attention_qkv_width(a);
    size_t TT = (size_t)T * T;
    int needs_gate = route_needs_gate(a->mode), tokens = route_routes_tokens(a->mode);
    ASSERT(!needs_gate || (gq && gk));
#pragma omp parallel for schedule(static) num_threads(a->nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        Scratch s = scratch_of(a, omp_get_thread_num());
        attention_scores(s.S, qkv, b, h, a);
        if (tokens) {  // G_ij = r_i: the gate-on-probabilities path scales row i by sigmoid(r_i)
            attention_router_logits(s.router, gk, b, h, a);
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) s.G[(size_t)i * T + j] = s.router[i];
        } else if (needs_gate) {
            attention_gate_scores(s.G, gq, gk, b, h, a);
        }
        float *W = att + (size_t)bh * TT;
        for (int i = 0; i < T; i++) {
            size_t row = (size_t)bh * TT + (size_t)i * T;
            attention_keep_row(s.keep, i, b, h, s.S, s.G, s.router, s.noise, s.pairs, a);
            weights_row(W + (size_t)i * T, aux_S ? aux_S + row : NULL, aux_s ? aux_s + row : NULL,
                        lse ? lse + (size_t)bh * T + i : NULL, s.S + (size_t)i * T,
                        needs_gate ? s.G + (size_t)i * T : NULL, s.keep, i, a);
        }
        const float *Wd = dropped_weights(s.Wd, W, (size_t)bh, a);
        const float *v = qkv + (size_t)b * T * QW + v_col(a, h);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, Wd, T, v, QW,
                    0.0f, out + (size_t)b * T * C + h * hd, C);
    }
}

// ----------------------------------------------------------------------------- backward
// Row i: turns dW (gradient at the weights, in place) into dS, and writes ds (the gradient at
// the gate's sigmoid, converted to dG) where the gate is in the graph.
static void backward_row(float *dS, float *dG, const float *W, const float *savedS,
                         const float *saveds, float lse, int i, const AttnArgs *a) {
    int T = a->T;
    GateUse use = route_rule(a->mode)->gate;
    int ste = use == GATE_RANKS_ONLY && a->gate_grad != GATE_GRAD_NONE;
    if (use == GATE_ON_PROBS) {
        // W = P * s: dP = dW s, ds = dW P; then softmax backward with P.
        const float *P = savedS;
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) {
            float dP = dS[j] * saveds[j];
            dG[j] = dS[j] * P[j];
            dS[j] = dP;
            dot += P[j] * dP;
        }
        for (int j = 0; j <= i; j++) dS[j] = P[j] * (dS[j] - dot);
    } else {
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += W[j] * dS[j];
        if (ste) {  // dL/dM = exp(S - lse) (dW - dot) on visible keys of non-empty rows
            for (int j = 0; j <= i; j++)
                dG[j] = isinf(lse) ? 0.0f : expf(savedS[j] - lse) * (dS[j] - dot);
        }
        for (int j = 0; j <= i; j++) dS[j] = W[j] * (dS[j] - dot);  // dZ
        if (use == GATE_ON_LOGITS) {  // Z = S * s: dS = dZ s, ds = dZ S
            for (int j = 0; j <= i; j++) {
                dG[j] = dS[j] * savedS[j];
                dS[j] *= saveds[j];
            }
        }
    }
    for (int j = i + 1; j < T; j++) dS[j] = 0.0f;
    if (dG) {
        for (int j = 0; j <= i; j++) dG[j] *= saveds[j] * (1.0f - saveds[j]) / a->tau;  // sigmoid'
        for (int j = i + 1; j < T; j++) dG[j] = 0.0f;
    }
}

void attention_backward(float *dqkv, float *dgq, float *dgk, const float *dout,
                        const float *qkv, const float *gq, const float *gk, const float *att,
                        const float *aux_S, const float *aux_s, const float *lse,
                        const AttnArgs *a) {
    int B = a->B, T = a->T, C = a->C, NH = a->NH, hd = a->hd, dg = a->dg, GW = NH * dg;
    int QW = attention_qkv_width(a), NKV = n_kv_heads(a), rep = NH / NKV;
    size_t TT = (size_t)T * T;
    int gate_grad = route_gate_in_graph(a->mode, a->gate_grad);
    ASSERT(!gate_grad || (dgq && dgk && aux_s));
    float scale = 1.0f / sqrtf((float)hd), gscale = 1.0f / sqrtf((float)dg);
    // One task per (batch row, K/V head): its query heads run in order and add their dk, dv
    // into the shared K/V head (no race, a fixed order: deterministic).
#pragma omp parallel for schedule(static) num_threads(a->nthreads)
    for (int bg = 0; bg < B * NKV; bg++) {
        int b = bg / NKV, g = bg % NKV;
        Scratch s = scratch_of(a, omp_get_thread_num());
        for (int r = 0; r < rep; r++) {
            int h = g * rep + r, bh = b * NH + h;
            float beta = r ? 1.0f : 0.0f;  // the group's first query head overwrites dk, dv
            const float *W = att + (size_t)bh * TT;
            const float *Wd = dropped_weights(s.Wd, W, (size_t)bh, a);
            const float *row0 = qkv + (size_t)b * T * QW;
            const float *q = row0 + q_col(a, h), *k = row0 + k_col(a, h), *v = row0 + v_col(a, h);
            float *drow0 = dqkv + (size_t)b * T * QW;
            float *dq = drow0 + q_col(a, h), *dk = drow0 + k_col(a, h), *dv = drow0 + v_col(a, h);
            const float *dy = dout + (size_t)b * T * C + h * hd;
            // dv += Wd^T dy ; dW = dy v^T (then through the dropout mask)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, Wd, T, dy, C, beta,
                        dv, QW);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, C, v, QW,
                        0.0f, s.dW, T);
            if (a->dropout > 0.0f) {
                float ds = 1.0f / (1.0f - a->dropout);
                for (size_t e = 0; e < TT; e++)
                    s.dW[e] = hash_uniform(a->dropout_key, (size_t)bh * TT + e) >= a->dropout
                                  ? s.dW[e] * ds : s.dW[e] - s.dW[e];
            }
            for (int i = 0; i < T; i++) {
                size_t row = (size_t)bh * TT + (size_t)i * T;
                backward_row(s.dW + (size_t)i * T, gate_grad ? s.G + (size_t)i * T : NULL, W + (size_t)i * T,
                             aux_S ? aux_S + row : NULL, aux_s ? aux_s + row : NULL,
                             lse ? lse[(size_t)bh * T + i] : 0.0f, i, a);
            }
            // S = q k^T * scale: dq = dS k * scale, dk += dS^T q * scale
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, s.dW, T, k, QW,
                        0.0f, dq, QW);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, s.dW, T, q, QW,
                        beta, dk, QW);
            if (gate_grad && route_routes_tokens(a->mode)) {
                // G_ij = r_i: dr_i is row i's sum; r is gk's first column, gq is not read
                float *dgqh = dgq + (size_t)b * T * GW + h * dg, *dgkh = dgk + (size_t)b * T * GW + h * dg;
                for (int i = 0; i < T; i++) {
                    float sum = 0.0f;
                    for (int j = 0; j <= i; j++) sum += s.G[(size_t)i * T + j];
                    memset(dgqh + (size_t)i * GW, 0, (size_t)dg * sizeof(float));
                    memset(dgkh + (size_t)i * GW, 0, (size_t)dg * sizeof(float));
                    dgkh[(size_t)i * GW] = sum;
                }
            } else if (gate_grad) {  // G = gq gk^T * gscale (one gate per query head)
                const float *gqh = gq + (size_t)b * T * GW + h * dg, *gkh = gk + (size_t)b * T * GW + h * dg;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dg, T, gscale, s.G, T, gkh,
                            GW, 0.0f, dgq + (size_t)b * T * GW + h * dg, GW);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dg, T, gscale, s.G, T, gqh,
                            GW, 0.0f, dgk + (size_t)b * T * GW + h * dg, GW);
            }
        }
    }
}
