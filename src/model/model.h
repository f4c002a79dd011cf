// model.h: the pre-norm transformer of every family (family.h). Parameters, gradients, AdamW
// moments and activations live in flat buffers carved by size tables; forward/backward walk
// the blocks in order:
//   x = drop(wte[idx] [+ wpe])
//   block: x += attn.proj(Attn(rope(qk_norm(q)), rope(qk_norm(k)), v of norm1(x)))
//          x += drop(ffn(norm2(x)))
//   logits = norm_f(x) lm_head^T   (lm_head = wte when tie_embeddings)
#ifndef ROUTELAB_MODEL_H
#define ROUTELAB_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "config.h"
#include "ffn.h"
#include "freeze.h"
#include "params.h"
#include "plan.h"

// One block's saved activations (N = B*T rows).
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;  // (N,C), (N) (LayerNorm only), (N)
    float *qkv_pre;                    // (N,QKV) projection before the q/k norm, or NULL
    float *qk_rstd;                    // (N,NH+NKV) the q/k norm's 1/rms, or NULL
    float *qkv;                        // (N,QKV) q, k (normed, rotated), v; QKV = qkv_width
    float *gq, *gk;                    // (N,NH*dg) when the mode uses the gate, else NULL
    float *att;                        // (B,NH,T,T) attention weights W
    float *aux_S, *aux_s, *lse;        // see attention_forward; NULL when not needed
    float *atty;                       // (N,NH*hd) head outputs, concatenated
    float *res_att;                    // (N,C) residual after attention
    float *ln2, *ln2_mean, *ln2_rstd;  // (N,C), (N), (N)
    FfnActs ffn;                       // the FFN sublayer's (ffn.h)
    float *res_ffn;                    // (N,C) residual after the FFN: the block's output
} LayerActs;

typedef struct {
    Config cfg;                 // the spec: the keys as given (and as a checkpoint stores them)
    ModelPlan plan;             // what they resolve to: family, routing, FFNs, precision
    ParamTable table;
    float *params, *grads, *adam_m, *adam_v;  // flat, table.total floats each
    Weights w, g;                             // named views of params and grads
    unsigned char *trainable;                 // per tensor: handed to the optimizer
    unsigned char *gets_grad;                 // per tensor: trainable and on the loss's path
    Objective objective;                      // the loss gets_grad is for (model_set_trainable)
    unsigned char *trainable_override;        // per tensor, or NULL: trainable from cfg.train
    long *adam_t;                             // per tensor: AdamW steps taken (bias correction)

    // activations for the current (B, T) and modes
    int B, T;
    AttnMode act_modes[MAX_LAYERS];
    float *acts;
    int *iacts;                     // the integer activations (MoE routing)
    float *encoded;                 // (N,C)
    LayerActs layer[MAX_LAYERS];
    float *lnf, *lnf_mean, *lnf_rstd;  // (N,C), (N), (N)
    float *rope_cos, *rope_sin;     // (T, hd/2) rotary tables, or NULL
    float *logits;                  // (N,V); dlogits after backward
    float *losses;                  // (N) per-position NLL
    float *lse;                     // (N) per-position log-sum-exp of the logits
    int *inputs, *targets;          // (N)
    // backward scratch
    float *bwd;
    float *dres, *dln, *dtmp, *dgq, *dgk;  // (N,C) x3, (N,NH*dg) x2
    float *dqkv, *dqkv_pre, *datty;        // (N,QKV), (N,QKV) or NULL, (N,NH*hd)
    FfnScratch dffn;                // sized for the largest FFN sublayer
    float *attn_scratch;
    int nthreads;

    // state
    int training;                   // dropout on
    int blocks_only;                // forward stops after the last block (no logits, no loss)
    uint64_t forward_count;         // training forwards so far: keys dropout and fresh masks
    uint64_t eval_count;            // evaluation forwards since the last reset
    uint64_t stream;                // data-parallel rank: its own training dropout and mask
                                    // draws (0: a single process's, unchanged)
    uint64_t fwd_index;             // index of the last forward (backward reuses it)
    uint64_t fwd_key;               // its dropout key
    double loss;                    // mean loss of the last forward with targets (LM only)
    double aux_loss;                // sum over MoE layers of the load-balancing loss (added to
                                    // the objective, not to `loss`)
    size_t n_scored;
} Model;

// Builds the model for a config that passed config_resolve: resolves its plan (dies naming the
// key on a bad value), lays out the parameters and initialises them. Trainability: cfg.train
// for the LM loss.
void model_build(Model *m, const Config *c);
// The same, for a loader that fills the weights: only the gates and routers (routelab's own
// tensors, absent from a Hugging Face model) are initialised, as model_build does them; the
// rest stays zero (no time spent drawing a pretrained model's worth of random numbers).
void model_build_for_load(Model *m, const Config *c);
void model_build_init(Model *m, const Config *c, unsigned init_roles);  // roles: 1 << ParamRole
void model_free(Model *m);
// Changes routing modes / k (deploy-time swap) in the plan, and regenerates cfg's attn/k/gate
// keys from it; activations are re-laid out on the next forward; trainability is re-decided.
void model_set_routing(Model *m, const AttnMode *modes, const int *k);
// Decides which tensors train (cfg.train, or `override` per tensor when not NULL) and which get
// a gradient for `objective` (freeze_resolve, the one owner of both). model_build, the
// distillation command and refcheck call it; the choice holds across model_set_routing.
void model_set_trainable(Model *m, const unsigned char *override, Objective objective);
// inputs, targets (B,T), T <= seq_len; targets NULL: no loss. Returns the mean loss (or 0).
double model_forward(Model *m, const int *inputs, const int *targets, int B, int T);
// The same with keep masks given instead of drawn (see KeepMasks in attention.h; refcheck).
double model_forward_given(Model *m, const int *inputs, const int *targets, int B, int T,
                           const KeepMasks *given);
// Backward of the last forward's loss times grad_scale, accumulated into m->grads.
void model_backward(Model *m, float grad_scale);
// Zeroes the gradients of the tensors that get one; the others are never written and stay zero
// (so a frozen pretrained model's gradient buffer costs no memory).
void model_zero_grad(Model *m);
// AttnArgs / FfnArgs of layer l for the current shape (given: keep masks, or NULL).
AttnArgs model_attn_args(const Model *m, int l, const KeepMasks *given);
FfnArgs model_ffn_args(const Model *m, int l);
// Parameter counts, printed on start-up.
void model_print_summary(const Model *m, FILE *f);

#endif
