// params.h: the parameter table. Parameters, gradients and both AdamW moments are flat float
// buffers with one layout, carved into named tensors by this table (in the reference's
// canonical order, so names and files match ../shared/ref one to one).
#ifndef ROUTELAB_PARAMS_H
#define ROUTELAB_PARAMS_H
#include <stddef.h>

#include "config.h"
#include "plan.h"

typedef enum {
    ROLE_EMBED,     // wte, wpe
    ROLE_LN,        // ln1, ln2 (per layer)
    ROLE_ATTN,      // qkv, proj weights and biases, q/k norms
    ROLE_GATE,      // gate_q, gate_k
    ROLE_MLP,       // fc, proj (of every expert)
    ROLE_ROUTER,    // the MoE router
    ROLE_HEAD,      // ln_f, lm_head
} ParamRole;

typedef struct {
    char name[64];   // e.g. "blocks.0.attn.qkv.weight"
    size_t offset;   // in floats, into the flat buffer
    size_t numel;
    int ndim;        // 1 or 2; AdamW decays ndim >= 2 only
    int shape[2];
    int layer;       // -1 for wte, wpe, ln_f, lm_head
    ParamRole role;
} ParamInfo;

// Pointers into one flat buffer (parameters, or gradients: same layout).
typedef struct {
    float *ln1_w, *ln1_b;      // (d), (d) or NULL (RMSNorm has no bias)
    float *qkv_w, *qkv_b;      // (QKV, d), (QKV) or NULL; QKV = (n_head + 2 n_kv_head) head_dim
    float *q_norm, *k_norm;    // (head_dim) each, or NULL: the family's per-head q/k norm
    float *proj_w, *proj_b;    // (d, n_head head_dim), (d) or NULL
    float *gate_q, *gate_k;    // (H*g, d) each
    float *ln2_w, *ln2_b;      // (d), (d)
    float *router_w;           // (E, d) or NULL (no router: plain FFN, hash router)
    float *fc_w, *fc_b;        // (E*Fi, d), (E*Fi) or NULL; Fi = F, or 2F for GLU
    float *fcproj_w, *fcproj_b;// (E*d, F), (E*d) or NULL (biases: mlp_bias)
} LayerWeights;

typedef struct {
    float *wte;      // (V, d)
    float *wpe;      // (T, d)
    LayerWeights layer[MAX_LAYERS];
    float *lnf_w, *lnf_b;  // (d), (d)
    float *lm_head;  // (V, d): wte itself when tie_embeddings
} Weights;

typedef struct {
    ParamInfo *info;
    int count;
    size_t total;    // floats
} ParamTable;

// The tensors of a model: which exist follows the family (positions, norm biases), the keys
// (attn_bias, tie_embeddings) and the FFN plan.
void param_table_build(ParamTable *t, const Config *c, const ModelPlan *plan);
void param_table_free(ParamTable *t);
const ParamInfo *param_find(const ParamTable *t, const char *name);
// Carves a flat buffer laid out by the table into named pointers.
void weights_carve(Weights *w, const ParamTable *t, const Config *c, float *base);
// N(0, init_std) for matrices and embeddings, gates from their own seed, zero biases, LN 1.
void params_init(float *params, const ParamTable *t, const Config *c);
// The same for the tensors whose role bit (1 << ParamRole) is in `roles`; the gates and
// routers come out as params_init makes them (their own random streams).
void params_init_roles(float *params, const ParamTable *t, const Config *c, unsigned roles);
// Unique parameters, and the paper's count (a tied matrix counted twice); gate parameters.
void params_count(const ParamTable *t, const Config *c, size_t *unique, size_t *paper,
                  size_t *gates);

#endif
