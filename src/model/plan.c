// plan.c: see plan.h. Each concept resolves its own keys; this file only adds the plan-wide
// parts (family checks, precision, the ablation grammar).
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

// ablate = attn:L | ffn:L | attn:all ... joined by '+'
static void resolve_ablation(ModelPlan *p, const Config *c) {
    char abl[STR_LEN];
    snprintf(abl, sizeof abl, "%s", c->ablate);
    char *save = NULL;
    for (char *it = strtok_r(abl, "+", &save); it; it = strtok_r(NULL, "+", &save)) {
        unsigned char *set = !strncmp(it, "attn:", 5) ? p->ablate_attn
                             : !strncmp(it, "ffn:", 4) ? p->ablate_ffn : NULL;
        const char *num = set ? strchr(it, ':') + 1 : NULL;
        char *end = NULL;
        long l = num && strcmp(num, "all") ? strtol(num, &end, 10) : -1;
        if (!set || (l < 0 && strcmp(num, "all")) || (end && (*end || end == num)) || l >= c->n_layer)
            fatal("key 'ablate': expected attn:L or ffn:L (L in 0..%d or all) joined by +, got '%s'",
                  c->n_layer - 1, it);
        for (int i = 0; i < c->n_layer; i++)
            if (l < 0 || i == l) set[i] = 1;
    }
}

static int bias_present(BiasRule r, int key) {
    return r == BIAS_ALWAYS || (r == BIAS_FROM_KEY && key);
}

static void resolve_shape(ShapePlan *s, const Config *c, const ModelFamily *f) {
    s->n_head = c->n_head;
    s->n_kv_head = c->n_kv_head ? c->n_kv_head : c->n_head;
    s->head_dim = c->head_dim ? c->head_dim : c->d_model / c->n_head;
    if (s->n_kv_head != s->n_head && !f->kv_heads_grouped)
        fatal("key 'n_kv_head': family '%s' has no grouped K/V heads (set n_kv_head=0)", f->name);
    if (s->head_dim * s->n_head != c->d_model && !f->head_dim_free)
        fatal("key 'head_dim': family '%s' needs head_dim = d_model / n_head = %d (set "
              "head_dim=0)", f->name, c->d_model / c->n_head);
    if (f->positions == POS_ROTARY && s->head_dim % 2)
        fatal("key 'head_dim': rotary positions rotate pairs, so head_dim must be even, got %d",
              s->head_dim);
    s->q_width = s->n_head * s->head_dim;
    s->kv_width = s->n_kv_head * s->head_dim;
    s->qkv_width = s->q_width + 2 * s->kv_width;
    s->qkv_bias = bias_present(f->qkv_bias, c->attn_bias);
    s->o_bias = bias_present(f->o_bias, c->attn_bias);
    s->mlp_bias = c->mlp_bias < 0 ? f->mlp_bias : c->mlp_bias;
    s->norm_bias = f->norm == NORM_LAYERNORM;
    if (!strcmp(c->rope_scaling, "none")) s->rope_scaling = ROPE_SCALING_NONE;
    else if (!strcmp(c->rope_scaling, "llama3")) s->rope_scaling = ROPE_SCALING_LLAMA3;
    else fatal("key 'rope_scaling' must be none or llama3, got '%s'", c->rope_scaling);
    if (s->rope_scaling != ROPE_SCALING_NONE && f->positions != POS_ROTARY)
        fatal("key 'rope_scaling': family '%s' has no rotary positions (set rope_scaling=none)",
              f->name);
    if (s->rope_scaling == ROPE_SCALING_LLAMA3 &&
        !(c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_low_freq_factor > 0 &&
          c->rope_factor > 0))
        fatal("keys 'rope_low_freq_factor' (%g) < 'rope_high_freq_factor' (%g) and 'rope_factor' "
              "(%g) > 0 are needed by llama3 rope scaling", c->rope_low_freq_factor,
              c->rope_high_freq_factor, c->rope_factor);
}

void model_plan_resolve(ModelPlan *p, const Config *c) {
    memset(p, 0, sizeof *p);
    p->n_layer = c->n_layer;
    p->family = family_find(c->family);
    const ModelFamily *f = p->family;
    resolve_shape(&p->shape, c, f);
    if (c->tie_embeddings && !f->head_tie_allowed)
        fatal("key 'tie_embeddings': family '%s' has no tied head (set tie_embeddings=0)", f->name);
    if (!strcmp(c->precision, "fp32")) p->precision = PREC_FP32;
    else if (!strcmp(c->precision, "bf16")) p->precision = PREC_BF16;
    else fatal("key 'precision' must be fp32 or bf16, got '%s'", c->precision);
    attention_plan_resolve(&p->attn, c);
    ffn_plan_resolve(&p->ffn, c, f->ffn);
    resolve_ablation(p, c);
}

void model_plan_write(const ModelPlan *p, Config *c) { attention_plan_write(&p->attn, c); }
