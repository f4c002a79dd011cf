// test_grad_model.c: finite-difference checks of the whole model's backward pass: every mode,
// per-layer mixes, bias / tie / GELU variants, FFN and MoE variants, freezing, dropout; tensors
// that get no gradient hold exactly 0; backward accumulates and scales; dropout masks follow the
// forward index; one thread and two give the same gradients; a hard + ste layer's gate gradient
// matches the plain-loop STE formula of attn_ref.h. The method and tolerances are described in
// grad_check.h.
#include "grad_check.h"
#include "attn_ref.h"

// ----------------------------------------------------------------------------- whole model
typedef struct {
    Model *m;
    const int *in, *tg;
    int B, T;
    uint64_t fc;            // forward index reused by every forward (dropout, stochastic masks)
    unsigned char *base;    // kept pattern of every layer's W in the unperturbed forward
    size_t per_layer;
    int *base_slots;        // MoE: every layer's dispatch (slot per choice) unperturbed
} ModelCtx;

// MoE routing of every routed layer, concatenated: choices and slots (N*topk each). Choices
// too: a dropped token moving between two full experts keeps its slot (-1) but moves the
// load-balancing loss.
static size_t moe_slots(const Model *m, int *out) {
    size_t n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        FfnArgs a = model_ffn_args(m, l);
        if (!ffn_is_routed(&a)) continue;
        size_t cnt = a.N * (size_t)a.topk;
        if (out) memcpy(out + n, m->layer[l].ffn.slot, cnt * sizeof(int)),
                 memcpy(out + n + cnt, m->layer[l].ffn.choice, cnt * sizeof(int));
        n += 2 * cnt;
    }
    return n;
}

static double model_eval(void *v, int *changed) {
    ModelCtx *x = v;
    x->m->forward_count = x->fc;
    double L = model_forward(x->m, x->in, x->tg, x->B, x->T) + x->m->aux_loss;
    *changed = 0;
    if (x->base_slots) {  // a perturbation that moves a token to another expert is a kink
        size_t n = moe_slots(x->m, NULL);
        int *now = xcalloc(n + 1, sizeof(int));
        moe_slots(x->m, now);
        *changed = memcmp(now, x->base_slots, n * sizeof(int)) != 0;
        xfree(now);
    }
    if (x->base)
        for (int l = 0; l < x->m->cfg.n_layer && !*changed; l++) {
            const float *att = x->m->layer[l].att;
            const unsigned char *b = x->base + (size_t)l * x->per_layer;
            for (size_t e = 0; e < x->per_layer && !*changed; e++) *changed = (att[e] != 0.0f) != b[e];
        }
    return L;
}

static const FdOpts MODEL_FD = {1e-2, 1e-4, 3e-5, 16, 0.75};

// FD on every tensor that gets a gradient; tensors that get none must hold exactly 0.
// skip_fd: name fragments whose FD is not meaningful (straight-through contaminated).
static void model_case(const char *label, const char *const *kv, const char *const *skip_fd) {
    Config c;
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    m.training = 1;  // dropout (when configured) on; the forward index is pinned below
    int B = 2, T = c.seq_len, V = c.vocab_size;
    int in[64], tg[64];
    for (int n = 0; n < B * T; n++) {
        in[n] = (int)rng_below(&rng, (uint64_t)V);
        tg[n] = (int)rng_below(&rng, (uint64_t)V);
        if (n % 5 == 2) tg[n] = -1;  // a few ignored positions
    }
    ModelCtx x = {&m, in, tg, B, T, 17, NULL, (size_t)B * c.n_head * T * T, NULL};
    model_zero_grad(&m);
    double L0 = model_eval(&x, &(int){0});
    x.base_slots = xcalloc(moe_slots(&m, NULL) + 1, sizeof(int));
    moe_slots(&m, x.base_slots);
    CHECK(isfinite(L0) && L0 > 0, "%s: loss %g", label, L0);
    x.base = xcalloc((size_t)c.n_layer * x.per_layer, 1);
    for (int l = 0; l < c.n_layer; l++)
        for (size_t e = 0; e < x.per_layer; e++)
            x.base[(size_t)l * x.per_layer + e] = m.layer[l].att[e] != 0.0f;
    model_backward(&m, 1.0f);
    float *an = falloc(m.table.total);
    memcpy(an, m.grads, m.table.total * sizeof(float));
    int n_grad = 0;
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        char what[200];
        if (p->role == ROLE_GATE) {  // the gate is in the graph in soft, soft_prob, hard + ste
            AttnMode md = m.plan.attn.mode[p->layer];
            int ec = md == ATTN_EXPERT_CHOICE || md == ATTN_EXPERT_CHOICE_CAUSAL;  // router: gk
            int in_graph = md == ATTN_SOFT || md == ATTN_SOFT_PROB ||
                           (ec && strstr(p->name, ".gate_k.")) ||
                           (md == ATTN_HARD && m.plan.attn.gate_grad != GATE_GRAD_NONE);
            CHECK(m.gets_grad[i] == (m.trainable[i] && in_graph) &&
                      (!m.plan.attn.gate_frozen[p->layer] || !m.trainable[i]),
                  "%s: %s gets_grad %d (trainable %d, mode %s)", label, p->name, m.gets_grad[i],
                  m.trainable[i], attn_mode_name(md));
        } else {
            CHECK(m.gets_grad[i] == m.trainable[i], "%s: %s gets_grad %d, trainable %d", label,
                  p->name, m.gets_grad[i], m.trainable[i]);
        }
        if (!m.gets_grad[i]) {
            int zero = 1;
            for (size_t j = 0; j < p->numel; j++) zero &= an[p->offset + j] == 0.0f;
            CHECK(zero, "%s: %s gets no gradient but m.grads is not exactly 0", label, p->name);
            continue;
        }
        n_grad++;
        int skip = 0;
        for (const char *const *s = skip_fd; s && *s; s++) skip |= strstr(p->name, *s) != NULL;
        if (skip) continue;
        snprintf(what, sizeof what, "%s: %s", label, p->name);
        fd_check(what, m.params + p->offset, an + p->offset, p->numel, &MODEL_FD, model_eval, &x);
    }
    CHECK(n_grad > 0, "%s: no tensor gets a gradient", label);
    // the hard gate (gate_grad none) enters through its ranking only
    for (int l = 0; l < c.n_layer; l++) {
        if (m.plan.attn.mode[l] != ATTN_HARD || m.plan.attn.gate_grad != GATE_GRAD_NONE) continue;
        int moved = 0, tried = 0;
        for (int t = 0; t < 20; t++) {
            float *g = t & 1 ? m.w.layer[l].gate_k : m.w.layer[l].gate_q;
            size_t idx = (size_t)rng_below(&rng, (uint64_t)c.n_head * c.d_g * c.d_model);
            float g0 = g[idx];
            int cp, cm;
            g[idx] = g0 + 1e-3f;
            double lp = model_eval(&x, &cp);
            g[idx] = g0 - 1e-3f;
            double lm = model_eval(&x, &cm);
            g[idx] = g0;
            if (cp || cm) continue;
            tried++;
            moved += lp != lm;
        }
        CHECK(tried >= 10 && moved == 0, "%s: layer %d hard gate values move the loss (%d of %d)",
              label, l, moved, tried);
    }
    n_fd_cases++;
    xfree(an);
    xfree(x.base);
    xfree(x.base_slots);
    model_free(&m);
}

// Backward accumulates into m.grads and scales with grad_scale.
static void test_model_accumulation(void) {
    Config c;
    const char *const kv[] = {"attn", "soft,hard", "gate_grad", "ste", "attn_bias", "1", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = n % 11, tg[n] = (3 * n + 1) % 11;
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    float *g1 = falloc(m.table.total);
    memcpy(g1, m.grads, m.table.total * sizeof(float));
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 0.5f);
    double err = 0, mx = max_abs(g1, m.table.total);
    for (size_t j = 0; j < m.table.total; j++) err = fmax(err, fabs(m.grads[j] - 1.5 * g1[j]));
    CHECK(mx > 0 && err <= 1e-5 * mx, "backward(1) + backward(0.5) != 1.5 x backward(1): err %g "
          "of max %g", err, mx);
    xfree(g1);
    model_free(&m);
}

// The STE gate gradient of a whole model: layer 0's gate gradient equals dgq^T ln1 with dgq
// from the plain-loop STE formula applied to layer 0's saved activations and the gradient that
// reached its head outputs (m.datty after backward: layer 0 is the last one processed).
static void test_model_ste_gate(const char *gate_grad) {
    Config c;
    const char *const kv[] = {"attn", "hard,dense", "gate_grad", gate_grad, "tau", "0.7", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = (int)rng_below(&rng, 11), tg[n] = (int)rng_below(&rng, 11);
    model_zero_grad(&m);
    model_forward(&m, in, tg, 2, 8);
    model_backward(&m, 1.0f);
    AttnArgs a = model_attn_args(&m, 0, NULL);
    AttnCtx x;
    memset(&x, 0, sizeof x);
    x.a = a;
    x.qkv = m.layer[0].qkv;
    x.gq = m.layer[0].gq;
    x.gk = m.layer[0].gk;
    x.r = m.datty;
    AttnCase cs = {.mode = ATTN_HARD, .k = m.plan.attn.k[0], .scope = m.plan.attn.scope,
                   .gg = m.plan.attn.gate_grad, .tau = c.tau, .B = 2, .T = 8, .NH = 2, .hd = 8,
                   .dg = 4, .label = ""};
    CHECK(!strcmp(gate_grad, "ste_dense") == (cs.gg == GATE_GRAD_STE_DENSE), "gate_grad=%s "
          "resolved to %d", gate_grad, (int)cs.gg);
    size_t TT = (size_t)2 * 2 * 8 * 8, N = 16, GW = 8;
    unsigned char *keep = xcalloc(TT, 1);
    for (size_t e = 0; e < TT; e++) keep[e] = m.layer[0].att[e] != 0.0f;
    double *W = xcalloc(TT, sizeof(double)), *y = xcalloc(N * 16, sizeof(double));
    double *dgq = xcalloc(N * GW, sizeof(double)), *dgk = xcalloc(N * GW, sizeof(double));
    int near;
    attn_reference(W, y, dgq, dgk, &x, &cs, keep, &near);
    double ew = 0;
    for (size_t e = 0; e < TT; e++) ew = fmax(ew, fabs(W[e] - m.layer[0].att[e]));
    CHECK(near == 0 && ew < 2e-5, "model hard layer: W vs plain loops err %g (%d near ties)", ew, near);
    // dW_gq = dgq^T ln1, dW_gk = dgk^T ln1
    const float *ln1 = m.layer[0].ln1;
    double mq = 0, eq = 0, mk = 0, ek = 0;
    for (size_t o = 0; o < GW; o++)
        for (int i = 0; i < 16; i++) {
            double sq = 0, sk = 0;
            for (size_t n = 0; n < N; n++) {
                sq += dgq[n * GW + o] * ln1[n * 16 + i];
                sk += dgk[n * GW + o] * ln1[n * 16 + i];
            }
            mq = fmax(mq, fabs(sq));
            mk = fmax(mk, fabs(sk));
            eq = fmax(eq, fabs(sq - m.g.layer[0].gate_q[o * 16 + i]));
            ek = fmax(ek, fabs(sk - m.g.layer[0].gate_k[o * 16 + i]));
        }
    CHECK(mq > 0 && mk > 0 && eq <= 1e-4 * mq && ek <= 1e-4 * mk, "model %s gate gradient vs "
          "formula: err %.3g / %.3g of max %.3g / %.3g", gate_grad, eq, ek, mq, mk);
    xfree(keep), xfree(W), xfree(y), xfree(dgq), xfree(dgk);
    model_free(&m);
}

static void test_model(void) {
    // every mode, cycling attn_bias / tie_embeddings / gelu
    static const char *const combos[8][6] = {
        {"attn_bias", "0", "tie_embeddings", "1", "gelu", "erf"},
        {"attn_bias", "1", "tie_embeddings", "0", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "1", "gelu", "erf"},
        {"attn_bias", "0", "tie_embeddings", "0", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "1", "gelu", "tanh"},
        {"attn_bias", "0", "tie_embeddings", "0", "gelu", "erf"},
        {"attn_bias", "0", "tie_embeddings", "1", "gelu", "tanh"},
        {"attn_bias", "1", "tie_embeddings", "0", "gelu", "erf"},
    };
    for (int i = 0; i < 8; i++) {  // dense in all 8 combinations
        const char *kv[16] = {0};
        memcpy(kv, combos[i], sizeof combos[i]);
        kv[6] = "attn", kv[7] = "dense";
        char label[64];
        snprintf(label, sizeof label, "model dense bias%s tie%s %s", combos[i][1], combos[i][3],
                 combos[i][5]);
        model_case(label, kv, NULL);
    }
    static const struct {
        const char *label;
        const char *kv[18];
        const char *skip[6];
    } cases[] = {
        {"model oracle", {"attn", "oracle"}, {NULL}},
        {"model oracle all", {"attn", "oracle", "topk_scope", "all", "k", "2"}, {NULL}},
        {"model soft", {"attn", "soft"}, {NULL}},
        {"model soft tau 0.5", {"attn", "soft", "tau", "0.5"}, {NULL}},
        {"model soft random gate", {"attn", "soft", "gate", "random"}, {NULL}},
        {"model soft_prob", {"attn", "soft_prob"}, {NULL}},
        {"model soft_prob tau 2", {"attn", "soft_prob", "tau", "2"}, {NULL}},
        {"model hard", {"attn", "hard"}, {NULL}},
        {"model hard all", {"attn", "hard", "topk_scope", "all", "k", "2"}, {NULL}},
        // ste: the straight-through term reaches ln1 of its layer and everything below it
        {"model hard ste (layer 0)", {"attn", "hard,dense", "gate_grad", "ste"},
         {"blocks.0.ln1", "blocks.0.attn.gate", "wte", "wpe", NULL}},
        {"model hard ste_dense (layer 0)", {"attn", "hard,dense", "gate_grad", "ste_dense"},
         {"blocks.0.ln1", "blocks.0.attn.gate", "wte", "wpe", NULL}},
        {"model stochastic", {"attn", "stochastic"}, {NULL}},
        {"model stochastic all", {"attn", "stochastic", "topk_scope", "all", "k", "2"}, {NULL}},
        {"model random_fixed", {"attn", "random_fixed"}, {NULL}},
        {"model window", {"attn", "window"}, {NULL}},
        {"model mixed hard,soft", {"attn", "hard,soft", "gate", "random,learned"}, {NULL}},
        // expert-choice heads: the router (gk's first column per head) gets its gradient through
        // the router score that scales a picked token's output. A wide router init (gate_init_std
        // 1) keeps its ranking gaps far above the finite-difference steps.
#define EC_INIT "gate_init_std", "1"
        {"model expert_choice", {"attn", "expert_choice", "k", "3", EC_INIT}, {NULL}},
        {"model expert_choice_causal,expert_choice random,learned",
         {"attn", "expert_choice_causal,expert_choice", "gate", "random,learned", "k", "3,5", EC_INIT}, {NULL}},
        {"model mixed soft,hard", {"attn", "soft,hard", "gate", "learned,random", "k", "2,4"}, {NULL}},
        {"model mixed oracle,soft_prob", {"attn", "oracle,soft_prob", "k", "4,2"}, {NULL}},
        {"model mixed window,stochastic", {"attn", "window,stochastic"}, {NULL}},
        {"model mixed random_fixed,dense", {"attn", "random_fixed,dense"}, {NULL}},
        {"model train=gates soft", {"attn", "soft", "train", "gates"}, {NULL}},
        {"model train=top:1+embed", {"attn", "soft_prob", "train", "top:1+embed"}, {NULL}},
        {"model dropout dense", {"attn", "dense", "dropout", "0.2"}, {NULL}},
        {"model dropout soft", {"attn", "soft", "dropout", "0.2", "attn_bias", "1"}, {NULL}},
        {"model dropout stochastic,hard", {"attn", "stochastic,hard", "dropout", "0.15"}, {NULL}},
        // feed-forward variants and mixtures of experts (ffn.c)
        {"model ffn swiglu", {"ffn", "swiglu"}, {NULL}},
        {"model ffn geglu,dense", {"ffn", "geglu,dense", "attn", "soft"}, {NULL}},
        {"model moe learned top-1", {"ffn", "moe", "n_expert", "4", "d_expert", "8"}, {NULL}},
        {"model moe learned top-2 aux", {"ffn", "moe", "n_expert", "4", "d_expert", "8",
                                         "top_experts", "2", "aux_loss", "0.05"}, {NULL}},
        {"model moe random top-1 capacity", {"ffn", "moe,dense", "n_expert", "3", "router", "random",
                                             "capacity_factor", "1.0", "aux_loss", "0.1"}, {NULL}},
        {"model moe hash top-2", {"ffn", "dense,moe", "router", "hash", "top_experts", "2",
                                  "n_expert", "4", "d_expert", "6"}, {NULL}},
        {"model moe swiglu experts top-2 capacity", {"ffn", "moe", "expert", "swiglu", "top_experts", "2",
                                                     "capacity_factor", "0.75", "n_expert", "4"}, {NULL}},
        {"model moe geglu dropout", {"ffn", "moe", "expert", "geglu", "dropout", "0.2", "n_expert", "2",
                                     "aux_loss", "0.01"}, {NULL}},
        {"model moe dense control", {"ffn", "moe", "moe_dense_control", "1", "expert", "swiglu",
                                     "top_experts", "2", "n_expert", "4"}, {NULL}},
        {"model moe train=mlp:1", {"ffn", "moe", "train", "mlp:1", "top_experts", "2"}, {NULL}},
        // families (family.c): RMSNorm, rotary positions, SwiGLU, grouped K/V heads, q/k norm
#define GQA "n_head", "4", "n_kv_head", "2", "head_dim", "6"
        {"model llama dense gqa llama3 rope", {"family", "llama", GQA, "rope_scaling", "llama3",
                                               "rope_original_max_pos", "4"}, {NULL}},
        {"model llama soft mlp_bias kv 1", {"family", "llama", "n_head", "4", "n_kv_head", "1",
                                            "attn", "soft", "mlp_bias", "1"}, {NULL}},
        {"model qwen2 oracle gqa", {"family", "qwen2", GQA, "attn", "oracle"}, {NULL}},
        {"model qwen2 soft_prob", {"family", "qwen2", "attn", "soft_prob", "rope_theta", "100"}, {NULL}},
        {"model qwen3 dense gqa head_dim", {"family", "qwen3", GQA}, {NULL}},
        {"model qwen3 soft gqa", {"family", "qwen3", GQA, "attn", "soft"}, {NULL}},
        {"model qwen3 hard,stochastic", {"family", "qwen3", GQA, "attn", "hard,stochastic"}, {NULL}},
        {"model qwen3 window,random_fixed", {"family", "qwen3", GQA, "attn", "window,random_fixed"}, {NULL}},
        {"model qwen3 hard ste (layer 0)", {"family", "qwen3", GQA, "attn", "hard,dense", "gate_grad", "ste"},
         {"blocks.0.ln1", "blocks.0.attn.gate", "wte", NULL}},
        {"model qwen3 train=attn:1 moe", {"family", "qwen3", GQA, "train", "attn:1+gates", "ffn", "dense,moe",
                                          "n_expert", "2"}, {NULL}},
        // repro llm-single-layer: only block 1's attention and its soft gate train; the backward
        // stops at block 1 (block 0 has nothing trainable)
        {"model llama single layer", {"family", "llama", GQA, "n_layer", "3", "attn", "dense,soft,dense",
                                      "train", "attn:1"}, {NULL}},
        {"model qwen3 single layer", {"family", "qwen3", GQA, "n_layer", "3", "attn", "dense,soft,dense",
                                      "train", "attn:1"}, {NULL}},
#undef GQA
#undef EC_INIT
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *kv[26] = {0};
        int n = 0;
        for (int j = 0; cases[i].kv[j]; j++) kv[n++] = cases[i].kv[j];
        for (int j = 0; j < 6; j++) kv[n++] = combos[i % 8][j];
        model_case(cases[i].label, kv, cases[i].skip);
    }
    test_model_accumulation();
    test_model_ste_gate("ste");
    test_model_ste_gate("ste_dense");
}

// Dropout masks are keyed by the forward index: another index, another loss.
static void test_model_dropout_keys(void) {
    Config c;
    const char *const kv[] = {"dropout", "0.2", NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    m.training = 1;
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = n % 11, tg[n] = (5 * n + 2) % 11;
    m.forward_count = 3;
    double a = model_forward(&m, in, tg, 2, 8);
    m.forward_count = 3;
    double b = model_forward(&m, in, tg, 2, 8);
    double d = model_forward(&m, in, tg, 2, 8);  // forward index 4
    CHECK(a == b && a != d, "dropout keys: same index %.9g vs %.9g, next index %.9g", a, b, d);
    model_free(&m);
}

// The same gradients with two threads as with one (per-thread partial sums, scratch).
static void test_model_threads(void) {
    Config c;
    const char *const kv[] = {"attn", "soft,hard", "gate_grad", "ste", "attn_bias", "1",
                              "tie_embeddings", "0", "dropout", "0.1", NULL};
    small_config(&c, kv);
    int in[16], tg[16];
    for (int n = 0; n < 16; n++) in[n] = (n * 7) % 11, tg[n] = (n * 3 + 5) % 11;
    float *g[2];
    double loss[2];
    size_t total = 0;
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        Model m;
        model_build(&m, &c);
        m.training = 1;
        model_zero_grad(&m);
        loss[t] = model_forward(&m, in, tg, 2, 8);
        model_backward(&m, 1.0f);
        total = m.table.total;
        g[t] = falloc(total);
        memcpy(g[t], m.grads, total * sizeof(float));
        model_free(&m);
        omp_set_num_threads(1);
    }
    double err = 0, mx = max_abs(g[0], total);
    for (size_t j = 0; j < total; j++) err = fmax(err, fabs(g[0][j] - g[1][j]));
    CHECK(total > 0 && mx > 0 && fabs(loss[0] - loss[1]) <= 1e-6 * fabs(loss[0]) &&
          err <= 1e-5 * mx, "1 vs 2 threads: loss %.9g vs %.9g, grads differ by %g (max %g)",
          loss[0], loss[1], err, mx);
    xfree(g[0]), xfree(g[1]);
}

// Where test_grad.c had left the generator on reaching these checks (see grad_init).
static const Rng RNG_START = {{0x6eee3eb7cf5a5aafull, 0x7c07046c9b6bbd2bull,
                               0x2a39653b5f74a822ull, 0x8de7ddeec920d892ull}};

int main(void) {
    double t_start = now_seconds();
    grad_init(&RNG_START);
    test_model();
    test_model_dropout_keys();
    test_model_threads();
    return grad_summary("grad_model", t_start);
}
