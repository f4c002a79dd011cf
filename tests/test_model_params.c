// test_model_params.c: the model's tensors: which get gate gradients (hard: none, soft: some),
// frozen tensors keep their bytes under AdamW, the `train` grammar (and its fatal errors), and
// the parameter counts of the paper configuration and of a small one worked out by hand.
#include "model_check.h"

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
    // garbage in every gradient that backward writes: model_zero_grad must clear it (the other
    // tensors' gradients are never written: they stay zero from allocation)
    for (int i = 0; i < m.table.count; i++)
        if (m.gets_grad[i])
            for (size_t j = 0; j < m.table.info[i].numel; j++) m.grads[m.table.info[i].offset + j] = 1.0f;
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
    gate_grad_case("hard", "learned", "ste_dense", 1);
    gate_grad_case("hard", "random", "ste_dense", 0);
    gate_grad_case("block", "learned", "ste_dense", 1);
    gate_grad_case("expert_choice", "learned", "none", 1);  // the router: gk's first column
    gate_grad_case("expert_choice_causal", "random", "none", 0);
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

// Blocks below the lowest trainable one get no backward (model_backward stops there): the
// trainable tensors' gradients are bit-identical to a full backward's, the frozen ones stay 0.
static void test_backward_stop(void) {
    static const char *const specs[][2] = {{"attn:2", "blocks.2.attn."}, {"top:1", "blocks.2."},
                                           {"gates", "attn.gate"}};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        const char *kv[] = {"n_layer", "3", "attn", "soft", "family", s == 1 ? "qwen3" : "gpt",
                            "train", specs[s][0], NULL};
        Config c;
        small_config(&c, kv);
        Model part, full;
        model_build(&part, &c);
        model_build(&full, &c);
        unsigned char *all = xcalloc((size_t)full.table.count, 1);
        memset(all, 1, (size_t)full.table.count);
        model_set_trainable(&full, all, OBJECTIVE_LM);
        int in[16], tg[16];
        random_batch(in, tg, 16, c.vocab_size);
        Model *ms[2] = {&part, &full};
        for (int k = 0; k < 2; k++) {
            model_zero_grad(ms[k]);
            model_forward(ms[k], in, tg, 2, 8);
            model_backward(ms[k], 1.0f);
        }
        int same = 1, zero = 1, n_train = 0;
        for (int i = 0; i < part.table.count; i++) {
            const ParamInfo *p = &part.table.info[i];
            const float *gp = part.grads + p->offset, *gf = full.grads + p->offset;
            if (part.gets_grad[i]) {
                n_train++;
                same &= memcmp(gp, gf, p->numel * sizeof(float)) == 0;
                CHECK(strstr(p->name, specs[s][1]) != NULL, "train=%s: %s gets a gradient",
                      specs[s][0], p->name);
            } else {
                zero &= sum_sq(gp, p->numel) == 0.0;
            }
        }
        CHECK(n_train > 0 && same, "train=%s: gradients of the %d trainable tensors differ from a "
              "full backward's", specs[s][0], n_train);
        CHECK(zero, "train=%s: a frozen tensor got a gradient", specs[s][0]);
        xfree(all);
        model_free(&part);
        model_free(&full);
    }
}

int main(void) {
    double t_start = now_seconds();
    model_check_init(NULL);
    test_gate_gradients();
    test_frozen_updates();
    test_freeze();
    test_param_counts();
    test_backward_stop();
    return model_check_summary("model_params", t_start);
}
