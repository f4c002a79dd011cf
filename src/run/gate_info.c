// gate_info.c: `routelab gateinfo`, how many bits a gate carries about which keys matter.
//
// Label (from an independently trained gate-free model, --ref): key j matters to query i when
// hiding position j as a key from every later query, in every layer of the reference, raises
// the reference's loss at i by more than --margin nats, Y_ij = [loss_i(without j) - loss_i >
// margin], j < i. So j counts when i reads it directly or through the positions between them.
// One forward of the reference per key position j (the keep masks of model_forward_given drop
// column j below the diagonal), so a batch costs T reference forwards (hiding j from i alone in
// every layer would cost T^2).
// Decision (from the gated checkpoint, --ckpt): D^l_hij = [j is in the top-k of the gate's
// scores G of layer l, head h, query i], the keys a hard top-k deployment of that gate keeps,
// on the gated model's own forward (its own routing).
// Per layer: I(D;Y) in bits over the samples (b, h, i, j < i) with a scored target at i, the
// Miller-Madow corrected estimate beside the plug-in one (info.h), and the estimator's self-
// test on the same samples: D replaced by independent draws of the same rate (reads ~0 bits)
// and by Y itself (reads H(Y)).
// Ceiling (--probe_steps > 0): a bilinear probe of the gate's own form, trained with binary
// cross-entropy to predict Y from the gated model's hidden states at that layer (the gate's
// input, LN1's output) on labelled training windows, deciding by the same top-k on the
// validation samples: how much of H(Y) a gate of that form could carry on those features.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "common.h"
#include "eval.h"
#include "info.h"
#include "ops.h"
#include "options.h"
#include "result_keys.h"
#include "router_probe.h"

enum { GI_JOINT, GI_INDEP, GI_SAME, GI_TABLES };  // the three 2x2 tables of a layer

typedef struct {
    double t[GI_TABLES][4];  // [table][d * 2 + y] counts
} LayerCounts;

// Y (B,T,T): 1 where hiding key j from every query raises the reference's loss at i by > margin;
// 2 where the pair is not a sample (j >= i, or no target at i).
static void importance_labels(unsigned char *Y, Model *ref, const int *inputs, const int *targets,
                              int B, int T, double margin) {
    int NH = ref->cfg.n_head, L = ref->cfg.n_layer;
    size_t N = (size_t)B * T;
    float *base = xcalloc(N, sizeof(float));
    model_forward(ref, inputs, targets, B, T);
    memcpy(base, ref->losses, N * sizeof(float));
    float *mask = xcalloc((size_t)NH * T * T, sizeof(float));  // (NH,T,T): causal, minus column j
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j <= i; j++) mask[((size_t)h * T + i) * T + j] = 1.0f;
    KeepMasks km = {{0}, {0}};
    for (int l = 0; l < L; l++) km.mask[l] = mask;
    memset(Y, 2, N * T);
    for (int j = 0; j + 1 < T; j++) {
        for (int h = 0; h < NH; h++)
            for (int i = j + 1; i < T; i++) mask[((size_t)h * T + i) * T + j] = 0.0f;
        model_forward_given(ref, inputs, targets, B, T, &km);
        for (int b = 0; b < B; b++)
            for (int i = j + 1; i < T; i++) {
                size_t p = (size_t)b * T + i;
                if (targets[p] < 0) continue;
                Y[p * T + j] = (double)ref->losses[p] - base[p] > margin;
            }
        for (int h = 0; h < NH; h++)
            for (int i = j + 1; i < T; i++) mask[((size_t)h * T + i) * T + j] = 1.0f;
    }
    xfree(mask);
    xfree(base);
}

// Adds one batch's samples of every layer to cnt (the gated model's last forward).
static void count_decisions(LayerCounts *cnt, const Model *m, const unsigned char *Y, uint64_t key,
                            uint64_t *draw) {
    const Config *c = &m->cfg;
    int B = m->B, T = m->T, NH = c->n_head, GW = NH * c->d_g;
    size_t N = (size_t)B * T;
    float *gq = xcalloc(N * GW, sizeof(float)), *gk = xcalloc(N * GW, sizeof(float));
    float *G = xcalloc((size_t)T * T, sizeof(float)), *pairs = xcalloc(2 * (size_t)T, sizeof(float));
    unsigned char *D = xcalloc((size_t)B * NH * T * T, 1);  // (B,NH,T,T) top-k of G
    for (int l = 0; l < c->n_layer; l++) {
        const LayerActs *La = &m->layer[l];
        matmul_forward(gq, La->ln1, m->w.layer[l].gate_q, NULL, N, c->d_model, GW, m->plan.precision);
        matmul_forward(gk, La->ln1, m->w.layer[l].gate_k, NULL, N, c->d_model, GW, m->plan.precision);
        AttnArgs a = model_attn_args(m, l, NULL);
        double kept = 0.0, samples = 0.0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                attention_gate_scores(G, gq, gk, b, h, &a);
                unsigned char *d = D + ((size_t)b * NH + h) * T * T;
                for (int i = 0; i < T; i++) {
                    topk_row(d + (size_t)i * T, G + (size_t)i * T, i, T, a.k, TOPK_CAUSAL, pairs);
                    const unsigned char *y = Y + ((size_t)b * T + i) * T;
                    for (int j = 0; j < i; j++)
                        if (y[j] < 2) kept += d[(size_t)i * T + j], samples += 1.0;
                }
            }
        double rate = samples > 0 ? kept / samples : 0.0;  // this batch's decision rate
        LayerCounts *C = &cnt[l];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    const unsigned char *y = Y + ((size_t)b * T + i) * T;
                    const unsigned char *d = D + (((size_t)b * NH + h) * T + i) * T;
                    for (int j = 0; j < i; j++) {
                        if (y[j] == 2) continue;
                        int indep = hash_uniform(key, (*draw)++) < rate;
                        C->t[GI_JOINT][d[j] * 2 + y[j]] += 1.0;
                        C->t[GI_INDEP][indep * 2 + y[j]] += 1.0;
                        C->t[GI_SAME][y[j] * 2 + y[j]] += 1.0;
                    }
                }
    }
    xfree(gq), xfree(gk), xfree(G), xfree(pairs), xfree(D);
}

// Where a batch's gate decisions are counted (the validation windows only).
typedef struct {
    LayerCounts *cnt;  // (n_layer)
    uint64_t key, *draw;
} DecisionTally;

// Labels Y (n, T, T) and each layer's gate input feat[l] (n, T, D; NULL: not kept) of the first
// n windows of ds: the reference labels the keys, the gated model's forward gives its hidden
// states, and with tally non-NULL its gate decisions are counted batch by batch.
static void label_windows(unsigned char *Y, float *const *feat, const DecisionTally *tally, Model *m,
                          Model *ref, const Dataset *ds, size_t n, double margin, const char *what) {
    int B = m->cfg.batch, T = m->cfg.seq_len, D = m->cfg.d_model;
    int *inputs = xcalloc((size_t)B * T, sizeof(int)), *targets = xcalloc((size_t)B * T, sizeof(int));
    double t0 = now_seconds();
    for (size_t w0 = 0; w0 < n; w0 += (size_t)B) {
        int rows = (int)(n - w0 < (size_t)B ? n - w0 : (size_t)B);
        for (int b = 0; b < rows; b++) dataset_window(ds, w0 + b, inputs + (size_t)b * T, targets + (size_t)b * T);
        importance_labels(Y + w0 * T * T, ref, inputs, targets, rows, T, margin);
        model_forward(m, inputs, targets, rows, T);
        if (tally) count_decisions(tally->cnt, m, Y + w0 * T * T, tally->key, tally->draw);
        for (int l = 0; l < m->cfg.n_layer; l++)
            if (feat[l]) memcpy(feat[l] + w0 * T * D, m->layer[l].ln1, (size_t)rows * T * D * sizeof(float));
        fprintf(stderr, "gateinfo: %s batch %zu/%zu (%d reference forwards each), %.0f s\n", what,
                w0 / B + 1, (n + B - 1) / B, T, now_seconds() - t0);
    }
    xfree(inputs), xfree(targets);
}

// I(top-k of the probe's scores; Y) in bits (Miller-Madow) on the validation samples, for a
// probe trained on the training windows; *val_loss: its BCE on the validation pairs.
static double probe_ceiling(const LabelSet *train, const LabelSet *val, int k, const RouterOpts *o,
                            double *val_loss) {
    int T = val->T, D = val->D, r = o->rank;
    float *wq = xcalloc((size_t)D * r, sizeof(float)), *wk = xcalloc((size_t)D * r, sizeof(float));
    router_label_fit(wq, wk, train, o);
    size_t *all = xcalloc(val->n_examples, sizeof(size_t));
    for (size_t e = 0; e < val->n_examples; e++) all[e] = e;
    *val_loss = router_label_loss(NULL, NULL, wq, wk, val, r, all, val->n_examples);
    float *S = xcalloc((size_t)T * T, sizeof(float)), *pairs = xcalloc(2 * (size_t)T, sizeof(float));
    unsigned char *keep = xcalloc((size_t)T, 1);
    double joint[4] = {0};
    for (size_t e = 0; e < val->n_examples; e++) {
        router_scores(S, wq, wk, val->feat + e * (size_t)T * D, T, D, r);
        const unsigned char *Y = val->label + e * (size_t)T * T;
        for (int i = 0; i < T; i++) {
            topk_row(keep, S + (size_t)i * T, i, T, k, TOPK_CAUSAL, pairs);
            for (int j = 0; j < i; j++)
                if (Y[(size_t)i * T + j] < 2) joint[keep[j] * 2 + Y[(size_t)i * T + j]] += 1.0;
        }
    }
    xfree(wq), xfree(wk), xfree(all), xfree(S), xfree(pairs), xfree(keep);
    return mutual_info_bits(joint, 2, 2, 1);
}

int cmd_gateinfo(int argc, char **argv) {
    const char *ckpt = NULL, *ref_ckpt = NULL;
    int json = 0, batches = 0, probe_steps = 0, probe_rank = 0, probe_batches = 0;
    double margin = 0.0, probe_lr = 0.0;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "the gated model: run directory or checkpoint file", 0, 0},
        {"ref", OPT_STRING, &ref_ckpt, NULL, "the gate-free reference model that labels the keys", 0, 0},
        {"margin", OPT_DOUBLE, &margin, "0.01", "loss rise (nats) that makes a key matter", 0, 100},
        {"batches", OPT_INT, &batches, "2", "validation batches (each costs T reference forwards)", 1, 1000000},
        {"probe_steps", OPT_INT, &probe_steps, "300", "steps of the ceiling probe (0: no probe)", 0, 1000000},
        {"probe_batches", OPT_INT, &probe_batches, "2", "labelled training batches of the probe", 1, 1000000},
        {"probe_rank", OPT_INT, &probe_rank, "0", "the probe's rank (0: the gate's d_g)", 0, 4096},
        {"probe_lr", OPT_DOUBLE, &probe_lr, "1e-2", "the probe's Adam learning rate", 0, 10},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    static const char *const allowed[] = {"k", "data", "batch", "threads", "data_seed", "seq_len",
                                          "mqar_eval_examples", "mqar_pairs", "mqar_random_filler",
                                          NULL};
    OptSpec os = {.cmd = "gateinfo", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1, .changeable = allowed,
                  .fixed_hint = "only k, data and batch keys can change here"};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab gateinfo --ckpt=GATED --ref=DENSE [--k=K] [--margin=0.01] "
               "[--batches=2] [--probe_steps=300 --probe_batches=2 --probe_rank=d_g] [--json]\n"
               "  Mutual information (bits) per layer between the gated model's gate decisions\n"
               "  (key j in the top-k of G for query i) and which keys matter to an independently\n"
               "  trained gate-free model (hiding key j from every query raises its loss at i by\n"
               "  > margin), Miller-Madow corrected, with the estimator's self-test: an\n"
               "  independent decision of the same rate (~0 bits) and the label itself\n"
               "  (H(label)). Costs T forwards of the reference per batch. The ceiling: a\n"
               "  bilinear probe of the gate's form trained (BCE) to predict the label from the\n"
               "  gated model's hidden states, deciding by the same top-k.\n");
        return 0;
    }
    if (!ckpt || !ref_ckpt) fatal("gateinfo: give --ckpt=GATED_RUN and --ref=DENSE_RUN");
    char path[4096], ref_path[4096];
    Config c, rc;
    Model m, ref;
    eval_open_model(&m, &c, path, sizeof path, ckpt, &os, argc, argv);
    eval_open_model(&ref, &rc, ref_path, sizeof ref_path, ref_ckpt, NULL, 0, NULL);
    for (int l = 0; l < c.n_layer; l++)
        if (route_routes_tokens(m.plan.attn.mode[l]))
            fatal("gateinfo: --ckpt=%s layer %d is %s: its heads pick tokens, not keys per query, "
                  "so there is no top-k key decision to score (give a checkpoint with key gates)",
                  path, l, attn_mode_name(m.plan.attn.mode[l]));
    for (int l = 0; l < rc.n_layer; l++)
        if (ref.plan.attn.mode[l] != ATTN_DENSE)
            fatal("gateinfo: --ref=%s routes layer %d (attn=%s); the labels need a gate-free "
                  "(attn=dense) model trained on its own", ref_path, l, rc.attn);
    if (rc.vocab_size != c.vocab_size)
        fatal("gateinfo: --ref=%s has vocab_size %d, --ckpt=%s has %d (the two must share the "
              "tokenizer)", ref_path, rc.vocab_size, path, c.vocab_size);
    int T = c.seq_len, B = c.batch;
    if (rc.seq_len < T)
        fatal("gateinfo: --ref=%s has %d positions, fewer than the %d of the windows (pass "
              "--seq_len=%d)", ref_path, rc.seq_len, T, rc.seq_len);
    DataSpec spec = dataspec_from_config(&c);
    Dataset *val = dataset_open(&spec, SPLIT_VAL);
    if (dataset_seq_len(val) != T) fatal("gateinfo: the data's windows are not %d long", T);
    size_t windows = dataset_num_windows(val);
    if ((size_t)batches * B < windows) windows = (size_t)batches * B;
    m.training = ref.training = 0;
    m.eval_count = 0;
    int L = c.n_layer, D = c.d_model;
    unsigned char *Y = xcalloc(windows * T * T, 1);  // (windows, T, T)
    float *feat[MAX_LAYERS] = {0};                    // (windows, T, D) per layer: the probe's
    for (int l = 0; l < L && probe_steps; l++) feat[l] = xcalloc(windows * T * D, sizeof(float));
    LayerCounts *cnt = xcalloc((size_t)L, sizeof(LayerCounts));
    uint64_t draw = 0;
    DecisionTally tally = {cnt, hash64((uint64_t)c.seed, 0x6A7Eull), &draw};
    double t0 = now_seconds();
    label_windows(Y, feat, &tally, &m, &ref, val, windows, margin, "validation");
    // the ceiling: a probe per layer, trained on labelled training windows
    double probe_mi[MAX_LAYERS], probe_loss[MAX_LAYERS];
    for (int l = 0; l < L; l++) probe_mi[l] = probe_loss[l] = NAN;
    if (probe_steps) {
        Dataset *train = dataset_open(&spec, SPLIT_TRAIN);
        size_t tw = dataset_num_windows(train);
        if ((size_t)probe_batches * B < tw) tw = (size_t)probe_batches * B;
        unsigned char *Yt = xcalloc(tw * T * T, 1);
        float *ft[MAX_LAYERS] = {0};
        for (int l = 0; l < L; l++) ft[l] = xcalloc(tw * T * D, sizeof(float));
        label_windows(Yt, ft, NULL, &m, &ref, train, tw, margin, "probe training");
        RouterOpts ro = {probe_rank ? probe_rank : c.d_g, probe_steps, B, (float)probe_lr,
                         hash64((uint64_t)c.seed, 0x9B0Bull)};
        for (int l = 0; l < L; l++) {
            LabelSet ts = {ft[l], Yt, tw, T, D}, vs = {feat[l], Y, windows, T, D};
            probe_mi[l] = probe_ceiling(&ts, &vs, model_attn_args(&m, l, NULL).k, &ro, &probe_loss[l]);
            xfree(ft[l]);
        }
        xfree(Yt);
        dataset_free(train);
    }
    double mi[MAX_LAYERS], mi_plugin[MAX_LAYERS], hy[MAX_LAYERS], share[MAX_LAYERS];
    double rate_y[MAX_LAYERS], rate_d[MAX_LAYERS], indep[MAX_LAYERS], same[MAX_LAYERS], n[MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        const double *j = cnt[l].t[GI_JOINT];
        double my[2] = {j[0] + j[2], j[1] + j[3]};
        n[l] = j[0] + j[1] + j[2] + j[3];
        rate_y[l] = n[l] > 0 ? my[1] / n[l] : NAN;
        rate_d[l] = n[l] > 0 ? (j[2] + j[3]) / n[l] : NAN;
        hy[l] = entropy_bits(my, 2, 1);
        mi[l] = mutual_info_bits(j, 2, 2, 1);
        mi_plugin[l] = mutual_info_bits(j, 2, 2, 0);
        share[l] = hy[l] > 0 ? mi[l] / hy[l] : NAN;
        indep[l] = mutual_info_bits(cnt[l].t[GI_INDEP], 2, 2, 1);
        same[l] = mutual_info_bits(cnt[l].t[GI_SAME], 2, 2, 1);
    }
    double dt = now_seconds() - t0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint", path);
        cJSON_AddStringToObject(o, "reference", ref_path);
        cJSON_AddStringToObject(o, "attn", c.attn);
        cJSON_AddStringToObject(o, "k", c.k);
        json_add_number(o, "margin", margin);
        json_add_number(o, "windows", (double)windows);
        json_add_doubles(o, "samples", n, (size_t)L);
        json_add_doubles(o, RK_LABEL_RATE, rate_y, (size_t)L);
        json_add_doubles(o, RK_LABEL_ENTROPY_BITS, hy, (size_t)L);
        json_add_doubles(o, RK_DECISION_RATE, rate_d, (size_t)L);
        json_add_doubles(o, RK_MI_BITS, mi, (size_t)L);
        json_add_doubles(o, RK_MI_PLUGIN_BITS, mi_plugin, (size_t)L);
        json_add_doubles(o, RK_MI_SHARE, share, (size_t)L);
        json_add_doubles(o, RK_SELFTEST_INDEPENDENT_BITS, indep, (size_t)L);
        json_add_doubles(o, RK_SELFTEST_IDENTICAL_BITS, same, (size_t)L);
        json_add_doubles(o, RK_PROBE_MI_BITS, probe_mi, (size_t)L);
        json_add_doubles(o, RK_PROBE_VAL_BCE, probe_loss, (size_t)L);
        json_add_number(o, "seconds", dt);
        json_print_line(stdout, o);
        cJSON_Delete(o);
    } else {
        printf("gateinfo %s against %s on %s: %zu windows, margin %.3g nats, %.0f s\n", path, ref_path,
               dataset_describe(val), windows, margin, dt);
        printf("%-6s %10s %9s %9s %9s %10s %9s %9s %11s %11s %10s\n", "layer", "samples", "P(label)",
               "H(label)", "P(kept)", "I (bits)", "plug-in", "I/H", "indep test", "ident test", "probe I");
        for (int l = 0; l < L; l++)
            printf("%-6d %10.0f %9.4f %9.5f %9.4f %10.6f %9.6f %9.4f %11.6f %11.5f %10.6f\n", l, n[l], rate_y[l],
                   hy[l], rate_d[l], mi[l], mi_plugin[l], share[l], indep[l], same[l], probe_mi[l]);
        printf("(bits per (head, query, key) sample; the self-test columns should read ~0 and "
               "H(label); probe I: the ceiling, a probe of the gate's form trained on the label)\n");
    }
    xfree(Y), xfree(cnt);
    for (int l = 0; l < L; l++) xfree(feat[l]);
    dataset_free(val);
    model_free(&m);
    model_free(&ref);
    return 0;
}
