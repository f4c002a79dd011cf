// adamw.h: the optimizer and the learning-rate schedule (torch.optim.AdamW semantics).
#ifndef ROUTELAB_ADAMW_H
#define ROUTELAB_ADAMW_H
#include "model.h"

// Linear warmup over `warmup` steps, then cosine decay to lr * min_lr_ratio at `steps`.
float lr_at(const Config *c, int step);
// Global L2 norm of the gradients that exist (tensors that get a gradient).
double grad_norm(const Model *m);
// Scales the gradients so their norm is at most clip (0 = off); returns the norm before.
double grad_clip(Model *m, float clip);
// One AdamW update of every tensor that got a gradient: decay (matrices and embeddings only),
// moments, bias-corrected step. Tensors without a gradient are not touched at all.
void adamw_step(Model *m, float lr);

#endif
