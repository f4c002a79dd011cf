// config.c: the key table. Adding an option is adding one row here.
#include "config.h"

#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef enum { KEY_INT, KEY_FLOAT, KEY_STR } KeyType;
typedef struct {
    const char *name;
    KeyType type;
    size_t offset;
    const char *def;
    const char *help;
} ConfigKey;

#define K(name, type, def, help) {#name, type, offsetof(Config, name), def, help}
static const ConfigKey KEYS[] = {
    // model (defaults: the paper's model as its public code defines it)
    K(family, KEY_STR, "gpt", "model family: a row of the family table (gpt: pre-norm GPT, "
      "LayerNorm, learned positions; see README, Model families)"),
    K(n_layer, KEY_INT, "6", "transformer blocks"),
    K(d_model, KEY_INT, "256", "residual width"),
    K(n_head, KEY_INT, "4", "attention heads (d_model must divide)"),
    K(d_ff, KEY_INT, "1024", "FFN hidden width"),
    K(seq_len, KEY_INT, "512", "context length T (rows of the position embedding)"),
    K(vocab_size, KEY_INT, "50257", "vocabulary size V"),
    K(attn_bias, KEY_INT, "0", "1: biases on the q/k/v and output projections"),
    K(tie_embeddings, KEY_INT, "1", "1: LM head is the token embedding; 0: separate lm_head"),
    K(gelu, KEY_STR, "erf", "GELU form: erf (exact) | tanh"),
    K(dropout, KEY_FLOAT, "0.1", "dropout on embeddings, attention weights, FFN (0 = off)"),
    K(init_std, KEY_FLOAT, "0.02", "std of the N(0, s) init of matrices and embeddings"),
    K(gate_init_std, KEY_FLOAT, "0.02", "std of the gate init"),
    K(ln_eps, KEY_FLOAT, "1e-5", "LayerNorm epsilon"),
    // routing
    K(attn, KEY_STR, "dense",
      "routing mode, or a comma list per layer: dense|oracle|soft|soft_prob|hard|stochastic|"
      "random_fixed|window"),
    K(k, KEY_STR, "64", "keys kept per query (top-k modes, window), or a comma list per layer"),
    K(gate, KEY_STR, "learned", "gate kind: learned | random (frozen at init), or per layer"),
    K(d_g, KEY_INT, "32", "gate width per head"),
    K(tau, KEY_FLOAT, "1", "gate temperature: sigmoid(G / tau)"),
    K(topk_scope, KEY_STR, "causal", "causal: rank visible keys only; all: the paper's code"),
    K(gate_grad, KEY_STR, "none", "hard mode gate gradient: none | ste (straight-through)"),
    K(gate_seed, KEY_INT, "1234", "seed of the gate init (independent of the model init)"),
    K(mask_seed, KEY_INT, "2000", "seed of the stochastic and random_fixed masks"),
    // feed-forward sublayers
    K(ffn, KEY_STR, "dense", "FFN kind: dense (GELU) | swiglu | geglu | moe, or a comma list per layer"),
    K(expert, KEY_STR, "dense", "kind of each MoE expert: dense | swiglu | geglu"),
    K(n_expert, KEY_INT, "4", "experts per MoE layer E (at most 64)"),
    K(d_expert, KEY_INT, "0", "hidden width of each expert (0 = d_ff / n_expert: the dense FFN's "
      "parameters split E ways)"),
    K(top_experts, KEY_INT, "1", "experts per token: 1 (Switch) or 2"),
    K(capacity_factor, KEY_FLOAT, "0", "expert capacity = factor * tokens * top_experts / E; "
      "tokens over it are dropped (0 = no limit)"),
    K(aux_loss, KEY_FLOAT, "0", "Switch load-balancing loss coefficient (0.01 is usual; 0 = off)"),
    K(router, KEY_STR, "learned", "MoE router: learned | random (frozen at init) | hash (token id)"),
    K(router_seed, KEY_INT, "4321", "seed of the router init and of the hash map"),
    K(moe_dense_control, KEY_INT, "0", "1: every moe layer becomes a dense FFN of the active "
      "width top_experts * d_expert (the parameter-matched control)"),
    // training
    K(seed, KEY_INT, "0", "model init, dropout and batch order seed"),
    K(batch, KEY_INT, "4", "sequences per micro-batch B"),
    K(grad_accum, KEY_INT, "1", "micro-batches accumulated per optimizer step"),
    K(steps, KEY_INT, "1000", "optimizer steps"),
    K(warmup, KEY_INT, "100", "linear warmup steps, then cosine decay"),
    K(lr, KEY_FLOAT, "6e-4", "peak learning rate"),
    K(min_lr_ratio, KEY_FLOAT, "0.1", "final lr as a fraction of lr"),
    K(weight_decay, KEY_FLOAT, "0.1", "AdamW decay (matrices and embeddings only)"),
    K(beta1, KEY_FLOAT, "0.9", "AdamW beta1"),
    K(beta2, KEY_FLOAT, "0.95", "AdamW beta2"),
    K(adam_eps, KEY_FLOAT, "1e-8", "AdamW epsilon"),
    K(grad_clip, KEY_FLOAT, "1.0", "global gradient-norm clip (0 = off)"),
    K(train, KEY_STR, "all",
      "trainable parameters: all | gates | layers:0,3 | attn:2 | ... (see README, Freezing)"),
    K(init, KEY_STR, "",
      "start from the weights of this checkpoint (run dir or file), optimizer fresh; gates of "
      "another d_g keep their own init"),
    K(precision, KEY_STR, "fp32", "matrix products: fp32 | bf16 (bf16 operands, fp32 accumulation, "
      "fp32 master weights and optimizer; attention products stay fp32)"),
    K(ablate, KEY_STR, "", "evaluation only: replace sublayer outputs by their mean over the batch's "
      "positions, e.g. attn:0, ffn:1, attn:0+ffn:0 (all: every layer)"),
    K(eval_every, KEY_INT, "200", "evaluate every N steps (0 = only at the end)"),
    K(eval_batches, KEY_INT, "20", "validation batches per evaluation (0 = the whole split)"),
    K(ckpt_every, KEY_INT, "500", "write the checkpoint every N steps (and at the end)"),
    K(log_every, KEY_INT, "1", "progress line every N steps"),
    K(stop_after, KEY_INT, "0", "stop after N steps of this invocation (0 = never)"),
    K(threads, KEY_INT, "0", "OpenMP threads (0 = all cores)"),
    // data
    K(data, KEY_STR, "mqar", "mqar | addition (built in) or a directory written by `routelab prepare`"),
    K(mqar_pairs, KEY_INT, "8", "MQAR key-value pairs per example"),
    K(mqar_random_filler, KEY_INT, "0", "MQAR filler: 0 = token 0, 1 = random tokens"),
    K(mqar_eval_examples, KEY_INT, "512", "test examples of the generated tasks (MQAR, addition)"),
    K(mqar_alpha, KEY_FLOAT, "0.01", "MQAR power-law exponent of the query gaps"),
    K(add_digits, KEY_INT, "3", "addition: digits per operand n (seq_len >= 3n+2, vocab >= 13)"),
    K(add_order, KEY_STR, "lsd", "addition: answer digits lsd (least-significant first) | msd"),
    K(data_seed, KEY_INT, "1", "data seed (MQAR example stream)"),
    K(out, KEY_STR, "runs/default", "run directory: config.ini, metrics.jsonl, model.ckpt"),
};
#undef K
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

static const ConfigKey *find_key(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

int config_is_key(const char *key) { return find_key(key) != NULL; }

// Suggests the closest key for a typo (edit distance), so the error can name the fix.
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

static const char *closest_key(const char *name) {
    const char *best = NULL;
    int bestd = 4;
    for (size_t i = 0; i < N_KEYS; i++) {
        int dd = edit_distance(name, KEYS[i].name);
        if (dd < bestd) { bestd = dd; best = KEYS[i].name; }
    }
    return best;
}

void config_set(Config *c, const char *key, const char *value, const char *source) {
    const ConfigKey *k = find_key(key);
    if (!k) {
        const char *near = closest_key(key);
        if (near) fatal("%s: unknown config key '%s' (did you mean '%s'? see routelab train --help)",
                        source, key, near);
        fatal("%s: unknown config key '%s' (see routelab train --help for the keys)", source, key);
    }
    char *p = (char *)c + k->offset;
    char *end = NULL;
    switch (k->type) {
    case KEY_INT: {
        long v = strtol(value, &end, 10);
        if (!*value || *end || v < -2147483647L || v > 2147483647L)
            fatal("%s: key '%s' expects an integer, got '%s'", source, key, value);
        *(int *)p = (int)v;
        break;
    }
    case KEY_FLOAT: {
        double v = strtod(value, &end);
        if (!*value || *end) fatal("%s: key '%s' expects a number, got '%s'", source, key, value);
        *(float *)p = (float)v;
        break;
    }
    case KEY_STR:
        if (strlen(value) >= STR_LEN)
            fatal("%s: value of '%s' is longer than %d characters", source, key, STR_LEN - 1);
        snprintf(p, STR_LEN, "%s", value);
        break;
    }
}

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) config_set(c, KEYS[i].name, KEYS[i].def, "default");
}

typedef struct {
    Config *c;
    const char *path;
} IniCtx;

static int config_ini_line(void *user, const char *section, const char *name, const char *value) {
    IniCtx *ctx = user;
    char where[STR_LEN + 32];
    snprintf(where, sizeof where, "config file '%.*s'", STR_LEN, ctx->path);
    (void)section;  // sections are allowed for readability; keys are global
    config_set(ctx->c, name, value, where);
    return 1;
}

void config_parse_ini(Config *c, const char *text, const char *name) {
    IniCtx ctx = {c, name};
    int rc = ini_parse_string(text, config_ini_line, &ctx);
    if (rc > 0) fatal("config file '%s': syntax error on line %d (expected key = value)", name, rc);
    if (rc < 0) fatal("config file '%s' could not be read", name);
}

void config_load_ini(Config *c, const char *path) {
    if (!file_exists(path)) fatal("config file '%s' not found (check the --config path)", path);
    size_t len;
    char *text = read_file(path, &len, "config file");  // NUL-terminated
    if (strlen(text) != len)
        fatal("config file '%s' holds a NUL byte (not a text INI file)", path);
    config_parse_ini(c, text, path);
    xfree(text);
}

int config_parse_args(Config *c, int argc, char **argv, int first, const char *const *extra_keys) {
    // --config=FILE first, so that the command line wins over the file.
    for (int i = first; i < argc; i++)
        if (strncmp(argv[i], "--config=", 9) == 0) config_load_ini(c, argv[i] + 9);
    int kept = first;
    for (int i = first; i < argc; i++) {
        char *a = argv[i];
        if (strncmp(a, "--config=", 9) == 0) continue;
        if (strncmp(a, "--", 2) == 0 && strchr(a, '=')) {
            char key[STR_LEN];
            size_t n = (size_t)(strchr(a, '=') - a - 2);
            if (n >= sizeof key) n = sizeof key - 1;
            memcpy(key, a + 2, n);
            key[n] = 0;
            if (find_key(key)) {
                config_set(c, key, strchr(a, '=') + 1, "command line");
                continue;
            }
            int is_extra = 0;
            for (const char *const *e = extra_keys; e && *e; e++)
                if (strcmp(*e, key) == 0) is_extra = 1;
            if (!is_extra) config_set(c, key, "", "command line");  // dies with a suggestion
        }
        argv[kept++] = a;
    }
    return kept;
}

static int in_list(const char *const *list, const char *s, int prefix) {
    for (; list && *list; list++)
        if (prefix ? !strncmp(s, *list, strlen(*list)) : !strcmp(s, *list)) return 1;
    return 0;
}

void config_apply_overrides(Config *c, int argc, char **argv, const char *const *own,
                            const char *const *allowed, const char *cmd, const char *hint) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (in_list(own, a, 1)) continue;
        if (strncmp(a, "--", 2) || !eq) fatal("%s: unexpected argument '%s' (see --help)", cmd, a);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        if (config_is_key(key) && !in_list(allowed, key, 0))
            fatal("%s: '%s' is fixed by the checkpoint (%s)", cmd, key, hint);
        config_set(c, key, eq + 1, "command line");
    }
}

// Splits "a,b,c" into per-layer values; one value means every layer.
static int split_list(const char *s, char out[][LAYER_VALUE_LEN], int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len >= LAYER_VALUE_LEN) len = LAYER_VALUE_LEN - 1;
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
        if (!e) break;
        p = e + 1;
    }
    return n;
}

void config_per_layer(const Config *c, const char *key, const char *value,
                      char vals[][LAYER_VALUE_LEN]) {
    char tmp[MAX_LAYERS][LAYER_VALUE_LEN];
    int n = split_list(value, tmp, MAX_LAYERS);
    if (n != 1 && n != c->n_layer)
        fatal("key '%s' = '%s': give one value or one per layer (%d), got %d", key, value,
              c->n_layer, n);
    for (int l = 0; l < c->n_layer; l++) memcpy(vals[l], tmp[n == 1 ? 0 : l], LAYER_VALUE_LEN);
}

void config_set_per_layer(Config *c, const char *key, const char *const *vals, int n_layer) {
    int same = 1;
    for (int l = 1; l < n_layer; l++) same &= !strcmp(vals[l], vals[0]);
    char text[STR_LEN];
    size_t o = 0;
    for (int l = 0; l < (same ? 1 : n_layer); l++) {
        int w = snprintf(text + o, sizeof text - o, "%s%s", l ? "," : "", vals[l]);
        if (w < 0 || (size_t)w >= sizeof text - o)
            fatal("key '%s': the per-layer list is longer than %d characters", key, STR_LEN - 1);
        o += (size_t)w;
    }
    config_set(c, key, text, "plan");
}

void config_resolve(Config *c) {
#define REQUIRE(cond, ...) do { if (!(cond)) fatal(__VA_ARGS__); } while (0)
    // Upper bounds keep every size product of the parameter table and plans within int and
    // size_t (a corrupt config or checkpoint is a one-line error, never an overflow).
    REQUIRE(c->d_model <= MAX_DIM && c->d_ff <= MAX_DIM && c->seq_len <= MAX_DIM &&
            c->d_g <= MAX_DIM && c->d_expert <= MAX_DIM,
            "keys 'd_model', 'd_ff', 'seq_len', 'd_g', 'd_expert' must be at most %d", MAX_DIM);
    REQUIRE(c->vocab_size <= MAX_VOCAB, "key 'vocab_size' must be at most %d, got %d", MAX_VOCAB,
            c->vocab_size);
    REQUIRE(c->n_head >= 1 && (long)c->n_head * c->d_g <= MAX_DIM,
            "keys 'n_head' x 'd_g' (%d x %d) must be at most %d", c->n_head, c->d_g, MAX_DIM);
    REQUIRE(c->n_layer >= 1 && c->n_layer <= MAX_LAYERS, "key 'n_layer' must be in 1..%d, got %d",
            MAX_LAYERS, c->n_layer);
    REQUIRE(c->d_model >= 1 && c->n_head >= 1 && c->d_model % c->n_head == 0,
            "key 'd_model' (%d) must be a positive multiple of 'n_head' (%d)", c->d_model, c->n_head);
    REQUIRE(c->d_ff >= 1, "key 'd_ff' must be positive, got %d", c->d_ff);
    REQUIRE(c->seq_len >= 1, "key 'seq_len' must be positive, got %d", c->seq_len);
    REQUIRE(c->vocab_size >= 2, "key 'vocab_size' must be at least 2, got %d", c->vocab_size);
    REQUIRE(c->d_g >= 1, "key 'd_g' must be positive, got %d", c->d_g);
    REQUIRE(c->dropout >= 0 && c->dropout < 1, "key 'dropout' must be in [0, 1), got %g", c->dropout);
    REQUIRE(c->tau >= 1e-6f && isfinite(c->tau), "key 'tau' must be a number >= 1e-6, got %g", c->tau);
    REQUIRE(c->batch >= 1, "key 'batch' must be positive, got %d", c->batch);
    REQUIRE(c->grad_accum >= 1, "key 'grad_accum' must be positive, got %d", c->grad_accum);
    REQUIRE(c->steps >= 0, "key 'steps' must be >= 0, got %d", c->steps);
    REQUIRE(c->warmup >= 0, "key 'warmup' must be >= 0, got %d", c->warmup);
    REQUIRE(c->lr >= 0, "key 'lr' must be >= 0, got %g", c->lr);
    REQUIRE(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1,
            "keys 'beta1'/'beta2' must be in [0, 1)");
    REQUIRE(c->attn_bias == 0 || c->attn_bias == 1, "key 'attn_bias' must be 0 or 1");
    REQUIRE(c->tie_embeddings == 0 || c->tie_embeddings == 1, "key 'tie_embeddings' must be 0 or 1");
    REQUIRE(c->n_expert >= 1 && c->n_expert <= 64, "key 'n_expert' must be in 1..64, got %d", c->n_expert);
    REQUIRE(c->top_experts == 1 || c->top_experts == 2, "key 'top_experts' must be 1 or 2, got %d",
            c->top_experts);
    REQUIRE(c->top_experts <= c->n_expert, "key 'top_experts' (%d) exceeds 'n_expert' (%d)",
            c->top_experts, c->n_expert);
    REQUIRE(c->capacity_factor >= 0 && c->capacity_factor <= 1000,
            "key 'capacity_factor' must be in [0, 1000] (0 = no limit), got %g", c->capacity_factor);
    REQUIRE(c->aux_loss >= 0, "key 'aux_loss' must be >= 0, got %g", c->aux_loss);
    REQUIRE(c->d_expert >= 0, "key 'd_expert' must be >= 0, got %d", c->d_expert);
    REQUIRE(c->moe_dense_control == 0 || c->moe_dense_control == 1, "key 'moe_dense_control' must be 0 or 1");
#undef REQUIRE
}

void config_write_ini(const Config *c, FILE *f) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        const char *p = (const char *)c + k->offset;
        fprintf(f, "%s = ", k->name);
        if (k->type == KEY_INT) fprintf(f, "%d\n", *(const int *)p);
        else if (k->type == KEY_FLOAT) fprintf(f, "%.9g\n", *(const float *)p);
        else fprintf(f, "%s\n", p);
    }
}

char *config_to_string(const Config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) fatal("out of memory writing the config");
    config_write_ini(c, f);
    fclose(f);
    return buf;
}

void config_print_help(FILE *f) {
    fprintf(f, "Config keys (INI file via --config=FILE, or --key=value; the command line wins):\n");
    for (size_t i = 0; i < N_KEYS; i++)
        fprintf(f, "  --%-20s %s (default %s)\n", KEYS[i].name, KEYS[i].help, KEYS[i].def);
}
