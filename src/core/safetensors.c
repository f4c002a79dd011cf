// safetensors.c: see safetensors.h.
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the file format is little-endian)"
#endif

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_N_DTYPES] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U64] = {"U64", 8}, [ST_U32] = {"U32", 4}, [ST_U16] = {"U16", 2}, [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

size_t st_dtype_size(StDtype d) { return (unsigned)d < ST_N_DTYPES ? DTYPES[d].size : 0; }
const char *st_dtype_name(StDtype d) { return (unsigned)d < ST_N_DTYPES ? DTYPES[d].name : "?"; }

int st_dtype_parse(const char *s) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (!strcmp(s, DTYPES[i].name)) return i;
    return -1;
}

void st_checksum_hex(const void *data, size_t len, char hex[17]) {
    snprintf(hex, 17, "%016llx", (unsigned long long)XXH64(data, len, 0));
}

#define META_SUM_KEY "checksum.__metadata__"

// xxHash64 of every metadata pair but META_SUM_KEY, as "key\0value\0" in order.
static void meta_checksum(const cJSON *meta, char hex[17]) {
    XXH64_state_t *s = XXH64_createState();
    if (!s) fatal("out of memory hashing the metadata");
    XXH64_reset(s, 0);
    for (const cJSON *v = meta->child; v; v = v->next) {
        if (!strcmp(v->string, META_SUM_KEY)) continue;
        XXH64_update(s, v->string, strlen(v->string) + 1);
        XXH64_update(s, v->valuestring, strlen(v->valuestring) + 1);
    }
    snprintf(hex, 17, "%016llx", (unsigned long long)XXH64_digest(s));
    XXH64_freeState(s);
}

// ----------------------------------------------------------------------------- writer
typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIM];
    const void *data;
    size_t nbytes;
} WEntry;

struct StWriter {
    char *path;
    const char *what;
    int checksums;
    WEntry *t;
    size_t count, cap;
    cJSON *meta;
};

StWriter *st_writer_open(const char *path, const char *what, int checksums) {
    StWriter *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->what = what;
    w->checksums = checksums;
    w->meta = cJSON_CreateObject();
    if (!w->meta) fatal("out of memory writing %s '%s'", what, path);
    return w;
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
    ASSERT(strncmp(key, "checksum.", 9) != 0 || !w->checksums);
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        fatal("out of memory writing %s '%s'", w->what, w->path);
}

void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const void *data) {
    ASSERT(ndim >= 0 && ndim <= ST_MAX_DIM && (unsigned)dtype < ST_N_DTYPES);
    ASSERT(strcmp(name, "__metadata__") != 0);
    for (size_t i = 0; i < w->count; i++) ASSERT(strcmp(w->t[i].name, name) != 0);
    if (w->count == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = xrealloc(w->t, w->cap * sizeof *w->t);
    }
    WEntry *e = &w->t[w->count++];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        ASSERT(shape[d] >= 0);
        e->shape[d] = shape[d];
        n *= (size_t)shape[d];
    }
    e->data = data;
    e->nbytes = n * st_dtype_size(dtype);
}

void st_writer_close(StWriter *w) {
    cJSON *root = cJSON_CreateObject();
    if (!root) fatal("out of memory writing %s '%s'", w->what, w->path);
    if (w->checksums) {
        for (size_t i = 0; i < w->count; i++) {
            size_t cap = strlen(w->t[i].name) + 10;
            char *key = xcalloc(cap, 1), hex[17];
            snprintf(key, cap, "checksum.%s", w->t[i].name);
            st_checksum_hex(w->t[i].data, w->t[i].nbytes, hex);
            cJSON_AddStringToObject(w->meta, key, hex);
            xfree(key);
        }
        char hex[17];
        meta_checksum(w->meta, hex);
        cJSON_AddStringToObject(w->meta, META_SUM_KEY, hex);
    }
    if (w->meta->child) cJSON_AddItemToObject(root, "__metadata__", w->meta);
    else cJSON_Delete(w->meta);
    w->meta = NULL;
    size_t off = 0;
    for (size_t i = 0; i < w->count; i++) {
        const WEntry *e = &w->t[i];
        cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        if (!o || !shape || !offs) fatal("out of memory writing %s '%s'", w->what, w->path);
        cJSON_AddStringToObject(o, "dtype", st_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON_AddItemToObject(o, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + e->nbytes)));
        cJSON_AddItemToObject(o, "data_offsets", offs);
        cJSON_AddItemToObject(root, e->name, o);
        off += e->nbytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    if (!json) fatal("out of memory writing %s '%s'", w->what, w->path);
    cJSON_Delete(root);
    size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;  // the data starts 8-aligned
    char *header = xcalloc(8 + padded, 1);
    uint64_t n64 = padded;
    memcpy(header, &n64, 8);
    memcpy(header + 8, json, n);
    memset(header + 8 + n, ' ', padded - n);
    free(json);

    size_t cap = strlen(w->path) + 16;
    char *tmp = xcalloc(cap, 1);
    int fd = atomic_begin(w->path, tmp, cap, w->what);
    atomic_write(fd, header, 8 + padded, tmp, w->path, w->what);
    for (size_t i = 0; i < w->count; i++)  // streamed: no buffer of the whole file
        atomic_write(fd, w->t[i].data, w->t[i].nbytes, tmp, w->path, w->what);
    atomic_commit(fd, tmp, w->path, w->what);
    xfree(tmp);
    xfree(header);
    for (size_t i = 0; i < w->count; i++) xfree(w->t[i].name);
    xfree(w->t);
    xfree(w->path);
    xfree(w);
}

// ----------------------------------------------------------------------------- reader
#define DAMAGED "(the file is damaged: use an earlier copy or re-run)"

// A JSON number that is a non-negative integer below 2^53; -1 otherwise.
static double json_count(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d > 9007199254740992.0) return -1;
    return d;
}

static int cmp_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static void parse_tensor(StFile *f, StTensor *t, const cJSON *v, size_t data_len) {
    const char *what = f->what, *path = f->path, *name = v->string;
    if (!cJSON_IsObject(v))
        fatal("%s '%s': header entry '%s' is not an object %s", what, path, name, DAMAGED);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        fatal("%s '%s': tensor '%s' lacks dtype, shape or data_offsets %s", what, path, name,
              DAMAGED);
    int d = st_dtype_parse(dt->valuestring);
    if (d < 0)
        fatal("%s '%s': tensor '%s' has unknown dtype '%.16s' (known: F64 F32 F16 BF16 I64 I32 "
              "I16 I8 U64 U32 U16 U8 BOOL)", what, path, name, dt->valuestring);
    t->name = name;
    t->dtype = (StDtype)d;
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIM)
        fatal("%s '%s': tensor '%s' has %d dimensions (at most %d are supported)", what, path,
              name, nd, ST_MAX_DIM);
    t->ndim = nd;
    size_t numel = 1;
    int i = 0;
    for (const cJSON *s = shape->child; s; s = s->next, i++) {
        double x = json_count(s);
        if (x < 0) fatal("%s '%s': tensor '%s' has a bad shape %s", what, path, name, DAMAGED);
        t->shape[i] = (int64_t)x;
        if (x > 0 && numel > SIZE_MAX / (size_t)x)
            fatal("%s '%s': tensor '%s' has a shape too large %s", what, path, name, DAMAGED);
        numel *= (size_t)x;
    }
    t->numel = numel;
    double b = cJSON_GetArraySize(offs) == 2 ? json_count(offs->child) : -1;
    double e = b >= 0 ? json_count(offs->child->next) : -1;
    if (b < 0 || e < b || e > (double)data_len)
        fatal("%s '%s': tensor '%s' has data_offsets outside the file's %zu data bytes "
              "(truncated or damaged: use an earlier copy or re-run)", what, path, name, data_len);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    size_t es = st_dtype_size(t->dtype);
    if (numel > SIZE_MAX / es || numel * es != t->end - t->begin)
        fatal("%s '%s': tensor '%s' has %zu bytes but its shape and dtype %s need %zu %s", what,
              path, name, t->end - t->begin, st_dtype_name(t->dtype),
              numel <= SIZE_MAX / es ? numel * es : SIZE_MAX, DAMAGED);
}

// Validates the image f->map of f->len bytes: the one path of st_open and st_parse.
static void st_validate(StFile *f) {
    const char *what = f->what, *path = f->path;
    if (f->len < 8)
        fatal("%s '%s' is truncated (%zu bytes, less than the 8-byte header length): use an "
              "earlier copy or re-run", what, path, f->len);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n < 2 || n > ST_MAX_HEADER)
        fatal("%s '%s' is not a safetensors file (its header length %llu is not sane)", what,
              path, (unsigned long long)n);
    if (8 + n > f->len)
        fatal("%s '%s' is truncated (%zu bytes, but its header alone needs %llu): use an "
              "earlier copy or re-run", what, path, f->len, (unsigned long long)(8 + n));
    f->data_start = 8 + (size_t)n;
    size_t data_len = f->len - f->data_start;
    const char *hdr = (const char *)f->map + 8, *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (f->root && end) {
        for (const char *p = end; p < hdr + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(f->root);
                f->root = NULL;
                break;
            }
    }
    if (!f->root || !cJSON_IsObject(f->root))
        fatal("%s '%s': its header is not a valid JSON object %s", what, path, DAMAGED);
    size_t count = 0;
    for (const cJSON *v = f->root->child; v; v = v->next) {
        if (!v->string) fatal("%s '%s': its header is malformed %s", what, path, DAMAGED);
        if (!strcmp(v->string, "__metadata__")) {
            if (f->meta || !cJSON_IsObject(v))
                fatal("%s '%s': its __metadata__ is not one object of strings %s", what, path,
                      DAMAGED);
            for (const cJSON *m = v->child; m; m = m->next)
                if (!cJSON_IsString(m))
                    fatal("%s '%s': __metadata__ entry '%s' is not a string %s", what, path,
                          m->string, DAMAGED);
            f->meta = v;
        } else {
            count++;
        }
    }
    f->tensors = xcalloc(count ? count : 1, sizeof *f->tensors);
    size_t i = 0;
    for (const cJSON *v = f->root->child; v; v = v->next)
        if (strcmp(v->string, "__metadata__") != 0) parse_tensor(f, &f->tensors[i++], v, data_len);
    f->count = count;
    qsort(f->tensors, count, sizeof *f->tensors, cmp_offset);
    size_t at = 0;
    for (i = 0; i < count; i++) {
        if (f->tensors[i].begin != at)
            fatal("%s '%s': tensor '%s' %s another tensor's bytes or leaves a hole before it %s",
                  what, path, f->tensors[i].name, f->tensors[i].begin < at ? "overlaps" : "follows",
                  DAMAGED);
        at = f->tensors[i].end;
    }
    if (at != data_len)
        fatal("%s '%s' has %zu data bytes but its tensors cover %zu (truncated or damaged: use an "
              "earlier copy or re-run)", what, path, data_len, at);
    for (i = 0; i < count; i++)
        for (size_t j = i + 1; j < count; j++)
            if (!strcmp(f->tensors[i].name, f->tensors[j].name))
                fatal("%s '%s': tensor '%s' appears twice %s", what, path, f->tensors[i].name,
                      DAMAGED);
    if (f->meta) {
        const char *sum = st_meta(f, META_SUM_KEY);
        if (sum) {
            char hex[17];
            meta_checksum(f->meta, hex);
            if (strcasecmp(hex, sum) != 0)
                fatal("%s '%s': its metadata fails its checksum %s", what, path, DAMAGED);
        }
        // "checksum.NAME" matched in place: no fixed-size key buffer truncates a long name
        for (const cJSON *m = f->meta->child; m; m = m->next) {
            if (strncmp(m->string, "checksum.", 9) != 0) continue;
            for (i = 0; i < count; i++)
                if (!f->tensors[i].checksum && !strcmp(m->string + 9, f->tensors[i].name)) {
                    f->tensors[i].checksum = m->valuestring;
                    break;
                }
        }
    }
}

void st_parse(StFile *f, const void *buf, size_t len, const char *path, const char *what) {
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->what = what;
    f->map = buf;
    f->len = len;
    st_validate(f);
}

void st_open(StFile *f, const char *path, const char *what) {
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->what = what;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fatal("cannot open %s '%s': %s (check the path)", what, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        fatal("%s '%s' is not a regular file (check the path)", what, path);
    f->len = (size_t)sb.st_size;
    if (f->len > 0) {  // an empty file is not mapped (st_validate reports it truncated)
        void *map = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) fatal("cannot map %s '%s': %s", what, path, strerror(errno));
        f->map = map;
        f->mapped = 1;
    }
    close(fd);
    st_validate(f);
}

void st_close(StFile *f) {
    if (f->mapped) munmap((void *)f->map, f->len);
    cJSON_Delete(f->root);
    xfree(f->tensors);
    xfree(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (size_t i = 0; i < f->count; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const StTensor *st_need(const StFile *f, const char *name) {
    const StTensor *t = st_find(f, name);
    if (!t)
        fatal("%s '%s' has no tensor '%s' (the file does not match: check the path)", f->what,
              f->path, name);
    return t;
}

const char *st_meta(const StFile *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const void *st_data(const StFile *f, const StTensor *t) {
    return f->map + f->data_start + t->begin;
}

void st_verify(const StFile *f, const StTensor *t, int require) {
    if (!t->checksum) {
        if (require)
            fatal("%s '%s': tensor '%s' has no checksum %s", f->what, f->path, t->name, DAMAGED);
        return;
    }
    char hex[17];
    st_checksum_hex(st_data(f, t), t->end - t->begin, hex);
    if (strcasecmp(hex, t->checksum) != 0)
        fatal("%s '%s': tensor '%s' fails its checksum %s", f->what, f->path, t->name, DAMAGED);
}

static void need_numel(const StFile *f, const StTensor *t, size_t n) {
    if (t->numel != n)
        fatal("%s '%s': tensor '%s' has %zu elements, expected %zu (the file does not match "
              "this model)", f->what, f->path, t->name, t->numel, n);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, man = h & 1023;
    float v;
    if (ex == 0) v = ldexpf((float)man, -24);                    // zero and subnormals
    else if (ex == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 1024), (int)ex - 25);
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits |= sign;
    memcpy(&v, &bits, 4);
    return v;
}

void st_read_f32(const StFile *f, const StTensor *t, float *dst, size_t n) {
    need_numel(f, t, n);
    const unsigned char *p = st_data(f, t);
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, n * 4); break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = half_to_float(h);
        }
        break;
    default:
        fatal("%s '%s': tensor '%s' has dtype %s, expected a floating-point tensor (F32, F16, "
              "BF16, F64)", f->what, f->path, t->name, st_dtype_name(t->dtype));
    }
}

void st_read_i64(const StFile *f, const StTensor *t, int64_t *dst, size_t n) {
    need_numel(f, t, n);
    const unsigned char *p = st_data(f, t);
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST_I64: memcpy(&dst[i], p + 8 * i, 8); break;
        case ST_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = v; break; }
        case ST_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = v; break; }
        case ST_I8: dst[i] = (int8_t)p[i]; break;
        case ST_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = v; break; }
        case ST_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = v; break; }
        case ST_U8: case ST_BOOL: dst[i] = p[i]; break;
        default:
            fatal("%s '%s': tensor '%s' has dtype %s, expected an integer tensor (I64, I32, ...)",
                  f->what, f->path, t->name, st_dtype_name(t->dtype));
        }
    }
}
