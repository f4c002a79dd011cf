// recipes.c: the scales and recipes of `routelab repro`, and the pure functions over them: arm
// lookup, key expansion, which arms a scale runs, and the consistency check of shared arms.
#include "recipes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINY_ADD "--data=addition --add_digits=2 --vocab_size=13 --seq_len=8 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=400 --warmup=50 " \
    "--lr=3e-3 --dropout=0 --eval_every=200 --eval_batches=0 --mqar_eval_examples=1000 " \
    "--log_every=0 --ckpt_every=200"
// 5 digits, 3000 steps at lr 1e-3: at 3 digits every arm reached 100% (nothing to compare); in
// 1500 steps one dense seed of three stayed on a 55%-accuracy plateau (at lr 3e-3 and 1e-3
// alike), which the longer schedule leaves by step 1500.
#define SMALL_ADD "--data=addition --add_digits=5 --vocab_size=13 --seq_len=17 --n_layer=1 " \
    "--d_model=128 --n_head=4 --d_ff=512 --n_expert=4 --batch=128 --steps=3000 --warmup=100 " \
    "--lr=1e-3 --dropout=0 --eval_every=500 --eval_batches=0 --mqar_eval_examples=2000 " \
    "--log_every=0 --ckpt_every=500"

// The KJV text model of the small scale (make data-kjv): main recipes and MoE text arms alike.
#define SMALL_TEXT "--data=data/kjv-8k --vocab_size=8192 --n_layer=4 --d_model=128 --n_head=4 " \
    "--d_ff=512 --seq_len=256 --batch=8 --steps=600 --warmup=60 --lr=1e-3 --dropout=0.1 " \
    "--eval_every=200 --eval_batches=20 --log_every=0 --ckpt_every=200"

// The medium scale's text model (make data-kjv). In a scan of dense models of this size on KJV
// (README, Scales), rotary positions (family llama) concentrated attention where learned ones
// (gpt) stayed diffuse, and T 64 more than T 128: mean top-T/8 mass 0.80 / 0.65 / 0.71 and
// entropy ratio 0.62 / 0.86 / 0.82 (llama T 128, gpt T 128, gpt 2 heads T 64) at 1500 steps.
#define MEDIUM_TEXT "--family=llama --data=data/kjv-2k --vocab_size=2048 --n_layer=4 --d_model=128 " \
    "--n_head=2 --d_ff=512 --seq_len=64 --batch=32 --steps=1000 --warmup=50 --lr=2e-3 " \
    "--dropout=0 --eval_every=250 --eval_batches=20 --log_every=0 --ckpt_every=250"

// The llm recipes' protocol. paper: the paper's Section 5 (AdamW lr 1e-4, weight decay 0.01,
// batch 4, 5,000 steps, clip 1, 512-token windows; distillation 1,000 steps at lr 1e-3). tiny
// and small fine-tune their own small models: fewer steps, shorter windows, a larger lr.
#define PAPER_LLM_KEYS "--lr=1e-4 --weight_decay=0.01 --batch=4 --steps=5000 --warmup=100 " \
    "--grad_clip=1 --dropout=0 --eval_every=500 --log_every=0 --ckpt_every=500"
#define TINY_LLM_KEYS "--lr=1e-3 --weight_decay=0.01 --batch=32 --steps=200 --warmup=20 " \
    "--grad_clip=1 --dropout=0 --eval_every=50 --log_every=0 --ckpt_every=100"
#define SMALL_LLM_KEYS "--lr=3e-4 --weight_decay=0.01 --batch=8 --steps=500 --warmup=20 " \
    "--grad_clip=1 --dropout=0 --eval_every=100 --log_every=0 --ckpt_every=250"
// The models the llm recipes train for themselves (no downloads here): Qwen3-family, grouped
// K/V heads and q/k norm as the real ones; tiny on MQAR, small on KJV.
#define TINY_LLM_BASE "--family=qwen3 --n_layer=4 --d_model=64 --n_head=4 --n_kv_head=2 " \
    "--d_ff=128 --vocab_size=64 --data=mqar --mqar_pairs=4 --seq_len=32 --batch=64 --steps=600 " \
    "--warmup=50 --lr=3e-3 --dropout=0 --eval_every=200 --eval_batches=4 " \
    "--mqar_eval_examples=256 --log_every=0 --ckpt_every=200"
#define SMALL_LLM_BASE "--family=qwen3 --data=data/kjv-8k --vocab_size=8192 --n_layer=4 " \
    "--d_model=128 --n_head=4 --n_kv_head=2 --d_ff=384 --seq_len=128 --batch=16 --steps=1500 " \
    "--warmup=50 --lr=2e-3 --dropout=0 --eval_every=500 --eval_batches=20 --log_every=0 " \
    "--ckpt_every=500"

// The routing-precision probe's MQAR model at small and medium.
#define SMALL_MQAR "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=64 --k=8 " \
    "--vocab_size=128 --mqar_pairs=8 --batch=64 --steps=1500 --warmup=100 --lr=1e-3 --dropout=0 " \
    "--eval_every=500 --eval_batches=4 --mqar_eval_examples=256 --log_every=0 --ckpt_every=500"

const Scale SCALES[] = {
    // MQAR, 4 pairs: dense attention solves it within the 400 steps (about 30 s a run).
    {"tiny", "--data=mqar --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 --seq_len=32 --k=4 "
             "--d_g=16 --vocab_size=64 --mqar_pairs=4 --batch=128 --steps=400 --warmup=50 "
             "--lr=1e-3 --dropout=0 --eval_every=100 --eval_batches=4 --mqar_eval_examples=256 "
             "--log_every=0 --ckpt_every=100",
     4, 2, 150, TINY_ADD, NULL, NULL, TINY_LLM_KEYS, "--seq_len=32 --eval_batches=4",
     "--data=mqar --mqar_pairs=4 --mqar_eval_examples=256", TINY_LLM_BASE, 4, 150,
     "--mqar_pairs=2 --mqar_random_filler=1", "--mqar_pairs=4 --mqar_random_filler=0"},
    // KJV (make data-kjv), 8192-token BPE: about 3.5 min a training run on 2 cores, so the core
    // recipes (exp1,exp2,exp3,posthoc) with 3 seeds take about 75 min.
    {"small", SMALL_TEXT " --k=32", 32, 4, 300, SMALL_ADD, SMALL_TEXT,
     SMALL_MQAR, SMALL_LLM_KEYS, "--seq_len=128 --eval_batches=20", "--data=data/kjv-8k",
     SMALL_LLM_BASE, 16, 300,
     "--data=data/shakespeare-8k", "--data=data/kjv-8k"},
    // KJV in a 2048-token BPE, Llama family (rotary positions): the cheapest text model found
    // whose dense attention is concentrated as the paper's premise needs (README, Scales).
    {"medium", MEDIUM_TEXT " --k=8", 8, 4, 300, SMALL_ADD, MEDIUM_TEXT,
     SMALL_MQAR, SMALL_LLM_KEYS, "--seq_len=128 --eval_batches=20", "--data=data/kjv-8k",
     SMALL_LLM_BASE, 16, 300,
     "--data=data/shakespeare-2k", "--data=data/kjv-2k"},
    // routelab's defaults; the llm recipes follow the paper's protocol on a model of --model
    {"paper", "--k=64 --log_every=0 --ckpt_every=500", 64, 6, 2000, SMALL_ADD, "--k=64 --log_every=0 --ckpt_every=500", NULL,
     PAPER_LLM_KEYS, "--seq_len=512 --eval_batches=20", NULL, NULL, 64, 1000, NULL, NULL},
};
const size_t N_SCALES = sizeof SCALES / sizeof SCALES[0];

// Trailing Arm fields (needs_layers, task) default to 0 where a row leaves them out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Routed FFNs carry the Switch balancing loss (0.01), as learned routers are trained in practice;
// it reaches a frozen random router's input only, and a hash router not at all.
#define MOE "--ffn=moe --aux_loss=0.01"
#define DENSE {"dense", RUN_TRAIN, NULL, "--attn=dense", 37.32, NAN}
// The llm recipes' pretrained model: trained here (seed 0) and exported as a plain Hugging Face
// directory unless --model gives one; every llm arm starts from llm_model.
#define LLM_BASE {"llm_base", RUN_TRAIN, NULL, "", NAN, NAN, 0, TASK_LLM_BASE, 1}
#define LLM_MODEL {"llm_model", RUN_EXPORT, "llm_base", "", NAN, NAN, 0, TASK_LLM_BASE, 1}
#define LLM_DENSE {"llm_dense", RUN_EVAL, "llm_model", "--attn=dense --k={k}", NAN, NAN, 0, TASK_LLM, 1}
#define LLM_DISTILL "--lr=1e-3 "  // the paper's distillation lr
#define BLOCKS "--block_size={k/2} --k_blocks=2 --block_window={k/2}"  // nsa-random's blocks
const Recipe RECIPES[] = {
    {"exp1", "soft gate: learned vs frozen random vs dense",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random", 49.83, NAN}}},
    {"exp2", "hard top-k gate: learned vs random (the gate gets no gradient)",
     {{"hard_learned", RUN_TRAIN, NULL, "--attn=hard --gate=learned", 71.22, NAN},
      {"hard_random", RUN_TRAIN, NULL, "--attn=hard --gate=random", 71.24, NAN}}},
    {"exp3", "distillation contrast: gates distilled on the dense and on the soft-gated model, "
             "deployed with hard top-k",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"distill_dense", RUN_DISTILL, "dense", "--loss=bce --k={k}", 48.6, 0.842},
      {"distill_soft", RUN_DISTILL, "soft_learned", "--loss=bce --k={k}", 601.6, 0.804}}},
    {"exp4", "stochastic-mask training, deployed dense and under fixed random masks",
     {{"stochastic", RUN_TRAIN, NULL, "--attn=stochastic", NAN, NAN},
      {"stoch_deploy_dense", RUN_EVAL, "stochastic", "--attn=dense", 78.19, NAN},
      {"stoch_deploy_fixed", RUN_EVAL, "stochastic", "--attn=random_fixed --mask_seed={seed}", 104.43, NAN}}},
    {"posthoc", "gates trained post hoc on the frozen dense model: learned vs random, KL "
                "distillation at three k, against the oracle",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"random_hard_k", RUN_EVAL, "dense", "--attn=hard --k={k}", NAN, NAN},
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"kl_2k", RUN_DISTILL, "dense", "--loss=kl --k={2k}", 40.24, NAN},
      {"kl_4k", RUN_DISTILL, "dense", "--loss=kl --k={4k}", 37.57, NAN},
      {"oracle_k", RUN_EVAL, "dense", "--attn=oracle --k={k}", 46.00, NAN}}},
    {"capacity", "gate capacity: BCE distillation with d_g 32/64/128 and KL with d_g 32, at "
                 "three k",
     {DENSE,
      {"bce_g32_k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={k}", NAN, NAN},
      {"bce_g32_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={2k}", NAN, NAN},
      {"bce_g32_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=32 --k={4k}", NAN, NAN},
      {"bce_g64_k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={k}", NAN, NAN},
      {"bce_g64_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={2k}", NAN, NAN},
      {"bce_g64_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=64 --k={4k}", NAN, NAN},
      {"bce_g128_k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={k}", NAN, NAN},
      {"bce_g128_2k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={2k}", NAN, NAN},
      {"bce_g128_4k", RUN_DISTILL, "dense", "--loss=bce --d_g=128 --k={4k}", NAN, NAN},
      {"kl_g32_k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={k}", NAN, NAN},
      {"kl_g32_2k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={2k}", NAN, NAN},
      {"kl_g32_4k", RUN_DISTILL, "dense", "--loss=kl --d_g=32 --k={4k}", NAN, NAN}}},
    {"gradient", "the absorption gradient: soft gates learned vs random from the dense model "
                 "with 0, 2, 4 ... L layers unfrozen",
     {DENSE,
      {"posthoc_learned", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates", 37.29, NAN},
      {"posthoc_random", RUN_EVAL, "dense", "--attn=soft", 46.86, NAN},
      {"learned_top2", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:2", NAN, NAN, 2},
      {"random_top2", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:2", NAN, NAN, 2},
      {"learned_top4", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=gates+top:4", NAN, NAN, 4},
      {"random_top4", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=top:4", NAN, NAN, 4},
      {"learned_topL", RUN_TRAIN, "dense", "--attn=soft --gate=learned --train=all", NAN, NAN},
      {"random_topL", RUN_TRAIN, "dense", "--attn=soft --gate=random --train=all", NAN, NAN}}},
    {"concentration", "how concentrated dense attention is, per layer", {DENSE}},
    {"moe-random", "MoE routers: learned vs frozen random vs hash, against a dense FFN, on addition "
                   "with carry and on text",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_control", RUN_TRAIN, NULL, "--ffn=moe --moe_dense_control=1", NAN, NAN, 0, TASK_ADDITION},
      {"text_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_TEXT},
      {"text_moe_hash", RUN_TRAIN, NULL, MOE " --router=hash", NAN, NAN, 0, TASK_TEXT}}},
    {"ffn-sparsity", "one-layer transformers with dense, GLU and MoE FFNs on addition with carry, "
                     "and how much each sublayer matters (mean ablation)",
     {{"add_dense", RUN_TRAIN, NULL, "--ffn=dense", NAN, NAN, 0, TASK_ADDITION},
      {"add_swiglu", RUN_TRAIN, NULL, "--ffn=swiglu", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_learned", RUN_TRAIN, NULL, MOE " --router=learned", NAN, NAN, 0, TASK_ADDITION},
      {"add_moe_random", RUN_TRAIN, NULL, MOE " --router=random", NAN, NAN, 0, TASK_ADDITION},
      {"add_dense_no_attn", RUN_EVAL, "add_dense", "--ablate=attn:0", NAN, NAN},
      {"add_dense_no_ffn", RUN_EVAL, "add_dense", "--ablate=ffn:0", NAN, NAN},
      {"add_swiglu_no_attn", RUN_EVAL, "add_swiglu", "--ablate=attn:0", NAN, NAN},
      {"add_swiglu_no_ffn", RUN_EVAL, "add_swiglu", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_learned_no_attn", RUN_EVAL, "add_moe_learned", "--ablate=attn:0", NAN, NAN},
      {"add_moe_learned_no_ffn", RUN_EVAL, "add_moe_learned", "--ablate=ffn:0", NAN, NAN},
      {"add_moe_random_no_attn", RUN_EVAL, "add_moe_random", "--ablate=attn:0", NAN, NAN},
      {"add_moe_random_no_ffn", RUN_EVAL, "add_moe_random", "--ablate=ffn:0", NAN, NAN}}},
    {"routing-precision", "content-based routing on MQAR: top-1 dot-product precision after 0, 1, 2 "
                          "attention blocks, after a random projection, and a Bloom-filter index",
     {{"mqar_dense", RUN_TRAIN, NULL, "--attn=dense", NAN, NAN, 0, TASK_MQAR},
      {"mqar_probe", RUN_PROBE, "mqar_dense", "", NAN, NAN}}},
    // The paper's open questions (its Limitations and Discussion).
    {"stochastic-variants", "stochastic masks annealed towards the gate's top-k, and dense and "
                            "sparse forward passes mixed, each deployed dense and sparse",
     {{"stochastic", RUN_TRAIN, NULL, "--attn=stochastic", NAN, NAN},
      {"stoch_deploy_dense", RUN_EVAL, "stochastic", "--attn=dense", 78.19, NAN},
      {"stoch_deploy_fixed", RUN_EVAL, "stochastic", "--attn=random_fixed --mask_seed={seed}", 104.43, NAN},
      {"anneal", RUN_TRAIN, NULL, "--attn=stochastic --stochastic_anneal=1 --gate_grad=ste", NAN, NAN},
      {"anneal_deploy_dense", RUN_EVAL, "anneal", "--attn=dense", NAN, NAN},
      {"anneal_deploy_gate", RUN_EVAL, "anneal", "--attn=hard", NAN, NAN},
      {"anneal_deploy_fixed", RUN_EVAL, "anneal", "--attn=random_fixed --mask_seed={seed}", NAN, NAN},
      {"mix_half", RUN_TRAIN, NULL, "--attn=stochastic --dense_fraction=0.5", NAN, NAN},
      {"mix_deploy_dense", RUN_EVAL, "mix_half", "--attn=dense", NAN, NAN},
      {"mix_deploy_fixed", RUN_EVAL, "mix_half", "--attn=random_fixed --mask_seed={seed}", NAN, NAN},
      DENSE}, "open"},
    {"long-training", "learned vs frozen random soft gate trained 4x the scale's steps (the paper: "
                      "\"with substantially longer training, the gate could eventually overcome absorption\")",
     {{"long_dense", RUN_TRAIN, NULL, "--attn=dense --steps={4steps}", NAN, NAN},
      {"long_soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned --steps={4steps}", NAN, NAN},
      {"long_soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random --steps={4steps}", NAN, NAN},
      DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random", 49.83, NAN}}, "open"},
    {"decoupled-data", "post-hoc KL distillation on another text than the model was trained on, "
                       "deployed on its own (the paper: \"training the gate on a separate dataset ... "
                       "is untested\")",
     {DENSE,
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"decoupled_kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k} {other_data}", NAN, NAN},
      {"decoupled_deploy_k", RUN_EVAL, "decoupled_kl_k", "--attn=hard --k={k} {own_data}", NAN, NAN},
      {"random_hard_k", RUN_EVAL, "dense", "--attn=hard --k={k}", NAN, NAN},
      {"oracle_k", RUN_EVAL, "dense", "--attn=oracle --k={k}", 46.00, NAN}}, "open"},
    // Train Soft, Roll Out Hard: train on the routes deployment uses. attn=hard is closed loop
    // already (each layer's top-k of its gate on the masked forward's own hidden states), and
    // gate_grad=ste carries the gradient to the gate straight through; ste_dense is the bounded
    // variant (normalised over every visible key), the candidate cure of the reference STE's
    // blow-up (a dropped key that outscores the kept ones gets exp(S - log Z_kept) >> 1).
    {"closed-loop", "hard top-k training with a straight-through gate (the reference's and a "
                    "bounded one), from scratch and from the dense model, against soft training "
                    "deployed hard and the distillation contrast",
     {DENSE,
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_deploy_hard", RUN_EVAL, "soft_learned", "--attn=hard", NAN, NAN},
      {"distill_soft", RUN_DISTILL, "soft_learned", "--loss=bce --k={k}", 601.6, 0.804},
      {"closed_loop", RUN_TRAIN, NULL, "--attn=hard --gate_grad=ste", NAN, NAN},
      {"closed_loop_from_dense", RUN_TRAIN, "dense", "--attn=hard --gate_grad=ste", NAN, NAN},
      {"closed_loop_bounded", RUN_TRAIN, NULL, "--attn=hard --gate_grad=ste_dense", NAN, NAN},
      {"closed_loop_bounded_from_dense", RUN_TRAIN, "dense", "--attn=hard --gate_grad=ste_dense", NAN, NAN},
      {"hard_random", RUN_TRAIN, NULL, "--attn=hard --gate=random", 71.24, NAN}}, "open"},
    // NSA's test the paper asks for: "replace the learned selection with random selection while
    // keeping windows". Blocks of k/2 keys, 2 kept (k keys), plus a window of k/2 recent keys.
    {"nsa-random", "block selection (NSA/MoBA): learned vs frozen random vs oracle blocks with a "
                   "sliding window, trained end to end and post hoc on the dense model",
     {DENSE,
      {"block_learned", RUN_TRAIN, NULL, "--attn=block --gate=learned --gate_grad=ste " BLOCKS, NAN, NAN},
      {"block_random", RUN_TRAIN, NULL, "--attn=block --gate=random " BLOCKS, NAN, NAN},
      {"block_oracle", RUN_TRAIN, NULL, "--attn=block_oracle " BLOCKS, NAN, NAN},
      {"window_only", RUN_TRAIN, NULL, "--attn=window --k={k/2}", NAN, NAN},
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"posthoc_block", RUN_EVAL, "kl_k", "--attn=block " BLOCKS, NAN, NAN},
      {"dense_block_random", RUN_EVAL, "dense", "--attn=block " BLOCKS, NAN, NAN},
      {"dense_block_oracle", RUN_EVAL, "dense", "--attn=block_oracle " BLOCKS, NAN, NAN}}, "open"},
    // MoSA's structural question: do expert-choice heads, each picking the tokens it attends
    // among, escape absorption? k/T = {2k}/T tokens per head (1/4 at medium); the causal variant
    // picks over the prefix only, and the non-causal model is also deployed causally, which
    // measures what its selection gains from seeing later tokens.
    {"mosa-random", "expert-choice heads (MoSA): learned vs frozen random token routers, over "
                    "the whole sequence and causal (over the prefix), against dense",
     {DENSE,
      {"ec_learned", RUN_TRAIN, NULL, "--attn=expert_choice --gate=learned --k={2k}", NAN, NAN},
      {"ec_random", RUN_TRAIN, NULL, "--attn=expert_choice --gate=random --k={2k}", NAN, NAN},
      {"ec_learned_deploy_causal", RUN_EVAL, "ec_learned", "--attn=expert_choice_causal --k={2k}", NAN, NAN},
      {"ec_causal_learned", RUN_TRAIN, NULL, "--attn=expert_choice_causal --gate=learned --k={2k}", NAN, NAN},
      {"ec_causal_random", RUN_TRAIN, NULL, "--attn=expert_choice_causal --gate=random --k={2k}", NAN, NAN}}, "open"},
    // Nothing to Route On: how many bits a gate carries about which keys matter, the keys labelled
    // by a dense model trained apart (its own weights and data order: --seed={seed}). The dense
    // arm's gate is never trained: it is the frozen random gate (gate_seed) on the dense model.
    {"gate-information", "mutual information between each layer's gate decisions and which keys "
                         "matter to an independently trained dense model: learned vs frozen random "
                         "gates, end to end and post hoc",
     {DENSE,
      {"dense_ref", RUN_TRAIN, NULL, "--attn=dense --seed={seed} --data_seed={seed}", NAN, NAN},
      {"soft_learned", RUN_TRAIN, NULL, "--attn=soft --gate=learned", 48.73, NAN},
      {"soft_random", RUN_TRAIN, NULL, "--attn=soft --gate=random", 49.83, NAN},
      {"kl_k", RUN_DISTILL, "dense", "--loss=kl --k={k}", 48.83, NAN},
      {"info_soft_learned", RUN_GATEINFO, "soft_learned", "", NAN, NAN, .ref = "dense_ref"},
      {"info_soft_random", RUN_GATEINFO, "soft_random", "", NAN, NAN, .ref = "dense_ref"},
      {"info_posthoc_kl", RUN_GATEINFO, "kl_k", "", NAN, NAN, .ref = "dense_ref"},
      {"info_posthoc_random", RUN_GATEINFO, "dense", "", NAN, NAN, .ref = "dense_ref"}}, "open"},
    // The paper's Section 5 on a pretrained model (--model=HFDIR, or the one llm_base trains).
    {"llm-concentration", "pretrained model: dense vs oracle top-k at k, 2k, 4k, and how "
                          "concentrated its attention is per layer (Table 9, Figure 4)",
     {LLM_BASE, LLM_MODEL, LLM_DENSE,
      {"llm_oracle_k", RUN_EVAL, "llm_model", "--attn=oracle --k={k}", NAN, NAN, 0, TASK_LLM, 1},
      {"llm_oracle_2k", RUN_EVAL, "llm_model", "--attn=oracle --k={2k}", NAN, NAN, 0, TASK_LLM, 1},
      {"llm_oracle_4k", RUN_EVAL, "llm_model", "--attn=oracle --k={4k}", NAN, NAN, 0, TASK_LLM, 1}}, "llm"},
    {"llm-capacity", "pretrained model: gates distilled post hoc, KL with d_g 32 and BCE with d_g "
                     "32/64/128, deployed hard top-k at k, 2k, 4k (Table 6)",
     {LLM_BASE, LLM_MODEL, LLM_DENSE,
      {"llm_kl_g32_k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=kl --d_g=32 --k={k}", 12.24, NAN, 0, TASK_LLM},
      {"llm_kl_g32_2k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=kl --d_g=32 --k={2k}", 11.72, NAN, 0, TASK_LLM},
      {"llm_kl_g32_4k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=kl --d_g=32 --k={4k}", 11.56, NAN, 0, TASK_LLM},
      {"llm_bce_g32_k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=32 --k={k}", 102.82, NAN, 0, TASK_LLM},
      {"llm_bce_g32_2k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=32 --k={2k}", 25.76, NAN, 0, TASK_LLM},
      {"llm_bce_g32_4k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=32 --k={4k}", 20.78, NAN, 0, TASK_LLM},
      {"llm_bce_g64_k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=64 --k={k}", NAN, NAN, 0, TASK_LLM},
      {"llm_bce_g64_2k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=64 --k={2k}", NAN, NAN, 0, TASK_LLM},
      {"llm_bce_g64_4k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=64 --k={4k}", NAN, NAN, 0, TASK_LLM},
      {"llm_bce_g128_k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=128 --k={k}", NAN, NAN, 0, TASK_LLM},
      {"llm_bce_g128_2k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=128 --k={2k}", NAN, NAN, 0, TASK_LLM},
      {"llm_bce_g128_4k", RUN_DISTILL, "llm_model", LLM_DISTILL "--loss=bce --d_g=128 --k={4k}", NAN, NAN, 0, TASK_LLM}}, "llm"},
    {"llm-single-layer", "pretrained model: only block L/2's q/k/v/o train, with soft gates on that "
                         "block learned vs frozen random, and without a gate (Table 7, Figure 2b)",
     {LLM_BASE, LLM_MODEL,
      {"llm_sl_learned", RUN_TRAIN, "llm_model", "--attn={mid:soft:dense} --gate=learned "
                                                 "--train=gates+attn:{L/2}", NAN, NAN, 0, TASK_LLM},
      {"llm_sl_random", RUN_TRAIN, "llm_model", "--attn={mid:soft:dense} --gate=random "
                                                "--train=attn:{L/2}", NAN, NAN, 0, TASK_LLM},
      {"llm_sl_nogate", RUN_TRAIN, "llm_model", "--attn=dense --train=attn:{L/2}", NAN, NAN, 0, TASK_LLM}}, "llm"},
    {"llm-gradient", "pretrained model: soft gates on every layer, learned vs frozen random, with "
                     "0, 2, 4, 8 top blocks unfrozen (Table 8, Figure 3)",
     {LLM_BASE, LLM_MODEL, LLM_DENSE,
      {"llm_learned_top0", RUN_TRAIN, "llm_model", "--attn=soft --gate=learned --train=gates", NAN, NAN, 0, TASK_LLM},
      {"llm_random_top0", RUN_EVAL, "llm_model", "--attn=soft", NAN, NAN, 0, TASK_LLM, 1},
      {"llm_learned_top2", RUN_TRAIN, "llm_model", "--attn=soft --gate=learned --train=gates+top:2", NAN, NAN, 1, TASK_LLM},
      {"llm_random_top2", RUN_TRAIN, "llm_model", "--attn=soft --gate=random --train=top:2", NAN, NAN, 1, TASK_LLM},
      {"llm_learned_top4", RUN_TRAIN, "llm_model", "--attn=soft --gate=learned --train=gates+top:4", NAN, NAN, 3, TASK_LLM},
      {"llm_random_top4", RUN_TRAIN, "llm_model", "--attn=soft --gate=random --train=top:4", NAN, NAN, 3, TASK_LLM},
      {"llm_learned_top8", RUN_TRAIN, "llm_model", "--attn=soft --gate=learned --train=gates+top:8", NAN, NAN, 7, TASK_LLM},
      {"llm_random_top8", RUN_TRAIN, "llm_model", "--attn=soft --gate=random --train=top:8", NAN, NAN, 7, TASK_LLM}}, "llm"},
};
#pragma GCC diagnostic pop
const size_t N_RECIPES = sizeof RECIPES / sizeof RECIPES[0];

const Scale *scale_find(const char *name) {
    for (size_t i = 0; i < N_SCALES; i++)
        if (!strcmp(SCALES[i].name, name)) return &SCALES[i];
    return NULL;
}

const char *task_keys(const Scale *sc, Task t) {
    return t == TASK_ADDITION ? sc->add_keys : t == TASK_TEXT ? sc->text_keys
         : t == TASK_MQAR ? (sc->mqar_keys ? sc->mqar_keys : sc->keys)
         : t == TASK_LLM ? sc->llm_keys : t == TASK_LLM_BASE ? sc->llm_base : sc->keys;
}

// The scale's training steps (its --steps=N key; routelab's default 1000 without one).
static int scale_steps(const Scale *sc) {
    const char *s = strstr(sc->keys, "--steps=");
    return s ? atoi(s + 8) : 1000;
}

void expand_keys(char *out, size_t cap, const char *keys, const Scale *sc, int seed) {
    struct { const char *tok; int val; } subs[] = {{"{k}", sc->k}, {"{2k}", 2 * sc->k},
        {"{4k}", 4 * sc->k}, {"{k/2}", sc->k / 2 > 0 ? sc->k / 2 : 1}, {"{L}", sc->n_layer},
        {"{L/2}", sc->n_layer / 2}, {"{seed}", 100 + seed},
        {"{4steps}", 4 * scale_steps(sc)}};
    struct { const char *tok, *val; } words[] = {{"{other_data}", sc->other_data}, {"{own_data}", sc->own_data}};
    size_t o = 0;
    for (const char *p = keys; *p && o + 16 < cap;) {  // 16: room for one number
        int done = 0;
        for (size_t t = 0; t < sizeof words / sizeof words[0] && !done; t++) {
            size_t n = strlen(words[t].tok);
            if (strncmp(p, words[t].tok, n) != 0) continue;
            o += (size_t)snprintf(out + o, cap - o, "%s", words[t].val ? words[t].val : "");
            if (o >= cap) o = cap - 1;
            p += n;
            done = 1;
        }
        if (done) continue;
        if (!strncmp(p, "{mid:", 5)) {  // {mid:X:Y}: X at layer L/2, Y at every other layer
            const char *x = p + 5, *colon = strchr(x, ':'), *end = colon ? strchr(colon, '}') : NULL;
            if (!end) break;  // malformed: the recipe table is wrong (tests expand every arm)
            for (int l = 0; l < sc->n_layer && o + 64 < cap; l++) {
                const char *v = l == sc->n_layer / 2 ? x : colon + 1;
                int n = (int)(l == sc->n_layer / 2 ? colon - x : end - colon - 1);
                o += (size_t)snprintf(out + o, cap - o, "%s%.*s", l ? "," : "", n, v);
            }
            p = end + 1;
            continue;
        }
        for (size_t t = 0; t < sizeof subs / sizeof subs[0] && !done; t++) {
            size_t n = strlen(subs[t].tok);
            if (!strncmp(p, subs[t].tok, n)) {
                o += (size_t)snprintf(out + o, cap - o, "%d", subs[t].val);
                p += n;
                done = 1;
            }
        }
        if (!done) out[o++] = *p++;
    }
    out[o] = 0;
}

const Arm *find_arm(const char *name) {
    for (size_t r = 0; r < N_RECIPES; r++)
        for (const Arm *a = RECIPES[r].arms; a->name; a++)
            if (!strcmp(a->name, name)) return a;
    return NULL;
}

int arm_index(const Recipe *r, const char *name) {
    for (int i = 0; r->arms[i].name; i++) if (!strcmp(r->arms[i].name, name)) return i;
    return -1;
}

int arm_active(const Arm *a, const Scale *scale) {
    if (a->from) {  // an arm built on a skipped one is skipped too
        const Arm *f = find_arm(a->from);
        // (not on the exported model: --model stands in for it when that arm is skipped)
        if (f && f->kind != RUN_EXPORT && !arm_active(f, scale)) return 0;
    }
    if (a->task == TASK_LLM_BASE) return task_keys(scale, a->task) != NULL;  // no --model
    if (strstr(a->keys, "{other_data}") && !scale->other_data) return 0;  // no other text
    return scale->n_layer > a->needs_layers && (a->kind != RUN_TRAIN || task_keys(scale, a->task));
}

int arm_is_llm(const Arm *a) { return a->task == TASK_LLM || a->task == TASK_LLM_BASE; }

int arm_seeds(const Arm *a, int seeds) { return a->single ? 1 : seeds; }

int unfrozen_layers(const Arm *a, const Scale *scale) {
    if (!strncmp(a->name, "posthoc_", 8)) return 0;
    const char *t = strstr(a->name, "_top");
    if (!t) return -1;
    return t[4] == 'L' ? scale->n_layer : atoi(t + 4);
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

// The fields that decide what a run computes; the paper's values are only printed beside it.
static const char *arm_difference(const Arm *a, const Arm *b) {
    if (a->kind != b->kind) return "kind";
    if (!same_str(a->from, b->from)) return "from";
    if (!same_str(a->keys, b->keys)) return "keys";
    if (!same_str(a->ref, b->ref)) return "ref";
    if (a->task != b->task) return "task";
    if (a->needs_layers != b->needs_layers) return "needs_layers";
    return NULL;
}

const char *recipes_check(const Recipe *r, size_t n, char *msg, size_t cap) {
    for (size_t i = 0; i < n; i++)
        for (const Arm *a = r[i].arms; a->name; a++)
            for (size_t j = 0; j <= i; j++)  // every earlier arm of the same name
                for (const Arm *b = r[j].arms; b->name && (j < i || b < a); b++) {
                    if (strcmp(a->name, b->name) != 0) continue;
                    const char *field = arm_difference(a, b);
                    if (!field) continue;
                    snprintf(msg, cap, "repro: arm '%s' differs (%s) between recipes '%s' and '%s': "
                             "runs of one name are shared, so give one of them another name",
                             a->name, field, r[j].name, r[i].name);
                    return msg;
                }
    return NULL;
}
