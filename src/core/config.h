// config.h: every option of routelab in one struct, described by one table of keys (config.c)
// that drives INI parsing, --key=value overrides, validation, --help and config.ini output.
#ifndef ROUTELAB_CONFIG_H
#define ROUTELAB_CONFIG_H
#include <stdint.h>
#include <stdio.h>

#define MAX_LAYERS 64
#define STR_LEN 256

typedef enum { GELU_ERF = 0, GELU_TANH = 1 } GeluKind;
typedef enum { TOPK_CAUSAL = 0, TOPK_ALL = 1 } TopkScope;
typedef enum { GATE_GRAD_NONE = 0, GATE_GRAD_STE = 1 } GateGrad;

// Feed-forward sublayers (ffn.c): the activation of a plain FFN or of each expert, and the router.
typedef enum { FFN_ACT_GELU, FFN_ACT_SWIGLU, FFN_ACT_GEGLU } FfnAct;
typedef enum { ROUTER_NONE, ROUTER_LEARNED, ROUTER_RANDOM, ROUTER_HASH } RouterKind;

// Attention routing modes; their behaviour is the table in attention.c.
typedef enum {
    ATTN_DENSE, ATTN_ORACLE, ATTN_SOFT, ATTN_SOFT_PROB, ATTN_HARD, ATTN_STOCHASTIC,
    ATTN_RANDOM_FIXED, ATTN_WINDOW, ATTN_NUM_MODES
} AttnMode;

typedef struct {
    // model
    int n_layer, d_model, n_head, d_ff, seq_len, vocab_size;
    int attn_bias, tie_embeddings;
    char gelu[STR_LEN];
    float dropout, init_std, gate_init_std, ln_eps;
    // routing
    char attn[STR_LEN];        // mode, or comma list per layer
    char k[STR_LEN];           // keys kept per query, or comma list per layer
    char gate[STR_LEN];        // learned | random, or comma list per layer
    int d_g;
    float tau;
    char topk_scope[STR_LEN];  // causal | all
    char gate_grad[STR_LEN];   // none | ste
    int gate_seed, mask_seed;
    // feed-forward sublayers and experts
    char ffn[STR_LEN];         // dense | swiglu | geglu | moe, or a comma list per layer
    char expert[STR_LEN];      // each expert: dense | swiglu | geglu
    int n_expert, d_expert, top_experts, moe_dense_control, router_seed;
    float capacity_factor, aux_loss;
    char router[STR_LEN];      // learned | random | hash
    // training
    int seed, batch, grad_accum, steps, warmup;
    float lr, min_lr_ratio, weight_decay, beta1, beta2, adam_eps, grad_clip;
    char train[STR_LEN];       // what is trainable (see freeze.c)
    char ablate[STR_LEN];      // evaluation: sublayer outputs replaced by their mean
    char init[STR_LEN];        // start from this checkpoint's weights (fresh optimizer)
    char precision[STR_LEN];   // fp32 | bf16 (the large matrix products)
    int eval_every, eval_batches, ckpt_every, log_every, stop_after, threads;
    // data
    char data[STR_LEN];
    int mqar_pairs, mqar_random_filler, mqar_eval_examples, data_seed;
    float mqar_alpha;
    int add_digits;
    char add_order[STR_LEN];   // lsd | msd
    char out[STR_LEN];

    // ---- derived by config_resolve(), not keys ----
    GeluKind gelu_kind;
    int bf16;                  // precision == bf16
    TopkScope scope;
    GateGrad gate_grad_kind;
    AttnMode mode[MAX_LAYERS];
    int layer_k[MAX_LAYERS];
    int gate_frozen[MAX_LAYERS];  // gate=random: frozen at init, never updated
    FfnAct ffn_act[MAX_LAYERS];   // per layer: activation of the FFN / of each expert
    int ffn_experts[MAX_LAYERS];  // per layer: E (1 = a plain FFN)
    int ffn_width[MAX_LAYERS];    // per layer: hidden width of the FFN / of each expert
    RouterKind ffn_router[MAX_LAYERS];  // ROUTER_NONE for a plain FFN
    unsigned char ablate_attn[MAX_LAYERS], ablate_ffn[MAX_LAYERS];
} Config;

void config_defaults(Config *c);
// Applies "key=value"; returns 0 on success, else fatal naming the key (source says where).
void config_set(Config *c, const char *key, const char *value, const char *source);
void config_load_ini(Config *c, const char *path);
// Parses argv[first..]: --key=value (config keys), --config=FILE (loaded first). Arguments
// that are not config keys are left for the command: returns them compacted in argv, count.
int config_parse_args(Config *c, int argc, char **argv, int first, const char *const *extra_keys);
// For commands whose config comes from a checkpoint: applies the --key=value arguments on top
// of it. Arguments starting with one of `own` (NULL-terminated) belong to the command and are
// skipped; a config key not in `allowed` dies with "CMD: 'KEY' is fixed by the checkpoint
// (HINT)"; an unknown key dies with the nearest key's name.
void config_apply_overrides(Config *c, int argc, char **argv, const char *const *own,
                            const char *const *allowed, const char *cmd, const char *hint);
// Validates and fills the derived fields; dies with one line naming the key on bad values.
void config_resolve(Config *c);
// Writes every key as INI text ("key = value" lines). The checkpoint embeds the same text.
void config_write_ini(const Config *c, FILE *f);
char *config_to_string(const Config *c);  // INI text, caller frees
void config_print_help(FILE *f);
int config_is_key(const char *key);
// For typo hints: edit distance of two names, and the config key nearest to name (NULL when
// none is within 3 edits).
int config_edit_distance(const char *a, const char *b);
const char *config_closest_key(const char *name);

const char *attn_mode_name(AttnMode m);
int attn_mode_parse(const char *s, AttnMode *out);  // 1 if known

#endif
