// attn_ref.h: an independent double-precision attention forward (and straight-through gate
// gradient) in plain loops, with its own copy of the README's mode table, for the checks of
// test_grad_attention.c (one attention call) and test_grad_model.c (a whole model's hard layer).
#ifndef ROUTELAB_ATTN_REF_H
#define ROUTELAB_ATTN_REF_H
#include "grad_check.h"

typedef struct {
    AttnArgs a;
    float *qkv, *gq, *gk, *out, *att, *auxS, *auxs, *lse, *r;
    unsigned char *base;   // kept pattern (att != 0) of the unperturbed forward
    int check_pattern;
} AttnCtx;

typedef struct {
    AttnMode mode;
    int k;
    TopkScope scope;
    GateGrad gg;
    float tau, dropout;
    int B, T, NH, hd, dg;
    int feed;                 // 1: mask_feed (NH,T,T), 2: mask_feed per batch (B,NH,T,T)
    const char *label;
    int nkv;                  // K/V heads (0 = NH): query head h reads K/V head h / (NH / nkv)
    int bs, kb, win;          // block modes: block size, blocks kept, window
} AttnCase;

// Brute-force top-k of x (n): keep the min(k, n) best by (value desc, index asc).
static inline void brute_topk(unsigned char *keep, const double *x, int n, int k) {
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
static inline double topk_gap(const double *x, int n, int k) {
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

static inline double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

// The README's mode table, written out here so the reference does not read the library's.
typedef enum { R_ALL, R_TOPK_S, R_TOPK_G, R_FRESH, R_FIXED, R_WINDOW, R_BLOCKS_G, R_BLOCKS_S,
               R_TOKENS, R_TOKENS_PREFIX } RefKeep;
static inline RefKeep ref_keep(AttnMode m) {
    switch (m) {
    case ATTN_ORACLE: return R_TOPK_S;
    case ATTN_HARD: return R_TOPK_G;
    case ATTN_STOCHASTIC: return R_FRESH;
    case ATTN_RANDOM_FIXED: return R_FIXED;
    case ATTN_WINDOW: return R_WINDOW;
    case ATTN_BLOCK: return R_BLOCKS_G;
    case ATTN_BLOCK_ORACLE: return R_BLOCKS_S;
    case ATTN_EXPERT_CHOICE: return R_TOKENS;
    case ATTN_EXPERT_CHOICE_CAUSAL: return R_TOKENS_PREFIX;
    default: return R_ALL;  // dense, soft, soft_prob
    }
}
static inline int ref_needs_gate(AttnMode m) {
    return m == ATTN_SOFT || m == ATTN_SOFT_PROB || m == ATTN_HARD || m == ATTN_BLOCK ||
           m == ATTN_EXPERT_CHOICE || m == ATTN_EXPERT_CHOICE_CAUSAL;
}
// Expert-choice heads: the router logit of token t in head h is gk's column h * dg.
static inline int ref_routes_tokens(AttnMode m) {
    return m == ATTN_EXPERT_CHOICE || m == ATTN_EXPERT_CHOICE_CAUSAL;
}
static inline int ref_gate_in_graph(AttnMode m, GateGrad gg) {
    return m == ATTN_SOFT || m == ATTN_SOFT_PROB || ref_routes_tokens(m) ||
           ((m == ATTN_HARD || m == ATTN_BLOCK) && gg != GATE_GRAD_NONE);
}

// Independent double-precision forward (and the STE gate gradient) in plain loops. keep_in: the
// kept pattern to use for stochastic / random_fixed / fed masks (the others are computed here).
// Writes W (B,NH,T,T), y (B,T,C); with dgq, dgk non-NULL the STE gate gradient (B,T,NH*dg) for
// dout r. *near_tie: rows whose top-k boundary gap is too small to call.
static inline void attn_reference(double *W, double *y, double *dgq, double *dgk, const AttnCtx *x,
                           const AttnCase *cs, const unsigned char *keep_in, int *near_tie) {
    const AttnArgs *a = &x->a;
    int B = a->B, T = a->T, C = a->C, NH = a->NH, hd = a->hd, dg = a->dg, GW = NH * dg;
    int NKV = cs->nkv ? cs->nkv : NH, QW = C + 2 * NKV * hd;  // qkv rows: q heads, k heads, v heads
    RefKeep rk = ref_keep(a->mode);
    double S[64 * 64], G[64 * 64], Z[64], Zd[64], dW[64], rho[64];
    unsigned char keep[64 * 64];
    *near_tie = 0;
    if (dgq) memset(dgq, 0, (size_t)B * T * GW * sizeof(double));
    if (dgk) memset(dgk, 0, (size_t)B * T * GW * sizeof(double));
    memset(y, 0, (size_t)B * T * C * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t bh = (size_t)b * NH + h;
            size_t kc = (size_t)C + (size_t)(h / (NH / NKV)) * hd, vc = kc + (size_t)NKV * hd;
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double s = 0, g = 0;
                    for (int d = 0; d < hd; d++)
                        s += (double)x->qkv[((size_t)b * T + i) * QW + h * hd + d] *
                             x->qkv[((size_t)b * T + j) * QW + kc + d];
                    S[i * T + j] = s / sqrt((double)hd);
                    if (x->gq) {
                        for (int d = 0; d < dg; d++)
                            g += (double)x->gq[((size_t)b * T + i) * GW + h * dg + d] *
                                 x->gk[((size_t)b * T + j) * GW + h * dg + d];
                        G[i * T + j] = g / sqrt((double)dg);
                    }
                }
            for (int t = 0; t < T && x->gk; t++) rho[t] = x->gk[((size_t)b * T + t) * GW + h * dg];
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
                case R_BLOCKS_G:
                case R_BLOCKS_S: {  // blocks of bs keys scored by their max visible score
                    const double *x = (rk == R_BLOCKS_G ? G : S) + i * T;
                    double score[64];
                    unsigned char chosen[64];
                    int nb = 0;
                    for (int j0 = 0; j0 <= i; j0 += cs->bs, nb++) {
                        score[nb] = -INFINITY;
                        for (int j = j0; j < j0 + cs->bs && j <= i; j++) score[nb] = fmax(score[nb], x[j]);
                    }
                    brute_topk(chosen, score, nb, cs->kb);
                    if (topk_gap(score, nb, cs->kb) < 1e-4) (*near_tie)++;
                    for (int j = 0; j < T; j++)
                        kr[j] = j <= i && (chosen[j / cs->bs] || j >= i - cs->win + 1);
                    break;
                }
                case R_TOKENS:          // both among the head's top-k tokens (of all T, or of 0..i)
                case R_TOKENS_PREFIX: {
                    int n = rk == R_TOKENS ? T : i + 1;
                    unsigned char chosen[64];
                    brute_topk(chosen, rho, n, a->k);
                    if (topk_gap(rho, n, a->k) < 1e-4) (*near_tie)++;
                    for (int j = 0; j < T; j++) kr[j] = j <= i && chosen[i] && chosen[j];
                    break;
                }
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
                    if (ref_routes_tokens(a->mode)) w[j] *= sigm(rho[i] / a->tau);
                }
                Z[i] = sum > 0 ? mx + log(sum) : -INFINITY;  // log-normaliser of the kept keys
                double md = -INFINITY, sd = 0;               // ... and of every visible key
                for (int j = 0; j <= i; j++) md = fmax(md, S[i * T + j]);
                for (int j = 0; j <= i; j++) sd += exp(S[i * T + j] - md);
                Zd[i] = md + log(sd);
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        acc += w[j] * x->qkv[((size_t)b * T + j) * QW + vc + d];
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
                                 x->qkv[((size_t)b * T + j) * QW + vc + d];
                    dot += w[j] * dW[j];
                }
                for (int j = 0; j <= i; j++) {
                    if (isinf(Z[i])) continue;  // empty row: no gradient
                    double lz = a->gate_grad == GATE_GRAD_STE_DENSE ? Zd[i] : Z[i];  // ste_dense
                    double dM = exp(S[i * T + j] - lz) * (dW[j] - dot);
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
#endif
