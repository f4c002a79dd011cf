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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        }
        if (!strncmp(argv[i], "--from=", 7)) from = argv[i] + 7;
        else if (!strncmp(argv[i], "--loss=", 7)) loss_name = argv[i] + 7;
        else if (!strcmp(argv[i], "--json")) json = 1;
    }
    if (!from) fatal("distill: give --from=RUNDIR (the frozen model's checkpoint)");
    DistillKind kind = distill_kind_parse(loss_name);
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, from);
    Config c;
    checkpoint_read_config(path, &c);
    // Distillation settings that are not the checkpoint's: steps, lr, k, gates, data, output.
    static const char *const allowed[] = {"k", "steps", "lr", "warmup", "batch", "gate_seed",
                                          "gate_init_std", "d_g", "data", "eval_batches",
                                          "threads", "out", "log_every", "mqar_eval_examples",
                                          "min_lr_ratio", "weight_decay", NULL};
    char default_out[4200];
    snprintf(default_out, sizeof default_out, "%s-distill-%s", from, loss_name);
    config_set(&c, "out", default_out, "default");
    config_set(&c, "steps", "500", "default");
    config_set(&c, "lr", "1e-3", "default");
    config_set(&c, "warmup", "20", "default");
    static const char *const own[] = {"--from=", "--loss=", "--json", NULL};
    config_apply_overrides(&c, argc, argv, own, allowed, "distill", "see --help for what may change");
    // The teacher forward is dense; only the gates train (learned, whatever they were).
    config_set(&c, "attn", "dense", "distill");
    config_set(&c, "gate", "learned", "distill");
    config_set(&c, "train", "gates", "distill");
    config_set(&c, "dropout", "0", "distill");
    config_resolve(&c);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    Model m;
    model_build(&m, &c);
    model_set_trainable(&m, NULL, OBJECTIVE_GATE_DISTILL);  // the gates, by their own loss
    // Frozen weights from the checkpoint by name (gates of another d_g keep their init); the
    // optimizer starts fresh.
    checkpoint_init_params(&m, path);
    // re-initialise the gates from gate_seed
    {
        float *fresh = xcalloc(m.table.total, sizeof(float));
        params_init(fresh, &m.table, &c);
        for (int i = 0; i < m.table.count; i++) {
            const ParamInfo *p = &m.table.info[i];
            if (p->role == ROLE_GATE)
                memcpy(m.params + p->offset, fresh + p->offset, p->numel * sizeof(float));
        }
        xfree(fresh);
    }
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
    for (int step = 0; step < c.steps; step++) {
        dataset_next_batch(train, B, inputs, targets);
        model_zero_grad(&m);
        loss = distill_loss(&m, inputs, B, T, kind, k, 1, per_layer);
        die_if_diverged("distill", "distillation loss", loss, step + 1, NULL);
        die_if_diverged("distill", "gradient norm", grad_clip(&m, c.grad_clip), step + 1, NULL);
        adamw_step(&m, lr_at(&c, step));
        if (c.log_every > 0 && ((step + 1) % c.log_every == 0 || step + 1 == c.steps)) {
            fprintf(log, "step %5d/%d | %s loss %.5f | %.1fs\n", step + 1, c.steps, loss_name, loss,
                    now_seconds() - t0);
            fflush(log);
        }
    }
    m.blocks_only = 0;
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
        printf("{\"loss_kind\": \"%s\", \"k\": %d, \"final_loss\": %.6g, \"dense_val_ppl\": %.6g, "
               "\"hard_val_ppl\": %.6g, \"hard_val_accuracy\": %.6f, \"gate_f1\": [",
               loss_name, k, loss, dense.ppl, hard.ppl, hard.accuracy);
        for (int l = 0; l < c.n_layer; l++)
            printf("%.6f%s", dense.diag[l].gate_f1, l + 1 < c.n_layer ? ", " : "");
        printf("], \"checkpoint\": \"%s\"}\n", out_ckpt);
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
