// test_model_train.c: training steps: bit-identical reruns (dropout and stochastic masks
// included, two threads), the exact one-step AdamW property of ../shared/ref/README.md
// section 7, and the learning-rate schedule.
#include "model_check.h"

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
    unsigned char *listed = xcalloc((size_t)m.table.count, 1);
    for (int i = 0; i < m.table.count; i++) listed[i] = &m.table.info[i] != frozen;
    model_set_trainable(&m, listed, OBJECTIVE_LM);  // soft gates are on the path: all but one
    xfree(listed);
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

// Where test_model.c had left the generator on reaching test_determinism (see model_check_init).
static const Rng RNG_DETERMINISM = {{0xe8ba6e077cc65d54ull, 0xfa4c144d32e1d186ull,
                                     0x726acc503e010109ull, 0xd66f6b3390dcb205ull}};

// Where test_model.c had left the generator on reaching test_adamw (see model_check_init).
static const Rng RNG_ADAMW = {{0x2265f84a580f065eull, 0xca35118dec49de49ull,
                               0x21b6570e08cfc077ull, 0xc9df220239241388ull}};

int main(void) {
    double t_start = now_seconds();
    model_check_init(&RNG_DETERMINISM);
    test_determinism();
    rng = RNG_ADAMW;
    test_adamw();
    test_lr_schedule();
    return model_check_summary("model_train", t_start);
}
