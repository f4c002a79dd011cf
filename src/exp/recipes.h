// recipes.h: the experiments as data. A scale fixes the model and task configs; a recipe is a
// table of arms (what one run is: a training, a distillation, an evaluation or a probe, and the
// config keys that make it differ). Everything here is pure: no files, no processes.
#ifndef ROUTELAB_RECIPES_H
#define ROUTELAB_RECIPES_H
#include <stddef.h>

// A scale sets model size, sequence length, steps and k together (k = seq_len / 8 keeps the
// paper's 87.5% sparsity).
typedef struct {
    const char *name, *keys;
    int k, n_layer;         // substituted for {k}, {2k}, {4k}, {k/2}, {L}, {L/2} in arm keys
    int distill_steps;      // gate-only distillation steps (--distill_steps overrides)
    const char *add_keys;   // the addition-with-carry task (FFN and MoE recipes)
    const char *text_keys;  // text shards for the MoE recipes (NULL: none at this scale)
    const char *mqar_keys;  // the MQAR model of the routing-precision probe
    // The llm-* recipes (the paper's Section 5) run on a pretrained model: a Hugging Face
    // directory given with --model, or one the sweep trains and exports itself (llm_base).
    const char *llm_keys;   // their training protocol: lr, weight decay, batch, steps, clip ...
    const char *llm_window; // every llm run's windows: seq_len and eval_batches
    const char *llm_data;   // their data keys (NULL: --data is required)
    const char *llm_base;   // training keys of the self-trained model (NULL: --model required)
    int llm_k, llm_distill_steps;
    // decoupled-data: the keys that put a run on another text ({other_data}) and back on the
    // scale's own ({own_data}); NULL: the scale has no other text (those arms are skipped)
    const char *other_data, *own_data;
} Scale;

// What an arm runs: a training, a distillation of another arm's model, an evaluation of
// another arm's model under other routing (deploy-time swap), or a probe of it.
// RUN_EXPORT writes another arm's model as a plain Hugging Face directory (what a downloaded
// model is), so the llm-* recipes take one path whether the model was downloaded or not.
// RUN_GATEINFO measures how many bits another arm's gate carries about which keys matter to a
// gate-free reference arm (`routelab gateinfo`).
typedef enum { RUN_TRAIN, RUN_DISTILL, RUN_EVAL, RUN_PROBE, RUN_EXPORT, RUN_GATEINFO } RunKind;
#define N_RUN_KINDS 6
// Which of the scale's task configs a training arm uses. TASK_LLM: an arm of the llm-* recipes
// (the scale's llm_keys, llm_window and llm_data, on the pretrained model); TASK_LLM_BASE: the
// model those recipes train for themselves when no --model is given (llm_base).
typedef enum { TASK_MAIN, TASK_ADDITION, TASK_TEXT, TASK_MQAR, TASK_LLM, TASK_LLM_BASE } Task;

typedef struct {
    const char *name;
    RunKind kind;
    const char *from;   // the arm whose checkpoint this one starts from / distils / evaluates
    const char *keys;   // config keys ({k}, {2k}, {4k}, {k/2}, {L}, {L/2}, {seed} are substituted)
    double paper;       // the paper's perplexity for this arm (NAN: none)
    double paper_f1;    // the paper's gate F1 (NAN: none)
    int needs_layers;   // runs only when the scale has more layers than this (0: always)
    Task task;          // training arms: the scale's main, addition, text or MQAR config
    int single;         // one run for all seeds (seed 0): the pretrained model, evaluations
                        // of it that no seed changes
    const char *ref;    // RUN_GATEINFO: the gate-free arm (same seed) whose losses label the keys
} Arm;

#define MAX_ARMS 24    // arms of one recipe; the table ends at the first arm without a name
#define MAX_SEEDS 100  // --seeds is at most this

typedef struct {
    const char *name, *what;
    Arm arms[MAX_ARMS];
    // the group `repro GROUP` names: NULL = "all" (the paper's experiments on its own model),
    // "open" (its open questions and follow-ups), "llm" (Section 5 on a pretrained model)
    const char *group;
} Recipe;

extern const Recipe RECIPES[];
extern const size_t N_RECIPES;
extern const Scale SCALES[];
extern const size_t N_SCALES;

// The scale called name, or NULL.
const Scale *scale_find(const char *name);
// The scale's keys for a training arm's task, or NULL when the scale has no such task.
const char *task_keys(const Scale *sc, Task t);
// Arm keys with the scale's values substituted for {k}, {2k}, {4k}, {k/2}, {L}, {L/2}, {seed}
// (100 + seed), {4steps} (4 x the scale's steps), {other_data}, {own_data}, and {mid:X:Y} by a per-layer list with X at layer L/2 and Y elsewhere (one
// routed block); truncated to fit cap.
void expand_keys(char *out, size_t cap, const char *keys, const Scale *sc, int seed);

// The first arm of that name in RECIPES, or NULL.
const Arm *find_arm(const char *name);
// Index of the arm of that name in r, or -1.
int arm_index(const Recipe *r, const char *name);
// Arms whose layer count or task the scale lacks are skipped (text MoE arms at tiny scale), and
// so are arms built on a skipped arm.
int arm_active(const Arm *a, const Scale *scale);
// 1 for an arm of the llm-* recipes (it runs on the pretrained model, at the llm scale).
int arm_is_llm(const Arm *a);
// The seeds an arm runs: 1 for a single arm, else seeds.
int arm_seeds(const Arm *a, int seeds);
// Layers unfrozen in an arm of the absorption gradient (-1: not such an arm).
int unfrozen_layers(const Arm *a, const Scale *scale);

// Arms of the same name are one run shared by every recipe that lists them (all recipes write
// into one OUT), so their definitions must agree. Returns NULL when every shared arm name has
// identical kind, from, keys, task and needs_layers in all n recipes of r; otherwise writes a
// one-line message naming the arm and both recipes into msg and returns msg.
const char *recipes_check(const Recipe *r, size_t n, char *msg, size_t cap);

#endif
