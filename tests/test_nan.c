// test_nan.c: NaN and inf propagate to a detected failure instead of being masked: the vector
// exp, cross-entropy, attention in every routing mode, top-k, the MoE router, dropout, the
// divergence check of training, and the finite / range validation of the float config keys.
// Finite inputs must give the same results as before (the old vector exp is kept here and
// compared bit for bit; the rest against plain double-precision loops).
#include "model_check.h"

#include "ffn.h"
#include "ops.h"

// The vector exp as it was before NaN propagated (the finite path must be bit-identical).
static inline float old_exp_nonpositive(float x) {
    int xb;
    memcpy(&xb, &x, sizeof xb);
    int mag = xb & 0x7fffffff;
    mag = mag < 0x42D00000 ? mag : 0x42D00000;
    xb = (int)((unsigned)xb & 0x80000000u) | mag;
    memcpy(&x, &xb, sizeof x);
    float y = x * 1.44269504088896341f + 0.5f;
    int ni = (int)y;
    ni -= (float)ni > y;
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
    e &= -(e > 0);
    int bits = (int)((unsigned)e << 23);  // as gcc compiled the old signed shift, without its UB
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

static int bits_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static int all_nan(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) return 0;
    return 1;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// ----------------------------------------------------------------------------- exp, dropout
static void test_exp(void) {
    CHECK(isnan(exp_nonpositive(NAN)), "exp_nonpositive(NaN) is %g, not NaN", exp_nonpositive(NAN));
    CHECK(isnan(exp_nonpositive(-NAN)), "exp_nonpositive(-NaN) is not NaN");
    CHECK(isinf(exp_nonpositive(INFINITY)), "exp_nonpositive(+inf) is not +inf");
    CHECK(exp_nonpositive(-INFINITY) == 0.0f, "exp_nonpositive(-inf) is not 0");
    CHECK(exp_nonpositive(0.0f) == 1.0f, "exp_nonpositive(0) = %.9g, not 1", exp_nonpositive(0.0f));
    CHECK_CLOSE(exp_nonpositive(-1.0f), 0.36787944117144233, 1e-7, "exp_nonpositive(-1)");
    CHECK_CLOSE(exp_nonpositive(-10.0f), 4.5399929762484854e-05, 1e-11, "exp_nonpositive(-10)");
    CHECK(exp_nonpositive(-200.0f) == 0.0f, "exp_nonpositive(-200) is not 0");
    // every finite input in a sweep of [-110, 1] (and huge ones): the same bits as before
    size_t differ = 0, n = 0;
    for (float x = -110.0f; x <= 1.0f; x += 1.0f / 4096.0f, n++)
        differ += !bits_equal(exp_nonpositive(x), old_exp_nonpositive(x));
    const float odd[] = {-0.0f, 1e-30f, -1e-30f, -1e30f, 3e38f, -3e38f, -87.33f, -104.0f, -1e-45f};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++, n++)
        differ += !bits_equal(exp_nonpositive(odd[i]), old_exp_nonpositive(odd[i]));
    CHECK(differ == 0, "exp_nonpositive differs from the old version on %zu of %zu finite inputs",
          differ, n);

    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = y[i] = (float)(i - 32) * 0.25f;
    x[5] = NAN, x[6] = INFINITY;
    dropout_apply(x, 64, 0.5f, 99);
    size_t dropped_finite_ok = 1;
    for (int i = 0; i < 64; i++) {
        if (i == 5 || i == 6) continue;
        float want = hash_uniform(99, (uint64_t)i) >= 0.5f ? y[i] * 2.0f : 0.0f;
        dropped_finite_ok &= bits_equal(x[i], want);
    }
    CHECK(dropped_finite_ok, "dropout changed a finite element (kept or dropped, +0)");
    CHECK(isnan(x[5]) && !isfinite(x[6]), "dropout masked a NaN or inf element (%g, %g)", x[5], x[6]);
}

// ----------------------------------------------------------------------------- cross-entropy
static void test_crossentropy(void) {
    enum { N = 4, V = 37 };
    float logits[N * V], keep[N * V], losses[N], lse[N];
    for (int i = 0; i < N * V; i++) logits[i] = rng_normal(&rng) * 2.0f;
    int targets[N] = {3, 0, 36, -1};
    memcpy(keep, logits, sizeof logits);
    size_t scored;
    double total = crossentropy_forward(losses, lse, &scored, logits, targets, N, V);
    double want_total = 0.0;
    int ok = scored == 3;
    for (int n = 0; n < 3; n++) {
        double mx = -INFINITY, s = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits[n * V + v]);
        for (int v = 0; v < V; v++) s += exp(logits[n * V + v] - mx);
        double l = log(s) + mx - logits[n * V + targets[n]];
        ok &= fabs(l - losses[n]) < 1e-5;
        want_total += losses[n];
    }
    CHECK(ok && total == want_total, "finite cross-entropy differs from the double reference");

    // NaN at one logit (not the first, not the target): that row's loss is NaN
    logits[1 * V + 17] = NAN;
    logits[3 * V + 2] = NAN;  // an ignored row: does not count
    total = crossentropy_forward(losses, lse, &scored, logits, targets, N, V);
    CHECK(isnan(losses[1]) && isnan(total), "NaN logit gives loss %g (total %g), not NaN", losses[1],
          total);
    CHECK(isfinite(losses[0]) && isfinite(losses[2]) && losses[3] == 0.0f,
          "a NaN logit leaked into other rows");
    // inf logit: not finite either
    memcpy(logits, keep, sizeof logits);
    logits[2 * V + 5] = INFINITY;
    total = crossentropy_forward(losses, lse, &scored, logits, targets, N, V);
    CHECK(!isfinite(losses[2]) && !isfinite(total), "an inf logit gives a finite loss %g", losses[2]);
    // backward: the NaN row's gradient is NaN
    memcpy(logits, keep, sizeof logits);
    logits[0 * V + 9] = NAN;
    crossentropy_forward(losses, lse, &scored, logits, targets, N, V);
    crossentropy_backward(logits, lse, targets, N, V, 1.0f);
    CHECK(isnan(logits[0 * V + 1]) && all_finite(logits + V, V),
          "cross-entropy backward of a NaN row is not NaN, or leaks");
}

// ----------------------------------------------------------------------------- top-k
static void test_topk(void) {
    float pairs[64];
    unsigned char keep[16];
    float x[8] = {1, NAN, 3, 2, NAN, 0, 5, 4};
    int n = topk_select(keep, x, 8, 3, pairs);
    CHECK(n == 3 && keep[1] && keep[4] && keep[6] && !keep[0] && !keep[2] && !keep[3] && !keep[5] &&
              !keep[7],
          "top-3 of {1,NaN,3,2,NaN,0,5,4} keeps %d%d%d%d%d%d%d%d, expected the NaNs and 5",
          keep[0], keep[1], keep[2], keep[3], keep[4], keep[5], keep[6], keep[7]);
    float all[7] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    n = topk_select(keep, all, 7, 2, pairs);
    CHECK(n == 2 && keep[0] && keep[1] && !keep[2], "top-2 of all NaN does not keep indices 0, 1");
    float fin[6] = {1, 3, 3, 0, 3, 3};  // finite ranking unchanged
    topk_select(keep, fin, 6, 3, pairs);
    CHECK(keep[1] && keep[2] && keep[4] && !keep[5] && !keep[0] && !keep[3],
          "finite top-k ranking changed");
    float inf[5] = {INFINITY, NAN, -INFINITY, 2, INFINITY};
    topk_row(keep, inf, 4, 5, 2, TOPK_CAUSAL, pairs);
    CHECK(keep[1] && (keep[0] || keep[4]) && !keep[2] && !keep[3], "NaN does not rank above +inf");
}

// ----------------------------------------------------------------------------- attention
typedef struct {
    AttnArgs a;
    float *qkv, *gq, *gk, *out, *att, *auxS, *auxs, *lse, *given;
} Attn;

static void attn_setup(Attn *x, AttnMode mode, TopkScope scope, int T) {
    memset(x, 0, sizeof *x);
    AttnArgs *a = &x->a;
    a->B = 1, a->T = T, a->NH = 1, a->hd = 4, a->C = 4, a->dg = 4, a->mode = mode, a->k = 2;
    a->scope = scope, a->gate_grad = mode == ATTN_HARD || mode == ATTN_BLOCK ? GATE_GRAD_STE : GATE_GRAD_NONE;
    a->block_size = 2, a->k_blocks = 1, a->block_window = 1;
    a->tau = 1.0f, a->nthreads = 1, a->noise_key = 12345;
    a->scratch = xcalloc(attention_scratch_floats(T), sizeof(float));
    size_t N = (size_t)T, TT = (size_t)T * T;
    x->qkv = xcalloc(N * 12, sizeof(float));
    x->gq = xcalloc(N * 4, sizeof(float));
    x->gk = xcalloc(N * 4, sizeof(float));
    for (size_t i = 0; i < N * 12; i++) x->qkv[i] = rng_normal(&rng);
    for (size_t i = 0; i < N * 4; i++) x->gq[i] = rng_normal(&rng), x->gk[i] = rng_normal(&rng);
    x->out = xcalloc(N * 4, sizeof(float));
    x->att = xcalloc(TT, sizeof(float));
    x->auxS = xcalloc(TT, sizeof(float));
    x->auxs = xcalloc(TT, sizeof(float));
    x->lse = xcalloc(N, sizeof(float));
}

static void attn_run(Attn *x) {
    attention_forward(x->out, x->att, x->auxS, x->auxs, x->lse, x->qkv, x->gq, x->gk, &x->a);
}

static void attn_free(Attn *x) {
    xfree(x->a.scratch), xfree(x->qkv), xfree(x->gq), xfree(x->gk), xfree(x->out), xfree(x->att);
    xfree(x->auxS), xfree(x->auxs), xfree(x->lse), xfree(x->given);
}

static void test_attention(void) {
    enum { T = 6 };
    for (int m = 0; m < ATTN_NUM_MODES; m++) {
        const char *name = attn_mode_name((AttnMode)m);
        // NaN in the query of row 3: S[3][*] is NaN; row 3 is NaN, rows 0..2 untouched
        Attn x;
        attn_setup(&x, (AttnMode)m, TOPK_CAUSAL, T);
        attn_run(&x);
        float before[T * 4];
        memcpy(before, x.out, sizeof before);
        CHECK(all_finite(x.out, T * 4), "%s: finite input gives a non-finite output", name);
        x.qkv[3 * 12 + 1] = NAN;
        attn_run(&x);
        CHECK(all_nan(x.out + 3 * 4, 4) && all_nan(x.att + 3 * T, 4),
              "%s: NaN score row 3 gives output %g and weight %g, not NaN", name, x.out[3 * 4],
              x.att[3 * T]);
        CHECK(memcmp(x.out, before, 3 * 4 * sizeof(float)) == 0 && all_finite(x.out, 12),
              "%s: a NaN query changed earlier rows", name);
        // NaN in one key (position 1): every row that sees it is NaN, whatever it keeps
        x.qkv[3 * 12 + 1] = 0.5f;
        x.qkv[1 * 12 + 4 + 2] = NAN;
        attn_run(&x);
        int rows_nan = 1;
        for (int i = 1; i < T; i++) rows_nan &= all_nan(x.out + i * 4, 4);
        CHECK(rows_nan && all_finite(x.out, 4), "%s: a NaN key gives a finite row (or leaks to row 0)",
              name);
        attn_free(&x);
    }
    // every key masked, NaN scores: not read as an empty (zero) row
    Attn x;
    attn_setup(&x, ATTN_DENSE, TOPK_CAUSAL, T);
    for (int i = 0; i < T; i++) x.qkv[i * 12 + 4] = NAN;  // k of every position
    attn_run(&x);
    CHECK(all_nan(x.out, T * 4), "dense: all-NaN scores give a non-NaN output");
    attn_free(&x);
    // soft gate NaN (G NaN in row 2) poisons the row in soft and soft_prob
    for (int m = ATTN_SOFT; m <= ATTN_SOFT_PROB; m++) {
        attn_setup(&x, (AttnMode)m, TOPK_CAUSAL, T);
        x.gq[2 * 4 + 3] = NAN;
        attn_run(&x);
        CHECK(all_nan(x.out + 2 * 4, 4) && all_finite(x.out, 8),
              "%s: a NaN gate gives a finite row 2", attn_mode_name((AttnMode)m));
        attn_free(&x);
    }
    // block modes: a NaN score in a block makes it rank first (kept, not routed around).
    // block_oracle: key 0's NaN poisons every row; block: key 0's gate NaN keeps block 0 in every
    // row (k_blocks 1, window 1), and the STE gate gradient of that row is NaN, not 0.
    attn_setup(&x, ATTN_BLOCK, TOPK_CAUSAL, T);
    for (int i = 0; i < T; i++) x.gk[0 * 4 + i % 4] = NAN;
    attn_run(&x);
    int block0 = all_finite(x.out, T * 4);
    for (int i = 2; i < T; i++) block0 &= x.att[i * T + 0] > 0.0f && x.att[i * T + 1] > 0.0f;
    CHECK(block0, "block: a NaN gate score does not keep its block (or poisons the output)");
    CHECK(isnan(x.auxs[4 * T + 0]), "block ste: the NaN gate is not carried to the saved gate");
    attn_free(&x);
    attn_setup(&x, ATTN_BLOCK_ORACLE, TOPK_CAUSAL, T);
    for (int d = 0; d < 4; d++) x.qkv[0 * 12 + 4 + d] = NAN;
    attn_run(&x);
    CHECK(all_nan(x.out, T * 4), "block_oracle: a NaN key score is routed around");
    attn_free(&x);
    // expert choice: a NaN router logit ranks first, so its token is picked and its row is NaN
    // (the router score scales it); in the causal variant earlier rows are untouched.
    for (int m = ATTN_EXPERT_CHOICE; m <= ATTN_EXPERT_CHOICE_CAUSAL; m++) {
        attn_setup(&x, (AttnMode)m, TOPK_CAUSAL, T);
        x.gk[4 * 4 + 0] = NAN;
        attn_run(&x);
        CHECK(all_nan(x.out + 4 * 4, 4), "%s: a NaN router logit gives a finite row 4",
              attn_mode_name((AttnMode)m));
        if (m == ATTN_EXPERT_CHOICE_CAUSAL)
            CHECK(all_finite(x.out, 4 * 4), "%s: a NaN router logit at 4 reached rows 0..3",
                  attn_mode_name((AttnMode)m));
        attn_free(&x);
    }
    // topk_scope=all with no kept key stays a zero row: the last key dominates every query
    attn_setup(&x, ATTN_ORACLE, TOPK_ALL, T);
    x.a.k = 1;
    for (int i = 0; i < T; i++) {
        for (int d = 0; d < 4; d++) x.qkv[i * 12 + d] = 1.0f, x.qkv[i * 12 + 4 + d] = 0.1f * i;
        for (int d = 0; d < 4; d++) x.qkv[i * 12 + 8 + d] = (float)(i + 1);
    }
    attn_run(&x);
    int zero = 1;
    for (int e = 0; e < (T - 1) * 4; e++) zero &= x.out[e] == 0.0f;
    for (int e = 0; e < (T - 1) * T; e++) zero &= x.att[e] == 0.0f;
    CHECK(zero, "oracle topk_scope=all: rows with no kept key are not zero");
    CHECK(x.out[(T - 1) * 4] == (float)T && x.att[(T - 1) * T + T - 1] == 1.0f,
          "oracle topk_scope=all: the last row does not keep its own key (out %g)", x.out[(T - 1) * 4]);
    attn_free(&x);
    // finite dense attention against a double-precision softmax
    attn_setup(&x, ATTN_DENSE, TOPK_CAUSAL, T);
    attn_run(&x);
    double worst = 0.0;
    for (int i = 0; i < T; i++) {
        double s[T], mx = -INFINITY, z = 0.0;
        for (int j = 0; j <= i; j++) {
            s[j] = 0.0;
            for (int d = 0; d < 4; d++) s[j] += (double)x.qkv[i * 12 + d] * x.qkv[j * 12 + 4 + d];
            s[j] *= 0.5, mx = fmax(mx, s[j]);
        }
        for (int j = 0; j <= i; j++) z += exp(s[j] - mx);
        for (int d = 0; d < 4; d++) {
            double y = 0.0;
            for (int j = 0; j <= i; j++) y += exp(s[j] - mx) / z * x.qkv[j * 12 + 8 + d];
            worst = fmax(worst, fabs(y - x.out[i * 4 + d]));
        }
    }
    CHECK(worst < 1e-5, "finite dense attention differs from the double reference by %g", worst);
    attn_free(&x);
}

// ----------------------------------------------------------------------------- MoE router
typedef struct {
    FfnArgs a;
    FfnWeights w;
    FfnActs s;
    float *fbuf, *x, *out, *wbuf;
    int *ibuf;
} Moe;

static void moe_setup(Moe *c, RouterKind router, int topk, float capacity) {
    memset(c, 0, sizeof *c);
    static int tokens[8] = {1, 2, 3, 4, 5, 6, 7, 0};
    size_t N = 8;
    int C = 4, E = 4, F = 4;
    c->a = (FfnArgs){.N = N, .C = C, .E = E, .F = F, .topk = topk, .act = FFN_ACT_GELU,
                     .gelu = GELU_ERF, .router = router, .capacity_factor = capacity,
                     .aux_coef = 0.01f, .aux_grad_scale = 1.0f, .tokens = tokens, .hash_seed = 5};
    size_t nw = (size_t)E * F * C * 2 + (size_t)E * F + (size_t)E * C + (size_t)E * C;
    c->wbuf = xcalloc(nw, sizeof(float));
    for (size_t i = 0; i < nw; i++) c->wbuf[i] = rng_normal(&rng) * 0.5f;
    float *p = c->wbuf;
    c->w.fc_w = p, p += (size_t)E * F * C;
    c->w.fc_b = p, p += (size_t)E * F;
    c->w.proj_w = p, p += (size_t)E * C * F;
    c->w.proj_b = p, p += (size_t)E * C;
    c->w.router_w = router == ROUTER_HASH ? NULL : p;
    size_t sz[FA_COUNT], fo = 0, io = 0;
    ffn_act_sizes(&c->a, sz);
    c->fbuf = xcalloc(sz[FA_H] + sz[FA_A] + sz[FA_XG] + sz[FA_Y] + sz[FA_PROBS] + sz[FA_WEIGHT] + 1,
                      sizeof(float));
    c->ibuf = xcalloc(sz[FA_CHOICE] + sz[FA_SLOT] + sz[FA_ROW_TOKEN] + sz[FA_EXPERT_START] + 1,
                      sizeof(int));
#define FC(f, slot) c->s.f = sz[slot] ? c->fbuf + fo : NULL, fo += sz[slot]
#define IC(f, slot) c->s.f = sz[slot] ? c->ibuf + io : NULL, io += sz[slot]
    FC(h, FA_H); FC(a, FA_A); FC(xg, FA_XG); FC(y, FA_Y); FC(probs, FA_PROBS); FC(weight, FA_WEIGHT);
    IC(choice, FA_CHOICE); IC(slot, FA_SLOT); IC(row_token, FA_ROW_TOKEN);
    IC(expert_start, FA_EXPERT_START);
#undef FC
#undef IC
    c->x = xcalloc(N * C, sizeof(float));
    c->out = xcalloc(N * C, sizeof(float));
    for (size_t i = 0; i < N * C; i++) c->x[i] = rng_normal(&rng);
}

static void moe_free(Moe *c) {
    xfree(c->wbuf), xfree(c->fbuf), xfree(c->ibuf), xfree(c->x), xfree(c->out);
}

static void test_moe(void) {
    static const RouterKind routers[] = {ROUTER_LEARNED, ROUTER_RANDOM, ROUTER_HASH};
    for (int r = 0; r < 3; r++)
        for (int topk = 1; topk <= 2; topk++)
            for (int capped = 0; capped <= 1; capped++) {
                Moe c;
                moe_setup(&c, routers[r], topk, capped ? 0.5f : 0.0f);
                ffn_forward(c.out, &c.s, c.x, &c.w, &c.a);
                float before[32];
                memcpy(before, c.out, sizeof before);
                char what[96];
                snprintf(what, sizeof what, "%s router, top-%d, %s", router_name(routers[r]), topk,
                         capped ? "capacity 0.5" : "no capacity limit");
                CHECK(all_finite(c.out, 32), "%s: finite input gives a non-finite output", what);
                c.x[0 * 4 + 2] = NAN;  // token 0: NaN router logits (learned/random) and input
                ffn_forward(c.out, &c.s, c.x, &c.w, &c.a);
                CHECK(all_nan(c.out, 4), "%s: a NaN token's output is %g, not NaN", what, c.out[0]);
                // the other tokens: finite; with no capacity limit exactly as before
                CHECK(all_finite(c.out + 4, 28), "%s: a NaN token leaked into other tokens", what);
                if (!capped)
                    CHECK(memcmp(c.out + 4, before + 4, 28 * sizeof(float)) == 0,
                          "%s: a NaN token changed other tokens' outputs", what);
                if (routers[r] != ROUTER_HASH) {
                    CHECK(c.s.slot[0] == -1 && (topk == 1 || c.s.slot[1] == -1),
                          "%s: the NaN token was dispatched (to expert %d)", what, c.s.choice[0]);
                    CHECK(isnan(c.s.aux_loss) && isnan(c.s.router_entropy),
                          "%s: aux loss %g / router entropy %g hide the NaN", what, c.s.aux_loss,
                          c.s.router_entropy);
                }
                moe_free(&c);
            }
}

// ----------------------------------------------------------------------------- a whole model
static void test_model(void) {
    Config c;
    small_config(&c, NULL);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    random_batch(in, tg, 16, c.vocab_size);
    double l0 = model_forward(&m, in, tg, 2, 8);
    CHECK(isfinite(l0) && params_all_finite(&m), "a fresh model gives loss %g", l0);
    const ParamInfo *p = param_find(&m.table, "blocks.1.mlp.fc.weight");
    CHECK(p != NULL, "no parameter blocks.1.mlp.fc.weight");
    if (p) {
        m.params[p->offset + 3] = NAN;
        double l = model_forward(&m, in, tg, 2, 8);
        CHECK(isnan(l) && !params_all_finite(&m), "one NaN weight gives loss %g, not NaN", l);
        m.params[p->offset + 3] = 0.0f;
        model_zero_grad(&m);
        model_forward(&m, in, tg, 2, 8);
        model_backward(&m, 1.0f);
        CHECK(isfinite(grad_norm(&m)), "finite model: non-finite gradient norm");
        m.grads[p->offset + 5] = NAN;
        CHECK(isnan(grad_norm(&m)) && isnan(grad_clip(&m, 1.0f)), "a NaN gradient gives a finite norm");
    }
    model_free(&m);
}

// ----------------------------------------------------------------------------- errors
static void die_loss_nan(const void *arg) { die_if_diverged("train", "loss", NAN, 3, arg); }
static void die_norm_inf(const void *arg) { die_if_diverged("train", "gradient norm", INFINITY, 7, arg); }
static void set_key(const void *arg) {
    const char *const *kv = arg;
    Config c;
    config_defaults(&c);
    config_set(&c, kv[0], kv[1], "command line");
}
static void resolve_key(const void *arg) {
    const char *const *kv = arg;
    Config c;
    config_defaults(&c);
    if (!strcmp(kv[1], "nan")) *(float *)((char *)&c + (size_t)atol(kv[2])) = NAN;
    else config_set(&c, kv[0], kv[1], "test");
    config_resolve(&c);
}

static void test_errors(void) {
    die_if_diverged("train", "loss", 2.5, 1, NULL);  // finite: returns
    CHECK(1, "die_if_diverged returned on a finite value");
    expect_fatal(die_loss_nan, "/nonexistent/model.ckpt", "train: loss is nan at step 3 (diverged)",
                 "NaN loss");
    char ckpt[] = "/tmp/test_nan_ckpt_XXXXXX", needle[160];
    int fd = mkstemp(ckpt);
    CHECK(fd >= 0, "mkstemp failed");
    if (fd >= 0) close(fd);
    snprintf(needle, sizeof needle, "gradient norm is inf at step 7 (diverged): the last good "
             "checkpoint %s is kept", ckpt);
    expect_fatal(die_norm_inf, ckpt, needle, "inf gradient norm");
    unlink(ckpt);
    static const char *const bad_text[][2] = {
        {"lr", "nan"}, {"grad_clip", "nan"}, {"grad_clip", "inf"}, {"dropout", "-inf"},
        {"tau", "NaN"}, {"weight_decay", "1e39"}, {"ln_eps", "infinity"}};
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        char what[96];
        snprintf(needle, sizeof needle, "key '%s' expects a finite number", bad_text[i][0]);
        snprintf(what, sizeof what, "config_set %s=%s", bad_text[i][0], bad_text[i][1]);
        expect_fatal(set_key, bad_text[i], needle, what);
    }
    char off[16];
    snprintf(off, sizeof off, "%zu", offsetof(Config, grad_clip));
    const char *const nan_clip[] = {"grad_clip", "nan", off};
    expect_fatal(resolve_key, nan_clip, "grad_clip", "config_resolve with grad_clip = NaN");
    static const char *const bad_range[][2] = {
        {"grad_clip", "-1"}, {"lr", "-1e-3"}, {"min_lr_ratio", "-0.5"}, {"weight_decay", "-0.1"},
        {"adam_eps", "0"}, {"ln_eps", "0"}, {"init_std", "0"}, {"gate_init_std", "-1"},
        {"dropout", "1"}, {"tau", "0"}, {"mqar_alpha", "0"}, {"capacity_factor", "-1"},
        {"aux_loss", "-0.01"}, {"beta1", "1"}};
    for (size_t i = 0; i < sizeof bad_range / sizeof bad_range[0]; i++) {
        char what[96];
        const char *kv[3] = {bad_range[i][0], bad_range[i][1], "0"};
        snprintf(what, sizeof what, "config_resolve %s=%s", kv[0], kv[1]);
        expect_fatal(resolve_key, kv, kv[0], what);
    }
    Config c;
    config_defaults(&c);
    config_set(&c, "grad_clip", "0", "test");
    config_set(&c, "weight_decay", "0", "test");
    config_set(&c, "lr", "0", "test");
    config_resolve(&c);
    CHECK(c.grad_clip == 0.0f && c.lr == 0.0f, "grad_clip=0 / lr=0 are not accepted");
}

int main(void) {
    double t0 = now_seconds();
    model_check_init(NULL);
    test_exp();
    test_crossentropy();
    test_topk();
    test_attention();
    test_moe();
    test_model();
    test_errors();
    return model_check_summary("test_nan", t0);
}
