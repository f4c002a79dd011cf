// family.h: the model-family table. A family row says what a block is made of: the norm, the
// positions, the FFN a block gets by default, the attention options and the head. The model's
// forward and backward read the row at each of those points (norm_forward/norm_backward, the
// position step, ...), so a new family (llama, qwen2, qwen3) is a new row plus the ops it
// needs, not a new copy of the skeleton:
//   x = embed(tokens) [+ learned positions]
//   block: x += o(attn(rot?(qk_norm?(q)), rot?(qk_norm?(k)), v)) on norm1(x);  x += ffn(norm2(x))
//   logits = norm_f(x) head^T
#ifndef ROUTELAB_FAMILY_H
#define ROUTELAB_FAMILY_H

#include "ffn.h"

typedef enum { NORM_LAYERNORM } NormKind;    // LayerNorm with weight and bias (eps: ln_eps)
typedef enum { POS_LEARNED } PosKind;        // a learned (seq_len, d_model) table added to x

typedef struct {
    const char *name;
    const char *what;        // one line for --help and the README
    NormKind norm;           // before attention, before the FFN, and the final norm
    PosKind positions;
    FfnAct ffn;              // the family's own FFN: what the key ffn=dense means
    int attn_bias_allowed;   // the key attn_bias may add q/k/v/o biases
    int kv_heads_grouped;    // grouped K/V heads (n_kv_head < n_head): 0 for gpt
    int qk_norm;             // per-head norm of q and k before the rotation: 0 for gpt
    int head_tie_allowed;    // the key tie_embeddings may tie the LM head to wte
} ModelFamily;

// The row named `name`; dies naming the key and the known families otherwise.
const ModelFamily *family_find(const char *name);
// The family table, for --help and listings.
const ModelFamily *family_table(int *count);

#endif
