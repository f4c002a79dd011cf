// gemm_bf16.c: see gemm_bf16.h. oneDNN primitives are built once per shape and cached (a
// product seen with a second row count, as MoE experts' token counts change every step, gets
// one plan with runtime dimensions instead); the
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

// Memory descriptors of A (M,K), B (K,N) and C (M,N): transposes are strides.
static void describe(dnnl_memory_desc_t *amd, dnnl_memory_desc_t *bmd, dnnl_memory_desc_t *cmd,
                     dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, int ta, int tb, int lda, int ldb,
                     int ldc) {
    dnnl_dims_t ad = {M, K}, as = {ta ? 1 : lda, ta ? lda : 1};
    dnnl_dims_t bd = {K, N}, bs = {tb ? 1 : ldb, tb ? ldb : 1};
    dnnl_dims_t cd = {M, N}, cs = {ldc, 1};
    DNNL_OK(dnnl_memory_desc_init_by_strides(amd, 2, ad, dnnl_bf16, as));
    DNNL_OK(dnnl_memory_desc_init_by_strides(bmd, 2, bd, dnnl_bf16, bs));
    DNNL_OK(dnnl_memory_desc_init_by_strides(cmd, 2, cd, dnnl_f32, cs));
}

// A plan for one shape, or (M = K = -1) for a family whose row count M and inner size K change
// from call to call (MoE experts): then both are oneDNN runtime dimensions.
static Plan *plan_for(int M, int N, int K, int ta, int tb, int lda, int ldb, int ldc, int acc) {
    int family = 0;
    for (int i = 0; i < n_plans; i++) {
        Plan *p = &plans[i];
        if (p->N != N || p->ta != ta || p->tb != tb || p->lda != lda || p->ldb != ldb ||
            p->ldc != ldc || p->acc != acc)
            continue;
        if (p->M == M && p->K == K) return p;
        family++;
    }
    if (family) {  // the same product with another M or K: use (or make) the runtime plan
        for (int i = 0; i < n_plans; i++) {
            Plan *p = &plans[i];
            if (p->M == -1 && p->N == N && p->ta == ta && p->tb == tb && p->lda == lda &&
                p->ldb == ldb && p->ldc == ldc && p->acc == acc)
                return p;
        }
        M = K = -1;
    }
    if (!engine) {
        DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
        DNNL_OK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    }
    if (n_plans == MAX_PLANS) fatal("gemm_bf16: more than %d distinct product shapes", MAX_PLANS);
    Plan *p = &plans[n_plans++];
    *p = (Plan){M, N, K, ta, tb, lda, ldb, ldc, acc, NULL, NULL, NULL, NULL};
    dnnl_dim_t m = M < 0 ? DNNL_RUNTIME_DIM_VAL : M, k = K < 0 ? DNNL_RUNTIME_DIM_VAL : K;
    dnnl_memory_desc_t amd, bmd, cmd;
    describe(&amd, &bmd, &cmd, m, N, k, ta, tb, lda, ldb, ldc);
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
    if (M >= 0) {  // fixed shapes keep their memory objects; runtime ones make them per call
        DNNL_OK(dnnl_memory_create(&p->a, &amd, engine, DNNL_MEMORY_NONE));
        DNNL_OK(dnnl_memory_create(&p->b, &bmd, engine, DNNL_MEMORY_NONE));
        DNNL_OK(dnnl_memory_create(&p->c, &cmd, engine, DNNL_MEMORY_NONE));
    }
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
    dnnl_memory_t ma = p->a, mb = p->b, mc = p->c;
    if (p->M < 0) {
        dnnl_memory_desc_t amd, bmd, cmd;
        describe(&amd, &bmd, &cmd, M, N, K, trans_a, trans_b, lda, ldb, ldc);
        DNNL_OK(dnnl_memory_create(&ma, &amd, engine, a));
        DNNL_OK(dnnl_memory_create(&mb, &bmd, engine, b));
        DNNL_OK(dnnl_memory_create(&mc, &cmd, engine, C));
    } else {
        DNNL_OK(dnnl_memory_set_data_handle(ma, a));
        DNNL_OK(dnnl_memory_set_data_handle(mb, b));
        DNNL_OK(dnnl_memory_set_data_handle(mc, C));
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    DNNL_OK(dnnl_primitive_execute(p->prim, stream, 3, args));
    DNNL_OK(dnnl_stream_wait(stream));
    if (p->M < 0) dnnl_memory_destroy(ma), dnnl_memory_destroy(mb), dnnl_memory_destroy(mc);
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
