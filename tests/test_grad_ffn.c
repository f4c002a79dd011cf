// test_grad_ffn.c: finite-difference checks of the feed-forward backward pass: plain GELU,
// SwiGLU and GeGLU FFNs and mixtures of experts (learned, random and hash routers, top-1 and
// top-2, capacity limits, load-balancing loss), with the dispatch invariants of routed layers.
// The method and tolerances are described in grad_check.h.
#include "grad_check.h"

// ----------------------------------------------------------------------------- FFN and MoE
typedef struct {
    FfnArgs a;
    FfnWeights w;
    float *fc_w, *fc_b, *proj_w, *proj_b, *router_w, *x, *out, *r;
    FfnActs acts;
    float *abuf;
    int *ibuf, *base_slot;
} FfnCtx;

static void ffn_ctx_acts(FfnCtx *c) {
    size_t sz[FA_COUNT], fo = 0, io = 0;
    ffn_act_sizes(&c->a, sz);
    c->abuf = falloc(sz[FA_H] + sz[FA_A] + sz[FA_XG] + sz[FA_Y] + sz[FA_PROBS] + sz[FA_WEIGHT]);
    c->ibuf = xcalloc(sz[FA_CHOICE] + sz[FA_SLOT] + sz[FA_ROW_TOKEN] + sz[FA_EXPERT_START] + 1, sizeof(int));
#define FCARVE(p, slot) c->acts.p = sz[slot] ? c->abuf + fo : NULL, fo += sz[slot]
#define ICARVE(p, slot) c->acts.p = sz[slot] ? c->ibuf + io : NULL, io += sz[slot]
    FCARVE(h, FA_H); FCARVE(a, FA_A); FCARVE(xg, FA_XG); FCARVE(y, FA_Y);
    FCARVE(probs, FA_PROBS); FCARVE(weight, FA_WEIGHT);
    ICARVE(choice, FA_CHOICE); ICARVE(slot, FA_SLOT); ICARVE(row_token, FA_ROW_TOKEN);
    ICARVE(expert_start, FA_EXPERT_START);
#undef FCARVE
#undef ICARVE
}

static double ffn_eval(void *v, int *changed) {
    FfnCtx *c = v;
    ffn_forward(c->out, &c->acts, c->x, &c->w, &c->a);
    size_t cnt = c->a.N * c->a.topk;  // choices too: see moe_slots
    *changed = c->base_slot && ffn_is_routed(&c->a) &&
               (memcmp(c->base_slot, c->acts.slot, cnt * sizeof(int)) ||
                memcmp(c->base_slot + cnt, c->acts.choice, cnt * sizeof(int)));
    return dot_fd(c->r, c->out, c->a.N * (size_t)c->a.C) + c->acts.aux_loss;
}

// One configuration: FD of x and every weight; the forward of a 1-expert plain FFN is also
// compared with plain loops elsewhere (test_model_moe.c: dense equivalence).
static void ffn_case(const char *label, int E, int F, int topk, FfnAct act, RouterKind router,
                     float capacity, float aux) {
    size_t N = 12;
    int C = 6, Fi = act == FFN_ACT_GELU ? F : 2 * F;
    FfnCtx c = {0};
    int tokens[12];
    for (size_t n = 0; n < N; n++) tokens[n] = (int)rng_below(&rng, 9);
    c.a = (FfnArgs){.N = N, .C = C, .E = E, .F = F, .topk = topk, .act = act, .gelu = GELU_ERF,
                    .router = router, .capacity_factor = capacity, .aux_coef = aux,
                    .aux_grad_scale = 1.0f, .tokens = tokens, .hash_seed = 77};
    c.fc_w = falloc((size_t)E * Fi * C), c.fc_b = falloc((size_t)E * Fi);
    c.proj_w = falloc((size_t)E * C * F), c.proj_b = falloc((size_t)E * C);
    c.router_w = falloc((size_t)E * C), c.x = falloc(N * C), c.out = falloc(N * C), c.r = falloc(N * C);
    fill_normal(c.fc_w, (size_t)E * Fi * C, 0.6f), fill_normal(c.fc_b, (size_t)E * Fi, 0.3f);
    fill_normal(c.proj_w, (size_t)E * C * F, 0.6f), fill_normal(c.proj_b, (size_t)E * C, 0.3f);
    fill_normal(c.router_w, (size_t)E * C, 1.0f), fill_normal(c.x, N * C, 1.0f), fill_normal(c.r, N * C, 1.0f);
    c.w = (FfnWeights){c.fc_w, c.fc_b, c.proj_w, c.proj_b, router == ROUTER_NONE || router == ROUTER_HASH ? NULL : c.router_w};
    ffn_ctx_acts(&c);
    ffn_eval(&c, &(int){0});
    if (ffn_is_routed(&c.a)) {
        c.base_slot = xcalloc(2 * N * topk, sizeof(int));
        memcpy(c.base_slot, c.acts.slot, N * topk * sizeof(int));
        memcpy(c.base_slot + N * topk, c.acts.choice, N * topk * sizeof(int));
    }
    size_t ss[FS_COUNT];
    ffn_scratch_sizes(&c.a, ss);
    FfnScratch sc = {falloc(ss[FS_DH]), falloc(ss[FS_DA]), falloc(ss[FS_DY]), falloc(ss[FS_DXG]),
                     falloc(ss[FS_DWEIGHT]), falloc(ss[FS_DPROBS])};
    if (!ss[FS_DA]) sc.da = NULL;
    float *dx = falloc(N * C);
    FfnGrads g = {falloc((size_t)E * Fi * C), falloc((size_t)E * Fi), falloc((size_t)E * C * F),
                  falloc((size_t)E * C), c.w.router_w ? falloc((size_t)E * C) : NULL};
    ffn_backward(dx, &g, c.r, c.x, &c.acts, &c.w, &c.a, &sc);
    char what[160];
#define FD(name, p, an, n) snprintf(what, sizeof what, "%s: %s", label, name), \
                           fd_check(what, p, an, n, &OPS_FD, ffn_eval, &c)
    FD("dx", c.x, dx, N * C);
    FD("dfc_w", c.fc_w, g.fc_w, (size_t)E * Fi * C);
    FD("dfc_b", c.fc_b, g.fc_b, (size_t)E * Fi);
    FD("dproj_w", c.proj_w, g.proj_w, (size_t)E * C * F);
    FD("dproj_b", c.proj_b, g.proj_b, (size_t)E * C);
    if (g.router_w) FD("drouter_w", c.router_w, g.router_w, (size_t)E * C);
#undef FD
    if (ffn_is_routed(&c.a)) {  // dispatch invariants: every row is one kept choice
        size_t kept = 0;
        for (size_t i = 0; i < N * topk; i++) kept += c.acts.slot[i] >= 0;
        CHECK(kept == (size_t)c.acts.expert_start[E], "%s: %zu kept choices vs %d rows", label, kept,
              c.acts.expert_start[E]);
        if (capacity > 0) {
            int cap = (int)ceil(capacity * (double)N * topk / E);
            for (int e = 0; e < E; e++)
                CHECK(c.acts.expert_start[e + 1] - c.acts.expert_start[e] <= cap, "%s: expert %d over "
                      "capacity", label, e);
        }
    }
    n_fd_cases++;
    xfree(c.fc_w), xfree(c.fc_b), xfree(c.proj_w), xfree(c.proj_b), xfree(c.router_w), xfree(c.x);
    xfree(c.out), xfree(c.r), xfree(c.abuf), xfree(c.ibuf), xfree(c.base_slot), xfree(dx);
    xfree(sc.dh), xfree(sc.da), xfree(sc.dy), xfree(sc.dxg), xfree(sc.dweight), xfree(sc.dprobs);
    xfree(g.fc_w), xfree(g.fc_b), xfree(g.proj_w), xfree(g.proj_b), xfree(g.router_w);
}

static void test_ffn(void) {
    ffn_case("ffn plain gelu", 1, 5, 1, FFN_ACT_GELU, ROUTER_NONE, 0, 0);
    ffn_case("ffn plain swiglu", 1, 5, 1, FFN_ACT_SWIGLU, ROUTER_NONE, 0, 0);
    ffn_case("ffn plain geglu", 1, 4, 1, FFN_ACT_GEGLU, ROUTER_NONE, 0, 0);
    ffn_case("moe learned top-1", 4, 3, 1, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0);
    ffn_case("moe learned top-2", 4, 3, 2, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0);
    ffn_case("moe learned top-1 aux", 3, 3, 1, FFN_ACT_GELU, ROUTER_LEARNED, 0, 0.3f);
    ffn_case("moe learned top-2 aux", 3, 3, 2, FFN_ACT_SWIGLU, ROUTER_LEARNED, 0, 0.3f);
    ffn_case("moe random top-1 capacity", 3, 4, 1, FFN_ACT_GELU, ROUTER_RANDOM, 1.0f, 0);
    ffn_case("moe random top-1 capacity aux", 3, 4, 1, FFN_ACT_GELU, ROUTER_RANDOM, 1.0f, 0.2f);
    ffn_case("moe learned top-2 capacity", 4, 3, 2, FFN_ACT_GEGLU, ROUTER_LEARNED, 0.5f, 0.1f);
    ffn_case("moe hash top-1", 4, 3, 1, FFN_ACT_GELU, ROUTER_HASH, 0, 0);
    ffn_case("moe hash top-2 capacity", 4, 3, 2, FFN_ACT_SWIGLU, ROUTER_HASH, 0.75f, 0);
}

// Where test_grad.c had left the generator on reaching these checks (see grad_init).
static const Rng RNG_START = {{0x9390b48c1378c5d4ull, 0x6efcae62d5949abdull,
                               0x051c57c3de3ca1f0ull, 0x998a5dadcdce7322ull}};

int main(void) {
    double t_start = now_seconds();
    grad_init(&RNG_START);
    test_ffn();
    return grad_summary("grad_ffn", t_start);
}
