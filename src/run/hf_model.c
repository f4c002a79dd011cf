// hf_model.c: see hf_model.h. Read top to bottom: the name map (one table per layout, used
// both ways), config.json -> keys, the tensor files (single or sharded), loading, exporting.
#include "hf_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "family.h"
#include "safetensors.h"

#define ROUTELAB_EXTRA "routelab.safetensors"

// ----------------------------------------------------------------------------- the name map
// A routelab tensor is the row-wise concatenation of its Hugging Face parts (q/k/v into
// attn.qkv, gate/up into mlp.fc; one part for the rest). transpose: GPT-2's Conv1D stores its
// weight as (in, out), routelab as (out, in).
typedef struct {
    const char *ours;       // name after "blocks.L." (per layer) or the whole name (global)
    const char *hf[3];      // after the layer prefix (per layer) or after the global prefix
    int transpose;
} NameRule;

static const NameRule LLAMA_LAYER[] = {
    {"ln1.weight", {"input_layernorm.weight"}, 0},
    {"attn.qkv.weight", {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}, 0},
    {"attn.qkv.bias", {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}, 0},
    {"attn.q_norm.weight", {"self_attn.q_norm.weight"}, 0},
    {"attn.k_norm.weight", {"self_attn.k_norm.weight"}, 0},
    {"attn.proj.weight", {"self_attn.o_proj.weight"}, 0},
    {"attn.proj.bias", {"self_attn.o_proj.bias"}, 0},
    {"ln2.weight", {"post_attention_layernorm.weight"}, 0},
    {"mlp.fc.weight", {"mlp.gate_proj.weight", "mlp.up_proj.weight"}, 0},
    {"mlp.fc.bias", {"mlp.gate_proj.bias", "mlp.up_proj.bias"}, 0},
    {"mlp.proj.weight", {"mlp.down_proj.weight"}, 0},
    {"mlp.proj.bias", {"mlp.down_proj.bias"}, 0},
};
static const NameRule LLAMA_GLOBAL[] = {
    {"wte.weight", {"model.embed_tokens.weight"}, 0},
    {"ln_f.weight", {"model.norm.weight"}, 0},
    {"lm_head.weight", {"lm_head.weight"}, 0},
};
static const NameRule GPT2_LAYER[] = {
    {"ln1.weight", {"ln_1.weight"}, 0},
    {"ln1.bias", {"ln_1.bias"}, 0},
    {"attn.qkv.weight", {"attn.c_attn.weight"}, 1},
    {"attn.qkv.bias", {"attn.c_attn.bias"}, 0},
    {"attn.proj.weight", {"attn.c_proj.weight"}, 1},
    {"attn.proj.bias", {"attn.c_proj.bias"}, 0},
    {"ln2.weight", {"ln_2.weight"}, 0},
    {"ln2.bias", {"ln_2.bias"}, 0},
    {"mlp.fc.weight", {"mlp.c_fc.weight"}, 1},
    {"mlp.fc.bias", {"mlp.c_fc.bias"}, 0},
    {"mlp.proj.weight", {"mlp.c_proj.weight"}, 1},
    {"mlp.proj.bias", {"mlp.c_proj.bias"}, 0},
};
static const NameRule GPT2_GLOBAL[] = {
    {"wte.weight", {"wte.weight"}, 0},
    {"wpe.weight", {"wpe.weight"}, 0},
    {"ln_f.weight", {"ln_f.weight"}, 0},
    {"ln_f.bias", {"ln_f.bias"}, 0},
    {"lm_head.weight", {"lm_head.weight"}, 0},  // GPT2LMHeadModel's head has no prefix
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

// Buffers some checkpoints store beside the weights (GPT-2's causal mask, old rotary caches):
// not parameters, skipped.
static int is_buffer(const char *name) {
    static const char *const suffix[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"};
    size_t n = strlen(name);
    for (size_t i = 0; i < N_OF(suffix); i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && !strcmp(name + n - k, suffix[i])) return 1;
    }
    return 0;
}

typedef struct {
    const NameRule *layer, *global;
    size_t n_layer_rules, n_global_rules;
    char layer_fmt[48];      // printf format of a layer's prefix, one %d
    char global_prefix[32];  // before every global name but lm_head
} Layout;

static Layout layout_of(const ModelFamily *f, const char *gpt2_prefix) {
    Layout L;
    memset(&L, 0, sizeof L);
    if (f->positions == POS_LEARNED) {  // GPT-2
        L.layer = GPT2_LAYER, L.n_layer_rules = N_OF(GPT2_LAYER);
        L.global = GPT2_GLOBAL, L.n_global_rules = N_OF(GPT2_GLOBAL);
        snprintf(L.layer_fmt, sizeof L.layer_fmt, "%sh.%%d.", gpt2_prefix);
        snprintf(L.global_prefix, sizeof L.global_prefix, "%s", gpt2_prefix);
    } else {
        L.layer = LLAMA_LAYER, L.n_layer_rules = N_OF(LLAMA_LAYER);
        L.global = LLAMA_GLOBAL, L.n_global_rules = N_OF(LLAMA_GLOBAL);
        snprintf(L.layer_fmt, sizeof L.layer_fmt, "model.layers.%%d.");
    }
    return L;
}

// The rule of routelab tensor p and its layer prefix; NULL for routelab-only tensors (gates,
// routers).
static const NameRule *rule_of(const Layout *L, const ParamInfo *p, char *prefix, size_t cap) {
    if (p->layer >= 0) {
        const char *suffix = strchr(strchr(p->name, '.') + 1, '.') + 1;  // after "blocks.L."
        for (size_t i = 0; i < L->n_layer_rules; i++)
            if (!strcmp(L->layer[i].ours, suffix)) {
                snprintf(prefix, cap, L->layer_fmt, p->layer);
                return &L->layer[i];
            }
        return NULL;
    }
    for (size_t i = 0; i < L->n_global_rules; i++)
        if (!strcmp(L->global[i].ours, p->name)) {
            snprintf(prefix, cap, "%s", strcmp(p->name, "lm_head.weight") ? L->global_prefix : "");
            return &L->global[i];
        }
    return NULL;
}

// Rows of each part of a fused tensor: q, k, v heads; gate, up halves.
static int part_rows(const Model *m, const NameRule *r, const ParamInfo *p, int part, int parts) {
    const ShapePlan *sp = &m->plan.shape;
    if (parts == 1) return p->shape[0];
    if (!strncmp(r->ours, "attn.qkv", 8)) return part == 0 ? sp->q_width : sp->kv_width;
    return p->shape[0] / parts;  // mlp.fc: gate rows, then up rows
}

static int rule_parts(const NameRule *r) { return r->hf[2] ? 3 : r->hf[1] ? 2 : 1; }

// ----------------------------------------------------------------------------- config.json
static const cJSON *jget(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static double jnum(const cJSON *o, const char *key, double def, int required, const char *path) {
    const cJSON *v = jget(o, key);
    if (!v) {
        if (required)
            fatal("%s: \"%s\" is missing (a Hugging Face config.json of this architecture has it)",
                  path, key);
        return def;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        fatal("%s: \"%s\" must be a number", path, key);
    return v->valuedouble;
}

static int jint(const cJSON *o, const char *key, int def, int required, const char *path) {
    double x = jnum(o, key, def, required, path);
    if (x != floor(x) || x < 0 || x > 1e9)
        fatal("%s: \"%s\" must be a non-negative integer, got %g", path, key, x);
    return (int)x;
}

static int jbool(const cJSON *o, const char *key, int def, const char *path) {
    const cJSON *v = jget(o, key);
    if (!v) return def;
    if (!cJSON_IsBool(v)) fatal("%s: \"%s\" must be true or false", path, key);
    return cJSON_IsTrue(v);
}

static const char *jstr(const cJSON *o, const char *key, const char *def, const char *path) {
    const cJSON *v = jget(o, key);
    if (!v) return def;
    if (!cJSON_IsString(v)) fatal("%s: \"%s\" must be a string", path, key);
    return v->valuestring;
}

static void set_int(Config *c, const char *key, long v, const char *where) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    config_set(c, key, buf, where);
}

static void set_num(Config *c, const char *key, double v, const char *where) {
    char buf[48];
    snprintf(buf, sizeof buf, "%.9g", v);
    config_set(c, key, buf, where);
}

static cJSON *parse_json(const char *text, size_t len, const char *path) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root && end)
        for (const char *p = end; p < text + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(root), root = NULL;
                break;
            }
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        fatal("%s: not a valid JSON object (the file is damaged: download it again)", path);
    }
    return root;
}

static cJSON *read_json(const char *path, const char *what) {
    size_t len;
    char *text = read_file(path, &len, what);
    cJSON *root = parse_json(text, len, path);
    xfree(text);
    return root;
}

// The family row of config.json's architecture (or model_type).
static const ModelFamily *family_of(const cJSON *root, const char *path) {
    int n;
    const ModelFamily *t = family_table(&n);
    const cJSON *arch = jget(root, "architectures");
    const char *name = NULL;
    if (arch && cJSON_IsArray(arch) && cJSON_GetArraySize(arch) >= 1 &&
        cJSON_IsString(cJSON_GetArrayItem(arch, 0)))
        name = cJSON_GetArrayItem(arch, 0)->valuestring;
    const char *type = jstr(root, "model_type", NULL, path);
    for (int i = 0; i < n; i++)
        if (name ? !strcmp(name, t[i].hf_arch) : type && !strcmp(type, t[i].hf_model_type))
            return &t[i];
    char known[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 t[i].hf_arch);
    fatal("%s: architecture '%s' is not implemented in routelab (it reads %s)", path,
          name ? name : type ? type : "(none given)", known);
}

// rope_theta and rope scaling, in the older form (rope_theta + rope_scaling) or the newer one
// (rope_parameters: {"rope_type", "rope_theta", ...}).
static void read_rope(Config *c, const cJSON *root, const char *path, const char *where) {
    const cJSON *params = jget(root, "rope_parameters"), *scaling = jget(root, "rope_scaling");
    if (params && !cJSON_IsObject(params)) fatal("%s: \"rope_parameters\" must be an object", path);
    if (scaling && !cJSON_IsObject(scaling)) fatal("%s: \"rope_scaling\" must be an object or null", path);
    double theta = params && jget(params, "rope_theta") ? jnum(params, "rope_theta", 0, 1, path)
                                                         : jnum(root, "rope_theta", 10000.0, 0, path);
    set_num(c, "rope_theta", theta, where);
    const cJSON *s = scaling ? scaling : params;
    const char *type = s ? jstr(s, "rope_type", jstr(s, "type", "default", path), path) : "default";
    if (!strcmp(type, "default")) {
        config_set(c, "rope_scaling", "none", where);
    } else if (!strcmp(type, "llama3")) {
        config_set(c, "rope_scaling", "llama3", where);
        set_num(c, "rope_factor", jnum(s, "factor", 0, 1, path), where);
        set_num(c, "rope_low_freq_factor", jnum(s, "low_freq_factor", 0, 1, path), where);
        set_num(c, "rope_high_freq_factor", jnum(s, "high_freq_factor", 0, 1, path), where);
        // as transformers: without original_max_position_embeddings, max_position_embeddings
        int max_pos = jint(root, "max_position_embeddings", 0, 0, path);
        set_int(c, "rope_original_max_pos",
                jint(s, "original_max_position_embeddings", max_pos, max_pos == 0, path), where);
    } else {
        fatal("%s: rope type '%s' is not implemented in routelab (it reads default and llama3)",
              path, type);
    }
    double partial = jnum(root, "partial_rotary_factor", 1.0, 0, path);
    if (partial != 1.0)
        fatal("%s: partial_rotary_factor %g is not implemented in routelab (only 1)", path, partial);
}

int hf_is_model_dir(const char *path) {
    char p[4096];
    if (!dir_exists(path)) return 0;
    join_path(p, sizeof p, path, "config.json");
    if (!file_exists(p)) return 0;
    join_path(p, sizeof p, path, "model.safetensors");
    if (file_exists(p)) return 1;
    join_path(p, sizeof p, path, "model.safetensors.index.json");
    return file_exists(p);
}

static void apply_routelab_extra(const char *dir, Config *c);

void hf_read_config(const char *dir, Config *c) {
    char path[4096];
    join_path(path, sizeof path, dir, "config.json");
    size_t len;
    char *text = read_file(path, &len, "Hugging Face config");
    hf_parse_config(text, len, path, c);
    xfree(text);
    apply_routelab_extra(dir, c);
    config_resolve(c);
}

void hf_parse_config(const char *text, size_t len, const char *path, Config *c) {
    char where[4200];
    snprintf(where, sizeof where, "Hugging Face %s", path);
    cJSON *root = parse_json(text, len, path);
    const ModelFamily *f = family_of(root, path);
    config_defaults(c);
    config_set(c, "family", f->name, where);
    config_set(c, "dropout", "0", where);  // fine-tuning and evaluation of pretrained models
    if (jbool(root, "add_cross_attention", 0, path) || jbool(root, "is_encoder_decoder", 0, path))
        fatal("%s: cross-attention / encoder-decoder models are not implemented in routelab", path);
    if (f->positions == POS_LEARNED) {  // GPT-2's field names
        int d = jint(root, "n_embd", 768, 0, path), H = jint(root, "n_head", 12, 0, path);
        set_int(c, "d_model", d, where);
        set_int(c, "n_layer", jint(root, "n_layer", 12, 0, path), where);
        set_int(c, "n_head", H, where);
        set_int(c, "d_ff", jint(root, "n_inner", 4 * d, 0, path), where);
        set_int(c, "seq_len", jint(root, "n_positions", 1024, 0, path), where);
        set_int(c, "vocab_size", jint(root, "vocab_size", 50257, 0, path), where);
        set_num(c, "ln_eps", jnum(root, "layer_norm_epsilon", 1e-5, 0, path), where);
        config_set(c, "attn_bias", "1", where);
        config_set(c, "mlp_bias", "1", where);
        set_int(c, "tie_embeddings", jbool(root, "tie_word_embeddings", 1, path), where);
        const char *act = jstr(root, "activation_function", "gelu_new", path);
        if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
            config_set(c, "gelu", "tanh", where);
        else if (!strcmp(act, "gelu")) config_set(c, "gelu", "erf", where);
        else fatal("%s: activation_function '%s' is not implemented in routelab (gelu_new, gelu)", path, act);
        if (!jbool(root, "scale_attn_weights", 1, path) || jbool(root, "scale_attn_by_inverse_layer_idx", 0, path))
            fatal("%s: GPT-2 attention scaling other than 1/sqrt(head_dim) (scale_attn_weights "
                  "false or scale_attn_by_inverse_layer_idx true) is not implemented in routelab", path);
    } else {  // Llama / Qwen field names
        int d = jint(root, "hidden_size", 0, 1, path), H = jint(root, "num_attention_heads", 0, 1, path);
        set_int(c, "d_model", d, where);
        set_int(c, "n_layer", jint(root, "num_hidden_layers", 0, 1, path), where);
        set_int(c, "n_head", H, where);
        int kv = jint(root, "num_key_value_heads", H, 0, path);
        set_int(c, "n_kv_head", kv == H ? 0 : kv, where);
        int hd = jint(root, "head_dim", H ? d / H : 0, 0, path);
        set_int(c, "head_dim", H && hd * H == d ? 0 : hd, where);
        set_int(c, "d_ff", jint(root, "intermediate_size", 0, 1, path), where);
        set_int(c, "vocab_size", jint(root, "vocab_size", 0, 1, path), where);
        set_num(c, "ln_eps", jnum(root, "rms_norm_eps", 1e-6, 0, path), where);
        int max_pos = jint(root, "max_position_embeddings", HF_DEFAULT_SEQ_LEN, 0, path);
        set_int(c, "seq_len", max_pos < HF_DEFAULT_SEQ_LEN ? max_pos : HF_DEFAULT_SEQ_LEN, where);
        set_int(c, "tie_embeddings", jbool(root, "tie_word_embeddings", 0, path), where);
        set_int(c, "attn_bias", jbool(root, "attention_bias", 0, path), where);
        set_int(c, "mlp_bias", jbool(root, "mlp_bias", 0, path), where);
        const char *act = jstr(root, "hidden_act", "silu", path);
        if (strcmp(act, "silu"))
            fatal("%s: hidden_act '%s' is not implemented in routelab for %s (only silu: SwiGLU)",
                  path, act, f->hf_arch);
        if (jbool(root, "use_sliding_window", 0, path))
            fatal("%s: sliding-window attention (use_sliding_window true) is not implemented in "
                  "routelab", path);
        read_rope(c, root, path, where);
    }
    cJSON_Delete(root);
    config_resolve(c);
}

// The routing (and data) keys of a model routelab exported (routelab.safetensors).
static void apply_routelab_extra(const char *dir, Config *c) {
    char extra[4096];
    join_path(extra, sizeof extra, dir, ROUTELAB_EXTRA);
    if (file_exists(extra)) {
        StFile sf;
        st_open(&sf, extra, "routelab export");
        const char *cfg = st_meta(&sf, "config");
        cJSON *j = cfg ? cJSON_Parse(cfg) : NULL;
        if (!j) fatal("%s: its metadata 'config' is missing or not JSON (export again)", extra);
        static const char *const keep[] = {"attn", "k", "gate", "d_g", "tau", "topk_scope",
                                           "block_size", "k_blocks", "block_window", "gate_grad", "gate_seed", "mask_seed", "gate_init_std",
                                           "train", "seq_len", "batch", "eval_batches", "data",
                                           "mqar_pairs", "mqar_random_filler",
                                           "mqar_eval_examples", "mqar_alpha", "add_digits",
                                           "add_order", "data_seed", "seed", NULL};
        cJSON *sel = cJSON_CreateObject();
        for (const char *const *k = keep; *k; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, *k);
            if (v) cJSON_AddItemToObject(sel, *k, cJSON_Duplicate(v, 1));
        }
        config_from_json(c, sel, extra);
        cJSON_Delete(sel);
        cJSON_Delete(j);
        st_close(&sf);
    }
}

// ----------------------------------------------------------------------------- tensor files
typedef struct {
    StFile *files;
    char **names;             // file name of each (relative to the directory)
    unsigned char **used;     // per file, per tensor
    size_t n;
    cJSON *weight_map;        // sharded: NAME -> file name; NULL for one file
    char path_index[4096];
} HfFiles;

static void files_open(HfFiles *h, const char *dir) {
    memset(h, 0, sizeof *h);
    char single[4096];
    join_path(single, sizeof single, dir, "model.safetensors");
    join_path(h->path_index, sizeof h->path_index, dir, "model.safetensors.index.json");
    const char *list[4096];
    size_t n = 0;
    cJSON *index = NULL;
    if (file_exists(single)) {
        list[n++] = "model.safetensors";
    } else {
        index = read_json(h->path_index, "Hugging Face weight index");
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
        if (!cJSON_IsObject(map) || !map->child)
            fatal("%s: \"weight_map\" must be a non-empty object of tensor -> shard file",
                  h->path_index);
        for (const cJSON *e = map->child; e; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0])
                fatal("%s: weight_map entry '%s' must name a shard file in the directory",
                      h->path_index, e->string);
            size_t i = 0;
            while (i < n && strcmp(list[i], e->valuestring)) i++;
            if (i == n) {
                if (n == N_OF(list)) fatal("%s: more than %zu shards", h->path_index, N_OF(list));
                list[n++] = e->valuestring;
            }
        }
        h->weight_map = cJSON_DetachItemFromObjectCaseSensitive(index, "weight_map");
    }
    h->n = n;
    h->files = xcalloc(n, sizeof *h->files);
    h->names = xcalloc(n, sizeof *h->names);
    h->used = xcalloc(n, sizeof *h->used);
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        join_path(p, sizeof p, dir, list[i]);
        if (!file_exists(p))
            fatal("%s: shard '%s' named by the weight index is missing (download it again)",
                  h->path_index, list[i]);
        h->names[i] = xstrdup(list[i]);
        st_open(&h->files[i], p, "Hugging Face weights");
        h->used[i] = xcalloc(h->files[i].count ? h->files[i].count : 1, 1);
    }
    cJSON_Delete(index);
}

static void files_close(HfFiles *h) {
    for (size_t i = 0; i < h->n; i++) {
        st_close(&h->files[i]);
        xfree(h->names[i]);
        xfree(h->used[i]);
    }
    xfree(h->files), xfree(h->names), xfree(h->used);
    cJSON_Delete(h->weight_map);
}

// The tensor `name` and its file, or NULL; marks it used.
static const StTensor *files_find(HfFiles *h, const char *name, size_t *file) {
    for (size_t i = 0; i < h->n; i++) {
        const StTensor *t = st_find(&h->files[i], name);
        if (!t) continue;
        if (h->weight_map) {
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(h->weight_map, name);
            if (!cJSON_IsString(w) || strcmp(w->valuestring, h->names[i]))
                fatal("%s: tensor '%s' is in shard '%s' but the weight index says '%s' (the "
                      "download is inconsistent)", h->path_index, name, h->names[i],
                      cJSON_IsString(w) ? w->valuestring : "(not listed)");
        }
        h->used[i][t - h->files[i].tensors] = 1;
        *file = i;
        return t;
    }
    return NULL;
}

// ----------------------------------------------------------------------------- loading
// Copies HF part `t` (rows x cols as routelab lays it out) into rows [row0, row0 + rows) of
// dst (cols wide), transposing a Conv1D weight.
static void place(float *dst, int cols, int row0, int rows, const StFile *f, const StTensor *t,
                  int transpose) {
    size_t n = (size_t)rows * cols;
    if (!transpose) {
        st_read_f32(f, t, dst + (size_t)row0 * cols, n);
        return;
    }
    float *tmp = xcalloc(n, sizeof(float));
    st_read_f32(f, t, tmp, n);  // (cols, rows): in x out
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)(row0 + r) * cols + c] = tmp[(size_t)c * rows + r];
    xfree(tmp);
}

static void shape_text(char *out, size_t cap, const StTensor *t) {
    size_t o = (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < t->ndim && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < cap) snprintf(out + o, cap - o, ")");
}

void hf_load(const char *dir, Model *m) {
    HfFiles h;
    files_open(&h, dir);
    const char *gpt2_prefix = "";
    if (m->plan.family->positions == POS_LEARNED) {  // GPT-2 with or without "transformer."
        size_t fi;
        if (files_find(&h, "transformer.wte.weight", &fi)) gpt2_prefix = "transformer.";
    }
    Layout L = layout_of(m->plan.family, gpt2_prefix);
    const char *where = h.weight_map ? h.path_index : h.files[0].path;
    for (int i = 0; i < m->table.count; i++) {
        const ParamInfo *p = &m->table.info[i];
        char prefix[96];
        const NameRule *r = rule_of(&L, p, prefix, sizeof prefix);
        if (!r) continue;  // routelab's own (gates, routers): below
        int parts = rule_parts(r), row0 = 0, cols = p->ndim == 2 ? p->shape[1] : 1;
        for (int k = 0; k < parts; k++) {
            char name[192];
            snprintf(name, sizeof name, "%s%s", prefix, r->hf[k]);
            size_t fi;
            const StTensor *t = files_find(&h, name, &fi);
            if (!t)
                fatal("%s: tensor '%s' is missing (config.json describes a model that has it; "
                      "the download is incomplete or the config does not match)", where, name);
            int rows = part_rows(m, r, p, k, parts);
            int64_t want0 = r->transpose ? cols : rows, want1 = r->transpose ? rows : cols;
            int ok = p->ndim == 1 ? t->ndim == 1 && t->shape[0] == rows
                                  : t->ndim == 2 && t->shape[0] == want0 && t->shape[1] == want1;
            if (!ok) {
                char got[96];
                shape_text(got, sizeof got, t);
                if (p->ndim == 1)
                    fatal("%s: tensor '%s' has shape %s, but config.json implies (%d)", where, name, got, rows);
                fatal("%s: tensor '%s' has shape %s, but config.json implies (%lld, %lld)", where,
                      name, got, (long long)want0, (long long)want1);
            }
            if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
                fatal("%s: tensor '%s' has dtype %s; routelab reads F32, BF16 and F16 weights",
                      where, name, st_dtype_name(t->dtype));
            place(m->params + p->offset, cols, row0, rows, &h.files[fi], t, r->transpose);
            row0 += rows;
        }
    }
    // Every stored tensor must have been read: anything else is a part of the model that
    // routelab would silently drop. A tied model may still store its head (transformers
    // ignores it too), and buffers are not parameters.
    for (size_t fi = 0; fi < h.n; fi++)
        for (size_t t = 0; t < h.files[fi].count; t++) {
            const char *name = h.files[fi].tensors[t].name;
            if (h.used[fi][t] || is_buffer(name)) continue;
            if (m->cfg.tie_embeddings && !strcmp(name, "lm_head.weight")) continue;
            fatal("%s: tensor '%s' is not part of a %s model as config.json describes it (routelab "
                  "does not implement it; check attention_bias, mlp_bias, tie_word_embeddings)",
                  h.files[fi].path, name, m->plan.family->hf_arch);
        }
    files_close(&h);
    // routelab-only tensors of an exported model
    char extra[4096];
    join_path(extra, sizeof extra, dir, ROUTELAB_EXTRA);
    if (file_exists(extra)) {
        StFile sf;
        st_open(&sf, extra, "routelab export");
        for (int i = 0; i < m->table.count; i++) {
            const ParamInfo *p = &m->table.info[i];
            const StTensor *t = st_find(&sf, p->name);
            if (!t) continue;
            if (t->numel != p->numel) {
                if (p->role == ROLE_GATE) continue;  // another d_g: the gate keeps its init
                fatal("%s: tensor '%s' has %zu elements, the model %zu (export again)", extra,
                      p->name, t->numel, p->numel);
            }
            st_verify(&sf, t, 0);
            st_read_f32(&sf, t, m->params + p->offset, p->numel);
        }
        st_close(&sf);
    }
}

// ----------------------------------------------------------------------------- export
static void add_num(cJSON *o, const char *k, double v) { cJSON_AddNumberToObject(o, k, v); }

// config.json for m's family; dies when m has no Hugging Face equivalent.
static cJSON *export_config(const Model *m) {
    const Config *c = &m->cfg;
    const ModelFamily *f = m->plan.family;
    const ShapePlan *sp = &m->plan.shape;
    const FfnPlan *fp = &m->plan.ffn;
    for (int l = 0; l < c->n_layer; l++)
        if (fp->router[l] != ROUTER_NONE || fp->act[l] != f->ffn || fp->width[l] != c->d_ff)
            fatal("export: layer %d's FFN (key 'ffn' = %s) has no Hugging Face %s equivalent "
                  "(only the family's dense FFN exports)", l, c->ffn, f->hf_arch);
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(f->hf_arch));
    cJSON_AddStringToObject(o, "model_type", f->hf_model_type);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    add_num(o, "vocab_size", c->vocab_size);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_embeddings);
    if (f->positions == POS_LEARNED) {
        // GPT-2: a missing bias is an exact zero bias (written below)
        add_num(o, "n_embd", c->d_model);
        add_num(o, "n_layer", c->n_layer);
        add_num(o, "n_head", c->n_head);
        add_num(o, "n_inner", c->d_ff);
        add_num(o, "n_positions", c->seq_len);
        add_num(o, "n_ctx", c->seq_len);
        add_num(o, "layer_norm_epsilon", c->ln_eps);
        cJSON_AddStringToObject(o, "activation_function", !strcmp(c->gelu, "tanh") ? "gelu_new" : "gelu");
        add_num(o, "resid_pdrop", 0), add_num(o, "embd_pdrop", 0), add_num(o, "attn_pdrop", 0);
    } else {
        if (sp->mlp_bias && strcmp(f->name, "llama"))
            fatal("export: mlp_bias=1 has no Hugging Face %s equivalent (only Llama has mlp_bias)",
                  f->hf_arch);
        add_num(o, "hidden_size", c->d_model);
        add_num(o, "intermediate_size", c->d_ff);
        add_num(o, "num_hidden_layers", c->n_layer);
        add_num(o, "num_attention_heads", c->n_head);
        add_num(o, "num_key_value_heads", sp->n_kv_head);
        add_num(o, "head_dim", sp->head_dim);
        add_num(o, "rms_norm_eps", c->ln_eps);
        add_num(o, "max_position_embeddings", c->seq_len);
        add_num(o, "rope_theta", c->rope_theta);
        cJSON_AddStringToObject(o, "hidden_act", "silu");
        add_num(o, "attention_dropout", 0);
        if (f->qkv_bias == BIAS_FROM_KEY) cJSON_AddBoolToObject(o, "attention_bias", c->attn_bias);
        if (!strcmp(f->name, "llama")) cJSON_AddBoolToObject(o, "mlp_bias", sp->mlp_bias);
        if (strcmp(f->name, "llama")) cJSON_AddBoolToObject(o, "use_sliding_window", 0);
        if (sp->rope_scaling == ROPE_SCALING_LLAMA3) {
            cJSON *s = cJSON_AddObjectToObject(o, "rope_scaling");
            cJSON_AddStringToObject(s, "rope_type", "llama3");
            add_num(s, "factor", c->rope_factor);
            add_num(s, "low_freq_factor", c->rope_low_freq_factor);
            add_num(s, "high_freq_factor", c->rope_high_freq_factor);
            add_num(s, "original_max_position_embeddings", c->rope_original_max_pos);
        } else {
            cJSON_AddNullToObject(o, "rope_scaling");
        }
    }
    return o;
}

// Buffers that must outlive st_writer_close.
typedef struct {
    float **bufs;
    size_t n, cap;
} Keep;

static float *keep_alloc(Keep *k, size_t n) {
    if (k->n == k->cap) k->cap = k->cap ? 2 * k->cap : 64, k->bufs = xrealloc(k->bufs, k->cap * sizeof(float *));
    return k->bufs[k->n++] = xcalloc(n ? n : 1, sizeof(float));
}

void hf_export(const Model *m, const char *dir, int plain) {
    const Config *c = &m->cfg;
    cJSON *cfg = export_config(m);
    make_dirs(dir);
    char path[4096];
    join_path(path, sizeof path, dir, "config.json");
    char *text = cJSON_Print(cfg);
    if (!text) fatal("out of memory writing %s", path);
    size_t tl = strlen(text);
    text = xrealloc(text, tl + 2);
    text[tl] = '\n', text[tl + 1] = 0;
    write_file_atomic(path, text, tl + 1);
    xfree(text);
    cJSON_Delete(cfg);

    int gpt2 = m->plan.family->positions == POS_LEARNED;
    Layout L = layout_of(m->plan.family, "transformer.");  // GPT2LMHeadModel's own names
    Keep keep = {0};
    join_path(path, sizeof path, dir, "model.safetensors");
    StWriter *w = st_writer_open(path, "Hugging Face export", 0);
    st_writer_meta(w, "format", "pt");
    // every rule in table order, per layer: the tensors a Hugging Face model of this config has
    for (int l = -1; l < c->n_layer; l++) {
        const NameRule *rules = l < 0 ? L.global : L.layer;
        size_t nr = l < 0 ? L.n_global_rules : L.n_layer_rules;
        for (size_t ri = 0; ri < nr; ri++) {
            const NameRule *r = &rules[ri];
            char ours[96], prefix[96];
            if (l < 0) snprintf(ours, sizeof ours, "%s", r->ours);
            else snprintf(ours, sizeof ours, "blocks.%d.%s", l, r->ours);
            const ParamInfo *p = param_find(&m->table, ours);
            if (!p && !gpt2) continue;                      // absent in this family's config
            if (!p && !strcmp(r->ours, "lm_head.weight")) continue;  // tied head
            if (!p && !strstr(r->ours, ".bias")) continue;
            // GPT-2 always has its biases: a model without them exports exact zeros
            int rows, cols;
            const float *src = NULL;
            if (p) {
                rows = p->shape[0], cols = p->ndim == 2 ? p->shape[1] : 1;
                src = m->params + p->offset;
            } else {
                rows = !strncmp(r->ours, "attn.qkv", 8) ? 3 * c->d_model
                       : !strncmp(r->ours, "mlp.fc", 6) ? c->d_ff : c->d_model;
                cols = 1;
            }
            if (l < 0) snprintf(prefix, sizeof prefix, "%s", strcmp(r->ours, "lm_head.weight") ? L.global_prefix : "");
            else snprintf(prefix, sizeof prefix, L.layer_fmt, l);
            int parts = rule_parts(r), row0 = 0;
            for (int k = 0; k < parts; k++) {
                int pr = p ? part_rows(m, r, p, k, parts) : rows;
                float *buf = keep_alloc(&keep, (size_t)pr * cols);
                for (int i = 0; i < pr && src; i++)
                    for (int j = 0; j < cols; j++) {
                        float v = src[(size_t)(row0 + i) * cols + j];
                        if (r->transpose) buf[(size_t)j * pr + i] = v;
                        else buf[(size_t)i * cols + j] = v;
                    }
                int64_t shape[2] = {r->transpose ? cols : pr, r->transpose ? pr : cols};
                char name[192];
                snprintf(name, sizeof name, "%s%s", prefix, r->hf[k]);
                int is_vec = p ? p->ndim == 1 : 1;
                st_writer_add(w, name, ST_F32, is_vec ? 1 : 2, shape, buf);
                row0 += pr;
            }
        }
    }
    st_writer_close(w);
    // the routelab-only tensors (gates, routers) and every key, for a routelab reload
    join_path(path, sizeof path, dir, ROUTELAB_EXTRA);
    if (plain) {  // what a downloaded model holds; an earlier export's extra file would mislead
        if (file_exists(path) && remove(path) != 0) fatal("export: cannot remove the old %s", path);
        for (size_t i = 0; i < keep.n; i++) xfree(keep.bufs[i]);
        xfree(keep.bufs);
        return;
    }
    w = st_writer_open(path, "routelab export", 1);
    cJSON *keys = config_to_json(c);
    char *kt = cJSON_PrintUnformatted(keys);
    st_writer_meta(w, "config", kt);
    cJSON_free(kt);
    cJSON_Delete(keys);
    for (int i = 0; i < m->table.count; i++) {
        const ParamInfo *p = &m->table.info[i];
        char prefix[96];
        if (rule_of(&L, p, prefix, sizeof prefix)) continue;
        int64_t shape[2] = {p->shape[0], p->shape[1]};
        st_writer_add(w, p->name, ST_F32, p->ndim, shape, m->params + p->offset);
    }
    st_writer_close(w);
    for (size_t i = 0; i < keep.n; i++) xfree(keep.bufs[i]);
    xfree(keep.bufs);
}
