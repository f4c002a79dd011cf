// test_grad_attention.c: finite-difference checks of attention's backward pass in every routing
// mode, both top-k scopes (empty rows), tau != 1, attention dropout and fed masks; each forward
// also against an independent double-precision plain-loop version. The straight-through gate
// gradient (hard + ste) is not a true gradient: it is compared with an independent plain-loop
// implementation of the STE formula of ../shared/ref/README.md (attn_ref.h) instead
// (test_grad_model.c does the same for a whole model). The method and tolerances are described
// in grad_check.h.
#include "grad_check.h"
#include "attn_ref.h"

// ----------------------------------------------------------------------------- attention
static size_t attn_tt(const AttnCtx *x) { return (size_t)x->a.B * x->a.NH * x->a.T * x->a.T; }

static double attn_eval(void *v, int *changed) {
    AttnCtx *x = v;
    attention_forward(x->out, x->att, x->auxS, x->auxs, x->lse, x->qkv, x->gq, x->gk, &x->a);
    *changed = 0;
    if (x->check_pattern) {
        size_t n = attn_tt(x);
        for (size_t e = 0; e < n && !*changed; e++) *changed = (x->att[e] != 0.0f) != x->base[e];
    }
    return dot_fd(x->r, x->out, (size_t)x->a.B * x->a.T * x->a.C);
}

static void test_route_table(void) {
    static const KeepRule keeps[] = {KEEP_ALL_VISIBLE, KEEP_TOPK_SCORES, KEEP_TOPK_GATE,
                                     KEEP_TOPK_FRESH, KEEP_TOPK_FIXED, KEEP_WINDOW,
                                     KEEP_BLOCKS_GATE, KEEP_BLOCKS_SCORES, KEEP_TOKENS,
                                     KEEP_TOKENS_PREFIX};
    for (int m = 0; m < ATTN_NUM_MODES; m++) {
        const RouteRule *r = route_rule((AttnMode)m);
        GateUse want = m == ATTN_SOFT ? GATE_ON_LOGITS
                       : m == ATTN_SOFT_PROB || ref_routes_tokens((AttnMode)m) ? GATE_ON_PROBS
                       : m == ATTN_HARD || m == ATTN_BLOCK ? GATE_RANKS_ONLY : GATE_UNUSED;
        CHECK(r->keep == keeps[ref_keep((AttnMode)m)] && r->gate == want &&
                  !strcmp(r->name, attn_mode_name((AttnMode)m)) &&
                  route_needs_gate((AttnMode)m) == ref_needs_gate((AttnMode)m) &&
                  route_gate_in_graph((AttnMode)m, GATE_GRAD_NONE) ==
                      ref_gate_in_graph((AttnMode)m, GATE_GRAD_NONE) &&
                  route_gate_in_graph((AttnMode)m, GATE_GRAD_STE) ==
                      ref_gate_in_graph((AttnMode)m, GATE_GRAD_STE) &&
                  route_gate_in_graph((AttnMode)m, GATE_GRAD_STE_DENSE) ==
                      ref_gate_in_graph((AttnMode)m, GATE_GRAD_STE_DENSE) &&
                  route_routes_tokens((AttnMode)m) == ref_routes_tokens((AttnMode)m),
              "routing table row of mode %s disagrees with the README", attn_mode_name((AttnMode)m));
    }
}

static const FdOpts ATTN_FD = {1e-2, 1e-4, 1e-5, 1 << 30, 0.75};
static const FdOpts ATTN_FD_SAMPLED = {1e-2, 1e-4, 1e-5, 48, 0.75};  // two-thread cases

static void attn_case(const AttnCase *cs, int nthreads) {
    AttnCtx x;
    memset(&x, 0, sizeof x);
    AttnArgs *a = &x.a;
    a->B = cs->B;
    a->T = cs->T;
    a->NH = cs->NH;
    a->hd = cs->hd;
    a->C = cs->NH * cs->hd;
    a->NKV = cs->nkv;
    a->dg = cs->dg;
    a->mode = cs->mode;
    a->k = cs->k;
    a->block_size = cs->bs;
    a->k_blocks = cs->kb;
    a->block_window = cs->win;
    a->scope = cs->scope;
    a->gate_grad = cs->gg;
    a->tau = cs->tau;
    a->dropout = cs->dropout;
    a->dropout_key = rng_next(&rng);
    a->noise_key = rng_next(&rng);
    a->nthreads = nthreads;
    a->scratch = falloc((size_t)nthreads * attention_scratch_floats(cs->T));
    int B = a->B, T = a->T, C = a->C, NH = a->NH, GW = NH * a->dg;
    size_t QW = (size_t)attention_qkv_width(a);
    size_t TT = (size_t)B * NH * T * T, N = (size_t)B * T;
    RefKeep rk = ref_keep(cs->mode);
    int needs_gate = ref_needs_gate(cs->mode);
    int in_graph = ref_gate_in_graph(cs->mode, cs->gg);
    int ste = (cs->mode == ATTN_HARD || cs->mode == ATTN_BLOCK) && cs->gg != GATE_GRAD_NONE;
    int tokens = ref_routes_tokens(cs->mode);
    int aux = cs->mode == ATTN_SOFT || cs->mode == ATTN_SOFT_PROB || tokens || ste;  // as model.c
    x.qkv = falloc(N * QW);
    fill_normal(x.qkv, N * QW, 1.0f);
    if (needs_gate) {
        x.gq = falloc(N * GW);
        x.gk = falloc(N * GW);
        fill_normal(x.gq, N * GW, 1.0f);
        fill_normal(x.gk, N * GW, 1.0f);
    }
    x.out = falloc(N * C);
    x.att = falloc(TT);
    x.auxS = aux ? falloc(TT) : NULL;
    x.auxs = aux ? falloc(TT) : NULL;
    x.lse = ste ? falloc((size_t)B * NH * T) : NULL;
    x.r = falloc(N * C);
    fill_normal(x.r, N * C, 1.0f);
    float *feed = NULL;
    if (cs->feed) {  // random 0/1 masks, causal applied, sometimes an empty row
        size_t nf = cs->feed == 2 ? TT : (size_t)NH * T * T;
        feed = falloc(nf);
        for (size_t e = 0; e < nf; e++) {
            int i = (int)((e / T) % T), j = (int)(e % T);
            feed[e] = j <= i && rng_uniform(&rng) < 0.6f ? 1.0f : 0.0f;
        }
        a->given_keep = feed;
        a->given_keep_per_batch = cs->feed == 2;
    }
    char what[160];
    const FdOpts *fo = nthreads > 1 ? &ATTN_FD_SAMPLED : &ATTN_FD;

    // --- forward vs the independent reference
    double L0 = attn_eval(&x, &(int){0});
    x.base = xcalloc(TT, 1);
    for (size_t e = 0; e < TT; e++) x.base[e] = x.att[e] != 0.0f;
    unsigned char *keep_in = xcalloc(TT, 1);
    if (cs->feed) {
        for (size_t e = 0; e < TT; e++) {
            size_t bh = e / ((size_t)T * T), w = e % ((size_t)T * T);
            keep_in[e] = feed[(cs->feed == 2 ? bh : bh % NH) * T * T + w] > 0.5f;
        }
    } else {
        memcpy(keep_in, x.base, TT);
    }
    double *Wr = xcalloc(TT, sizeof(double)), *yr = xcalloc(N * C, sizeof(double));
    double *dgq_r = ste ? xcalloc(N * GW, sizeof(double)) : NULL;
    double *dgk_r = ste ? xcalloc(N * GW, sizeof(double)) : NULL;
    int near_tie;
    attn_reference(Wr, yr, dgq_r, dgk_r, &x, cs, keep_in, &near_tie);
    if (cs->dropout == 0.0f) {
        double ew = 0, ey = 0;
        for (size_t e = 0; e < TT; e++) ew = fmax(ew, fabs(Wr[e] - x.att[e]));
        for (size_t e = 0; e < N * C; e++) ey = fmax(ey, fabs(yr[e] - x.out[e]));
        snprintf(what, sizeof what, "%s: forward vs plain loops (W err %.3g, y err %.3g, %d near "
                 "ties)", cs->label, ew, ey, near_tie);
        CHECK(near_tie == 0 && ew < 2e-5 && ey < 5e-5, "%s", what);
    }
    // structure of the kept sets
    long empty = 0, wrong_count = 0;
    for (int bh = 0; bh < B * NH; bh++)
        for (int i = 0; i < T; i++) {
            const unsigned char *kr = x.base + ((size_t)bh * T + i) * T;
            int n = 0, future = 0;
            for (int j = 0; j < T; j++) n += kr[j], future += j > i && kr[j];
            empty += n == 0;
            CHECK(future == 0, "%s: row %d keeps a future key", cs->label, i);
            // blocks and tokens: checked against the reference
            int blocks = rk == R_BLOCKS_G || rk == R_BLOCKS_S || tokens;
            int expect = blocks ? -1 : rk == R_ALL ? i + 1
                         : rk == R_WINDOW || cs->scope == TOPK_CAUSAL
                             ? (i + 1 < cs->k ? i + 1 : cs->k) : -1;
            if (!cs->feed && expect >= 0 && n != expect) wrong_count++;
            if (n == 0) {  // an empty row outputs 0
                int b = bh / NH, h = bh % NH;
                CHECK(max_abs(x.out + ((size_t)b * T + i) * C + h * a->hd, a->hd) == 0.0,
                      "%s: empty row (bh %d, i %d) has a non-zero output", cs->label, bh, i);
            }
        }
    CHECK(wrong_count == 0, "%s: %ld rows keep the wrong number of keys", cs->label, wrong_count);
    if (rk == R_TOKENS) {  // exactly min(k, T) active queries per head (each keeps itself)
        long want = (long)B * NH * (T - (cs->k < T ? cs->k : T));
        CHECK(empty == want, "%s: %ld rows without output, want %ld", cs->label, empty, want);
    }
    if (cs->scope == TOPK_ALL && rk != R_ALL && rk != R_WINDOW && !cs->feed)
        CHECK(empty > 0, "%s: expected some empty rows with topk_scope=all", cs->label);
    if (rk == R_FIXED && !cs->feed)  // the same mask for every batch row
        CHECK(memcmp(x.base, x.base + (size_t)NH * T * T, (size_t)(B - 1) * NH * T * T) == 0,
              "%s: random_fixed masks differ between batch rows", cs->label);
    if (rk == R_FRESH && !cs->feed) {
        CHECK(memcmp(x.base, x.base + (size_t)NH * T * T, (size_t)NH * T * T) != 0,
              "%s: stochastic masks identical for two batch rows", cs->label);
        AttnArgs save = *a;  // another forward pass (noise key) draws another mask
        a->noise_key ^= 0x5555;
        attention_forward(x.out, x.att, x.auxS, x.auxs, x.lse, x.qkv, x.gq, x.gk, a);
        int same = 1;
        for (size_t e = 0; e < TT; e++) same &= (x.att[e] != 0.0f) == x.base[e];
        CHECK(!same, "%s: another noise key gives the same stochastic masks", cs->label);
        *a = save;
    }

    // --- analytic gradients
    double L1 = attn_eval(&x, &(int){0});
    CHECK(L0 == L1, "%s: forward is not deterministic", cs->label);
    float *dqkv = falloc(N * QW);
    float *dgq = needs_gate ? falloc(N * GW) : NULL, *dgk = needs_gate ? falloc(N * GW) : NULL;
    if (dgq)
        for (size_t e = 0; e < N * GW; e++) dgq[e] = dgk[e] = 7.0f;  // sentinel
    for (size_t e = 0; e < N * QW; e++) dqkv[e] = 9.0f;  // overwritten, not accumulated
    attention_backward(dqkv, dgq, dgk, x.r, x.qkv, x.gq, x.gk, x.att, x.auxS, x.auxs, x.lse, a);
    if (needs_gate && !in_graph) {  // hard, gate_grad none: no gate gradient is produced
        int untouched = 1;
        for (size_t e = 0; e < N * GW; e++) untouched &= dgq[e] == 7.0f && dgk[e] == 7.0f;
        CHECK(untouched, "%s: attention_backward wrote dgq/dgk with the gate out of the graph",
              cs->label);
    }
    x.check_pattern = rk == R_TOPK_S || rk == R_TOPK_G || rk == R_BLOCKS_S || rk == R_BLOCKS_G ||
                      tokens;
    snprintf(what, sizeof what, "%s%s: d qkv", cs->label, nthreads > 1 ? " (2 threads)" : "");
    fd_check(what, x.qkv, dqkv, N * QW, fo, attn_eval, &x);
    if (in_graph && !ste) {
        snprintf(what, sizeof what, "%s: d gq", cs->label);
        fd_check(what, x.gq, dgq, N * GW, fo, attn_eval, &x);
        snprintf(what, sizeof what, "%s: d gk", cs->label);
        fd_check(what, x.gk, dgk, N * GW, fo, attn_eval, &x);
    }
    if (needs_gate && !in_graph) {
        // the loss depends on G through its ranking only: unchanged kept sets, unchanged loss
        int moved = 0, tried = 0;
        for (int t = 0; t < 40; t++) {
            float *g = t & 1 ? x.gk : x.gq;
            size_t idx = (size_t)rng_below(&rng, N * GW);
            float g0 = g[idx];
            int cp, cm;
            g[idx] = g0 + 1e-3f;
            double lp = attn_eval(&x, &cp);
            g[idx] = g0 - 1e-3f;
            double lm = attn_eval(&x, &cm);
            g[idx] = g0;
            if (cp || cm) continue;
            tried++;
            moved += lp != lm;
        }
        CHECK(tried >= 30 && moved == 0, "%s: gate values (not only their ranking) move the loss "
              "(%d of %d)", cs->label, moved, tried);
    }
    if (ste) {  // straight-through gate gradient vs the plain-loop formula
        attn_eval(&x, &(int){0});  // restore the saved forward state
        attention_backward(dqkv, dgq, dgk, x.r, x.qkv, x.gq, x.gk, x.att, x.auxS, x.auxs, x.lse, a);
        double mq = 0, mk = 0, eq = 0, ek = 0;
        for (size_t e = 0; e < N * GW; e++) {
            mq = fmax(mq, fabs(dgq_r[e]));
            mk = fmax(mk, fabs(dgk_r[e]));
        }
        int bad = 0;
        for (size_t e = 0; e < N * GW; e++) {
            double d1 = fabs(dgq[e] - dgq_r[e]), d2 = fabs(dgk[e] - dgk_r[e]);
            eq = fmax(eq, d1);
            ek = fmax(ek, d2);
            bad += d1 > 1e-4 * fabs(dgq_r[e]) + 1e-5 * mq + 1e-7;
            bad += d2 > 1e-4 * fabs(dgk_r[e]) + 1e-5 * mk + 1e-7;
        }
        CHECK(bad == 0 && mq > 0 && mk > 0, "%s: STE gate gradient vs formula: %d off (max err "
              "%.3g / %.3g of max %.3g / %.3g)", cs->label, bad, eq, ek, mq, mk);
        n_fd_checked += 2 * (long)(N * GW);
    }
    n_fd_cases++;
    xfree(a->scratch), xfree(x.qkv), xfree(x.gq), xfree(x.gk), xfree(x.out), xfree(x.att);
    xfree(x.auxS), xfree(x.auxs), xfree(x.lse), xfree(x.r), xfree(feed), xfree(x.base);
    xfree(keep_in), xfree(Wr), xfree(yr), xfree(dgq_r), xfree(dgk_r), xfree(dqkv), xfree(dgq);
    xfree(dgk);
}

// Trailing AttnCase fields (K/V heads, block keys) default to 0 where a row leaves them out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static void test_attention(void) {
    const AttnCase cases[] = {
        // mode            k  scope        gate_grad       tau   drop  B  T NH hd dg feed label
        {ATTN_DENSE,        3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "dense", 0},
        {ATTN_ORACLE,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "oracle causal", 0},
        {ATTN_ORACLE,       2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "oracle all", 0},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "soft", 0},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 0.5f, 0.0f, 2, 6, 2, 4, 3, 0, "soft tau 0.5", 0},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "soft_prob", 0},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 2.5f, 0.0f, 1, 8, 3, 2, 2, 0, "soft_prob tau 2.5", 0},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard causal", 0},
        {ATTN_HARD,         2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard all", 0},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_STE,  1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard ste causal", 0},
        {ATTN_HARD,         2, TOPK_ALL,    GATE_GRAD_STE,  1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard ste all", 0},
        {ATTN_HARD,         4, TOPK_CAUSAL, GATE_GRAD_STE,  0.4f, 0.0f, 2, 9, 2, 3, 5, 0, "hard ste tau 0.4", 0},
        {ATTN_STOCHASTIC,   3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "stochastic causal", 0},
        {ATTN_STOCHASTIC,   2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "stochastic all", 0},
        {ATTN_RANDOM_FIXED, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "random_fixed causal", 0},
        {ATTN_RANDOM_FIXED, 2, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 3, 7, 2, 4, 3, 0, "random_fixed all", 0},
        {ATTN_WINDOW,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "window", 0},
        {ATTN_WINDOW,       1, TOPK_ALL,    GATE_GRAD_NONE, 1.0f, 0.0f, 2, 5, 1, 4, 3, 0, "window k 1", 0},
        // grouped K/V heads (Llama, Qwen): 4 query heads on 2 or 1 K/V heads
        {ATTN_DENSE,        3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 4, 4, 3, 0, "dense gqa 4/2", 2},
        {ATTN_ORACLE,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 7, 4, 4, 3, 0, "oracle gqa 4/1", 1},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 7, 4, 2, 3, 0, "soft gqa 4/2", 2},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 6, 4, 2, 3, 0, "soft_prob gqa 4/2", 2},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_STE,  1.0f, 0.0f, 1, 7, 4, 2, 3, 0, "hard ste gqa 4/1", 1},
        {ATTN_WINDOW,       2, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.2f, 2, 6, 4, 2, 3, 0, "window dropout gqa 4/2", 2},
        {ATTN_RANDOM_FIXED, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 7, 4, 2, 3, 0, "random_fixed gqa 4/2", 2},
        {ATTN_STOCHASTIC,   3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 6, 2, 4, 3, 2, "stochastic fed masks", 0},
        {ATTN_RANDOM_FIXED, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 6, 2, 4, 3, 1, "random_fixed fed masks", 0},
        // dropout on the attention weights: stateless masks, so the same key re-runs the same
        {ATTN_DENSE,        3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "dense dropout", 0},
        {ATTN_SOFT,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 0.8f, 0.3f, 2, 7, 2, 4, 3, 0, "soft dropout", 0},
        {ATTN_SOFT_PROB,    3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "soft_prob dropout", 0},
        {ATTN_ORACLE,       3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "oracle dropout", 0},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.3f, 2, 7, 2, 4, 3, 0, "hard dropout", 0},
        // block selection (NSA, MoBA): block size, blocks kept, window in the last three fields
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "block", 0, 3, 2, 0},
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_STE,  1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "block ste", 0, 3, 2, 0},
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_STE,  0.6f, 0.0f, 2, 13, 2, 3, 4, 0, "block ste window", 0, 4, 1, 3},
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 9, 4, 2, 3, 0, "block gqa 4/2 window", 2, 2, 2, 2},
        {ATTN_BLOCK_ORACLE, 0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "block_oracle", 0, 3, 2, 0},
        {ATTN_BLOCK_ORACLE, 0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 10, 2, 4, 3, 0, "block_oracle window", 0, 2, 2, 3},
        {ATTN_BLOCK_ORACLE, 0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.2f, 2, 9, 2, 4, 3, 0, "block_oracle dropout", 0, 1, 3, 1},
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 8, 2, 4, 3, 0, "block size 1 = hard", 0, 1, 3, 0},
        // ste_dense: the straight-through gradient normalised over every visible key (bounded)
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_STE_DENSE, 1.0f, 0.0f, 2, 7, 2, 4, 3, 0, "hard ste_dense"},
        {ATTN_HARD,         2, TOPK_ALL,    GATE_GRAD_STE_DENSE, 0.8f, 0.0f, 2, 8, 2, 4, 3, 0, "hard ste_dense all (empty rows)"},
        {ATTN_HARD,         3, TOPK_CAUSAL, GATE_GRAD_STE_DENSE, 1.0f, 0.0f, 1, 9, 4, 2, 3, 0, "hard ste_dense gqa 4/2", 2},
        {ATTN_BLOCK,        0, TOPK_CAUSAL, GATE_GRAD_STE_DENSE, 1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "block ste_dense window", 0, 3, 1, 2},
        // expert-choice heads (MoSA): k tokens per head, router = gk's first column per head
        {ATTN_EXPERT_CHOICE, 4, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "expert_choice"},
        {ATTN_EXPERT_CHOICE, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 0.7f, 0.0f, 2, 9, 3, 3, 1, 0, "expert_choice d_g 1 tau"},
        {ATTN_EXPERT_CHOICE, 5, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 10, 4, 2, 2, 0, "expert_choice gqa 4/2", 2},
        {ATTN_EXPERT_CHOICE, 4, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.2f, 2, 9, 2, 4, 3, 0, "expert_choice dropout"},
        {ATTN_EXPERT_CHOICE, 20, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 7, 2, 4, 3, 0, "expert_choice k >= T = soft_prob on r"},
        {ATTN_EXPERT_CHOICE_CAUSAL, 4, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 2, 11, 2, 4, 3, 0, "expert_choice_causal"},
        {ATTN_EXPERT_CHOICE_CAUSAL, 2, TOPK_CAUSAL, GATE_GRAD_NONE, 1.3f, 0.0f, 2, 9, 2, 3, 2, 0, "expert_choice_causal k 2 tau"},
        {ATTN_EXPERT_CHOICE_CAUSAL, 3, TOPK_CAUSAL, GATE_GRAD_NONE, 1.0f, 0.0f, 1, 10, 4, 2, 3, 0, "expert_choice_causal gqa 4/1", 1},
    };
    // one thread for most (fast and steady on a loaded machine), every third with two
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_case(&cases[i], i % 3 ? 1 : 2);
}
#pragma GCC diagnostic pop

// Expert choice over the whole sequence is not causal (a later token's router can push an
// earlier token out of the head's choice); the prefix variant is: no output at i reads anything
// after i. Token T-1's router goes from far below to far above the others; its q/k/v change too.
static void test_expert_choice_causality(void) {
    for (int causal = 0; causal < 2; causal++) {
        AttnArgs a = {0};
        a.B = 1, a.T = 10, a.NH = 2, a.hd = 4, a.C = 8, a.dg = 2, a.k = 3, a.tau = 1.0f;
        a.mode = causal ? ATTN_EXPERT_CHOICE_CAUSAL : ATTN_EXPERT_CHOICE;
        a.nthreads = 1;
        a.scratch = falloc(attention_scratch_floats(a.T));
        int T = a.T, C = a.C, GW = a.NH * a.dg, QW = attention_qkv_width(&a);
        size_t TT = (size_t)a.NH * T * T;
        float *qkv = falloc((size_t)T * QW), *gq = falloc((size_t)T * GW), *gk = falloc((size_t)T * GW);
        float *out0 = falloc((size_t)T * C), *out1 = falloc((size_t)T * C), *att = falloc(TT);
        float *auxS = falloc(TT), *auxs = falloc(TT);
        fill_normal(qkv, (size_t)T * QW, 1.0f);
        fill_normal(gq, (size_t)T * GW, 1.0f);
        fill_normal(gk, (size_t)T * GW, 1.0f);
        for (int h = 0; h < a.NH; h++) gk[(size_t)(T - 1) * GW + h * a.dg] = -10.0f;
        attention_forward(out0, att, auxS, auxs, NULL, qkv, gq, gk, &a);
        for (int h = 0; h < a.NH; h++) gk[(size_t)(T - 1) * GW + h * a.dg] = 10.0f;
        for (int c = 0; c < QW; c++) qkv[(size_t)(T - 1) * QW + c] += 1.0f;
        attention_forward(out1, att, auxS, auxs, NULL, qkv, gq, gk, &a);
        int earlier_same = memcmp(out0, out1, (size_t)(T - 1) * C * sizeof(float)) == 0;
        if (causal)
            CHECK(earlier_same, "expert_choice_causal: a change at the last token changed an "
                  "earlier output");
        else
            CHECK(!earlier_same, "expert_choice: the last token's router did not change the "
                  "earlier outputs (its choice is over the whole sequence)");
        xfree(a.scratch), xfree(qkv), xfree(gq), xfree(gk), xfree(out0), xfree(out1), xfree(att);
        xfree(auxS), xfree(auxs);
    }
}

// Where test_grad.c had left the generator on reaching these checks (see grad_init).
static const Rng RNG_START = {{0xaf24ca31b06c340cull, 0x0a4ad97862c61074ull,
                               0xbe8af58a8a2a9b92ull, 0xbb087df54ad3ca9cull}};

int main(void) {
    double t_start = now_seconds();
    grad_init(&RNG_START);
    test_route_table();
    test_attention();
    test_expert_choice_causality();
    return grad_summary("grad_attention", t_start);
}
