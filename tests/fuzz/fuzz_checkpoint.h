// fuzz_checkpoint.h: the body of a checkpoint-format fuzz target (see fuzz_checkpoint.c).
#ifndef ROUTELAB_FUZZ_CHECKPOINT_H
#define ROUTELAB_FUZZ_CHECKPOINT_H
#include "checkpoint.h"
#include "fuzz_common.h"

typedef void (*CkptParseConfig)(const void *data, size_t len, const char *path, Config *c);
typedef void (*CkptLoad)(const void *data, size_t len, const char *path, Model *m,
                         TrainState *st);

static Model fuzz_model;  // static: the model must survive a longjmp out of the loader

static int fuzz_checkpoint_bytes(const uint8_t *data, size_t size, CkptParseConfig parse,
                                 CkptLoad load) {
    FUZZ_BEGIN;
    Config c;
    parse(data, size, "fuzz.ckpt", &c);
    model_build(&fuzz_model, &c);
    TrainState st;
    load(data, size, "fuzz.ckpt", &fuzz_model, &st);
    model_free(&fuzz_model);
    FUZZ_END;
    return 0;
}

#endif
