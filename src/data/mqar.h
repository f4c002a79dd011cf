// mqar.h: Zoology's multi-query associative recall task, generated in process (no download).
// Keys without replacement from [1, V/2), values from [V/2, V); the first 2N tokens are
// k1 v1 ... kN vN; every key is queried once at an even offset in the rest of the sequence,
// query gaps drawn without replacement from p(g) ~ g^(a-1); filler 0 (or random tokens);
// the label (target) at a query position is the paired value, IGNORE_INDEX elsewhere.
#ifndef ROUTELAB_MQAR_H
#define ROUTELAB_MQAR_H
#include <stdint.h>

typedef struct {
    int seq_len;       // T: tokens per example (inputs); the example has T+1 tokens
    int vocab_size;    // V
    int pairs;         // N
    int random_filler; // 0: filler token 0; 1: uniform random tokens
    float alpha;       // a (0.01 in Zoology)
} MqarSpec;

// Checks the spec fits (2N + 2N <= T, N < V/2 keys ...); dies with a clear message if not.
void mqar_validate(const MqarSpec *spec);
// Example `index` of the stream `seed`: inputs and targets, T each. Deterministic.
void mqar_example(const MqarSpec *spec, uint64_t seed, uint64_t index, int32_t *inputs,
                  int32_t *targets);

#endif
