// check.h: the tiny test harness every tests/test_*.c uses. Each CHECK counts one pass or one
// failure; check_summary() prints the line "N passed, N failed" that tests/run.sh sums up.
#ifndef ROUTELAB_CHECK_H
#define ROUTELAB_CHECK_H
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int check_passed, check_failed, check_skipped;

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

// Runs fn(arg) in a forked child with its stderr captured (fatal() exits, so error paths are
// tested in a child). Returns 1 when the child exits non-zero with a one-line message that
// mentions `needle`; otherwise prints what the child said and returns 0.
static inline int check_child_fails(void (*fn)(const void *), const void *arg, const char *needle) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 2);
        fn(arg);
        _exit(0);  // returned: the error was not raised
    }
    close(pipefd[1]);
    char msg[4096];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof msg - 1 && (r = read(pipefd[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)r;
    msg[len] = 0;
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int failed = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    int one_line = len > 0 && strchr(msg, '\n') == msg + len - 1;
    int named = strstr(msg, needle) != NULL;
    if (!(failed && one_line && named))
        printf("  child (status %d) said: %s%s", status, msg, one_line ? "" : "\n");
    return failed && one_line && named;
}

// A check that cannot run on this machine: named on its own "SKIP: ..." line (tests/run.sh
// lists those above its total) and counted as skipped, never as passed.
#define SKIP(...)                                                                      \
    do {                                                                               \
        check_skipped++;                                                               \
        printf("SKIP: ");                                                              \
        printf(__VA_ARGS__);                                                           \
        printf("\n");                                                                  \
    } while (0)

static inline int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed, %d skipped\n", suite, check_passed, check_failed,
           check_skipped);
    return check_failed ? 1 : 0;
}
#endif
