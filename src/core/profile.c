// profile.c: see profile.h.
#include "profile.h"

int profile_enabled;
double profile_seconds[OP_COUNT];

const char *profile_op_name(ProfileOp op) {
    static const char *names[OP_COUNT] = {"matmul", "attention (scores, masks, softmax, AV)",
                                          "layernorm", "gelu", "residual/dropout",
                                          "loss (softmax + cross-entropy)", "optimizer (clip + AdamW)"};
    return op < OP_COUNT ? names[op] : "?";
}
