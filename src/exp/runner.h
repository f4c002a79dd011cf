// runner.h: one arm and seed as a child `routelab train/distill/eval/probe` process in
// OUT/ARM/seedS. A finished run (result.json) is skipped, an interrupted training resumes from
// its checkpoint, and run.signature records what the run was so that a reused result made with
// other settings is flagged.
#ifndef ROUTELAB_RUNNER_H
#define ROUTELAB_RUNNER_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "progress.h"
#include "recipes.h"
#include "spawn.h"

// What every run of one repro command shares.
typedef struct {
    const char *self;        // the routelab executable
    const char *out;         // OUT: runs go to OUT/ARM/seedS
    const Scale *scale;
    const char *const *overrides;  // --key=value entries added to training runs
    size_t n_overrides;
    int distill_steps;
    // The llm-* recipes: their scale (the scale's llm protocol as keys, the pretrained model's
    // layer count as n_layer), the model (--model; NULL: the one the sweep exports) and the data
    // keys every llm run gets (the scale's llm_data, or --data).
    const Scale *llm_scale;
    const char *model;
    const char *llm_data;
    const char *llm_data_path;  // --data's value, given as one argument (it may hold a space)
    Progress *progress;         // the sweep's progress lines (NULL: none)
} RunContext;

// The scale an arm runs at: llm_scale for the llm recipes' arms, else scale.
const Scale *arm_scale(const RunContext *c, const Arm *arm);
// Where arm's source model is for seed (OUT/FROM/seedS, seed 0 for a single source, the
// exported directory in it, or --model for the exported one); "" for an arm without a source.
void arm_source(char *out, size_t cap, const RunContext *c, const Arm *arm, int seed);

// The child's argument list for arm at seed (resume: continue the checkpoint in the run's
// directory). Pure: touches no file, so tests can call it.
void arm_command(ArgList *cmd, const RunContext *c, const Arm *arm, int seed, int resume);
// The run.signature text: what the run is, without the binary's path. Its format is stored in
// finished runs and must not change, or they would all be flagged as made with other settings.
void arm_signature(char *out, size_t cap, const RunContext *c, const Arm *arm, int seed);
// Runs one arm and seed (or skips it when finished); returns the parsed result (caller frees),
// or NULL when the run failed (a warning names its run.log). A training stopped before its last
// step (Ctrl-C, time limit) is fatal: re-running the command resumes it.
cJSON *run_arm(const RunContext *c, const Arm *arm, int seed);

#endif
