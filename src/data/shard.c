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
    uint32_t version = SHARD_VERSION_U16;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0)
            fatal("shard '%s': token %d at position %zu is negative (token ids are in [0, %d); "
                  "the tokenizer output is corrupt, please report)", path, tokens[i], i,
                  SHARD_MAX_VOCAB);
        if (tokens[i] >= SHARD_MAX_VOCAB_U16) version = SHARD_VERSION_U32;
    }
    size_t width = version == SHARD_VERSION_U16 ? 2 : 4;
    uint8_t *buf = xcalloc(HEADER_BYTES + width * n, 1);
    put_le32(buf, SHARD_MAGIC);
    put_le32(buf + 4, version);
    put_le32(buf + 8, (uint32_t)n);
    uint8_t *body = buf + HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)tokens[i];
        if (width == 2) {
            body[2 * i] = (uint8_t)v;
            body[2 * i + 1] = (uint8_t)(v >> 8);
        } else {
            put_le32(body + 4 * i, v);
        }
    }
    write_file_atomic(path, buf, HEADER_BYTES + width * n);
    xfree(buf);
}

uint32_t *shard_read(const char *path, size_t *n) {
    size_t len;
    uint8_t *buf = read_file(path, &len, "token shard");
    uint32_t *tokens = shard_parse(buf, len, path, n);
    xfree(buf);
    return tokens;
}

uint32_t *shard_parse(const uint8_t *buf, size_t len, const char *path, size_t *n) {
    if (len < HEADER_BYTES)
        fatal("shard '%s' is %zu bytes, shorter than the %d-byte header (truncated or not a "
              "shard; re-run `routelab prepare`)", path, len, HEADER_BYTES);
    uint32_t magic = get_le32(buf), version = get_le32(buf + 4), count = get_le32(buf + 8);
    if (magic != SHARD_MAGIC)
        fatal("shard '%s' has magic %u, expected %d (not an llm.c token shard; re-run "
              "`routelab prepare`)", path, magic, SHARD_MAGIC);
    if (version != SHARD_VERSION_U16 && version != SHARD_VERSION_U32)
        fatal("shard '%s' has version %u, expected %d (uint16 tokens) or %d (uint32 tokens) "
              "(re-run `routelab prepare`)", path, version, SHARD_VERSION_U16,
              SHARD_VERSION_U32);
    size_t width = version == SHARD_VERSION_U16 ? 2 : 4;
    if (count > INT32_MAX || len != HEADER_BYTES + width * (size_t)count)
        fatal("shard '%s' is %zu bytes but its version-%u header promises %u tokens = %zu bytes "
              "(truncated or corrupt; re-run `routelab prepare`)", path, len, version, count,
              HEADER_BYTES + width * (size_t)count);
    uint32_t *tokens = xcalloc((size_t)count + 1, sizeof(uint32_t));
    const uint8_t *body = buf + HEADER_BYTES;
    for (size_t i = 0; i < count; i++) {
        if (width == 2) {
            tokens[i] = (uint32_t)(body[2 * i] | body[2 * i + 1] << 8);
        } else {
            tokens[i] = get_le32(body + 4 * i);
            if (tokens[i] >= (uint32_t)SHARD_MAX_VOCAB) {
                xfree(tokens);
                fatal("shard '%s': token %u at position %zu is not below %d (corrupt; re-run "
                      "`routelab prepare`)", path, get_le32(body + 4 * i), i, SHARD_MAX_VOCAB);
            }
        }
    }
    *n = count;
    return tokens;
}
