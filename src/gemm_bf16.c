// gemm_bf16.c: see gemm_bf16.h. oneDNN primitives are built once per shape and cached; the
// operands' bf16 copies live in two grow-only scratch buffers (callers are never inside a
// parallel region, so one set suffices).
#include "gemm_bf16.h"

#include <dnnl.h>
#include <string.h>

#include "common.h"

#define DNNL_OK(call)                                                                      \
    do {                                                                                   \
        dnnl_status_t st_ = (call);                                                        \
        if (st_ != dnnl_success) fatal("oneDNN: %s failed (status %d)", #call, (int)st_); \
    } while (0)

float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void convert_to_bf16(uint16_t *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &in[i], sizeof u);
        if ((u & 0x7fffffffu) > 0x7f800000u) out[i] = (uint16_t)((u >> 16) | 0x40);  // quiet NaN
        else out[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

typedef struct {
    int M, N, K, ta, tb, lda, ldb, ldc, acc;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} Plan;

#define MAX_PLANS 96
static Plan plans[MAX_PLANS];
static int n_plans;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static const char *last_impl = "none";
static uint16_t *scratch_a, *scratch_b;
static size_t cap_a, cap_b;

static uint16_t *grow(uint16_t **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        xfree(*buf);
        *buf = xcalloc(n, sizeof(uint16_t));
        *cap = n;
    }
    return *buf;
}

static Plan *plan_for(int M, int N, int K, int ta, int tb, int lda, int ldb, int ldc, int acc) {
    for (int i = 0; i < n_plans; i++) {
        Plan *p = &plans[i];
        if (p->M == M && p->N == N && p->K == K && p->ta == ta && p->tb == tb && p->lda == lda &&
            p->ldb == ldb && p->ldc == ldc && p->acc == acc)
            return p;
    }
    if (!engine) {
        DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
        DNNL_OK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    }
    if (n_plans == MAX_PLANS) fatal("gemm_bf16: more than %d distinct product shapes", MAX_PLANS);
    Plan *p = &plans[n_plans++];
    *p = (Plan){M, N, K, ta, tb, lda, ldb, ldc, acc, NULL, NULL, NULL, NULL};
    // Transposes are strides: A is (M,K) viewed from row-major storage, B is (K,N).
    dnnl_dims_t ad = {M, K}, as = {ta ? 1 : lda, ta ? lda : 1};
    dnnl_dims_t bd = {K, N}, bs = {tb ? 1 : ldb, tb ? ldb : 1};
    dnnl_dims_t cd = {M, N}, cs = {ldc, 1};
    dnnl_memory_desc_t amd, bmd, cmd;
    DNNL_OK(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, as));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bs));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs));
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd));
    dnnl_primitive_attr_t attr = NULL;
    if (acc) {  // C += A B: a sum post-op reads the destination
        dnnl_post_ops_t ops;
        DNNL_OK(dnnl_primitive_attr_create(&attr));
        DNNL_OK(dnnl_post_ops_create(&ops));
        DNNL_OK(dnnl_post_ops_append_sum(ops, 1.0f));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        last_impl = impl;
    DNNL_OK(dnnl_primitive_create(&p->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    DNNL_OK(dnnl_memory_create(&p->a, &amd, engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&p->b, &bmd, engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&p->c, &cmd, engine, DNNL_MEMORY_NONE));
    return p;
}

void gemm_bf16(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
               const float *B, int ldb, float *C, int ldc, int accumulate) {
    if (M == 0 || N == 0) return;
    if (K == 0) {  // an empty sum: C = 0 (or unchanged)
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    size_t na = (size_t)(trans_a ? K : M) * lda, nb = (size_t)(trans_b ? N : K) * ldb;
    uint16_t *a = grow(&scratch_a, &cap_a, na), *b = grow(&scratch_b, &cap_b, nb);
    convert_to_bf16(a, A, na);
    convert_to_bf16(b, B, nb);
    Plan *p = plan_for(M, N, K, trans_a, trans_b, lda, ldb, ldc, accumulate);
    DNNL_OK(dnnl_memory_set_data_handle(p->a, a));
    DNNL_OK(dnnl_memory_set_data_handle(p->b, b));
    DNNL_OK(dnnl_memory_set_data_handle(p->c, C));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}};
    DNNL_OK(dnnl_primitive_execute(p->prim, stream, 3, args));
    DNNL_OK(dnnl_stream_wait(stream));
}

const char *gemm_bf16_impl(void) { return last_impl; }

int gemm_bf16_available(void) {
    static int known = -1;
    if (known >= 0) return known;
    dnnl_engine_t eng;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return known = 0;
    dnnl_dims_t d = {16, 16}, st = {16, 1};
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    known = dnnl_memory_desc_init_by_strides(&a, 2, d, dnnl_bf16, st) == dnnl_success &&
            dnnl_memory_desc_init_by_strides(&c, 2, d, dnnl_f32, st) == dnnl_success &&
            dnnl_matmul_desc_init(&desc, &a, &a, NULL, &c) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_engine_destroy(eng);
    return known;
}
