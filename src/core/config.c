// config.c: the key table. Adding an option is adding one row here.
#include "config.h"

#include <cjson/cJSON.h>
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
    size_t size;  // bytes of the field (strings: capacity including the terminator)
    const char *def;
    const char *help;
} ConfigKey;

#define K(name, type, def, help) \
    {#name, type, offsetof(Config, name), sizeof(((Config *)0)->name), def, help}
static const ConfigKey KEYS[] = {
    // model (defaults: the paper's model as its public code defines it)
    K(family, KEY_STR, "gpt", "model family: a row of the family table (gpt: pre-norm GPT, "
      "LayerNorm, learned positions; see README, Model families)"),
    K(n_layer, KEY_INT, "6", "transformer blocks"),
    K(d_model, KEY_INT, "256", "residual width"),
    K(n_head, KEY_INT, "4", "attention (query) heads"),
    K(n_kv_head, KEY_INT, "0", "key/value heads, grouped: n_head must be a multiple (0 = n_head; "
      "families llama, qwen2, qwen3)"),
    K(head_dim, KEY_INT, "0", "width of one head (0 = d_model / n_head; another value: families "
      "llama, qwen2, qwen3)"),
    K(d_ff, KEY_INT, "1024", "FFN hidden width"),
    K(seq_len, KEY_INT, "512", "context length T (rows of the position embedding)"),
    K(vocab_size, KEY_INT, "50257", "vocabulary size V"),
    K(attn_bias, KEY_INT, "0", "1: biases on the q/k/v and output projections (qwen2: q/k/v "
      "biases always, never on the output)"),
    K(mlp_bias, KEY_INT, "-1", "1: biases on the FFN's matrices; -1: the family's choice (gpt 1, "
      "llama/qwen 0)"),
    K(tie_embeddings, KEY_INT, "1", "1: LM head is the token embedding; 0: separate lm_head"),
    K(gelu, KEY_STR, "erf", "GELU form: erf (exact) | tanh"),
    K(dropout, KEY_FLOAT, "0.1", "dropout on embeddings, attention weights, FFN (0 = off)"),
    K(init_std, KEY_FLOAT, "0.02", "std of the N(0, s) init of matrices and embeddings"),
    K(gate_init_std, KEY_FLOAT, "0.02", "std of the gate init"),
    K(ln_eps, KEY_FLOAT, "1e-5", "epsilon of the family's norm (LayerNorm, RMSNorm)"),
    K(rope_theta, KEY_FLOAT, "10000", "rotary positions: base of the frequencies"),
    K(rope_scaling, KEY_STR, "none", "rotary frequency scaling: none | llama3"),
    K(rope_factor, KEY_FLOAT, "8", "llama3 rope scaling: factor"),
    K(rope_low_freq_factor, KEY_FLOAT, "1", "llama3 rope scaling: low_freq_factor"),
    K(rope_high_freq_factor, KEY_FLOAT, "4", "llama3 rope scaling: high_freq_factor"),
    K(rope_original_max_pos, KEY_INT, "8192", "llama3 rope scaling: "
      "original_max_position_embeddings"),
    // routing
    K(attn, KEY_STR, "dense",
      "routing mode, or a comma list per layer: dense|oracle|soft|soft_prob|hard|stochastic|"
      "random_fixed|window|block|block_oracle|expert_choice|expert_choice_causal"),
    K(k, KEY_STR, "64", "keys kept per query (top-k modes, window), tokens picked per head "
      "(expert_choice modes), or a comma list per layer"),
    K(gate, KEY_STR, "learned", "gate kind: learned | random (frozen at init), or per layer"),
    K(d_g, KEY_INT, "32", "gate width per head"),
    K(tau, KEY_FLOAT, "1", "gate temperature: sigmoid(G / tau)"),
    K(topk_scope, KEY_STR, "causal", "causal: rank visible keys only; all: the paper's code"),
    K(gate_grad, KEY_STR, "none", "hard and block modes' gate gradient: none | ste (straight-"
      "through, the reference's) | ste_dense (straight-through normalised over every visible "
      "key: bounded)"),
    K(block_size, KEY_INT, "16", "block and block_oracle modes: keys per block"),
    K(k_blocks, KEY_INT, "2", "block and block_oracle modes: blocks kept per query (top by the "
      "block score: the max of the gate's, or the attention's, scores over the block's visible keys)"),
    K(block_window, KEY_INT, "0", "block and block_oracle modes: the most recent keys a query "
      "always keeps besides its blocks (NSA's sliding window; 0 = none)"),
    K(gate_seed, KEY_INT, "1234", "seed of the gate init (independent of the model init)"),
    K(mask_seed, KEY_INT, "2000", "seed of the stochastic and random_fixed masks"),
    K(dense_fraction, KEY_FLOAT, "0", "training: this share of the steps (drawn per step from "
      "data_seed) runs every layer dense, the others as configured (mixing dense and sparse passes)"),
    K(stochastic_anneal, KEY_INT, "0", "training: 1 = at step t of T, a stochastic layer uses the "
      "gate's own top-k (attn=hard, with gate_grad) with probability t/T, else its random mask"),
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

int config_edit_distance(const char *a, const char *b) { return edit_distance(a, b); }
const char *config_closest_key(const char *name) { return closest_key(name); }

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
        if (!isfinite((float)v))  // nan, inf, or out of float range (1e39)
            fatal("%s: key '%s' expects a finite number, got '%s'", source, key, value);
        *(float *)p = (float)v;
        break;
    }
    case KEY_STR:
        if (strlen(value) >= k->size)
            fatal("%s: value of '%s' is longer than %zu characters", source, key, k->size - 1);
        memcpy(p, value, strlen(value) + 1);
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
    ConfigLineFilter filter;
    void *filter_ctx;
} IniCtx;

static int config_ini_line(void *user, const char *section, const char *name, const char *value) {
    IniCtx *ctx = user;
    char where[STR_LEN + 32];
    snprintf(where, sizeof where, "config file '%.*s'", STR_LEN, ctx->path);
    (void)section;  // sections are allowed for readability; keys are global
    if (!ctx->filter || ctx->filter(ctx->filter_ctx, ctx->c, name, value, where))
        config_set(ctx->c, name, value, where);
    return 1;
}

void config_parse_ini_filtered(Config *c, const char *text, const char *name,
                               ConfigLineFilter filter, void *ctx) {
    IniCtx x = {c, name, filter, ctx};
    int rc = ini_parse_string(text, config_ini_line, &x);
    if (rc > 0) fatal("config file '%s': syntax error on line %d (expected key = value)", name, rc);
    if (rc < 0) fatal("config file '%s' could not be read", name);
}

void config_parse_ini(Config *c, const char *text, const char *name) {
    config_parse_ini_filtered(c, text, name, NULL, NULL);
}

void config_load_ini_filtered(Config *c, const char *path, ConfigLineFilter filter, void *ctx) {
    if (!file_exists(path)) fatal("config file '%s' not found (check the --config path)", path);
    size_t len;
    char *text = read_file(path, &len, "config file");  // NUL-terminated
    if (strlen(text) != len)
        fatal("config file '%s' holds a NUL byte (not a text INI file)", path);
    config_parse_ini_filtered(c, text, path, filter, ctx);
    xfree(text);
}

void config_load_ini(Config *c, const char *path) { config_load_ini_filtered(c, path, NULL, NULL); }

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
    REQUIRE(c->d_model >= 1 && c->n_head >= 1 && (c->head_dim > 0 || c->d_model % c->n_head == 0),
            "key 'd_model' (%d) must be a positive multiple of 'n_head' (%d), or set head_dim",
            c->d_model, c->n_head);
    REQUIRE(c->head_dim >= 0 && c->head_dim <= MAX_DIM && (long)c->n_head * (c->head_dim ? c->head_dim : 1) <= MAX_DIM,
            "key 'head_dim' must be in 0..%d with n_head x head_dim at most %d, got %d", MAX_DIM,
            MAX_DIM, c->head_dim);
    REQUIRE(c->n_kv_head >= 0 && c->n_kv_head <= c->n_head &&
            (c->n_kv_head == 0 || c->n_head % c->n_kv_head == 0),
            "key 'n_kv_head' (%d) must divide n_head (%d), or be 0 (= n_head)", c->n_kv_head, c->n_head);
    REQUIRE(c->mlp_bias >= -1 && c->mlp_bias <= 1, "key 'mlp_bias' must be -1, 0 or 1, got %d",
            c->mlp_bias);
    REQUIRE(c->rope_theta > 0, "key 'rope_theta' must be > 0, got %g", c->rope_theta);
    REQUIRE(c->rope_original_max_pos >= 1, "key 'rope_original_max_pos' must be positive, got %d",
            c->rope_original_max_pos);
    REQUIRE(c->d_ff >= 1, "key 'd_ff' must be positive, got %d", c->d_ff);
    REQUIRE(c->seq_len >= 1, "key 'seq_len' must be positive, got %d", c->seq_len);
    REQUIRE(c->vocab_size >= 2, "key 'vocab_size' must be at least 2, got %d", c->vocab_size);
    REQUIRE(c->d_g >= 1, "key 'd_g' must be positive, got %d", c->d_g);
    REQUIRE(c->block_size >= 1, "key 'block_size' must be positive, got %d", c->block_size);
    REQUIRE(c->k_blocks >= 1, "key 'k_blocks' must be positive, got %d", c->k_blocks);
    REQUIRE(c->block_window >= 0, "key 'block_window' must be >= 0, got %d", c->block_window);
    // Every float key finite (a Config may be filled without config_set), then its range; a
    // comparison with NaN is false, so each REQUIRE below also rejects NaN.
    for (size_t i = 0; i < N_KEYS; i++)
        if (KEYS[i].type == KEY_FLOAT)
            REQUIRE(isfinite(*(const float *)((const char *)c + KEYS[i].offset)),
                    "key '%s' must be a finite number, got %g", KEYS[i].name,
                    *(const float *)((const char *)c + KEYS[i].offset));
    REQUIRE(c->dropout >= 0 && c->dropout < 1, "key 'dropout' must be in [0, 1), got %g", c->dropout);
    REQUIRE(c->init_std > 0, "key 'init_std' must be > 0, got %g", c->init_std);
    REQUIRE(c->gate_init_std > 0, "key 'gate_init_std' must be > 0, got %g", c->gate_init_std);
    REQUIRE(c->ln_eps > 0, "key 'ln_eps' must be > 0, got %g", c->ln_eps);
    REQUIRE(c->mqar_alpha > 0, "key 'mqar_alpha' must be > 0, got %g", c->mqar_alpha);
    REQUIRE(c->tau >= 1e-6f && isfinite(c->tau), "key 'tau' must be a number >= 1e-6, got %g", c->tau);
    REQUIRE(c->batch >= 1, "key 'batch' must be positive, got %d", c->batch);
    REQUIRE(c->grad_accum >= 1, "key 'grad_accum' must be positive, got %d", c->grad_accum);
    REQUIRE(c->steps >= 0, "key 'steps' must be >= 0, got %d", c->steps);
    REQUIRE(c->warmup >= 0, "key 'warmup' must be >= 0, got %d", c->warmup);
    REQUIRE(c->lr >= 0, "key 'lr' must be >= 0, got %g", c->lr);
    REQUIRE(c->min_lr_ratio >= 0, "key 'min_lr_ratio' must be >= 0, got %g", c->min_lr_ratio);
    REQUIRE(c->weight_decay >= 0, "key 'weight_decay' must be >= 0, got %g", c->weight_decay);
    REQUIRE(c->adam_eps > 0, "key 'adam_eps' must be > 0, got %g", c->adam_eps);
    REQUIRE(c->grad_clip >= 0, "key 'grad_clip' must be >= 0 (0 = off), got %g", c->grad_clip);
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
    REQUIRE(c->dense_fraction >= 0 && c->dense_fraction <= 1,
            "key 'dense_fraction' must be in [0, 1] (0 = off), got %g", c->dense_fraction);
    REQUIRE(c->stochastic_anneal == 0 || c->stochastic_anneal == 1, "key 'stochastic_anneal' must be 0 or 1");
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

cJSON *config_to_json(const Config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) fatal("out of memory writing the config");
    for (size_t i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        const char *p = (const char *)c + k->offset;
        cJSON *v;
        if (k->type == KEY_INT) {
            v = cJSON_CreateNumber(*(const int *)p);
        } else if (k->type == KEY_FLOAT) {
            // %.9g is the shortest text that always reads back as the same float
            float x = *(const float *)p;
            char num[32];
            snprintf(num, sizeof num, "%.9g", (double)x);
            v = isfinite(x) ? cJSON_CreateRaw(num) : cJSON_CreateNull();
        } else {
            v = cJSON_CreateString(p);
        }
        if (!v) fatal("out of memory writing the config");
        cJSON_AddItemToObject(o, k->name, v);
    }
    return o;
}

void config_from_json(Config *c, const cJSON *obj, const char *source) {
    if (!cJSON_IsObject(obj)) fatal("%s: the config is not a JSON object (the file is damaged)", source);
    for (const cJSON *v = obj->child; v; v = v->next) {
        const ConfigKey *k = v->string ? find_key(v->string) : NULL;
        if (!k) {
            config_set(c, v->string ? v->string : "?", "", source);  // dies naming the key
            continue;
        }
        char *p = (char *)c + k->offset;
        if (k->type == KEY_STR) {
            if (!cJSON_IsString(v)) fatal("%s: key '%s' expects a string", source, k->name);
            config_set(c, k->name, v->valuestring, source);
        } else if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            fatal("%s: key '%s' expects a number", source, k->name);
        } else if (k->type == KEY_INT) {
            double d = v->valuedouble;
            if (d != floor(d) || d < -2147483647.0 || d > 2147483647.0)
                fatal("%s: key '%s' expects an integer, got %g", source, k->name, d);
            *(int *)p = (int)d;
        } else {
            *(float *)p = (float)v->valuedouble;
        }
    }
}
