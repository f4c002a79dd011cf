// bench.c: `routelab bench`: times full training steps (forward, loss, backward, clip, AdamW)
// on random tokens, like ../shared/bench/pytorch_peer.py does for the PyTorch twin, and prints
// one JSON line: tokens/s (batch x seq_len / median step), the per-operation breakdown, the
// model FLOP rate and peak memory. `--sgemm` instead measures OpenBLAS's sgemm ceiling.
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "common.h"
#include "json_out.h"
#include "model.h"
#include "options.h"
#include "profile.h"
#include "result_keys.h"

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
    const char *preset = "paper", *mode = NULL;
    int steps = 5, warmup = 2, sgemm = 0;
    const Option opts[] = {
        {"preset", OPT_STRING, &preset, "paper", "model preset: paper | small", 0, 0},
        {"steps", OPT_INT, &steps, "5", "timed steps", 1, INT_MAX},
        {"warmup", OPT_INT, &warmup, "2", "untimed steps first", 0, INT_MAX},
        {"sgemm", OPT_FLAG, &sgemm, NULL, "measure the sgemm ceiling instead", 0, 0},
        {"mode", OPT_STRING, &mode, NULL, "the same as --attn", 0, 0},
    };
    OptSpec os = {.cmd = "bench", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1};
    Config c;
    config_defaults(&c);
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab bench [--preset=paper|small] [--config=FILE] [--attn=MODE]\n"
               "       [--batch=B] [--steps=5] [--warmup=2] [--threads=N] [--key=value ...] | --sgemm\n"
               "  Times full training steps on random tokens and prints one JSON line:\n"
               "  tok_s, step_s_median, fwd/bwd/opt medians, the per-operation breakdown,\n"
               "  gflops_model (6 N_nonemb + 6 d V + 12 L T d FLOPs per token, as the PyTorch\n"
               "  peer counts), peak_rss_mib. paper: 6 layers, d 256, 4 heads, T 512, vocab\n"
               "  50257, k 64; small: 4 layers, d 128, 4 heads, T 256, vocab 8192, k 32.\n"
               "  --sgemm prints the GFLOP/s of a 2048^3 OpenBLAS sgemm (the ceiling).\n");
        return 0;
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
        fatal("bench: --preset must be paper or small, got '%s'", preset);
    }
    config_set(&c, "dropout", "0", "bench");  // as the peer: dropout 0
    config_set(&c, "lr", "3e-4", "bench");
    config_set(&c, "threads", "2", "bench");
    options_apply_config(&os, &c, argc, argv);  // --config=FILE, then --key=value
    if (mode) config_set(&c, "attn", mode, "command line");
    config_resolve(&c);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (sgemm) {
        cJSON *o = cJSON_CreateObject();
        json_add_number(o, "sgemm_gflops", sgemm_ceiling(2048, 5));
        json_add_number(o, "n", 2048);
        json_add_number(o, RK_THREADS, omp_get_max_threads());
        json_print_line(stdout, o);
        cJSON_Delete(o);
        return 0;
    }
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
    double n_tok = (double)N;
    cJSON *o = cJSON_CreateObject();
    json_add_number(o, "tok_s", n_tok / med);
    json_add_number(o, "step_s_median", med);
    json_add_number(o, RK_PEAK_RSS_MIB, peak_rss_bytes() / 1048576.0);
    json_add_number(o, RK_THREADS, omp_get_max_threads());
    cJSON_AddStringToObject(o, "config", preset);
    cJSON_AddStringToObject(o, "mode", c.attn);
    json_add_number(o, "batch", B);
    json_add_number(o, "n_layer", c.n_layer);
    json_add_number(o, "d_model", c.d_model);
    json_add_number(o, "seq_len", T);
    json_add_number(o, "vocab_size", c.vocab_size);
    // k: a number, or the per-layer list as text (it was written bare before)
    char *kend = NULL;
    long kv = strtol(c.k, &kend, 10);
    if (c.k[0] && !*kend) json_add_number(o, "k", (double)kv);
    else cJSON_AddStringToObject(o, "k", c.k);
    cJSON_AddStringToObject(o, "precision", c.precision);
    json_add_number(o, RK_STEPS, steps);
    json_add_number(o, "warmup", warmup);
    json_add_number(o, "fwd_s_median", median(fwd, steps));
    json_add_number(o, "bwd_s_median", median(bwd, steps));
    json_add_number(o, "opt_s_median", median(opt, steps));
    json_add_number(o, "flops_per_token_model", flops_tok);
    json_add_number(o, "gflops_model", flops_tok * n_tok / med / 1e9);
    json_add_number(o, "loss_first", loss_first);
    json_add_number(o, "loss_last", loss_last);
    cJSON *ops = cJSON_AddObjectToObject(o, "ops_s_per_step");
    double accounted = 0.0;
    for (int op = 0; op < OP_COUNT; op++) {
        json_add_number(ops, profile_op_name((ProfileOp)op), profile_seconds[op] / steps);
        accounted += profile_seconds[op];
    }
    json_add_number(ops, "other", (total - accounted) / steps);
    json_print_line(stdout, o);
    cJSON_Delete(o);
    xfree(inputs), xfree(targets), xfree(step_s), xfree(fwd), xfree(bwd), xfree(opt);
    model_free(&m);
    return 0;
}
