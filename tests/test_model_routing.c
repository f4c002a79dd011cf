// test_model_routing.c: the routing machinery: top-k against brute force, the structure of
// window masks and kept fractions, and causality (no mode lets a later token reach an earlier
// position).
#include "model_check.h"

// ----------------------------------------------------------------------------- top-k
// Brute force: the min(k, n) best by (NaN first, as torch.topk ranks it; then larger value
// first, lower index first).
static void brute_topk(unsigned char *keep, const float *x, int n, int k) {
    int idx[128];
    for (int j = 0; j < n; j++) idx[j] = j;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0; b--) {
            int p = idx[b - 1], q = idx[b];
            int pn = isnan(x[p]), qn = isnan(x[q]);
            int q_first = pn != qn ? qn : (!pn && x[q] != x[p]) ? x[q] > x[p] : q < p;
            if (!q_first) break;
            idx[b - 1] = q, idx[b] = p;
        }
    memset(keep, 0, (size_t)n);
    for (int j = 0; j < (k < n ? k : n); j++) keep[idx[j]] = 1;
}

static void random_row(float *x, int n, int kind) {
    for (int j = 0; j < n; j++) {
        switch (kind) {
        case 0: x[j] = rng_normal(&rng); break;
        case 1: x[j] = (float)rng_below(&rng, 3); break;  // many ties
        case 2: x[j] = (float)rng_below(&rng, 2) - 0.5f; break;
        default: {  // specials
            uint64_t r = rng_below(&rng, 8);
            x[j] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : r == 3 ? 0.0f
                                                                  : rng_normal(&rng);
        }
        }
    }
}

static void test_topk(void) {
    float x[128], pairs[256];
    unsigned char keep[128], ref[128];
    long rows = 0, bad = 0;
    for (int n = 1; n <= 70; n++)
        for (int rep = 0; rep < 12; rep++) {
            int kind = rep % 4;
            int k = 1 + (int)rng_below(&rng, (uint64_t)n + 2);
            if (rep == 0) k = 1;
            if (rep == 1) k = n;
            random_row(x, n, kind);
            memset(keep, 7, sizeof keep);
            int got = topk_select(keep, x, n, k, pairs);
            brute_topk(ref, x, n, k);
            rows++;
            if (got != (k < n ? k : n) || memcmp(keep, ref, (size_t)n) != 0) {
                if (bad++ < 5) printf("  topk_select n %d k %d kind %d: mismatch\n", n, k, kind);
            }
        }
    CHECK(bad == 0, "topk_select vs brute force: %ld of %ld rows differ", bad, rows);
    long rbad = 0, rrows = 0;
    for (int T = 1; T <= 24; T++)
        for (int i = 0; i < T; i++)
            for (int rep = 0; rep < 4; rep++) {
                int k = 1 + (int)rng_below(&rng, (uint64_t)T + 1);
                TopkScope scope = rep & 1 ? TOPK_ALL : TOPK_CAUSAL;
                random_row(x, T, rep < 2 ? 0 : 1);
                memset(keep, 7, sizeof keep);
                topk_row(keep, x, i, T, k, scope, pairs);
                int n = scope == TOPK_CAUSAL ? i + 1 : T;
                brute_topk(ref, x, n, k);
                for (int j = n; j < T; j++) ref[j] = 0;
                for (int j = i + 1; j < T; j++) ref[j] = 0;
                rrows++;
                if (memcmp(keep, ref, (size_t)T) != 0 && rbad++ < 5)
                    printf("  topk_row T %d i %d k %d scope %d: mismatch\n", T, i, k, (int)scope);
            }
    CHECK(rbad == 0, "topk_row vs brute force: %ld of %ld rows differ", rbad, rrows);
}

// ----------------------------------------------------------------------------- window, kept
static void test_window_and_kept(void) {
    int in[16], tg[16];
    random_batch(in, tg, 16, 11);
    {
        Config c;
        const char *const kv[] = {"attn", "window", "k", "3,5", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        model_forward(&m, in, tg, 2, 8);
        int bad = 0;
        double worst_sum = 0;
        for (int l = 0; l < 2; l++) {
            int k = m.plan.attn.k[l];
            for (int bh = 0; bh < 4; bh++)
                for (int i = 0; i < 8; i++) {
                    const float *w = m.layer[l].att + ((size_t)bh * 8 + i) * 8;
                    double sum = 0;
                    int n = 0;
                    for (int j = 0; j < 8; j++) {
                        int want = j <= i && j >= i - k + 1;
                        bad += (w[j] != 0.0f) != want;
                        n += w[j] != 0.0f;
                        sum += w[j];
                    }
                    bad += n != (k < i + 1 ? k : i + 1);
                    worst_sum = fmax(worst_sum, fabs(sum - 1));
                }
        }
        CHECK(bad == 0 && worst_sum < 1e-6, "window: %d wrong entries, row sums off by %g", bad,
              worst_sum);
        LayerDiag d[MAX_LAYERS];
        diagnostics_compute(d, &m);
        CHECK_CLOSE(d[0].kept_fraction, (1 + 2 + 3 * 6) / 36.0, 1e-12, "window k=3 kept_fraction");
        CHECK_CLOSE(d[1].kept_fraction, (1 + 2 + 3 + 4 + 5 * 4) / 36.0, 1e-12,
                    "window k=5 kept_fraction");
        model_free(&m);
    }
    // kept_fraction = sum_i min(k, i+1) / sum_i (i+1) under causal scope; 1 for dense/soft
    static const char *const modes[] = {"oracle", "hard", "stochastic", "random_fixed", "dense",
                                        "soft", "soft_prob"};
    for (int mi = 0; mi < 7; mi++)
        for (int k = 1; k <= 9; k += 4) {
            Config c;
            char ks[8];
            snprintf(ks, sizeof ks, "%d", k);
            const char *const kv[] = {"attn", modes[mi], "k", ks, NULL};
            small_config(&c, kv);
            Model m;
            model_build(&m, &c);
            model_forward(&m, in, tg, 2, 8);
            LayerDiag d[MAX_LAYERS];
            diagnostics_compute(d, &m);
            double num = 0, den = 0;
            for (int i = 0; i < 8; i++) num += k < i + 1 ? k : i + 1, den += i + 1;
            int all = mi >= 4;
            for (int l = 0; l < 2; l++) {
                char what[80];
                snprintf(what, sizeof what, "%s k=%d layer %d kept_fraction", modes[mi], k, l);
                CHECK_CLOSE(d[l].kept_fraction, all ? 1.0 : num / den, 1e-12, what);
                CHECK(d[l].empty_rows == 0, "%s: %ld empty rows with causal scope", what,
                      d[l].empty_rows);
                // causal scope: precision = recall = F1 (both keep min(k, i+1) per row)
                CHECK(fabs(d[l].gate_precision - d[l].gate_recall) < 1e-12 &&
                          fabs(d[l].gate_f1 - d[l].gate_recall) < 1e-12,
                      "%s: precision %g recall %g f1 %g", what, d[l].gate_precision,
                      d[l].gate_recall, d[l].gate_f1);
                CHECK(d[l].topk_mass > 0 && d[l].topk_mass <= 1 + 1e-6 &&
                          d[l].entropy_ratio > 0 && d[l].entropy_ratio <= 1 + 1e-6,
                      "%s: topk_mass %g entropy_ratio %g", what, d[l].topk_mass,
                      d[l].entropy_ratio);
                if (k >= 8) CHECK_CLOSE(d[l].topk_mass, 1.0, 1e-6, "topk_mass with k >= T");
                // the kept set of the forward is the one the diagnostics count
                long kept = 0, vis = 0, empty = 0;
                for (int bh = 0; bh < 4; bh++)
                    for (int i = 0; i < 8; i++) {
                        int n = 0;
                        for (int j = 0; j <= i; j++) n += m.layer[l].att[((size_t)bh * 8 + i) * 8 + j] != 0.0f;
                        kept += n, vis += i + 1, empty += n == 0;
                    }
                CHECK_CLOSE(d[l].kept_fraction, (double)kept / vis, 1e-12, what);
            }
            model_free(&m);
        }
    // topk_scope=all: rows can be empty; empty_rows counts the all-zero rows of the forward
    {
        Config c;
        const char *const kv[] = {"attn", "hard,oracle", "topk_scope", "all", "k", "2", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        model_forward(&m, in, tg, 2, 8);
        LayerDiag d[MAX_LAYERS];
        diagnostics_compute(d, &m);
        for (int l = 0; l < 2; l++) {
            long kept = 0, vis = 0, empty = 0;
            for (int bh = 0; bh < 4; bh++)
                for (int i = 0; i < 8; i++) {
                    int n = 0;
                    for (int j = 0; j < 8; j++) n += m.layer[l].att[((size_t)bh * 8 + i) * 8 + j] != 0.0f;
                    kept += n, vis += i + 1, empty += n == 0;
                }
            CHECK(empty > 0 && d[l].empty_rows == empty, "scope all layer %d: empty_rows %ld, "
                  "all-zero rows %ld", l, d[l].empty_rows, empty);
            CHECK_CLOSE(d[l].kept_fraction, (double)kept / vis, 1e-12, "scope all kept_fraction");
        }
        CHECK(isfinite(m.loss), "scope all: loss %g", m.loss);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------- causality
// With topk_scope=causal no mode lets a later token reach an earlier position: changing the
// token at position 6 leaves the logits of positions 0..5 unchanged, and so does running only
// the first 6 positions (T = 6; stochastic draws fresh masks per forward and is left out of
// that part; random_fixed's noise is indexed by (i, j), so it must agree).
static void test_causality(void) {
    static const char *const modes[] = {"dense", "oracle", "soft", "soft_prob", "hard", "window",
                                        "stochastic", "random_fixed"};
    int in[16], in2[16];
    random_batch(in, NULL, 16, 11);
    memcpy(in2, in, sizeof in);
    in2[6] = (in[6] + 1) % 11, in2[8 + 6] = (in[8 + 6] + 5) % 11;
    for (int mi = 0; mi < 8; mi++) {
        Config c;
        const char *const kv[] = {"attn", modes[mi], "gate_grad", "ste", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        m.training = 1;  // pin the forward index (stochastic masks)
        m.forward_count = 5;
        model_forward(&m, in, NULL, 2, 8);
        float *l8 = xcalloc(16 * 11, sizeof(float));
        memcpy(l8, m.logits, 16 * 11 * sizeof(float));
        m.forward_count = 5;
        model_forward(&m, in2, NULL, 2, 8);
        double e = 0, moved = 0;
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 8; t++)
                for (int v = 0; v < 11; v++) {
                    double d = fabs(l8[(b * 8 + t) * 11 + v] - m.logits[(b * 8 + t) * 11 + v]);
                    if (t < 6) e = fmax(e, d);
                    else moved = fmax(moved, d);
                }
        CHECK(e <= 1e-6 && moved > 1e-4, "%s: a later token moves earlier logits by %g (later "
              "ones by %g)", modes[mi], e, moved);
        if (mi != 6) {  // not stochastic: a new forward draws new masks
            int in6[12];
            for (int b = 0; b < 2; b++) memcpy(in6 + b * 6, in + b * 8, 6 * sizeof(int));
            model_forward(&m, in6, NULL, 2, 6);
            double e6 = 0;
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < 6; t++)
                    for (int v = 0; v < 11; v++)
                        e6 = fmax(e6, fabs(l8[(b * 8 + t) * 11 + v] - m.logits[(b * 6 + t) * 11 + v]));
            CHECK(e6 <= 1e-5, "%s: logits of T = 6 differ from the first 6 of T = 8 by %g",
                  modes[mi], e6);
        }
        xfree(l8);
        model_free(&m);
    }
}


// Where test_model.c had left the generator on reaching these checks (see model_check_init).
static const Rng RNG_START = {{0xdde6ad65624d2495ull, 0x29287dcc175ab6e5ull,
                               0xba2e98c7d13a7c76ull, 0xe4982f976d341285ull}};

int main(void) {
    double t_start = now_seconds();
    model_check_init(&RNG_START);
    test_topk();
    test_window_and_kept();
    test_causality();
    return model_check_summary("model_routing", t_start);
}
