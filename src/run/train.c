// train.c: `routelab train`: the training loop with warmup + cosine lr, gradient accumulation
// and clipping, periodic evaluation, metrics.jsonl, checkpoints, Ctrl-C / SIGTERM handling and
// bit-identical resume (same seed and thread count).
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "adamw.h"
#include "checkpoint.h"
#include "hf_model.h"
#include "common.h"
#include "dataset.h"
#include "diagnostics.h"
#include "dist.h"
#include "eval.h"
#include "model.h"
#include "options.h"
#include "result_keys.h"
#include "schedule.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

static void usage(void) {
    printf("usage: routelab train [--config=FILE] [--key=value ...] [--resume=RUNDIR [--force]] [--json]\n"
           "  Trains a model; the run directory (--out) receives config.ini, metrics.jsonl (one\n"
           "  JSON object per step; evaluation lines carry val_* and per-layer diagnostics) and\n"
           "  model.ckpt. Ctrl-C or SIGTERM writes the checkpoint and exits; --resume=RUNDIR\n"
           "  continues bit-identically (it refuses another thread count\n"
           "  than the run's unless --force). --json prints the final result as\n"
           "  one JSON object.\n\n");
    config_print_help(stdout);
}

// Keeps the metrics lines of steps <= last_step (those a resumed run does not repeat).
static void truncate_metrics(const char *path, long last_step) {
    if (!file_exists(path)) return;
    size_t len;
    char *text = read_file(path, &len, "metrics log");
    char *out = xcalloc(len + 1, 1), *o = out;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        const char *s = strstr(line, "\"" RK_STEP "\":");  // "step": N or "step":N
        long step = s && s < line + n ? atol(s + strlen(RK_STEP) + 3) : 0;
        if (nl && step <= last_step) memcpy(o, line, n), o += n;
        line += n;
    }
    write_file_atomic(path, out, (size_t)(o - out));
    xfree(text);
    xfree(out);
}

// One line of metrics.jsonl for a training step.
typedef struct {
    long long step;
    double loss, lr, grad_norm, tokens_per_s, elapsed_s;
    double gate_grad_norm[MAX_LAYERS];
} StepMetrics;

static void write_step_metrics(FILE *f, const StepMetrics *s, const Model *m) {
    cJSON *o = cJSON_CreateObject();
    json_add_number(o, RK_STEP, (double)s->step);
    json_add_number(o, RK_LOSS, s->loss);
    json_add_number(o, RK_LR, s->lr);
    json_add_number(o, RK_GRAD_NORM, s->grad_norm);
    json_add_number(o, RK_TOKENS_PER_S, s->tokens_per_s);
    json_add_number(o, RK_ELAPSED_S, s->elapsed_s);
    json_add_doubles(o, RK_GATE_GRAD_NORM, s->gate_grad_norm, (size_t)m->cfg.n_layer);
    diagnostics_add_moe_json(o, m);  // MoE layers: last micro-batch
    json_print_line(f, o);
    cJSON_Delete(o);
}

// The result of `train --json` (and of repro's result.json for a training run).
typedef struct {
    const char *run_dir;
    long long steps;
    int completed;
    double train_loss, tokens_per_s, peak_rss_mib;
    const EvalResult *eval;
} TrainResult;

static void print_train_result(FILE *f, const TrainResult *r, const Model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, RK_RUN_DIR, r->run_dir);
    json_add_number(o, RK_STEPS, (double)r->steps);
    cJSON_AddBoolToObject(o, RK_COMPLETED, r->completed);
    json_add_number(o, RK_TRAIN_LOSS, r->train_loss);
    eval_result_add_json(o, r->eval, m->cfg.n_layer);
    diagnostics_add_moe_json(o, m);
    json_add_number(o, RK_TOKENS_PER_S, r->tokens_per_s);
    json_add_number(o, RK_PEAK_RSS_MIB, r->peak_rss_mib);
    json_print_line(f, o);
    cJSON_Delete(o);
}

static void format_eta(char *buf, size_t cap, double seconds) {
    long s = (long)(seconds + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

int cmd_train(int argc, char **argv) {
    const char *resume = NULL;
    int json = 0, force = 0;
    const Option opts[] = {
        {"resume", OPT_STRING, &resume, NULL, "continue the run of this directory", 0, 0},
        {"json", OPT_FLAG, &json, NULL, "print the final result as one JSON object", 0, 0},
        {"force", OPT_FLAG, &force, NULL, "resume despite another thread count (warns)", 0, 0},
    };
    OptSpec os = {.cmd = "train", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1};
    if (options_parse(&os, argc, argv)) {
        usage();
        return 0;
    }
    Config c;
    char ckpt_path[4096];
    if (resume) {
        checkpoint_resolve_path(ckpt_path, sizeof ckpt_path, resume);
        checkpoint_read_config(ckpt_path, &c);
        c.stop_after = 0;  // a limit of the interrupted invocation, not of the run
        // Only keys that do not alter the computation may change on resume.
        static const char *const allowed[] = {"steps", "stop_after", "eval_every", "ckpt_every",
                                              "log_every", "eval_batches", "threads", NULL};
        os.cmd = "train --resume";
        os.changeable = allowed;
        os.fixed_hint = "only steps, stop_after, eval_every, ckpt_every, log_every, eval_batches, "
                        "threads may change";
        options_apply_config(&os, &c, argc, argv);
    } else {
        config_defaults(&c);
        options_apply_config(&os, &c, argc, argv);
        if (c.init[0] && hf_is_model_dir(c.init)) {
            // A pretrained model: its config.json gives the architecture, the command line
            // everything else (routing, freezing, data, optimizer) and may override it.
            char init[PATH_LEN];
            snprintf(init, sizeof init, "%s", c.init);
            hf_read_config(init, &c);
            options_apply_config(&os, &c, argc, argv);
        }
    }
    config_resolve(&c);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (resume) checkpoint_check_threads(ckpt_path, force);
    if (resume) checkpoint_check_ranks(ckpt_path, force);
    // Data parallel (mpirun, dist.h): R ranks; rank 0 alone writes files and prints.
    const int R = dist_size(), rank = dist_rank();
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) fatal("train: cannot redirect rank %d's output", rank);
    const char *dir = resume ? resume : c.out;
    if (resume && !dir_exists(resume)) {  // --resume=FILE: the run directory is its folder
        static char d[4096];
        snprintf(d, sizeof d, "%s", resume);
        char *slash = strrchr(d, '/');
        if (slash) *slash = 0;
        else snprintf(d, sizeof d, ".");
        dir = d;
    }
    make_dirs(dir);
    char cfg_path[4200], metrics_path[4200];
    join_path(cfg_path, sizeof cfg_path, dir, "config.ini");
    join_path(metrics_path, sizeof metrics_path, dir, "metrics.jsonl");
    if (!resume) join_path(ckpt_path, sizeof ckpt_path, dir, "model.ckpt");
    // A run killed while writing its checkpoint leaves the unfinished temporary file: the run
    // owns its directory, so it is removed (the checkpoint itself was never touched).
    int stale = rank ? 0 : atomic_remove_stale(ckpt_path) + atomic_remove_stale(metrics_path) +
                               atomic_remove_stale(cfg_path);  // config.ini: rewritten at every start
    if (stale) warnf("removed %d unfinished temporary file(s) of an interrupted write in %s", stale, dir);

    DataSpec spec = dataspec_from_config(&c);
    Dataset *train = dataset_open(&spec, SPLIT_TRAIN), *val = dataset_open(&spec, SPLIT_VAL);
    Model m;
    int hf_init = !resume && c.init[0] && hf_is_model_dir(c.init);
    if (hf_init) model_build_for_load(&m, &c);  // one copy of the weights, read in place
    else model_build(&m, &c);
    TrainState st = {0};
    if (hf_init) hf_load(c.init, &m);
    else if (!resume && c.init[0]) checkpoint_init_params(&m, c.init);
    if (resume) {
        checkpoint_load(ckpt_path, &m, &st);
        dataset_set_position(train, st.data_position);
        if (rank == 0) truncate_metrics(metrics_path, (long)st.step);
    }
    char *cfg_text = config_to_string(&c);
    if (rank == 0) write_file_atomic(cfg_path, cfg_text, strlen(cfg_text));
    // Every rank runs the same config from the same weights and training state, or none runs.
    dist_check_same(XXH64(cfg_text, strlen(cfg_text), 0), "config");
    dist_check_same(XXH64(m.params, m.table.total * sizeof(float), 0), "parameter checksum");
    dist_check_same(XXH64(&st, sizeof st, 0), "training state (step, data position)");
    free(cfg_text);
    FILE *metrics = rank ? xfopen("/dev/null", "w", "null device")
                         : xfopen(metrics_path, resume ? "a" : "w", "metrics log");
    m.stream = (uint64_t)rank;  // each rank its own dropout / mask draws (rank 0: a single run's)

    FILE *log = json && rank == 0 ? stderr : stdout;  // with --json, stdout carries only the result
    model_print_summary(&m, log);
    fprintf(log, "data: %s; run directory: %s; %d threads%s\n", dataset_describe(train), dir,
            m.nthreads, resume ? "; resuming" : "");
    if (resume) fprintf(log, "resumed at step %lld of %d\n", (long long)st.step, c.steps);
    if (R > 1)
        fprintf(log, "data parallel: %d ranks x batch %d x grad_accum %d = global batch %d rows\n", R,
                c.batch, c.grad_accum, R * c.batch * c.grad_accum);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    int B = c.batch, T = c.seq_len;
    size_t N = (size_t)B * T;
    // Each micro-batch is drawn whole (R * B rows, the single-process order); this rank trains
    // on rows rank*B ... rank*B + B - 1 of it.
    int *inputs = xcalloc(N * R, sizeof(int)), *targets = xcalloc(N * R, sizeof(int));
    const int *my_in = inputs + (size_t)rank * N, *my_tg = targets + (size_t)rank * N;
    float *reduce_scratch = R > 1 ? xcalloc(m.table.total, sizeof(float)) : NULL;
    int stop_all = 0;  // R > 1: the ranks' agreed stop request (a signal reaches them apart)
    double *step_times = xcalloc((size_t)c.steps + 1, sizeof(double));
    int timed = 0, done_here = 0, stopped_early = 0;
    double recent_loss[10] = {0};
    int n_recent = 0;
    LayerDiag diag[MAX_LAYERS];
    EvalResult ev = {0};
    int have_eval = 0;
    double loss = 0.0;
    // dense_fraction / stochastic_anneal: this step's routing (schedule.h); evaluations and
    // checkpoints see the configured one
    AttnMode configured[MAX_LAYERS], step_modes[MAX_LAYERS];
    for (int l = 0; l < c.n_layer; l++) configured[l] = m.plan.attn.mode[l];
    while (st.step < c.steps) {
        double t0 = now_seconds();
        int step = (int)st.step;
        float lr = lr_at(&c, step);
        int rerouted = routing_schedule_modes(step_modes, configured, c.n_layer, step, c.steps,
                                              c.dense_fraction, c.stochastic_anneal, (uint64_t)c.data_seed);
        if (rerouted) model_set_routing(&m, step_modes, NULL);
        model_zero_grad(&m);
        m.training = 1;
        loss = 0.0;
        for (int micro = 0; micro < c.grad_accum; micro++) {
            dataset_next_batch(train, B * R, inputs, targets);
            if (R > 1) {  // weight = this rank's share of the micro-batch's scored targets
                size_t mine = 0, all = 0;
                for (size_t i = 0; i < N * R; i++) all += targets[i] >= 0;
                for (size_t i = 0; i < N; i++) mine += my_tg[i] >= 0;
                if (all == 0)
                    fatal("batch at step %d has no scored target (every target is -1): check the data",
                          step + 1);
                if (mine == 0) continue;  // nothing of this rank's rows is scored
                double l = model_forward(&m, my_in, my_tg, B, T);
                die_if_diverged("train", "loss", l, step + 1, ckpt_path);
                double w = (double)mine / (double)all;
                model_backward(&m, (float)(w / c.grad_accum));
                loss += l * w / c.grad_accum;
                continue;
            }
            double l = model_forward(&m, inputs, targets, B, T);
            die_if_diverged("train", "loss", l, step + 1, ckpt_path);  // before any update
            if (m.n_scored == 0)
                fatal("batch at step %d has no scored target (every target is -1): check the data",
                      step + 1);
            model_backward(&m, 1.0f / c.grad_accum);
            loss += l / c.grad_accum;
        }
        if (R > 1) {  // the gradient and the loss summed over the ranks, in rank order
            dist_sum_floats(m.grads, m.table.total, reduce_scratch);
            double x[2] = {loss, stop_requested ? 1.0 : 0.0};
            dist_sum_doubles(x, 2);
            loss = x[0];
            stop_all = x[1] > 0;
        }
        diagnostics_gate_grad_norms(diag, &m);
        double norm = grad_clip(&m, c.grad_clip);
        die_if_diverged("train", "gradient norm", norm, step + 1, ckpt_path);
        adamw_step(&m, lr);
        if (rerouted) model_set_routing(&m, configured, NULL);
        double dt = now_seconds() - t0;
        st.step++;
        st.tokens_seen += (uint64_t)N * c.grad_accum * R;
        st.elapsed_s += dt;
        st.forward_count = m.forward_count;
        st.data_position = dataset_position(train);
        step_times[timed++] = dt;
        done_here++;
        recent_loss[n_recent++ % 10] = loss;
        double tok_s = N * c.grad_accum * R / dt;
        StepMetrics sm = {(long long)st.step, loss, lr, norm, tok_s, st.elapsed_s, {0}};
        for (int l = 0; l < c.n_layer; l++) sm.gate_grad_norm[l] = diag[l].gate_grad_norm;
        write_step_metrics(metrics, &sm, &m);
        int last = st.step == c.steps;
        if (c.log_every > 0 && (st.step % c.log_every == 0 || last || st.step == 1)) {
            char eta[32];
            format_eta(eta, sizeof eta, (c.steps - st.step) * (st.elapsed_s / (double)st.step));
            fprintf(log, "step %6lld/%d | loss %.4f | lr %.2e | grad %.3f | %7.0f tok/s | ETA %s\n",
                    (long long)st.step, c.steps, loss, lr, norm, tok_s, eta);
            fflush(log);
        }
        if ((c.eval_every > 0 && st.step % c.eval_every == 0) || last) {
            evaluate(&ev, &m, val, B * R, c.eval_batches, 1);  // every rank: the global batch
            have_eval = 1;
            cJSON *o = cJSON_CreateObject();
            json_add_number(o, RK_STEP, (double)st.step);
            eval_result_add_json(o, &ev, c.n_layer);
            diagnostics_add_moe_json(o, &m);
            json_print_line(metrics, o);
            cJSON_Delete(o);
            fprintf(log, "eval step %lld | val loss %.4f | ppl %.3f | accuracy %.4f",
                    (long long)st.step, ev.loss, ev.ppl, ev.accuracy);
            if (ev.has_classes)
                fprintf(log, " | exact %.4f (carry %.4f, no carry %.4f)", ev.exact_match,
                        ev.exact_by_class[1], ev.exact_by_class[0]);
            fprintf(log, "\n");
            fflush(log);
        }
        fflush(metrics);
        int stop_sig = R > 1 ? stop_all : stop_requested;
        int stop_now = stop_sig || (c.stop_after > 0 && done_here >= c.stop_after);
        if ((c.ckpt_every > 0 && st.step % c.ckpt_every == 0) || last || stop_now) {
            if (!params_all_finite(&m))  // never overwrite the last good checkpoint with it
                die_if_diverged("train", "a parameter", NAN, (int)st.step, ckpt_path);
            if (rank == 0) checkpoint_save(ckpt_path, &m, &st);
        }
        if (stop_now && !last) {
            fprintf(log, "%s after step %lld: checkpoint written to %s; continue with: routelab "
                         "train --resume=%s\n",
                    stop_sig ? "interrupted" : "stopped (stop_after)", (long long)st.step,
                    ckpt_path, dir);
            stopped_early = 1;
            break;
        }
    }
    fclose(metrics);
    if (!have_eval && !stopped_early) evaluate(&ev, &m, val, B * R, c.eval_batches, 1);
    double median = median_of(step_times, (size_t)timed);
    double tok_s = median > 0 ? N * c.grad_accum * R / median : 0.0;
    double train_loss = 0.0;
    int nr = n_recent < 10 ? n_recent : 10;
    for (int i = 0; i < nr; i++) train_loss += recent_loss[i] / nr;
    if (json) {
        TrainResult r = {dir, (long long)st.step, st.step >= c.steps, train_loss, tok_s,
                         peak_rss_bytes() / 1048576.0, &ev};
        print_train_result(stdout, &r, &m);
    } else {
        printf("done: %lld steps | train loss %.4f | val loss %.4f | val ppl %.3f | val accuracy "
               "%.4f | %.0f tok/s (median) | peak RSS %.0f MiB\ncheckpoint: %s\n",
               (long long)st.step, train_loss, ev.loss, ev.ppl, ev.accuracy, tok_s,
               peak_rss_bytes() / 1048576.0, ckpt_path);
    }
    if (R > 1 && c.log_every > 0)
        fprintf(log, "data parallel: gradient reduction %.4f s a step (mean over %d steps)\n",
                dist_comm_seconds() / (done_here ? done_here : 1), done_here);
    xfree(reduce_scratch);
    xfree(inputs);
    xfree(targets);
    xfree(step_times);
    dataset_free(train);
    dataset_free(val);
    model_free(&m);
    return 0;
}
