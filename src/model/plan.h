// plan.h: the model plan, resolved once from the config (the spec) by the modules that own each
// concept, and owned by the model:
//   family     the block structure (family.h)
//   attn       every layer's routing (attention.h)
//   ffn        every layer's FFN or mixture of experts (ffn.h)
//   precision  of the large matrix products (ops.h)
//   ablate     sublayer outputs replaced by their mean (evaluation only)
// A deploy-time change of routing edits the plan; model_plan_write regenerates the config
// strings a checkpoint stores from it, so the two cannot disagree.
#ifndef ROUTELAB_PLAN_H
#define ROUTELAB_PLAN_H

#include "attention.h"
#include "config.h"
#include "family.h"
#include "ffn.h"
#include "ops.h"

// Rotary positions: inverse frequencies of the head_dim/2 rotated pairs (RoPE), after scaling.
typedef enum { ROPE_SCALING_NONE, ROPE_SCALING_LLAMA3 } RopeScaling;

// The attention shapes and biases of the family and keys (the same for every layer):
// the fused qkv projection's rows are the q heads, then the k heads, then the v heads.
typedef struct {
    int n_head, n_kv_head, head_dim;   // query heads, K/V heads (grouped), width of one head
    int q_width, kv_width, qkv_width;  // n_head*head_dim, n_kv_head*head_dim, q + 2 kv
    int qkv_bias, o_bias, mlp_bias, norm_bias;
    RopeScaling rope_scaling;
} ShapePlan;

typedef struct {
    int n_layer;
    const ModelFamily *family;
    ShapePlan shape;
    AttnPlan attn;
    FfnPlan ffn;
    Precision precision;
    unsigned char ablate_attn[MAX_LAYERS], ablate_ffn[MAX_LAYERS];
} ModelPlan;

// Resolves every plan of c (c must have passed config_resolve); dies with one line naming the
// key on a bad value.
void model_plan_resolve(ModelPlan *p, const Config *c);
// Writes the plan's routing back into c's keys (attn, k, gate).
void model_plan_write(const ModelPlan *p, Config *c);

#endif
