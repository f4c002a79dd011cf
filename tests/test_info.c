// test_info.c: the entropy and mutual-information estimators of src/core/info.c against values
// worked out here from their definitions, and the Miller-Madow correction's purpose: an
// independent pair measured on few samples reads about 0 bits where the plug-in estimate reads
// about 1 / (2 N ln 2).
#include <math.h>

#include "check.h"
#include "common.h"
#include "info.h"

static void test_exact_values(void) {
    double four[4] = {1, 1, 1, 1};
    CHECK_CLOSE(entropy_bits(four, 4, 0), 2.0, 1e-12, "H of 4 equal bins");
    CHECK_CLOSE(entropy_bits(four, 4, 1), 2.0 + 3.0 / (2 * 4 * log(2.0)), 1e-12,
                "Miller-Madow H of 4 equal bins: + (m - 1) / (2 N ln 2)");
    double empty[3] = {0, 0, 0};
    CHECK(entropy_bits(empty, 3, 1) == 0.0, "H of no samples is 0");
    double same[4] = {5, 0, 0, 5};  // X = Y, uniform binary
    CHECK_CLOSE(mutual_info_bits(same, 2, 2, 0), 1.0, 1e-12, "I(X;X) of a fair coin is 1 bit");
    CHECK_CLOSE(mutual_info_bits(same, 2, 2, 1), entropy_bits((double[]){5, 5}, 2, 1), 1e-12,
                "corrected I(X;X) equals corrected H(X)");
    // I = sum p(x,y) log2 p(x,y) / (p(x) p(y)), straight from the definition
    double j[4] = {30, 10, 10, 50}, N = 100, px[2] = {0.4, 0.6}, py[2] = {0.4, 0.6}, mi = 0.0;
    for (int x = 0; x < 2; x++)
        for (int y = 0; y < 2; y++) mi += j[x * 2 + y] / N * log2(j[x * 2 + y] / N / (px[x] * py[y]));
    CHECK_CLOSE(mutual_info_bits(j, 2, 2, 0), mi, 1e-12, "plug-in I of a 2x2 table");
    CHECK_CLOSE(mutual_info_bits(j, 2, 2, 1), mi - 1.0 / (2 * N * log(2.0)), 1e-12,
                "corrected I of a full 2x2 table: plug-in - 1 / (2 N ln 2)");
    double indep[6] = {10, 20, 30, 20, 40, 60};  // rows proportional: exactly independent
    CHECK_CLOSE(mutual_info_bits(indep, 2, 3, 0), 0.0, 1e-12, "plug-in I of a product table");
}

static void test_bias(void) {
    Rng r;
    rng_seed(&r, 11);
    const int reps = 400, n = 100;
    double plug = 0.0, corr = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        double t[4] = {0};
        for (int s = 0; s < n; s++) t[(rng_uniform(&r) < 0.3f) * 2 + (rng_uniform(&r) < 0.5f)] += 1;
        plug += mutual_info_bits(t, 2, 2, 0) / reps;
        corr += mutual_info_bits(t, 2, 2, 1) / reps;
    }
    double expect = 1.0 / (2 * n * log(2.0));
    CHECK(plug > 0.6 * expect && plug < 1.4 * expect,
          "plug-in I of independent pairs: mean %.5f bits, expected about %.5f", plug, expect);
    CHECK(fabs(corr) < 0.25 * expect, "corrected I of independent pairs: mean %.5f bits, not ~0", corr);
}

int main(void) {
    test_exact_values();
    test_bias();
    return check_summary("info");
}
