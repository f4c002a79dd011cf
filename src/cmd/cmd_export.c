// cmd_export.c: `routelab export`: a routelab checkpoint as a Hugging Face model directory
// (hf_model.h), so the models routelab trains open in PyTorch / transformers, and load back
// into routelab exactly (export -> eval gives the same loss bit for bit).
#include <stdio.h>

#include "checkpoint.h"
#include "common.h"
#include "hf_model.h"
#include "json_out.h"
#include "options.h"

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL;
    int plain = 0, json = 0;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "run directory, checkpoint file or Hugging Face directory", 0, 0},
        {"out", OPT_STRING, &out, NULL, "the Hugging Face directory to write", 0, 0},
        {"plain", OPT_FLAG, &plain, NULL, "only config.json and model.safetensors (no gates or routelab keys)", 0, 0},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    OptSpec os = {.cmd = "export", .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab export --ckpt=RUNDIR|FILE --out=DIR [--plain] [--json]\n"
               "  Writes DIR/config.json and DIR/model.safetensors (F32) as Hugging Face's\n"
               "  LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM / GPT2LMHeadModel\n"
               "  (family gpt: GPT-2 with gelu_new or gelu; absent biases are exact zeros), and\n"
               "  DIR/routelab.safetensors with the gates and every routelab key, so routelab\n"
               "  reloads the same routed model. transformers runs the dense model; a mixture\n"
               "  of experts or another FFN than the family's has no equivalent (refused).\n"
               "  --plain leaves routelab.safetensors out: the directory is what a downloaded\n"
               "  model would be (gates, if any, are dropped with a warning).\n");
        return 0;
    }
    if (!ckpt || !out) fatal("export: give --ckpt=RUNDIR and --out=DIR");
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, ckpt);
    Model m;
    checkpoint_build_model(&m, path);
    int gated = 0;
    for (int i = 0; i < m.table.count; i++) gated |= m.table.info[i].role == ROLE_GATE;
    if (plain && gated) warnf("export --plain: %s has gates; they are left out (export without --plain keeps them)", path);
    hf_export(&m, out, plain);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddStringToObject(j, "family", m.plan.family->name);
        cJSON_AddStringToObject(j, "architecture", m.plan.family->hf_arch);
        cJSON_AddBoolToObject(j, "plain", plain);
        json_print_line(stdout, j);
        cJSON_Delete(j);
    } else {
        printf("exported %s (%s, %s) to %s\n", path, m.plan.family->name, m.plan.family->hf_arch, out);
    }
    model_free(&m);
    return 0;
}
