// fuzz_bpe.c: trained-BPE tokenizer files (tokenizer_parse_bpe, what tokenizer_load does with a
// file path), then an encode/decode round trip through the loaded merge table.
#include "fuzz_common.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    Tokenizer *tok = tokenizer_parse_bpe((const char *)data, size, "fuzz.bpe");
    static const char text[] = "Hello, world! aaaa  bbb\n\t0123 \xff\xfe ok";
    size_t n, len;
    int32_t *ids = tokenizer_encode(tok, text, sizeof text - 1, &n);
    char *back = tokenizer_decode(tok, ids, n, &len);
    if (len != sizeof text - 1 || memcmp(back, text, len) != 0) abort();  // round trip broken
    free(back);
    free(ids);
    tokenizer_free(tok);
    FUZZ_END;
    return 0;
}
