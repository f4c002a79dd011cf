// family.c: the rows of the model-family table (family.h). Adding a family is adding a row
// here and the ops its new enum values name (a norm, a position scheme) where the skeleton
// dispatches on them.
#include "family.h"

#include <string.h>

#include "common.h"

static const ModelFamily FAMILIES[] = {
    // The paper's model as its public code defines it, and GPT-2 (attn_bias=1, gelu=tanh: keys
    // of this one row; Hugging Face's GPT-2 checkpoints load into it).
    {"gpt", "pre-norm GPT: LayerNorm, learned absolute positions, GELU FFN, optional biases",
     NORM_LAYERNORM, POS_LEARNED, FFN_ACT_GELU, BIAS_FROM_KEY, BIAS_FROM_KEY, 1, 0, 0, 0, 1,
     "GPT2LMHeadModel", "gpt2"},
    {"llama", "Llama: RMSNorm, rotary positions (llama3 scaling), SwiGLU, grouped K/V heads",
     NORM_RMSNORM, POS_ROTARY, FFN_ACT_SWIGLU, BIAS_FROM_KEY, BIAS_FROM_KEY, 0, 1, 0, 1, 1,
     "LlamaForCausalLM", "llama"},
    {"qwen2", "Qwen2: llama with q/k/v biases (never on the output projection)",
     NORM_RMSNORM, POS_ROTARY, FFN_ACT_SWIGLU, BIAS_ALWAYS, BIAS_NEVER, 0, 1, 0, 1, 1,
     "Qwen2ForCausalLM", "qwen2"},
    {"qwen3", "Qwen3: llama with a per-head RMSNorm of q and k before the rotation",
     NORM_RMSNORM, POS_ROTARY, FFN_ACT_SWIGLU, BIAS_FROM_KEY, BIAS_FROM_KEY, 0, 1, 1, 1, 1,
     "Qwen3ForCausalLM", "qwen3"},
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
