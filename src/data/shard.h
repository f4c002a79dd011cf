// shard.h: token shards in llm.c's format, so files interoperate with llm.c both ways.
//   header: 256 int32 little-endian: [0] magic 20240520, [1] version, [2] token count
//   body:   version 1: token count uint16 tokens (llm.c's format, vocabularies up to 65,536)
//           version 2: token count uint32 tokens (routelab's extension for larger
//                      vocabularies such as Qwen3's 151,669 or Llama 3's 128,256; ids < 2^31)
// shard_write picks the version itself: 1 when every id fits in uint16, else 2, so shards of
// small vocabularies stay readable by llm.c. A shard directory written by `routelab prepare`
// holds train.bin, val.bin and dataset.json ({"tokenizer": SPEC, "vocab_size": V,
// "train_tokens": N, "val_tokens": N, "sources": [...]}).
#ifndef ROUTELAB_SHARD_H
#define ROUTELAB_SHARD_H
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC 20240520
#define SHARD_VERSION_U16 1
#define SHARD_VERSION_U32 2
#define SHARD_HEADER_INTS 256
#define SHARD_MAX_VOCAB_U16 65536           // version 1: uint16 tokens
#define SHARD_MAX_VOCAB 2147483647          // version 2: ids must also fit the model's int32

// Writes tokens (each in [0, SHARD_MAX_VOCAB), else a fatal error naming the file) atomically,
// as version 1 when every id < SHARD_MAX_VOCAB_U16, else version 2.
void shard_write(const char *path, const int32_t *tokens, size_t n);
// Reads a shard of either version, checking magic, version and exact file size; returns n
// tokens (caller frees).
uint32_t *shard_read(const char *path, size_t *n);
// The same checks on a shard's bytes in memory (path names it in errors).
uint32_t *shard_parse(const uint8_t *buf, size_t len, const char *path, size_t *n);

#endif
