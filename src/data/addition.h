// addition.h: digit addition with carry, generated in process. An example is
//   a_{n-1} .. a_0  +  b_{n-1} .. b_0  =  s_0 s_1 .. s_n        (answer LSD first, the default)
// or the answer most-significant digit first (add_order=msd); operands are zero-padded to n
// digits, the answer to n+1. Tokens: digits 0-9, 10 '+', 11 '=', 12 padding (vocab >= 13).
// Inputs are the example's first T tokens, targets the next tokens; only the n+1 answer digits
// are scored (IGNORE_INDEX elsewhere). Train and test are disjoint: the pair (a, b) belongs to
// the test split iff hash(a, b) mod 10 == 0, whatever the seed; each split's stream draws
// uniform pairs and keeps those of its split. Deterministic by (seed, index).
#ifndef ROUTELAB_ADDITION_H
#define ROUTELAB_ADDITION_H
#include <stdint.h>

enum { ADD_PLUS = 10, ADD_EQUALS = 11, ADD_PAD = 12, ADD_VOCAB = 13 };

typedef struct {
    int seq_len;     // T
    int vocab_size;  // V (>= 13)
    int digits;      // n (1..9)
    int msd_first;   // answer order
} AdditionSpec;

// Dies with a message naming the key when T or V cannot hold an example.
void addition_validate(const AdditionSpec *spec);
// Example `index` of split `test` (0/1) of stream `seed`: inputs and targets (T each); returns
// 1 when the sum needs at least one carry.
int addition_example(const AdditionSpec *spec, uint64_t seed, int test, uint64_t index,
                     int32_t *inputs, int32_t *targets);

#endif
