// fuzz_shard.c: llm.c token shards of both versions (shard_parse, what shard_read does after reading the file).
#include "fuzz_common.h"
#include "shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    size_t n;
    uint32_t *tokens = shard_parse(data, size, "fuzz.bin", &n);
    xfree(tokens);
    FUZZ_END;
    return 0;
}
