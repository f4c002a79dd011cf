// test_model.c: properties of the model, the optimizer and the routing machinery: which tensors
// get gate gradients (hard: none, soft: some), frozen tensors keep their bytes under AdamW, the
// `train` grammar (and its fatal errors), bit-identical reruns, top-k against brute force,
// window / kept-fraction structure, the exact one-step AdamW property of
// ../shared/ref/README.md section 7, the learning-rate schedule, and parameter counts.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adamw.h"
#include "attention.h"
#include "check.h"
#include "common.h"
#include "config.h"
#include "diagnostics.h"
#include "freeze.h"
#include "model.h"
#include "params.h"

static Rng rng;

// ----------------------------------------------------------------------------- helpers
static void small_config(Config *c, const char *const *kv) {
    config_defaults(c);
    static const char *const base[] = {
        "n_layer", "2", "d_model", "16", "n_head", "2", "d_ff", "32", "seq_len", "8",
        "vocab_size", "11", "d_g", "4", "k", "3", "dropout", "0", "init_std", "0.3",
        "gate_init_std", "0.5", "batch", "2", NULL};
    for (const char *const *p = base; *p; p += 2) config_set(c, p[0], p[1], "test");
    for (const char *const *p = kv; p && *p; p += 2) config_set(c, p[0], p[1], "test");
    config_resolve(c);
}

static void random_batch(int *in, int *tg, int n, int V) {
    for (int i = 0; i < n; i++) {
        in[i] = (int)rng_below(&rng, (uint64_t)V);
        if (tg) tg[i] = (int)rng_below(&rng, (uint64_t)V);
    }
}

static int is_gate(const ParamInfo *p) { return p->role == ROLE_GATE; }

static double sum_sq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static void train_steps(Model *m, const int *in, const int *tg, int steps, float lr) {
    for (int s = 0; s < steps; s++) {
        model_zero_grad(m);
        model_forward(m, in, tg, 2, m->cfg.seq_len);
        model_backward(m, 1.0f);
        adamw_step(m, lr);
    }
}

// fn(arg) must die with a one-line error mentioning `needle`.
static void expect_fatal(void (*fn)(const void *), const void *arg, const char *needle,
                         const char *what) {
    CHECK(check_child_fails(fn, arg, needle), "%s: expected a one-line fatal error naming '%s'",
          what, needle);
}

// ----------------------------------------------------------------------------- gate gradients
// mode, gate kind, gate_grad -> whether the gate gets a gradient
static void gate_grad_case(const char *attn, const char *gate, const char *gg, int expect_grad) {
    Config c;
    const char *const kv[] = {"attn", attn, "gate", gate, "gate_grad", gg, NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    random_batch(in, tg, 16, c.vocab_size);
    // garbage in the gradient buffer first: model_zero_grad must clear it
    for (size_t j = 0; j < m.table.total; j++) m.grads[j] = 1.0f;
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    LayerDiag diag[MAX_LAYERS];
    diagnostics_compute(diag, &m);
    for (int l = 0; l < c.n_layer; l++) {
        double s = 0;
        int gets = 0, all_zero = 1;
        for (int i = 0; i < m.table.count; i++) {
            const ParamInfo *p = &m.table.info[i];
            if (!is_gate(p) || p->layer != l) continue;
            gets |= m.gets_grad[i];
            s += sum_sq(m.grads + p->offset, p->numel);
            for (size_t j = 0; j < p->numel; j++) all_zero &= m.grads[p->offset + j] == 0.0f;
        }
        if (expect_grad) {
            CHECK(gets && !all_zero && diag[l].gate_grad_norm > 0,
                  "%s/%s/%s layer %d: expected a gate gradient (gets_grad %d, norm %g)", attn, gate,
                  gg, l, gets, diag[l].gate_grad_norm);
            CHECK(fabs(diag[l].gate_grad_norm - sqrt(s)) <= 1e-9 * sqrt(s),
                  "%s layer %d: gate_grad_norm %.12g vs %.12g", attn, l, diag[l].gate_grad_norm,
                  sqrt(s));
        } else {
            CHECK(!gets && all_zero && diag[l].gate_grad_norm == 0.0,
                  "%s/%s/%s layer %d: gate gradient must be exactly 0 (gets_grad %d, norm %g)",
                  attn, gate, gg, l, gets, diag[l].gate_grad_norm);
        }
    }
    // the gate matrices are trainable in every case with gate=learned, whatever the mode
    for (int i = 0; i < m.table.count; i++)
        if (is_gate(&m.table.info[i]))
            CHECK(m.trainable[i] == !strcmp(gate, "learned"), "%s/%s: gate trainable flag %d",
                  attn, gate, m.trainable[i]);
    model_free(&m);
}

static void test_gate_gradients(void) {
    gate_grad_case("hard", "learned", "none", 0);
    gate_grad_case("dense", "learned", "none", 0);
    gate_grad_case("oracle", "learned", "none", 0);
    gate_grad_case("window", "learned", "ste", 0);  // ste only concerns hard mode
    gate_grad_case("soft", "random", "none", 0);
    gate_grad_case("hard", "random", "ste", 0);
    gate_grad_case("soft", "learned", "none", 1);
    gate_grad_case("soft_prob", "learned", "none", 1);
    gate_grad_case("hard", "learned", "ste", 1);
    // per layer: only the layer whose gate is in the graph
    Config c;
    const char *const kv[] = {"attn", "hard,soft", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    random_batch(in, tg, 16, c.vocab_size);
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    LayerDiag diag[MAX_LAYERS];
    diagnostics_compute(diag, &m);
    CHECK(diag[0].gate_grad_norm == 0.0 && diag[1].gate_grad_norm > 0.0,
          "hard,soft: gate_grad_norm %g, %g", diag[0].gate_grad_norm, diag[1].gate_grad_norm);
    CHECK(sum_sq(m.g.layer[0].gate_q, 8 * 16) == 0.0 && sum_sq(m.g.layer[0].gate_k, 8 * 16) == 0.0,
          "hard,soft: layer 0 (hard) gate gradient not 0");
    model_free(&m);
}

// ----------------------------------------------------------------------------- frozen tensors
static void test_frozen_updates(void) {
    int in[16], tg[16];
    random_batch(in, tg, 16, 11);
    // gate=random in soft mode: the gate is in the graph but frozen
    {
        Config c;
        const char *const kv[] = {"attn", "soft", "gate", "random", "attn_bias", "1", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        float *p0 = xcalloc(m.table.total, sizeof(float));
        memcpy(p0, m.params, m.table.total * sizeof(float));
        train_steps(&m, in, tg, 4, 1e-2f);
        for (int i = 0; i < m.table.count; i++) {
            const ParamInfo *p = &m.table.info[i];
            int same = memcmp(p0 + p->offset, m.params + p->offset, p->numel * sizeof(float)) == 0;
            if (is_gate(p))
                CHECK(same && m.adam_t[i] == 0 && sum_sq(m.adam_m + p->offset, p->numel) == 0,
                      "soft, gate=random: %s changed (or has moments) after AdamW", p->name);
            else
                CHECK(!same && m.adam_t[i] == 4, "soft, gate=random: %s did not train (t %ld)",
                      p->name, m.adam_t[i]);
        }
        xfree(p0);
        model_free(&m);
    }
    // train=gates: only the gates move (weight decay 0.1 must not touch the rest)
    // hard mode, train=all: the gates get no gradient, so AdamW must not touch (decay) them
    static const char *const specs[][6] = {{"attn", "soft", "train", "gates", "tie_embeddings", "0"},
                                           {"attn", "soft_prob,soft", "train", "gates", "attn_bias", "1"},
                                           {"attn", "hard", "train", "all", "gate_grad", "none"},
                                           {"attn", "dense", "train", "all", "tie_embeddings", "0"}};
    for (int s = 0; s < 4; s++) {
        Config c;
        const char *kv[8] = {0};
        memcpy(kv, specs[s], sizeof specs[s]);
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        float *p0 = xcalloc(m.table.total, sizeof(float));
        memcpy(p0, m.params, m.table.total * sizeof(float));
        train_steps(&m, in, tg, 3, 1e-2f);
        int gates_only = !strcmp(specs[s][3], "gates");
        for (int i = 0; i < m.table.count; i++) {
            const ParamInfo *p = &m.table.info[i];
            int same = memcmp(p0 + p->offset, m.params + p->offset, p->numel * sizeof(float)) == 0;
            int should_move = gates_only ? is_gate(p) : !is_gate(p);
            CHECK(same == !should_move, "%s %s=%s: %s %s", specs[s][1], specs[s][2], specs[s][3],
                  p->name, same ? "did not change" : "changed");
        }
        xfree(p0);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------- freeze grammar
typedef int (*NamePred)(const char *name);
static int p_all(const char *n) { (void)n; return 1; }
static int p_none(const char *n) { (void)n; return 0; }
static int p_gates(const char *n) { return strstr(n, ".attn.gate_") != NULL; }
static int p_layers0(const char *n) { return !strncmp(n, "blocks.0.", 9); }
static int p_attn1(const char *n) { return !strncmp(n, "blocks.1.attn.", 14); }
static int p_mlp01(const char *n) { return strstr(n, ".mlp.") != NULL; }
static int p_top1(const char *n) { return !strncmp(n, "blocks.1.", 9); }
static int p_head(const char *n) { return !strncmp(n, "ln_f.", 5) || !strcmp(n, "lm_head.weight"); }
static int p_gates_head(const char *n) { return p_gates(n) || p_head(n); }
static int p_embed(const char *n) { return !strcmp(n, "wte.weight") || !strcmp(n, "wpe.weight"); }
static int p_gates1(const char *n) { return !strncmp(n, "blocks.1.attn.gate_", 19); }
static int p_blocks(const char *n) { return !strncmp(n, "blocks.", 7); }
static int p_attn0_mlp1(const char *n) {
    return !strncmp(n, "blocks.0.attn.", 14) || !strncmp(n, "blocks.1.mlp.", 13);
}
static int p_gates1_or_lnf(const char *n) { return p_gates1(n) || !strncmp(n, "ln_f.", 5); }
static int p_all_but_gate0(const char *n) { return strncmp(n, "blocks.0.attn.gate_", 19) != 0; }

static void freeze_case(Model *m, const char *spec, NamePred pred, const char *label) {
    snprintf(m->cfg.train, sizeof m->cfg.train, "%s", spec);
    model_set_trainable(m, NULL, OBJECTIVE_LM);
    int bad = 0;
    for (int i = 0; i < m->table.count; i++) {
        const char *name = m->table.info[i].name;
        int want = pred(name);
        if (m->trainable[i] != want) {
            bad++;
            printf("  train='%s' (%s): %s trainable %d, expected %d\n", spec, label, name,
                   m->trainable[i], want);
        }
    }
    CHECK(bad == 0, "train='%s' (%s): %d tensors wrong", spec, label, bad);
}

typedef struct {
    const Config *c;
    const ParamTable *t;
    const char *spec;
} FreezeArg;

static void freeze_child(const void *v) {
    const FreezeArg *a = v;
    Config c = *a->c;
    snprintf(c.train, sizeof c.train, "%s", a->spec);
    unsigned char tr[256];
    ModelPlan plan_;
    model_plan_resolve(&plan_, &c);
    freeze_apply(tr, a->t, c.train, &plan_);
}

static void test_freeze(void) {
    Config c;
    const char *const kv[] = {"tie_embeddings", "0", "attn_bias", "1", "attn", "soft", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    // the table in the reference's canonical order (README section 3)
    static const char *const order[] = {
        "wte.weight", "wpe.weight", "blocks.0.ln1.weight", "blocks.0.ln1.bias",
        "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
        "blocks.0.attn.proj.bias", "blocks.0.attn.gate_q.weight", "blocks.0.attn.gate_k.weight",
        "blocks.0.ln2.weight", "blocks.0.ln2.bias", "blocks.0.mlp.fc.weight", "blocks.0.mlp.fc.bias",
        "blocks.0.mlp.proj.weight", "blocks.0.mlp.proj.bias"};
    int n_order = (int)(sizeof order / sizeof order[0]);
    int order_ok = m.table.count == 2 + 2 * 14 + 3;
    for (int i = 0; i < n_order && order_ok; i++) order_ok = !strcmp(m.table.info[i].name, order[i]);
    order_ok = order_ok && !strcmp(m.table.info[m.table.count - 1].name, "lm_head.weight") &&
               !strcmp(m.table.info[m.table.count - 3].name, "ln_f.weight");
    CHECK(order_ok, "parameter table is not in the canonical order (%d tensors)", m.table.count);
    const ParamInfo *qkv = param_find(&m.table, "blocks.1.attn.qkv.weight");
    const ParamInfo *gq = param_find(&m.table, "blocks.1.attn.gate_q.weight");
    CHECK(qkv && qkv->shape[0] == 48 && qkv->shape[1] == 16 && qkv->ndim == 2 && qkv->layer == 1 &&
              gq && gq->shape[0] == 8 && gq->shape[1] == 16 && gq->role == ROLE_GATE,
          "qkv / gate_q shapes");

    freeze_case(&m, "all", p_all, "untied");
    freeze_case(&m, "none", p_none, "untied");
    freeze_case(&m, "gates", p_gates, "untied");
    freeze_case(&m, "layers:0", p_layers0, "untied");
    freeze_case(&m, "attn:1", p_attn1, "untied");
    freeze_case(&m, "mlp:0-1", p_mlp01, "untied");
    freeze_case(&m, "top:1", p_top1, "untied");
    freeze_case(&m, "gates+head", p_gates_head, "untied");
    freeze_case(&m, "head", p_head, "untied");
    freeze_case(&m, "embed", p_embed, "untied");
    freeze_case(&m, "gates:1", p_gates1, "untied");
    freeze_case(&m, "layers:0,1", p_blocks, "untied");
    freeze_case(&m, "top:2", p_blocks, "untied");
    freeze_case(&m, "attn:0+mlp:1", p_attn0_mlp1, "untied");
    // the trainable set also decides gets_grad (soft: gates on the path)
    snprintf(m.cfg.train, sizeof m.cfg.train, "gates+head");
    model_set_trainable(&m, NULL, OBJECTIVE_LM);
    for (int i = 0; i < m.table.count; i++)
        CHECK(m.gets_grad[i] == m.trainable[i], "soft gates+head: %s gets_grad %d trainable %d",
              m.table.info[i].name, m.gets_grad[i], m.trainable[i]);
    model_free(&m);

    // tied head: "head" is ln_f only (wte is an embedding); gate=random stays frozen always
    Config c2;
    const char *const kv2[] = {"tie_embeddings", "1", "gate", "random,learned", "attn", "soft", NULL};
    small_config(&c2, kv2);
    model_build(&m, &c2);
    CHECK(param_find(&m.table, "lm_head.weight") == NULL, "tied model has an lm_head tensor");
    freeze_case(&m, "gates+head", p_gates1_or_lnf, "tied, gate 0 random");
    freeze_case(&m, "all", p_all_but_gate0, "tied, gate 0 random");
    freeze_case(&m, "gates:0", p_none, "tied, gate 0 random");

    // bad specs die with a message naming the key
    ParamTable t;
    { ModelPlan plan_; model_plan_resolve(&plan_, &c); param_table_build(&t, &c, &plan_); }
    static const char *const bad[] = {"layers:9", "bogus", "layers:", "attn:x", "layers:1-0",
                                      "mlp:0,,1", "all:0", "top:3", "gates:2", "layers:-1",
                                      "gates+bogus", "head:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FreezeArg a = {&c, &t, bad[i]};
        char what[80];
        snprintf(what, sizeof what, "train='%s'", bad[i]);
        expect_fatal(freeze_child, &a, "train", what);
    }
    param_table_free(&t);
    model_free(&m);
}

// ----------------------------------------------------------------------------- determinism
static void train_copy(float *params, float *mom, const Config *c, const int *in, const int *tg) {
    Model m;
    model_build(&m, c);
    m.training = 1;  // dropout and stochastic masks on, keyed by the forward count
    train_steps(&m, in, tg, 5, 3e-3f);
    memcpy(params, m.params, m.table.total * sizeof(float));
    memcpy(mom, m.adam_v, m.table.total * sizeof(float));
    model_free(&m);
}

static void test_determinism(void) {
    Config c;
    const char *const kv[] = {"attn", "stochastic,soft", "dropout", "0.1", "attn_bias", "1", NULL};
    small_config(&c, kv);
    ParamTable t;
    { ModelPlan plan_; model_plan_resolve(&plan_, &c); param_table_build(&t, &c, &plan_); }
    size_t P = t.total;
    param_table_free(&t);
    int in[16], tg[16];
    random_batch(in, tg, 16, c.vocab_size);
    omp_set_num_threads(2);  // the parallel paths are where order could creep in
    float *a = xcalloc(P, sizeof(float)), *b = xcalloc(P, sizeof(float));
    float *va = xcalloc(P, sizeof(float)), *vb = xcalloc(P, sizeof(float));
    train_copy(a, va, &c, in, tg);
    train_copy(b, vb, &c, in, tg);
    CHECK(memcmp(a, b, P * sizeof(float)) == 0 && memcmp(va, vb, P * sizeof(float)) == 0,
          "two identical 5-step runs give different parameters");
    Config c2 = c;
    c2.seed = 1;  // another seed: another init, another run
    train_copy(b, vb, &c2, in, tg);
    CHECK(memcmp(a, b, P * sizeof(float)) != 0, "seed does not change the run");
    omp_set_num_threads(1);
    xfree(a), xfree(b), xfree(va), xfree(vb);

    // ties go to the lower index
    float pairs[256];
    unsigned char keep[64];
    float eq[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
    int n = topk_select(keep, eq, 9, 4, pairs);
    int ok = n == 4;
    for (int j = 0; j < 9; j++) ok &= keep[j] == (j < 4);
    CHECK(ok, "topk_select on equal values does not keep indices 0..3");
    float mix[6] = {1, 3, 3, 0, 3, 3};
    topk_select(keep, mix, 6, 3, pairs);
    CHECK(keep[1] && keep[2] && keep[4] && !keep[5] && !keep[0] && !keep[3],
          "topk_select {1,3,3,0,3,3} k=3 keeps %d%d%d%d%d%d, expected 011010", keep[0], keep[1],
          keep[2], keep[3], keep[4], keep[5]);
    topk_row(keep, eq, 6, 9, 2, TOPK_CAUSAL, pairs);
    ok = 1;
    for (int j = 0; j < 9; j++) ok &= keep[j] == (j < 2);
    CHECK(ok, "topk_row causal on equal values does not keep indices 0, 1");
}

// ----------------------------------------------------------------------------- top-k
// Brute force: the min(k, n) best by (NaN last, larger value first, lower index first).
static void brute_topk(unsigned char *keep, const float *x, int n, int k) {
    int idx[128];
    for (int j = 0; j < n; j++) idx[j] = j;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0; b--) {
            int p = idx[b - 1], q = idx[b];
            int pn = isnan(x[p]), qn = isnan(x[q]);
            int q_first = pn != qn ? pn : (!pn && x[q] != x[p]) ? x[q] > x[p] : q < p;
            if (!q_first) break;
            idx[b - 1] = q, idx[b] = p;
        }
    memset(keep, 0, (size_t)n);
    for (int j = 0; j < (k < n ? k : n); j++) keep[idx[j]] = 1;
}

static void random_row(float *x, int n, int kind) {
    for (int j = 0; j < n; j++) {
        switch (kind) {
        case 0: x[j] = rng_normal(&rng); break;
        case 1: x[j] = (float)rng_below(&rng, 3); break;  // many ties
        case 2: x[j] = (float)rng_below(&rng, 2) - 0.5f; break;
        default: {  // specials
            uint64_t r = rng_below(&rng, 8);
            x[j] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : r == 3 ? 0.0f
                                                                  : rng_normal(&rng);
        }
        }
    }
}

static void test_topk(void) {
    float x[128], pairs[256];
    unsigned char keep[128], ref[128];
    long rows = 0, bad = 0;
    for (int n = 1; n <= 70; n++)
        for (int rep = 0; rep < 12; rep++) {
            int kind = rep % 4;
            int k = 1 + (int)rng_below(&rng, (uint64_t)n + 2);
            if (rep == 0) k = 1;
            if (rep == 1) k = n;
            random_row(x, n, kind);
            memset(keep, 7, sizeof keep);
            int got = topk_select(keep, x, n, k, pairs);
            brute_topk(ref, x, n, k);
            rows++;
            if (got != (k < n ? k : n) || memcmp(keep, ref, (size_t)n) != 0) {
                if (bad++ < 5) printf("  topk_select n %d k %d kind %d: mismatch\n", n, k, kind);
            }
        }
    CHECK(bad == 0, "topk_select vs brute force: %ld of %ld rows differ", bad, rows);
    long rbad = 0, rrows = 0;
    for (int T = 1; T <= 24; T++)
        for (int i = 0; i < T; i++)
            for (int rep = 0; rep < 4; rep++) {
                int k = 1 + (int)rng_below(&rng, (uint64_t)T + 1);
                TopkScope scope = rep & 1 ? TOPK_ALL : TOPK_CAUSAL;
                random_row(x, T, rep < 2 ? 0 : 1);
                memset(keep, 7, sizeof keep);
                topk_row(keep, x, i, T, k, scope, pairs);
                int n = scope == TOPK_CAUSAL ? i + 1 : T;
                brute_topk(ref, x, n, k);
                for (int j = n; j < T; j++) ref[j] = 0;
                for (int j = i + 1; j < T; j++) ref[j] = 0;
                rrows++;
                if (memcmp(keep, ref, (size_t)T) != 0 && rbad++ < 5)
                    printf("  topk_row T %d i %d k %d scope %d: mismatch\n", T, i, k, (int)scope);
            }
    CHECK(rbad == 0, "topk_row vs brute force: %ld of %ld rows differ", rbad, rrows);
}

// ----------------------------------------------------------------------------- window, kept
static void test_window_and_kept(void) {
    int in[16], tg[16];
    random_batch(in, tg, 16, 11);
    {
        Config c;
        const char *const kv[] = {"attn", "window", "k", "3,5", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        model_forward(&m, in, tg, 2, 8);
        int bad = 0;
        double worst_sum = 0;
        for (int l = 0; l < 2; l++) {
            int k = m.plan.attn.k[l];
            for (int bh = 0; bh < 4; bh++)
                for (int i = 0; i < 8; i++) {
                    const float *w = m.layer[l].att + ((size_t)bh * 8 + i) * 8;
                    double sum = 0;
                    int n = 0;
                    for (int j = 0; j < 8; j++) {
                        int want = j <= i && j >= i - k + 1;
                        bad += (w[j] != 0.0f) != want;
                        n += w[j] != 0.0f;
                        sum += w[j];
                    }
                    bad += n != (k < i + 1 ? k : i + 1);
                    worst_sum = fmax(worst_sum, fabs(sum - 1));
                }
        }
        CHECK(bad == 0 && worst_sum < 1e-6, "window: %d wrong entries, row sums off by %g", bad,
              worst_sum);
        LayerDiag d[MAX_LAYERS];
        diagnostics_compute(d, &m);
        CHECK_CLOSE(d[0].kept_fraction, (1 + 2 + 3 * 6) / 36.0, 1e-12, "window k=3 kept_fraction");
        CHECK_CLOSE(d[1].kept_fraction, (1 + 2 + 3 + 4 + 5 * 4) / 36.0, 1e-12,
                    "window k=5 kept_fraction");
        model_free(&m);
    }
    // kept_fraction = sum_i min(k, i+1) / sum_i (i+1) under causal scope; 1 for dense/soft
    static const char *const modes[] = {"oracle", "hard", "stochastic", "random_fixed", "dense",
                                        "soft", "soft_prob"};
    for (int mi = 0; mi < 7; mi++)
        for (int k = 1; k <= 9; k += 4) {
            Config c;
            char ks[8];
            snprintf(ks, sizeof ks, "%d", k);
            const char *const kv[] = {"attn", modes[mi], "k", ks, NULL};
            small_config(&c, kv);
            Model m;
            model_build(&m, &c);
            model_forward(&m, in, tg, 2, 8);
            LayerDiag d[MAX_LAYERS];
            diagnostics_compute(d, &m);
            double num = 0, den = 0;
            for (int i = 0; i < 8; i++) num += k < i + 1 ? k : i + 1, den += i + 1;
            int all = mi >= 4;
            for (int l = 0; l < 2; l++) {
                char what[80];
                snprintf(what, sizeof what, "%s k=%d layer %d kept_fraction", modes[mi], k, l);
                CHECK_CLOSE(d[l].kept_fraction, all ? 1.0 : num / den, 1e-12, what);
                CHECK(d[l].empty_rows == 0, "%s: %ld empty rows with causal scope", what,
                      d[l].empty_rows);
                // causal scope: precision = recall = F1 (both keep min(k, i+1) per row)
                CHECK(fabs(d[l].gate_precision - d[l].gate_recall) < 1e-12 &&
                          fabs(d[l].gate_f1 - d[l].gate_recall) < 1e-12,
                      "%s: precision %g recall %g f1 %g", what, d[l].gate_precision,
                      d[l].gate_recall, d[l].gate_f1);
                CHECK(d[l].topk_mass > 0 && d[l].topk_mass <= 1 + 1e-6 &&
                          d[l].entropy_ratio > 0 && d[l].entropy_ratio <= 1 + 1e-6,
                      "%s: topk_mass %g entropy_ratio %g", what, d[l].topk_mass,
                      d[l].entropy_ratio);
                if (k >= 8) CHECK_CLOSE(d[l].topk_mass, 1.0, 1e-6, "topk_mass with k >= T");
                // the kept set of the forward is the one the diagnostics count
                long kept = 0, vis = 0, empty = 0;
                for (int bh = 0; bh < 4; bh++)
                    for (int i = 0; i < 8; i++) {
                        int n = 0;
                        for (int j = 0; j <= i; j++) n += m.layer[l].att[((size_t)bh * 8 + i) * 8 + j] != 0.0f;
                        kept += n, vis += i + 1, empty += n == 0;
                    }
                CHECK_CLOSE(d[l].kept_fraction, (double)kept / vis, 1e-12, what);
            }
            model_free(&m);
        }
    // topk_scope=all: rows can be empty; empty_rows counts the all-zero rows of the forward
    {
        Config c;
        const char *const kv[] = {"attn", "hard,oracle", "topk_scope", "all", "k", "2", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        model_forward(&m, in, tg, 2, 8);
        LayerDiag d[MAX_LAYERS];
        diagnostics_compute(d, &m);
        for (int l = 0; l < 2; l++) {
            long kept = 0, vis = 0, empty = 0;
            for (int bh = 0; bh < 4; bh++)
                for (int i = 0; i < 8; i++) {
                    int n = 0;
                    for (int j = 0; j < 8; j++) n += m.layer[l].att[((size_t)bh * 8 + i) * 8 + j] != 0.0f;
                    kept += n, vis += i + 1, empty += n == 0;
                }
            CHECK(empty > 0 && d[l].empty_rows == empty, "scope all layer %d: empty_rows %ld, "
                  "all-zero rows %ld", l, d[l].empty_rows, empty);
            CHECK_CLOSE(d[l].kept_fraction, (double)kept / vis, 1e-12, "scope all kept_fraction");
        }
        CHECK(isfinite(m.loss), "scope all: loss %g", m.loss);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------- causality
// With topk_scope=causal no mode lets a later token reach an earlier position: changing the
// token at position 6 leaves the logits of positions 0..5 unchanged, and so does running only
// the first 6 positions (T = 6; stochastic draws fresh masks per forward and is left out of
// that part; random_fixed's noise is indexed by (i, j), so it must agree).
static void test_causality(void) {
    static const char *const modes[] = {"dense", "oracle", "soft", "soft_prob", "hard", "window",
                                        "stochastic", "random_fixed"};
    int in[16], in2[16];
    random_batch(in, NULL, 16, 11);
    memcpy(in2, in, sizeof in);
    in2[6] = (in[6] + 1) % 11, in2[8 + 6] = (in[8 + 6] + 5) % 11;
    for (int mi = 0; mi < 8; mi++) {
        Config c;
        const char *const kv[] = {"attn", modes[mi], "gate_grad", "ste", NULL};
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        m.training = 1;  // pin the forward index (stochastic masks)
        m.forward_count = 5;
        model_forward(&m, in, NULL, 2, 8);
        float *l8 = xcalloc(16 * 11, sizeof(float));
        memcpy(l8, m.logits, 16 * 11 * sizeof(float));
        m.forward_count = 5;
        model_forward(&m, in2, NULL, 2, 8);
        double e = 0, moved = 0;
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 8; t++)
                for (int v = 0; v < 11; v++) {
                    double d = fabs(l8[(b * 8 + t) * 11 + v] - m.logits[(b * 8 + t) * 11 + v]);
                    if (t < 6) e = fmax(e, d);
                    else moved = fmax(moved, d);
                }
        CHECK(e <= 1e-6 && moved > 1e-4, "%s: a later token moves earlier logits by %g (later "
              "ones by %g)", modes[mi], e, moved);
        if (mi != 6) {  // not stochastic: a new forward draws new masks
            int in6[12];
            for (int b = 0; b < 2; b++) memcpy(in6 + b * 6, in + b * 8, 6 * sizeof(int));
            model_forward(&m, in6, NULL, 2, 6);
            double e6 = 0;
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < 6; t++)
                    for (int v = 0; v < 11; v++)
                        e6 = fmax(e6, fabs(l8[(b * 8 + t) * 11 + v] - m.logits[(b * 6 + t) * 11 + v]));
            CHECK(e6 <= 1e-5, "%s: logits of T = 6 differ from the first 6 of T = 8 by %g",
                  modes[mi], e6);
        }
        xfree(l8);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------- AdamW
static void test_adamw(void) {
    Config c;
    const char *const kv[] = {"attn", "soft", "tie_embeddings", "0", "attn_bias", "1", "lr", "1e-3",
                              "weight_decay", "0.1", "beta1", "0.9", "beta2", "0.95",
                              "adam_eps", "1e-8", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    const double lr = 1e-3, wd = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8;
    const ParamInfo *frozen = param_find(&m.table, "blocks.1.mlp.fc.weight");
    for (int i = 0; i < m.table.count; i++) m.gets_grad[i] = &m.table.info[i] != frozen;
    size_t P = m.table.total;
    float *p0 = xcalloc(P, sizeof(float)), *g1 = xcalloc(P, sizeof(float));
    float *g2 = xcalloc(P, sizeof(float));
    for (size_t j = 0; j < P; j++) {  // magnitudes from 1e-4 to 1
        g1[j] = rng_normal(&rng) * powf(10.0f, -4.0f * rng_uniform(&rng));
        g2[j] = rng_normal(&rng) * powf(10.0f, -4.0f * rng_uniform(&rng));
    }
    memcpy(p0, m.params, P * sizeof(float));
    memcpy(m.grads, g1, P * sizeof(float));
    adamw_step(&m, (float)lr);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        if (p == frozen) continue;
        double decay = p->ndim >= 2 ? 1 - lr * wd : 1.0;
        for (size_t j = p->offset; j < p->offset + p->numel; j++) {
            double u = lr * g1[j] / (fabs(g1[j]) + eps), e = p0[j] * decay - u;
            // relative to the size of the terms (p0 ~ lr cancels down to round-off)
            double mag = fabs(p0[j] * decay) + fabs(u), err = fabs(m.params[j] - e);
            worst = fmax(worst, err / mag);
            bad += err > 1e-6 * mag;
        }
    }
    CHECK(bad == 0, "AdamW one step: %d elements off p0 (1 - lr wd) - lr g / (|g| + eps) (worst "
          "rel %g)", bad, worst);
    int fi = (int)(frozen - m.table.info);
    CHECK(memcmp(p0 + frozen->offset, m.params + frozen->offset, frozen->numel * sizeof(float)) == 0 &&
              m.adam_t[fi] == 0 && sum_sq(m.adam_m + frozen->offset, frozen->numel) == 0 &&
              sum_sq(m.adam_v + frozen->offset, frozen->numel) == 0,
          "AdamW touched a tensor without a gradient");
    // second step: the full torch.optim.AdamW recursion with bias correction t = 2
    float *p1 = xcalloc(P, sizeof(float));
    memcpy(p1, m.params, P * sizeof(float));
    memcpy(m.grads, g2, P * sizeof(float));
    adamw_step(&m, (float)lr);
    bad = 0;
    worst = 0;
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        if (p == frozen) continue;
        double decay = p->ndim >= 2 ? 1 - lr * wd : 1.0;
        for (size_t j = p->offset; j < p->offset + p->numel; j++) {
            double mm = (1 - b1) * g1[j], vv = (1 - b2) * (double)g1[j] * g1[j];
            mm = b1 * mm + (1 - b1) * g2[j];
            vv = b2 * vv + (1 - b2) * (double)g2[j] * g2[j];
            double u = lr / (1 - b1 * b1) * mm / (sqrt(vv) / sqrt(1 - b2 * b2) + eps);
            double e = p1[j] * decay - u;
            double mag = fabs(p1[j] * decay) + fabs(u), err = fabs(m.params[j] - e);
            worst = fmax(worst, err / mag);
            bad += err > 1e-6 * mag;
        }
    }
    CHECK(bad == 0, "AdamW second step: %d elements off the recursion (worst rel %g)", bad, worst);
    CHECK(m.adam_t[0] == 2 && m.adam_t[fi] == 0, "adam_t %ld / %ld", m.adam_t[0], m.adam_t[fi]);
    xfree(p0), xfree(p1), xfree(g1), xfree(g2);

    // grad_norm / grad_clip over the tensors that get a gradient
    for (size_t j = 0; j < P; j++) m.grads[j] = 0.5f;
    double want = 0;
    for (int i = 0; i < m.table.count; i++)
        if (m.gets_grad[i]) want += 0.25 * m.table.info[i].numel;
    want = sqrt(want);
    CHECK_CLOSE(grad_norm(&m), want, 1e-6 * want, "grad_norm");
    double before = grad_clip(&m, 1.0f);
    CHECK_CLOSE(before, want, 1e-6 * want, "grad_clip returns the norm before");
    CHECK_CLOSE(grad_norm(&m), 1.0, 1e-5, "grad_clip: norm after");
    model_free(&m);
}

static void test_lr_schedule(void) {
    Config c;
    const char *const kv[] = {"lr", "1e-3", "warmup", "10", "steps", "110", "min_lr_ratio", "0.1",
                              NULL};
    small_config(&c, kv);
    const double lr = 1e-3, min = 1e-4;
    int ok = 1;
    for (int s = 0; s < 10; s++) ok &= fabs(lr_at(&c, s) - lr * (s + 1) / 10) <= 1e-6 * lr;
    CHECK(ok, "warmup is not linear lr (s + 1) / warmup");
    CHECK_CLOSE(lr_at(&c, 10), lr, 1e-6 * lr, "lr at the end of warmup (peak)");
    CHECK_CLOSE(lr_at(&c, 60), min + 0.5 * (lr - min), 1e-6 * lr, "lr half way through the cosine");
    CHECK_CLOSE(lr_at(&c, 110), min, 1e-6 * lr, "lr at the last step = lr * min_lr_ratio");
    CHECK_CLOSE(lr_at(&c, 500), min, 1e-6 * lr, "lr after the last step stays at the floor");
    int mono = 1;
    double peak = 0;
    for (int s = 0; s < 130; s++) {
        peak = fmax(peak, lr_at(&c, s));
        if (s >= 10 && s < 129) mono &= lr_at(&c, s + 1) <= lr_at(&c, s);
        if (s < 9) mono &= lr_at(&c, s + 1) > lr_at(&c, s);
    }
    CHECK(mono && peak <= lr * (1 + 1e-6), "lr schedule not monotone around its peak %g", peak);
    c.warmup = 0;
    CHECK_CLOSE(lr_at(&c, 0), lr, 1e-6 * lr, "no warmup: lr at step 0");
}

// ----------------------------------------------------------------------------- counts
static void test_param_counts(void) {
    Config c;
    config_defaults(&c);
    config_resolve(&c);
    ParamTable t;
    { ModelPlan plan_; model_plan_resolve(&plan_, &c); param_table_build(&t, &c, &plan_); }
    size_t unique, paper, gates;
    params_count(&t, &c, &unique, &paper, &gates);
    CHECK(gates == 393216, "paper config: %zu gate parameters, expected 393,216", gates);
    double dense = (double)(paper - gates);
    CHECK(dense > 30.5e6 && dense < 30.7e6, "paper config: dense count %.0f not ~30.6M", dense);
    CHECK(paper == unique + (size_t)50257 * 256, "tied head counted twice: %zu vs %zu", paper, unique);
    CHECK(t.total >= unique && t.count == 2 + 6 * 12 + 2, "table: total %zu, %d tensors", t.total,
          t.count);
    param_table_free(&t);
    // a small untied config, by hand
    Config s;
    const char *const kv[] = {"tie_embeddings", "0", "attn_bias", "1", NULL};
    small_config(&s, kv);
    { ModelPlan plan_; model_plan_resolve(&plan_, &s); param_table_build(&t, &s, &plan_); }
    params_count(&t, &s, &unique, &paper, &gates);
    size_t d = 16, F = 32, V = 11, T = 8, G = 8;
    size_t per_layer = 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * G * d + F * d + F + d * F + d;
    size_t want = V * d + T * d + 2 * per_layer + 2 * d + V * d;
    CHECK(unique == want && paper == want && gates == 2 * 2 * G * d,
          "small untied config: %zu / %zu / %zu vs %zu", unique, paper, gates, want);
    param_table_free(&t);
}

// ----------------------------------------------------------------------------- MoE
// One expert with top-1 routing is a dense FFN: same loss, same gradients (the router's softmax
// over one expert is exactly 1, so its gradient is 0).
static void test_moe_dense_equivalence(void) {
    const char *const kv_dense[] = {"ffn", "dense", NULL};
    const char *const kv_moe[] = {"ffn", "moe", "n_expert", "1", "d_expert", "32", NULL};
    for (int act = 0; act < 2; act++) {
        Config cd, cm;
        small_config(&cd, kv_dense);
        small_config(&cm, kv_moe);
        if (act) {  // and a SwiGLU FFN against a 1-expert SwiGLU MoE
            config_set(&cd, "ffn", "swiglu", "test"), config_set(&cm, "expert", "swiglu", "test");
            config_resolve(&cd), config_resolve(&cm);
        }
        Model d, m;
        model_build(&d, &cd);
        model_build(&m, &cm);
        CHECK(m.table.count == d.table.count + 2, "moe E=1: router per layer (%d vs %d tensors)",
              m.table.count, d.table.count);
        for (int i = 0; i < d.table.count; i++) {  // copy the dense weights into the MoE
            const ParamInfo *p = &d.table.info[i], *q = param_find(&m.table, p->name);
            CHECK(q && q->numel == p->numel, "moe E=1: %s has the dense shape", p->name);
            if (q) memcpy(m.params + q->offset, d.params + p->offset, p->numel * sizeof(float));
        }
        int in[16], tg[16];
        random_batch(in, tg, 16, 11);
        model_zero_grad(&d), model_zero_grad(&m);
        double ld = model_forward(&d, in, tg, 2, 8), lm = model_forward(&m, in, tg, 2, 8);
        model_backward(&d, 1.0f), model_backward(&m, 1.0f);
        CHECK(fabs(ld - lm) <= 1e-6 * fabs(ld), "moe E=1 (%s) loss %.9g vs dense %.9g",
              act ? "swiglu" : "gelu", lm, ld);
        double worst = 0, scale = 0;
        for (int i = 0; i < d.table.count; i++) {
            const ParamInfo *p = &d.table.info[i], *q = param_find(&m.table, p->name);
            for (size_t j = 0; j < p->numel; j++) {
                worst = fmax(worst, fabs(d.grads[p->offset + j] - m.grads[q->offset + j]));
                scale = fmax(scale, fabs(d.grads[p->offset + j]));
            }
        }
        CHECK(worst <= 1e-5 * scale, "moe E=1 (%s) gradients differ from dense: %g (max %g)",
              act ? "swiglu" : "gelu", worst, scale);
        const ParamInfo *r = param_find(&m.table, "blocks.0.mlp.router.weight");
        CHECK(r && sum_sq(m.grads + r->offset, r->numel) == 0.0, "moe E=1: router gradient is 0");
        CHECK(m.layer[0].ffn.util[0] == 1.0f && m.layer[0].ffn.dropped == 0.0, "moe E=1: one expert takes all");
        model_free(&d), model_free(&m);
    }
}

// The hash router is a fixed function of (token id, router_seed, layer): the same token always
// goes to the same expert, whatever its position, batch or forward; another seed, another map.
static void test_hash_router(void) {
    const char *const kv[] = {"ffn", "moe", "router", "hash", "n_expert", "4", "vocab_size", "11", NULL};
    Config c;
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], map[2][11];
    for (int rep = 0; rep < 2; rep++) {
        random_batch(in, NULL, 16, 11);
        for (int i = 0; i < 11; i++) in[i] = i;  // every token at least once
        model_forward(&m, in, NULL, 2, 8);
        for (int l = 0; l < 2; l++) {
            int ok = 1;
            if (rep == 0) for (int v = 0; v < 11; v++) map[l][v] = -1;
            for (int n = 0; n < 16; n++) {
                int e = m.layer[l].ffn.choice[n];
                if (map[l][in[n]] < 0) map[l][in[n]] = e;
                ok &= map[l][in[n]] == e && e >= 0 && e < 4;
            }
            CHECK(ok, "hash router: layer %d sends each token id to one expert (pass %d)", l, rep);
        }
    }
    int same_layers = 1, used[4] = {0};
    for (int v = 0; v < 11; v++) same_layers &= map[0][v] == map[1][v], used[map[0][v]] = 1;
    CHECK(!same_layers, "hash router: layers have their own maps");
    CHECK(used[0] + used[1] + used[2] + used[3] >= 3, "hash router: the 11 tokens spread over experts");
    Config c2 = c;
    c2.router_seed = c.router_seed + 1;
    Model m2;
    model_build(&m2, &c2);
    memcpy(m2.params, m.params, m.table.total * sizeof(float));
    model_forward(&m2, in, NULL, 2, 8);
    int differ = 0;
    for (int n = 0; n < 16; n++) differ |= m2.layer[0].ffn.choice[n] != map[0][in[n]];
    CHECK(differ, "hash router: another router_seed gives another map");
    model_free(&m), model_free(&m2);
}

// A frozen random router never moves; a learned one does; capacity drops are counted.
static void test_router_training(void) {
    for (int random = 0; random < 2; random++) {
        const char *const kv[] = {"ffn", "moe", "n_expert", "4", "router", random ? "random" : "learned",
                                  "capacity_factor", "0.5", "aux_loss", "0.01", NULL};
        Config c;
        small_config(&c, kv);
        Model m;
        model_build(&m, &c);
        const ParamInfo *r = param_find(&m.table, "blocks.1.mlp.router.weight");
        float *before = xcalloc(r->numel, sizeof(float));
        memcpy(before, m.params + r->offset, r->numel * sizeof(float));
        int in[16], tg[16];
        random_batch(in, tg, 16, 11);
        train_steps(&m, in, tg, 3, 1e-2f);
        CHECK((memcmp(before, m.params + r->offset, r->numel * sizeof(float)) == 0) == random,
              "%s router: weights %s", random ? "random" : "learned", random ? "frozen" : "trained");
        const FfnActs *a = &m.layer[1].ffn;
        float util = 0;
        for (int e = 0; e < 4; e++) util += a->util[e];
        // capacity 0.5 * 16 / 4 = 2 per expert: at most 8 of the 16 tokens are kept
        CHECK(a->dropped >= 0.5 && fabsf(util - 1.0f) < 1e-5f && a->aux_loss > 0,
              "%s router: dropped share %.3f (>= 0.5), utilisation sums to %.4f, aux %.4g",
              random ? "random" : "learned", a->dropped, util, a->aux_loss);
        xfree(before);
        model_free(&m);
    }
}

int main(void) {
    omp_set_num_threads(1);  // tiny models: one thread is fastest (the determinism test uses 2)
    rng_seed(&rng, 7771);
    double t0 = now_seconds();
    test_gate_gradients();
    test_frozen_updates();
    test_freeze();
    test_determinism();
    test_topk();
    test_window_and_kept();
    test_causality();
    test_adamw();
    test_lr_schedule();
    test_param_counts();
    test_moe_dense_equivalence();
    test_hash_router();
    test_router_training();
    printf("model: %.1f s\n", now_seconds() - t0);
    return check_summary("model");
}
