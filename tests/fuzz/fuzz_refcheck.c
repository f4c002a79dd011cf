// fuzz_refcheck.c: reference-set index.json (refcheck_check_index: the cJSON-level checks of
// every field refcheck's cases use, the case configs and their parameter tables; no array file
// is read and no model is run).
#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "refcheck.h"

static void *fuzz_json_alloc(size_t n) { return xrealloc(NULL, n); }  // tracked, freed on a jump

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int hooked;
    if (!hooked) {
        cJSON_Hooks hooks = {fuzz_json_alloc, xfree};
        cJSON_InitHooks(&hooks);
        hooked = 1;
    }
    FUZZ_BEGIN;
    char *text = fuzz_text(data, size);
    refcheck_check_index(text, "fuzz");
    xfree(text);
    FUZZ_END;
    return 0;
}
