// checkpoint.h: self-describing checkpoints. Layout (little-endian):
//   header   256 int32: [0] magic 20261123, [1] version 1, [2] config text bytes,
//            [3] parameter tensors, [4] total floats (low 31 bits), [5] (high bits),
//            [6] 1 if optimizer state follows, [7] training step, [8] tokenizer-free flags (0)
//   config   the full config as INI text (the same as config.ini)
//   params   total floats
//   then, if [6]: adam_m, adam_v (total floats each), adam_t (int64 per tensor)
//   state    TrainState (below), packed as int64/uint64 fields
// Written to PATH.tmp and renamed, so a crash never leaves a half-written checkpoint.
#ifndef ROUTELAB_CHECKPOINT_H
#define ROUTELAB_CHECKPOINT_H
#include <stdint.h>

#include "model.h"

#define CKPT_MAGIC 20261123
#define CKPT_VERSION 1

typedef struct {
    int64_t step;            // optimizer steps completed
    uint64_t forward_count;  // training forwards (dropout and mask streams)
    uint64_t data_position;  // training data position
    uint64_t tokens_seen;
    double elapsed_s;        // training time so far
} TrainState;

void checkpoint_save(const char *path, const Model *m, const TrainState *st);
// Reads the config of a checkpoint (to build the model) without loading the weights.
void checkpoint_read_config(const char *path, Config *c);
// Loads parameters (and optimizer state and TrainState when present and wanted) into a model
// built from the checkpoint's config. st may be NULL.
void checkpoint_load(const char *path, Model *m, TrainState *st);
// The same on a checkpoint's bytes in memory (path names it in errors). parse_config also
// checks that the header's tensor and float counts match the parameter table of the config.
void checkpoint_parse_config(const void *data, size_t len, const char *path, Config *c);
void checkpoint_load_buffer(const void *data, size_t len, const char *path, Model *m,
                            TrainState *st);
// Builds the model a checkpoint describes and loads its parameters (path: file, resolved).
void checkpoint_build_model(Model *m, const char *path);
// Copies the parameters of another checkpoint into m by name (optimizer state untouched).
// Every non-gate tensor must exist with the same shape; gates of another shape are left as they
// are (so a distillation can change d_g). Dies naming the tensor on a mismatch.
void checkpoint_init_params(Model *m, const char *path_or_dir);
// A path given as a run directory means RUNDIR/model.ckpt.
void checkpoint_resolve_path(char *out, size_t cap, const char *path_or_dir);

#endif
