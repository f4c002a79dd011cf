// rotary.h: rotary position embeddings (RoPE) as Hugging Face's Llama/Qwen code applies them.
// Each head of width hd is split into halves (x1 = x[0, hd/2), x2 = x[hd/2, hd)); pair i turns
// by the angle pos * inv_freq[i]:
//   x1' = x1 cos - x2 sin,   x2' = x2 cos + x1 sin        ("rotate_half", not interleaved)
// inv_freq[i] = 1 / theta^(2i / hd), optionally rescaled by Llama 3's rule (rope_type llama3:
// long wavelengths divided by `factor`, short ones kept, a smooth blend between). Frequencies,
// angles and cos/sin are computed in float32 as Hugging Face does (no attention scaling: the
// llama3 rule's attention factor is 1).
#ifndef ROUTELAB_ROTARY_H
#define ROUTELAB_ROTARY_H
#include <stddef.h>

typedef struct {
    float theta;
    int llama3;                         // apply Llama 3's frequency rule
    float factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} RopeParams;

// inv_freq (hd/2)
void rope_inv_freq(float *inv_freq, int hd, const RopeParams *p);
// cos, sin (T, hd/2): angle = t * inv_freq[i] for positions t = 0..T-1.
void rope_tables(float *cos_t, float *sin_t, const float *inv_freq, int T, int hd);
// In place on N rows (position n % T) of `stride` floats: heads [0, n_heads) of width hd from
// the row's start are rotated. x (N, stride); cos_t, sin_t (T, hd/2).
void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t N, int T, int n_heads,
                  int hd, int stride);
// The transpose (the inverse rotation), in place on the gradient dx (N, stride).
void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t N, int T,
                   int n_heads, int hd, int stride);

#endif
