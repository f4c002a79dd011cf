// tokenizer.h: text <-> token ids. Three kinds, chosen by a spec string:
//   "bytes"      id = byte value, vocab 256.
//   "gpt2"       OpenAI's GPT-2 byte-level BPE (50,257 tokens), read from encoder.json + vocab.bpe
//                in ../shared/data/gpt2-tokenizer (relative to the current directory);
//   "gpt2:DIR"   the same, with the two files in DIR. Reproduces GPT-2's ids exactly.
//   "hf:DIR"     a Hugging Face byte-level BPE from DIR/tokenizer.json (Qwen2/Qwen3, Llama 3,
//                GPT-2 style): model BPE (merges as "a b" strings or ["a", "b"] pairs,
//                ignore_merges), normalizer null / NFC / a Sequence of NFC, pre-tokenizer Split
//                (Regex, Isolated) then ByteLevel, added tokens matched in the raw text first
//                (longest first), as encode(text, add_special_tokens=False) does: no BOS/EOS.
//                Anything else in the file is a fatal error naming the field. Vocab = max id + 1
//                over vocab and added tokens; ids in neither decode to U+FFFD.
//   PATH         a byte-level BPE trained by bpe_train() (`routelab tokenizer-train`).
// Every kind encodes ANY byte string (invalid UTF-8 and NUL bytes included) and decodes it back
// exactly (hf:DIR with an NFC normalizer: back to the NFC form of the valid UTF-8 stretches;
// invalid bytes pass through unnormalized). Only hf:DIR recognises special tokens in text (its
// added tokens); elsewhere "<|endoftext|>" encodes as plain text, though GPT-2's id 50256
// decodes to it.
//
// Trained BPE file format (plain text, LF line ends):
//   routelab-bpe 1            format name and version
//   vocab_size V              V = 256 + number of merges
//   pretokenizer gpt2         text is split with GPT-2's regex; merges never cross the pieces
//   merges M                  M = V - 256
//   L R                       M lines: merge i joins tokens L and R (both < 256 + i) into
//   ...                       token 256 + i; earlier merges take priority when encoding.
// Tokens 0..255 are the single bytes 0..255.
#ifndef ROUTELAB_TOKENIZER_H
#define ROUTELAB_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// Loads a tokenizer from its spec (see above); a bad spec or a missing, corrupt or foreign file
// is a fatal error naming the file and the fix.
Tokenizer *tokenizer_load(const char *spec);
void tokenizer_free(Tokenizer *tok);
// Parses a trained BPE file's bytes in memory (path names it in errors); what tokenizer_load
// does with a trained-BPE PATH after reading it.
Tokenizer *tokenizer_parse_bpe(const char *data, size_t len, const char *path);
// Parses a Hugging Face tokenizer.json's bytes in memory (path names it in errors); what
// tokenizer_load does with hf:DIR after reading DIR/tokenizer.json.
Tokenizer *tokenizer_parse_hf(const char *json, size_t len, const char *path);
int tokenizer_vocab_size(const Tokenizer *tok);
const char *tokenizer_spec(const Tokenizer *tok);  // the spec it was loaded from

// Returns *n_out ids (caller frees). Thread-safe; large texts are encoded on all OpenMP threads
// with the same result as a single thread.
int32_t *tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, size_t *n_out);
// Returns the bytes of the ids, NUL-terminated, length in *len_out (caller frees). The bytes may
// be invalid UTF-8 when the ids cut a character in two. An id outside [0, vocab) decodes to
// U+FFFD, so that sampling from a model with a padded vocabulary never crashes.
char *tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, size_t *len_out);

// Byte-level BPE training: 256 byte tokens plus merges learnt from text (pre-tokenized like
// GPT-2) until vocab_size tokens, written to out_path in the format above. Ties between equally
// frequent pairs go to the smaller (left id, right id), so the result is deterministic. Stops
// early (with a warning) when no pair occurs twice. vocab_size must be in [256, 65536].
void bpe_train(const char *text, size_t len, int vocab_size, const char *out_path, int verbose);

#endif
