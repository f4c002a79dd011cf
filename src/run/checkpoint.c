// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "hf_model.h"
#include "safetensors.h"

#define STATE_WORDS 8

void checkpoint_resolve_path(char *out, size_t cap, const char *path_or_dir) {
    char ckpt[4096];
    join_path(ckpt, sizeof ckpt, path_or_dir, "model.ckpt");
    // a Hugging Face model directory stands for itself (unless it is also a run directory)
    if (dir_exists(path_or_dir) && !file_exists(ckpt) && hf_is_model_dir(path_or_dir))
        snprintf(out, cap, "%s", path_or_dir);
    else if (dir_exists(path_or_dir)) join_path(out, cap, path_or_dir, "model.ckpt");
    else snprintf(out, cap, "%s", path_or_dir);
}

typedef struct {
    Config *c;
    const char *path;
} CkptIni;

static int ckpt_ini_line(void *user, const char *section, const char *name, const char *value) {
    CkptIni *x = user;
    char where[4200];
    snprintf(where, sizeof where, "checkpoint '%s'", x->path);
    config_set(x->c, name, value, where);
    return 1;
}

// ----------------------------------------------------------------------------- format 1
// The legacy binary layout: a 1024-byte int32 header, the config as INI text, then params,
// AdamW moments, per-tensor step counts and the state words. Parsed from memory, every count
// checked against the size before use (the fuzz target calls these directly).
static size_t header_floats(const int32_t *h) {
    return (size_t)(uint32_t)h[4] | ((size_t)(uint32_t)h[5] << 31);
}

// Validates the header against the file's size: every count is checked before it is used.
static void check_header(const char *buf, size_t len, const char *path, int32_t *h) {
    if (len < 1024) fatal("checkpoint '%s' is truncated (%zu bytes): re-run training", path, len);
    memcpy(h, buf, 1024);
    if (h[0] != CKPT_MAGIC)
        fatal("'%s' is not a routelab checkpoint (magic %d, expected %d)", path, h[0], CKPT_MAGIC);
    if (h[1] != 1) fatal("checkpoint '%s' has version %d; expected 1", path, h[1]);
    if (h[2] < 0 || (size_t)h[2] > len - 1024) fatal("checkpoint '%s' is truncated", path);
    if (h[3] < 0 || h[4] < 0 || h[5] < 0 || (h[6] != 0 && h[6] != 1))
        fatal("checkpoint '%s' has a corrupt header (tensor count %d, float count %d:%d, "
              "optimizer flag %d)", path, h[3], h[5], h[4], h[6]);
    // The file's size bounds the counts, so the sums below cannot overflow.
    size_t body = len - 1024 - (size_t)h[2], P = header_floats(h), nt = (size_t)h[3];
    size_t per_float = h[6] ? 12 : 4, per_tensor = h[6] ? 8 : 0;
    if (P > body / per_float || nt * per_tensor > body - P * per_float ||
        body != P * per_float + nt * per_tensor + STATE_WORDS * 8)
        fatal("checkpoint '%s' has %zu bytes, but its header promises %zu floats in %zu tensors"
              "%s: truncated or corrupt (use an earlier copy or re-run)", path, len, P, nt,
              h[6] ? " with optimizer state" : "");
}

void checkpoint_parse_config_v1(const void *data, size_t len, const char *path, Config *c) {
    const char *buf = data;
    int32_t h[256];
    check_header(buf, len, path, h);
    char *text = xcalloc((size_t)h[2] + 1, 1);
    memcpy(text, buf + 1024, (size_t)h[2]);
    if (strlen(text) != (size_t)h[2]) fatal("checkpoint '%s': its config text is corrupt", path);
    config_defaults(c);
    CkptIni x = {c, path};
    if (ini_parse_string(text, ckpt_ini_line, &x) != 0)
        fatal("checkpoint '%s': its config text is corrupt", path);
    xfree(text);
    // The parameter table the config implies must match the header before any tensor is
    // allocated (so a corrupt config never asks for gigabytes).
    char where[4200];
    snprintf(where, sizeof where, "checkpoint '%s'", path);
    ModelPlan plan;
    ParamTable table;
    fatal_context(where);  // a bad value names the checkpoint
    config_resolve(c);
    model_plan_resolve(&plan, c);
    param_table_build(&table, c, &plan);
    fatal_context(NULL);
    size_t P = header_floats(h), nt = (size_t)h[3];
    if (P != table.total || nt != (size_t)table.count)
        fatal("checkpoint '%s' holds %zu floats in %zu tensors but its config implies %zu in %d: "
              "the file is corrupt", path, P, nt, table.total, table.count);
    param_table_free(&table);
}

void checkpoint_load_v1(const void *data, size_t len, const char *path, Model *m,
                            TrainState *st) {
    const char *buf = data;
    int32_t h[256];
    check_header(buf, len, path, h);
    size_t P = header_floats(h), nt = (size_t)h[3];
    if (P != m->table.total || nt != (size_t)m->table.count)
        fatal("checkpoint '%s' holds %zu floats in %zu tensors but its config implies %zu in %d: "
              "the file is corrupt", path, P, nt, m->table.total, m->table.count);
    const char *p = buf + 1024 + h[2];
    memcpy(m->params, p, P * 4), p += P * 4;
    if (h[6]) {
        memcpy(m->adam_m, p, P * 4), p += P * 4;
        memcpy(m->adam_v, p, P * 4), p += P * 4;
        for (size_t i = 0; i < nt; i++) {
            int64_t t;
            memcpy(&t, p, 8), p += 8;
            m->adam_t[i] = (long)t;
        }
    }
    uint64_t s[STATE_WORDS];
    memcpy(s, p, sizeof s);
    if (st) {
        st->step = (int64_t)s[0];
        st->forward_count = s[1];
        st->data_position = s[2];
        st->tokens_seen = s[3];
        memcpy(&st->elapsed_s, &s[4], 8);
    }
    m->forward_count = s[1];
}

static char *read_whole(const char *path, size_t *len) {
    if (!file_exists(path))
        fatal("checkpoint '%s' not found (pass a run directory holding model.ckpt, or the file)", path);
    return read_file(path, len, "checkpoint");
}

static void read_config_v1(const char *path, Config *c) {
    size_t len;
    char *buf = read_whole(path, &len);
    checkpoint_parse_config_v1(buf, len, path, c);
    xfree(buf);
}

static void load_v1(const char *path, Model *m, TrainState *st) {
    size_t len;
    char *buf = read_whole(path, &len);
    checkpoint_load_v1(buf, len, path, m, st);
    xfree(buf);
}

// ----------------------------------------------------------------------------- format 2
#define CKPT_FORMAT "routelab-checkpoint"

void checkpoint_save(const char *path, const Model *m, const TrainState *st) {
    const ParamTable *tab = &m->table;
    size_t nt = (size_t)tab->count;
    StWriter *w = st_writer_open(path, "checkpoint", 1);
    char buf[64];
    st_writer_meta(w, "format", CKPT_FORMAT);
    snprintf(buf, sizeof buf, "%d", CKPT_VERSION);
    st_writer_meta(w, "version", buf);
    cJSON *cfg = config_to_json(&m->cfg);
    char *cfg_text = cJSON_PrintUnformatted(cfg);
    if (!cfg_text) fatal("out of memory writing checkpoint '%s'", path);
    cJSON_Delete(cfg);
    st_writer_meta(w, "config", cfg_text);
    free(cfg_text);
    snprintf(buf, sizeof buf, "%" PRId64, st->step);
    st_writer_meta(w, "step", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, st->forward_count);
    st_writer_meta(w, "forward_count", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, st->data_position);
    st_writer_meta(w, "data_position", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, st->tokens_seen);
    st_writer_meta(w, "tokens_seen", buf);
    snprintf(buf, sizeof buf, "%.17g", st->elapsed_s);
    st_writer_meta(w, "elapsed_s", buf);
    snprintf(buf, sizeof buf, "%d", omp_get_max_threads());
    st_writer_meta(w, "threads", buf);
    if (dist_size() > 1) {  // absent: one process (checkpoints of single runs are unchanged)
        snprintf(buf, sizeof buf, "%d", dist_size());
        st_writer_meta(w, "ranks", buf);
    }
    const char *blas = openblas_get_config();
    st_writer_meta(w, "blas", blas ? blas : "");
    // parameters, then the AdamW moments by the same names, then the step counts
    const float *bufs[3] = {m->params, m->adam_m, m->adam_v};
    const char *prefix[3] = {"", "adam.m.", "adam.v."};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < nt; i++) {
            const ParamInfo *p = &tab->info[i];
            int64_t shape[2] = {p->shape[0], p->ndim > 1 ? p->shape[1] : 1};
            ASSERT((size_t)(shape[0] * shape[1]) == p->numel);
            char name[160];
            snprintf(name, sizeof name, "%s%s", prefix[b], p->name);
            st_writer_add(w, name, ST_F32, p->ndim, shape, bufs[b] + p->offset);
        }
    int64_t *t = xcalloc(nt, sizeof *t), tshape[1] = {(int64_t)nt};
    for (size_t i = 0; i < nt; i++) t[i] = m->adam_t[i];
    st_writer_add(w, "adam.t", ST_I64, 1, tshape, t);
    st_writer_close(w);
    xfree(t);
}

// The format of path: 1 or 2 (dies when it is neither).
#define CKPT_HF_DIR 3  // not a file version: a Hugging Face model directory (hf_model.h)

static int checkpoint_version(const char *path) {
    if (hf_is_model_dir(path)) return CKPT_HF_DIR;
    if (!file_exists(path))
        fatal("checkpoint '%s' not found (pass a run directory holding model.ckpt, or the file)", path);
    FILE *f = xfopen(path, "rb", "checkpoint");
    unsigned char h[9];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < sizeof h)
        fatal("checkpoint '%s' is truncated (%zu bytes): use an earlier copy or re-run", path, n);
    int32_t w[2];
    uint64_t len;
    memcpy(w, h, 8);
    memcpy(&len, h, 8);
    if (w[0] == CKPT_MAGIC) {
        if (w[1] != 1)
            fatal("checkpoint '%s' has version %d; this routelab reads versions 1 and 2", path, w[1]);
        return 1;
    }
    if (len < 2 || len > ST_MAX_HEADER || h[8] != '{')
        fatal("'%s' is not a routelab checkpoint (neither format 2, a safetensors file, nor "
              "format 1)", path);
    return 2;
}

#define V2_DAMAGED "(the file is damaged: use an earlier copy or re-run)"

// The format and version metadata of an image st_open or st_parse validated.
static void check_format_v2(const StFile *f) {
    const char *fmt = st_meta(f, "format"), *ver = st_meta(f, "version");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        fatal("'%s' is a safetensors file but not a routelab checkpoint (its metadata lacks "
              "format = %s)", f->path, CKPT_FORMAT);
    if (!ver || strcmp(ver, "2") != 0)
        fatal("checkpoint '%s' has version %.32s; this routelab reads versions 1 and 2", f->path,
              ver ? ver : "(none)");
}

static void open_v2(StFile *f, const char *path) {
    st_open(f, path, "checkpoint");
    check_format_v2(f);
}

static uint64_t meta_u64(const StFile *f, const char *key, uint64_t max) {
    const char *s = st_meta(f, key);
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!s || !(*s >= '0' && *s <= '9') || *end || errno || v > max)
        fatal("checkpoint '%s': its metadata '%s' is missing or not a count %s", f->path, key,
              V2_DAMAGED);
    return (uint64_t)v;
}

// The config metadata, resolved.
static void read_config_v2(const StFile *f, Config *c) {
    const char *text = st_meta(f, "config");
    cJSON *cfg = text ? cJSON_Parse(text) : NULL;
    if (!cfg)
        fatal("checkpoint '%s': its config metadata is missing or not JSON %s", f->path,
              V2_DAMAGED);
    char where[4200];
    snprintf(where, sizeof where, "checkpoint '%s'", f->path);
    config_defaults(c);
    config_from_json(c, cfg, where);
    cJSON_Delete(cfg);
    fatal_context(where);  // a bad value names the checkpoint
    config_resolve(c);
    fatal_context(NULL);
}

// A tensor of the given shape whose dtype st_read_f32 (floats) or st_read_i64 (!floats) reads.
static void need_tensor(const StFile *f, const StTensor *t, int ndim, const int *shape,
                        int floats) {
    int is_float = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 ||
                   t->dtype == ST_F64;
    if (floats ? !is_float : is_float || t->dtype == ST_U64)
        fatal("checkpoint '%s': tensor '%s' has dtype %s, expected %s %s", f->path, t->name,
              st_dtype_name(t->dtype), floats ? "F32 (or F16, BF16, F64)" : "I64", V2_DAMAGED);
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok)
        fatal("checkpoint '%s': tensor '%s' has %d dimensions [%lld%s] but its config implies "
              "%d [%d%s] %s", f->path, t->name, t->ndim, t->ndim ? (long long)t->shape[0] : 0LL,
              t->ndim > 1 ? ", ..." : "", ndim, shape[0], ndim > 1 ? ", ..." : "", V2_DAMAGED);
}

// The tensor table against the parameter table the config implies: every parameter and both
// AdamW moments by name, shape and a float dtype, adam.t of one count per tensor, nothing else. Checked before
// a model is built or a byte is read, so a damaged config never asks for gigabytes (the file's
// own size bounds every tensor) and a file of another model fails naming the tensor.
static void check_table_v2(const StFile *f, const ParamTable *tab) {
    size_t nt = (size_t)tab->count;
    if (f->count != 3 * nt + 1)
        fatal("checkpoint '%s' holds %zu tensors but its config implies %zu %s", f->path,
              f->count, 3 * nt + 1, V2_DAMAGED);
    const char *prefix[3] = {"", "adam.m.", "adam.v."};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < nt; i++) {
            const ParamInfo *p = &tab->info[i];
            char name[160];
            snprintf(name, sizeof name, "%s%s", prefix[b], p->name);
            need_tensor(f, st_need(f, name), p->ndim, p->shape, 1);
        }
    int tshape[1] = {(int)nt};
    need_tensor(f, st_need(f, "adam.t"), 1, tshape, 0);
}

static void parse_config_v2(const StFile *f, Config *c) {
    check_format_v2(f);
    read_config_v2(f, c);
    char where[4200];
    snprintf(where, sizeof where, "checkpoint '%s'", f->path);
    ModelPlan plan;
    ParamTable table;
    fatal_context(where);
    model_plan_resolve(&plan, c);
    param_table_build(&table, c, &plan);
    fatal_context(NULL);
    check_table_v2(f, &table);
    param_table_free(&table);
}

// Verifies every checksum, then loads parameters, AdamW state and TrainState into m.
static void load_v2(const StFile *f, Model *m, TrainState *st) {
    check_format_v2(f);
    const ParamTable *tab = &m->table;
    size_t nt = (size_t)tab->count;
    check_table_v2(f, tab);
    for (size_t i = 0; i < f->count; i++) st_verify(f, &f->tensors[i], 1);
    TrainState s = {0};
    s.step = (int64_t)meta_u64(f, "step", INT64_MAX);
    s.forward_count = meta_u64(f, "forward_count", UINT64_MAX);
    s.data_position = meta_u64(f, "data_position", UINT64_MAX);
    s.tokens_seen = meta_u64(f, "tokens_seen", UINT64_MAX);
    const char *e = st_meta(f, "elapsed_s");
    char *end = NULL;
    s.elapsed_s = e ? strtod(e, &end) : 0;
    if (!e || !*e || *end || !(s.elapsed_s >= 0 && s.elapsed_s <= 1e300))
        fatal("checkpoint '%s': its metadata 'elapsed_s' is missing or not a number of seconds "
              "%s", f->path, V2_DAMAGED);
    float *bufs[3] = {m->params, m->adam_m, m->adam_v};
    const char *prefix[3] = {"", "adam.m.", "adam.v."};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < nt; i++) {
            const ParamInfo *p = &tab->info[i];
            char name[160];
            snprintf(name, sizeof name, "%s%s", prefix[b], p->name);
            st_read_f32(f, st_need(f, name), bufs[b] + p->offset, p->numel);
        }
    int64_t *t = xcalloc(nt, sizeof *t);
    st_read_i64(f, st_need(f, "adam.t"), t, nt);
    for (size_t i = 0; i < nt; i++)
        if (t[i] < 0)
            fatal("checkpoint '%s': tensor 'adam.t' holds a negative step count %s", f->path,
                  V2_DAMAGED);
    for (size_t i = 0; i < nt; i++) m->adam_t[i] = (long)t[i];
    xfree(t);
    if (st) *st = s;
    m->forward_count = s.forward_count;
}

void checkpoint_parse_config_v2(const void *data, size_t len, const char *path, Config *c) {
    StFile f;
    st_parse(&f, data, len, path, "checkpoint");
    parse_config_v2(&f, c);
    st_close(&f);
}

void checkpoint_load_v2(const void *data, size_t len, const char *path, Model *m,
                        TrainState *st) {
    StFile f;
    st_parse(&f, data, len, path, "checkpoint");
    load_v2(&f, m, st);
    st_close(&f);
}

void checkpoint_read_config(const char *path, Config *c) {
    int version = checkpoint_version(path);
    if (version == CKPT_HF_DIR) {
        hf_read_config(path, c);
        return;
    }
    if (version == 1) {
        read_config_v1(path, c);
        return;
    }
    StFile f;
    st_open(&f, path, "checkpoint");
    parse_config_v2(&f, c);
    st_close(&f);
}

void checkpoint_load(const char *path, Model *m, TrainState *st) {
    int version = checkpoint_version(path);
    if (version == CKPT_HF_DIR) {
        hf_load(path, m);  // weights only: a pretrained model starts a fresh run
        if (st) memset(st, 0, sizeof *st);
        return;
    }
    if (version == 1) {
        load_v1(path, m, st);
        return;
    }
    StFile f;
    st_open(&f, path, "checkpoint");
    load_v2(&f, m, st);
    st_close(&f);
}

int checkpoint_threads(const char *path) {
    if (checkpoint_version(path) != 2) return 0;
    StFile f;
    open_v2(&f, path);
    const char *s = st_meta(&f, "threads");
    char *end = NULL;
    long n = s ? strtol(s, &end, 10) : 0;  // not atoi: an out-of-range count is no UB
    if (!s || !*s || *end || n < 0 || n > 1 << 20) n = 0;
    st_close(&f);
    return (int)n;
}

void checkpoint_check_threads(const char *path, int force) {
    int n = checkpoint_threads(path), here = omp_get_max_threads();
    if (n == 0 || n == here) return;
    if (!force)
        fatal("resume: the run used %d threads, this invocation %d: results would diverge (pass "
              "--threads=%d, or --force to continue anyway)", n, here, n);
    warnf("resume: the run used %d threads, this invocation %d: results will not be "
          "bit-identical to an uninterrupted run (--force)", n, here);
}

void checkpoint_check_ranks(const char *path, int force) {
    int n = 1, here = dist_size();
    if (checkpoint_version(path) == 2) {
        StFile f;
        open_v2(&f, path);
        const char *s = st_meta(&f, "ranks");
        if (s && atoi(s) > 0) n = atoi(s);
        st_close(&f);
    }
    if (n == here) return;
    if (!force)
        fatal("resume: the run used %d process(es) (mpirun -np), this invocation %d: its data "
              "order and results would change (run mpirun -np %d, or pass --force)", n, here, n);
    warnf("resume: the run used %d process(es), this invocation %d: results will not be "
          "bit-identical to an uninterrupted run (--force)", n, here);
}

void checkpoint_build_model(Model *m, const char *path) {
    Config c;
    checkpoint_read_config(path, &c);
    if (checkpoint_version(path) == CKPT_HF_DIR) model_build_for_load(m, &c);
    else model_build(m, &c);
    checkpoint_load(path, m, NULL);
}

void checkpoint_init_params(Model *m, const char *path_or_dir) {
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, path_or_dir);
    Model src;
    checkpoint_build_model(&src, path);
    for (int i = 0; i < m->table.count; i++) {
        const ParamInfo *p = &m->table.info[i];
        const ParamInfo *q = param_find(&src.table, p->name);
        if (!q || q->numel != p->numel) {
            if (p->role == ROLE_GATE) continue;
            fatal("init checkpoint '%s' has no tensor '%s' of %zu elements: its model differs "
                  "(n_layer, d_model, vocab_size ... must match)", path, p->name, p->numel);
        }
        memcpy(m->params + p->offset, src.params + q->offset, p->numel * sizeof(float));
    }
    model_free(&src);
}
