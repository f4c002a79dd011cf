// fuzz_refcheck.c: reference-set index.json (refcheck_check_index: the cJSON-level checks of
// every field refcheck's cases use, the case configs and their parameter tables; no array file
// is read and no model is run).
#include "fuzz_common.h"
#include "refcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    char *text = fuzz_text(data, size);
    refcheck_check_index(text, "fuzz");
    xfree(text);
    FUZZ_END;
    return 0;
}
