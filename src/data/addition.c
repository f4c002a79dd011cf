// addition.c: see addition.h.
#include "addition.h"

#include "common.h"

void addition_validate(const AdditionSpec *s) {
    if (s->digits < 1 || s->digits > 9) fatal("key 'add_digits' must be in 1..9, got %d", s->digits);
    int need = 3 * s->digits + 2;  // the last answer digit is the target of position 3n+1
    if (s->seq_len < need)
        fatal("addition with %d digits needs seq_len >= %d (3 * digits + 2), got %d: pass "
              "--seq_len=%d", s->digits, need, s->seq_len, need);
    if (s->vocab_size < ADD_VOCAB)
        fatal("addition needs vocab_size >= %d (digits, '+', '=', padding), got %d: pass "
              "--vocab_size=%d", ADD_VOCAB, s->vocab_size, ADD_VOCAB);
}

static int is_test_pair(uint64_t a, uint64_t b) { return hash64(0xADD7E57ull, a * 1000000000ull + b) % 10 == 0; }

int addition_example(const AdditionSpec *s, uint64_t seed, int test, uint64_t index,
                     int32_t *inputs, int32_t *targets) {
    int n = s->digits, T = s->seq_len;
    uint64_t range = 1;
    for (int i = 0; i < n; i++) range *= 10;
    uint64_t a = 0, b = 0;
    for (uint64_t attempt = 0;; attempt++) {  // ~10 tries for test, ~1.1 for train
        uint64_t h = hash64(hash64(seed, index), attempt);
        a = h % range, b = (h / range) % range;
        if (is_test_pair(a, b) == test) break;
    }
    int ex[3 * 9 + 4], len = 0, da[9], db[9], sum[10], carry = 0, any_carry = 0;
    for (int i = 0; i < n; i++) da[i] = (int)(a % 10), a /= 10, db[i] = (int)(b % 10), b /= 10;
    for (int i = 0; i < n; i++) {  // digit i is 10^i
        int t = da[i] + db[i] + carry;
        sum[i] = t % 10, carry = t / 10, any_carry |= carry;
    }
    sum[n] = carry;
    for (int i = n - 1; i >= 0; i--) ex[len++] = da[i];
    ex[len++] = ADD_PLUS;
    for (int i = n - 1; i >= 0; i--) ex[len++] = db[i];
    ex[len++] = ADD_EQUALS;
    int first_answer = len;
    for (int i = 0; i <= n; i++) ex[len++] = s->msd_first ? sum[n - i] : sum[i];
    for (int t = 0; t < T; t++) {
        inputs[t] = t < len ? ex[t] : ADD_PAD;
        int next = t + 1;
        targets[t] = next >= first_answer && next < len ? ex[next] : IGNORE_INDEX;
    }
    return any_carry;
}
