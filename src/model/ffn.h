// ffn.h: the feed-forward sublayer in all its forms: a plain FFN (GELU, SwiGLU, GEGLU) and a
// mixture of experts with a learned, frozen-random or hash router. A plain FFN is the E = 1
// case without a router; every expert is itself a plain FFN.
//   plain:  y = proj(drop(act(fc(x))))                act: GELU(h) | silu(g)*u | GELU(g)*u
//   MoE:    y_n = sum over the chosen experts e of  w_{n,e} * expert_e(x_n)
// Routing (token choice): the router picks the top_experts experts per token; each expert takes
// at most `capacity` tokens (capacity_factor * N * top_experts / E, rounded up; 0 = no limit),
// first choices of all tokens before second choices, in token order; a token over capacity is
// dropped by that expert (it passes through the residual). Dispatch buckets tokens by expert:
// one GEMM per expert, no atomics, deterministic.
//   weights: learned/random router: top-1 w = p_e (Switch); top-2 w = p_e / (p_e1 + p_e2).
//            hash router: expert = hash(token id, seed) mod E, w = 1 (top-2: a second distinct
//            hashed expert, w = 1/2 each).
//   aux loss (Switch): aux_coef * E * sum_e f_e * P_e, f_e = share of tokens whose first
//            choice is e, P_e = mean router probability of e; its gradient flows through P.
#ifndef ROUTELAB_FFN_H
#define ROUTELAB_FFN_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ops.h"

#define MAX_EXPERTS 64

// The activation of a plain FFN or of each expert, and the router of a routed one.
typedef enum { FFN_ACT_GELU, FFN_ACT_SWIGLU, FFN_ACT_GEGLU } FfnAct;
typedef enum { ROUTER_NONE, ROUTER_LEARNED, ROUTER_RANDOM, ROUTER_HASH } RouterKind;

// The FFN plan: every layer's sublayer, resolved from the keys ffn, expert, n_expert,
// d_expert, top_experts, router, moe_dense_control, gelu, d_ff.
typedef struct {
    FfnAct act[MAX_LAYERS];        // activation of the FFN / of each expert
    int experts[MAX_LAYERS];       // E (1 = a plain FFN)
    int width[MAX_LAYERS];         // hidden width of the FFN / of each expert
    RouterKind router[MAX_LAYERS]; // ROUTER_NONE for a plain FFN
    GeluKind gelu;
} FfnPlan;

// Resolves the FFN keys of c; dies with one line naming the key on a bad value. ffn=dense is
// the model family's own FFN, family_act (GELU for gpt).
void ffn_plan_resolve(FfnPlan *p, const Config *c, FfnAct family_act);
const char *ffn_act_name(FfnAct a);      // gelu | swiglu | geglu
const char *router_name(RouterKind r);   // "" | learned | random | hash

typedef struct {
    size_t N;             // rows (B*T)
    int C;                // model width
    int E;                // experts (1 and router NONE: a plain FFN)
    int F;                // hidden width of each expert (GLU: width of the product)
    int topk;             // experts per token (1 or 2)
    FfnAct act;
    GeluKind gelu;
    RouterKind router;
    Precision prec;       // of the expert and router products
    float capacity_factor;
    float aux_coef;
    float aux_grad_scale;  // backward: the scale of the loss gradient (grad accumulation)
    const int *tokens;     // (N) token ids, for the hash router
    uint64_t hash_seed;
    float dropout;         // on the activation (inverted, stateless; see ops.h)
    uint64_t dropout_key;
} FfnArgs;

typedef struct {
    const float *fc_w, *fc_b;      // (E*Fi, C), (E*Fi); Fi = F, or 2F for GLU (gate rows first)
    const float *proj_w, *proj_b;  // (E*C, F), (E*C)
    const float *router_w;         // (E, C) or NULL
} FfnWeights;

typedef struct {
    float *fc_w, *fc_b, *proj_w, *proj_b, *router_w;  // NULL: no gradient wanted
} FfnGrads;

// Saved activations of one sublayer. R = rows dispatched to experts = N*topk (N when plain).
typedef struct {
    float *h;           // (R, Fi) pre-activations
    float *a;           // (R, F) activations (after dropout)
    float *xg;          // (R, C) gathered inputs (routed only)
    float *y;           // (R, C) expert outputs before weighting (routed only)
    float *probs;       // (N, E) router probabilities (learned/random router)
    float *weight;      // (N, topk) combine weights (routed only)
    int *choice;        // (N, topk) chosen experts
    int *slot;          // (N, topk) row of each choice in the expert buffers, -1 = dropped
    int *row_token;     // (R) token of each row, rows grouped by expert
    int *expert_start;  // (E+1) first row of each expert
    // statistics of the last forward
    double aux_loss;        // un-scaled by nothing: aux_coef * E * sum f P
    double router_entropy;  // mean over tokens of H(p) / log E (learned/random)
    double dropped;         // share of the N*topk choices dropped by capacity
    float util[MAX_EXPERTS];// share of dispatched rows per expert
} FfnActs;

// Scratch for backward: (R, Fi) + (R, F) + 2 (R, C) + (N, topk) + (N, E) floats.
typedef struct {
    float *dh, *da, *dy, *dxg, *dweight, *dprobs;
} FfnScratch;

static inline int ffn_is_routed(const FfnArgs *a) { return a->router != ROUTER_NONE; }
static inline int ffn_fc_rows(const FfnArgs *a) { return a->act == FFN_ACT_GELU ? a->F : 2 * a->F; }
static inline size_t ffn_rows(const FfnArgs *a) { return ffn_is_routed(a) ? a->N * (size_t)a->topk : a->N; }

// Activation and scratch sizes in floats (ints are carved from the same buffers).
typedef enum { FA_H, FA_A, FA_XG, FA_Y, FA_PROBS, FA_WEIGHT, FA_CHOICE, FA_SLOT, FA_ROW_TOKEN,
               FA_EXPERT_START, FA_COUNT } FfnActSlot;
void ffn_act_sizes(const FfnArgs *a, size_t sizes[FA_COUNT]);
typedef enum { FS_DH, FS_DA, FS_DY, FS_DXG, FS_DWEIGHT, FS_DPROBS, FS_COUNT } FfnScratchSlot;
void ffn_scratch_sizes(const FfnArgs *a, size_t sizes[FS_COUNT]);

// out (N,C) = the sublayer applied to x (N,C) (overwritten). Fills acts and its statistics.
void ffn_forward(float *out, FfnActs *acts, const float *x, const FfnWeights *w, const FfnArgs *a);
// dx (N,C) overwritten; parameter gradients accumulated (+=); dout (N,C) is the gradient of the
// sublayer's output; the aux loss's gradient (scaled by aux_grad_scale) is added.
void ffn_backward(float *dx, const FfnGrads *g, const float *dout, const float *x,
                  const FfnActs *acts, const FfnWeights *w, const FfnArgs *a, const FfnScratch *s);

#endif
