// fuzz_safetensors.c: raw safetensors images (st_parse: the header length, JSON, __metadata__,
// every tensor's dtype, shape and offsets against the data section, the metadata checksum),
// then every accepted tensor read with st_read_f32 or st_read_i64 (as its dtype allows) and
// checked with st_verify.
#include "fuzz_common.h"
#include "safetensors.h"

static StFile fuzz_file;   // static: survives a longjmp out of the parser
static void *fuzz_buf;

static int is_float(StDtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN;
    st_parse(&fuzz_file, data, size, "fuzz.safetensors", "tensor file");
    for (size_t i = 0; i < fuzz_file.count; i++) {
        const StTensor *t = &fuzz_file.tensors[i];
        if (st_find(&fuzz_file, t->name) != t) abort();  // names are unique
        // numel x dtype size == its bytes, so a buffer of numel elements is bounded by size
        fuzz_buf = xcalloc(t->numel, 8);
        if (is_float(t->dtype)) st_read_f32(&fuzz_file, t, fuzz_buf, t->numel);
        else if (t->dtype != ST_U64) st_read_i64(&fuzz_file, t, fuzz_buf, t->numel);
        xfree(fuzz_buf);
        fuzz_buf = NULL;
        st_verify(&fuzz_file, t, 0);
    }
    (void)st_meta(&fuzz_file, "format");
    st_close(&fuzz_file);
    FUZZ_END;
    return 0;
}
