// config.h: every option of routelab in one struct, described by one table of keys (config.c)
// that drives INI parsing, --key=value overrides, validation, --help and config.ini output.
// This is the *spec*: the values as the user typed them (numbers range-checked, strings kept as
// text). What they mean is decided by the modules that own the concepts, each into its own
// resolved plan: attention_plan_resolve (attention.h), ffn_plan_resolve (ffn.h),
// model_plan_resolve (model.h: family, precision, ablation) and dataspec_from_config (dataset.h).
#ifndef ROUTELAB_CONFIG_H
#define ROUTELAB_CONFIG_H
#include <stdint.h>
#include <stdio.h>

#define MAX_LAYERS 64
#define STR_LEN 256
#define PATH_LEN 1024  // the path keys (out, init): long run directories must fit
#define MAX_DIM (1 << 20)     // widths, seq_len, n_head * d_g (config_resolve checks)
#define MAX_VOCAB (1 << 24)

typedef struct {
    // model
    char family[STR_LEN];      // row of the model-family table (family.c)
    int n_layer, d_model, n_head, d_ff, seq_len, vocab_size;
    int n_kv_head, head_dim;   // grouped K/V heads and head width (0 = the GPT defaults)
    int attn_bias, mlp_bias, tie_embeddings;
    char gelu[STR_LEN];
    float dropout, init_std, gate_init_std, ln_eps;
    float rope_theta;          // rotary positions (families with rotary positions)
    char rope_scaling[STR_LEN];// none | llama3
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    // routing
    char attn[STR_LEN];        // mode, or comma list per layer
    char k[STR_LEN];           // keys kept per query, or comma list per layer
    char gate[STR_LEN];        // learned | random, or comma list per layer
    int d_g;
    float tau;
    char topk_scope[STR_LEN];  // causal | all
    char gate_grad[STR_LEN];   // none | ste
    int block_size, k_blocks, block_window;  // block / block_oracle modes
    int gate_seed, mask_seed;
    float dense_fraction;      // training: share of steps run dense (the rest as configured)
    int stochastic_anneal;     // training: stochastic layers anneal towards the gate's top-k
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
    char init[PATH_LEN];       // start from this checkpoint's weights (fresh optimizer)
    char precision[STR_LEN];   // fp32 | bf16 (the large matrix products)
    int eval_every, eval_batches, ckpt_every, log_every, stop_after, threads;
    // data
    char data[STR_LEN];
    int mqar_pairs, mqar_random_filler, mqar_eval_examples, data_seed;
    float mqar_alpha;
    int add_digits;
    char add_order[STR_LEN];   // lsd | msd
    char out[PATH_LEN];

} Config;

void config_defaults(Config *c);
// Applies "key=value"; returns 0 on success, else fatal naming the key (source says where).
void config_set(Config *c, const char *key, const char *value, const char *source);
void config_load_ini(Config *c, const char *path);
// The same, asking filter(ctx, c, key, value, where) first about every line: a line it returns
// 0 for is not applied (the filter may die naming the line instead).
typedef int (*ConfigLineFilter)(void *ctx, const Config *c, const char *key, const char *value,
                                const char *where);
void config_load_ini_filtered(Config *c, const char *path, ConfigLineFilter filter, void *ctx);
// Applies INI text (NUL-terminated); name says where it came from in errors.
void config_parse_ini(Config *c, const char *text, const char *name);
void config_parse_ini_filtered(Config *c, const char *text, const char *name,
                               ConfigLineFilter filter, void *ctx);
// Validates the scalar keys (ranges); dies with one line naming the key on bad values. The
// grammar of the per-layer and per-module string keys is checked by the plans that read them.
void config_resolve(Config *c);
// Writes every key as INI text ("key = value" lines). The checkpoint embeds the same text.
void config_write_ini(const Config *c, FILE *f);
char *config_to_string(const Config *c);  // INI text, caller frees
// Every key of the table as a JSON object (ints and floats as numbers, strings as strings):
// what a checkpoint stores, with no line-length limit. Caller frees with cJSON_Delete.
struct cJSON;
struct cJSON *config_to_json(const Config *c);
// Applies a JSON object written by config_to_json on top of c (keys it lacks keep their values;
// an unknown key or a value of the wrong type dies naming `source` and the key).
void config_from_json(Config *c, const struct cJSON *obj, const char *source);
void config_print_help(FILE *f);
int config_is_key(const char *key);
// For typo hints: edit distance of two names, and the config key nearest to name (NULL when
// none is within 3 edits).
int config_edit_distance(const char *a, const char *b);
const char *config_closest_key(const char *name);
// Splits "a,b,c" into per-layer values (one value means every layer); dies naming the key when
// the count is neither 1 nor n_layer. vals[l] holds layer l's text.
#define LAYER_VALUE_LEN 32
void config_per_layer(const Config *c, const char *key, const char *value,
                      char vals[][LAYER_VALUE_LEN]);
// Writes per-layer values back as the key's text: one value when all layers agree, else a
// comma list (so a plan regenerates the strings a checkpoint stores).
void config_set_per_layer(Config *c, const char *key, const char *const *vals, int n_layer);

#endif
