// family.h: the model-family table. A family row says what a block is made of: the norm, the
// positions, the FFN a block gets by default, which biases exist, the attention options and
// the head. The model's forward and backward read the row at each of those points
// (norm_forward/norm_backward, the position step, the q/k norm, ...), so a family is a row plus
// the ops its enum values name, not a copy of the skeleton:
//   x = embed(tokens) [+ learned positions]
//   block: x += o(attn(rot?(qk_norm?(q)), rot?(qk_norm?(k)), v)) on norm1(x);  x += ffn(norm2(x))
//   logits = norm_f(x) head^T
// The Hugging Face architecture of each row (hf_arch) is what the loader (run/hf_model.c)
// accepts and what `routelab export` writes.
#ifndef ROUTELAB_FAMILY_H
#define ROUTELAB_FAMILY_H

#include "ffn.h"

typedef enum {
    NORM_LAYERNORM,  // (x - mean) / sqrt(var + eps) * w + b
    NORM_RMSNORM,    // x / sqrt(mean(x^2) + eps) * w, no bias (Llama, Qwen)
} NormKind;
typedef enum {
    POS_LEARNED,     // a learned (seq_len, d_model) table added to x
    POS_ROTARY,      // q and k rotated by position (rotate-half pairs i, i + head_dim/2)
} PosKind;
typedef enum {
    BIAS_FROM_KEY,   // present when the key (attn_bias) says so
    BIAS_ALWAYS,     // always present (qwen2's q/k/v)
    BIAS_NEVER,      // never present (qwen2's output projection)
} BiasRule;

typedef struct {
    const char *name;
    const char *what;        // one line for --help and the README
    NormKind norm;           // before attention, before the FFN, and the final norm
    PosKind positions;
    FfnAct ffn;              // the family's own FFN: what the key ffn=dense means
    BiasRule qkv_bias, o_bias;
    int mlp_bias;            // FFN biases when the key mlp_bias is -1
    int kv_heads_grouped;    // n_kv_head may be below n_head
    int qk_norm;             // per-head RMSNorm of q and k before the rotation (weights: head_dim)
    int head_dim_free;       // head_dim may differ from d_model / n_head
    int head_tie_allowed;    // the key tie_embeddings may tie the LM head to wte
    const char *hf_arch;     // Hugging Face "architectures" entry
    const char *hf_model_type;
} ModelFamily;

// The row named `name`; dies naming the key and the known families otherwise.
const ModelFamily *family_find(const char *name);
// The family table, for --help, listings and the Hugging Face loader.
const ModelFamily *family_table(int *count);

#endif
