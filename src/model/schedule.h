// schedule.h: routing that changes over training, two of the paper's open questions ("annealing
// mask noise or mixing dense and sparse forward passes remain untested"):
//   dense_fraction = p   each step runs every layer dense with probability p, else as configured
//                        (mixing dense and sparse forward passes);
//   stochastic_anneal=1  at step t of T (0-based), the stochastic layers use the gate's own top-k
//                        (attn=hard, the gate's gradient as gate_grad says) with probability
//                        (t + 1) / T, else their random mask: the mask noise anneals away.
// The draws are a counter hash of (seed, step), so a resumed run makes the same choices. The
// plan's configured modes are what evaluations and checkpoints see.
#ifndef ROUTELAB_SCHEDULE_H
#define ROUTELAB_SCHEDULE_H
#include <stdint.h>

#include "attention.h"

// This step's modes into out (n_layer entries); returns 1 when they differ from configured.
int routing_schedule_modes(AttnMode *out, const AttnMode *configured, int n_layer, int step,
                           int steps, float dense_fraction, int anneal, uint64_t seed);

#endif
