// fuzz_checkpoint.c: v1 binary checkpoints (checkpoint_parse_config + checkpoint_load_buffer:
// header, embedded INI config, model built from it, tensors and optimizer state loaded).
// Another checkpoint format gets its own target of this shape: fuzz_<format>.c calling
// fuzz_checkpoint_bytes() with its parse-config and load functions, and a seed corpus in
// tests/fuzz/corpus/<format>/ (the Makefile and tests/fuzz/run.sh pick both up by name).
#include "fuzz_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_checkpoint_bytes(data, size, checkpoint_parse_config, checkpoint_load_buffer);
}
