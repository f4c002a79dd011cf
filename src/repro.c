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
} Scale;

static const Scale SCALES[] = {
    {"tiny", "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=64 --k=8 "
             "--d_g=16 --vocab_size=64 --mqar_pairs=4 --batch=32 --steps=300 --warmup=30 "
             "--lr=1e-3 --dropout=0 --eval_every=100 --eval_batches=4 --mqar_eval_examples=128 "
             "--log_every=0 --ckpt_every=100"},
    {"small", "--data=data/kjv-8k --vocab_size=8192 --n_layer=4 --d_model=128 --n_head=4 "
              "--d_ff=512 --seq_len=256 --k=32 --batch=8 --steps=2000 --warmup=100 --lr=1e-3 "
              "--dropout=0.1 --eval_every=500 --eval_batches=20 --log_every=0 --ckpt_every=250"},
    {"paper", "--k=64 --log_every=0 --ckpt_every=500"},  // the paper's model: routelab's defaults
};

typedef struct {
    const char *name, *keys;
    double paper_ppl;  // NAN where the paper gives none
} Arm;

typedef struct {
    const char *name, *what;
    Arm arms[8];
} Recipe;

static const Recipe RECIPES[] = {
    {"exp1", "soft gate: learned vs frozen random vs dense",
     {{"dense", "--attn=dense", 37.32},
      {"soft_learned", "--attn=soft --gate=learned", 48.73},
      {"soft_random", "--attn=soft --gate=random", 49.83},
      {NULL, NULL, 0}}},
    {"exp2", "hard top-k gate: learned vs random (the gate gets no gradient)",
     {{"hard_learned", "--attn=hard --gate=learned", 71.22},
      {"hard_random", "--attn=hard --gate=random", 71.24},
      {NULL, NULL, 0}}},
    {"concentration", "how concentrated dense attention is, per layer",
     {{"dense", "--attn=dense", NAN}, {NULL, NULL, 0}}},
};
#define N_RECIPES (int)(sizeof RECIPES / sizeof RECIPES[0])

// Runs one arm and seed (or skips it); returns the parsed result, or NULL on failure.
static cJSON *run_arm(const char *self, const char *out, const Scale *scale, const Arm *arm,
                      int seed, const char *overrides) {
    char dir[4096], result_path[4200], ckpt[4200], cmd[40000];
    snprintf(dir, sizeof dir, "%s/%s/seed%d", out, arm->name, seed);
    join_path(result_path, sizeof result_path, dir, "result.json");
    join_path(ckpt, sizeof ckpt, dir, "model.ckpt");
    if (!file_exists(result_path)) {
        make_dirs(dir);
        if (file_exists(ckpt)) {  // interrupted: continue where it stopped
            printf("  %-14s seed %d: resuming\n", arm->name, seed);
            snprintf(cmd, sizeof cmd, "'%s' train --resume='%s' --json > '%s.tmp' 2> '%s/train.log'",
                     self, dir, result_path, dir);
        } else {
            printf("  %-14s seed %d: training\n", arm->name, seed);
            snprintf(cmd, sizeof cmd,
                     "'%s' train %s %s --seed=%d --gate_seed=%d --data_seed=%d %s --out='%s' --json "
                     "> '%s.tmp' 2> '%s/train.log'",
                     self, scale->keys, arm->keys, seed, 1000 + seed, 1 + seed, overrides, dir,
                     result_path, dir);
        }
        fflush(stdout);
        int rc = system(cmd);
        if (rc != 0) {
            warnf("run %s seed %d failed (exit %d): see %s/train.log", arm->name, seed, rc, dir);
            return NULL;
        }
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", result_path);
        size_t len;
        char *text = read_file(tmp, &len, "run result");
        cJSON *j = cJSON_Parse(text);
        int completed = j && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "completed"));
        cJSON_Delete(j);
        xfree(text);
        if (!completed)  // stopped early (signal, time limit): keep the checkpoint, end the sweep
            fatal("run %s seed %d stopped before its last step: re-run the same repro command to "
                  "resume the sweep", arm->name, seed);
        if (rename(tmp, result_path) != 0) fatal("cannot rename '%s'", tmp);
    } else {
        printf("  %-14s seed %d: done already (skipped)\n", arm->name, seed);
    }
    size_t len;
    char *text = read_file(result_path, &len, "run result");
    cJSON *j = cJSON_Parse(text);
    xfree(text);
    if (!j) warnf("run result '%s' is not JSON: delete it to re-run", result_path);
    return j;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) s += x[i], k++;
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = k > 1 ? sqrt(ss / (k - 1)) : 0.0;
}

// Convergence curves (training loss of seed 0 of every arm) as a PNG through gnuplot.
static void plot_curves(const char *out, const Recipe *r) {
    char data[4200], png[4200], script[4200], cmd[8800];
    snprintf(png, sizeof png, "%s/%s_convergence.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_convergence.gp", out, r->name);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\nset title \"%s: %s\"\n"
               "set xlabel 'step'\nset ylabel 'training loss'\nset key top right\nplot ",
            png, r->name, r->what);
    int first = 1;
    for (const Arm *a = r->arms; a->name; a++) {
        snprintf(data, sizeof data, "%s/%s/seed0/loss.dat", out, a->name);
        char metrics[4200];
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
        fprintf(g, "%s'%s' using 1:2 with lines title '%s'", first ? "" : ", ", data, a->name);
        first = 0;
    }
    fprintf(g, "\n");
    fclose(g);
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", script);
    if (first || system(cmd) != 0) warnf("plot %s not written (is gnuplot installed?)", png);
}

int cmd_repro(int argc, char **argv) {
    const char *name = NULL, *scale_name = "tiny", *out = NULL;
    int seeds = 3;
    char overrides[8192] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: routelab repro NAME [--scale=tiny|small|paper] [--seeds=3] [--out=DIR]\n"
                   "       [--key=value ...]   (any config key overrides the scale's)\n"
                   "  Runs a recipe of the routing-absorption paper over several seeds, resumably,\n"
                   "  and writes results.json, report.md and PNG plots into DIR\n"
                   "  (default runs/repro-NAME-SCALE). Recipes:\n");
            for (int r = 0; r < N_RECIPES; r++) printf("    %-14s %s\n", RECIPES[r].name, RECIPES[r].what);
            printf("  Status: exp3, exp4, posthoc, capacity, gradient and all are not built yet.\n");
            return 0;
        }
        if (!strncmp(a, "--scale=", 8)) scale_name = a + 8;
        else if (!strncmp(a, "--seeds=", 8)) seeds = atoi(a + 8);
        else if (!strncmp(a, "--out=", 6)) out = a + 6;
        else if (!strncmp(a, "--", 2) && strchr(a, '=')) {
            if (strlen(overrides) + strlen(a) + 4 >= sizeof overrides) fatal("repro: too many overrides");
            strcat(overrides, " '"), strcat(overrides, a), strcat(overrides, "'");
        } else if (!name) name = a;
        else fatal("repro: unexpected argument '%s' (see --help)", a);
    }
    if (!name) fatal("repro: name a recipe (see routelab repro --help)");
    if (seeds < 1 || seeds > 100) fatal("repro: --seeds must be in 1..100, got %d", seeds);
    const Recipe *r = NULL;
    for (int i = 0; i < N_RECIPES; i++) if (!strcmp(RECIPES[i].name, name)) r = &RECIPES[i];
    if (!r) fatal("repro: unknown recipe '%s' (see routelab repro --help)", name);
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
    printf("repro %s (%s), scale %s, %d seed(s), into %s\n", r->name, r->what, scale->name, seeds, out);

    cJSON *all = cJSON_CreateArray();
    int n_arms = 0;
    double ppl[8][100], acc[8][100];
    cJSON *first_result[8] = {0};
    for (const Arm *a = r->arms; a->name; a++, n_arms++) {
        for (int s = 0; s < seeds; s++) {
            cJSON *res = run_arm(self, out, scale, a, s, overrides);
            ppl[n_arms][s] = res ? num(res, "val_ppl") : NAN;
            acc[n_arms][s] = res ? num(res, "val_accuracy") : NAN;
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "arm", a->name);
            cJSON_AddNumberToObject(row, "seed", s);
            cJSON_AddStringToObject(row, "scale", scale->name);
            char keys[16384];
            snprintf(keys, sizeof keys, "%s %s%s", scale->keys, a->keys, overrides);
            cJSON_AddStringToObject(row, "keys", keys);
            if (res) cJSON_AddItemToObject(row, "result", res);
            else cJSON_AddNullToObject(row, "result");
            if (s == 0) first_result[n_arms] = res;
            cJSON_AddItemToArray(all, row);
        }
    }
    char path[4200];
    join_path(path, sizeof path, out, "results.json");
    char *text = cJSON_Print(all);
    write_file_atomic(path, text, strlen(text));
    free(text);

    // report.md
    char *rep = NULL;
    size_t rep_len = 0;
    FILE *f = open_memstream(&rep, &rep_len);
    fprintf(f, "# %s: %s\n\nScale `%s`, %d seed(s), mean ± std over seeds (validation).\n\n",
            r->name, r->what, scale->name, seeds);
    fprintf(f, "| arm | val ppl | val accuracy | paper ppl |\n|---|---|---|---|\n");
    double mean_ppl[8];
    for (int i = 0; i < n_arms; i++) {
        double m, sd, ma, sa;
        mean_std(ppl[i], seeds, &m, &sd);
        mean_std(acc[i], seeds, &ma, &sa);
        mean_ppl[i] = m;
        fprintf(f, "| %s | %.3f ± %.3f | %.4f ± %.4f | ", r->arms[i].name, m, sd, ma, sa);
        if (isfinite(r->arms[i].paper_ppl)) fprintf(f, "%.2f |\n", r->arms[i].paper_ppl);
        else fprintf(f, "– |\n");
    }
    if (!strcmp(r->name, "exp1") && n_arms == 3) {
        double dense = mean_ppl[0], learned = mean_ppl[1], random = mean_ppl[2];
        fprintf(f, "\nShare of the random → dense gap captured by the learned gate: **%.1f%%** "
                   "(paper: %.1f%%).\n", 100 * (random - learned) / (random - dense),
                100 * (49.83 - 48.73) / (49.83 - 37.32));
    }
    if (!strcmp(r->name, "exp2") && first_result[0]) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(first_result[0], "gate_grad_norm");
        double mx = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, g) mx = fmax(mx, fabs(v->valuedouble));
        fprintf(f, "\nGate-gradient norm of the learned hard gate (seed 0, last step, max over "
                   "layers): %g (paper: 0).\n", mx);
    }
    if (!strcmp(r->name, "concentration") && first_result[0]) {
        fprintf(f, "\n| layer | top-k mass | entropy ratio |\n|---|---|---|\n");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(first_result[0], "topk_mass");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(first_result[0], "entropy_ratio");
        for (int l = 0; l < cJSON_GetArraySize(m); l++)
            fprintf(f, "| %d | %.4f | %.4f |\n", l, cJSON_GetArrayItem(m, l)->valuedouble,
                    cJSON_GetArrayItem(e, l)->valuedouble);
    }
    fprintf(f, "\nPlot: `%s_convergence.png` (training loss, seed 0). Raw: `results.json`.\n", r->name);
    fclose(f);
    join_path(path, sizeof path, out, "report.md");
    write_file_atomic(path, rep, rep_len);
    fputs(rep, stdout);
    free(rep);
    plot_curves(out, r);
    cJSON_Delete(all);
    printf("\nreport: %s/report.md\n", out);
    return 0;
}
