// fuzz_hf_tokenizer.c: Hugging Face tokenizer.json files (tokenizer_parse_hf, what
// tokenizer_load does with hf:DIR after reading DIR/tokenizer.json), then encoding a short text
// through the whole pipeline (added tokens, NFC, the Split regexes, ByteLevel, BPE) and decoding
// it. Exact round trips are not required: NFC and add_prefix_space change text by design.
#include "fuzz_common.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    Tokenizer *tok = tokenizer_parse_hf((const char *)data, size, "fuzz/tokenizer.json");
    static const char text[] = "Hello, world! DON'T he's 12345 <|endoftext|>x<|im_start|> cafe\xcc\x81"
                               " \xea\xb0\x81\r\n\n  \t\xff\xfe\x00 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd ok  ";
    size_t n, len;
    int32_t *ids = tokenizer_encode(tok, text, sizeof text - 1, &n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(tok)) abort();  // an id outside the vocab
    char *back = tokenizer_decode(tok, ids, n, &len);
    xfree(back);
    xfree(ids);
    tokenizer_free(tok);
    FUZZ_END;
    return 0;
}
