// bench.c: `routelab bench`: times full training steps (forward, loss, backward, clip, AdamW)
// on random tokens, like ../shared/bench/pytorch_peer.py does for the PyTorch twin, and prints
// one JSON line: tokens/s (batch x seq_len / median step), the per-operation breakdown, the
// model FLOP rate and peak memory. `--sgemm` instead measures OpenBLAS's sgemm ceiling.
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "common.h"
#include "model.h"
#include "profile.h"

static double median(double *x, int n) { return median_of(x, (size_t)n); }

// GFLOP/s of a large square sgemm: the ceiling the model's products are measured against.
static double sgemm_ceiling(int n, int reps) {
    float *a = xcalloc((size_t)n * n, sizeof(float)), *b = xcalloc((size_t)n * n, sizeof(float));
    float *c = xcalloc((size_t)n * n, sizeof(float));
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = rng_uniform(&r), b[i] = rng_uniform(&r);
    double *t = xcalloc((size_t)reps, sizeof(double));
    for (int i = -1; i < reps; i++) {  // one untimed warm-up
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        if (i >= 0) t[i] = now_seconds() - t0;
    }
    double g = 2.0 * n * n * (double)n / median(t, reps) / 1e9;
    xfree(a), xfree(b), xfree(c), xfree(t);
    return g;
}

int cmd_bench(int argc, char **argv) {
    const char *preset = "paper";
    int steps = 5, warmup = 2, sgemm = 0;
    Config c;
    config_defaults(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: routelab bench [--config=paper|small] [--attn=MODE] [--batch=B]\n"
                   "       [--steps=5] [--warmup=2] [--threads=N] [--key=value ...] | --sgemm\n"
                   "  Times full training steps on random tokens and prints one JSON line:\n"
                   "  tok_s, step_s_median, fwd/bwd/opt medians, the per-operation breakdown,\n"
                   "  gflops_model (6 N_nonemb + 6 d V + 12 L T d FLOPs per token, as the PyTorch\n"
                   "  peer counts), peak_rss_mib. paper: 6 layers, d 256, 4 heads, T 512, vocab\n"
                   "  50257, k 64; small: 4 layers, d 128, 4 heads, T 256, vocab 8192, k 32.\n"
                   "  --sgemm prints the GFLOP/s of a 2048^3 OpenBLAS sgemm (the ceiling).\n");
            return 0;
        }
        if (!strncmp(a, "--config=", 9)) preset = a + 9;
    }
    if (!strcmp(preset, "small")) {
        config_set(&c, "n_layer", "4", "preset small");
        config_set(&c, "d_model", "128", "preset small");
        config_set(&c, "d_ff", "512", "preset small");
        config_set(&c, "seq_len", "256", "preset small");
        config_set(&c, "vocab_size", "8192", "preset small");
        config_set(&c, "k", "32", "preset small");
        config_set(&c, "batch", "8", "preset small");
    } else if (strcmp(preset, "paper") != 0) {
        fatal("bench: --config must be paper or small, got '%s'", preset);
    }
    config_set(&c, "dropout", "0", "bench");  // as the peer: dropout 0
    config_set(&c, "lr", "3e-4", "bench");
    config_set(&c, "threads", "2", "bench");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (!strncmp(a, "--config=", 9)) continue;
        if (!strcmp(a, "--sgemm")) { sgemm = 1; continue; }
        if (!strncmp(a, "--steps=", 8)) { steps = atoi(a + 8); continue; }
        if (!strncmp(a, "--warmup=", 9)) { warmup = atoi(a + 9); continue; }
        if (!strncmp(a, "--mode=", 7)) { config_set(&c, "attn", a + 7, "command line"); continue; }
        if (strncmp(a, "--", 2) || !eq) fatal("bench: unexpected argument '%s' (see --help)", a);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        config_set(&c, key, eq + 1, "command line");
    }
    config_resolve(&c);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (sgemm) {
        printf("{\"sgemm_gflops\": %.1f, \"n\": 2048, \"threads\": %d}\n", sgemm_ceiling(2048, 5),
               omp_get_max_threads());
        return 0;
    }
    if (steps < 1 || warmup < 0) fatal("bench: --steps must be >= 1 and --warmup >= 0");
    Model m;
    model_build(&m, &c);
    int B = c.batch, T = c.seq_len;
    size_t N = (size_t)B * T;
    int *inputs = xcalloc(N, sizeof(int)), *targets = xcalloc(N, sizeof(int));
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < N; i++) {
        inputs[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
        targets[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
    }
    double *step_s = xcalloc((size_t)steps, sizeof(double)), *fwd = xcalloc((size_t)steps, sizeof(double));
    double *bwd = xcalloc((size_t)steps, sizeof(double)), *opt = xcalloc((size_t)steps, sizeof(double));
    double loss_first = 0.0, loss_last = 0.0;
    m.training = 1;
    for (int s = -warmup; s < steps; s++) {
        if (s == 0) {
            profile_enabled = 1;
            memset(profile_seconds, 0, sizeof profile_seconds);
        }
        double t0 = now_seconds();
        model_zero_grad(&m);
        double loss = model_forward(&m, inputs, targets, B, T);
        double t1 = now_seconds();
        model_backward(&m, 1.0f);
        double t2 = now_seconds();
        PROFILED(OP_OPTIMIZER, grad_clip(&m, c.grad_clip); adamw_step(&m, c.lr));
        double t3 = now_seconds();
        if (s == -warmup) loss_first = loss;
        loss_last = loss;
        if (s >= 0) step_s[s] = t3 - t0, fwd[s] = t1 - t0, bwd[s] = t2 - t1, opt[s] = t3 - t2;
    }
    double total = 0.0;
    for (int s = 0; s < steps; s++) total += step_s[s];
    double med = median(step_s, steps);
    size_t unique, paper, gates;
    params_count(&m.table, &c, &unique, &paper, &gates);
    double d = c.d_model, V = c.vocab_size, L = c.n_layer;
    double n_nonemb = (double)unique - gates - V * d - (double)c.seq_len * d;
    double flops_tok = 6 * n_nonemb + 6 * d * V + 12 * L * T * d;
    printf("{\"tok_s\": %.2f, \"step_s_median\": %.4f, \"peak_rss_mib\": %.1f, \"threads\": %d, "
           "\"config\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"n_layer\": %d, \"d_model\": %d, "
           "\"seq_len\": %d, \"vocab_size\": %d, \"k\": %s, \"precision\": \"%s\", \"steps\": %d, "
           "\"warmup\": %d, \"fwd_s_median\": %.4f, \"bwd_s_median\": %.4f, \"opt_s_median\": %.4f, "
           "\"flops_per_token_model\": %.0f, \"gflops_model\": %.1f, \"loss_first\": %.4f, "
           "\"loss_last\": %.4f, \"ops_s_per_step\": {",
           N / med, med, peak_rss_bytes() / 1048576.0, omp_get_max_threads(), preset, c.attn, B,
           c.n_layer, c.d_model, T, c.vocab_size, c.k, c.precision, steps, warmup, median(fwd, steps),
           median(bwd, steps), median(opt, steps), flops_tok, flops_tok * N / med / 1e9, loss_first,
           loss_last);
    double accounted = 0.0;
    for (int op = 0; op < OP_COUNT; op++) {
        printf("\"%s\": %.4f, ", profile_op_name((ProfileOp)op), profile_seconds[op] / steps);
        accounted += profile_seconds[op];
    }
    printf("\"other\": %.4f}}\n", (total - accounted) / steps);
    xfree(inputs), xfree(targets), xfree(step_s), xfree(fwd), xfree(bwd), xfree(opt);
    model_free(&m);
    return 0;
}
