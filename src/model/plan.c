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

void model_plan_resolve(ModelPlan *p, const Config *c) {
    memset(p, 0, sizeof *p);
    p->n_layer = c->n_layer;
    p->family = family_find(c->family);
    const ModelFamily *f = p->family;
    if (f->kv_heads_grouped || f->qk_norm)  // their ops come with the llama/qwen rows
        fatal("key 'family': '%s' needs grouped K/V heads or a q/k norm, which this build does not "
              "implement", f->name);
    if (c->attn_bias && !f->attn_bias_allowed)
        fatal("key 'attn_bias': family '%s' has no attention biases (set attn_bias=0)", f->name);
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
