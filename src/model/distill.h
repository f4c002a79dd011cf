// distill.h: post-hoc gate distillation losses on a frozen model. Per layer, from the forward's
// S (teacher, no gradient) and G (student):
//   KL:  mean over (b,h,i) of sum_{j<=i} P_ij (log P_ij - log Q_ij), P = softmax_C(S), Q = softmax_C(G)
//   BCE: mean over visible (b,h,i,j) of BCE-with-logits(G_ij, topk(S, k, causal)_ij)
// The loss is the mean over layers; only the gate matrices receive gradient.
#ifndef ROUTELAB_DISTILL_H
#define ROUTELAB_DISTILL_H
#include "model.h"

typedef enum { DISTILL_KL, DISTILL_BCE } DistillKind;

// Parses "kl" / "bce" (also "distill_kl" / "distill_bce"); dies naming the value otherwise.
DistillKind distill_kind_parse(const char *s);
// Runs the model forward on inputs (B,T) (logits kept), computes the loss (per_layer may be
// NULL) and, when do_backward, accumulates the gates' gradients (of tensors that get one).
double distill_forward_backward(Model *m, const int *inputs, int B, int T, const char *kind,
                                int k, int do_backward);
double distill_loss(Model *m, const int *inputs, int B, int T, DistillKind kind, int k,
                    int do_backward, double *per_layer);

#endif
