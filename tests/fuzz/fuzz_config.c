// fuzz_config.c: INI config text (config_parse_ini, what config_load_ini and the checkpoint's
// embedded config go through), then config_resolve and the model plans that parse the per-layer
// and per-module string keys, and the parameter table they imply (no tensors allocated).
#include "fuzz_common.h"
#include "config.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    char *text = fuzz_text(data, size);
    Config c;
    config_defaults(&c);
    config_parse_ini(&c, text, "fuzz.ini");
    config_resolve(&c);
    ModelPlan plan;
    ParamTable t;
    model_plan_resolve(&plan, &c);
    param_table_build(&t, &c, &plan);
    char *again = config_to_string(&c);  // the text a checkpoint embeds
    free(again);
    param_table_free(&t);
    xfree(text);
    FUZZ_END;
    return 0;
}
