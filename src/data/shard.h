// shard.h: token shards in llm.c's format, so files interoperate with llm.c both ways.
//   header: 256 int32 little-endian: [0] magic 20240520, [1] version 1, [2] token count
//   body:   token count uint16 tokens
// A shard directory written by `routelab prepare` holds train.bin, val.bin and dataset.json
// ({"tokenizer": SPEC, "vocab_size": V, "train_tokens": N, "val_tokens": N, "sources": [...]}).
#ifndef ROUTELAB_SHARD_H
#define ROUTELAB_SHARD_H
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256
#define SHARD_MAX_VOCAB 65536  // uint16 tokens

// Writes tokens (each < SHARD_MAX_VOCAB, else a fatal error naming the file) atomically.
void shard_write(const char *path, const int32_t *tokens, size_t n);
// Reads a shard, checking magic, version and exact file size; returns n tokens (caller frees).
uint16_t *shard_read(const char *path, size_t *n);
// The same checks on a shard's bytes in memory (path names it in errors).
uint16_t *shard_parse(const uint8_t *buf, size_t len, const char *path, size_t *n);

#endif
