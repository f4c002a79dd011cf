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
#define MAX_DIM (1 << 20)     // widths, seq_len, n_head * d_g (config_resolve checks)
#define MAX_VOCAB (1 << 24)

typedef struct {
    // model
    char family[STR_LEN];      // row of the model-family table (family.c)
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

} Config;

void config_defaults(Config *c);
// Applies "key=value"; returns 0 on success, else fatal naming the key (source says where).
void config_set(Config *c, const char *key, const char *value, const char *source);
void config_load_ini(Config *c, const char *path);
// Applies INI text (NUL-terminated); name says where it came from in errors.
void config_parse_ini(Config *c, const char *text, const char *name);
// Parses argv[first..]: --key=value (config keys), --config=FILE (loaded first). Arguments
// that are not config keys are left for the command: returns them compacted in argv, count.
int config_parse_args(Config *c, int argc, char **argv, int first, const char *const *extra_keys);
// For commands whose config comes from a checkpoint: applies the --key=value arguments on top
// of it. Arguments starting with one of `own` (NULL-terminated) belong to the command and are
// skipped; a config key not in `allowed` dies with "CMD: 'KEY' is fixed by the checkpoint
// (HINT)"; an unknown key dies with the nearest key's name.
void config_apply_overrides(Config *c, int argc, char **argv, const char *const *own,
                            const char *const *allowed, const char *cmd, const char *hint);
// Validates the scalar keys (ranges); dies with one line naming the key on bad values. The
// grammar of the per-layer and per-module string keys is checked by the plans that read them.
void config_resolve(Config *c);
// Writes every key as INI text ("key = value" lines). The checkpoint embeds the same text.
void config_write_ini(const Config *c, FILE *f);
char *config_to_string(const Config *c);  // INI text, caller frees
void config_print_help(FILE *f);
int config_is_key(const char *key);
// Splits "a,b,c" into per-layer values (one value means every layer); dies naming the key when
// the count is neither 1 nor n_layer. vals[l] holds layer l's text.
#define LAYER_VALUE_LEN 32
void config_per_layer(const Config *c, const char *key, const char *value,
                      char vals[][LAYER_VALUE_LEN]);
// Writes per-layer values back as the key's text: one value when all layers agree, else a
// comma list (so a plan regenerates the strings a checkpoint stores).
void config_set_per_layer(Config *c, const char *key, const char *const *vals, int n_layer);

#endif
