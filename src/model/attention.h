// attention.h: causal multi-head attention with per-layer routing. Every routing mode is one
// row of the table in attention.c (which keys a query keeps, and how the gate enters); the
// forward and backward below read that row, so there is one attention code path for all modes.
//
// Per batch row b and head h (T x T matrices, i = query, j = key, visible iff j <= i):
//   S = q k^T / sqrt(hd)                       G = gq gk^T / sqrt(d_g)     s = sigmoid(G / tau)
//   dense        W = softmax(S)                 oracle     W = softmax(S | topk(S))
//   soft         W = softmax(S * s)             soft_prob  W = softmax(S) * s
//   hard         W = softmax(S | topk(G))       stochastic W = softmax(S | topk(fresh noise))
//   random_fixed W = softmax(S | topk(fixed noise per layer, head))
//   window       W = softmax(S | k most recent keys)
//   block        W = softmax(S | top-k_blocks blocks of G, plus the block_window most recent keys)
//   block_oracle W = softmax(S | top-k_blocks blocks of S, plus the block_window most recent keys)
//   expert_choice        W = softmax(S | i, j both among the top-k tokens of r) * sigmoid(r_i / tau)
//   expert_choice_causal W = softmax(S | i, j both among the top-k of r over 0..i) * sigmoid(r_i / tau)
// Block modes (NSA's selection branch, MoBA): keys in blocks of block_size positions; a block's
// score for query i is the max of the scores over its visible keys (max, not the mean of the
// pooled keys: one strongly relevant key makes its block relevant, and the score needs no
// extra parameters, so a learned, a frozen random and the oracle selection rank by the same rule).
// Expert-choice heads (MoSA): each head routes tokens, not pairs. Its router logit of token t is
// r_t = gk_t[h d_g], the first column of the head's gate keys (a linear router x W_r; the other
// gate columns and gq are unused in these modes, so a learned and a frozen random router are
// the gate's own kinds). The head picks the k tokens with the largest r; they attend among
// themselves by original position and the head's output at a chosen token is scaled by its
// router score (the router's gradient path); the others get no output from the head.
// expert_choice picks over the whole sequence, so whether token i is chosen depends on later
// tokens (not causal: training sees the future through the selection). expert_choice_causal
// picks, for query i, the top k of r over the prefix 0..i: query i is active iff it is among
// them, and keeps exactly those keys; nothing depends on tokens after i.
//   y = dropout(W) v, heads concatenated.
#ifndef ROUTELAB_ATTENTION_H
#define ROUTELAB_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"

// Attention routing modes; their behaviour is the table ROUTES in attention.c.
typedef enum {
    ATTN_DENSE, ATTN_ORACLE, ATTN_SOFT, ATTN_SOFT_PROB, ATTN_HARD, ATTN_STOCHASTIC,
    ATTN_RANDOM_FIXED, ATTN_WINDOW, ATTN_BLOCK, ATTN_BLOCK_ORACLE, ATTN_EXPERT_CHOICE,
    ATTN_EXPERT_CHOICE_CAUSAL, ATTN_NUM_MODES
} AttnMode;
typedef enum { TOPK_CAUSAL = 0, TOPK_ALL = 1 } TopkScope;
// Gate gradient of the ranking modes (hard, block). ste: the reference's straight-through
// estimator, dL/dM_ij = exp(S_ij - log Z_i) (dW_ij - sum_j' W_ij' dW_ij') with Z_i the kept keys'
// normaliser (unbounded for a dropped key that outscores the kept ones). ste_dense: the same with
// Z_i over every visible key, so exp(S_ij - log Z_i) is the dense weight P_ij <= 1 (bounded: the
// soft relaxation's gradient taken at the dense point). Rows with no kept key get 0 in both.
typedef enum { GATE_GRAD_NONE = 0, GATE_GRAD_STE = 1, GATE_GRAD_STE_DENSE = 2 } GateGrad;

const char *attn_mode_name(AttnMode m);
int attn_mode_parse(const char *s, AttnMode *out);  // 1 if known

// The attention plan: every layer's routing, resolved from the keys attn, k, gate, topk_scope,
// gate_grad. The model owns it; a deploy-time swap edits it (model_set_routing), and the
// strings a checkpoint stores are generated from it (attention_plan_write).
typedef struct {
    AttnMode mode[MAX_LAYERS];
    int k[MAX_LAYERS];            // keys kept per query (top-k modes, window)
    int gate_frozen[MAX_LAYERS];  // gate=random: frozen at init, never updated
    TopkScope scope;
    GateGrad gate_grad;
    int block_size, k_blocks, block_window;  // block modes: keys per block, blocks kept, window
} AttnPlan;

// Resolves the routing keys of c; dies with one line naming the key on a bad value.
void attention_plan_resolve(AttnPlan *p, const Config *c);
// Writes the plan back as the keys attn, k and gate of c.
void attention_plan_write(const AttnPlan *p, Config *c);

// How a mode picks the keys a query keeps.
typedef enum {
    KEEP_ALL_VISIBLE,   // every causal key
    KEEP_TOPK_SCORES,   // top-k of S (oracle)
    KEEP_TOPK_GATE,     // top-k of G (hard gate)
    KEEP_TOPK_FRESH,    // top-k of fresh uniform noise per forward pass (stochastic)
    KEEP_TOPK_FIXED,    // top-k of fixed uniform noise per (layer, head, query) (random_fixed)
    KEEP_WINDOW,        // the k most recent keys
    KEEP_BLOCKS_GATE,   // top k_blocks blocks by the max of G over the block, plus a window
    KEEP_BLOCKS_SCORES, // the same by S (block_oracle)
    KEEP_TOKENS,        // (i, j) iff both among the top-k tokens of the router r (expert_choice)
    KEEP_TOKENS_PREFIX, // (i, j) iff both among the top-k of r over 0..i (expert_choice_causal)
} KeepRule;

// How the gate's sigmoid enters the attention weights.
typedef enum {
    GATE_UNUSED,        // no gate
    GATE_ON_LOGITS,     // W = softmax(S * s)        (the paper's code)
    GATE_ON_PROBS,      // W = softmax(S) * s        (the paper's text), not renormalised;
                        //   the token modes' s is sigmoid(r_i / tau), the query's router score
    GATE_RANKS_ONLY,    // G ranks keys: no gradient (straight-through: gate_grad=ste, ste_dense)
} GateUse;

typedef struct {
    const char *name;
    KeepRule keep;
    GateUse gate;
    const char *formula;  // for --help and the README table
} RouteRule;

const RouteRule *route_rule(AttnMode m);
// The gate's sigmoid is in the differentiable graph (its weights can get a gradient).
int route_gate_in_graph(AttnMode m, GateGrad gg);
// The gate scores G must be computed in the forward pass.
int route_needs_gate(AttnMode m);
// The mode routes tokens by the router logit r (gk's first column per head), not pairs by G:
// gq is not read, and gate_q gets no gradient.
int route_routes_tokens(AttnMode m);

// Keep masks given by the caller instead of drawn by the mode: the one seam through which
// refcheck replays the reference's stochastic and random_fixed masks (PyTorch draws them with
// its own generator). Every command passes NULL.
typedef struct {
    const float *mask[MAX_LAYERS];  // layer l: 0/1, (B,NH,T,T) if per_batch[l], else (NH,T,T)
    int per_batch[MAX_LAYERS];
} KeepMasks;

// Everything one layer's attention needs. Buffers marked "saved" are kept for backward.
typedef struct {
    int B, T, C, NH, hd, dg;  // C = NH * hd: width of the head outputs; dg = gate width per head
    int NKV;                  // K/V heads (0 = NH); query head h reads K/V head h / (NH / NKV).
                              // qkv rows: NH q heads, NKV k heads, NKV v heads (C + 2 NKV hd)
    AttnMode mode;
    int k;
    int block_size, k_blocks, block_window;  // block modes
    TopkScope scope;
    GateGrad gate_grad;
    float tau;
    float dropout;            // on the attention weights (training only)
    uint64_t dropout_key;     // stateless mask key of this layer and forward pass
    uint64_t noise_key;       // stochastic / random_fixed noise key
    const float *given_keep;  // 0/1 keep masks given instead of drawn (see KeepMasks), or NULL:
    int given_keep_per_batch; //   (B,NH,T,T) if per_batch, else (NH,T,T)
    int nthreads;
    float *scratch;           // nthreads * attention_scratch_floats(T)
} AttnArgs;

size_t attention_scratch_floats(int T);

// Width of a qkv row: C + 2 * NKV * hd.
int attention_qkv_width(const AttnArgs *a);

// out (B,T,C) head outputs (before attn.proj); att (B,NH,T,T) saved weights W;
// aux_S (B,NH,T,T) saved S (soft, ste) or P (soft_prob), else NULL;
// aux_s (B,NH,T,T) saved sigmoid(G/tau) where the gate is in the graph, else NULL;
// lse (B,NH,T) saved log-normaliser of kept keys (ste), else NULL;
// qkv (B,T,QKV) with QKV = attention_qkv_width; gq, gk (B,T,NH*dg) gate projections (NULL when the mode needs no gate).
void attention_forward(float *out, float *att, float *aux_S, float *aux_s, float *lse,
                       const float *qkv, const float *gq, const float *gk, const AttnArgs *a);

// dqkv (B,T,QKV) overwritten (grouped K/V heads: the sum over their query heads); dgq, dgk (B,T,NH*dg) overwritten where the gate is in the graph;
// dout (B,T,C) gradient of the head outputs; the rest as saved by the forward.
void attention_backward(float *dqkv, float *dgq, float *dgk, const float *dout,
                        const float *qkv, const float *gq, const float *gk, const float *att,
                        const float *aux_S, const float *aux_s, const float *lse,
                        const AttnArgs *a);

// Helpers shared with diagnostics and distillation: one (b,h) score matrix.
// S (T,T) = q k^T / sqrt(hd) over all T x T entries.
void attention_scores(float *S, const float *qkv, int b, int h, const AttnArgs *a);
// G (T,T) = gq gk^T / sqrt(dg).
void attention_gate_scores(float *G, const float *gq, const float *gk, int b, int h,
                           const AttnArgs *a);
// keep (n) = 1 for the min(k, n) largest x[0..n); ties go to the lower index. pairs: scratch
// of 2n floats. Returns the number kept.
int topk_select(unsigned char *keep, const float *x, int n, int k, float *pairs);
// keep row i (T entries, 0 beyond i) under top-k of `row` with the given scope.
void topk_row(unsigned char *keep, const float *row, int i, int T, int k, TopkScope scope,
              float *pairs);

// r (T) router logits of (b,h): r_t = gk[(b T + t) NH dg + h dg] (the token modes).
void attention_router_logits(float *r, const float *gk, int b, int h, const AttnArgs *a);
// Keys query i of (b,h) keeps under the mode's keep rule: keep (T), zero beyond i. S, G: the
// (b,h) score and gate matrices (T,T); router (T) its router logits (token modes, else unread);
// noise (T), pairs (2T) scratch.
void attention_keep_row(unsigned char *keep, int i, int b, int h, const float *S, const float *G,
                        const float *router, float *noise, float *pairs, const AttnArgs *a);

#endif
