// fuzz_hf_config.c: a Hugging Face config.json (hf_parse_config: the architecture, sizes, rope
// forms, biases, activation; then config_resolve), the model plan and parameter table it
// implies (no tensors allocated), and the name map of the loader over that table.
#include "fuzz_common.h"
#include "hf_model.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
