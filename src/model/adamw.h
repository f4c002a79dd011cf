// adamw.h: the optimizer and the learning-rate schedule (torch.optim.AdamW semantics).
#ifndef ROUTELAB_ADAMW_H
#define ROUTELAB_ADAMW_H
#include "model.h"

// Linear warmup over `warmup` steps, then cosine decay to lr * min_lr_ratio at `steps`.
float lr_at(const Config *c, int step);
// Global L2 norm of the gradients that exist (tensors that get a gradient).
double grad_norm(const Model *m);
// Dies with the one-line divergence error when v (the loss, the gradient norm, ...) is NaN or
// infinite at optimizer step `step` (1-based): "CMD: WHAT is nan at step S (diverged): the last
// good checkpoint PATH is kept; ...". Call it BEFORE the optimizer applies the step, so the
// last checkpoint written stays the last good one. ckpt_path NULL or absent: none was written.
void die_if_diverged(const char *cmd, const char *what, double v, int step, const char *ckpt_path);
// 1 when every parameter is finite (checked before a checkpoint is written).
int params_all_finite(const Model *m);
// Scales the gradients so their norm is at most clip (0 = off); returns the norm before.
double grad_clip(Model *m, float clip);
// One AdamW update of every tensor that got a gradient: decay (matrices and embeddings only),
// moments, bias-corrected step. Tensors without a gradient are not touched at all.
void adamw_step(Model *m, float lr);

#endif
