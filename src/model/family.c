// family.c: the rows of the model-family table (family.h). Adding a family is adding a row
// here and the ops its new enum values name (a norm, a position scheme) where the skeleton
// dispatches on them.
#include "family.h"

#include <string.h>

#include "common.h"

static const ModelFamily FAMILIES[] = {
    // The paper's model as its public code defines it, and its gpt2-style variant (attn_bias=1,
    // gelu=tanh, untied head: all keys of this one row).
    {"gpt", "pre-norm GPT: LayerNorm, learned absolute positions, GELU FFN, optional biases",
     NORM_LAYERNORM, POS_LEARNED, FFN_ACT_GELU, 1, 0, 0, 1},
};
#define N_FAMILIES (int)(sizeof FAMILIES / sizeof FAMILIES[0])

const ModelFamily *family_table(int *count) {
    *count = N_FAMILIES;
    return FAMILIES;
}

const ModelFamily *family_find(const char *name) {
    for (int i = 0; i < N_FAMILIES; i++)
        if (!strcmp(FAMILIES[i].name, name)) return &FAMILIES[i];
    char known[256] = "";
    for (int i = 0; i < N_FAMILIES; i++)
        strncat(known, FAMILIES[i].name, sizeof known - strlen(known) - 3), strcat(known, i + 1 < N_FAMILIES ? ", " : "");
    fatal("key 'family': unknown model family '%s' (known: %s)", name, known);
}
