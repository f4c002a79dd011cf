// safetensors.h: the one tensor-file module, in the safetensors layout (Hugging Face):
//   u64 N (little-endian)   length of the header
//   N bytes                 JSON object: NAME -> {"dtype": "F32", "shape": [..],
//                           "data_offsets": [begin, end]} (relative to the data section), plus
//                           an optional "__metadata__": {string: string}; padded with spaces
//   data                    the tensors' raw little-endian bytes, contiguous, no holes
// The writer streams tensor by tensor into a unique temporary file next to the target, fsyncs
// it, renames it over the target and fsyncs the directory; it can record an xxHash64 checksum
// of each tensor (metadata "checksum.NAME", 16 hex digits) and of the metadata itself
// ("checksum.__metadata__": over every other "key\0value\0" in order). The reader maps the
// file (or takes an image already in memory: st_parse, one validation path), validates the
// whole header against the file's length (sizes, offsets contiguous and in bounds, known
// dtypes, shape x dtype size == bytes) and verifies checksums on request. Every bad file is
// one line naming the file (and the tensor) and the fix, never a crash.
#ifndef ROUTELAB_SAFETENSORS_H
#define ROUTELAB_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U64, ST_U32, ST_U16,
    ST_U8, ST_BOOL, ST_N_DTYPES
} StDtype;

#define ST_MAX_DIM 8
#define ST_MAX_HEADER ((uint64_t)100 << 20)  // 100 MiB, as the reference implementation

size_t st_dtype_size(StDtype d);
const char *st_dtype_name(StDtype d);
// The dtype named s ("F32", ...); -1 when unknown.
int st_dtype_parse(const char *s);
// xxHash64 (seed 0) of bytes, as 16 lowercase hex digits into hex[17].
void st_checksum_hex(const void *data, size_t len, char hex[17]);

// ----------------------------------------------------------------------------- writer
typedef struct StWriter StWriter;
// `what` names the file's role in errors ("checkpoint"). checksums: record checksum.NAME and
// checksum.__metadata__ in the metadata.
StWriter *st_writer_open(const char *path, const char *what, int checksums);
void st_writer_meta(StWriter *w, const char *key, const char *value);
// Records a tensor; data (numel(shape) x dtype size bytes) must stay valid until close.
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const void *data);
// Writes the file atomically and frees w.
void st_writer_close(StWriter *w);

// ----------------------------------------------------------------------------- reader
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIM];
    size_t numel;
    size_t begin, end;      // byte offsets into the data section
    const char *checksum;   // from the metadata, or NULL
} StTensor;

typedef struct {
    char *path;
    const char *what;
    const unsigned char *map;  // the file's bytes: mapped by st_open, or the caller's (st_parse)
    size_t len;             // file bytes
    int mapped;             // st_close unmaps map (st_open) or leaves it to the caller
    size_t data_start;      // 8 + N
    StTensor *tensors;      // in file order (by offset)
    size_t count;
    struct cJSON *root;     // the parsed header
    const struct cJSON *meta;  // "__metadata__" or NULL
} StFile;

// Opens, maps and validates path (dies with one line naming it on any problem); verifies
// checksum.__metadata__ when present.
void st_open(StFile *f, const char *path, const char *what);
// The same checks on a file's image of len bytes in memory (path names it in errors); buf is
// not copied and must stay valid until st_close, which leaves it to the caller.
void st_parse(StFile *f, const void *buf, size_t len, const char *path, const char *what);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);  // NULL when absent
// Like st_find, but dies naming the file and the tensor when absent.
const StTensor *st_need(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);  // NULL when absent
const void *st_data(const StFile *f, const StTensor *t);
// Dies "WHAT 'PATH': tensor 'NAME' fails its checksum (...)" on a mismatch; with require, a
// tensor without a recorded checksum dies too.
void st_verify(const StFile *f, const StTensor *t, int require);
// Copies a tensor of n elements into dst, converting F32/F16/BF16/F64 to float, or the
// integer dtypes to int64; dies naming the tensor when n or the dtype does not fit.
void st_read_f32(const StFile *f, const StTensor *t, float *dst, size_t n);
void st_read_i64(const StFile *f, const StTensor *t, int64_t *dst, size_t n);

#endif
