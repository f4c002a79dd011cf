// test_repro.c: the repro machinery that needs no training: the consistency check of arms shared
// between recipes, key expansion, a report from missing or null metrics, the child argument lists (no shell: each key one entry, paths
// with quotes and spaces intact), the run.signature format, and spawning children.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "common.h"
#include "json_out.h"
#include "recipes.h"
#include "report.h"
#include "runner.h"
#include "spawn.h"

static void test_recipes_check(void) {
    char msg[512];
    CHECK(recipes_check(RECIPES, N_RECIPES, msg, sizeof msg) == NULL, "the real table: %s", msg);
    // Every shared arm name really is shared somewhere (else the check would test nothing).
    CHECK(find_arm("dense") && find_arm("soft_learned") && find_arm("add_dense"), "shared arms exist");

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
    static const Recipe same[] = {
        {"one", "a", {{"dense", RUN_TRAIN, NULL, "--attn=dense", 1, NAN}, {"x", RUN_EVAL, "dense", "--k=2", NAN, NAN}}},
        {"two", "b", {{"y", RUN_TRAIN, NULL, "", NAN, NAN}, {"dense", RUN_TRAIN, NULL, "--attn=dense", 2, 0.5}}},
    };
    static const Recipe keys[] = {
        {"one", "a", {{"dense", RUN_TRAIN, NULL, "--attn=dense", NAN, NAN}}},
        {"two", "b", {{"soft", RUN_TRAIN, NULL, "--attn=soft", NAN, NAN}}},
        {"three", "c", {{"dense", RUN_TRAIN, NULL, "--attn=soft", NAN, NAN}}},
    };
    static const Recipe from[] = {
        {"p", "a", {{"e", RUN_EVAL, "dense", "--k=1", NAN, NAN}}},
        {"q", "b", {{"e", RUN_EVAL, "soft", "--k=1", NAN, NAN}}},
    };
    static const Recipe task[] = {
        {"p", "a", {{"t", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION}}},
        {"q", "b", {{"t", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_TEXT}}},
    };
    static const Recipe layers[] = {
        {"p", "a", {{"t", RUN_TRAIN, NULL, "", NAN, NAN, 2}}},
        {"q", "b", {{"t", RUN_TRAIN, NULL, "", NAN, NAN, 4}}},
    };
    static const Recipe kind[] = {
        {"p", "a", {{"t", RUN_TRAIN, "d", "", NAN, NAN}}},
        {"q", "b", {{"t", RUN_EVAL, "d", "", NAN, NAN}}},
    };
    static const Recipe within[] = {  // one recipe listing an arm twice, differently
        {"p", "a", {{"t", RUN_TRAIN, NULL, "--k=1", NAN, NAN}, {"t", RUN_TRAIN, NULL, "--k=2", NAN, NAN}}},
    };
#pragma GCC diagnostic pop
    CHECK(recipes_check(same, 2, msg, sizeof msg) == NULL, "same definitions, other paper values: %s", msg);
    const char *e = recipes_check(keys, 3, msg, sizeof msg);
    CHECK(e && strstr(e, "'dense'") && strstr(e, "'one'") && strstr(e, "'three'") && strstr(e, "keys") &&
          !strstr(e, "'two'") && !strchr(e, '\n'), "clashing keys: %s", e ? e : "(passed)");
    e = recipes_check(from, 2, msg, sizeof msg);
    CHECK(e && strstr(e, "'e'") && strstr(e, "from"), "clashing from: %s", e ? e : "(passed)");
    e = recipes_check(task, 2, msg, sizeof msg);
    CHECK(e && strstr(e, "task"), "clashing task: %s", e ? e : "(passed)");
    e = recipes_check(layers, 2, msg, sizeof msg);
    CHECK(e && strstr(e, "needs_layers"), "clashing needs_layers: %s", e ? e : "(passed)");
    e = recipes_check(kind, 2, msg, sizeof msg);
    CHECK(e && strstr(e, "kind"), "clashing kind: %s", e ? e : "(passed)");
    e = recipes_check(within, 1, msg, sizeof msg);
    CHECK(e && strstr(e, "'t'"), "an arm listed twice in one recipe: %s", e ? e : "(passed)");
}

static void test_expand_keys(void) {
    for (size_t i = 0; i < N_SCALES; i++) {
        const Scale *sc = &SCALES[i];
        CHECK(scale_find(sc->name) == sc, "scale_find(%s)", sc->name);
        char got[256], want[256];
        expand_keys(got, sizeof got, "--k={k} --a={2k} --b={4k} --n={L} --h={L/2} --m={seed} --x=k{", sc, 3);
        snprintf(want, sizeof want, "--k=%d --a=%d --b=%d --n=%d --h=%d --m=%d --x=k{", sc->k, 2 * sc->k,
                 4 * sc->k, sc->n_layer, sc->n_layer / 2, 103);
        CHECK(!strcmp(got, want), "%s: '%s' vs '%s'", sc->name, got, want);
        expand_keys(got, sizeof got, "", sc, 0);
        CHECK(got[0] == 0, "empty keys");
    }
    CHECK(scale_find("huge") == NULL, "unknown scale");
    const Scale *tiny = scale_find("tiny");
    char got[64];
    expand_keys(got, sizeof got, "--attn=random_fixed --mask_seed={seed}", tiny, 1);
    CHECK(!strcmp(got, "--attn=random_fixed --mask_seed=101"), "mask seed: %s", got);
}

static void test_words(void) {
    ArgList a = {0};
    args_add_words(&a, "  --attn=soft   --gate=learned ");
    CHECK(a.n == 2 && !strcmp(a.v[0], "--attn=soft") && !strcmp(a.v[1], "--gate=learned") && !a.v[2],
          "split: %zu entries", a.n);
    args_add_words(&a, "");
    CHECK(a.n == 2, "empty string adds nothing");
    args_add(&a, "it's a path");
    args_addf(&a, "--seed=%d", 7);
    CHECK(a.n == 4 && !strcmp(a.v[2], "it's a path") && !strcmp(a.v[3], "--seed=7") && !a.v[4], "add, addf");
    args_free(&a);
    CHECK(a.n == 0 && a.v == NULL, "freed");
}

static int has_arg(const ArgList *a, const char *s) {
    for (size_t i = 0; i < a->n; i++) if (!strcmp(a->v[i], s)) return 1;
    return 0;
}

static void test_commands(void) {
    const Scale *tiny = scale_find("tiny");
    const char *ov[] = {"--steps=8", "--eval_batches=1"};
    RunContext c = {"/bin/routelab", "/tmp/it's here", tiny, ov, 2, 7, NULL, NULL, NULL, NULL, NULL};
    const Arm *dense = find_arm("dense"), *kl = find_arm("kl_2k"), *oracle = find_arm("oracle_k");
    const Arm *probe = find_arm("mqar_probe"), *post = find_arm("posthoc_learned");
    ArgList a = {0};
    arm_command(&a, &c, dense, 2, 0);
    ArgList task = {0};
    args_add_words(&task, tiny->keys);
    // program, "train", the scale's keys one by one, 4 seeds, the arm's (after the seeds: an arm
    // may set its own), 2 overrides, out, json
    CHECK(a.n == 2 + task.n + 4 + 1 + 2 + 2, "train argv: %zu entries", a.n);
    CHECK(!strcmp(a.v[0], "/bin/routelab") && !strcmp(a.v[1], "train"), "train head");
    for (size_t i = 0; i < task.n; i++) CHECK(!strcmp(a.v[2 + i], task.v[i]), "scale key %zu", i);
    CHECK(!strcmp(a.v[2 + task.n + 4], "--attn=dense"), "arm key");
    CHECK(has_arg(&a, "--seed=2") && has_arg(&a, "--gate_seed=1002") && has_arg(&a, "--router_seed=3002") &&
          has_arg(&a, "--data_seed=3") && has_arg(&a, "--steps=8") && has_arg(&a, "--eval_batches=1"), "seeds, overrides");
    CHECK(!strcmp(a.v[a.n - 2], "--out=/tmp/it's here/dense/seed2") && !strcmp(a.v[a.n - 1], "--json"), "out: %s", a.v[a.n - 2]);
    args_free(&task);
    args_free(&a);

    // an independent model: its own seeds come after (and so override) the per-seed streams
    const Arm *ref = find_arm("dense_ref"), *info = find_arm("info_soft_learned");
    arm_command(&a, &c, ref, 2, 0);
    size_t last_seed = 0, last_data_seed = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (!strncmp(a.v[i], "--seed=", 7)) last_seed = i;
        if (!strncmp(a.v[i], "--data_seed=", 12)) last_data_seed = i;
    }
    CHECK(!strcmp(a.v[last_seed], "--seed=102") && !strcmp(a.v[last_data_seed], "--data_seed=102") &&
          has_arg(&a, "--seed=2"), "dense_ref's own seeds last: %s %s", a.v[last_seed], a.v[last_data_seed]);
    args_free(&a);
    arm_command(&a, &c, info, 1, 0);
    CHECK(a.n == 5 && !strcmp(a.v[1], "gateinfo") && !strcmp(a.v[2], "--ckpt=/tmp/it's here/soft_learned/seed1") &&
          !strcmp(a.v[3], "--ref=/tmp/it's here/dense_ref/seed1") && !strcmp(a.v[4], "--json"),
          "gateinfo argv: the gated arm's run and its reference of the same seed");
    args_free(&a);

    arm_command(&a, &c, dense, 0, 1);
    CHECK(a.n == 4 && !strcmp(a.v[2], "--resume=/tmp/it's here/dense/seed0"), "resume argv");
    args_free(&a);
    arm_command(&a, &c, post, 1, 0);
    CHECK(has_arg(&a, "--init=/tmp/it's here/dense/seed1") && has_arg(&a, "--train=gates"), "init from dense");
    args_free(&a);
    arm_command(&a, &c, kl, 1, 0);
    const char *want_kl[] = {"/bin/routelab", "distill", "--from=/tmp/it's here/dense/seed1", "--loss=kl",
                             "--k=8", "--gate_seed=2001", "--steps=7", "--out=/tmp/it's here/kl_2k/seed1", "--json"};
    int same = a.n == 9;
    for (size_t i = 0; same && i < 9; i++) same = !strcmp(a.v[i], want_kl[i]);
    CHECK(same, "distill argv");
    args_free(&a);
    arm_command(&a, &c, oracle, 0, 0);
    CHECK(a.n == 6 && !strcmp(a.v[1], "eval") && !strcmp(a.v[2], "--ckpt=/tmp/it's here/dense/seed0") &&
          !strcmp(a.v[3], "--attn=oracle") && !strcmp(a.v[4], "--k=4"), "eval argv");
    args_free(&a);
    arm_command(&a, &c, probe, 0, 0);
    CHECK(a.n == 4 && !strcmp(a.v[1], "probe") && !strcmp(a.v[3], "--json"), "probe argv (no keys)");
    args_free(&a);

    // The signature format is stored in finished runs: it must stay as it was.
    char sig[8192], want[8192];
    arm_signature(sig, sizeof sig, &c, dense, 0);
    snprintf(want, sizeof want, "0|%s|--attn=dense|0| '--steps=8' '--eval_batches=1'|0\n", tiny->keys);
    CHECK(!strcmp(sig, want), "train signature: %s", sig);
    arm_signature(sig, sizeof sig, &c, kl, 1);
    CHECK(!strcmp(sig, "1||--loss=kl --k=8|1||7\n"), "distill signature: %s", sig);
    arm_signature(sig, sizeof sig, &c, oracle, 0);
    CHECK(!strcmp(sig, "2||--attn=oracle --k=4|0||0\n"), "eval signature: %s", sig);
}


static const Recipe *recipe(const char *name) {
    for (size_t i = 0; i < N_RECIPES; i++) if (!strcmp(RECIPES[i].name, name)) return &RECIPES[i];
    return NULL;
}

// A report section of recipe name from result texts (one seed each; NULL: a failed run).
// Returns the text (caller frees); it must never show a missing number as "nan".
static char *report_of(const char *name, const char *const *results, size_t n) {
    static RecipeResults res;
    const Recipe *r = recipe(name);
    const Scale *tiny = scale_find("tiny");
    ArmStats st[MAX_ARMS] = {{0}};
    for (size_t i = 0; i < n; i++) {
        res[i][0] = results[i] ? cJSON_Parse(results[i]) : NULL;
        st[i] = arm_stats(&r->arms[i], res[i], 1);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    report_recipe(f, r, tiny, res, st);
    fclose(f);
    for (size_t i = 0; i < n; i++) cJSON_Delete(res[i][0]), res[i][0] = NULL;
    return text;
}

static void test_report_missing(void) {
    // exp1: dense without a perplexity (null), soft_learned failed, soft_random complete but for
    // a null F1 layer.
    const char *exp1[] = {"{\"val_ppl\": null, \"val_accuracy\": 0.5}", NULL,
                          "{\"val_ppl\": 40, \"val_accuracy\": 0.25, \"gate_f1\": [null, 0.5]}"};
    char *t = report_of("exp1", exp1, 3);
    CHECK(!strstr(t, "nan") && !strstr(t, "inf"), "exp1 report shows no nan: %s", t);
    CHECK(strstr(t, "| dense | train | – | 0.5000 ± 0.0000 | – | 37.32 | – |"), "missing ppl and F1 as –: %s", t);
    CHECK(strstr(t, "| soft_random | train | 40.000 ± 0.000 | 0.2500 ± 0.0000 | 0.500 |"), "null F1 layer skipped: %s", t);
    CHECK(strstr(t, "captured by the learned soft gate, (ppl_random − ppl_learned) / (ppl_random − ppl_dense): **–**"),
          "share of missing arms as –: %s", t);
    free(t);
    const char *exp2[] = {"{\"val_ppl\": 50}", "{\"val_ppl\": 51}"};  // no gate_grad_norm
    t = report_of("exp2", exp2, 2);
    CHECK(!strstr(t, "nan") && strstr(t, "norm (n/a, seed 0, max over layers)"), "missing gate-gradient norm: %s", t);
    free(t);
    const char *conc[] = {"{\"val_ppl\": 30, \"topk_mass\": [null, 0.25], \"entropy_ratio\": [0.5, null]}"};
    t = report_of("concentration", conc, 1);
    CHECK(!strstr(t, "nan") && strstr(t, "| 0 | – | 0.5000 |") && strstr(t, "| 1 | 0.2500 | – |"),
          "concentration with nulls: %s", t);
    free(t);
    const char *probe[] = {"{\"val_ppl\": 3}", "{\"key_precision\": [null, 0.5], \"value_precision\": [1]}"};
    t = report_of("routing-precision", probe, 2);
    CHECK(!strstr(t, "nan") && strstr(t, "| 0 | – | 1.0000 | – |") && strstr(t, "| 1 | 0.5000 | – | – |") &&
          strstr(t, "Bloom-filter index: –."), "probe with nulls: %s", t);
    free(t);
    // a mean over fewer seeds than asked for says how many: dense of exp1, seed 1 failed
    static RecipeResults two;
    const Recipe *e1 = recipe("exp1");
    ArmStats st2[MAX_ARMS] = {{0}};
    two[0][0] = cJSON_Parse("{\"val_ppl\": 40, \"val_accuracy\": 0.25}");
    for (int i = 0; e1->arms[i].name; i++) st2[i] = arm_stats(&e1->arms[i], two[i], 2);
    CHECK(st2[0].seeds_with_ppl == 1 && st2[0].seeds == 2 && st2[1].seeds_with_ppl == 0,
          "seed counts: %d of %d, soft_learned %d", st2[0].seeds_with_ppl, st2[0].seeds,
          st2[1].seeds_with_ppl);
    char *text = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&text, &len);
    report_recipe(mf, e1, scale_find("tiny"), two, st2);
    fclose(mf);
    CHECK(strstr(text, "| dense | train | 40.000 ± 0.000 (1 of 2 seeds) | 0.2500 ± 0.0000 |") &&
              strstr(text, "| soft_learned | train | – | "), "partial seeds in the arms table: %s", text);
    free(text);
    cJSON_Delete(two[0][0]);
    two[0][0] = NULL;
    // results.json rows: a non-finite number is written as null, a failed run's result too.
    const Recipe *r = recipe("exp1");
    cJSON *res = cJSON_CreateObject();
    cJSON_AddNumberToObject(res, "val_ppl", NAN);
    cJSON *rows = cJSON_CreateArray();
    cJSON_AddItemToArray(rows, results_row(r, &r->arms[0], scale_find("tiny"), 0, res));
    cJSON_AddItemToArray(rows, results_row(r, &r->arms[1], scale_find("tiny"), 1, NULL));
    char *line = json_to_line(rows);
    CHECK(strstr(line, "\"val_ppl\":null") && strstr(line, "\"seed\":1,\"scale\":\"tiny\",\"keys\":"
          "\"--attn=soft --gate=learned\",\"result\":null") && !strstr(line, "nan"), "results rows: %s", line);
    free(line);
    cJSON_Delete(rows);
    cJSON_Delete(res);
}

static void test_spawn(void) {
    char dir[] = "/tmp/test_repro_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char sub[256], out[300], err[300], why[256] = "";
    snprintf(sub, sizeof sub, "%s/it's here", dir);
    make_dirs(sub);
    snprintf(out, sizeof out, "%s/out.txt", sub);
    snprintf(err, sizeof err, "%s/err.txt", sub);
    char *echo[] = {"echo", "a'b", "c d", NULL};
    CHECK(spawn_wait(echo, 1, out, err, why, sizeof why) == 0, "echo: %s", why);
    size_t n = 0;
    char *text = read_file(out, &n, "echo output");
    CHECK(!strcmp(text, "a'b c d\n"), "arguments reach the child unchanged: '%s'", text);
    xfree(text);
    char *fail[] = {"false", NULL};
    CHECK(spawn_wait(fail, 1, out, err, why, sizeof why) == 1 && !strcmp(why, "exit 1"), "false: %s", why);
    char *kill_self[] = {"sh", "-c", "kill -9 $$", NULL};
    CHECK(spawn_wait(kill_self, 1, NULL, NULL, why, sizeof why) == 1 && !strcmp(why, "signal 9"), "signal: %s", why);
    char *absent[] = {"/nonexistent/routelab", NULL};
    CHECK(spawn_wait(absent, 0, NULL, NULL, why, sizeof why) == -1 && strstr(why, "cannot run"), "absent: %s", why);
    char *absent2[] = {"no-such-program-routelab", NULL};
    CHECK(spawn_wait(absent2, 1, NULL, err, why, sizeof why) == -1, "absent in PATH: %s", why);
    remove(out), remove(err), rmdir(sub), rmdir(dir);
}

static void test_mid_layer(void) {
    Scale sc = *scale_find("tiny");
    char got[128];
    for (int L = 1; L <= 5; L++) {
        sc.n_layer = L;
        expand_keys(got, sizeof got, "--attn={mid:soft:dense} --train=attn:{L/2}", &sc, 0);
        char want[128] = "--attn=";
        for (int l = 0; l < L; l++) {
            strcat(want, l ? "," : "");
            strcat(want, l == L / 2 ? "soft" : "dense");
        }
        snprintf(want + strlen(want), sizeof want - strlen(want), " --train=attn:%d", L / 2);
        CHECK(!strcmp(got, want), "{mid} at %d layers: '%s' vs '%s'", L, got, want);
    }
}

// The llm arms: the pretrained model given with --model replaces the exported one (no base
// runs, every arm starts from it), the data is one argument (a space survives), a --data
// override does not reach them twice, the model's layer count sets {L/2} and the active arms.
static void test_llm_commands(void) {
    const Scale *tiny = scale_find("tiny");
    Scale llm = *tiny;
    llm.keys = tiny->llm_keys, llm.k = tiny->llm_k, llm.distill_steps = tiny->llm_distill_steps;
    llm.n_layer = 3, llm.llm_base = NULL;
    const char *ov[] = {"--data=/text with space.txt", "--steps=8"};
    RunContext c = {"/bin/routelab", "/out", tiny, ov, 2, 7, &llm, "/m/Qwen3", NULL, "/out/llm-data x", NULL};
    const Arm *base = find_arm("llm_base"), *model = find_arm("llm_model"), *sl = find_arm("llm_sl_learned");
    const Arm *top2 = find_arm("llm_learned_top2"), *top4 = find_arm("llm_learned_top4");
    const Arm *kl = find_arm("llm_kl_g32_k"), *dense = find_arm("llm_dense");
    CHECK(base && model && sl && top2 && top4 && kl && dense, "llm arms exist");
    CHECK(arm_scale(&c, sl) == &llm && arm_scale(&c, find_arm("dense")) == tiny, "arm_scale");
    CHECK(!arm_active(base, &llm) && !arm_active(model, &llm), "--model: no base model, no export");
    CHECK(arm_active(sl, &llm) && arm_active(top2, &llm) && !arm_active(top4, &llm), "3 layers: top:2 yes, top:4 no");
    CHECK(arm_seeds(dense, 3) == 1 && arm_seeds(kl, 3) == 3, "single arms");
    ArgList a = {0};
    arm_command(&a, &c, sl, 1, 0);
    CHECK(has_arg(&a, "--init=/m/Qwen3") && has_arg(&a, "--attn=dense,soft,dense") &&
          has_arg(&a, "--train=gates+attn:1") && has_arg(&a, "--data=/out/llm-data x") &&
          has_arg(&a, "--steps=8") && !has_arg(&a, "--data=/text with space.txt") && has_arg(&a, "--seq_len=32"),
          "llm train argv");
    args_free(&a);
    arm_command(&a, &c, kl, 2, 0);
    CHECK(has_arg(&a, "distill") && has_arg(&a, "--from=/m/Qwen3") && has_arg(&a, "--steps=150") &&
          has_arg(&a, "--data=/out/llm-data x") && has_arg(&a, "--out=/out/llm_kl_g32_k/seed2"), "llm distill argv");
    args_free(&a);
    // without --model: the exported directory of seed 0 for every seed
    llm.llm_base = tiny->llm_base;
    c.model = NULL;
    CHECK(arm_active(base, &llm) && arm_active(model, &llm), "own model: base and export run");
    char src[256];
    arm_source(src, sizeof src, &c, sl, 2);
    CHECK(!strcmp(src, "/out/llm_model/seed0/model"), "source: %s", src);
    arm_command(&a, &c, model, 0, 0);
    CHECK(has_arg(&a, "export") && has_arg(&a, "--ckpt=/out/llm_base/seed0") && has_arg(&a, "--plain"), "export argv");
    args_free(&a);
}

int main(void) {
    test_recipes_check();
    test_mid_layer();
    test_llm_commands();
    test_expand_keys();
    test_words();
    test_commands();
    test_report_missing();
    test_spawn();
    return check_summary("repro");
}
