// freeze.h: which parameters train. Grammar of the `train` key (items joined by '+'):
//   all            every parameter            none        nothing (evaluation only)
//   gates          every gate (gate_q, gate_k) of every layer
//   embed          wte and wpe                head        ln_f (and lm_head when untied)
//   layers:LIST    everything in those blocks (LN, attention, gates, FFN)
//   attn:LIST      attention of those blocks (qkv, proj, and their gates)
//   mlp:LIST       FFN of those blocks        gates:LIST  gates of those blocks
//   top:N          the last N blocks (the absorption gradient: N unfrozen layers)
// LIST is comma separated indices or ranges, e.g. layers:0,3-5. Examples: "gates",
// "gates+top:2", "layers:4,5+head". Gates with gate=random stay frozen whatever the spec.
#ifndef ROUTELAB_FREEZE_H
#define ROUTELAB_FREEZE_H
#include "params.h"
#include "plan.h"

// What the gradients are for: the language-model loss (training, evaluation), or the gate
// distillation loss, which reaches every trainable gate whatever the routing mode.
typedef enum { OBJECTIVE_LM, OBJECTIVE_GATE_DISTILL } Objective;

// trainable (table count) gets 1 for every tensor the spec trains; gates with gate=random and
// random routers stay frozen whatever the spec; dies on a bad spec.
void freeze_apply(unsigned char *trainable, const ParamTable *t, const char *spec,
                  const ModelPlan *plan);

// The one owner of trainability. trainable = `override` (per tensor, taken as it is) or, when
// NULL, freeze_apply of the spec; gets_grad = trainable and on the objective's path (a gate is
// on the LM loss's path only where its layer's mode puts the gate in the differentiable graph).
void freeze_resolve(unsigned char *trainable, unsigned char *gets_grad, const ParamTable *t,
                    const char *spec, const ModelPlan *plan, const unsigned char *override,
                    Objective objective);

#endif
