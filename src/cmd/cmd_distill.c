// cmd_distill.c: `routelab distill`: post-hoc gate distillation. The model of a checkpoint is
// frozen, its gates are re-initialised (gate_seed) and only the gates train, all layers at once,
// against the frozen model's own dense attention (KL) or its oracle top-k mask (BCE). Reports
// per-layer gate F1 against the oracle and the perplexity deployed under hard top-k with the
// distilled gates, and writes a checkpoint that `routelab eval --attn=hard` can load.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "checkpoint.h"
#include "common.h"
#include "dataset.h"
#include "distill.h"
#include "eval.h"
#include "family.h"
#include "hf_model.h"
#include "options.h"
#include "json_out.h"
#include "result_keys.h"

static void usage(void) {
    printf("usage: routelab distill --from=RUNDIR|CKPT --loss=kl|bce [--k=K] [--steps=N]\n"
           "       [--out=DIR] [--lr=1e-3] [--batch=B] [--gate_seed=S] [--d_g=G] [--json]\n"
           "  Freezes the model, re-initialises the gates and trains only them against the\n"
           "  frozen model's own attention: KL(softmax(S) || softmax(G)) over visible keys, or\n"
           "  BCE of G against the oracle top-k mask of S. Then reports per-layer gate F1 vs the\n"
           "  oracle and the validation perplexity deployed under hard top-k (attn=hard).\n"
           "  The distilled model is written to DIR/model.ckpt (default: FROM-distill-LOSS).\n");
}

int cmd_distill(int argc, char **argv) {
    const char *from = NULL, *loss_name = "kl";
    int json = 0;
    const Option opts[] = {
        {"from", OPT_STRING, &from, NULL, "the frozen model's run directory or checkpoint", 0, 0},
        {"loss", OPT_STRING, &loss_name, "kl", "kl | bce", 0, 0},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    // Distillation settings that are not the checkpoint's: steps, lr, k, gates, data, output.
    static const char *const allowed[] = {"k", "steps", "lr", "warmup", "batch", "gate_seed",
                                          "gate_init_std", "d_g", "data", "eval_batches",
                                          "threads", "out", "log_every", "mqar_eval_examples",
                                          "min_lr_ratio", "weight_decay", "seq_len", "mqar_pairs", "mqar_random_filler", NULL};
    OptSpec os = {.cmd = "distill", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1, .changeable = allowed, .fixed_hint = "see --help for what may change"};
    if (options_parse(&os, argc, argv)) {
        usage();
        return 0;
    }
    if (!from) fatal("distill: give --from=RUNDIR (the frozen model's checkpoint)");
    DistillKind kind = distill_kind_parse(loss_name);
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, from);
    Config c;
    checkpoint_read_config(path, &c);
    int model_T = c.seq_len;
    char default_out[4200];
    snprintf(default_out, sizeof default_out, "%s-distill-%s", from, loss_name);
    config_set(&c, "out", default_out, "default");
    config_set(&c, "steps", "500", "default");
    config_set(&c, "lr", "1e-3", "default");
    config_set(&c, "warmup", "20", "default");
    options_apply_config(&os, &c, argc, argv);
    // The teacher forward is dense; only the gates train (learned, whatever they were).
    config_set(&c, "attn", "dense", "distill");
    config_set(&c, "gate", "learned", "distill");
    config_set(&c, "train", "gates", "distill");
    config_set(&c, "dropout", "0", "distill");
    config_resolve(&c);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (c.seq_len != model_T && family_find(c.family)->positions == POS_LEARNED)
        fatal("distill: --seq_len=%d differs from the %d learned positions of %s (drop --seq_len)",
              c.seq_len, model_T, path);
    Model m;
    model_build_for_load(&m, &c);  // every weight comes from the checkpoint
    model_set_trainable(&m, NULL, OBJECTIVE_GATE_DISTILL);  // the gates, by their own loss
    // Frozen weights from the checkpoint by name (gates of another d_g keep their init); the
    // optimizer starts fresh. A Hugging Face directory is read in place (one copy in memory).
    if (hf_is_model_dir(path)) hf_load(path, &m);
    else checkpoint_init_params(&m, path);
    // re-initialise the gates from gate_seed (their own random stream, as model_build draws them)
    params_init_roles(m.params, &m.table, &c, 1u << ROLE_GATE);
    DataSpec spec = dataspec_from_config(&c);
    Dataset *train = dataset_open(&spec, SPLIT_TRAIN), *val = dataset_open(&spec, SPLIT_VAL);
    int B = c.batch, T = c.seq_len, k = m.plan.attn.k[0];
    int *inputs = xcalloc((size_t)B * T, sizeof(int)), *targets = xcalloc((size_t)B * T, sizeof(int));
    FILE *log = json ? stderr : stdout;
    model_print_summary(&m, log);
    fprintf(log, "distill: %s loss, k=%d, %d steps on %s, gates only\n", loss_name, k, c.steps,
            dataset_describe(train));
    make_dirs(c.out);
    double per_layer[MAX_LAYERS], loss = 0.0, t0 = now_seconds();
    m.blocks_only = 1;
    double *step_s = xcalloc((size_t)c.steps, sizeof(double));
    for (int step = 0; step < c.steps; step++) {
        double ts = now_seconds();
        dataset_next_batch(train, B, inputs, targets);
        model_zero_grad(&m);
        loss = distill_loss(&m, inputs, B, T, kind, k, 1, per_layer);
        die_if_diverged("distill", "distillation loss", loss, step + 1, NULL);
        die_if_diverged("distill", "gradient norm", grad_clip(&m, c.grad_clip), step + 1, NULL);
        adamw_step(&m, lr_at(&c, step));
        step_s[step] = now_seconds() - ts;
        if (c.log_every > 0 && ((step + 1) % c.log_every == 0 || step + 1 == c.steps)) {
            fprintf(log, "step %5d/%d | %s loss %.5f | %.1fs\n", step + 1, c.steps, loss_name, loss,
                    now_seconds() - t0);
            fflush(log);
        }
    }
    m.blocks_only = 0;
    double train_s = now_seconds() - t0, step_median = median_of(step_s, (size_t)c.steps);
    xfree(step_s);
    // F1 of the distilled gates against the oracle on the dense model, then deployment.
    EvalResult dense, hard;
    evaluate(&dense, &m, val, B, c.eval_batches, 1);
    AttnMode modes[MAX_LAYERS];
    for (int l = 0; l < c.n_layer; l++) modes[l] = ATTN_HARD;
    model_set_routing(&m, modes, NULL);  // the checkpoint's attn key follows the plan
    evaluate(&hard, &m, val, B, c.eval_batches, 1);
    config_set(&m.cfg, "train", "all", "distill");
    char out_ckpt[4200];
    join_path(out_ckpt, sizeof out_ckpt, c.out, "model.ckpt");
    TrainState st = {0};
    checkpoint_save(out_ckpt, &m, &st);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, RK_LOSS_KIND, loss_name);
        json_add_number(o, "k", k);
        json_add_number(o, RK_FINAL_LOSS, loss);
        json_add_number(o, RK_DENSE_VAL_PPL, dense.ppl);
        json_add_number(o, RK_HARD_VAL_PPL, hard.ppl);
        json_add_number(o, RK_HARD_VAL_ACCURACY, hard.accuracy);
        json_add_number(o, "train_seconds", train_s);
        json_add_number(o, "step_seconds_median", step_median);
        double f1[MAX_LAYERS];
        for (int l = 0; l < c.n_layer; l++) f1[l] = dense.diag[l].gate_f1;
        json_add_doubles(o, RK_GATE_F1, f1, (size_t)c.n_layer);
        cJSON_AddStringToObject(o, "checkpoint", out_ckpt);
        json_print_line(stdout, o);
        cJSON_Delete(o);
    } else {
        printf("gate F1 vs oracle top-%d per layer:", k);
        for (int l = 0; l < c.n_layer; l++) printf(" %.3f", dense.diag[l].gate_f1);
        printf("\nval ppl: dense %.3f | hard top-%d with distilled gates %.3f (accuracy %.4f)\n"
               "checkpoint: %s (evaluate with: routelab eval --ckpt=%s)\n",
               dense.ppl, k, hard.ppl, hard.accuracy, out_ckpt, c.out);
    }
    xfree(inputs);
    xfree(targets);
    dataset_free(train);
    dataset_free(val);
    model_free(&m);
    return 0;
}
