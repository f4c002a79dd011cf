// router_probe.h: a learned low-rank bilinear router on frozen representations, the probe of
// "When Does Content-Based Routing Work?": for a query position q it scores every earlier
// position j by
//   s_j = (h_q W_q)(h_j W_k)^T / sqrt(r),   W_q, W_k (D, r)   (the form of routelab's gates)
// and is trained with cross-entropy over j < q to pick the position of the queried key, on
// training examples; precision is the share of test queries whose top-1 is that position.
// Adam (lr, betas 0.9/0.999), minibatches of examples, a fixed seed: deterministic.
#ifndef ROUTELAB_ROUTER_PROBE_H
#define ROUTELAB_ROUTER_PROBE_H
#include <stddef.h>
#include <stdint.h>

// Queries over a set of examples: features (n_examples, T, D); query i sits at position
// query_pos[i] of example query_ex[i] and its key at key_pos[i] < query_pos[i].
typedef struct {
    const float *feat;
    const int *query_ex, *query_pos, *key_pos;
    size_t n_examples, n_queries;
    int T, D;
} ProbeSet;

typedef struct {
    int rank, steps, batch_examples;
    float lr;
    uint64_t seed;
} RouterOpts;

// Trains a router on `train` and returns its top-1 precision on `test`.
double router_probe_fit(const ProbeSet *train, const ProbeSet *test, const RouterOpts *o);
// The precision of always guessing uniformly among the q earlier positions: mean of 1/q.
double router_probe_chance(const ProbeSet *s);

#endif
