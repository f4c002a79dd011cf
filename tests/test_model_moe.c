// test_model_moe.c: mixtures of experts: one expert with top-1 routing is a dense FFN, the hash
// router is a fixed function of (token, seed, layer), a frozen random router never moves while a
// learned one does, and capacity drops are counted.
#include "model_check.h"

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

// Where test_model.c had left the generator on reaching these checks (see model_check_init).
static const Rng RNG_START = {{0x1ef51edd3b1ccfdbull, 0xbfd0f2cab4bca0deull,
                               0x665a049ccd2a22f1ull, 0x91dd81fdc1d17e0eull}};

int main(void) {
    double t_start = now_seconds();
    model_check_init(&RNG_START);
    test_moe_dense_equivalence();
    test_hash_router();
    test_router_training();
    return model_check_summary("model_moe", t_start);
}
