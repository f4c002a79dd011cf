// ops.h: the dense building blocks of the transformer, each a forward/backward pair.
// Glossary: N = rows (B*T), C = input features, OC = output features, V = vocabulary.
// Arguments go outputs first, then inputs, then weights, then sizes. Backward functions
// ACCUMULATE (+=) into parameter gradients, so micro-batches add up; a NULL parameter gradient
// means "frozen: skip its product". Input gradients are overwritten unless stated.
#ifndef ROUTELAB_OPS_H
#define ROUTELAB_OPS_H
#include <stddef.h>

#include <stdint.h>

typedef enum { GELU_ERF = 0, GELU_TANH = 1 } GeluKind;

// Precision of a matmul product, passed with every call (no global switch): fp32 (OpenBLAS
// sgemm), or bf16 operands with fp32 accumulation (gemm_bf16.h). The model plan holds it.
typedef enum { PREC_FP32 = 0, PREC_BF16 = 1 } Precision;

// out = inp W^T + b.  out (N,OC), inp (N,C), weight (OC,C), bias (OC) or NULL
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    size_t N, int C, int OC, Precision prec);
// dinp (N,C) = dout W (accumulated when accumulate_dinp, skipped when dinp is NULL);
// dweight (OC,C) += dout^T inp; dbias (OC) += column sums of dout.
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, size_t N, int C, int OC,
                     int accumulate_dinp, Precision prec);

// LayerNorm over C with biased variance. out (N,C), mean (N), rstd (N), inp (N,C), w,b (C)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, size_t N, int C, float eps);
// dinp (N,C) += ...; dw, db (C) += ... (NULL when frozen)
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, size_t N, int C);

// RMSNorm over C (Llama, Qwen): out = w * (x / sqrt(mean(x^2) + eps)), no bias; the mean of
// squares is accumulated in double. out (N,C), rstd (N), inp (N,C), w (C)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, int C,
                     float eps);
// dinp (N,C) += ...; dw (C) += ... (NULL when frozen)
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, int C);

// Per-head RMSNorm of q and k inside fused qkv rows (Qwen3's q_norm / k_norm, before the
// rotation): each row of `stride` floats holds NH q heads, then NKV k heads (then the v heads,
// copied unchanged), each of width hd. out, inp (N,stride); rstd (N,NH+NKV); wq, wk (hd)
void head_norm_forward(float *out, float *rstd, const float *inp, const float *wq, const float *wk,
                       size_t N, int NH, int NKV, int hd, int stride, float eps);
// dinp (N,stride) overwritten (the v part copied from dout); dwq, dwk (hd) += ... (NULL: frozen)
void head_norm_backward(float *dinp, float *dwq, float *dwk, const float *dout, const float *inp,
                        const float *wq, const float *wk, const float *rstd, size_t N, int NH,
                        int NKV, int hd, int stride);

// out (n) = GELU(inp (n)); dinp (n) = dout * GELU'(inp) (overwritten; may alias dout)
void gelu_forward(float *out, const float *inp, size_t n, GeluKind kind);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, GeluKind kind);

// Gated linear units over rows: inp (R, 2F) = [g | u] per row, out (R, F) = act(g) * u with
// act = silu (SwiGLU) or GELU of the given kind (GEGLU). Backward: dinp (R, 2F) overwritten.
void glu_forward(float *out, const float *inp, size_t R, int F, int swish, GeluKind kind);
void glu_backward(float *dinp, const float *inp, const float *dout, size_t R, int F, int swish,
                  GeluKind kind);

// out (n) = a + b
void residual_forward(float *out, const float *a, const float *b, size_t n);

// Inverted dropout with a stateless mask: element i is kept iff hash_uniform(key, i) >= p,
// so backward regenerates the same mask from (key, i) without storing it. In place.
void dropout_apply(float *x, size_t n, float p, unsigned long long key);

// exp(x) for x <= 0, written so that gcc vectorises loops over it (libm's expf is scalar
// without -ffast-math): Cephes' range reduction and degree-6 polynomial, within 1 ulp of expf
// on [-87, 0]; results below 2^-126 (x < -87.3) flush to 0. Branch-free on purpose: a
// comparison-select on floats stops the vectoriser. |x| is first clamped to 104 on the bits
// (an integer min), so -inf and huge negatives give 0, never an out-of-range conversion.
// NaN (and +inf) come back unchanged, by an integer select at the end (vectorises, and leaves
// every finite result bit-identical): a diverged value propagates, it is never read as 0.
static inline float exp_nonpositive(float x) {
    int xb;
    __builtin_memcpy(&xb, &x, sizeof xb);
    int x0 = xb, mag = xb & 0x7fffffff;
    int special = -((mag > 0x7f800000) | (x0 == 0x7f800000));  // all ones for NaN or +inf
    mag = mag < 0x42D00000 ? mag : 0x42D00000;  // 104.0f
    xb = (int)((unsigned)xb & 0x80000000u) | mag;
    __builtin_memcpy(&x, &xb, sizeof x);
    float y = x * 1.44269504088896341f + 0.5f;
    int ni = (int)y;
    ni -= (float)ni > y;  // floor(y): truncation and a fix-up (floorf does not vectorise)
    float n = (float)ni;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int e = ni + 127;
    e &= -(e > 0);  // below 2^-126: exponent 0, so 2^n reads as 0
    int bits = (int)((unsigned)e << 23);  // unsigned: e reaches 277 for the NaN/+inf lane, whose
                                          // result is replaced below (no signed overflow)
    float two_n;
    __builtin_memcpy(&two_n, &bits, sizeof two_n);  // 2^n by a bit cast
    float res = p * two_n;
    int rb;
    __builtin_memcpy(&rb, &res, sizeof rb);
    rb = (rb & ~special) | (x0 & special);
    __builtin_memcpy(&res, &rb, sizeof res);
    return res;
}

// Cross-entropy with ignore index. losses (N): per-position NLL (0 where ignored); lse (N): each
// row's log-sum-exp, saved so backward needs one pass over V; returns the sum of NLL over scored
// positions and *n_scored. logits (N,V), targets (N), -1 = ignore.
double crossentropy_forward(float *losses, float *lse, size_t *n_scored, const float *logits,
                            const int *targets, size_t N, int V);
// In place: logits (N,V) become dlogits = (softmax - onehot) * scale, softmax = exp(z - lse);
// ignored rows 0.
void crossentropy_backward(float *logits, const float *lse, const int *targets, size_t N, int V,
                           float scale);

// Deterministic sum of rows: out (C) += sum over n of x (N,C), same result for a given thread
// count (per-thread partials added in thread order).
void column_sum_accumulate(float *out, const float *x, size_t N, int C);

#endif
