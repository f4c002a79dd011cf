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
    int k, n_layer;  // substituted for {k}, {2k}, {4k}, {L}, {L/2} in arm keys
} Scale;

static const Scale SCALES[] = {
    {"tiny", "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=64 --k=8 "
             "--d_g=16 --vocab_size=64 --mqar_pairs=4 --batch=32 --steps=300 --warmup=30 "
             "--lr=1e-3 --dropout=0 --eval_every=100 --eval_batches=4 --mqar_eval_examples=128 "
             "--log_every=0 --ckpt_every=100",
     8, 2},
    {"small", "--data=data/kjv-8k --vocab_size=8192 --n_layer=4 --d_model=128 --n_head=4 "
              "--d_ff=512 --seq_len=256 --k=32 --batch=8 --steps=2000 --warmup=100 --lr=1e-3 "
              "--dropout=0.1 --eval_every=500 --eval_batches=20 --log_every=0 --ckpt_every=250",
     32, 4},
    {"paper", "--k=64 --log_every=0 --ckpt_every=500", 64, 6},  // routelab's defaults
};

// What an arm runs: a training, a distillation of another arm's model, or an evaluation of
// another arm's model under other routing (deploy-time swap).
typedef enum { RUN_TRAIN, RUN_DISTILL, RUN_EVAL } RunKind;

typedef struct {
    const char *name;
    RunKind kind;
    const char *from;   // the arm whose checkpoint this one starts from / distils / evaluates
    const char *keys;   // config keys ({k}, {2k}, {4k}, {L}, {L/2} are the scale's)
    double paper;       // the paper's perplexity for this arm (NAN: none)
    double paper_f1;    // the paper's gate F1 (NAN: none)
} Arm;

#define MAX_ARMS 24
typedef struct {
    const char *name, *what;
    Arm arms[MAX_ARMS];
} Recipe;

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
                 "with 0, L/2 and L layers unfrozen",
     {DENSE,
      {"learned_top0", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", NAN, NAN},
      {"random_top0", RUN_EVAL, "dense", "--attn=soft", NAN, NAN},
      {"learned_topL2", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:{L/2}", NAN, NAN},
      {"random_topL2", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:{L/2}", NAN, NAN},
      {"learned_topL", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=all", NAN, NAN},
      {"random_topL", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=all", NAN, NAN}}},
    {"concentration", "how concentrated dense attention is, per layer", {DENSE}},
};
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

// Runs one arm and seed (or skips it when finished); returns the parsed result, or NULL.
static cJSON *run_arm(const char *self, const char *out, const Scale *scale, const Arm *arm,
                      int seed, const char *overrides, int distill_steps) {
    char dir[4096], result_path[4200], ckpt[4200], from[4200] = "", keys[4096], cmd[40000];
    snprintf(dir, sizeof dir, "%s/%s/seed%d", out, arm->name, seed);
    join_path(result_path, sizeof result_path, dir, "result.json");
    join_path(ckpt, sizeof ckpt, dir, "model.ckpt");
    if (arm->from) snprintf(from, sizeof from, "%s/%s/seed%d", out, arm->from, seed);
    expand_keys(keys, sizeof keys, arm->keys, scale, seed);
    if (file_exists(result_path)) {
        printf("  %-20s seed %d: done already (skipped)\n", arm->name, seed);
    } else {
        make_dirs(dir);
        const char *what = "training";
        if (arm->kind == RUN_TRAIN && file_exists(ckpt)) {  // interrupted: continue
            what = "resuming";
            snprintf(cmd, sizeof cmd, "'%s' train --resume='%s' --json", self, dir);
        } else if (arm->kind == RUN_TRAIN) {
            snprintf(cmd, sizeof cmd, "'%s' train %s %s --seed=%d --gate_seed=%d --data_seed=%d%s%s%s "
                     "--out='%s' --json", self, scale->keys, keys, seed, 1000 + seed, 1 + seed,
                     overrides, arm->from ? " --init=" : "", arm->from ? from : "", dir);
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

// The perplexity an arm is judged by: deployed under hard top-k for distillations.
static double arm_ppl(const Arm *a, const cJSON *res) {
    return num(res, a->kind == RUN_DISTILL ? "hard_val_ppl" : "val_ppl");
}

static double mean_f1(const cJSON *res) {
    const cJSON *f = res ? cJSON_GetObjectItemCaseSensitive(res, "gate_f1") : NULL;
    double s = 0;
    int n = 0;
    const cJSON *v;
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

// Convergence curves (training loss of seed 0 of every training arm) as a PNG through gnuplot.
static void plot_curves(const char *out, const Recipe *r) {
    char png[4200], script[4200], cmd[8800];
    snprintf(png, sizeof png, "%s/%s_convergence.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_convergence.gp", out, r->name);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\nset title \"%s\"\n"
               "set xlabel 'step'\nset ylabel 'training loss'\nset key top right\nplot ",
            png, r->name);
    int curves = 0;
    for (const Arm *a = r->arms; a->name; a++) {
        if (a->kind != RUN_TRAIN) continue;
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
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", script);
    if (curves && system(cmd) != 0) warnf("plot %s not written (is gnuplot installed?)", png);
}

static int arm_index(const Recipe *r, const char *name) {
    for (int i = 0; r->arms[i].name; i++) if (!strcmp(r->arms[i].name, name)) return i;
    return -1;
}

// One recipe's section of report.md; res[arm][seed].
static void report_recipe(FILE *f, const Recipe *r, cJSON *res[MAX_ARMS][100], int seeds) {
    fprintf(f, "## %s: %s\n\n| arm | kind | val ppl | val accuracy | gate F1 | paper ppl | paper F1 |\n"
               "|---|---|---|---|---|---|---|\n", r->name, r->what);
    static const char *kinds[] = {"train", "distill (deployed hard top-k)", "eval"};
    double mean_ppl[MAX_ARMS];
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        double p[100], acc[100], f1[100], m, sd, ma, sa, mf, sf;
        for (int s = 0; s < seeds; s++) {
            p[s] = arm_ppl(a, res[i][s]);
            acc[s] = num(res[i][s], a->kind == RUN_DISTILL ? "hard_val_accuracy" : "val_accuracy");
            f1[s] = mean_f1(res[i][s]);
        }
        mean_std(p, seeds, &m, &sd);
        mean_std(acc, seeds, &ma, &sa);
        mean_std(f1, seeds, &mf, &sf);
        mean_ppl[i] = m;
        fprintf(f, "| %s | %s | %.3f ± %.3f | %.4f ± %.4f | %.3f | ", a->name, kinds[a->kind], m, sd,
                ma, sa, mf);
        if (isfinite(a->paper)) fprintf(f, "%.2f | ", a->paper); else fprintf(f, "– | ");
        if (isfinite(a->paper_f1)) fprintf(f, "%.3f |\n", a->paper_f1); else fprintf(f, "– |\n");
    }
    // The derived quantities the paper argues from.
    int d = arm_index(r, "dense"), sl = arm_index(r, "soft_learned"), sr = arm_index(r, "soft_random");
    if (d >= 0 && sl >= 0 && sr >= 0)
        fprintf(f, "\nShare of the random → dense gap captured by the learned soft gate: **%.1f%%** "
                   "(paper: %.1f%%).\n", 100 * (mean_ppl[sr] - mean_ppl[sl]) / (mean_ppl[sr] - mean_ppl[d]),
                100 * (49.83 - 48.73) / (49.83 - 37.32));
    int pr = arm_index(r, "posthoc_random"), kk = arm_index(r, "kl_k"), ok = arm_index(r, "oracle_k");
    if (pr >= 0 && kk >= 0 && ok >= 0)
        fprintf(f, "\nShare of the random → oracle gap closed by the KL-distilled gate at k: **%.1f%%** "
                   "(paper: %.1f%%).\n", 100 * (mean_ppl[pr] - mean_ppl[kk]) / (mean_ppl[pr] - mean_ppl[ok]),
                100 * (46.86 - 48.83) / (46.86 - 46.00));
    int hl = arm_index(r, "hard_learned");
    if (hl >= 0 && res[hl][0]) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(res[hl][0], "gate_grad_norm"), *v;
        double mx = 0;
        cJSON_ArrayForEach(v, g) mx = fmax(mx, fabs(v->valuedouble));
        fprintf(f, "\nGate-gradient norm of the learned hard gate (seed 0, max over layers): %g "
                   "(paper: 0).\n", mx);
    }
    if (!strcmp(r->name, "concentration") && d >= 0 && res[d][0]) {
        fprintf(f, "\n| layer | top-k mass | entropy ratio |\n|---|---|---|\n");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(res[d][0], "topk_mass");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(res[d][0], "entropy_ratio");
        for (int l = 0; l < cJSON_GetArraySize(m); l++)
            fprintf(f, "| %d | %.4f | %.4f |\n", l, cJSON_GetArrayItem(m, l)->valuedouble,
                    cJSON_GetArrayItem(e, l)->valuedouble);
    }
    fprintf(f, "\nPlot: `%s_convergence.png` (training loss, seed 0, training arms).\n\n", r->name);
}

int cmd_repro(int argc, char **argv) {
    const char *name = NULL, *scale_name = "tiny", *out = NULL;
    int seeds = 3, distill_steps = 500;
    char overrides[8192] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: routelab repro NAME [--scale=tiny|small|paper] [--seeds=3] [--out=DIR]\n"
                   "       [--distill_steps=500] [--key=value ...]   (config keys override the\n"
                   "       scale's in training runs)\n"
                   "  Runs a recipe of the routing-absorption paper over several seeds, resumably,\n"
                   "  and writes results.json, report.md and PNG plots into DIR\n"
                   "  (default runs/repro-NAME-SCALE). Recipes:\n");
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
    if (distill_steps < 1) fatal("repro: --distill_steps must be positive");
    int first = -1, last = -1;
    for (int i = 0; i < N_RECIPES; i++) if (!strcmp(RECIPES[i].name, name)) first = last = i;
    if (!strcmp(name, "all")) first = 0, last = N_RECIPES - 1;
    if (first < 0) fatal("repro: unknown recipe '%s' (see routelab repro --help)", name);
    const Scale *scale = NULL;
    for (size_t i = 0; i < sizeof SCALES / sizeof SCALES[0]; i++)
        if (!strcmp(SCALES[i].name, scale_name)) scale = &SCALES[i];
    if (!scale) fatal("repro: --scale must be tiny, small or paper, got '%s'", scale_name);
    char default_out[512];
    snprintf(default_out, sizeof default_out, "runs/repro-%s-%s", name, scale_name);
    if (!out) out = default_out;
    make_dirs(out);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) fatal("repro: cannot find the routelab executable (/proc/self/exe)");
    self[n] = 0;
    printf("repro %s, scale %s, %d seed(s), into %s\n", name, scale->name, seeds, out);

    // Runs of the same arm name are one run (all recipes share OUT), so each runs once.
    cJSON *all = cJSON_CreateArray();
    char *rep = NULL;
    size_t rep_len = 0;
    FILE *f = open_memstream(&rep, &rep_len);
    fprintf(f, "# routelab repro %s\n\nScale `%s`, %d seed(s); mean ± std over seeds, validation "
               "split. Distillation arms are deployed with hard top-k; their perplexity and accuracy "
               "are the deployed ones.\n\n", name, scale->name, seeds);
    static cJSON *res[MAX_ARMS][100];
    int failed = 0;
    for (int ri = first; ri <= last; ri++) {
        const Recipe *r = &RECIPES[ri];
        printf("%s: %s\n", r->name, r->what);
        for (int i = 0; r->arms[i].name; i++)
            for (int s = 0; s < seeds; s++) {
                const Arm *a = &r->arms[i];
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
        report_recipe(f, r, res, seeds);
        plot_curves(out, r);
        for (int i = 0; r->arms[i].name; i++)
            for (int s = 0; s < seeds; s++) cJSON_Delete(res[i][s]), res[i][s] = NULL;
    }
    fclose(f);
    char path[4200];
    join_path(path, sizeof path, out, "results.json");
    char *text = cJSON_Print(all);
    write_file_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(all);
    join_path(path, sizeof path, out, "report.md");
    write_file_atomic(path, rep, rep_len);
    fputs(rep, stdout);
    free(rep);
    printf("report: %s/report.md; results: %s/results.json; plots: %s/*_convergence.png\n", out,
           out, out);
    if (failed) warnf("%d run(s) failed: see their run.log; re-run the command to retry them", failed);
    return failed ? 1 : 0;
}
