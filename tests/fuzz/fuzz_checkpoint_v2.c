// fuzz_checkpoint_v2.c: v2 (safetensors) checkpoints from memory (checkpoint_parse_config_v2 +
// checkpoint_load_v2: the safetensors header, format and version metadata, the config JSON
// through config_from_json and config_resolve, the tensor table against the parameter table
// (names, shapes, dtypes), the model built from it, every checksum, the tensors, AdamW state
// and TrainState loaded).
#include "fuzz_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_checkpoint_bytes(data, size, checkpoint_parse_config_v2, checkpoint_load_v2);
}
