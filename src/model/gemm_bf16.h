// gemm_bf16.h: the large matrix products in bfloat16 (precision=bf16), through oneDNN's matmul
// (Debian's libdnnl; on CPUs with AVX-512 BF16 it runs vdpbf16ps kernels). Operands are
// rounded to bf16 (round to nearest even) into scratch copies, products accumulate in fp32 and
// results are fp32: master weights, gradients and the optimizer stay fp32.
//   C (M,N) (=|+=) op(A) op(B), op = transpose or not, row-major fp32 A, B, C.
#ifndef ROUTELAB_GEMM_BF16_H
#define ROUTELAB_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>

void gemm_bf16(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
               const float *B, int ldb, float *C, int ldc, int accumulate);
// fp32 -> bf16 with round to nearest even (NaN stays NaN), n values, OpenMP.
void convert_to_bf16(uint16_t *out, const float *in, size_t n);
float bf16_to_float(uint16_t b);
// 1 when oneDNN can run bf16 matmuls on this CPU (AVX-512 and up).
int gemm_bf16_available(void);
// The implementation oneDNN picked for the last product (e.g. "brg:avx512_core_bf16").
const char *gemm_bf16_impl(void);

#endif
