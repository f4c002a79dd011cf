// repro.c: see repro.h. The sweep: pick the recipes and the scale, run every active arm and
// seed, then write results.json and report.md (the summary table first) and print the summary.
#include "repro.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "hf_model.h"
#include "fanout.h"
#include "json_out.h"
#include "plots.h"
#include "progress.h"
#include "report.h"
#include "runner.h"

// Recipes named by NAME: one, a comma-separated list, or a group (recipes.h: `all`, `open`,
// `llm`); each once, in the order named.
static size_t select_recipes(const char *name, size_t *chosen) {
    size_t n = 0;
    if (!strcmp(name, "all") || !strcmp(name, "open") || !strcmp(name, "llm")) {
        for (size_t i = 0; i < N_RECIPES; i++) {
            const char *g = RECIPES[i].group ? RECIPES[i].group : "all";
            if (!strcmp(g, name)) chosen[n++] = i;
        }
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
// premise: the premise check of the first dense arm that ran (*premise_done set then).
static int run_recipe(const RunContext *c, const Recipe *r, int seeds, cJSON *all, FILE *body,
                      ArmStats *summary, FILE *premise, int *premise_done) {
    static RecipeResults res;  // static: 2400 pointers; NULL between recipes
    ArmStats st[MAX_ARMS] = {{0}};
    int failed = 0;
    // the llm recipes run at the llm scale (every arm of one is an llm arm)
    const Scale *sc = arm_scale(c, &r->arms[0]);
    printf("%s: %s\n", r->name, r->what);
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, sc)) continue;
        int n = arm_seeds(a, seeds);
        for (int s = 0; s < n; s++) {
            res[i][s] = run_arm(c, a, s);
            failed += res[i][s] == NULL;
            cJSON_AddItemToArray(all, results_row(r, a, sc, s, res[i][s]));
        }
        st[i] = arm_stats(a, res[i], n);
        for (size_t k = 0; k < N_SUMMARY; k++)
            if (!strcmp(SUMMARY[k].arm, a->name) && !summary[k].done) summary[k] = st[i];
    }
    for (int i = 0; r->arms[i].name && !*premise_done; i++)
        if ((!strcmp(r->arms[i].name, "dense") || !strcmp(r->arms[i].name, "llm_dense")) && st[i].done) {
            report_premise(premise, r->arms[i].name, res[i], sc->k);
            *premise_done = 1;
        }
    report_recipe(body, r, sc, res, st);
    plot_curves(c->out, r, sc);
    if (arm_index(r, "learned_topL") >= 0 || arm_index(r, "llm_learned_top0") >= 0)
        plot_gradient(c->out, r, sc, st);
    static const char *const conc[][2] = {{"concentration", "dense"}, {"llm-concentration", "llm_dense"}};
    for (size_t k = 0; k < 2; k++)
        if (!strcmp(r->name, conc[k][0]))
            plot_concentration(c->out, r->name, res[arm_index(r, conc[k][1])], arm_seeds(find_arm(conc[k][1]), seeds), sc->k);
    for (int i = 0; r->arms[i].name; i++)
        for (int s = 0; s < seeds; s++) cJSON_Delete(res[i][s]), res[i][s] = NULL;
    return failed;
}

static int chosen_llm(const size_t *chosen, size_t n_chosen) {
    for (size_t i = 0; i < n_chosen; i++)
        for (const Arm *a = RECIPES[chosen[i]].arms; a->name; a++)
            if (arm_is_llm(a)) return 1;
    return 0;
}

// The last --data=V among the overrides, or NULL.
static const char *data_override(const ReproOptions *o) {
    const char *v = NULL;
    for (size_t i = 0; i < o->n_overrides; i++)
        if (!strncmp(o->overrides[i], "--data=", 7)) v = o->overrides[i] + 7;
    return v;
}

// The llm recipes' scale and data: the pretrained model's layer count (--model's config.json,
// or the n_layer of the model the scale trains itself), the scale's llm protocol, and the data
// (the scale's, or --data: prepared shards, a task, or a text file tokenized here once with the
// model's own tokenizer into OUT/llm-data).
static void llm_setup(RunContext *c, Scale *llm, const ReproOptions *o, char *data_dir, size_t cap) {
    const Scale *sc = c->scale;
    *llm = *sc;
    llm->keys = sc->llm_keys;
    llm->k = sc->llm_k;
    llm->distill_steps = o->distill_steps ? o->distill_steps : sc->llm_distill_steps;
    Config cfg;
    config_defaults(&cfg);
    if (o->model) {
        if (!hf_is_model_dir(o->model))
            fatal("repro: --model=%s is not a Hugging Face model directory (config.json and "
                  "model.safetensors, or its index)", o->model);
        hf_read_config(o->model, &cfg);
        llm->llm_base = NULL;  // the model is given: nothing to train or export
    } else if (sc->llm_base) {
        char words[2048];
        snprintf(words, sizeof words, "%s", sc->llm_base);
        for (char *save, *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(w, '=');
            if (!strncmp(w, "--", 2) && eq) *eq = 0, config_set(&cfg, w + 2, eq + 1, "the scale's llm_base");
        }
    } else {
        fatal("repro: the llm recipes at scale %s need a pretrained model: give --model=DIR (a "
              "Hugging Face directory: config.json + model.safetensors) and --data=TEXT", sc->name);
    }
    llm->n_layer = cfg.n_layer;
    c->model = o->model;
    c->llm_scale = llm;
    c->llm_data = sc->llm_data;
    const char *data = data_override(o);
    if (!data && !sc->llm_data)
        fatal("repro: the llm recipes at scale %s need text: give --data=FILE (e.g. WikiText-103, "
              "tokenized with the model's tokenizer) or --data=SHARDS (routelab prepare)", sc->name);
    if (!data) return;
    c->llm_data = NULL;  // --data replaces the scale's data keys
    if (!file_exists(data) || dir_exists(data)) {  // shards, or a task (mqar, addition)
        snprintf(data_dir, cap, "%s", data);
        c->llm_data_path = data_dir;
        return;
    }
    if (!o->model)
        fatal("repro: --data=%s is a text file: tokenizing it needs the model's tokenizer; give "
              "--model=DIR with DIR/tokenizer.json, or prepared shards (routelab prepare)", data);
    char tok[4200];
    join_path(tok, sizeof tok, o->model, "tokenizer.json");
    if (!file_exists(tok))
        fatal("repro: --data=%s is a text file, and %s is missing: tokenize it yourself (routelab "
              "prepare --tokenizer=...) and give the shards as --data", data, tok);
    join_path(data_dir, cap, c->out, "llm-data");
    c->llm_data_path = data_dir;
    char done[4300], log[4300], why[256];
    join_path(done, sizeof done, data_dir, "dataset.json");
    if (o->list || file_exists(done)) return;  // --list runs nothing; prepared already
    make_dirs(c->out);
    snprintf(log, sizeof log, "%s.log", data_dir);
    printf("tokenizing %s with %s into %s\n", data, tok, data_dir);
    ArgList a = {0};
    args_add(&a, c->self);
    args_add(&a, "prepare");
    args_addf(&a, "--input=%s", data);
    args_addf(&a, "--tokenizer=hf:%s", o->model);
    args_addf(&a, "--out=%s", data_dir);
    if (spawn_wait(a.v, 0, NULL, log, why, sizeof why) != 0)
        fatal("repro: tokenizing %s failed (%s): see %s", data, why, log);
    args_free(&a);
}

static const char *const KIND_NAMES[N_RUN_KINDS] = {"train", "distill", "eval", "probe", "export", "gateinfo"};

// --list: every run the sweep consists of, once per arm name and seed (recipes share runs of
// one name), with the recipes that use it and the child's command line; nothing is run.
static void list_runs(const RunContext *c, const size_t *chosen, size_t n_chosen, int seeds) {
    cJSON *runs = cJSON_CreateArray();
    for (size_t ci = 0; ci < n_chosen; ci++) {
        const Recipe *r = &RECIPES[chosen[ci]];
        for (int i = 0; r->arms[i].name; i++) {
            const Arm *a = &r->arms[i];
            if (!arm_active(a, arm_scale(c, a))) continue;
            for (int s = 0; s < arm_seeds(a, seeds); s++) {
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
                    if (a->ref) cJSON_AddStringToObject(row, "ref", a->ref);
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
    args_addf(a, "--distill_steps=%d", o->distill_steps);  // 0: each scale's own
    if (o->model) args_addf(a, "--model=%s", o->model);
    for (size_t i = 0; i < o->n_overrides; i++) args_add(a, o->overrides[i]);
}

static int write_plan(const ReproOptions *o, const RunContext *c, const size_t *chosen, size_t n_chosen) {
    if (!o->out) fatal("repro --plan=%s: give --out=DIR (the plan and its runs go there)", o->plan);
    const Recipe *recipes[N_RECIPES > 0 ? N_RECIPES : 1];
    for (size_t i = 0; i < n_chosen; i++) recipes[i] = &RECIPES[chosen[i]];
    PlanRun *runs = xcalloc(n_chosen * MAX_ARMS * (size_t)o->seeds, sizeof *runs);
    size_t n = plan_collect(runs, recipes, n_chosen, c, o->seeds);
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
        if (i < 0 || !arm_active(&r->arms[i], arm_scale(c, &r->arms[i]))) continue;
        if (seed >= arm_seeds(&r->arms[i], o->seeds))
            fatal("repro: --only=%s: arm '%s' is one run for every seed: give %s/seed0", o->only, arm, arm);
        cJSON *res = run_arm(c, &r->arms[i], seed);
        cJSON_Delete(res);
        return res ? 0 : 1;
    }
    fatal("repro: --only=%s: the chosen recipes run no arm '%s' at scale %s (see repro --list)",
          o->only, arm, c->scale->name);
}

// The scale's text shards exist (every --data= in its keys), unless --data overrides them: a
// sweep whose every run fails on a missing directory would say so once per run, in run.log.
static void check_scale_data(const Scale *sc, const ReproOptions *o) {
    for (size_t i = 0; i < o->n_overrides; i++)
        if (!strncmp(o->overrides[i], "--data=", 7)) return;
    const char *keys[] = {sc->keys, sc->text_keys, sc->mqar_keys, sc->add_keys, sc->other_data, sc->own_data};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        for (const char *p = keys[k] ? strstr(keys[k], "--data=") : NULL; p; p = strstr(p + 1, "--data=")) {
            char dir[1024];
            size_t n = strcspn(p + 7, " ");
            snprintf(dir, sizeof dir, "%.*s", (int)(n < sizeof dir ? n : sizeof dir - 1), p + 7);
            if (strcmp(dir, "mqar") && strcmp(dir, "addition") && !dir_exists(dir))
                fatal("repro: the %s scale trains on %s, which does not exist here: run `make data-kjv` "
                      "in routelab's directory first (or give --data=DIR)", sc->name, dir);
        }
}

int repro_run(const ReproOptions *o) {
    char msg[512];
    if (recipes_check(RECIPES, N_RECIPES, msg, sizeof msg)) fatal("%s", msg);
    size_t chosen[N_RECIPES > 0 ? N_RECIPES : 1];
    size_t n_chosen = select_recipes(o->name, chosen);
    const Scale *scale = scale_find(o->scale);
    if (!scale) fatal("repro: --scale must be tiny, small, medium or paper, got '%s'", o->scale);
    if (!o->list) check_scale_data(scale, o);
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
                    o->distill_steps ? o->distill_steps : scale->distill_steps, NULL, NULL, NULL, NULL, NULL};
    Scale llm;
    char llm_data_dir[4200];
    if (chosen_llm(chosen, n_chosen)) llm_setup(&c, &llm, o, llm_data_dir, sizeof llm_data_dir);
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
    // the sweep's runs, each once: the progress lines count them
    const Recipe *picked[N_RECIPES > 0 ? N_RECIPES : 1];
    for (size_t i = 0; i < n_chosen; i++) picked[i] = &RECIPES[chosen[i]];
    PlanRun *plan = xcalloc(n_chosen * MAX_ARMS * (size_t)o->seeds, sizeof *plan);
    size_t n_runs = plan_collect(plan, picked, n_chosen, &c, o->seeds);
    RunKind *kinds = xcalloc(n_runs ? n_runs : 1, sizeof *kinds);
    for (size_t i = 0; i < n_runs; i++) kinds[i] = plan[i].arm->kind;
    Progress progress;
    progress_init(&progress, kinds, n_runs);
    c.progress = &progress;
    xfree(kinds), xfree(plan);

    cJSON *all = cJSON_CreateArray();
    char *body = NULL;
    size_t body_len = 0;
    FILE *f = open_memstream(&body, &body_len);
    ArmStats summary[N_SUMMARY > 0 ? N_SUMMARY : 1];
    memset(summary, 0, sizeof summary);
    int failed = 0, premise_done = 0;
    char *premise = NULL;
    size_t premise_len = 0;
    FILE *pf = open_memstream(&premise, &premise_len);
    for (size_t ci = 0; ci < n_chosen; ci++)
        failed += run_recipe(&c, &RECIPES[chosen[ci]], o->seeds, all, f, summary, pf, &premise_done);
    fclose(f);
    fclose(pf);

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
               "are the deployed ones. Every run's config and metrics are in results.json.\n",
            o->name, scale->name, scale->keys, o->seeds);
    if (c.llm_scale)
        fprintf(f, "\nThe llm recipes run on %s (%d layers), with `%s %s` and data `%s`, k = %d, "
                   "distillation %d steps; the model, its export and the evaluations no seed changes "
                   "run once.\n", c.model ? c.model : "the scale's own model (arm llm_base, exported "
                   "as llm_model)", c.llm_scale->n_layer, c.llm_scale->llm_keys, c.llm_scale->llm_window,
                c.llm_data_path ? c.llm_data_path : c.llm_data, c.llm_scale->k, c.llm_scale->distill_steps);
    fprintf(f, "%s\n%s%s", premise, sum, body);
    fclose(f);
    fputs(premise, stdout);
    free(premise);
    join_path(path, sizeof path, out, "report.md");
    write_file_atomic(path, rep, rep_len);
    fputs(n_chosen == 1 ? rep : sum, stdout);
    printf("report: %s/report.md; results: %s/results.json; plots: %s/*.png (%.0f s)\n", out, out,
           out, now_seconds() - t0);
    free(rep), free(sum), free(body);
    progress_free(&progress);
    if (failed) warnf("%d run(s) failed: see their run.log; re-run the command to retry them", failed);
    return failed ? 1 : 0;
}
