// recipes.c: the scales and recipes of `routelab repro`, and the pure functions over them: arm
// lookup, key expansion, which arms a scale runs, and the consistency check of shared arms.
#include "recipes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINY_ADD "--data=addition --add_digits=2 --vocab_size=13 --seq_len=8 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=400 --warmup=50 " \
    "--lr=3e-3 --dropout=0 --eval_every=200 --eval_batches=0 --mqar_eval_examples=1000 " \
    "--log_every=0 --ckpt_every=200"
// 5 digits, 3000 steps at lr 1e-3: at 3 digits every arm reached 100% (nothing to compare); in
// 1500 steps one dense seed of three stayed on a 55%-accuracy plateau (at lr 3e-3 and 1e-3
// alike), which the longer schedule leaves by step 1500.
#define SMALL_ADD "--data=addition --add_digits=5 --vocab_size=13 --seq_len=17 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=3000 --warmup=100 " \
    "--lr=1e-3 --dropout=0 --eval_every=500 --eval_batches=0 --mqar_eval_examples=2000 " \
    "--log_every=0 --ckpt_every=500"

// The KJV text model of the small scale (make data-kjv): main recipes and MoE text arms alike.
#define SMALL_TEXT "--data=data/kjv-8k --vocab_size=8192 --n_layer=4 --d_model=128 --n_head=4 " \
    "--d_ff=512 --seq_len=256 --batch=8 --steps=600 --warmup=60 --lr=1e-3 --dropout=0.1 " \
    "--eval_every=200 --eval_batches=20 --log_every=0 --ckpt_every=200"

const Scale SCALES[] = {
    // MQAR, 4 pairs: dense attention solves it within the 400 steps (about 30 s a run).
    {"tiny", "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=32 --k=4 "
             "--d_g=16 --vocab_size=64 --mqar_pairs=4 --batch=128 --steps=400 --warmup=50 "
             "--lr=1e-3 --dropout=0 --eval_every=100 --eval_batches=4 --mqar_eval_examples=256 "
             "--log_every=0 --ckpt_every=100",
     4, 2, 150, TINY_ADD, NULL, NULL},
    // KJV (make data-kjv), 8192-token BPE: about 3.5 min a training run on 2 cores, so the core
    // recipes (exp1,exp2,exp3,posthoc) with 3 seeds take about 75 min.
    {"small", SMALL_TEXT " --k=32", 32, 4, 300, SMALL_ADD, SMALL_TEXT,
     "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=64 --k=8 --vocab_size=128 "
     "--mqar_pairs=8 --batch=64 --steps=1500 --warmup=100 --lr=1e-3 --dropout=0 --eval_every=500 "
     "--eval_batches=4 --mqar_eval_examples=256 --log_every=0 --ckpt_every=500"},
    {"paper", "--k=64 --log_every=0 --ckpt_every=500", 64, 6, 2000, SMALL_ADD, "--k=64 --log_every=0 --ckpt_every=500", NULL},  // routelab's defaults
};
const size_t N_SCALES = sizeof SCALES / sizeof SCALES[0];

// Trailing Arm fields (needs_layers, task) default to 0 where a row leaves them out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Routed FFNs carry the Switch balancing loss (0.01), as learned routers are trained in practice;
// it reaches a frozen random router's input only, and a hash router not at all.
#define MOE "--ffn=moe --aux_loss=0.01"
#define DENSE {"dense", RUN_TRAIN, NULL, "--attn=dense", 37.32, NAN}
const Recipe RECIPES[] = {
    {"exp1", "soft gate: learned vs frozen random vs dense",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random", 49.83, NAN}}},
    {"exp2", "hard top-k gate: learned vs random (the gate gets no gradient)",
     {{"hard_learned", RUN_TRAIN, NULL, "--attn=hard --gate=learned", 71.22, NAN},
      {"hard_random", RUN_TRAIN, NULL, "--attn=hard --gate=random", 71.24, NAN}}},
    {"exp3", "distillation contrast: gates distilled on the dense and on the soft-gated model, "
             "deployed with hard top-k",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"distill_dense", RUN_DISTILL, "dense", "--loss=bce --k={k}", 48.6, 0.842},
      {"distill_soft", RUN_DISTILL, "soft_learned", "--loss=bce --k={k}", 601.6, 0.804}}},
    {"exp4", "stochastic-mask training, deployed dense and under fixed random masks",
     {{"stochastic", RUN_TRAIN, NULL, "--attn=stochastic", NAN, NAN},
      {"stoch_deploy_dense", RUN_EVAL, "stochastic", "--attn=dense", 78.19, NAN},
      {"stoch_deploy_fixed", RUN_EVAL, "stochastic", "--attn=random_fixed --mask_seed={seed}", 104.43, NAN}}},
    {"posthoc", "gates trained post hoc on the frozen dense model: learned vs random, KL "
                "distillation at three k, against the oracle",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"random_hard_k", RUN_EVAL, "dense", "--attn=hard --k={k}", NAN, NAN},
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"kl_2k", RUN_DISTILL, "dense", "--loss=kl --k={2k}", 40.24, NAN},
      {"kl_4k", RUN_DISTILL, "dense", "--loss=kl --k={4k}", 37.57, NAN},
      {"oracle_k", RUN_EVAL, "dense", "--attn=oracle --k={k}", 46.00, NAN}}},
    {"capacity", "gate capacity: BCE distillation with d_g 32/64/128 and KL with d_g 32, at "
                 "three k",
     {DENSE,
      {"bce_g32_k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={k}", NAN, NAN},
      {"bce_g32_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={2k}", NAN, NAN},
      {"bce_g32_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={4k}", NAN, NAN},
      {"bce_g64_k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={k}", NAN, NAN},
      {"bce_g64_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={2k}", NAN, NAN},
      {"bce_g64_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={4k}", NAN, NAN},
      {"bce_g128_k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={k}", NAN, NAN},
      {"bce_g128_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={2k}", NAN, NAN},
      {"bce_g128_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={4k}", NAN, NAN},
      {"kl_g32_k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={k}", NAN, NAN},
      {"kl_g32_2k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={2k}", NAN, NAN},
      {"kl_g32_4k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={4k}", NAN, NAN}}},
    {"gradient", "the absorption gradient: soft gates learned vs random from the dense model "
                 "with 0, 2, 4 ... L layers unfrozen",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"learned_top2", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:2", NAN, NAN, 2},
      {"random_top2", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:2", NAN, NAN, 2},
      {"learned_top4", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:4", NAN, NAN, 4},
      {"random_top4", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:4", NAN, NAN, 4},
      {"learned_topL", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=all", NAN, NAN},
      {"random_topL", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=all", NAN, NAN}}},
    {"concentration", "how concentrated dense attention is, per layer", {DENSE}},
    {"moe-random", "MoE routers: learned vs frozen random vs hash, against a dense FFN, on addition "
                   "with carry and on text",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_control", RUN_TRAIN, NULL, "--ffn=moe --moe_dense_control=1", NAN, NAN, 0, TASK_ADDITION},
      {"text_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_TEXT}}},
    {"ffn-sparsity", "one-layer transformers with dense, GLU and MoE FFNs on addition with carry, "
                     "and how much each sublayer matters (mean ablation)",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_swiglu", RUN_TRAIN, NULL, "--ffn=swiglu", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_dense_no_attn", RUN_EVAL, "add_dense", "--ablate=attn:0", NAN, NAN},
      {"add_dense_no_ffn", RUN_EVAL, "add_dense", "--ablate=ffn:0", NAN, NAN},
      {"add_swiglu_no_attn", RUN_EVAL, "add_swiglu", "--ablate=attn:0", NAN, NAN},
      {"add_swiglu_no_ffn", RUN_EVAL, "add_swiglu", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_learned_no_attn", RUN_EVAL, "add_moe_learned", "--ablate=attn:0", NAN, NAN},
      {"add_moe_learned_no_ffn", RUN_EVAL, "add_moe_learned", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_random_no_attn", RUN_EVAL, "add_moe_random", "--ablate=attn:0", NAN, NAN},
      {"add_moe_random_no_ffn", RUN_EVAL, "add_moe_random", "--ablate=ffn:0", NAN, NAN}}},
    {"routing-precision", "content-based routing on MQAR: top-1 dot-product precision after 0, 1, 2 "
                          "attention blocks, after a random projection, and a Bloom-filter index",
     {{"mqar_dense", RUN_TRAIN, NULL, "--attn=dense", NAN, NAN, 0, TASK_MQAR},
      {"mqar_probe", RUN_PROBE, "mqar_dense", "", NAN, NAN}}},
};
#pragma GCC diagnostic pop
const size_t N_RECIPES = sizeof RECIPES / sizeof RECIPES[0];

const Scale *scale_find(const char *name) {
    for (size_t i = 0; i < N_SCALES; i++)
        if (!strcmp(SCALES[i].name, name)) return &SCALES[i];
    return NULL;
}

const char *task_keys(const Scale *sc, Task t) {
    return t == TASK_ADDITION ? sc->add_keys : t == TASK_TEXT ? sc->text_keys
         : t == TASK_MQAR ? (sc->mqar_keys ? sc->mqar_keys : sc->keys) : sc->keys;
}

void expand_keys(char *out, size_t cap, const char *keys, const Scale *sc, int seed) {
    struct { const char *tok; int val; } subs[] = {{"{k}", sc->k}, {"{2k}", 2 * sc->k},
        {"{4k}", 4 * sc->k}, {"{L}", sc->n_layer}, {"{L/2}", sc->n_layer / 2}, {"{seed}", 100 + seed}};
    size_t o = 0;
    for (const char *p = keys; *p && o + 16 < cap;) {  // 16: room for one number
        int done = 0;
        for (size_t t = 0; t < sizeof subs / sizeof subs[0] && !done; t++) {
            size_t n = strlen(subs[t].tok);
            if (!strncmp(p, subs[t].tok, n)) {
                o += (size_t)snprintf(out + o, cap - o, "%d", subs[t].val);
                p += n;
                done = 1;
            }
        }
        if (!done) out[o++] = *p++;
    }
    out[o] = 0;
}

const Arm *find_arm(const char *name) {
    for (size_t r = 0; r < N_RECIPES; r++)
        for (const Arm *a = RECIPES[r].arms; a->name; a++)
            if (!strcmp(a->name, name)) return a;
    return NULL;
}

int arm_index(const Recipe *r, const char *name) {
    for (int i = 0; r->arms[i].name; i++) if (!strcmp(r->arms[i].name, name)) return i;
    return -1;
}

int arm_active(const Arm *a, const Scale *scale) {
    if (a->from) {  // an arm built on a skipped one is skipped too
        const Arm *f = find_arm(a->from);
        if (f && !arm_active(f, scale)) return 0;
    }
    return scale->n_layer > a->needs_layers && (a->kind != RUN_TRAIN || task_keys(scale, a->task));
}

int unfrozen_layers(const Arm *a, const Scale *scale) {
    if (!strncmp(a->name, "posthoc_", 8)) return 0;
    const char *t = strstr(a->name, "_top");
    if (!t) return -1;
    return t[4] == 'L' ? scale->n_layer : atoi(t + 4);
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

// The fields that decide what a run computes; the paper's values are only printed beside it.
static const char *arm_difference(const Arm *a, const Arm *b) {
    if (a->kind != b->kind) return "kind";
    if (!same_str(a->from, b->from)) return "from";
    if (!same_str(a->keys, b->keys)) return "keys";
    if (a->task != b->task) return "task";
    if (a->needs_layers != b->needs_layers) return "needs_layers";
    return NULL;
}

const char *recipes_check(const Recipe *r, size_t n, char *msg, size_t cap) {
    for (size_t i = 0; i < n; i++)
        for (const Arm *a = r[i].arms; a->name; a++)
            for (size_t j = 0; j <= i; j++)  // every earlier arm of the same name
                for (const Arm *b = r[j].arms; b->name && (j < i || b < a); b++) {
                    if (strcmp(a->name, b->name) != 0) continue;
                    const char *field = arm_difference(a, b);
                    if (!field) continue;
                    snprintf(msg, cap, "repro: arm '%s' differs (%s) between recipes '%s' and '%s': "
                             "runs of one name are shared, so give one of them another name",
                             a->name, field, r[j].name, r[i].name);
                    return msg;
                }
    return NULL;
}
