// fuzz_common.h: shared by the libFuzzer targets tests/fuzz/fuzz_<name>.c (built by `make
// fuzz-build` with clang -fsanitize=fuzzer,address,undefined into build-fuzz/).
// A parser reports bad input with fatal(); here fatal() longjmps back to the target (see
// fatal_set_jump in common.h), so a one-line error is the expected outcome and only crashes,
// undefined behaviour and leaks are findings. The blocks a parser allocated before it jumped
// out are freed by fatal_free_tracked(), so LeakSanitizer stays on.
// ROUTELAB_FUZZ_VERBOSE=1 prints the errors (to see why an input is rejected).
#ifndef ROUTELAB_FUZZ_COMMON_H
#define ROUTELAB_FUZZ_COMMON_H
#include <cjson/cJSON.h>
#include <omp.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static jmp_buf fuzz_env;

static int fuzz_quiet(void) {
    static int quiet = -1;
    if (quiet < 0) quiet = !getenv("ROUTELAB_FUZZ_VERBOSE");
    return quiet;
}

static void *fuzz_json_alloc(size_t n) { return xrealloc(NULL, n); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    omp_set_num_threads(1);  // the allocation tracking of fatal_set_jump is single-threaded
    // cJSON allocates through the tracked allocator, so a tree a parser held when it jumped out
    // is freed too (cJSON_Delete frees with xfree, which untracks)
    cJSON_Hooks hooks = {fuzz_json_alloc, xfree};
    cJSON_InitHooks(&hooks);
    return 0;
}

// FUZZ_BEGIN: from here on fatal() comes back to the FUZZ_BEGIN line and the target returns 0.
// Locals assigned after it must not be used after a jump (they are not volatile).
#define FUZZ_BEGIN                                 \
    do {                                           \
        if (setjmp(fuzz_env)) {                    \
            fatal_free_tracked();                  \
            fatal_set_jump(NULL, 0);               \
            return 0;                              \
        }                                          \
        fatal_set_jump(&fuzz_env, fuzz_quiet());   \
    } while (0)
// FUZZ_END: the input was accepted; the target has freed what it got (else a leak report).
#define FUZZ_END fatal_set_jump(NULL, 0)

// A NUL-terminated copy of the input, for text parsers (caller xfrees; tracked).
static inline char *fuzz_text(const uint8_t *data, size_t size) {
    char *t = xcalloc(size + 1, 1);
    memcpy(t, data, size);
    return t;
}

#endif
