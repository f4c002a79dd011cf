// adamw.c: see adamw.h.
#include "adamw.h"

#include <math.h>
#include <omp.h>

#include "common.h"

float lr_at(const Config *c, int step) {
    if (c->warmup > 0 && step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    float min_lr = c->lr * c->min_lr_ratio;
    int span = c->steps - c->warmup;
    if (span <= 0) return c->lr;
    float progress = (float)(step - c->warmup) / (float)span;
    if (progress > 1.0f) progress = 1.0f;
    return min_lr + 0.5f * (c->lr - min_lr) * (1.0f + cosf(3.14159265358979f * progress));
}

double grad_norm(const Model *m) {
    // Per-tensor sums in parallel blocks, added in a fixed order: deterministic.
    double total = 0.0;
    for (int i = 0; i < m->table.count; i++) {
        if (!m->gets_grad[i]) continue;
        const ParamInfo *p = &m->table.info[i];
        const float *g = m->grads + p->offset;
        size_t n = p->numel, blocks = (n + 4095) / 4096;
        double *part = xcalloc(blocks, sizeof(double));
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < blocks; b++) {
            size_t lo = b * 4096, hi = lo + 4096 < n ? lo + 4096 : n;
            float s = 0.0f;
            for (size_t j = lo; j < hi; j++) s += g[j] * g[j];
            part[b] = s;
        }
        for (size_t b = 0; b < blocks; b++) total += part[b];
        xfree(part);
    }
    return sqrt(total);
}

void die_if_diverged(const char *cmd, const char *what, double v, int step, const char *ckpt_path) {
    if (isfinite(v)) return;
    const char *text = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    if (ckpt_path && file_exists(ckpt_path))
        fatal("%s: %s is %s at step %d (diverged): the last good checkpoint %s is kept; lower "
              "--lr or check the data", cmd, what, text, step, ckpt_path);
    fatal("%s: %s is %s at step %d (diverged): no checkpoint was written; lower --lr or check "
          "the data", cmd, what, text, step);
}

int params_all_finite(const Model *m) {
    int ok = 1;
    size_t n = m->table.total;
#pragma omp parallel for schedule(static) reduction(&& : ok)
    for (size_t j = 0; j < n; j++) ok = ok && isfinite(m->params[j]);
    return ok;
}

double grad_clip(Model *m, float clip) {
    double norm = grad_norm(m);
    if (clip > 0.0f && norm > clip) {
        float s = (float)(clip / (norm + 1e-6));
        for (int i = 0; i < m->table.count; i++) {
            if (!m->gets_grad[i]) continue;
            float *g = m->grads + m->table.info[i].offset;
            size_t n = m->table.info[i].numel;
#pragma omp parallel for schedule(static)
            for (size_t j = 0; j < n; j++) g[j] *= s;
        }
    }
    return norm;
}

void adamw_step(Model *m, float lr) {
    const Config *c = &m->cfg;
    for (int i = 0; i < m->table.count; i++) {
        if (!m->gets_grad[i]) continue;
        const ParamInfo *p = &m->table.info[i];
        long t = ++m->adam_t[i];
        float *w = m->params + p->offset, *g = m->grads + p->offset;
        float *mm = m->adam_m + p->offset, *vv = m->adam_v + p->offset;
        float b1 = c->beta1, b2 = c->beta2, eps = c->adam_eps;
        float decay = p->ndim >= 2 ? 1.0f - lr * c->weight_decay : 1.0f;
        float step = lr / (1.0f - powf(b1, (float)t));
        float vcorr = 1.0f / sqrtf(1.0f - powf(b2, (float)t));
        size_t n = p->numel;
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < n; j++) {
            w[j] *= decay;
            mm[j] = b1 * mm[j] + (1.0f - b1) * g[j];
            vv[j] = b2 * vv[j] + (1.0f - b2) * g[j] * g[j];
            w[j] -= step * mm[j] / (sqrtf(vv[j]) * vcorr + eps);
        }
    }
}
