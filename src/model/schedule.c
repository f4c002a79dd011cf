// schedule.c: see schedule.h.
#include "schedule.h"

#include "common.h"

int routing_schedule_modes(AttnMode *out, const AttnMode *configured, int n_layer, int step,
                           int steps, float dense_fraction, int anneal, uint64_t seed) {
    uint64_t key = seed ^ 0x5C4ED01Eull;  // its own stream: no other draw uses it
    int dense = dense_fraction > 0 && hash_uniform(key, 2 * (uint64_t)step) < dense_fraction;
    float p_gate = steps > 0 ? (float)(step + 1) / (float)steps : 1.0f;
    int gate = anneal && hash_uniform(key, 2 * (uint64_t)step + 1) < p_gate;
    int changed = 0;
    for (int l = 0; l < n_layer; l++) {
        out[l] = dense ? ATTN_DENSE : gate && configured[l] == ATTN_STOCHASTIC ? ATTN_HARD : configured[l];
        changed |= out[l] != configured[l];
    }
    return changed;
}
