// fuzz_hf_config.c: a Hugging Face config.json (hf_parse_config: the architecture, sizes, rope
// forms, biases, activation; then config_resolve), the model plan and parameter table it
// implies (no tensors allocated), and the name map of the loader over that table.
#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "hf_model.h"
#include "model.h"

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
    Config c;
    hf_parse_config(text, size, "fuzz/config.json", &c);
    ModelPlan plan;
    ParamTable t;
    model_plan_resolve(&plan, &c);
    param_table_build(&t, &c, &plan);
    param_table_free(&t);
    xfree(text);
    FUZZ_END;
    return 0;
}
