// mqar.c: see mqar.h. Layout of one example, following Zoology's _mqar (associative_recall.py):
//   inputs  [0, 2N):  k1 v1 k2 v2 ... kN vN
//   inputs  [2N, T):  filler, except query i at position 2N + 2*g_i holding key k_i
//   targets [t]:      v_i at t = 2N + 2*g_i, IGNORE_INDEX (-1) everywhere else
// The gaps g_i are N distinct draws from {0 .. S-1}, S = (T - 2N) / 2, with weight
// (g+1)^(a-1), so most queries sit close to the prefix. As in Zoology, the value is only the
// target of the query position: the input after a query key is filler, not the value.
#include "mqar.h"

#include <math.h>

#include "common.h"

// The targets' "not scored" marker; the same number as dataset.h's IGNORE_INDEX.
#define MQAR_IGNORE (-1)

void mqar_validate(const MqarSpec *spec) {
    int T = spec->seq_len, V = spec->vocab_size, N = spec->pairs;
    if (V < 4)
        fatal("vocab_size=%d is too small for MQAR: keys come from [1, V/2) and values from "
              "[V/2, V), so V >= 4 is needed (pass --vocab_size=64 or more)", V);
    if (N < 1)
        fatal("mqar_pairs=%d: MQAR needs at least 1 key-value pair (pass --mqar_pairs=4)", N);
    int max_keys = V / 2 - 1;  // keys are drawn without replacement from [1, V/2)
    if (N > max_keys)
        fatal("mqar_pairs=%d needs %d distinct keys but vocab_size=%d only has %d key tokens "
              "[1, %d): pass --vocab_size=%d or more, or fewer --mqar_pairs",
              N, N, V, max_keys, V / 2, 2 * (N + 1));
    // 2N prefix tokens, then N distinct even slots (query key + the slot its answer is read at)
    if (T < 4 * N)
        fatal("seq_len=%d is too short for mqar_pairs=%d: the %d-token key-value prefix plus %d "
              "query slots need seq_len >= 4*pairs = %d (pass --seq_len=%d or fewer "
              "--mqar_pairs)", T, N, 2 * N, 2 * N, 4 * N, 4 * N);
    if (!(spec->alpha > 0.0f) || !isfinite(spec->alpha))
        fatal("mqar_alpha=%g: the query-gap power law p(g) ~ g^(a-1) needs a finite a > 0 "
              "(Zoology uses 0.01; 1 gives uniform gaps)", (double)spec->alpha);
    if (spec->random_filler != 0 && spec->random_filler != 1)
        fatal("mqar_random_filler=%d: expected 0 (filler token 0) or 1 (random filler tokens)",
              spec->random_filler);
}

static double uniform_double(Rng *rng) {  // [0, 1) with 53 bits
    return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

// n distinct tokens from [lo, hi), in uniformly random order. Floyd's algorithm picks the set
// with exactly n draws; a Fisher-Yates pass then randomises the order.
// taken is (hi) bytes, all zero on entry; it is left marking the chosen tokens.
static void sample_distinct(Rng *rng, int lo, int hi, int n, int32_t *out, unsigned char *taken) {
    int range = hi - lo;
    for (int i = 0, j = range - n; j < range; i++, j++) {
        int t = lo + (int)rng_below(rng, (uint64_t)j + 1);
        if (taken[t]) t = lo + j;  // lo + j cannot have been taken yet
        taken[t] = 1;
        out[i] = t;
    }
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint64_t)i + 1);
        int32_t tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
}

// n distinct gaps from {0 .. slots-1}, one at a time, each with probability proportional to
// its weight among those not yet drawn (what numpy's choice(replace=False, p=...) aims at).
// weight is (slots) doubles and is consumed (drawn gaps are zeroed).
static void sample_gaps(Rng *rng, double *weight, int slots, int n, int32_t *gaps) {
    double total = 0.0;
    for (int g = 0; g < slots; g++) total += weight[g];
    for (int i = 0; i < n; i++) {
        double r = uniform_double(rng) * total;
        int pick = -1;
        for (int g = 0; g < slots; g++) {
            if (weight[g] == 0.0) continue;
            pick = g;  // the last live slot absorbs any rounding at the top end
            if (r < weight[g]) break;
            r -= weight[g];
        }
        ASSERT(pick >= 0);
        total -= weight[pick];
        weight[pick] = 0.0;
        gaps[i] = pick;
    }
}

void mqar_example(const MqarSpec *spec, uint64_t seed, uint64_t index, int32_t *inputs,
                  int32_t *targets) {
    // inputs, targets are (T)
    int T = spec->seq_len, V = spec->vocab_size, N = spec->pairs;
    int half = V / 2, prefix = 2 * N, slots = (T - prefix) / 2;
    Rng rng;
    rng_seed(&rng, hash64(seed, index));

    // One scratch block per call keeps this safe to call from parallel threads.
    int32_t *keys = xcalloc((size_t)N * 3, sizeof(int32_t));  // (N) keys, (N) values, (N) gaps
    int32_t *values = keys + N, *gaps = keys + 2 * N;
    unsigned char *taken = xcalloc((size_t)V, 1);  // (V) token chosen as a key or value
    double *weight = xcalloc((size_t)slots, sizeof(double));

    sample_distinct(&rng, 1, half, N, keys, taken);
    sample_distinct(&rng, half, V, N, values, taken);
    for (int g = 0; g < slots; g++) weight[g] = pow((double)(g + 1), (double)spec->alpha - 1.0);
    sample_gaps(&rng, weight, slots, N, gaps);

    for (int t = 0; t < T; t++) {
        inputs[t] = 0;
        targets[t] = MQAR_IGNORE;
    }
    for (int i = 0; i < N; i++) {
        inputs[2 * i] = keys[i];
        inputs[2 * i + 1] = values[i];
        int q = prefix + 2 * gaps[i];
        inputs[q] = keys[i];
        targets[q] = values[i];
    }
    if (spec->random_filler) {
        // Zoology draws filler from all of [0, V), so a filler token can repeat one of this
        // example's keys and look like an extra, unlabelled query. Drawing from [1, V) minus
        // the keys keeps every key's only occurrences in the prefix and at its query.
        for (int t = prefix; t < T; t++) {
            if (targets[t] != MQAR_IGNORE) continue;
            int32_t tok;
            do tok = 1 + (int32_t)rng_below(&rng, (uint64_t)V - 1);
            while (tok < half && taken[tok]);
            inputs[t] = tok;
        }
    }
    xfree(weight);
    xfree(taken);
    xfree(keys);
}
