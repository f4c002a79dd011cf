// shard.c: llm.c-format token shards (see shard.h). Integers are written and read as
// little-endian explicitly, so files are portable whatever the host's byte order.
#include "shard.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

#define HEADER_BYTES (SHARD_HEADER_INTS * 4)

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void shard_write(const char *path, const int32_t *tokens, size_t n) {
    if (n > INT32_MAX)
        fatal("shard '%s': %zu tokens exceed the format's int32 count (split the input into "
              "several datasets)", path, n);
    uint8_t *buf = xcalloc(HEADER_BYTES + 2 * n, 1);
    put_le32(buf, SHARD_MAGIC);
    put_le32(buf + 4, SHARD_VERSION);
    put_le32(buf + 8, (uint32_t)n);
    uint8_t *body = buf + HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= SHARD_MAX_VOCAB)
            fatal("shard '%s': token %d at position %zu does not fit in uint16 (shards need a "
                  "vocabulary of at most %d; use a smaller tokenizer)", path, tokens[i], i,
                  SHARD_MAX_VOCAB);
        body[2 * i] = (uint8_t)tokens[i];
        body[2 * i + 1] = (uint8_t)(tokens[i] >> 8);
    }
    write_file_atomic(path, buf, HEADER_BYTES + 2 * n);
    xfree(buf);
}

uint16_t *shard_read(const char *path, size_t *n) {
    size_t len;
    uint8_t *buf = read_file(path, &len, "token shard");
    uint16_t *tokens = shard_parse(buf, len, path, n);
    xfree(buf);
    return tokens;
}

uint16_t *shard_parse(const uint8_t *buf, size_t len, const char *path, size_t *n) {
    if (len < HEADER_BYTES)
        fatal("shard '%s' is %zu bytes, shorter than the %d-byte header (truncated or not a "
              "shard; re-run `routelab prepare`)", path, len, HEADER_BYTES);
    uint32_t magic = get_le32(buf), version = get_le32(buf + 4), count = get_le32(buf + 8);
    if (magic != SHARD_MAGIC)
        fatal("shard '%s' has magic %u, expected %d (not an llm.c token shard; re-run "
              "`routelab prepare`)", path, magic, SHARD_MAGIC);
    if (version != SHARD_VERSION)
        fatal("shard '%s' has version %u, expected %d (uint16 tokens; re-run `routelab "
              "prepare`)", path, version, SHARD_VERSION);
    if (count > INT32_MAX || len != HEADER_BYTES + 2 * (size_t)count)
        fatal("shard '%s' is %zu bytes but its header promises %u tokens = %zu bytes (truncated "
              "or corrupt; re-run `routelab prepare`)", path, len, count,
              HEADER_BYTES + 2 * (size_t)count);
    uint16_t *tokens = xcalloc((size_t)count + 1, sizeof(uint16_t));
    const uint8_t *body = buf + HEADER_BYTES;
    for (size_t i = 0; i < count; i++)
        tokens[i] = (uint16_t)(body[2 * i] | body[2 * i + 1] << 8);
    *n = count;
    return tokens;
}
