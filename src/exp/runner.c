// runner.c: see runner.h.
#include "runner.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "result_keys.h"

// The directory an export arm writes its Hugging Face model into, under its run directory.
#define EXPORT_SUBDIR "model"

const Scale *arm_scale(const RunContext *c, const Arm *arm) {
    return arm_is_llm(arm) && c->llm_scale ? c->llm_scale : c->scale;
}

void arm_source(char *out, size_t cap, const RunContext *c, const Arm *arm, int seed) {
    out[0] = 0;
    if (!arm->from) return;
    const Arm *f = find_arm(arm->from);
    if (f && f->kind == RUN_EXPORT && c->model) snprintf(out, cap, "%s", c->model);
    else if (f && f->kind == RUN_EXPORT) snprintf(out, cap, "%s/%s/seed0/" EXPORT_SUBDIR, c->out, f->name);
    else snprintf(out, cap, "%s/%s/seed%d", c->out, arm->from, f && f->single ? 0 : seed);
}

// The keys every run of an llm arm gets after its own: windows and data (not the base model's:
// its keys name its own data).
static void add_llm_data(ArgList *cmd, const RunContext *c, const Arm *arm) {
    if (arm->task != TASK_LLM) return;
    args_add_words(cmd, arm_scale(c, arm)->llm_window);
    if (c->llm_data) args_add_words(cmd, c->llm_data);
    if (c->llm_data_path) args_addf(cmd, "--data=%s", c->llm_data_path);
}

void arm_command(ArgList *cmd, const RunContext *c, const Arm *arm, int seed, int resume) {
    char dir[4096], from[4096] = "", keys[4096];
    const Scale *sc = arm_scale(c, arm);
    snprintf(dir, sizeof dir, "%s/%s/seed%d", c->out, arm->name, seed);
    arm_source(from, sizeof from, c, arm, seed);
    expand_keys(keys, sizeof keys, arm->keys, sc, seed);
    args_add(cmd, c->self);
    if (arm->kind == RUN_EXPORT) {  // a plain Hugging Face directory, as a download would be
        args_add(cmd, "export");
        args_addf(cmd, "--ckpt=%s", from);
        args_addf(cmd, "--out=%s/" EXPORT_SUBDIR, dir);
        args_add(cmd, "--plain");
    } else if (arm->kind == RUN_TRAIN && resume) {
        args_add(cmd, "train");
        args_addf(cmd, "--resume=%s", dir);
    } else if (arm->kind == RUN_TRAIN) {
        // Fixed per-seed streams: every arm of a seed starts from the same weights and data
        // (an arm's keys come after them, so an independent model can set its own, {seed}).
        args_add(cmd, "train");
        args_add_words(cmd, task_keys(sc, arm->task));
        add_llm_data(cmd, c, arm);
        args_addf(cmd, "--seed=%d", seed);
        args_addf(cmd, "--gate_seed=%d", 1000 + seed);
        args_addf(cmd, "--router_seed=%d", 3000 + seed);
        args_addf(cmd, "--data_seed=%d", 1 + seed);
        args_add_words(cmd, keys);
        for (size_t i = 0; i < c->n_overrides; i++)  // an llm arm's data is c->llm_data
            if (arm->task != TASK_LLM || strncmp(c->overrides[i], "--data=", 7)) args_add(cmd, c->overrides[i]);
        if (arm->from) args_addf(cmd, "--init=%s", from);
        args_addf(cmd, "--out=%s", dir);
    } else if (arm->kind == RUN_GATEINFO) {
        args_add(cmd, "gateinfo");
        args_addf(cmd, "--ckpt=%s", from);
        args_addf(cmd, "--ref=%s/%s/seed%d", c->out, arm->ref, seed);
        args_add_words(cmd, keys);
    } else if (arm->kind == RUN_PROBE) {
        args_add(cmd, "probe");
        args_addf(cmd, "--ckpt=%s", from);
        args_add_words(cmd, keys);
    } else if (arm->kind == RUN_DISTILL) {  // the scale's training keys do not apply
        args_add(cmd, "distill");
        args_addf(cmd, "--from=%s", from);
        add_llm_data(cmd, c, arm);
        args_add_words(cmd, keys);
        args_addf(cmd, "--gate_seed=%d", 2000 + seed);
        args_addf(cmd, "--steps=%d", arm_is_llm(arm) ? sc->distill_steps : c->distill_steps);
        args_addf(cmd, "--out=%s", dir);
    } else {
        args_add(cmd, "eval");
        args_addf(cmd, "--ckpt=%s", from);
        add_llm_data(cmd, c, arm);
        args_add_words(cmd, keys);
    }
    args_add(cmd, "--json");
}

void arm_signature(char *out, size_t cap, const RunContext *c, const Arm *arm, int seed) {
    char keys[4096], overrides[8192] = "";
    const Scale *sc = arm_scale(c, arm);
    expand_keys(keys, sizeof keys, arm->keys, sc, seed);
    // The overrides as the shell command string of earlier versions quoted them: " '--k=v'".
    size_t o = 0;
    for (size_t i = 0; i < c->n_overrides && o < sizeof overrides; i++)
        o += (size_t)snprintf(overrides + o, sizeof overrides - o, " '%s'", c->overrides[i]);
    if (o >= sizeof overrides) fatal("repro: too many overrides (at most %zu characters)", sizeof overrides);
    int distill_steps = arm_is_llm(arm) ? sc->distill_steps : c->distill_steps;
    int n = snprintf(out, cap, "%d|%s|%s|%d|%s|%d\n", (int)arm->kind,
                     arm->kind == RUN_TRAIN ? task_keys(sc, arm->task) : "", keys, seed,
                     arm->kind == RUN_TRAIN ? overrides : "", arm->kind == RUN_DISTILL ? distill_steps : 0);
    // llm arms (a later addition) also record their windows, data and model; the others keep
    // the format above
    if (arm->ref && n > 0 && (size_t)n < cap) n += snprintf(out + n, cap - (size_t)n, "ref|%s\n", arm->ref);
    if (arm->task == TASK_LLM && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "llm|%s|%s|%s|%s\n", sc->llm_window,
                 c->llm_data ? c->llm_data : "", c->llm_data_path ? c->llm_data_path : "",
                 c->model ? c->model : "");
}

// Warns when a reused result was made with other settings than this command's.
static void check_signature(const char *dir, const char *signature_path, const char *signature) {
    if (!file_exists(signature_path)) return;  // made before signatures were kept
    size_t n;
    char *old = read_file(signature_path, &n, "run signature");
    if (strcmp(old, signature) != 0)
        warnf("%s was run with other settings than this command's (scale, keys or "
              "overrides): its result is reused; delete that directory to re-run it", dir);
    xfree(old);
}

// Runs the child into result.json.tmp; on success records the signature and renames the result
// into place, so that result.json exists only for a run that finished. Returns 0 on failure.
static int execute(const RunContext *c, const Arm *arm, int seed, const char *dir,
                   const char *result_path, const char *signature_path, const char *signature) {
    char ckpt[4200], log[4200], tmp[4300], why[256];
    join_path(ckpt, sizeof ckpt, dir, "model.ckpt");
    join_path(log, sizeof log, dir, "run.log");
    snprintf(tmp, sizeof tmp, "%s.tmp", result_path);
    make_dirs(dir);
    int resume = arm->kind == RUN_TRAIN && file_exists(ckpt);  // interrupted: continue
    static const char *const doing[N_RUN_KINDS] = {"training", "distilling", "evaluating", "probing",
                                                   "exporting", "measuring gate information"};
    printf("  %-20s seed %d: %s\n", arm->name, seed, resume ? "resuming" : doing[arm->kind]);
    fflush(stdout);
    ArgList cmd = {0};
    arm_command(&cmd, c, arm, seed, resume);
    if (c->progress) progress_start(c->progress, arm, seed, dir);
    int rc = spawn_wait_ticking(cmd.v, 0, tmp, log, why, sizeof why, c->progress ? progress_tick : NULL, c->progress);
    args_free(&cmd);
    if (rc != 0) {
        warnf("run %s seed %d failed (%s): see %s", arm->name, seed, why, log);
        return 0;
    }
    size_t len;
    char *text = read_file(tmp, &len, "run result");
    cJSON *j = cJSON_Parse(text);
    const cJSON *done = j ? cJSON_GetObjectItemCaseSensitive(j, RK_COMPLETED) : NULL;
    int completed = j && (!done || cJSON_IsTrue(done));  // only training can stop early
    cJSON_Delete(j);
    xfree(text);
    if (!completed)  // stopped early (signal, time limit): keep the checkpoint, end the sweep
        fatal("run %s seed %d stopped before its last step: re-run the same repro command to "
              "resume the sweep", arm->name, seed);
    FILE *sig = xfopen(signature_path, "w", "run signature");
    fputs(signature, sig);
    fclose(sig);
    if (rename(tmp, result_path) != 0) fatal("cannot rename '%s' to result.json", tmp);
    return 1;
}

cJSON *run_arm(const RunContext *c, const Arm *arm, int seed) {
    char dir[4096], result_path[4200], signature_path[4200], signature[16384];
    snprintf(dir, sizeof dir, "%s/%s/seed%d", c->out, arm->name, seed);
    join_path(result_path, sizeof result_path, dir, "result.json");
    join_path(signature_path, sizeof signature_path, dir, "run.signature");
    arm_signature(signature, sizeof signature, c, arm, seed);
    if (file_exists(result_path)) {
        printf("  %-20s seed %d: done already (skipped)\n", arm->name, seed);
        check_signature(dir, signature_path, signature);
        if (c->progress) progress_end(c->progress, arm, seed, 0);
    } else {
        int ok = execute(c, arm, seed, dir, result_path, signature_path, signature);
        if (c->progress) progress_end(c->progress, arm, seed, 1);
        if (!ok) return NULL;
    }
    size_t len;
    char *text = read_file(result_path, &len, "run result");
    cJSON *j = cJSON_Parse(text);
    xfree(text);
    if (!j) warnf("run result '%s' is not JSON: delete it to re-run", result_path);
    return j;
}
