// refcheck.c: see refcheck.h. Tolerances are the reference's rules (README section 9):
//   loss, logits, diagnostics  |c - r| <= 1e-5 + 1e-4 |r|
//   gradients                  |c - r| <= 1e-4 |r| + 1e-5 max|r|
//   params after AdamW         |c - r| <= 1e-4 |r| + 1e-4, skipping elements whose dumped
//                              gradient is below 1e-3 max|g|; untouched tensors bit-identical
#include "refcheck.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "common.h"
#include "diagnostics.h"
#include "distill.h"
#include "hf_model.h"
#include "options.h"
#include "model.h"

typedef struct {
    const char *dir;
    int verbose;
    int failures;  // within the current case
} Ctx;

static cJSON *need(const cJSON *obj, const char *key, const char *where) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) fatal("reference %s: missing field '%s' (is this a routelab reference set?)", where, key);
    return v;
}

// Typed fields: a field of the wrong type is the same one-line error as a missing one.
static const char *need_str(const cJSON *obj, const char *key, const char *where) {
    const cJSON *v = need(obj, key, where);
    if (!cJSON_IsString(v) || !v->valuestring)
        fatal("reference %s: field '%s' must be a string", where, key);
    return v->valuestring;
}

static double need_num(const cJSON *obj, const char *key, const char *where) {
    const cJSON *v = need(obj, key, where);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        fatal("reference %s: field '%s' must be a finite number", where, key);
    return v->valuedouble;
}

static double item_int(const cJSON *v, const char *key, const char *where, double lo, double hi) {
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != floor(v->valuedouble))
        fatal("reference %s: field '%s' must be an integer in [%.0f, %.0f]", where, key, lo, hi);
    return v->valuedouble;
}

static long need_int(const cJSON *obj, const char *key, const char *where, long lo, long hi) {
    return (long)item_int(need(obj, key, where), key, where, (double)lo, (double)hi);
}

static const cJSON *need_arr(const cJSON *obj, const char *key, const char *where) {
    const cJSON *v = need(obj, key, where);
    if (!cJSON_IsArray(v)) fatal("reference %s: field '%s' must be an array", where, key);
    return v;
}

static const cJSON *need_obj(const cJSON *obj, const char *key, const char *where) {
    const cJSON *v = need(obj, key, where);
    if (!cJSON_IsObject(v)) fatal("reference %s: field '%s' must be an object", where, key);
    return v;
}

// Every element of an array field must be a string.
static const cJSON *need_str_arr(const cJSON *obj, const char *key, const char *where) {
    const cJSON *arr = need_arr(obj, key, where), *v;
    cJSON_ArrayForEach(v, arr) if (!cJSON_IsString(v) || !v->valuestring)
        fatal("reference %s: field '%s' must be an array of strings", where, key);
    return arr;
}

// Elements of a {file, shape, dtype} entry; checks the types and that the shape's product fits.
static size_t entry_numel(const cJSON *entry, const char *where) {
    if (!cJSON_IsObject(entry)) fatal("reference %s: an array entry must be an object", where);
    need_str(entry, "file", where);
    need_str(entry, "dtype", where);
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, need_arr(entry, "shape", where)) {
        size_t e = (size_t)item_int(d, "shape", where, 0, 1e12);
        if (e && n > ((size_t)1 << 40) / e)
            fatal("reference %s: an array shape has more than 2^40 elements", where);
        n *= e;
    }
    return n;
}

// Loads a {file, shape, dtype} entry; checks the exact byte size.
static void *load_array(const Ctx *x, const cJSON *entry, size_t *count, const char *want_dtype) {
    size_t n = entry_numel(entry, x->dir);
    const char *file = need_str(entry, "file", x->dir);
    const char *dtype = need_str(entry, "dtype", x->dir);
    if (strcmp(dtype, want_dtype) != 0)
        fatal("reference %s: entry '%s' has dtype %s, expected %s", x->dir, file, dtype,
              want_dtype);
    char path[4096];
    join_path(path, sizeof path, x->dir, file);
    size_t len;
    void *data = read_file(path, &len, "reference array");
    if (len != 4 * n)
        fatal("reference array '%s' has %zu bytes, expected %zu (4 x %zu elements): the file is "
              "truncated or does not belong to this index.json", path, len, 4 * n, n);
    *count = n;
    return data;
}

// ----------------------------------------------------------------------------- comparisons

static void report_scalar_rule(Ctx *x, const char *what, double c, double r, double atol,
                               double rtol) {
    int ok = fabs(c - r) <= atol + rtol * fabs(r) && isfinite(c);
    if (!ok) x->failures++;
    if (x->verbose || !ok)
        printf("    %-40s %s  ours %.9g  ref %.9g  abs err %.2e\n", what, ok ? "ok  " : "FAIL", c, r,
               fabs(c - r));
}

static void report_scalar(Ctx *x, const char *what, double c, double r) {
    report_scalar_rule(x, what, c, r, 1e-5, 1e-4);
}

// Elementwise rule |c-r| <= rtol |r| + atol; returns usage (worst err / allowed).
static void report_tensor(Ctx *x, const char *what, const float *c, const float *r, size_t n,
                          double rtol, double atol_abs, double atol_rel_max, const float *skip_g,
                          double skip_below) {
    double rmax = 0.0;
    for (size_t i = 0; i < n; i++) rmax = fmax(rmax, fabs(r[i]));
    double atol = atol_abs + atol_rel_max * rmax, worst_abs = 0.0, usage = 0.0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_g && fabs(skip_g[i]) < skip_below) continue;
        double err = fabs((double)c[i] - r[i]), allowed = rtol * fabs(r[i]) + atol;
        if (!(err <= allowed)) bad++;  // NaN counts as bad
        worst_abs = fmax(worst_abs, err);
        if (allowed > 0) usage = fmax(usage, err / allowed);
        else if (err > 0) usage = INFINITY;
    }
    if (bad) x->failures++;
    if (x->verbose || bad)
        printf("    %-40s %s  max abs %.2e  rel-to-max %.2e  rule usage %.2f%s\n", what,
               bad ? "FAIL" : "ok  ", worst_abs, rmax > 0 ? worst_abs / rmax : worst_abs, usage,
               bad ? "  <-- over tolerance" : "");
}

// ----------------------------------------------------------------------------- one case
static void join_list(char *out, size_t cap, const cJSON *arr) {
    out[0] = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (out[0]) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, v->valuestring, cap - strlen(out) - 1);
    }
}

static int name_in(const cJSON *arr, const char *name) {
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) if (strcmp(v->valuestring, name) == 0) return 1;
    return 0;
}

static void set_int(Config *c, const char *key, const cJSON *v, const char *where) {
    char buf[64];
    snprintf(buf, sizeof buf, "%ld", (long)item_int(v, key, where, -2147483647.0, 2147483647.0));
    config_set(c, key, buf, "reference index.json");
}

// The config of case `name` (fields of index.json only; no file is read).
static void case_config(const cJSON *index, const char *name, const char *dir, Config *cp) {
    const cJSON *cfgj = need_obj(index, "config", dir), *cs = need_obj(index, "cases", dir);
    const cJSON *cj = need_obj(cs, name, dir);
    Config c;
    config_defaults(&c);
    static const char *ints[] = {"n_layer", "n_head", "d_model", "d_ff", "seq_len", "vocab_size",
                                 "attn_bias", "tie_embeddings", "d_g", NULL};
    for (const char **k = ints; *k; k++) set_int(&c, *k, need(cfgj, *k, dir), dir);
    config_set(&c, "gelu", need_str(cfgj, "gelu", dir), "reference");
    // The model families' keys (sets of the Hugging Face families; absent in gpt sets)
    static const char *opt_ints[] = {"n_kv_head", "head_dim", "mlp_bias", "rope_original_max_pos", NULL};
    static const char *opt_nums[] = {"ln_eps", "rope_theta", "rope_factor", "rope_low_freq_factor",
                                     "rope_high_freq_factor", NULL};
    static const char *opt_strs[] = {"family", "rope_scaling", NULL};
    for (const char **k = opt_ints; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(cfgj, *k)) set_int(&c, *k, need(cfgj, *k, dir), dir);
    for (const char **k = opt_nums; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(cfgj, *k)) {
            char num[48];
            snprintf(num, sizeof num, "%.9g", need_num(cfgj, *k, dir));
            config_set(&c, *k, num, "reference");
        }
    for (const char **k = opt_strs; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(cfgj, *k))
            config_set(&c, *k, need_str(cfgj, *k, dir), "reference");
    config_set(&c, "dropout", "0", "reference");
    char buf[STR_LEN];
    join_list(buf, sizeof buf, need_str_arr(cj, "modes", name));
    config_set(&c, "attn", buf, "reference");
    join_list(buf, sizeof buf, need_str_arr(cj, "gate_kinds", name));
    config_set(&c, "gate", buf, "reference");
    set_int(&c, "k", need(cj, "k", name), name);
    snprintf(buf, sizeof buf, "%.9g", need_num(cj, "tau", name));
    config_set(&c, "tau", buf, "reference");
    config_set(&c, "topk_scope", need_str(cj, "topk_scope", name), "reference");
    config_set(&c, "gate_grad", need_str(cj, "gate_grad", name), "reference");
    // Config keys a case sets beyond the shared format's (the block modes' block_size,
    // k_blocks, block_window): numbers or strings, each a routelab key.
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(cj, "keys");
    if (extra && !cJSON_IsObject(extra))
        fatal("%s: case %s: 'keys' must be an object of config keys", dir, name);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, extra) {
        if (cJSON_IsNumber(kv)) snprintf(buf, sizeof buf, "%.9g", kv->valuedouble);
        else if (cJSON_IsString(kv)) snprintf(buf, sizeof buf, "%s", kv->valuestring);
        else fatal("%s: case %s: keys.%s must be a number or a string", dir, name, kv->string);
        config_set(&c, kv->string, buf, "reference");
    }
    const cJSON *aj = need_obj(index, "adamw", dir);
    snprintf(buf, sizeof buf, "%.9g", need_num(aj, "lr", dir));
    config_set(&c, "lr", buf, "reference");
    snprintf(buf, sizeof buf, "%.9g", need_num(aj, "beta1", dir));
    config_set(&c, "beta1", buf, "reference");
    snprintf(buf, sizeof buf, "%.9g", need_num(aj, "beta2", dir));
    config_set(&c, "beta2", buf, "reference");
    snprintf(buf, sizeof buf, "%.9g", need_num(aj, "eps", dir));
    config_set(&c, "adam_eps", buf, "reference");
    snprintf(buf, sizeof buf, "%.9g", need_num(aj, "weight_decay", dir));
    config_set(&c, "weight_decay", buf, "reference");
    config_resolve(&c);
    *cp = c;
}

static const ParamInfo *need_param(const ParamTable *t, const cJSON *entry, const char *where) {
    const char *pname = need_str(entry, "name", where);
    const ParamInfo *p = param_find(t, pname);
    if (!p) fatal("reference %s: parameter '%s' does not exist in a model with this config",
                  where, pname);
    return p;
}

// Checks every field run_case uses of case `name`: types, ranges, parameter names and layer
// indices against the config's parameter table, and array shapes against the parameters.
// Reads no array file and allocates no model.
static void check_case(const cJSON *index, const char *name, const char *dir) {
    Config c;
    case_config(index, name, dir, &c);
    const cJSON *cj = need_obj(need_obj(index, "cases", dir), name, dir);
    ModelPlan plan;
    ParamTable t;
    model_plan_resolve(&plan, &c);
    param_table_build(&t, &c, &plan);
    need_str(cj, "loss_kind", name);
    const cJSON *e;
    cJSON_ArrayForEach(e, need_arr(index, "params", dir)) {
        size_t n = entry_numel(e, dir);
        const ParamInfo *p = need_param(&t, e, dir);
        if (n != p->numel)
            fatal("reference %s: parameter '%s' has shape of %zu elements, the config implies %zu",
                  dir, p->name, n, p->numel);
    }
    need_str_arr(cj, "trainable", name);
    need_str_arr(cj, "updated", name);
    long B = need_int(need_obj(index, "config", dir), "batch", dir, 1, 1L << 20);
    static const char *io[] = {"inputs", "targets", "logits"};
    for (int i = 0; i < 3; i++) {
        size_t n = entry_numel(need(cj, io[i], name), name);
        size_t want = (size_t)B * c.seq_len * (i == 2 ? (size_t)c.vocab_size : 1);
        if (n != want)
            fatal("reference %s: %s of case %s has %zu elements, expected %zu", dir, io[i], name,
                  n, want);
    }
    cJSON_ArrayForEach(e, need_arr(cj, "mask_files", name)) {
        entry_numel(e, name);
        need_int(e, "layer", name, 0, c.n_layer - 1);
        need_str(e, "layout", name);
    }
    cJSON_ArrayForEach(e, need_arr(cj, "grads", name)) {
        if (!cJSON_IsBool(need(e, "grad_is_none", name)))
            fatal("reference %s: field 'grad_is_none' must be true or false", name);
        const ParamInfo *p = need_param(&t, e, name);
        if (!cJSON_IsTrue(need(e, "grad_is_none", name)) && entry_numel(e, name) != p->numel)
            fatal("reference %s: gradient '%s' has the wrong shape", name, p->name);
    }
    const cJSON *dj = need_obj(cj, "diagnostics", name);
    cJSON_ArrayForEach(e, dj) {
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < c.n_layer)
            fatal("reference %s: diagnostics must be arrays of one number per layer", name);
        const cJSON *v;
        cJSON_ArrayForEach(v, e) if (!cJSON_IsNumber(v))
            fatal("reference %s: diagnostics must be arrays of one number per layer", name);
    }
    need_num(cj, "loss", name);
    const cJSON *adamw = need_obj(cj, "adamw", name);
    long steps = need_int(adamw, "steps", name, 0, 3);
    const cJSON *lj = need_arr(adamw, "losses", name), *v;
    if (cJSON_GetArraySize(lj) < steps)
        fatal("reference %s: adamw.losses must hold one loss per step (%ld)", name, steps);
    cJSON_ArrayForEach(v, lj) if (!cJSON_IsNumber(v))
        fatal("reference %s: adamw.losses must be numbers", name);
    need_num(adamw, "loss_after", name);
    cJSON_ArrayForEach(e, need_arr(adamw, "params", name)) {
        const ParamInfo *p = need_param(&t, e, name);
        if (entry_numel(e, name) != p->numel)
            fatal("reference %s: parameter '%s' after AdamW has the wrong shape", name, p->name);
    }
    param_table_free(&t);
}

// Parses and checks a whole index.json: format_version, case_names and every case.
static cJSON *parse_index(const char *text, const char *path, const char *dir) {
    cJSON *index = cJSON_Parse(text);
    if (!index) fatal("reference index '%s' is not valid JSON (re-copy the reference set)", path);
    if (!cJSON_IsObject(index)) fatal("reference index '%s' is not a JSON object", path);
    long fv = need_int(index, "format_version", dir, -1000000, 1000000);
    if (fv != 1)
        fatal("reference index '%s' has format_version %ld; this routelab reads version 1", path,
              fv);
    const cJSON *nj;
    cJSON_ArrayForEach(nj, need_str_arr(index, "case_names", dir))
        check_case(index, nj->valuestring, dir);
    return index;
}

void refcheck_check_index(const char *text, const char *dir) {
    cJSON_Delete(parse_index(text, "index.json", dir));
}

// Returns 1 pass, 0 fail, -1 skipped.
static int run_case(Ctx *x, const cJSON *index, const char *name) {
    const cJSON *cfgj = need(index, "config", x->dir), *cs = need(index, "cases", x->dir);
    const cJSON *cj = need(cs, name, x->dir);
    const char *loss_kind = need_str(cj, "loss_kind", name);
    int distill = strcmp(loss_kind, "lm") != 0;
    Config c;
    case_config(index, name, x->dir, &c);

    Model m;
    model_build(&m, &c);
    // weights
    const cJSON *pj;
    int loaded = 0;
    cJSON_ArrayForEach(pj, need(index, "params", x->dir)) {
        const char *pname = need(pj, "name", x->dir)->valuestring;
        const ParamInfo *p = param_find(&m.table, pname);
        if (!p) fatal("reference %s: parameter '%s' does not exist in a model with this config",
                      x->dir, pname);
        size_t n;
        float *w = load_array(x, pj, &n, "float32");
        if (n != p->numel)
            fatal("reference %s: parameter '%s' has %zu elements, the config implies %zu", x->dir,
                  pname, n, p->numel);
        memcpy(m.params + p->offset, w, n * sizeof(float));
        xfree(w);
        loaded++;
    }
    if (loaded != m.table.count)
        fatal("reference %s: %d parameters listed, the config implies %d", x->dir, loaded,
              m.table.count);
    // trainable set, and which tensors must get a gradient
    const cJSON *trainable = need(cj, "trainable", name);
    unsigned char *listed = xcalloc((size_t)m.table.count, 1);
    for (int i = 0; i < m.table.count; i++) listed[i] = name_in(trainable, m.table.info[i].name);
    model_set_trainable(&m, listed, distill ? OBJECTIVE_GATE_DISTILL : OBJECTIVE_LM);
    xfree(listed);
    // inputs, targets, masks
    size_t n_in, n_tg;
    int *inputs = load_array(x, need(cj, "inputs", name), &n_in, "int32");
    int *targets = load_array(x, need(cj, "targets", name), &n_tg, "int32");
    int B = (int)need_int(cfgj, "batch", x->dir, 1, 1L << 20), T = c.seq_len;
    if (n_in != (size_t)B * T || n_tg != n_in)
        fatal("reference %s: inputs/targets of case %s are not (batch, seq_len)", x->dir, name);
    // The reference's stochastic / random_fixed masks, replayed through the KeepMasks seam.
    float *masks[MAX_LAYERS] = {0};
    int mask_per_forward[MAX_LAYERS] = {0};
    KeepMasks given;
    memset(&given, 0, sizeof given);
    const cJSON *mf;
    cJSON_ArrayForEach(mf, need(cj, "mask_files", name)) {
        int l = (int)need_int(mf, "layer", name, 0, c.n_layer - 1);
        size_t n;
        xfree(masks[l]);
        masks[l] = load_array(x, mf, &n, "float32");
        mask_per_forward[l] = strncmp(need_str(mf, "layout", name), "forward", 7) == 0;
        // layout "forward,batch,head,query,key": one (B, H, T, T) mask per forward pass;
        // "head,query,key": one (H, T, T) mask for every batch row and forward
        size_t HTT = (size_t)c.n_head * T * T;
        size_t want = mask_per_forward[l] ? ((size_t)need_int(need(cj, "adamw", name), "steps",
                                                              name, 0, 3) + 1) * B * HTT : HTT;
        if (n < want)
            fatal("reference %s: keep mask of layer %d in case %s has %zu elements, expected %zu",
                  x->dir, l, name, n, want);
    }
    size_t BHTT = (size_t)B * c.n_head * T * T;
    int any_mask = 0;
    for (int l = 0; l < c.n_layer; l++) given.per_batch[l] = mask_per_forward[l], any_mask |= masks[l] != NULL;
    if (distill && any_mask)
        fatal("reference %s: case %s gives keep masks to a distillation case (not supported)",
              x->dir, name);

    printf("  case %-18s ", name);
    fflush(stdout);
    if (x->verbose) printf("\n");
    x->failures = 0;
    // grad presence
    const cJSON *gj;
    int gi = 0;
    cJSON_ArrayForEach(gj, need(cj, "grads", name)) {
        int none = cJSON_IsTrue(need(gj, "grad_is_none", name));
        const ParamInfo *p = param_find(&m.table, need(gj, "name", name)->valuestring);
        ASSERT(p);
        int i = (int)(p - m.table.info);
        if (none == m.gets_grad[i]) {
            x->failures++;
            printf("\n    %-40s FAIL  reference grad_is_none=%d but routelab %s\n", p->name,
                   none, m.gets_grad[i] ? "produces a gradient" : "produces none");
        }
        gi++;
    }
    double losses[4];
    float *logits_copy = NULL, *grads0 = xcalloc(m.table.total, sizeof(float));
    LayerDiag diag[MAX_LAYERS];
    const cJSON *adamw = need(cj, "adamw", name);
    int steps = (int)need_int(adamw, "steps", name, 0, 3);
    for (int f = 0; f <= steps; f++) {
        for (int l = 0; l < c.n_layer; l++)
            given.mask[l] = masks[l] ? masks[l] + (mask_per_forward[l] ? (size_t)f * BHTT : 0) : NULL;
        model_zero_grad(&m);
        double loss;
        if (distill) {
            loss = distill_forward_backward(&m, inputs, B, T, loss_kind, m.plan.attn.k[0], f < steps);
        } else {
            loss = model_forward_given(&m, inputs, targets, B, T, &given);
        }
        losses[f] = loss;
        if (f == 0) {
            size_t NV = (size_t)B * T * c.vocab_size;
            logits_copy = xcalloc(NV, sizeof(float));
            memcpy(logits_copy, m.logits, NV * sizeof(float));
        }
        if (f == steps) break;
        if (!distill) model_backward(&m, 1.0f);
        if (f == 0) {
            memcpy(grads0, m.grads, m.table.total * sizeof(float));
            diagnostics_compute_given(diag, &m, &given);
        }
        adamw_step(&m, c.lr);
    }
    // forward 0: loss, logits, diagnostics, grads
    report_scalar(x, "loss", losses[0], need(cj, "loss", name)->valuedouble);
    size_t nl;
    float *ref_logits = load_array(x, need(cj, "logits", name), &nl, "float32");
    report_tensor(x, "logits", logits_copy, ref_logits, nl, 1e-4, 1e-5, 0.0, NULL, 0);
    const cJSON *dj = need(cj, "diagnostics", name);
    static const char *dnames[] = {"topk_mass", "entropy_ratio", "gate_precision", "gate_recall",
                                   "gate_f1", "kept_fraction", "empty_rows", "gate_grad_norm"};
    for (int di = 0; di < 8; di++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(dj, dnames[di]);
        if (!arr) continue;
        for (int l = 0; l < c.n_layer; l++) {
            const LayerDiag *d = &diag[l];
            double ours[8] = {d->topk_mass, d->entropy_ratio, d->gate_precision, d->gate_recall,
                              d->gate_f1, d->kept_fraction, (double)d->empty_rows, d->gate_grad_norm};
            char what[96];
            snprintf(what, sizeof what, "%s[%d]", dnames[di], l);
            double r = cJSON_GetArrayItem(arr, l)->valuedouble;
            if (di == 7)  // soft-gate norms are ~1e-5: an absolute 1e-5 would accept anything
                report_scalar_rule(x, what, ours[di], r, 1e-9, 1e-3);
            else
                report_scalar(x, what, ours[di], r);
        }
    }
    cJSON_ArrayForEach(gj, need(cj, "grads", name)) {
        if (cJSON_IsTrue(need(gj, "grad_is_none", name))) continue;
        const ParamInfo *p = param_find(&m.table, need(gj, "name", name)->valuestring);
        size_t n;
        float *r = load_array(x, gj, &n, "float32");
        char what[96];
        snprintf(what, sizeof what, "grad %s", p->name);
        report_tensor(x, what, grads0 + p->offset, r, n, 1e-4, 0.0, 1e-5, NULL, 0);
        xfree(r);
    }
    // AdamW trajectory
    const cJSON *lj = need(adamw, "losses", name);
    for (int f = 1; f < steps; f++) {
        char what[64];
        snprintf(what, sizeof what, "loss after step %d", f);
        report_scalar(x, what, losses[f], cJSON_GetArrayItem(lj, f)->valuedouble);
    }
    report_scalar(x, "loss_after", losses[steps], need(adamw, "loss_after", name)->valuedouble);
    const cJSON *updated = need(cj, "updated", name);
    cJSON_ArrayForEach(pj, need(adamw, "params", name)) {
        const ParamInfo *p = param_find(&m.table, need(pj, "name", name)->valuestring);
        size_t n;
        float *r = load_array(x, pj, &n, "float32");
        char what[96];
        snprintf(what, sizeof what, "after %s", p->name);
        const float *cur = m.params + p->offset;
        if (!name_in(updated, p->name)) {  // untouched: bit-identical
            if (memcmp(cur, r, n * sizeof(float)) != 0) {
                x->failures++;
                printf("\n    %-40s FAIL  not updated in the reference, changed here\n", what);
            }
        } else {
            const float *g = grads0 + p->offset;
            double gmax = 0.0;
            for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
            report_tensor(x, what, cur, r, n, 1e-4, 1e-4, 0.0, g, 1e-3 * gmax);
        }
        xfree(r);
    }
    if (!x->verbose) printf("%s\n", x->failures ? "FAIL" : "pass");
    else printf("  => %s\n", x->failures ? "FAIL" : "pass");
    int ok = x->failures == 0;
    xfree(ref_logits);
    xfree(logits_copy);
    xfree(grads0);
    xfree(inputs);
    xfree(targets);
    for (int l = 0; l < MAX_LAYERS; l++) xfree(masks[l]);
    model_free(&m);
    return ok;
}

// A set of a Hugging Face family also holds its initial weights as a real Hugging Face
// directory (index.json "hf_dir"): its config.json must give the set's model and its tensors
// (F32, BF16 or sharded) the values of weights/ bit for bit. Returns 1 pass, 0 fail.
static int check_hf_dir(Ctx *x, const cJSON *index) {
    char hf[4096];
    join_path(hf, sizeof hf, x->dir, need_str(index, "hf_dir", x->dir));
    printf("  %-22s ", "hf_dir");
    fflush(stdout);
    Config c, h;
    case_config(index, need_str_arr(index, "case_names", x->dir)->child->valuestring, x->dir, &c);
    hf_read_config(hf, &h);
    int bad = 0;
#define SAME(field) if (c.field != h.field) bad++, printf("\n    config.json gives %s = %g, the set %g", #field, (double)h.field, (double)c.field)
    SAME(n_layer); SAME(d_model); SAME(n_head); SAME(d_ff); SAME(vocab_size); SAME(tie_embeddings);
    SAME(ln_eps); SAME(rope_theta);
#undef SAME
    ModelPlan pc, ph;  // head_dim and n_kv_head as resolved (0 and the explicit value agree)
    model_plan_resolve(&pc, &c);
    model_plan_resolve(&ph, &h);
    if (pc.shape.head_dim != ph.shape.head_dim || pc.shape.n_kv_head != ph.shape.n_kv_head)
        bad++, printf("\n    config.json gives head_dim %d, %d K/V heads; the set %d, %d",
                      ph.shape.head_dim, ph.shape.n_kv_head, pc.shape.head_dim, pc.shape.n_kv_head);
    if (strcmp(c.family, h.family) || strcmp(c.rope_scaling, h.rope_scaling))
        bad++, printf("\n    config.json gives family %s / rope %s, the set %s / %s", h.family,
                      h.rope_scaling, c.family, c.rope_scaling);
    Model m;
    model_build(&m, &c);
    hf_load(hf, &m);
    const cJSON *pj;
    cJSON_ArrayForEach(pj, need(index, "params", x->dir)) {
        const ParamInfo *p = param_find(&m.table, need_str(pj, "name", x->dir));
        if (!p || p->role == ROLE_GATE) continue;  // gates are routelab's own: weights/ only
        size_t n;
        float *w = load_array(x, pj, &n, "float32");
        if (n != p->numel || memcmp(w, m.params + p->offset, n * sizeof(float)))
            bad++, printf("\n    %s differs between %s and weights/", p->name, hf);
        xfree(w);
    }
    model_free(&m);
    printf("%s\n", bad ? "\n  => FAIL" : "pass");
    return bad == 0;
}

static int run_set(const char *dir, const char *only, int verbose, int *passed, int *failed,
                   int *skipped) {
    char path[4096];
    join_path(path, sizeof path, dir, "index.json");
    size_t len;
    char *text = read_file(path, &len, "reference index");
    cJSON *index = parse_index(text, path, dir);
    Ctx x = {dir, verbose, 0};
    printf("reference set %s\n", dir);
    const cJSON *nj;
    int found = 0;
    if (cJSON_GetObjectItemCaseSensitive(index, "hf_dir") && (!only || !strcmp(only, "hf_dir"))) {
        found = 1;
        if (check_hf_dir(&x, index)) (*passed)++;
        else (*failed)++;
    }
    cJSON_ArrayForEach(nj, need(index, "case_names", dir)) {
        const char *name = nj->valuestring;
        if (only && strcmp(only, name) != 0) continue;
        found = 1;
        int r = run_case(&x, index, name);
        if (r > 0) (*passed)++;
        else if (r == 0) (*failed)++;
        else (*skipped)++;
    }
    if (only && !found) printf("  (no case named '%s' here)\n", only);
    cJSON_Delete(index);
    xfree(text);
    return 0;
}

int cmd_refcheck(int argc, char **argv) {
    const char *dir = NULL, *only = NULL, *pos[2] = {NULL, NULL};
    int verbose = 0;
    const Option opts[] = {
        {"case", OPT_STRING, &only, NULL, "only the case of this name", 0, 0},
        {"verbose", OPT_FLAG, &verbose, NULL, "print every comparison", 0, 0},
    };
    OptSpec os = {.cmd = "refcheck", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .positional = pos, .max_positional = 2};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab refcheck DIR [--case=NAME] [--verbose]\n"
               "  Checks logits, loss, diagnostics, every gradient and three AdamW steps\n"
               "  against reference cases dumped by the PyTorch twin (../shared/ref format).\n"
               "  DIR is one case set (holding index.json) or a directory of sets.\n"
               "  Exit status 0 only when every case passes.\n");
        return 0;
    }
    dir = pos[0];
    if (os.n_positional > 1) fatal("refcheck: one DIR only, got '%s' too", pos[1]);
    if (!dir) fatal("refcheck: give the reference directory, e.g. routelab refcheck ../shared/ref");
    if (!dir_exists(dir)) fatal("refcheck: '%s' is not a directory", dir);
    int passed = 0, failed = 0, skipped = 0;
    char path[4096];
    join_path(path, sizeof path, dir, "index.json");
    if (file_exists(path)) {
        run_set(dir, only, verbose, &passed, &failed, &skipped);
    } else {
        struct dirent **ents;
        int n = scandir(dir, &ents, NULL, alphasort), sets = 0;
        for (int i = 0; i < n; i++) {
            char sub[4096], idx[4200];
            join_path(sub, sizeof sub, dir, ents[i]->d_name);
            join_path(idx, sizeof idx, sub, "index.json");
            if (ents[i]->d_name[0] != '.' && file_exists(idx)) {
                run_set(sub, only, verbose, &passed, &failed, &skipped);
                sets++;
            }
            free(ents[i]);
        }
        free(ents);
        if (!sets) fatal("refcheck: no index.json in '%s' or its subdirectories", dir);
    }
    printf("refcheck: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
