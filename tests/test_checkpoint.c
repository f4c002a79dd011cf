// test_checkpoint.c: the safetensors module (round trip of every dtype, a hand-written file,
// malformed headers) and checkpoint format 2 (bit-identical round trip of parameters, moments,
// step counts and training state; format 1 still loads; every sampled flipped byte of tensor
// data fails naming its tensor; truncations and a corrupt header fail naming the file).
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "model_check.h"
#include "safetensors.h"

static char dir[256];

static void put_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

// ----------------------------------------------------------------------------- safetensors
static void test_safetensors_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/all.safetensors", dir);
    float f32[6] = {1, -2.5f, 3.25f, 0, 1e-3f, -7};
    uint16_t bf16[3] = {0x3FC0, 0xC020, 0x0000};  // 1.5, -2.5, 0
    uint16_t f16[4] = {0x3E00, 0xC100, 0x0001, 0x7C00};  // 1.5, -2.5, 2^-24, inf
    int32_t i32[2] = {-5, 7};
    int64_t i64[2] = {INT64_MIN + 1, 123456789012345LL};
    uint8_t none = 0;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s2[1] = {2}, s0[1] = {0};
    StWriter *w = st_writer_open(path, "tensor file", 1);
    st_writer_meta(w, "hello", "world");
    st_writer_add(w, "f32", ST_F32, 2, s23, f32);
    st_writer_add(w, "bf16", ST_BF16, 1, s3, bf16);
    st_writer_add(w, "f16", ST_F16, 1, s4, f16);
    st_writer_add(w, "i32", ST_I32, 1, s2, i32);
    st_writer_add(w, "i64", ST_I64, 1, s2, i64);
    st_writer_add(w, "empty", ST_U8, 1, s0, &none);
    st_writer_close(w);
    StFile f;
    st_open(&f, path, "tensor file");
    CHECK(f.count == 6, "6 tensors, got %zu", f.count);
    CHECK(f.data_start % 8 == 0, "data section starts 8-aligned (%zu)", f.data_start);
    CHECK(st_meta(&f, "hello") && !strcmp(st_meta(&f, "hello"), "world"), "metadata round trip");
    const StTensor *t = st_need(&f, "f32");
    CHECK(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6, "f32 shape");
    float got[6];
    st_read_f32(&f, t, got, 6);
    CHECK(!memcmp(got, f32, sizeof f32), "F32 round trip");
    st_read_f32(&f, st_need(&f, "bf16"), got, 3);
    CHECK(got[0] == 1.5f && got[1] == -2.5f && got[2] == 0, "BF16 read as float: %g %g %g",
          got[0], got[1], got[2]);
    st_read_f32(&f, st_need(&f, "f16"), got, 4);
    CHECK(got[0] == 1.5f && got[1] == -2.5f && got[2] == ldexpf(1, -24) && isinf(got[3]),
          "F16 read as float: %g %g %g %g", got[0], got[1], got[2], got[3]);
    int64_t gi[2];
    st_read_i64(&f, st_need(&f, "i32"), gi, 2);
    CHECK(gi[0] == -5 && gi[1] == 7, "I32 read as int64");
    st_read_i64(&f, st_need(&f, "i64"), gi, 2);
    CHECK(gi[0] == i64[0] && gi[1] == i64[1], "I64 round trip");
    CHECK(st_need(&f, "empty")->numel == 0, "a zero-size tensor");
    for (size_t i = 0; i < f.count; i++) {
        CHECK(f.tensors[i].checksum != NULL, "tensor '%s' has a checksum", f.tensors[i].name);
        st_verify(&f, &f.tensors[i], 1);  // dies on a mismatch
    }
    CHECK(st_find(&f, "nope") == NULL, "st_find of an absent tensor");
    st_close(&f);
    // no temporary file left next to it
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!file_exists(tmp), "no PATH.tmp left");
}

// A file written by hand from the format description (as another implementation writes it:
// no metadata, no padding, tensors out of order in the header).
static void test_safetensors_foreign(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/hf.safetensors", dir);
    const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    uint64_t n = strlen(hdr);
    float vals[3] = {1, 2, 3};
    unsigned char buf[512];
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, n);
    memcpy(buf + 8 + n, vals, sizeof vals);
    put_file(path, buf, 8 + n + sizeof vals);
    StFile f;
    st_open(&f, path, "model file");
    float a[2], b[1];
    st_read_f32(&f, st_need(&f, "a"), a, 2);
    st_read_f32(&f, st_need(&f, "b"), b, 1);
    CHECK(a[0] == 1 && a[1] == 2 && b[0] == 3, "hand-written file reads back");
    CHECK(f.meta == NULL && st_need(&f, "a")->checksum == NULL, "no metadata, no checksums");
    st_close(&f);
}

typedef struct {
    const char *path;
} OpenArg;

static void open_child(const void *arg) {
    StFile f;
    st_open(&f, ((const OpenArg *)arg)->path, "tensor file");
    for (size_t i = 0; i < f.count; i++) st_verify(&f, &f.tensors[i], 0);
    st_close(&f);
}

static void bad_header(const char *hdr, size_t data_bytes, const char *needle, const char *what) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    uint64_t n = strlen(hdr);
    size_t len = 8 + n + data_bytes;
    unsigned char *buf = calloc(len, 1);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, n);
    put_file(path, buf, len);
    free(buf);
    OpenArg a = {path};
    CHECK(check_child_fails(open_child, &a, needle), "%s: fails naming '%s'", what, needle);
    CHECK(check_child_fails(open_child, &a, path), "%s: the error names the file", what);
}

static void test_safetensors_bad(void) {
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               "tensor 'y'", "overlapping tensors");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               "hole", "a hole before a tensor");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
               "tensor 'x'", "shape x dtype != bytes");
    bad_header("{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
               "unknown dtype", "unknown dtype");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]}}", 8,
               "tensor 'x'", "offsets past the end");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
               "bad shape", "negative shape");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16,
               "data bytes", "trailing data");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},", 8,
               "not a valid JSON", "malformed JSON");
    bad_header("[1,2]", 0, "not a valid JSON object", "a JSON array");
    bad_header("{\"__metadata__\":{\"a\":1}}", 0, "__metadata__", "metadata of a number");
    bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'x'", "no data_offsets");
    char path[512];
    snprintf(path, sizeof path, "%s/huge.safetensors", dir);
    uint64_t n = (uint64_t)1 << 40;
    put_file(path, &n, 8);
    OpenArg a = {path};
    CHECK(check_child_fails(open_child, &a, "header length"), "an insane header length");
    put_file(path, "abc", 3);
    CHECK(check_child_fails(open_child, &a, "truncated"), "a 3-byte file");
}

// ----------------------------------------------------------------------------- config JSON
static void test_config_json(void) {
    Config c, d;
    small_config(&c, NULL);
    char longpath[400];
    memset(longpath, 'p', 300);
    longpath[0] = '/';
    longpath[300] = 0;
    config_set(&c, "out", longpath, "test");
    config_set(&c, "lr", "3.3e-4", "test");
    config_set(&c, "attn", "soft,hard", "test");
    cJSON *j = config_to_json(&c);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    cJSON *back = cJSON_Parse(text);
    config_defaults(&d);
    config_from_json(&d, back, "test");
    cJSON_Delete(back);
    free(text);
    char *a = config_to_string(&c), *b = config_to_string(&d);
    CHECK(!strcmp(a, b), "config JSON round trip");
    CHECK(!strcmp(d.out, longpath) && d.lr == c.lr, "a 300-character out path and lr survive");
    free(a), free(b);
}

// ----------------------------------------------------------------------------- checkpoints
static Config ckcfg;

static void fill_model(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    size_t P = m->table.total;
    for (size_t i = 0; i < P; i++) {
        m->params[i] = rng_normal(&r);
        m->adam_m[i] = rng_normal(&r) * 1e-3f;
        m->adam_v[i] = rng_uniform(&r) * 1e-6f;
    }
    for (int i = 0; i < m->table.count; i++) m->adam_t[i] = 100 + i;
}

static int same_model(const Model *a, const Model *b) {
    size_t bytes = a->table.total * sizeof(float);
    return !memcmp(a->params, b->params, bytes) && !memcmp(a->adam_m, b->adam_m, bytes) &&
           !memcmp(a->adam_v, b->adam_v, bytes) &&
           !memcmp(a->adam_t, b->adam_t, (size_t)a->table.count * sizeof(long));
}

static const TrainState STATE = {17, 123456789012ULL, 987654321ULL, 4242424242ULL, 12.3456789};

static int same_state(const TrainState *s) {
    return s->step == STATE.step && s->forward_count == STATE.forward_count &&
           s->data_position == STATE.data_position && s->tokens_seen == STATE.tokens_seen &&
           !memcmp(&s->elapsed_s, &STATE.elapsed_s, sizeof(double));
}

static void test_roundtrip(const char *path) {
    Model m, n;
    model_build(&m, &ckcfg);
    fill_model(&m, 1);
    checkpoint_save(path, &m, &STATE);
    Config c;
    checkpoint_read_config(path, &c);
    char *a = config_to_string(&ckcfg), *b = config_to_string(&c);
    CHECK(!strcmp(a, b), "checkpoint config round trip");
    free(a), free(b);
    model_build(&n, &c);
    TrainState st = {0};
    checkpoint_load(path, &n, &st);
    CHECK(same_model(&m, &n), "params, moments and step counts are bit-identical after load");
    CHECK(same_state(&st), "training state round trip");
    CHECK(n.forward_count == STATE.forward_count, "forward count restored");
    CHECK(checkpoint_threads(path) == omp_get_max_threads(), "threads recorded");
    StFile f;
    st_open(&f, path, "checkpoint");
    CHECK(f.count == 3 * (size_t)m.table.count + 1, "3 x tensors + adam.t");
    CHECK(st_find(&f, "adam.m.wte.weight") && st_find(&f, "adam.v.wte.weight") && st_find(&f, "wte.weight"),
          "tensors named by the parameter table");
    const StTensor *t = st_need(&f, "adam.t");
    CHECK(t->dtype == ST_I64 && t->numel == (size_t)m.table.count, "adam.t: I64 per tensor");
    CHECK(st_meta(&f, "blas") && st_meta(&f, "config") && !strcmp(st_meta(&f, "version"), "2"),
          "metadata: blas, config, version");
    st_close(&f);
    // saving again over it keeps it readable (atomic replace), with the new values
    fill_model(&m, 2);
    checkpoint_save(path, &m, &STATE);
    checkpoint_load(path, &n, NULL);
    CHECK(same_model(&m, &n), "a second save replaces the first");
    model_free(&m);
    model_free(&n);
}

// Format 1, written by hand from the layout in checkpoint.h.
static void test_v1(const char *path) {
    Model m, n;
    model_build(&m, &ckcfg);
    fill_model(&m, 3);
    char *cfg = config_to_string(&m.cfg);
    size_t cl = strlen(cfg), P = m.table.total, nt = (size_t)m.table.count;
    size_t bytes = 1024 + cl + 3 * P * 4 + nt * 8 + 64;
    char *buf = calloc(bytes, 1), *p = buf;
    int32_t h[256] = {0};
    h[0] = CKPT_MAGIC, h[1] = 1, h[2] = (int32_t)cl, h[3] = (int32_t)nt;
    h[4] = (int32_t)(P & 0x7fffffff), h[5] = (int32_t)(P >> 31), h[6] = 1, h[7] = (int32_t)STATE.step;
    memcpy(p, h, 1024), p += 1024;
    memcpy(p, cfg, cl), p += cl;
    memcpy(p, m.params, P * 4), p += P * 4;
    memcpy(p, m.adam_m, P * 4), p += P * 4;
    memcpy(p, m.adam_v, P * 4), p += P * 4;
    for (size_t i = 0; i < nt; i++) {
        int64_t t = m.adam_t[i];
        memcpy(p, &t, 8), p += 8;
    }
    uint64_t s[8] = {(uint64_t)STATE.step, STATE.forward_count, STATE.data_position,
                     STATE.tokens_seen, 0, 0, 0, 0};
    memcpy(&s[4], &STATE.elapsed_s, 8);
    memcpy(p, s, 64);
    put_file(path, buf, bytes);
    free(buf);
    free(cfg);
    Config c;
    checkpoint_read_config(path, &c);
    CHECK(c.d_model == ckcfg.d_model && c.n_layer == ckcfg.n_layer, "v1 config reads");
    model_build(&n, &c);
    TrainState st = {0};
    checkpoint_load(path, &n, &st);
    CHECK(same_model(&m, &n), "a v1 checkpoint loads bit-identically");
    CHECK(same_state(&st), "v1 training state");
    CHECK(checkpoint_threads(path) == 0, "v1 records no thread count");
    // and re-saved as v2 it still matches
    char p2[600];
    snprintf(p2, sizeof p2, "%s.v2", path);
    checkpoint_save(p2, &n, &st);
    Model o;
    model_build(&o, &c);
    checkpoint_load(p2, &o, NULL);
    CHECK(same_model(&m, &o), "v1 -> v2 conversion");
    model_free(&m), model_free(&n), model_free(&o);
}

static void load_child(const void *arg) {
    const char *path = arg;
    Config c;
    checkpoint_read_config(path, &c);
    Model m;
    model_build(&m, &c);
    checkpoint_load(path, &m, NULL);
}

// The in-memory entry points: st_parse and checkpoint_parse_config_v2/load_v2 give what the
// file readers give, and st_close leaves the caller's buffer alone.
static void test_memory(const char *path) {
    Model m, n;
    model_build(&m, &ckcfg);
    fill_model(&m, 5);
    checkpoint_save(path, &m, &STATE);
    size_t len;
    unsigned char *buf = read_file(path, &len, "checkpoint");
    StFile f, g;
    st_open(&f, path, "checkpoint");
    st_parse(&g, buf, len, path, "checkpoint");
    int same = f.count == g.count && f.data_start == g.data_start && !g.mapped && f.mapped;
    for (size_t i = 0; same && i < f.count; i++)
        same = !strcmp(f.tensors[i].name, g.tensors[i].name) &&
               f.tensors[i].begin == g.tensors[i].begin && g.tensors[i].checksum &&
               !memcmp(st_data(&f, &f.tensors[i]), st_data(&g, &g.tensors[i]),
                       f.tensors[i].end - f.tensors[i].begin);
    CHECK(same, "st_parse of the bytes == st_open of the file");
    st_close(&g);
    st_close(&f);
    CHECK(buf[8] == '{', "st_close leaves the caller's buffer mapped and intact");
    Config c;
    checkpoint_parse_config_v2(buf, len, path, &c);
    char *a = config_to_string(&ckcfg), *b = config_to_string(&c);
    CHECK(!strcmp(a, b), "checkpoint_parse_config_v2: the config");
    free(a), free(b);
    model_build(&n, &c);
    TrainState st = {0};
    checkpoint_load_v2(buf, len, path, &n, &st);
    CHECK(same_model(&m, &n) && same_state(&st), "checkpoint_load_v2 from memory: bit-identical");
    model_free(&m), model_free(&n);
    xfree(buf);
}

// A copy of checkpoint src with tensor `name` re-declared (shape swapped, or another dtype of
// the same element size); the checksums are recomputed, so only the table check can catch it.
// config: when not NULL, the config metadata is replaced by it.
static void write_altered(const char *src, const char *dst, const char *name, int swap,
                          StDtype dtype, const char *config) {
    StFile f;
    st_open(&f, src, "checkpoint");
    StWriter *w = st_writer_open(dst, "checkpoint", 1);
    for (const cJSON *v = f.meta->child; v; v = v->next)
        if (strncmp(v->string, "checksum.", 9) != 0)
            st_writer_meta(w, v->string,
                           config && !strcmp(v->string, "config") ? config : v->valuestring);
    for (size_t i = 0; i < f.count; i++) {
        const StTensor *t = &f.tensors[i];
        int64_t shape[ST_MAX_DIM];
        memcpy(shape, t->shape, sizeof shape);
        StDtype d = t->dtype;
        if (!strcmp(t->name, name)) {
            if (swap) shape[0] = t->shape[1], shape[1] = t->shape[0];
            else d = dtype;
        }
        st_writer_add(w, t->name, d, t->ndim, shape, st_data(&f, t));
    }
    st_writer_close(w);
    st_close(&f);
}

static void test_table_mismatch(const char *path) {
    Model m;
    model_build(&m, &ckcfg);
    fill_model(&m, 6);
    checkpoint_save(path, &m, &STATE);
    model_free(&m);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/damaged.ckpt", dir);
    write_altered(path, bad, "blocks.0.attn.qkv.weight", 1, ST_F32, NULL);
    CHECK(check_child_fails(load_child, bad, "tensor 'blocks.0.attn.qkv.weight' has 2 dimensions"),
          "a transposed tensor fails naming it");
    write_altered(path, bad, "adam.t", 0, ST_F64, NULL);
    CHECK(check_child_fails(load_child, bad, "tensor 'adam.t' has dtype F64, expected I64"),
          "adam.t of a float dtype fails naming it");
    // a config value that config_resolve rejects: the error names the checkpoint too
    cJSON *cfg = config_to_json(&ckcfg);
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "d_ff", cJSON_CreateNumber(0));
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    write_altered(path, bad, "", 0, ST_F32, text);
    free(text);
    char needle[700];
    snprintf(needle, sizeof needle, "checkpoint '%s': key 'd_ff' must be positive", bad);
    CHECK(check_child_fails(load_child, bad, needle), "a bad config value names the checkpoint");
}

static void test_corruption(const char *path) {
    Model m;
    model_build(&m, &ckcfg);
    fill_model(&m, 4);
    checkpoint_save(path, &m, &STATE);
    model_free(&m);
    size_t len;
    unsigned char *orig = read_file(path, &len, "checkpoint");
    StFile f;
    st_open(&f, path, "checkpoint");
    size_t ds = f.data_start, dl = len - ds;
    char bad[600];
    snprintf(bad, sizeof bad, "%s/damaged.ckpt", dir);
    unsigned char *copy = malloc(len);
    // ~50 flipped bytes spread over the data section: each fails naming its tensor
    int named = 0, samples = 50;
    for (int k = 0; k < samples; k++) {
        size_t off = (size_t)((double)k * (dl - 1) / (samples - 1));
        const StTensor *t = NULL;
        for (size_t i = 0; i < f.count; i++)
            if (off >= f.tensors[i].begin && off < f.tensors[i].end) t = &f.tensors[i];
        memcpy(copy, orig, len);
        copy[ds + off] ^= (unsigned char)(1u << (k % 8));
        put_file(bad, copy, len);
        char needle[300];
        snprintf(needle, sizeof needle, "tensor '%s' fails its checksum", t ? t->name : "?");
        int ok = t && check_child_fails(load_child, bad, needle);
        CHECK(ok, "flipped byte at data offset %zu: fails naming tensor '%s'", off, t ? t->name : "?");
        named += ok;
    }
    CHECK(named == samples, "%d of %d flipped bytes caught", named, samples);
    // flipped bytes in the header fail naming the file (never load silently)
    for (int k = 0; k < 24; k++) {
        size_t off = (size_t)((double)k * (ds - 1) / 23);
        memcpy(copy, orig, len);
        copy[off] ^= 0x20;
        put_file(bad, copy, len);
        CHECK(check_child_fails(load_child, bad, bad), "flipped header byte %zu fails naming the file", off);
    }
    // truncated at several lengths: fails naming the file, no crash
    size_t cuts[] = {0, 5, 8, 9, 100, ds - 1, ds, ds + 1, ds + dl / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        put_file(bad, orig, cuts[i]);
        CHECK(check_child_fails(load_child, bad, bad), "truncated to %zu bytes: names the file", cuts[i]);
        CHECK(check_child_fails(load_child, bad, "truncated"), "truncated to %zu bytes: says so", cuts[i]);
    }
    // corrupt header JSON: a structural character replaced
    memcpy(copy, orig, len);
    char *hs = (char *)copy + 8;
    char *shape = memmem(hs, ds - 8, "\"shape\":", 8);
    CHECK(shape != NULL, "header has a shape");
    if (shape) {
        shape[7] = ';';
        put_file(bad, copy, len);
        CHECK(check_child_fails(load_child, bad, "not a valid JSON"), "corrupt header JSON");
    }
    // a foreign file of random bytes
    Rng r;
    rng_seed(&r, 9);
    for (size_t i = 0; i < 2000; i++) copy[i] = (unsigned char)rng_next(&r);
    put_file(bad, copy, 2000);
    CHECK(check_child_fails(load_child, bad, "not a routelab checkpoint"), "random bytes");
    st_close(&f);
    free(copy);
    xfree(orig);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_checkpoint.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
    omp_set_num_threads(1);
    static const char *const kv[] = {"attn", "soft", "attn_bias", "1", NULL};
    small_config(&ckcfg, kv);
    test_safetensors_roundtrip();
    test_safetensors_foreign();
    test_safetensors_bad();
    test_config_json();
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    test_roundtrip(path);
    snprintf(path, sizeof path, "%s/v1.ckpt", dir);
    test_v1(path);
    snprintf(path, sizeof path, "%s/c.ckpt", dir);
    test_memory(path);
    test_table_mismatch(path);
    test_corruption(path);
    // clean up the temporary directory (only files this test wrote)
    const char *names[] = {"all.safetensors", "hf.safetensors", "bad.safetensors", "huge.safetensors",
                           "model.ckpt", "v1.ckpt", "v1.ckpt.v2", "c.ckpt", "damaged.ckpt", NULL};
    for (const char **n = names; *n; n++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, *n);
        unlink(p);
    }
    rmdir(dir);
    return check_summary("test_checkpoint");
}
