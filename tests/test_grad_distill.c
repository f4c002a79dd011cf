// test_grad_distill.c: finite-difference checks of the distillation losses (KL and BCE) w.r.t.
// the gate matrices of a frozen dense model, and that the other tensors get no gradient. The
// method and tolerances are described in grad_check.h.
#include "grad_check.h"

// ----------------------------------------------------------------------------- distillation
typedef struct {
    Model *m;
    const int *in;
    int B, T, k;
    DistillKind kind;
} DistillCtx;

static double distill_eval(void *v, int *changed) {
    DistillCtx *x = v;
    *changed = 0;  // the BCE target is top-k of S, which the gates do not move
    return distill_loss(x->m, x->in, x->B, x->T, x->kind, x->k, 0, NULL);
}

static void test_distill(DistillKind kind, const char *gelu) {
    Config c;
    const char *const kv[] = {"attn", "dense", "train", "gates", "gelu", gelu, NULL};
    small_config(&c, kv);
    Model m;
    model_build(&m, &c);
    // a frozen dense model whose gates train: the gates get a gradient from the distillation
    model_set_trainable(&m, NULL, OBJECTIVE_GATE_DISTILL);
    for (int i = 0; i < m.table.count; i++)
        CHECK(m.gets_grad[i] == (m.table.info[i].role == ROLE_GATE), "distill: %s gets_grad %d",
              m.table.info[i].name, m.gets_grad[i]);
    int in[16];
    for (int n = 0; n < 16; n++) in[n] = (int)rng_below(&rng, 11);
    DistillCtx x = {&m, in, 2, 8, 3, kind};
    model_zero_grad(&m);
    double per[MAX_LAYERS];
    double L = distill_loss(&m, in, 2, 8, kind, 3, 1, per);
    const char *name = kind == DISTILL_KL ? "distill kl" : "distill bce";
    CHECK(isfinite(L) && L > 0 && fabs(L - (per[0] + per[1]) / 2) < 1e-12 * fabs(L) + 1e-15,
          "%s: loss %.9g, per layer %.9g %.9g", name, L, per[0], per[1]);
    double L2 = distill_loss(&m, in, 2, 8, kind, 3, 0, NULL);
    CHECK(L == L2, "%s: loss with and without backward differ", name);
    float *an = falloc(m.table.total);
    memcpy(an, m.grads, m.table.total * sizeof(float));
    const FdOpts o = {1e-2, 1e-4, 1e-7, 48, 1.0};
    for (int i = 0; i < m.table.count; i++) {
        const ParamInfo *p = &m.table.info[i];
        char what[160];
        if (p->role != ROLE_GATE) {
            CHECK(max_abs(an + p->offset, p->numel) == 0.0, "%s: %s got a gradient", name, p->name);
            continue;
        }
        snprintf(what, sizeof what, "%s (%s): %s", name, gelu, p->name);
        CHECK(max_abs(an + p->offset, p->numel) > 0, "%s: zero gate gradient", what);
        fd_check(what, m.params + p->offset, an + p->offset, p->numel, &o, distill_eval, &x);
    }
    n_fd_cases++;
    xfree(an);
    model_free(&m);
}

// Where test_grad.c had left the generator on reaching these checks (see grad_init).
static const Rng RNG_START = {{0xbd0ea3dd17905b98ull, 0x5ae1706ea3e94a90ull,
                               0x9b09c50686285a4aull, 0xc75b9ea4408dd237ull}};

int main(void) {
    double t_start = now_seconds();
    grad_init(&RNG_START);
    test_distill(DISTILL_KL, "erf");
    test_distill(DISTILL_BCE, "tanh");
    return grad_summary("grad_distill", t_start);
}
