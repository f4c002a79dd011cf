// repro.c: `routelab repro NAME`: the routing-absorption experiments as recipes. A recipe is a
// list of arms (a name, the config keys that define it, the paper's value); each arm runs once
// per seed as a `routelab train` child process in OUT/ARM/seedS. A finished run (result.json) is
// skipped and an interrupted one resumes, so a sweep can be stopped and restarted at any time.
// Outputs in OUT: results.json (every run's keys, seed and metrics), report.md (mean ± std over
// seeds beside the paper's numbers, and the derived gap shares) and PNG plots via gnuplot.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

// A scale sets model size, sequence length, steps and k together (k = seq_len / 8 keeps the
// paper's 87.5% sparsity).
typedef struct {
    const char *name, *keys;
    int k, n_layer;     // substituted for {k}, {2k}, {4k}, {L}, {L/2} in arm keys
    int distill_steps;  // gate-only distillation steps (--distill_steps overrides)
    const char *add_keys;   // the addition-with-carry task (FFN and MoE recipes)
    const char *text_keys;  // text shards for the MoE recipes (NULL: none at this scale)
    const char *mqar_keys;  // the MQAR model of the routing-precision probe
} Scale;

#define TINY_ADD "--data=addition --add_digits=2 --vocab_size=13 --seq_len=8 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=400 --warmup=50 " \
    "--lr=3e-3 --dropout=0 --eval_every=200 --eval_batches=0 --mqar_eval_examples=1000 " \
    "--log_every=0 --ckpt_every=200"
// 5 digits, 3000 steps at lr 1e-3: at 3 digits every arm reached 100% (nothing to compare); in
// 1500 steps one dense seed of three stayed on a 55%-accuracy plateau (at lr 3e-3 and 1e-3
// alike), which the longer schedule leaves by step 1500.
#define SMALL_ADD "--data=addition --add_digits=5 --vocab_size=13 --seq_len=17 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=3000 --warmup=100 " \
    "--lr=1e-3 --dropout=0 --eval_every=500 --eval_batches=0 --mqar_eval_examples=2000 " \
    "--log_every=0 --ckpt_every=500"

// The KJV text model of the small scale (make data-kjv): main recipes and MoE text arms alike.
#define SMALL_TEXT "--data=data/kjv-8k --vocab_size=8192 --n_layer=4 --d_model=128 --n_head=4 " \
    "--d_ff=512 --seq_len=256 --batch=8 --steps=600 --warmup=60 --lr=1e-3 --dropout=0.1 " \
    "--eval_every=200 --eval_batches=20 --log_every=0 --ckpt_every=200"

static const Scale SCALES[] = {
    // MQAR, 4 pairs: dense attention solves it within the 400 steps (about 30 s a run).
    {"tiny", "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=32 --k=4 "
             "--d_g=16 --vocab_size=64 --mqar_pairs=4 --batch=128 --steps=400 --warmup=50 "
             "--lr=1e-3 --dropout=0 --eval_every=100 --eval_batches=4 --mqar_eval_examples=256 "
             "--log_every=0 --ckpt_every=100",
     4, 2, 150, TINY_ADD, NULL, NULL},
    // KJV (make data-kjv), 8192-token BPE: about 3.5 min a training run on 2 cores, so the core
    // recipes (exp1,exp2,exp3,posthoc) with 3 seeds take about 75 min.
    {"small", SMALL_TEXT " --k=32", 32, 4, 300, SMALL_ADD, SMALL_TEXT,
     "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=64 --k=8 --vocab_size=128 "
     "--mqar_pairs=8 --batch=64 --steps=1500 --warmup=100 --lr=1e-3 --dropout=0 --eval_every=500 "
     "--eval_batches=4 --mqar_eval_examples=256 --log_every=0 --ckpt_every=500"},
    {"paper", "--k=64 --log_every=0 --ckpt_every=500", 64, 6, 2000, SMALL_ADD, "--k=64 --log_every=0 --ckpt_every=500", NULL},  // routelab's defaults
};

// What an arm runs: a training, a distillation of another arm's model, or an evaluation of
// another arm's model under other routing (deploy-time swap).
typedef enum { RUN_TRAIN, RUN_DISTILL, RUN_EVAL, RUN_PROBE } RunKind;
// Which of the scale's task configs a training arm uses.
typedef enum { TASK_MAIN, TASK_ADDITION, TASK_TEXT, TASK_MQAR } Task;

typedef struct {
    const char *name;
    RunKind kind;
    const char *from;   // the arm whose checkpoint this one starts from / distils / evaluates
    const char *keys;   // config keys ({k}, {2k}, {4k}, {L}, {L/2} are the scale's)
    double paper;       // the paper's perplexity for this arm (NAN: none)
    double paper_f1;    // the paper's gate F1 (NAN: none)
    int needs_layers;   // runs only when the scale has more layers than this (0: always)
    Task task;          // training arms: the scale's main, addition, text or MQAR config
} Arm;

#define MAX_ARMS 24
typedef struct {
    const char *name, *what;
    Arm arms[MAX_ARMS];
} Recipe;

// Trailing Arm fields (needs_layers, task) default to 0 where a row leaves them out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Routed FFNs carry the Switch balancing loss (0.01), as learned routers are trained in practice;
// it reaches a frozen random router's input only, and a hash router not at all.
#define MOE "--ffn=moe --aux_loss=0.01"
#define DENSE {"dense", RUN_TRAIN, NULL, "--attn=dense", 37.32, NAN}
static const Recipe RECIPES[] = {
    {"exp1", "soft gate: learned vs frozen random vs dense",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random", 49.83, NAN}}},
    {"exp2", "hard top-k gate: learned vs random (the gate gets no gradient)",
     {{"hard_learned", RUN_TRAIN, NULL, "--attn=hard --gate=learned", 71.22, NAN},
      {"hard_random", RUN_TRAIN, NULL, "--attn=hard --gate=random", 71.24, NAN}}},
    {"exp3", "distillation contrast: gates distilled on the dense and on the soft-gated model, "
             "deployed with hard top-k",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"distill_dense", RUN_DISTILL, "dense", "--loss=bce --k={k}", 48.6, 0.842},
      {"distill_soft", RUN_DISTILL, "soft_learned", "--loss=bce --k={k}", 601.6, 0.804}}},
    {"exp4", "stochastic-mask training, deployed dense and under fixed random masks",
     {{"stochastic", RUN_TRAIN, NULL, "--attn=stochastic", NAN, NAN},
      {"stoch_deploy_dense", RUN_EVAL, "stochastic", "--attn=dense", 78.19, NAN},
      {"stoch_deploy_fixed", RUN_EVAL, "stochastic", "--attn=random_fixed --mask_seed={seed}", 104.43, NAN}}},
    {"posthoc", "gates trained post hoc on the frozen dense model: learned vs random, KL "
                "distillation at three k, against the oracle",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"random_hard_k", RUN_EVAL, "dense", "--attn=hard --k={k}", NAN, NAN},
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"kl_2k", RUN_DISTILL, "dense", "--loss=kl --k={2k}", 40.24, NAN},
      {"kl_4k", RUN_DISTILL, "dense", "--loss=kl --k={4k}", 37.57, NAN},
      {"oracle_k", RUN_EVAL, "dense", "--attn=oracle --k={k}", 46.00, NAN}}},
    {"capacity", "gate capacity: BCE distillation with d_g 32/64/128 and KL with d_g 32, at "
                 "three k",
     {DENSE,
      {"bce_g32_k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={k}", NAN, NAN},
      {"bce_g32_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={2k}", NAN, NAN},
      {"bce_g32_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={4k}", NAN, NAN},
      {"bce_g64_k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={k}", NAN, NAN},
      {"bce_g64_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={2k}", NAN, NAN},
      {"bce_g64_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={4k}", NAN, NAN},
      {"bce_g128_k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={k}", NAN, NAN},
      {"bce_g128_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={2k}", NAN, NAN},
      {"bce_g128_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={4k}", NAN, NAN},
      {"kl_g32_k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={k}", NAN, NAN},
      {"kl_g32_2k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={2k}", NAN, NAN},
      {"kl_g32_4k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={4k}", NAN, NAN}}},
    {"gradient", "the absorption gradient: soft gates learned vs random from the dense model "
                 "with 0, 2, 4 ... L layers unfrozen",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"learned_top2", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:2", NAN, NAN, 2},
      {"random_top2", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:2", NAN, NAN, 2},
      {"learned_top4", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:4", NAN, NAN, 4},
      {"random_top4", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:4", NAN, NAN, 4},
      {"learned_topL", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=all", NAN, NAN},
      {"random_topL", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=all", NAN, NAN}}},
    {"concentration", "how concentrated dense attention is, per layer", {DENSE}},
    {"moe-random", "MoE routers: learned vs frozen random vs hash, against a dense FFN, on addition "
                   "with carry and on text",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_control", RUN_TRAIN, NULL, "--ffn=moe --moe_dense_control=1", NAN, NAN, 0, TASK_ADDITION},
      {"text_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_TEXT}}},
    {"ffn-sparsity", "one-layer transformers with dense, GLU and MoE FFNs on addition with carry, "
                     "and how much each sublayer matters (mean ablation)",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_swiglu", RUN_TRAIN, NULL, "--ffn=swiglu", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_dense_no_attn", RUN_EVAL, "add_dense", "--ablate=attn:0", NAN, NAN},
      {"add_dense_no_ffn", RUN_EVAL, "add_dense", "--ablate=ffn:0", NAN, NAN},
      {"add_swiglu_no_attn", RUN_EVAL, "add_swiglu", "--ablate=attn:0", NAN, NAN},
      {"add_swiglu_no_ffn", RUN_EVAL, "add_swiglu", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_learned_no_attn", RUN_EVAL, "add_moe_learned", "--ablate=attn:0", NAN, NAN},
      {"add_moe_learned_no_ffn", RUN_EVAL, "add_moe_learned", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_random_no_attn", RUN_EVAL, "add_moe_random", "--ablate=attn:0", NAN, NAN},
      {"add_moe_random_no_ffn", RUN_EVAL, "add_moe_random", "--ablate=ffn:0", NAN, NAN}}},
    {"routing-precision", "content-based routing on MQAR: top-1 dot-product precision after 0, 1, 2 "
                          "attention blocks, after a random projection, and a Bloom-filter index",
     {{"mqar_dense", RUN_TRAIN, NULL, "--attn=dense", NAN, NAN, 0, TASK_MQAR},
      {"mqar_probe", RUN_PROBE, "mqar_dense", "", NAN, NAN}}},
};
#pragma GCC diagnostic pop
#define N_RECIPES (int)(sizeof RECIPES / sizeof RECIPES[0])

// Arm keys with the scale's values substituted for {k}, {2k}, {4k}, {L}, {L/2} and {seed}.
static void expand_keys(char *out, size_t cap, const char *keys, const Scale *sc, int seed) {
    struct { const char *tok; int val; } subs[] = {{"{k}", sc->k}, {"{2k}", 2 * sc->k},
        {"{4k}", 4 * sc->k}, {"{L}", sc->n_layer}, {"{L/2}", sc->n_layer / 2}, {"{seed}", 100 + seed}};
    size_t o = 0;
    for (const char *p = keys; *p && o + 16 < cap;) {
        int done = 0;
        for (size_t t = 0; t < sizeof subs / sizeof subs[0] && !done; t++) {
            size_t n = strlen(subs[t].tok);
            if (!strncmp(p, subs[t].tok, n)) {
                o += (size_t)snprintf(out + o, cap - o, "%d", subs[t].val);
                p += n;
                done = 1;
            }
        }
        if (!done) out[o++] = *p++;
    }
    out[o] = 0;
}

static const char *task_keys(const Scale *sc, Task t) {
    return t == TASK_ADDITION ? sc->add_keys : t == TASK_TEXT ? sc->text_keys
         : t == TASK_MQAR ? (sc->mqar_keys ? sc->mqar_keys : sc->keys) : sc->keys;
}

// Runs one arm and seed (or skips it when finished); returns the parsed result, or NULL.
static cJSON *run_arm(const char *self, const char *out, const Scale *scale, const Arm *arm,
                      int seed, const char *overrides, int distill_steps) {
    char dir[4096], result_path[4200], ckpt[4200], from[4200] = "", keys[4096], cmd[40000];
    snprintf(dir, sizeof dir, "%s/%s/seed%d", out, arm->name, seed);
    join_path(result_path, sizeof result_path, dir, "result.json");
    join_path(ckpt, sizeof ckpt, dir, "model.ckpt");
    if (arm->from) snprintf(from, sizeof from, "%s/%s/seed%d", out, arm->from, seed);
    expand_keys(keys, sizeof keys, arm->keys, scale, seed);
    // What the run is, without the binary's path: kept beside the result, so that a finished
    // run of the same arm name but other settings (an older scale, other overrides) is flagged.
    char signature[8192], signature_path[4200];
    snprintf(signature, sizeof signature, "%d|%s|%s|%d|%s|%d\n", (int)arm->kind,
             arm->kind == RUN_TRAIN ? task_keys(scale, arm->task) : "", keys, seed,
             arm->kind == RUN_TRAIN ? overrides : "", arm->kind == RUN_DISTILL ? distill_steps : 0);
    join_path(signature_path, sizeof signature_path, dir, "run.signature");
    if (file_exists(result_path)) {
        printf("  %-20s seed %d: done already (skipped)\n", arm->name, seed);
        if (file_exists(signature_path)) {
            size_t n;
            char *old = read_file(signature_path, &n, "run signature");
            if (strcmp(old, signature) != 0)
                warnf("%s was run with other settings than this command's (scale, keys or "
                      "overrides): its result is reused; delete that directory to re-run it", dir);
            xfree(old);
        }
    } else {
        make_dirs(dir);
        const char *what = "training";
        if (arm->kind == RUN_TRAIN && file_exists(ckpt)) {  // interrupted: continue
            what = "resuming";
            snprintf(cmd, sizeof cmd, "'%s' train --resume='%s' --json", self, dir);
        } else if (arm->kind == RUN_TRAIN) {
            snprintf(cmd, sizeof cmd, "'%s' train %s %s --seed=%d --gate_seed=%d --router_seed=%d "
                     "--data_seed=%d%s%s%s --out='%s' --json", self, task_keys(scale, arm->task), keys,
                     seed, 1000 + seed, 3000 + seed, 1 + seed, overrides, arm->from ? " --init=" : "",
                     arm->from ? from : "", dir);
        } else if (arm->kind == RUN_PROBE) {
            what = "probing";
            snprintf(cmd, sizeof cmd, "'%s' probe --ckpt='%s' %s --json", self, from, keys);
        } else if (arm->kind == RUN_DISTILL) {  // the scale's training keys do not apply
            what = "distilling";
            snprintf(cmd, sizeof cmd, "'%s' distill --from='%s' %s --gate_seed=%d --steps=%d "
                     "--out='%s' --json", self, from, keys, 2000 + seed, distill_steps, dir);
        } else {
            what = "evaluating";
            snprintf(cmd, sizeof cmd, "'%s' eval --ckpt='%s' %s --json", self, from, keys);
        }
        printf("  %-20s seed %d: %s\n", arm->name, seed, what);
        fflush(stdout);
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof cmd - used, " > '%s.tmp' 2> '%s/run.log'", result_path, dir);
        int rc = system(cmd);
        if (rc != 0) {
            warnf("run %s seed %d failed (exit %d): see %s/run.log", arm->name, seed, rc, dir);
            return NULL;
        }
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", result_path);
        size_t len;
        char *text = read_file(tmp, &len, "run result");
        cJSON *j = cJSON_Parse(text);
        const cJSON *done = j ? cJSON_GetObjectItemCaseSensitive(j, "completed") : NULL;
        int completed = j && (!done || cJSON_IsTrue(done));  // only training can stop early
        cJSON_Delete(j);
        xfree(text);
        if (!completed)  // stopped early (signal, time limit): keep the checkpoint, end the sweep
            fatal("run %s seed %d stopped before its last step: re-run the same repro command to "
                  "resume the sweep", arm->name, seed);
        FILE *sig = xfopen(signature_path, "w", "run signature");
        fputs(signature, sig);
        fclose(sig);
        if (rename(tmp, result_path) != 0) fatal("cannot rename '%s'", tmp);
    }
    size_t len;
    char *text = read_file(result_path, &len, "run result");
    cJSON *j = cJSON_Parse(text);
    xfree(text);
    if (!j) warnf("run result '%s' is not JSON: delete it to re-run", result_path);
    return j;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double mean_of_array(const cJSON *j, const char *key) {
    const cJSON *f = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL, *v;
    double s = 0;
    int n = 0;
    cJSON_ArrayForEach(v, f) s += v->valuedouble, n++;
    return n ? s / n : NAN;
}

static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) s += x[i], k++;
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = k > 1 ? sqrt(ss / (k - 1)) : 0.0;
}

// An arm's metrics over seeds. Distillations are judged deployed under hard top-k.
typedef struct {
    double ppl, ppl_sd, acc, acc_sd, f1, f1_sd, exact, exact_sd;
    int done;  // at least one seed finished
} ArmStats;

static ArmStats arm_stats(const Arm *a, cJSON *const *res, int seeds) {
    double p[100], acc[100], f1[100], ex[100];
    ArmStats st = {0};
    for (int s = 0; s < seeds; s++) {
        p[s] = num(res[s], a->kind == RUN_DISTILL ? "hard_val_ppl" : "val_ppl");
        acc[s] = num(res[s], a->kind == RUN_DISTILL ? "hard_val_accuracy" : "val_accuracy");
        f1[s] = mean_of_array(res[s], "gate_f1");
        ex[s] = num(res[s], "exact_match");
        st.done |= res[s] != NULL;
    }
    mean_std(ex, seeds, &st.exact, &st.exact_sd);
    mean_std(p, seeds, &st.ppl, &st.ppl_sd);
    mean_std(acc, seeds, &st.acc, &st.acc_sd);
    mean_std(f1, seeds, &st.f1, &st.f1_sd);
    return st;
}

static const Arm *find_arm(const char *name);

// Arms whose layer count or task the scale lacks are skipped (text MoE arms at tiny scale).
static int arm_active(const Arm *a, const Scale *scale) {
    if (a->from) {  // an arm built on a skipped one is skipped too
        const Arm *f = find_arm(a->from);
        if (f && !arm_active(f, scale)) return 0;
    }
    return scale->n_layer > a->needs_layers && (a->kind != RUN_TRAIN || task_keys(scale, a->task));
}

static const Arm *find_arm(const char *name) {
    for (int r = 0; r < N_RECIPES; r++)
        for (const Arm *a = RECIPES[r].arms; a->name; a++)
            if (!strcmp(a->name, name)) return a;
    return NULL;
}

static int arm_index(const Recipe *r, const char *name) {
    for (int i = 0; r->arms[i].name; i++) if (!strcmp(r->arms[i].name, name)) return i;
    return -1;
}

// Layers unfrozen in an arm of the absorption gradient (-1: not such an arm).
static int unfrozen_layers(const Arm *a, const Scale *scale) {
    if (!strncmp(a->name, "posthoc_", 8)) return 0;
    const char *t = strstr(a->name, "_top");
    if (!t) return -1;
    return t[4] == 'L' ? scale->n_layer : atoi(t + 4);
}

static void run_gnuplot(const char *script, const char *png) {
    char cmd[8800];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", script);
    if (system(cmd) != 0) warnf("plot %s not written (is gnuplot installed?)", png);
}

// Convergence curves (training loss of seed 0 of every training arm).
static void plot_curves(const char *out, const Recipe *r, const Scale *scale) {
    char png[4200], script[4200];
    snprintf(png, sizeof png, "%s/%s_convergence.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_convergence.gp", out, r->name);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\nset title \"%s: "
               "training loss, seed 0\"\nset xlabel 'step'\nset ylabel 'training loss'\n"
               "set key top right\nplot ", png, r->name);
    int curves = 0;
    for (const Arm *a = r->arms; a->name; a++) {
        if (a->kind != RUN_TRAIN || !arm_active(a, scale)) continue;
        char data[4200], metrics[4200];
        snprintf(data, sizeof data, "%s/%s/seed0/loss.dat", out, a->name);
        snprintf(metrics, sizeof metrics, "%s/%s/seed0/metrics.jsonl", out, a->name);
        if (!file_exists(metrics)) continue;
        size_t len;
        char *text = read_file(metrics, &len, "metrics log");
        FILE *d = xfopen(data, "w", "plot data");
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            cJSON *j = cJSON_Parse(line);
            if (j && isfinite(num(j, "loss"))) fprintf(d, "%g %g\n", num(j, "step"), num(j, "loss"));
            cJSON_Delete(j);
        }
        fclose(d);
        xfree(text);
        fprintf(g, "%s'%s' using 1:2 with lines title '%s'", curves ? ", " : "", data, a->name);
        curves++;
    }
    fprintf(g, "\n");
    fclose(g);
    if (curves) run_gnuplot(script, png);
}

// The absorption gradient: validation perplexity against layers unfrozen, learned vs random.
static void plot_gradient(const char *out, const Recipe *r, const Scale *scale, const ArmStats *st) {
    char png[4200], script[4200], data[4200];
    snprintf(png, sizeof png, "%s/%s_gradient.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_gradient.gp", out, r->name);
    snprintf(data, sizeof data, "%s/%s_gradient.dat", out, r->name);
    FILE *d = xfopen(data, "w", "plot data");
    fprintf(d, "# layers_unfrozen learned_ppl learned_sd random_ppl random_sd\n");
    int points = 0;
    for (int n = 0; n <= scale->n_layer; n++) {
        double v[4] = {NAN, NAN, NAN, NAN};
        for (int i = 0; r->arms[i].name; i++) {
            const Arm *a = &r->arms[i];
            if (!arm_active(a, scale) || unfrozen_layers(a, scale) != n || !st[i].done) continue;
            int random = strstr(a->name, "random") != NULL;
            v[2 * random] = st[i].ppl, v[2 * random + 1] = st[i].ppl_sd;
        }
        if (isfinite(v[0]) || isfinite(v[2]))
            fprintf(d, "%d %g %g %g %g\n", n, v[0], v[1], v[2], v[3]), points++;
    }
    fclose(d);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\n"
               "set title \"absorption gradient: soft gate from the dense model\"\n"
               "set xlabel 'layers unfrozen (top)'\nset ylabel 'validation perplexity'\n"
               "set xtics 1\nset key top right\nset datafile missing 'nan'\n"
               "plot '%s' using 1:2:3 with yerrorlines title 'learned gate', "
               "'%s' using 1:4:5 with yerrorlines title 'frozen random gate'\n", png, data, data);
    fclose(g);
    if (points) run_gnuplot(script, png);
}

// Per-layer concentration of the dense model (mean over seeds): top-k mass and entropy ratio.
static void plot_concentration(const char *out, cJSON *const *res, int seeds, int k) {
    char png[4200], script[4200], data[4200];
    snprintf(png, sizeof png, "%s/concentration.png", out);
    snprintf(script, sizeof script, "%s/concentration.gp", out);
    snprintf(data, sizeof data, "%s/concentration.dat", out);
    FILE *d = xfopen(data, "w", "plot data");
    fprintf(d, "# layer topk_mass entropy_ratio (mean over seeds)\n");
    int layers = res[0] ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[0], "topk_mass")) : 0;
    for (int l = 0; l < layers; l++) {
        double m = 0, e = 0;
        int n = 0;
        for (int s = 0; s < seeds; s++) {
            const cJSON *mm = res[s] ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res[s], "topk_mass"), l) : NULL;
            const cJSON *ee = res[s] ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res[s], "entropy_ratio"), l) : NULL;
            if (!cJSON_IsNumber(mm) || !cJSON_IsNumber(ee)) continue;
            m += mm->valuedouble, e += ee->valuedouble, n++;
        }
        if (n) fprintf(d, "%d %g %g\n", l, m / n, e / n);
    }
    fclose(d);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\n"
               "set title \"dense attention concentration per layer (k = %d)\"\nset xlabel 'layer'\n"
               "set yrange [0:1.05]\nset xtics 1\nset key bottom right\n"
               "plot '%s' using 1:2 with linespoints title 'top-k attention mass', "
               "'%s' using 1:3 with linespoints title 'entropy / log(visible keys)'\n",
            png, k, data, data);
    fclose(g);
    if (layers) run_gnuplot(script, png);
}

// The headline rows `make run` prints: each is an arm name some recipe runs.
static const struct { const char *label, *arm; } SUMMARY[] = {
    {"dense", "dense"},
    {"soft gate, learned", "soft_learned"},
    {"soft gate, frozen random", "soft_random"},
    {"hard top-k, learned", "hard_learned"},
    {"hard top-k, frozen random", "hard_random"},
    {"post-hoc distilled (KL), hard top-k", "kl_k"},
    {"post-hoc distilled (BCE), hard top-k", "distill_dense"},
    {"post-hoc random gate, hard top-k", "random_hard_k"},
    {"oracle top-k", "oracle_k"},
};
#define N_SUMMARY (int)(sizeof SUMMARY / sizeof SUMMARY[0])

// How the routed arms spread their tokens (the final evaluation batch, mean over routed layers
// and seeds): a collapsed learned router would explain a gap to the random one by itself.
static void report_routing_health(FILE *f, const Recipe *r, const Scale *scale, cJSON *res[MAX_ARMS][100]) {
    int header = 0;
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, scale) || a->kind != RUN_TRAIN || !strstr(a->keys, "ffn=moe")) continue;
        double ent = 0, hi = 0, lo = 0, drop = 0;
        int n = 0, n_ent = 0, seeds = 0;
        for (int s = 0; s < 100; s++) {
            if (!res[i][s]) continue;  // a failed seed: the others still count
            seeds++;
            const cJSON *H = cJSON_GetObjectItemCaseSensitive(res[i][s], "router_entropy");
            const cJSON *U = cJSON_GetObjectItemCaseSensitive(res[i][s], "expert_util");
            const cJSON *D = cJSON_GetObjectItemCaseSensitive(res[i][s], "dropped");
            for (int l = 0; l < cJSON_GetArraySize(U); l++) {
                const cJSON *u = cJSON_GetArrayItem(U, l), *h = cJSON_GetArrayItem(H, l), *v;
                int E = cJSON_GetArraySize(u);
                if (E < 1) continue;  // not a routed layer
                double mx = 0, mn = 1;
                cJSON_ArrayForEach(v, u) mx = fmax(mx, v->valuedouble), mn = fmin(mn, v->valuedouble);
                const cJSON *d = cJSON_GetArrayItem(D, l);
                if (cJSON_IsNumber(h)) ent += h->valuedouble, n_ent++;  // already over ln E
                hi += mx, lo += mn, drop += cJSON_IsNumber(d) ? d->valuedouble : 0, n++;
            }
        }
        if (!n) continue;
        if (!header++)
            fprintf(f, "\n| routed arm | per-token router entropy / ln E | busiest expert's share | idlest "
                       "expert's share | dropped share of choices | seeds |\n|---|---|---|---|---|---|\n");
        char e[32] = "n/a";
        if (n_ent) snprintf(e, sizeof e, "%.3f", ent / n_ent);
        fprintf(f, "| %s | %s | %.3f | %.3f | %.3g | %d |\n", a->name, e, hi / n, lo / n, drop / n, seeds);
    }
    if (header)
        fprintf(f, "\nRouting health on the last evaluation batch, mean over routed layers and seeds "
                   "(a hash router has no probabilities: entropy n/a; nothing is dropped unless "
                   "`capacity_factor` is set).\n");
}

// One recipe's section of report.md; res[arm][seed], st[arm] its statistics.
static void report_recipe(FILE *f, const Recipe *r, const Scale *scale, cJSON *res[MAX_ARMS][100],
                          const ArmStats *st) {
    int has_exact = 0, has_gate = 0;
    for (int i = 0; r->arms[i].name; i++) {
        has_exact |= arm_active(&r->arms[i], scale) && isfinite(st[i].exact);
        has_gate |= r->arms[i].kind == RUN_DISTILL || strstr(r->arms[i].keys, "attn=") != NULL ||
                    !strcmp(r->arms[i].name, "dense");
    }
    fprintf(f, "## %s: %s\n\n| arm | kind | val ppl | val accuracy |%s%s paper ppl | paper F1 |\n"
               "|---|---|---|---|%s%s---|---|\n", r->name, r->what, has_exact ? " exact match | exact match per seed |" : "",
            has_gate ? " gate F1 |" : "", has_exact ? "---|---|" : "", has_gate ? "---|" : "");
    static const char *kinds[] = {"train", "distill (deployed hard top-k)", "eval", "probe"};
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, scale) || a->kind == RUN_PROBE) continue;
        fprintf(f, "| %s | %s%s%s | %.3f ± %.3f | %.4f ± %.4f | ", a->name, kinds[a->kind],
                a->kind == RUN_EVAL ? " " : "", a->kind == RUN_EVAL ? a->keys : "", st[i].ppl,
                st[i].ppl_sd, st[i].acc, st[i].acc_sd);
        if (has_exact && !isfinite(st[i].exact)) {  // a text arm beside addition arms
            fprintf(f, "– | – | ");
        } else if (has_exact) {  // per seed too: small tasks often split into solved and stuck seeds
            fprintf(f, "%.4f ± %.4f | ", st[i].exact, st[i].exact_sd);
            for (int s = 0, n = 0; s < 100; s++)
                if (res[i][s]) fprintf(f, "%s%.3f", n++ ? " / " : "", num(res[i][s], "exact_match"));
            fprintf(f, " | ");
        }
        if (has_gate) fprintf(f, "%.3f | ", st[i].f1);
        if (isfinite(a->paper)) fprintf(f, "%.2f | ", a->paper); else fprintf(f, "– | ");
        if (isfinite(a->paper_f1)) fprintf(f, "%.3f |\n", a->paper_f1); else fprintf(f, "– |\n");
    }
    // The derived quantities the paper argues from.
    int d = arm_index(r, "dense"), sl = arm_index(r, "soft_learned"), sr = arm_index(r, "soft_random");
    if (d >= 0 && sl >= 0 && sr >= 0)
        fprintf(f, "\nShare of the random → dense gap captured by the learned soft gate, "
                   "(ppl_random − ppl_learned) / (ppl_random − ppl_dense): **%.1f%%** (paper: %.1f%%). "
                   "Meaningful only when the random → dense gap is well above the seed spread.\n",
                100 * (st[sr].ppl - st[sl].ppl) / (st[sr].ppl - st[d].ppl),
                100 * (49.83 - 48.73) / (49.83 - 37.32));
    int rh = arm_index(r, "random_hard_k"), kk = arm_index(r, "kl_k"), ok = arm_index(r, "oracle_k");
    if (rh >= 0 && kk >= 0 && ok >= 0)
        fprintf(f, "\nShare of the random → oracle gap closed by the KL-distilled gate at k, all three "
                   "deployed with hard top-k on the frozen dense model, (ppl_random − ppl_KL) / "
                   "(ppl_random − ppl_oracle): **%.1f%%** (the paper calls its gate near-oracle: "
                   "48.83 against 46.00).\n",
                100 * (st[rh].ppl - st[kk].ppl) / (st[rh].ppl - st[ok].ppl));
    if (rh >= 0 && ok >= 0 && st[rh].ppl <= st[ok].ppl)
        fprintf(f, "\n**Caution:** the random hard gate (%.3f) is no worse than the oracle (%.3f) here, "
                   "so that share means nothing: attention is too diffuse at this scale for top-k to "
                   "matter (see the top-k mass).\n", st[rh].ppl, st[ok].ppl);
    int hl = arm_index(r, "hard_learned");
    if (hl >= 0 && res[hl][0]) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(res[hl][0], "gate_grad_norm"), *v;
        double mx = 0;
        cJSON_ArrayForEach(v, g) mx = fmax(mx, fabs(v->valuedouble));
        fprintf(f, "\nGate-gradient norm of the learned hard gate (seed 0, max over layers): %g "
                   "(paper: 0).\n", mx);
    }
    // MoE: the learned router's gain over the random one, as a share of the dense FFN's gain.
    static const char *const moe_sets[][4] = {{"add_dense", "add_moe_learned", "add_moe_random", "addition"},
                                               {"text_dense", "text_moe_learned", "text_moe_random", "text"}};
    for (int t = 0; t < 2; t++) {
        int dd = arm_index(r, moe_sets[t][0]), ml = arm_index(r, moe_sets[t][1]), mr = arm_index(r, moe_sets[t][2]);
        if (dd < 0 || ml < 0 || mr < 0 || !st[dd].done || !st[ml].done || !st[mr].done) continue;
        fprintf(f, "\nMoE on %s: share of the random-router → dense-FFN gap captured by the learned "
                   "router, in perplexity (ppl_random − ppl_learned) / (ppl_random − ppl_dense): **%.1f%%**",
                moe_sets[t][3], 100 * (st[mr].ppl - st[ml].ppl) / (st[mr].ppl - st[dd].ppl));
        if (isfinite(st[dd].exact))
            fprintf(f, "; in exact match (em_learned − em_random) / (em_dense − em_random): **%.1f%%**",
                    100 * (st[ml].exact - st[mr].exact) / (st[dd].exact - st[mr].exact));
        fprintf(f, ". Meaningful only when the random → dense gap is well above the seed spread.\n");
    }
    report_routing_health(f, r, scale, res);
    int pb = arm_index(r, "mqar_probe");
    if (pb >= 0 && res[pb][0]) {
        fprintf(f, "\n| blocks before the probe | key precision | value precision | key precision, "
                   "random projection |\n|---|---|---|---|\n");
        const cJSON *kp = cJSON_GetObjectItemCaseSensitive(res[pb][0], "key_precision");
        for (int d = 0; d < cJSON_GetArraySize(kp); d++) {
            double v[3] = {0};
            static const char *keys3[] = {"key_precision", "value_precision", "projected_key_precision"};
            for (int j = 0; j < 3; j++) {
                int n = 0;
                for (int s2 = 0; s2 < 100; s2++) {
                    const cJSON *x = res[pb][s2] ? cJSON_GetArrayItem(
                        cJSON_GetObjectItemCaseSensitive(res[pb][s2], keys3[j]), d) : NULL;
                    if (cJSON_IsNumber(x)) v[j] += x->valuedouble, n++;
                }
                v[j] = n ? v[j] / n : NAN;
            }
            fprintf(f, "| %d | %.4f | %.4f | %.4f |\n", d, v[0], v[1], v[2]);
        }
        double bl = 0;
        int n = 0;
        for (int s2 = 0; s2 < 100; s2++)
            if (isfinite(num(res[pb][s2], "bloom_precision"))) bl += num(res[pb][s2], "bloom_precision"), n++;
        fprintf(f, "\nBloom-filter index: %.4f. (Mean over seeds; the paper: one layer 98.4%%, zero "
                   "layers 1.2%%, random projections 2.6%%, Bloom filter 90.9%%.)\n", bl / n);
    }
    int has_gradient = 0;
    for (int i = 0; r->arms[i].name; i++) has_gradient |= !strncmp(r->arms[i].name, "learned_top", 11);
    if (has_gradient) {
        fprintf(f, "\n| layers unfrozen | learned gate ppl | frozen random gate ppl | learned − random |\n"
                   "|---|---|---|---|\n");
        for (int n = 0; n <= scale->n_layer; n++) {
            double v[2] = {NAN, NAN};
            for (int i = 0; r->arms[i].name; i++)
                if (arm_active(&r->arms[i], scale) && unfrozen_layers(&r->arms[i], scale) == n)
                    v[strstr(r->arms[i].name, "random") != NULL] = st[i].ppl;
            if (isfinite(v[0]) || isfinite(v[1]))
                fprintf(f, "| %d | %.3f | %.3f | %+.3f |\n", n, v[0], v[1], v[0] - v[1]);
        }
        fprintf(f, "\nPlot: `%s_gradient.png` (perplexity against layers unfrozen).\n", r->name);
    }
    if (!strcmp(r->name, "concentration") && d >= 0 && res[d][0]) {
        fprintf(f, "\n| layer | top-k mass | entropy ratio |\n|---|---|---|\n");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(res[d][0], "topk_mass");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(res[d][0], "entropy_ratio");
        for (int l = 0; l < cJSON_GetArraySize(m) && l < cJSON_GetArraySize(e); l++)
            fprintf(f, "| %d | %.4f | %.4f |\n", l, cJSON_GetArrayItem(m, l)->valuedouble,
                    cJSON_GetArrayItem(e, l)->valuedouble);
        fprintf(f, "\n(seed 0; the plot `concentration.png` averages over seeds; k = %d.)\n", scale->k);
    }
    fprintf(f, "\nPlot: `%s_convergence.png` (training loss, seed 0, training arms).\n\n", r->name);
}

// Recipes named by NAME: one, a comma-separated list, or `all`.
static int select_recipes(const char *name, int *chosen) {
    int n = 0;
    if (!strcmp(name, "all")) {
        for (int i = 0; i < N_RECIPES; i++) chosen[n++] = i;
        return n;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < N_RECIPES; i++) if (!strcmp(RECIPES[i].name, t)) found = i;
        if (found < 0) fatal("repro: unknown recipe '%s' (see routelab repro --help)", t);
        for (int j = 0; j < n; j++) if (chosen[j] == found) found = -1;
        if (found >= 0) chosen[n++] = found;
    }
    return n;
}

int cmd_repro(int argc, char **argv) {
    const char *name = NULL, *scale_name = "tiny", *out = NULL;
    int seeds = 3, distill_steps = 0;
    char overrides[8192] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: routelab repro NAME[,NAME...] [--scale=tiny|small|paper] [--seeds=3]\n"
                   "       [--out=DIR] [--distill_steps=N] [--key=value ...]\n"
                   "  Runs recipes of the routing-absorption paper over several seeds, resumably,\n"
                   "  and writes results.json, report.md and PNG plots into DIR (default\n"
                   "  runs/repro-NAME-SCALE). Config keys given here override the scale's in\n"
                   "  training runs. Runs of the same arm name are shared between recipes.\n"
                   "  Scales: tiny (MQAR, built in, ~30 s a run), small (KJV: make data-kjv,\n"
                   "  ~3.5 min a run), paper (the paper's model; --data=SHARDS). Recipes:\n");
            for (int r = 0; r < N_RECIPES; r++) printf("    %-14s %s\n", RECIPES[r].name, RECIPES[r].what);
            printf("    %-14s every recipe, sharing runs of the same name (one dense model)\n", "all");
            return 0;
        }
        if (!strncmp(a, "--scale=", 8)) scale_name = a + 8;
        else if (!strncmp(a, "--seeds=", 8)) seeds = atoi(a + 8);
        else if (!strncmp(a, "--out=", 6)) out = a + 6;
        else if (!strncmp(a, "--distill_steps=", 16)) distill_steps = atoi(a + 16);
        else if (!strncmp(a, "--", 2) && strchr(a, '=')) {
            if (strlen(overrides) + strlen(a) + 4 >= sizeof overrides) fatal("repro: too many overrides");
            strcat(overrides, " '"), strcat(overrides, a), strcat(overrides, "'");
        } else if (!name) name = a;
        else fatal("repro: unexpected argument '%s' (see --help)", a);
    }
    if (!name) fatal("repro: name a recipe (see routelab repro --help)");
    if (seeds < 1 || seeds > 100) fatal("repro: --seeds must be in 1..100, got %d", seeds);
    if (distill_steps < 0) fatal("repro: --distill_steps must be positive");
    int chosen[N_RECIPES];
    int n_chosen = select_recipes(name, chosen);
    const Scale *scale = NULL;
    for (size_t i = 0; i < sizeof SCALES / sizeof SCALES[0]; i++)
        if (!strcmp(SCALES[i].name, scale_name)) scale = &SCALES[i];
    if (!scale) fatal("repro: --scale must be tiny, small or paper, got '%s'", scale_name);
    char default_out[1200];
    snprintf(default_out, sizeof default_out, "runs/repro-%s-%s", name, scale_name);
    for (char *c = default_out; *c; c++) if (*c == ',') *c = '+';
    if (!out) out = default_out;
    if (!distill_steps) distill_steps = scale->distill_steps;
    make_dirs(out);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) fatal("repro: cannot find the routelab executable (/proc/self/exe)");
    self[n] = 0;
    printf("repro %s, scale %s, %d seed(s), into %s\n", name, scale->name, seeds, out);
    double t0 = now_seconds();

    // Runs of the same arm name are one run (all recipes share OUT), so each runs once.
    cJSON *all = cJSON_CreateArray();
    char *body = NULL;
    size_t body_len = 0;
    FILE *f = open_memstream(&body, &body_len);
    static cJSON *res[MAX_ARMS][100];
    ArmStats summary[N_SUMMARY] = {{0}};
    int failed = 0;
    for (int ci = 0; ci < n_chosen; ci++) {
        const Recipe *r = &RECIPES[chosen[ci]];
        printf("%s: %s\n", r->name, r->what);
        ArmStats st[MAX_ARMS] = {{0}};
        for (int i = 0; r->arms[i].name; i++) {
            const Arm *a = &r->arms[i];
            if (!arm_active(a, scale)) continue;
            for (int s = 0; s < seeds; s++) {
                res[i][s] = run_arm(self, out, scale, a, s, overrides, distill_steps);
                failed += res[i][s] == NULL;
                cJSON *row = cJSON_CreateObject();
                cJSON_AddStringToObject(row, "recipe", r->name);
                cJSON_AddStringToObject(row, "arm", a->name);
                cJSON_AddNumberToObject(row, "seed", s);
                cJSON_AddStringToObject(row, "scale", scale->name);
                char keys[16384];
                expand_keys(keys, sizeof keys, a->keys, scale, s);
                cJSON_AddStringToObject(row, "keys", keys);
                if (a->from) cJSON_AddStringToObject(row, "from", a->from);
                cJSON_AddItemToObject(row, "result", res[i][s] ? cJSON_Duplicate(res[i][s], 1)
                                                                : cJSON_CreateNull());
                cJSON_AddItemToArray(all, row);
            }
            st[i] = arm_stats(a, res[i], seeds);
            for (int k = 0; k < N_SUMMARY; k++)
                if (!strcmp(SUMMARY[k].arm, a->name) && !summary[k].done) summary[k] = st[i];
        }
        report_recipe(f, r, scale, res, st);
        plot_curves(out, r, scale);
        if (arm_index(r, "learned_topL") >= 0) plot_gradient(out, r, scale, st);
        if (!strcmp(r->name, "concentration")) plot_concentration(out, res[arm_index(r, "dense")], seeds, scale->k);
        for (int i = 0; r->arms[i].name; i++)
            for (int s = 0; s < seeds; s++) cJSON_Delete(res[i][s]), res[i][s] = NULL;
    }
    fclose(f);

    // The summary table heads the report and is what the command prints last.
    char *sum = NULL;
    size_t sum_len = 0;
    f = open_memstream(&sum, &sum_len);
    int rows = 0;
    for (int k = 0; k < N_SUMMARY; k++) rows += summary[k].done;
    if (rows >= 2) {
        fprintf(f, "## Summary (validation; %d seed(s), mean ± std)\n\n| routing | arm | ppl | accuracy |\n"
                   "|---|---|---|---|\n", seeds);
        for (int k = 0; k < N_SUMMARY; k++)
            if (summary[k].done)
                fprintf(f, "| %s | %s | %.3f ± %.3f | %.4f ± %.4f |\n", SUMMARY[k].label, SUMMARY[k].arm,
                        summary[k].ppl, summary[k].ppl_sd, summary[k].acc, summary[k].acc_sd);
        fprintf(f, "\n");
    }
    fclose(f);
    char path[4200];
    join_path(path, sizeof path, out, "results.json");
    char *text = cJSON_Print(all);
    write_file_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(all);
    char *rep = NULL;
    size_t rep_len = 0;
    f = open_memstream(&rep, &rep_len);
    fprintf(f, "# routelab repro %s\n\nScale `%s` (%s), %d seed(s); mean ± std over seeds, validation "
               "split. Distillation arms are deployed with hard top-k; their perplexity and accuracy "
               "are the deployed ones. Every run's config and metrics are in results.json.\n\n%s%s",
            name, scale->name, scale->keys, seeds, sum, body);
    fclose(f);
    join_path(path, sizeof path, out, "report.md");
    write_file_atomic(path, rep, rep_len);
    fputs(n_chosen == 1 ? rep : sum, stdout);
    printf("report: %s/report.md; results: %s/results.json; plots: %s/*.png (%.0f s)\n", out, out,
           out, now_seconds() - t0);
    free(rep), free(sum), free(body);
    if (failed) warnf("%d run(s) failed: see their run.log; re-run the command to retry them", failed);
    return failed ? 1 : 0;
}
