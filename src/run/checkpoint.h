// checkpoint.h: self-describing checkpoints.
// Format 2 (written): a safetensors file (safetensors.h). Tensors: every parameter by its
// ParamTable name (F32), the AdamW moments as adam.m.NAME and adam.v.NAME, the AdamW step
// counts as one I64 tensor adam.t (one per parameter tensor, in table order). __metadata__:
// format = routelab-checkpoint, version = 2, config (every key as a JSON object), step,
// forward_count, data_position, tokens_seen, elapsed_s (the TrainState below), threads
// (omp_get_max_threads() of the run), blas (openblas_get_config()), checksum.NAME (xxHash64 of
// each tensor's bytes) and checksum.__metadata__. Loading verifies every checksum. Written to a
// unique temporary file, fsynced and renamed: a crash never loses the previous checkpoint.
// Format 1 (still read): a 256-int32 header (magic 20261123, version 1, sizes), the config as
// INI text, params, adam_m, adam_v, adam_t (int64 per tensor), then 8 state words.
#ifndef ROUTELAB_CHECKPOINT_H
#define ROUTELAB_CHECKPOINT_H
#include <stdint.h>

#include "model.h"

#define CKPT_MAGIC 20261123
#define CKPT_VERSION 2  // written; format 1 is still read

typedef struct {
    int64_t step;            // optimizer steps completed
    uint64_t forward_count;  // training forwards (dropout and mask streams)
    uint64_t data_position;  // training data position
    uint64_t tokens_seen;
    double elapsed_s;        // training time so far
} TrainState;

void checkpoint_save(const char *path, const Model *m, const TrainState *st);
// Reads the config of a checkpoint (to build the model) without loading the weights; for format
// 2 it also checks the tensor table (names, shapes) against the config.
void checkpoint_read_config(const char *path, Config *c);
// Loads parameters (and optimizer state and TrainState when present and wanted) into a model
// built from the checkpoint's config. st may be NULL.
void checkpoint_load(const char *path, Model *m, TrainState *st);
// Format 1 (the legacy layout) from its bytes in memory (path names it in errors), for the fuzz
// target: parse_config_v1 also checks that the header's tensor and float counts match the
// parameter table of the config; load_v1 loads into a model built from that config.
void checkpoint_parse_config_v1(const void *data, size_t len, const char *path, Config *c);
void checkpoint_load_v1(const void *data, size_t len, const char *path, Model *m,
                        TrainState *st);
// Format 2 from its bytes in memory, the same checks as the file readers (which map the file
// and go through these steps): parse_config_v2 validates the safetensors image, its format and
// version, the config JSON, and the tensor table against the parameter table the config implies
// (names and shapes, before anything is allocated); load_v2 also verifies every checksum and
// loads into a model built from that config.
void checkpoint_parse_config_v2(const void *data, size_t len, const char *path, Config *c);
void checkpoint_load_v2(const void *data, size_t len, const char *path, Model *m,
                        TrainState *st);
// Builds the model a checkpoint describes and loads its parameters (path: file, resolved).
void checkpoint_build_model(Model *m, const char *path);
// Copies the parameters of another checkpoint into m by name (optimizer state untouched).
// Every non-gate tensor must exist with the same shape; gates of another shape are left as they
// are (so a distillation can change d_g). Dies naming the tensor on a mismatch.
void checkpoint_init_params(Model *m, const char *path_or_dir);
// The thread count a checkpoint's run used (0 when it does not say: format 1).
int checkpoint_threads(const char *path);
// Resume guard: dies when the checkpoint's run used another thread count than
// omp_get_max_threads() (the loss sequence would diverge); with force, warns instead.
void checkpoint_check_threads(const char *path, int force);
// The same for the number of data-parallel processes (mpirun -np; absent in the file: 1).
void checkpoint_check_ranks(const char *path, int force);
// A path given as a run directory means RUNDIR/model.ckpt.
void checkpoint_resolve_path(char *out, size_t cap, const char *path_or_dir);

#endif
