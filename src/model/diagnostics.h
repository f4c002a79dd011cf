// diagnostics.h: the per-layer quantities that expose routing absorption, computed from the
// last forward pass (each layer's S and G of that forward; P = the dense causal softmax of S,
// whatever the layer's mode):
//   topk_mass      mean over (b,h,i) of the mass of P_i's min(k, i+1) largest entries
//   entropy_ratio  mean over (b,h,i >= 1) of H(P_i) / log(i+1)
//   gate_precision / recall / f1: micro over visible (b,h,i,j) of topk(G) vs topk(S), causal
//   kept_fraction  kept visible entries / visible entries under the layer's mode
//   empty_rows     (b,h,i) rows that keep no key
//   gate_grad_norm sqrt(|dW_gq|^2 + |dW_gk|^2), 0 where the gate has no gradient
#ifndef ROUTELAB_DIAGNOSTICS_H
#define ROUTELAB_DIAGNOSTICS_H
#include <stdio.h>

#include "json_out.h"
#include "model.h"

typedef struct {
    double topk_mass, entropy_ratio, gate_precision, gate_recall, gate_f1, kept_fraction;
    long empty_rows;
    double gate_grad_norm;
} LayerDiag;

// Fills diag[0..n_layer) from the model's last forward (and its gradients, if any).
void diagnostics_compute(LayerDiag *diag, const Model *m);
// The same when the last forward had keep masks given (model_forward_given).
void diagnostics_compute_given(LayerDiag *diag, const Model *m, const KeepMasks *given);
// Gate gradient norms only (cheap; after backward).
void diagnostics_gate_grad_norms(LayerDiag *diag, const Model *m);
// Adds "key": [l0, l1, ...] arrays to obj (json_out.h), for metrics.jsonl and --json.
void diagnostics_add_json(cJSON *obj, const LayerDiag *diag, int n_layer);
// MoE layers of the last forward, when the model has any (else nothing): adds
// "aux_loss": x, "router_entropy": [..], "expert_util": [[..], ..], "dropped": [..]
// with null for plain FFN layers. router_entropy is H(p) / log E, mean over tokens (null for
// hash routers); expert_util is each expert's share of the dispatched rows; dropped is the
// share of token choices over capacity.
void diagnostics_add_moe_json(cJSON *obj, const Model *m);

#endif
