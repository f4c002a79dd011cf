// rotary.c: see rotary.h.
#include "rotary.h"

#include <math.h>

void rope_inv_freq(float *inv_freq, int hd, const RopeParams *p) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)hd;  // float32 exponent, as torch.arange(...).float() / dim
        inv_freq[i] = 1.0f / powf(p->theta, e);
    }
    if (!p->llama3) return;
    // Llama 3 (transformers' _compute_llama3_parameters): wavelengths longer than
    // original_max_pos / low_freq_factor are slowed by `factor`; shorter than
    // original_max_pos / high_freq_factor kept; in between a linear blend in 1/wavelength.
    float old_len = (float)p->original_max_pos;
    float low_wavelen = old_len / p->low_freq_factor, high_wavelen = old_len / p->high_freq_factor;
    for (int i = 0; i < half; i++) {
        float f = inv_freq[i], wavelen = (float)(2.0 * M_PI) / f;
        float scaled = wavelen > low_wavelen ? f / p->factor : f;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
            float smooth = (old_len / wavelen - p->low_freq_factor) /
                           (p->high_freq_factor - p->low_freq_factor);
            scaled = (1.0f - smooth) * scaled / p->factor + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
}

void rope_tables(float *cos_t, float *sin_t, const float *inv_freq, int T, int hd) {
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float angle = inv_freq[i] * (float)t;  // a float32 product, as Hugging Face's matmul
            cos_t[(size_t)t * half + i] = cosf(angle);
            sin_t[(size_t)t * half + i] = sinf(angle);
        }
}

// sign = +1: the rotation; -1: its transpose.
static void rotate(float *x, const float *cos_t, const float *sin_t, size_t N, int T, int n_heads,
                   int hd, int stride, float sign) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *c = cos_t + (n % (size_t)T) * half, *s = sin_t + (n % (size_t)T) * half;
        for (int h = 0; h < n_heads; h++) {
            float *x1 = x + n * stride + (size_t)h * hd, *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i], si = sign * s[i];
                x1[i] = a * c[i] - b * si;
                x2[i] = b * c[i] + a * si;
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t N, int T, int n_heads,
                  int hd, int stride) {
    rotate(x, cos_t, sin_t, N, T, n_heads, hd, stride, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t N, int T,
                   int n_heads, int hd, int stride) {
    rotate(dx, cos_t, sin_t, N, T, n_heads, hd, stride, -1.0f);
}
