// repro.c: see repro.h. The sweep: pick the recipes and the scale, run every active arm and
// seed, then write results.json and report.md (the summary table first) and print the summary.
#include "repro.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fanout.h"
#include "json_out.h"
#include "plots.h"
#include "report.h"
#include "runner.h"

// Recipes named by NAME: one, a comma-separated list, or `all`; each once, in the order named.
static size_t select_recipes(const char *name, size_t *chosen) {
    size_t n = 0;
    if (!strcmp(name, "all")) {
        for (size_t i = 0; i < N_RECIPES; i++) chosen[n++] = i;
        return n;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t found = N_RECIPES;
        for (size_t i = 0; i < N_RECIPES; i++) if (!strcmp(RECIPES[i].name, t)) found = i;
        if (found == N_RECIPES) fatal("repro: unknown recipe '%s' (see routelab repro --help)", t);
        int dup = 0;
        for (size_t j = 0; j < n; j++) dup |= chosen[j] == found;
        if (!dup) chosen[n++] = found;
    }
    return n;
}

// One recipe: runs its arms (rows appended to all), its report section into body, its plots.
// summary[k] gets the first finished statistics of SUMMARY[k]'s arm. Returns the failed runs.
static int run_recipe(const RunContext *c, const Recipe *r, int seeds, cJSON *all, FILE *body,
                      ArmStats *summary) {
    static RecipeResults res;  // static: 2400 pointers; NULL between recipes
    ArmStats st[MAX_ARMS] = {{0}};
    int failed = 0;
    printf("%s: %s\n", r->name, r->what);
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, c->scale)) continue;
        for (int s = 0; s < seeds; s++) {
            res[i][s] = run_arm(c, a, s);
            failed += res[i][s] == NULL;
            cJSON_AddItemToArray(all, results_row(r, a, c->scale, s, res[i][s]));
        }
        st[i] = arm_stats(a, res[i], seeds);
        for (size_t k = 0; k < N_SUMMARY; k++)
            if (!strcmp(SUMMARY[k].arm, a->name) && !summary[k].done) summary[k] = st[i];
    }
    report_recipe(body, r, c->scale, res, st);
    plot_curves(c->out, r, c->scale);
    if (arm_index(r, "learned_topL") >= 0) plot_gradient(c->out, r, c->scale, st);
    if (!strcmp(r->name, "concentration"))
        plot_concentration(c->out, res[arm_index(r, "dense")], seeds, c->scale->k);
    for (int i = 0; r->arms[i].name; i++)
        for (int s = 0; s < seeds; s++) cJSON_Delete(res[i][s]), res[i][s] = NULL;
    return failed;
}

static const char *const KIND_NAMES[] = {"train", "distill", "eval", "probe"};

// --list: every run the sweep consists of, once per arm name and seed (recipes share runs of
// one name), with the recipes that use it and the child's command line; nothing is run.
static void list_runs(const RunContext *c, const size_t *chosen, size_t n_chosen, int seeds) {
    cJSON *runs = cJSON_CreateArray();
    for (size_t ci = 0; ci < n_chosen; ci++) {
        const Recipe *r = &RECIPES[chosen[ci]];
        for (int i = 0; r->arms[i].name; i++) {
            const Arm *a = &r->arms[i];
            if (!arm_active(a, c->scale)) continue;
            for (int s = 0; s < seeds; s++) {
                cJSON *row = NULL, *it;
                cJSON_ArrayForEach(it, runs) {
                    if (!strcmp(cJSON_GetObjectItem(it, "arm")->valuestring, a->name) &&
                        cJSON_GetObjectItem(it, "seed")->valueint == s) row = it;
                }
                if (!row) {
                    row = cJSON_CreateObject();
                    cJSON_AddStringToObject(row, "arm", a->name);
                    json_add_number(row, "seed", s);
                    cJSON_AddStringToObject(row, "kind", KIND_NAMES[a->kind]);
                    if (a->from) cJSON_AddStringToObject(row, "from", a->from);
                    else cJSON_AddNullToObject(row, "from");
                    cJSON_AddArrayToObject(row, "recipes");
                    ArgList cmd = {0};
                    arm_command(&cmd, c, a, s, 0);
                    cJSON *argv = cJSON_AddArrayToObject(row, "argv");
                    for (size_t k = 0; k < cmd.n; k++) cJSON_AddItemToArray(argv, cJSON_CreateString(cmd.v[k]));
                    args_free(&cmd);
                    cJSON_AddItemToArray(runs, row);
                }
                cJSON_AddItemToArray(cJSON_GetObjectItem(row, "recipes"), cJSON_CreateString(r->name));
            }
        }
    }
    json_print_line(stdout, runs);
    cJSON_Delete(runs);
}

// The repro command line of this sweep for a plan's jobs: what was asked, with every default
// spelled out, and the overrides verbatim (--out among them: the runs' signatures record them).
static void repro_args(ArgList *a, const ReproOptions *o, const RunContext *c) {
    args_add(a, c->self);
    args_add(a, "repro");
    args_add(a, o->name);
    args_addf(a, "--scale=%s", c->scale->name);
    args_addf(a, "--seeds=%d", o->seeds);
    args_addf(a, "--distill_steps=%d", c->distill_steps);
    for (size_t i = 0; i < o->n_overrides; i++) args_add(a, o->overrides[i]);
}

static int write_plan(const ReproOptions *o, const RunContext *c, const size_t *chosen, size_t n_chosen) {
    if (!o->out) fatal("repro --plan=%s: give --out=DIR (the plan and its runs go there)", o->plan);
    const Recipe *recipes[N_RECIPES > 0 ? N_RECIPES : 1];
    for (size_t i = 0; i < n_chosen; i++) recipes[i] = &RECIPES[chosen[i]];
    PlanRun *runs = xcalloc(n_chosen * MAX_ARMS * (size_t)o->seeds, sizeof *runs);
    size_t n = plan_collect(runs, recipes, n_chosen, c->scale, o->seeds);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) fatal("repro --plan: cannot read the current directory");
    ArgList args = {0};
    repro_args(&args, o, c);
    SlurmResources res = {o->sbatch_time, o->sbatch_mem, o->sbatch_partition, o->sbatch_cpus};
    plan_write(o->plan, c, runs, n, args.v, cwd, &res);
    args_free(&args);
    xfree(runs);
    return 0;
}

// --only=ARM/seedS: one run of the sweep, as the sweep would run it (a plan's job).
static int run_only(const ReproOptions *o, const RunContext *c, const size_t *chosen, size_t n_chosen) {
    char arm[256];
    int seed = -1, used = 0;
    const char *slash = strrchr(o->only, '/');
    if (slash && (size_t)(slash - o->only) < sizeof arm) snprintf(arm, sizeof arm, "%.*s", (int)(slash - o->only), o->only);
    if (!slash || sscanf(slash, "/seed%d%n", &seed, &used) != 1 || slash[used] || seed < 0 || seed >= o->seeds)
        fatal("repro: --only expects ARM/seedS with S in [0, %d), got '%s'", o->seeds, o->only);
    for (size_t ci = 0; ci < n_chosen; ci++) {
        const Recipe *r = &RECIPES[chosen[ci]];
        int i = arm_index(r, arm);
        if (i < 0 || !arm_active(&r->arms[i], c->scale)) continue;
        cJSON *res = run_arm(c, &r->arms[i], seed);
        cJSON_Delete(res);
        return res ? 0 : 1;
    }
    fatal("repro: --only=%s: the chosen recipes run no arm '%s' at scale %s (see repro --list)",
          o->only, arm, c->scale->name);
}

int repro_run(const ReproOptions *o) {
    char msg[512];
    if (recipes_check(RECIPES, N_RECIPES, msg, sizeof msg)) fatal("%s", msg);
    size_t chosen[N_RECIPES > 0 ? N_RECIPES : 1];
    size_t n_chosen = select_recipes(o->name, chosen);
    const Scale *scale = scale_find(o->scale);
    if (!scale) fatal("repro: --scale must be tiny, small or paper, got '%s'", o->scale);
    char default_out[1200];
    snprintf(default_out, sizeof default_out, "runs/repro-%s-%s", o->name, o->scale);
    for (char *c = default_out; *c; c++) if (*c == ',') *c = '+';
    const char *out = o->out ? o->out : default_out;
    if (!o->list && !o->plan) make_dirs(out);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) fatal("repro: cannot find the routelab executable (/proc/self/exe)");
    self[n] = 0;
    RunContext c = {self, out, scale, o->overrides, o->n_overrides,
                    o->distill_steps ? o->distill_steps : scale->distill_steps};
    if (o->list) {
        list_runs(&c, chosen, n_chosen, o->seeds);
        return 0;
    }
    if (o->plan) {
        make_dirs(out);
        return write_plan(o, &c, chosen, n_chosen);
    }
    if (o->only) return run_only(o, &c, chosen, n_chosen);
    printf("repro %s, scale %s, %d seed(s), into %s\n", o->name, scale->name, o->seeds, out);
    double t0 = now_seconds();

    cJSON *all = cJSON_CreateArray();
    char *body = NULL;
    size_t body_len = 0;
    FILE *f = open_memstream(&body, &body_len);
    ArmStats summary[N_SUMMARY > 0 ? N_SUMMARY : 1];
    memset(summary, 0, sizeof summary);
    int failed = 0;
    for (size_t ci = 0; ci < n_chosen; ci++)
        failed += run_recipe(&c, &RECIPES[chosen[ci]], o->seeds, all, f, summary);
    fclose(f);

    // The summary table heads the report and is what the command prints last.
    char *sum = NULL;
    size_t sum_len = 0;
    f = open_memstream(&sum, &sum_len);
    report_summary(f, summary, o->seeds);
    fclose(f);
    char path[4200];
    join_path(path, sizeof path, out, "results.json");
    char *text = json_to_line(all);
    write_file_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(all);
    char *rep = NULL;
    size_t rep_len = 0;
    f = open_memstream(&rep, &rep_len);
    fprintf(f, "# routelab repro %s\n\nScale `%s` (%s), %d seed(s); mean ± std over seeds, validation "
               "split. Distillation arms are deployed with hard top-k; their perplexity and accuracy "
               "are the deployed ones. Every run's config and metrics are in results.json.\n\n%s%s",
            o->name, scale->name, scale->keys, o->seeds, sum, body);
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
