// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"

#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define STATE_WORDS 8

void checkpoint_resolve_path(char *out, size_t cap, const char *path_or_dir) {
    if (dir_exists(path_or_dir)) join_path(out, cap, path_or_dir, "model.ckpt");
    else snprintf(out, cap, "%s", path_or_dir);
}

void checkpoint_save(const char *path, const Model *m, const TrainState *st) {
    char *cfg = config_to_string(&m->cfg);
    size_t cfg_len = strlen(cfg), P = m->table.total, nt = (size_t)m->table.count;
    size_t bytes = 256 * 4 + cfg_len + 3 * P * 4 + nt * 8 + STATE_WORDS * 8;
    char *buf = xcalloc(bytes, 1), *p = buf;
    int32_t h[256] = {0};
    h[0] = CKPT_MAGIC;
    h[1] = CKPT_VERSION;
    h[2] = (int32_t)cfg_len;
    h[3] = m->table.count;
    h[4] = (int32_t)(P & 0x7fffffff);
    h[5] = (int32_t)(P >> 31);
    h[6] = 1;
    h[7] = (int32_t)st->step;
    memcpy(p, h, sizeof h), p += sizeof h;
    memcpy(p, cfg, cfg_len), p += cfg_len;
    memcpy(p, m->params, P * 4), p += P * 4;
    memcpy(p, m->adam_m, P * 4), p += P * 4;
    memcpy(p, m->adam_v, P * 4), p += P * 4;
    for (size_t i = 0; i < nt; i++) {
        int64_t t = m->adam_t[i];
        memcpy(p, &t, 8), p += 8;
    }
    uint64_t s[STATE_WORDS] = {(uint64_t)st->step, st->forward_count, st->data_position,
                               st->tokens_seen, 0, 0, 0, 0};
    memcpy(&s[4], &st->elapsed_s, 8);
    memcpy(p, s, sizeof s), p += sizeof s;
    ASSERT((size_t)(p - buf) == bytes);
    write_file_atomic(path, buf, bytes);
    xfree(buf);
    free(cfg);
}

typedef struct {
    Config *c;
    const char *path;
} CkptIni;

static int ckpt_ini_line(void *user, const char *section, const char *name, const char *value) {
    CkptIni *x = user;
    char where[4200];
    snprintf(where, sizeof where, "checkpoint '%.4000s'", x->path);
    config_set(x->c, name, value, where);
    return 1;
}

static size_t header_floats(const int32_t *h) {
    return (size_t)(uint32_t)h[4] | ((size_t)(uint32_t)h[5] << 31);
}

// Validates the header against the file's size: every count is checked before it is used.
static void check_header(const char *buf, size_t len, const char *path, int32_t *h) {
    if (len < 1024) fatal("checkpoint '%s' is truncated (%zu bytes): re-run training", path, len);
    memcpy(h, buf, 1024);
    if (h[0] != CKPT_MAGIC)
        fatal("'%s' is not a routelab checkpoint (magic %d, expected %d)", path, h[0], CKPT_MAGIC);
    if (h[1] != CKPT_VERSION)
        fatal("checkpoint '%s' has version %d; this routelab reads version %d", path, h[1],
              CKPT_VERSION);
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

void checkpoint_parse_config(const void *data, size_t len, const char *path, Config *c) {
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
    config_resolve(c);
    xfree(text);
    // The parameter table the config implies must match the header before any tensor is
    // allocated (so a corrupt config never asks for gigabytes).
    ModelPlan plan;
    ParamTable table;
    model_plan_resolve(&plan, c);
    param_table_build(&table, c, &plan);
    size_t P = header_floats(h), nt = (size_t)h[3];
    if (P != table.total || nt != (size_t)table.count)
        fatal("checkpoint '%s' holds %zu floats in %zu tensors but its config implies %zu in %d: "
              "the file is corrupt", path, P, nt, table.total, table.count);
    param_table_free(&table);
}

static char *read_checkpoint(const char *path, size_t *len) {
    if (!file_exists(path))
        fatal("checkpoint '%s' not found (pass a run directory holding model.ckpt, or the file)", path);
    return read_file(path, len, "checkpoint");
}

void checkpoint_read_config(const char *path, Config *c) {
    size_t len;
    char *buf = read_checkpoint(path, &len);
    checkpoint_parse_config(buf, len, path, c);
    xfree(buf);
}

void checkpoint_load_buffer(const void *data, size_t len, const char *path, Model *m,
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

void checkpoint_load(const char *path, Model *m, TrainState *st) {
    size_t len;
    char *buf = read_checkpoint(path, &len);
    checkpoint_load_buffer(buf, len, path, m, st);
    xfree(buf);
}

void checkpoint_build_model(Model *m, const char *path) {
    Config c;
    checkpoint_read_config(path, &c);
    model_build(m, &c);
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
