// profile.h: per-operation wall-clock accounting for `routelab bench`. Off unless enabled;
// then each PROFILED(op, statement) adds the statement's time to its operation's total.
#ifndef ROUTELAB_PROFILE_H
#define ROUTELAB_PROFILE_H
#include "common.h"

typedef enum {
    OP_MATMUL, OP_ATTENTION, OP_LAYERNORM, OP_GELU, OP_ELEMENTWISE, OP_LOSS, OP_OPTIMIZER,
    OP_COUNT
} ProfileOp;

extern int profile_enabled;
extern double profile_seconds[OP_COUNT];
const char *profile_op_name(ProfileOp op);

#define PROFILED(op, stmt)                                              \
    do {                                                                \
        double t0_ = profile_enabled ? now_seconds() : 0.0;             \
        stmt;                                                           \
        if (profile_enabled) profile_seconds[op] += now_seconds() - t0_; \
    } while (0)

#endif
