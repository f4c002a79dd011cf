// check.h: the tiny test harness every tests/test_*.c uses. Each CHECK counts one pass or one
// failure; check_summary() prints the line "N passed, N failed" that tests/run.sh sums up.
#ifndef ROUTELAB_CHECK_H
#define ROUTELAB_CHECK_H
#include <math.h>
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (cond) {                                                      \
            check_passed++;                                              \
        } else {                                                         \
            check_failed++;                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                  \
            printf(__VA_ARGS__);                                         \
            printf("\n");                                                \
        }                                                                \
    } while (0)

#define CHECK_CLOSE(a, b, tol, what)                                                         \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: %.9g vs %.9g (tol %.3g)", what,    \
          (double)(a), (double)(b), (double)(tol))

static inline int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed ? 1 : 0;
}
#endif
