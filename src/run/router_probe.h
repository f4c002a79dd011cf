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

// The same router as a multi-label probe (the ceiling of `gateinfo`): trained with binary
// cross-entropy to predict a 0/1 label per (query i, key j), from the same frozen features.
typedef struct {
    const float *feat;           // (n_examples, T, D)
    const unsigned char *label;  // (n_examples, T, T): 0 or 1; 2 where (i, j) is not a sample
    size_t n_examples;
    int T, D;
} LabelSet;

// Mean BCE with logits over the labelled pairs of examples[0..n); with gq, gk (D, r) non-NULL
// also its gradient with respect to Wq, Wk (D, r) (overwritten).
double router_label_loss(float *gq, float *gk, const float *Wq, const float *Wk, const LabelSet *s,
                         int r, const size_t *examples, size_t n);
// Wq, Wk (D, rank) out: drawn from o->seed, then o->steps Adam steps on minibatches of
// o->batch_examples examples (drawn with replacement).
void router_label_fit(float *Wq, float *Wk, const LabelSet *train, const RouterOpts *o);
// S (T, T) = (H Wq)(H Wk)^T / sqrt(r) for one example H (T, D).
void router_scores(float *S, const float *Wq, const float *Wk, const float *H, int T, int D, int r);

#endif
