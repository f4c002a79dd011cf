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

typedef struct {
    int n_layer;
    const ModelFamily *family;
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
