// ops.c: see ops.h. Matrix products go through OpenBLAS; the elementwise ops are OpenMP loops
// written so that gcc vectorises them.
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "gemm_bf16.h"

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    size_t N, int C, int OC, Precision prec) {
    if (prec == PREC_BF16)
        gemm_bf16(0, 1, (int)N, OC, C, inp, C, weight, C, out, OC, 0);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, OC, C, 1.0f, inp, C, weight, C,
                    0.0f, out, OC);
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *o = out + n * OC;
        for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
}

void column_sum_accumulate(float *out, const float *x, size_t N, int C) {
    int nt = omp_get_max_threads();
    float *partial = xcalloc((size_t)nt * C, sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = N * t / team, hi = N * (t + 1) / team;
        float *p = partial + (size_t)t * C;
        for (size_t n = lo; n < hi; n++) {
            const float *row = x + n * C;
            for (int c = 0; c < C; c++) p[c] += row[c];
        }
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) out[c] += partial[(size_t)t * C + c];
    xfree(partial);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, size_t N, int C, int OC,
                     int accumulate_dinp, Precision prec) {
    if (prec == PREC_BF16) {
        if (dinp) gemm_bf16(0, 0, (int)N, C, OC, dout, OC, weight, C, dinp, C, accumulate_dinp);
        if (dweight) gemm_bf16(1, 0, OC, C, (int)N, dout, OC, inp, C, dweight, C, 1);
    } else {
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, C, OC, 1.0f, dout, OC,
                        weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
        if (dweight)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, (int)N, 1.0f, dout, OC, inp,
                        C, 1.0f, dweight, C);
    }
    if (dbias) column_sum_accumulate(dbias, dout, N, OC);
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, size_t N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float *o = out + n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, size_t N, int C) {
    int nt = omp_get_max_threads();
    float *partial = (dw || db) ? xcalloc((size_t)nt * 2 * C, sizeof(float)) : NULL;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = N * t / team, hi = N * (t + 1) / team;
        float *pdw = partial ? partial + (size_t)t * 2 * C : NULL, *pdb = pdw ? pdw + C : NULL;
        for (size_t n = lo; n < hi; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            float m = mean[n], s = rstd[n];
            // dxhat = dy * w; dx = s * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s, dxhat = dy[c] * w[c];
                sum_dxhat += dxhat;
                sum_dxhat_xhat += dxhat * xhat;
            }
            sum_dxhat /= C;
            sum_dxhat_xhat /= C;
            float *dx = dinp + n * C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                dx[c] += s * (dy[c] * w[c] - sum_dxhat - xhat * sum_dxhat_xhat);
                if (pdw) {
                    pdw[c] += dy[c] * xhat;
                    pdb[c] += dy[c];
                }
            }
        }
    }
    if (partial) {
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < C; c++) {
                if (dw) dw[c] += partial[(size_t)t * 2 * C + c];
                if (db) db[c] += partial[(size_t)t * 2 * C + C + c];
            }
        xfree(partial);
    }
}

// ----------------------------------------------------------------------------- RMSNorm
// One row: o = w * (x * r), r = 1 / sqrt(mean(x^2) + eps) (Hugging Face's order of products).
static inline float rms_row_forward(float *o, const float *x, const float *w, int D, float eps) {
    double ss = 0.0;
    for (int c = 0; c < D; c++) ss += (double)x[c] * x[c];
    float r = (float)(1.0 / sqrt(ss / D + (double)eps));
    for (int c = 0; c < D; c++) o[c] = w[c] * (x[c] * r);
    return r;
}

// One row: dx += r (w dy) - x r^3 mean(w dy x); dw += dy x r.
static inline void rms_row_backward(float *dx, float *dw, const float *dy, const float *x,
                                    const float *w, float r, int D) {
    double dot = 0.0;
    for (int c = 0; c < D; c++) dot += (double)w[c] * dy[c] * x[c];
    float k = (float)(dot / D) * r * r * r;
    for (int c = 0; c < D; c++) dx[c] += r * w[c] * dy[c] - k * x[c];
    if (dw)
        for (int c = 0; c < D; c++) dw[c] += dy[c] * (x[c] * r);
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) rstd[n] = rms_row_forward(out + n * C, inp + n * C, w, C, eps);
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, int C) {
    int nt = omp_get_max_threads();
    float *partial = dw ? xcalloc((size_t)nt * C, sizeof(float)) : NULL;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = N * t / team, hi = N * (t + 1) / team;
        float *pdw = partial ? partial + (size_t)t * C : NULL;
        for (size_t n = lo; n < hi; n++)
            rms_row_backward(dinp + n * C, pdw, dout + n * C, inp + n * C, w, rstd[n], C);
    }
    if (partial) {  // thread partials added in thread order: deterministic
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < C; c++) dw[c] += partial[(size_t)t * C + c];
        xfree(partial);
    }
}

void head_norm_forward(float *out, float *rstd, const float *inp, const float *wq, const float *wk,
                       size_t N, int NH, int NKV, int hd, int stride, float eps) {
    int heads = NH + NKV;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * stride;
        float *o = out + n * stride;
        for (int h = 0; h < heads; h++)
            rstd[n * heads + h] = rms_row_forward(o + (size_t)h * hd, x + (size_t)h * hd,
                                                  h < NH ? wq : wk, hd, eps);
        memcpy(o + (size_t)heads * hd, x + (size_t)heads * hd,
               (size_t)(stride - heads * hd) * sizeof(float));
    }
}

void head_norm_backward(float *dinp, float *dwq, float *dwk, const float *dout, const float *inp,
                        const float *wq, const float *wk, const float *rstd, size_t N, int NH,
                        int NKV, int hd, int stride) {
    int nt = omp_get_max_threads(), heads = NH + NKV;
    float *partial = dwq || dwk ? xcalloc((size_t)nt * 2 * hd, sizeof(float)) : NULL;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = N * t / team, hi = N * (t + 1) / team;
        float *pq = partial && dwq ? partial + (size_t)t * 2 * hd : NULL;
        float *pk = partial && dwk ? partial + (size_t)t * 2 * hd + hd : NULL;
        for (size_t n = lo; n < hi; n++) {
            const float *x = inp + n * stride, *dy = dout + n * stride;
            float *dx = dinp + n * stride;
            memset(dx, 0, (size_t)heads * hd * sizeof(float));
            for (int h = 0; h < heads; h++)
                rms_row_backward(dx + (size_t)h * hd, h < NH ? pq : pk, dy + (size_t)h * hd,
                                 x + (size_t)h * hd, h < NH ? wq : wk, rstd[n * heads + h], hd);
            memcpy(dx + (size_t)heads * hd, dy + (size_t)heads * hd,
                   (size_t)(stride - heads * hd) * sizeof(float));
        }
    }
    if (partial) {
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < hd; c++) {
                if (dwq) dwq[c] += partial[(size_t)t * 2 * hd + c];
                if (dwk) dwk[c] += partial[(size_t)t * 2 * hd + hd + c];
            }
        xfree(partial);
    }
}

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

// GELU and its slope at one point, exact (erf) or tanh-approximated; the plain FFN and the GEGLU
// gate share them.
static inline float gelu_value(float x, GeluKind kind) {
    if (kind == GELU_ERF) return 0.5f * x * (1.0f + erff(x * INV_SQRT_2));
    return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
}

static inline float gelu_slope(float x, GeluKind kind) {
    if (kind == GELU_ERF) {
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT_2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        return cdf + x * pdf;
    }
    float th = tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
    float sech2 = 1.0f - th * th;
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * du;
}

void gelu_forward(float *out, const float *inp, size_t n, GeluKind kind) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gelu_value(inp[i], kind);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, GeluKind kind) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_slope(inp[i], kind);
}

// The gate's activation (SwiGLU: silu; GEGLU: GELU), and with its derivative for backward.
static inline float glu_value(float g, int swish, GeluKind kind) {
    return swish ? g * (1.0f / (1.0f + expf(-g))) : gelu_value(g, kind);
}

static inline void glu_act(float g, int swish, GeluKind kind, float *v, float *dv) {
    if (swish) {
        float sg = 1.0f / (1.0f + expf(-g));
        *v = g * sg, *dv = sg * (1.0f + g * (1.0f - sg));
    } else {
        *v = gelu_value(g, kind), *dv = gelu_slope(g, kind);
    }
}

void glu_forward(float *out, const float *inp, size_t R, int F, int swish, GeluKind kind) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *g = inp + r * 2 * F, *u = g + F;
        float *o = out + r * F;
        for (int j = 0; j < F; j++) o[j] = glu_value(g[j], swish, kind) * u[j];
    }
}

void glu_backward(float *dinp, const float *inp, const float *dout, size_t R, int F, int swish,
                  GeluKind kind) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *g = inp + r * 2 * F, *u = g + F, *d = dout + r * F;
        float *dg = dinp + r * 2 * F, *du = dg + F, v, dv;
        for (int j = 0; j < F; j++) glu_act(g[j], swish, kind, &v, &dv), dg[j] = d[j] * u[j] * dv, du[j] = d[j] * v;
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void dropout_apply(float *x, size_t n, float p, unsigned long long key) {
    if (p <= 0.0f) return;
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    // a dropped element is x - x: +0 for finite x (as before), NaN for NaN or inf (propagates)
    for (size_t i = 0; i < n; i++) x[i] = hash_uniform(key, i) >= p ? x[i] * scale : x[i] - x[i];
}

double crossentropy_forward(float *losses, float *lse, size_t *n_scored, const float *logits,
                            const int *targets, size_t N, int V) {
    // Per-row NLL in parallel, then a serial sum: an OpenMP float reduction would add the
    // threads' partials in arrival order and break bit-identical reruns.
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        int t = targets[n];
        if (t < 0) {
            losses[n] = 0.0f;
            lse[n] = 0.0f;
            continue;
        }
        const float *z = logits + n * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        // float partial sums of 16 lanes, blocks of 1024 added in double: vectorised, and the
        // order is fixed (bit-identical reruns)
        double sum = 0.0;
        for (int v0 = 0; v0 < V; v0 += 1024) {
            float lane[16] = {0};
            int v1 = v0 + 1024 < V ? v0 + 1024 : V, v = v0;
            for (; v + 16 <= v1; v += 16)
                for (int l = 0; l < 16; l++) lane[l] += exp_nonpositive(z[v + l] - mx);
            for (; v < v1; v++) lane[0] += exp_nonpositive(z[v] - mx);
            for (int l = 0; l < 16; l++) sum += lane[l];
        }
        double row_lse = log(sum) + mx;
        lse[n] = (float)row_lse;
        losses[n] = (float)(row_lse - z[t]);
    }
    double total = 0.0;
    size_t scored = 0;
    for (size_t n = 0; n < N; n++)
        if (targets[n] >= 0) total += losses[n], scored++;
    *n_scored = scored;
    return total;
}

void crossentropy_backward(float *logits, const float *lse, const int *targets, size_t N, int V,
                           float scale) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *z = logits + n * V;
        int t = targets[n];
        if (t < 0) {
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        float shift = lse[n];
        for (int v = 0; v < V; v++) z[v] = exp_nonpositive(z[v] - shift) * scale;
        z[t] -= scale;
    }
}
