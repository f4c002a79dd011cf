// eval.c: see eval.h.
#include "eval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "family.h"
#include "hf_model.h"
#include "options.h"
#include "result_keys.h"

void evaluate(EvalResult *r, Model *m, Dataset *ds, int B, int max_batches, int with_diag) {
    memset(r, 0, sizeof *r);
    int T = dataset_seq_len(ds), V = m->cfg.vocab_size;
    size_t windows = dataset_num_windows(ds);
    if (max_batches > 0 && (size_t)max_batches * B < windows) windows = (size_t)max_batches * B;
    int *inputs = xcalloc((size_t)B * T, sizeof(int)), *targets = xcalloc((size_t)B * T, sizeof(int));
    m->training = 0;
    m->eval_count = 0;  // every evaluation sees the same stochastic masks
    double nll = 0.0, acc_sum = 0.0, pos_hits[32] = {0}, pos_count[32] = {0};
    size_t scored = 0, examples = 0, exact = 0, class_exact[2] = {0};
    r->has_classes = windows > 0 && dataset_window_class(ds, 0) >= 0;
    for (size_t w0 = 0; w0 < windows; w0 += (size_t)B) {
        int rows = (int)(windows - w0 < (size_t)B ? windows - w0 : (size_t)B);
        for (int b = 0; b < rows; b++)
            dataset_window(ds, w0 + b, inputs + (size_t)b * T, targets + (size_t)b * T);
        model_forward(m, inputs, targets, rows, T);
        for (int b = 0; b < rows; b++) {
            size_t hit = 0, n = 0;
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)b * T + t;
                if (targets[i] < 0) continue;
                nll += m->losses[i];
                const float *z = m->logits + i * V;
                int best = 0;
                for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
                hit += best == targets[i];
                if (n < 32) pos_hits[n] += best == targets[i], pos_count[n] += 1;
                n++;
            }
            if (n) {
                acc_sum += (double)hit / n;
                examples++;
                exact += hit == n;
            }
            scored += n;
            if (r->has_classes) {
                int cls = dataset_window_class(ds, w0 + b) > 0;
                r->examples_by_class[cls]++;
                class_exact[cls] += n && hit == n;
                if ((int)n > r->n_positions) r->n_positions = n < 32 ? (int)n : 32;
            }
        }
        if (with_diag && !r->has_diag) {
            diagnostics_compute(r->diag, m);
            r->has_diag = 1;
        }
    }
    r->tokens = scored;
    r->windows = windows;
    r->loss = scored ? nll / scored : 0.0;
    r->ppl = exp(r->loss);
    r->accuracy = examples ? acc_sum / examples : 0.0;
    r->exact_match = examples ? (double)exact / examples : 0.0;
    for (int c = 0; c < 2; c++)
        r->exact_by_class[c] = r->examples_by_class[c] ? (double)class_exact[c] / r->examples_by_class[c] : NAN;
    for (int p = 0; p < r->n_positions; p++) r->position_accuracy[p] = pos_count[p] ? pos_hits[p] / pos_count[p] : 0.0;
    xfree(inputs);
    xfree(targets);
}

void eval_result_add_json(cJSON *obj, const EvalResult *r, int n_layer) {
    json_add_number(obj, RK_VAL_LOSS, r->loss);
    json_add_number(obj, RK_VAL_PPL, r->ppl);
    json_add_number(obj, RK_VAL_ACCURACY, r->accuracy);
    json_add_number(obj, RK_VAL_TOKENS, (double)r->tokens);
    if (r->has_classes) {
        json_add_number(obj, RK_EXACT_MATCH, r->exact_match);
        json_add_number(obj, RK_EXACT_MATCH_CARRY, r->exact_by_class[1]);  // null: no example
        json_add_number(obj, RK_EXACT_MATCH_NO_CARRY, r->exact_by_class[0]);
        json_add_number(obj, RK_CARRY_EXAMPLES, (double)r->examples_by_class[1]);
        json_add_number(obj, RK_NO_CARRY_EXAMPLES, (double)r->examples_by_class[0]);
        json_add_doubles(obj, RK_DIGIT_ACCURACY, r->position_accuracy,
                         r->n_positions > 0 ? (size_t)r->n_positions : 0);
    }
    if (r->has_diag) diagnostics_add_json(obj, r->diag, n_layer);
}

void eval_open_model(Model *m, Config *c, char *path, size_t cap, const char *ckpt, const OptSpec *os,
                     int argc, char **argv) {
    checkpoint_resolve_path(path, cap, ckpt);
    checkpoint_read_config(path, c);
    int model_T = c->seq_len;
    if (os) options_apply_config(os, c, argc, argv);
    config_resolve(c);
    // --seq_len sets the evaluation windows. Learned positions have seq_len rows, so their
    // windows can only be shorter; rotary positions have no table, any length works.
    int eval_T = c->seq_len;
    if (family_find(c->family)->positions == POS_LEARNED) {
        if (eval_T > model_T)
            fatal("%s: --seq_len=%d is longer than the %d learned positions of %s (pass "
                  "--seq_len=%d or less)", os ? os->cmd : "eval", eval_T, model_T, path, model_T);
        c->seq_len = model_T;
    }
    if (hf_is_model_dir(path)) model_build_for_load(m, c);  // hf_load fills every weight
    else model_build(m, c);
    checkpoint_load(path, m, NULL);
    c->seq_len = eval_T;
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL;
    int json = 0;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "run directory or checkpoint file", 0, 0},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    // Routing, data and batching may differ from training ("train with X, deploy with Y").
    static const char *const allowed[] = {"attn", "k", "gate_grad", "topk_scope", "tau", "data",
                                          "block_size", "k_blocks", "block_window", "batch", "eval_batches", "threads", "mqar_eval_examples",
                                          "mask_seed", "data_seed", "out", "ablate", "seq_len", "mqar_pairs", "mqar_random_filler",
                                          NULL};
    OptSpec os = {.cmd = "eval", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1, .changeable = allowed,
                  .fixed_hint = "only routing, data and batch keys can change at evaluation"};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab eval --ckpt=RUNDIR|FILE [--attn=MODE] [--k=K] [--data=...] "
               "[--eval_batches=N] [--json]\n"
               "  Evaluates a checkpoint on the validation split: loss, perplexity, accuracy\n"
               "  and per-layer routing diagnostics. Routing keys (attn, k, gate_grad,\n"
               "  topk_scope, tau) may differ from training: \"train with X, deploy with Y\".\n"
               "  The swap is closed loop: each layer's mask comes from the hidden states of\n"
               "  the masked forward. eval_batches=0 evaluates the whole split.\n"
               "  --ablate=attn:L|ffn:L[+...] replaces those sublayer outputs by their mean\n"
               "  over the batch's positions (how much each sublayer matters).\n");
        return 0;
    }
    if (!ckpt) fatal("eval: give --ckpt=RUNDIR (a run directory) or --ckpt=FILE");
    char path[4096];
    Config c;
    Model m;
    eval_open_model(&m, &c, path, sizeof path, ckpt, &os, argc, argv);
    DataSpec spec = dataspec_from_config(&c);
    Dataset *val = dataset_open(&spec, SPLIT_VAL);
    double t0 = now_seconds();
    EvalResult r;
    evaluate(&r, &m, val, c.batch, c.eval_batches, 1);
    double dt = now_seconds() - t0;
    int threads = omp_get_max_threads();
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint", path);
        cJSON_AddStringToObject(o, "attn", c.attn);
        cJSON_AddStringToObject(o, "k", c.k);
        eval_result_add_json(o, &r, c.n_layer);
        diagnostics_add_moe_json(o, &m);
        json_add_number(o, "eval_seconds", dt);
        json_add_number(o, RK_THREADS, threads);
        json_print_line(stdout, o);
        cJSON_Delete(o);
    } else {
        model_print_summary(&m, stdout);
        printf("eval %s on %s: loss %.4f  ppl %.3f  accuracy %.4f  (%zu tokens, %zu windows, %.1fs)\n",
               path, dataset_describe(val), r.loss, r.ppl, r.accuracy, r.tokens, r.windows, dt);
        printf("%-6s %10s %10s %8s %8s %8s\n", "layer", "topk_mass", "entropy_r", "gate_f1",
               "kept", "empty");
        for (int l = 0; l < c.n_layer; l++)
            printf("%-6d %10.4f %10.4f %8.4f %8.4f %8ld\n", l, r.diag[l].topk_mass,
                   r.diag[l].entropy_ratio, r.diag[l].gate_f1, r.diag[l].kept_fraction,
                   r.diag[l].empty_rows);
    }
    dataset_free(val);
    model_free(&m);
    return 0;
}
