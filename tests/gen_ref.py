#!/usr/bin/python3
"""gen_ref.py: write a routelab reference case set (format_version 1) with the PyTorch twin.

Produces the 16 cases of ../shared/ref/{paper_small,gpt2style_small} (README.md there,
section 10), single_layer, six block-selection cases (attn=block/block_oracle, NSA-style) and
five expert-choice cases (attn=expert_choice/expert_choice_causal, MoSA-style; tests/routing_twin.py
adds these modes to the twin without editing it), for a model of any shape,
so that `routelab refcheck DIR` can be run on unseen shapes.  The twin (pytorch/model.py) is imported, never copied: its semantics are the spec.

Usage (Debian's PyTorch, run from anywhere):

    /usr/bin/python3 tests/gen_ref.py --out /tmp/unseen/paper_l3 --style paper \\
        --n_layer 3 --d_model 48 --n_head 3 --d_ff 96 --seq_len 24 --vocab_size 53 \\
        --batch 3 --k 5 --d_g 8 --seed 7
    ./routelab refcheck /tmp/unseen/paper_l3 --verbose

    # HF families (see "HF families" below)
    /usr/bin/python3 tests/gen_ref.py --family llama --out /tmp/hfref/llama --n_layer 2 \
        --d_model 48 --n_head 4 --n_kv_head 2 --d_ff 64 --seq_len 16 --vocab_size 97 --k 4 \
        --d_g 8 --rope_theta 500000 --rope_scaling llama3 --rope_original_max_pos 32 \
        --attn_bias 1 --mlp_bias 1 --hf_shards 2
    /usr/bin/python3 tests/gen_ref.py --family qwen3 --out /tmp/hfref/qwen3 --d_model 48 \
        --n_head 4 --n_kv_head 2 --head_dim 16 --d_ff 64 --seq_len 16 --vocab_size 97 --k 4 \
        --d_g 8 --tie_embeddings 1 --hf_dtype BF16

Options (defaults reproduce the shapes and draws of ../shared/ref/paper_small):
    --style paper|gpt2style   paper: no attention biases, tied head, erf GELU;
                              gpt2style: attention biases, untied lm_head, tanh GELU
    --n_layer --d_model --n_head --d_ff --seq_len --vocab_size --batch --k --d_g
    --tau (1.0)               gate temperature
    --seed (0)                parameter init (GPT.reset_parameters, float32)
    --data_seed (seed+1)      token ids: torch.randint(0, V, (B, T+1)) from a generator seeded
                              with data_seed; inputs = [:, :-1], targets = [:, 1:].  The masked
                              targets use a generator seeded data_seed+1: -1 where
                              rand(B, T) < --mask_threshold (0.3), plus position 0 of row 0 and
                              the last position of the last row (with 0.3 this reproduces the
                              shared sets' targets_masked.i32 exactly: 15 of 64 there).
    --stochastic_seed (1000), --fixed_mask_seed (2000)   the twin's mask generators
    --twin DIR                directory holding model.py (default: ../shared/ref/pytorch
                              relative to the repository root, i.e. the parent of tests/)
    --out DIR                 output directory (created; existing files are overwritten)
    --name NAME               set name in index.json (default: basename of --out)
    --min_margin (1e-6)       if a hard/oracle top-k boundary (or a top-k used by the
                              diagnostics / distill_bce targets) has a relative gap below this,
                              the data are re-drawn with data_seed+1 (up to --max_redraws, 20)
    --no_fp32                 skip the float32 forward-0 comparison (fp32_loss, fp32_vs_fp64)

What is computed (README sections 4-10): the model is built in float32 with --seed, its
float32 weights are dumped to weights/, then every case runs on a copy cast to float64:
forward 0 with record=True (logits, loss, diagnostics via layer_diagnostics, gradients via
backward, gate_grad_norms), then 3 torch.optim.AdamW steps (model.make_adamw: lr 1e-3,
betas 0.9/0.95, eps 1e-8, wd 0.1 on ndim >= 2) on the same batch, i.e. forwards 0, 1, 2
give adamw.losses and forward 3 loss_after.  All values are stored as float32 (raw
little-endian, C order); identical arrays are stored once (a `file` may point at another
case's file or at weights/).  adamw.params lists every parameter (params_not_dumped is []);
parameters not updated point at weights/.  Stochastic and random_fixed masks are those the
twin actually used (mask_log) in the 4 forwards.  topk_boundary_margin_rel is the smallest
gap between the k-th and (k+1)-th ranked scores (G for hard, S for oracle) over all
hard/oracle rows of the 4 forwards, relative to the largest |score| of that (layer, forward)
score tensor over the ranked entries (null if the case ranks nothing).
fp32_vs_fp64 only compares the loss of forward 0 of a float32 twin (or is null).

HF families (--family llama|qwen2|qwen3|gpt2): the 17 cases for a model of a Hugging
Face family, computed by tests/hf_twin.py (llama, qwen2, qwen3) or by the shared twin itself
(gpt2 = routelab family gpt with attention biases, tied head, tanh GELU, ln_eps =
layer_norm_epsilon, seq_len = n_positions).  The initial weights are hf_twin.init_weights
(matrices N(0, init_std), q/k rows N(0, --qk_init_std), norms 1 + N(0, 0.1), biases
N(0, 0.02) where present, gates N(0, 0.02)); with --hf_dtype BF16/F16 every tensor but the
gates is rounded to that dtype first, so weights/*.f32 hold the stored values.  weights/,
grads/ and params_after/ use routelab's parameter names (hf_twin.param_table); the set also
holds hf/, the same initial weights (gates left out) as a real HF directory, and index.json
names it ("hf_dir": "hf", "hf_dtype", "hf_files").  config gets routelab's family keys:
family, n_kv_head, head_dim, rope_theta, rope_scaling (none|llama3), rope_factor,
rope_low_freq_factor, rope_high_freq_factor, rope_original_max_pos, attn_bias, mlp_bias,
ln_eps (= rms_norm_eps), tie_embeddings (gelu is kept: "tanh" for gpt2, "erf" -- unused --
for the SwiGLU families).  Options:
    --family llama|qwen2|qwen3|gpt2   --n_kv_head (n_head)  --head_dim (d_model / n_head)
    --rope_theta (10000)  --rope_scaling none|llama3  --rope_factor (8)
    --rope_low_freq_factor (1)  --rope_high_freq_factor (4)  --rope_original_max_pos (8192)
    --attn_bias 0|1 (llama/qwen3: q,k,v,o biases; qwen2 always q,k,v and no o)
    --mlp_bias 0|1 (llama only)  --tie_embeddings 0|1 (gpt2 always 1)
    --ln_eps (1e-6; gpt2 1e-5)  --qk_init_std (0.08)  --init_std (0.02)
    --hf_dtype F32|BF16|F16  --hf_shards N (1)  --rope_form rope_scaling|rope_parameters
    --gpt2_prefix (transformer.)  --gpt2_buffers (h.{i}.attn.bias causal-mask buffers)
For llama/qwen2/qwen3 every row of token ids holds T+1 distinct ids (randperm(V)[:T+1] per
row from the data_seed generator): without position embeddings a repeated token gives
identical layer-0 gate inputs and so exact ties in G.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

CASE_NAMES = ["dense", "oracle", "soft_learned", "soft_random", "soft_prob_learned",
              "hard_learned", "hard_ste", "stochastic", "random_fixed", "window",
              "topk_all_hard", "mixed", "gates_only", "distill_kl", "distill_bce",
              "masked_loss", "single_layer"]
# Routing modes beyond the shared twin's (tests/routing_twin.py): in the sets of the shared
# twin's model (styles, --family gpt2), after the 17 cases above.
BLOCK_CASE_NAMES = ["block_learned", "block_ste", "block_random", "block_oracle",
                    "block_window_ste", "block_mixed"]
EC_CASE_NAMES = ["ec_learned", "ec_random", "ec_causal", "ec_causal_random", "ec_mixed"]
STE_DENSE_CASE_NAMES = ["hard_ste_dense", "block_ste_dense"]

DESCRIPTIONS = {
    "dense": "causal softmax",
    "oracle": "top-k of the scores QK^T/sqrt(hd)",
    "soft_learned": "paper soft gate (logits * sigmoid(G)), learned gates",
    "soft_random": "soft gate, frozen random gates",
    "soft_prob_learned": "softmax * sigmoid(G), learned gates",
    "hard_learned": "top-k of G, gate gets no gradient",
    "hard_ste": "top-k of G, straight-through gate gradient",
    "stochastic": "fresh random top-k mask each forward (fed back from mask_files)",
    "random_fixed": "fixed random top-k mask (fed back from mask_files)",
    "window": "the k most recent visible keys",
    "topk_all_hard": "paper-code top-k over all T positions then causal mask; some rows keep no key",
    "mixed": "a different mode per layer",
    "gates_only": "soft mode, everything frozen but the gates",
    "distill_kl": "frozen dense model, KL distillation of the gates",
    "distill_bce": "frozen dense model, BCE distillation of the gates to the oracle top-k mask",
    "masked_loss": "targets with -1 (ignored) entries",
    "single_layer": ("only block L/2's attention (q/k/v/o, q/k norm, biases) and its learned soft "
                     "gate train, the other blocks dense and frozen (repro llm-single-layer): "
                     "routelab skips the backward below block L/2"),
    "block_learned": ("block selection (NSA/MoBA): top k_blocks blocks by the max of G over "
                      "each block's visible keys, learned gate without a gradient"),
    "block_ste": "block selection by G, straight-through gate gradient (as hard_ste)",
    "block_random": "block selection by a frozen random gate",
    "block_oracle": "block selection by the max of S over each block (oracle blocks)",
    "block_window_ste": "block selection by G plus the block_window most recent keys, ste",
    "block_mixed": "block, block_oracle and dense layers in one model, window on",
    "ec_learned": ("expert-choice heads (MoSA): each head picks the top-k tokens of the sequence "
                   "by its router r (gk's first column), they attend among themselves, the output "
                   "is scaled by sigmoid(r_i/tau); learned router"),
    "ec_random": "expert-choice heads, frozen random router",
    "ec_causal": ("causal expert choice: query i picks the top-k of r over 0..i and is active "
                  "iff it is among them; learned router"),
    "ec_causal_random": "causal expert choice, frozen random router",
    "ec_mixed": "expert_choice, expert_choice_causal and dense layers in one model",
    "hard_ste_dense": ("top-k of G, bounded straight-through gate gradient (gate_grad=ste_dense: "
                       "the STE normalised over every visible key)"),
    "block_ste_dense": "block selection by G plus a window, gate_grad=ste_dense",
}

MIXED_CYCLE = ["hard", "soft", "oracle", "window", "soft_prob"]

LR, BETA1, BETA2, EPS, WD, STEPS = 1e-3, 0.9, 0.95, 1e-8, 0.1, 3


# What index.json says of the AdamW steps and the tolerances (every set, every style).
ADAMW_SPEC = dict(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, weight_decay=WD, steps=STEPS,
                  betas=[BETA1, BETA2], grad_clip=None, same_batch_every_step=True,
                  decay="weight_decay on parameters with ndim >= 2 only",
                  update_rule=("a parameter is updated iff it is in the case's 'updated' list "
                               "(trainable and grad_is_none false); others are untouched (no "
                               "decay, no moments)"),
                  formula=("t=step (1-based); p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + "
                           "(1-b2)*g*g; p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)"))
TOLERANCE_SPEC = dict(
    rtol=1e-4, atol=1e-5,
    scalars="loss, adamw.losses, adamw.loss_after, diagnostics: |c-r| <= atol + rtol*|r|",
    logits="every element |c-r| <= atol + rtol*|r|",
    grads="every element |c-r| <= rtol*|r| + atol*max|r| (max over that tensor)",
    params_after=("per tensor: exclude elements whose dumped grad |g| < 0.001 * max|g|; "
                  "every other element |c-r| <= 0.0001*|r| + 0.0001"),
    see="README.md, section Tolerances")


def parse_args(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", choices=["paper", "gpt2style"], default="paper")
    p.add_argument("--n_layer", type=int, default=2)
    p.add_argument("--d_model", type=int, default=64)
    p.add_argument("--n_head", type=int, default=2)
    p.add_argument("--d_ff", type=int, default=256)
    p.add_argument("--seq_len", type=int, default=32)
    p.add_argument("--vocab_size", type=int, default=97)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--d_g", type=int, default=32)
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_seed", type=int, default=None)
    p.add_argument("--stochastic_seed", type=int, default=1000)
    p.add_argument("--fixed_mask_seed", type=int, default=2000)
    p.add_argument("--twin", default=os.path.join(repo, "..", "shared", "ref", "pytorch"))
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--mask_threshold", type=float, default=0.3)
    p.add_argument("--min_margin", type=float, default=1e-6)
    p.add_argument("--max_redraws", type=int, default=20)
    p.add_argument("--no_fp32", action="store_true")
    p.add_argument("--block_size", type=int, default=4)
    p.add_argument("--k_blocks", type=int, default=2)
    p.add_argument("--block_window", type=int, default=3)
    hf = p.add_argument_group("HF families (tests/hf_twin.py)")
    hf.add_argument("--family", choices=["llama", "qwen2", "qwen3", "gpt2"], default=None)
    hf.add_argument("--n_kv_head", type=int, default=None)
    hf.add_argument("--head_dim", type=int, default=None)
    hf.add_argument("--rope_theta", type=float, default=10000.0)
    hf.add_argument("--rope_scaling", choices=["none", "llama3"], default="none")
    hf.add_argument("--rope_factor", type=float, default=8.0)
    hf.add_argument("--rope_low_freq_factor", type=float, default=1.0)
    hf.add_argument("--rope_high_freq_factor", type=float, default=4.0)
    hf.add_argument("--rope_original_max_pos", type=int, default=8192)
    hf.add_argument("--max_position_embeddings", type=int, default=2048)
    hf.add_argument("--attn_bias", type=int, choices=[0, 1], default=0)
    hf.add_argument("--mlp_bias", type=int, choices=[0, 1], default=0)
    hf.add_argument("--tie_embeddings", type=int, choices=[0, 1], default=0)
    hf.add_argument("--ln_eps", type=float, default=None)
    hf.add_argument("--init_std", type=float, default=0.02)
    hf.add_argument("--qk_init_std", type=float, default=0.08)
    hf.add_argument("--hf_dtype", choices=["F32", "BF16", "F16"], default="F32")
    hf.add_argument("--hf_shards", type=int, default=1)
    hf.add_argument("--rope_form", choices=["rope_scaling", "rope_parameters"],
                    default="rope_scaling")
    hf.add_argument("--gpt2_prefix", action="store_true")
    hf.add_argument("--gpt2_buffers", action="store_true")
    a = p.parse_args(argv)
    if a.data_seed is None:
        a.data_seed = a.seed + 1
    if a.d_model % a.n_head and (a.family in (None, "gpt2") or a.head_dim is None):
        p.error("d_model must be a multiple of n_head")
    if a.ln_eps is None:
        a.ln_eps = 1e-5 if a.family == "gpt2" else 1e-6
    if a.k < 1 or a.n_layer < 1 or a.batch < 1 or a.seq_len < 1:
        p.error("k, n_layer, batch and seq_len must be >= 1")
    return a


def import_twin(path):
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "model.py")):
        sys.exit("gen_ref: no model.py in --twin %s" % path)
    sys.path.insert(0, path)
    sys.dont_write_bytecode = True    # leave the twin's directory untouched
    import model as twin  # noqa: E402
    return twin


# ----------------------------------------------------------------------------- writer

class Writer:
    """Writes raw little-endian arrays; identical (dtype, bytes) arrays are stored once."""

    def __init__(self, root):
        self.root = root
        self.seen = {}

    def put(self, rel, arr, dtype):
        a = np.ascontiguousarray(np.asarray(arr), dtype=np.dtype(dtype).newbyteorder("<"))
        raw = a.tobytes()
        key = (dtype, hashlib.sha256(raw).hexdigest())
        if key in self.seen:
            rel = self.seen[key]
        else:
            full = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(raw)
            self.seen[key] = rel
        return {"file": rel, "shape": list(a.shape), "dtype": dtype}

    def f32(self, rel, t):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().double().numpy()
        return self.put(rel, np.asarray(t, dtype=np.float64).astype(np.float32), "float32")

    def i32(self, rel, t):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        return self.put(rel, np.asarray(t).astype(np.int32), "int32")


# ----------------------------------------------------------------------------- cases

def case_names(a):
    """The set's cases: the 17, and the block cases in sets of the shared twin's model."""
    extra = BLOCK_CASE_NAMES + EC_CASE_NAMES + STE_DENSE_CASE_NAMES
    return CASE_NAMES + (extra if a.family in (None, "gpt2") else [])


def case_specs(a):
    L = a.n_layer
    kh = max(2, a.k // 2)
    spec = {}

    def mk(modes, kinds="learned", gate_grad="none", k=a.k, scope="causal", loss="lm",
           trainable="all", targets="plain", keys=None):
        modes = [modes] * L if isinstance(modes, str) else list(modes)
        kinds = [kinds] * L if isinstance(kinds, str) else list(kinds)
        return dict(modes=modes, gate_kinds=kinds, gate_grad=gate_grad, k=k, topk_scope=scope,
                    loss_kind=loss, trainable=trainable, targets=targets, keys=keys)

    spec["dense"] = mk("dense")
    spec["oracle"] = mk("oracle")
    spec["soft_learned"] = mk("soft")
    spec["soft_random"] = mk("soft", "random")
    spec["soft_prob_learned"] = mk("soft_prob")
    spec["hard_learned"] = mk("hard")
    spec["hard_ste"] = mk("hard", gate_grad="ste")
    spec["stochastic"] = mk("stochastic")
    spec["random_fixed"] = mk("random_fixed")
    spec["window"] = mk("window")
    spec["topk_all_hard"] = mk("hard", k=kh, scope="all")
    spec["mixed"] = mk([MIXED_CYCLE[l % len(MIXED_CYCLE)] for l in range(L)],
                       ["random" if l == 0 else "learned" for l in range(L)])
    spec["gates_only"] = mk("soft", trainable="gates")
    spec["distill_kl"] = mk("dense", loss="distill_kl", trainable="gates")
    spec["distill_bce"] = mk("dense", loss="distill_bce", trainable="gates")
    spec["masked_loss"] = mk("dense", targets="masked")
    spec["single_layer"] = mk(["soft" if l == L // 2 else "dense" for l in range(L)],
                              trainable="attn:%d" % (L // 2))
    if a.family in (None, "gpt2"):
        bk = dict(block_size=a.block_size, k_blocks=a.k_blocks, block_window=0)
        bw = dict(bk, block_window=a.block_window)
        spec["block_learned"] = mk("block", keys=bk)
        spec["block_ste"] = mk("block", gate_grad="ste", keys=bk)
        spec["block_random"] = mk("block", "random", keys=bk)
        spec["block_oracle"] = mk("block_oracle", keys=bk)
        spec["block_window_ste"] = mk("block", gate_grad="ste", keys=bw)
        cycle = ["block", "block_oracle", "dense"]
        spec["block_mixed"] = mk([cycle[l % 3] for l in range(L)], gate_grad="ste", keys=bw)
        spec["ec_learned"] = mk("expert_choice")
        spec["ec_random"] = mk("expert_choice", "random")
        spec["ec_causal"] = mk("expert_choice_causal")
        spec["ec_causal_random"] = mk("expert_choice_causal", "random")
        cycle = ["expert_choice", "expert_choice_causal", "dense"]
        spec["ec_mixed"] = mk([cycle[l % 3] for l in range(L)], k=kh)
        spec["hard_ste_dense"] = mk("hard", gate_grad="ste_dense")
        spec["block_ste_dense"] = mk("block", gate_grad="ste_dense", keys=bw)
    assert list(spec) == case_names(a)
    return spec


def hf_cfg(a, sp=None):
    """hf_twin.HFConfig of the --family model (with the case's routing options)."""
    import hf_twin
    sp = sp or dict(k=a.k, topk_scope="causal", modes="dense", gate_kinds="learned",
                    gate_grad="none")
    return hf_twin.HFConfig(
        family=a.family, vocab_size=a.vocab_size, seq_len=a.seq_len, n_layer=a.n_layer,
        d_model=a.d_model, n_head=a.n_head, n_kv_head=a.n_kv_head, head_dim=a.head_dim,
        d_ff=a.d_ff, rope_theta=a.rope_theta, rope_scaling=a.rope_scaling,
        rope_factor=a.rope_factor, rope_low_freq_factor=a.rope_low_freq_factor,
        rope_high_freq_factor=a.rope_high_freq_factor,
        rope_original_max_pos=a.rope_original_max_pos,
        max_position_embeddings=a.max_position_embeddings, attn_bias=bool(a.attn_bias),
        mlp_bias=bool(a.mlp_bias), ln_eps=a.ln_eps, tie_embeddings=bool(a.tie_embeddings),
        d_g=a.d_g, k=sp["k"], tau=a.tau, topk_scope=sp["topk_scope"], modes=sp["modes"],
        gate_kinds=sp["gate_kinds"], gate_grad=sp["gate_grad"], dropout=0.0,
        init_std=a.init_std, qk_init_std=a.qk_init_std, seed=a.seed,
        stochastic_seed=a.stochastic_seed, fixed_mask_seed=a.fixed_mask_seed)


def new_model(twin, a, sp):
    """A fresh model for case spec sp: the shared twin's GPT (styles, and --family gpt2 =
    routelab family gpt), or hf_twin.HFTwin (llama, qwen2, qwen3)."""
    if a.family in (None, "gpt2"):
        import routing_twin
        keys = sp.get("keys") or {}
        ste_dense = sp["gate_grad"] == "ste_dense"   # the twin's STEGate, normaliser swapped
        model = twin.GPT(make_cfg(twin, a, dict(sp, modes=routing_twin.twin_modes(sp["modes"]),
                                                gate_grad="ste" if ste_dense else sp["gate_grad"])))
        return routing_twin.install(model, sp["modes"], keys.get("block_size", 1),
                                    keys.get("k_blocks", 1), keys.get("block_window", 0),
                                    ste_dense=ste_dense)
    import hf_twin
    return hf_twin.HFTwin(hf_cfg(a, sp))


def make_cfg(twin, a, sp):
    if a.family == "gpt2":          # HF GPT-2 = routelab gpt: biases, tied head, tanh GELU
        return twin.GPTConfig(vocab_size=a.vocab_size, seq_len=a.seq_len, n_layer=a.n_layer,
                              n_head=a.n_head, d_model=a.d_model, d_ff=a.d_ff,
                              attn_bias=True, tie_embeddings=True, gelu="tanh",
                              ln_eps=a.ln_eps, d_g=a.d_g, k=sp["k"], tau=a.tau,
                              topk_scope=sp["topk_scope"], modes=sp["modes"],
                              gate_kinds=sp["gate_kinds"], gate_grad=sp["gate_grad"],
                              dropout=0.0, seed=a.seed, stochastic_seed=a.stochastic_seed,
                              fixed_mask_seed=a.fixed_mask_seed)
    ctor = twin.GPTConfig.paper if a.style == "paper" else twin.GPTConfig.gpt2style
    return ctor(vocab_size=a.vocab_size, seq_len=a.seq_len, n_layer=a.n_layer, n_head=a.n_head,
                d_model=a.d_model, d_ff=a.d_ff, d_g=a.d_g, k=sp["k"], tau=a.tau,
                topk_scope=sp["topk_scope"], modes=sp["modes"], gate_kinds=sp["gate_kinds"],
                gate_grad=sp["gate_grad"], dropout=0.0, seed=a.seed,
                stochastic_seed=a.stochastic_seed, fixed_mask_seed=a.fixed_mask_seed)


def build(twin, a, sp, weights32, dtype):
    """A fresh twin for the case (fresh mask generators), loaded with the float32 initial
    weights, cast to dtype, with the case's trainable set."""
    model = new_model(twin, a, sp)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(weights32[n])
    model.to(dtype)
    if sp["trainable"] == "gates":
        model.set_trainable("gates")
    elif sp["trainable"].startswith("attn:"):   # routelab's freeze item attn:L (gates included)
        prefix = "blocks.%d.attn." % int(sp["trainable"][5:])
        model.set_trainable([n for n, _ in model.named_parameters() if n.startswith(prefix)])
    else:
        model.set_trainable("all")    # random gates stay frozen (_apply_gate_kinds)
    model.train()                     # dropout is 0 anyway
    return model


def row_gaps(X, k, scope):
    """Relative gap between the k-th and (k+1)-th largest entries of every ranked row of X
    (..., T, T); None if no row has k+1 candidates."""
    T = X.size(-1)
    X = X.detach().double()
    vis = torch.ones(T, T, dtype=torch.bool).tril()
    if scope == "causal":
        rows = torch.arange(T) + 1 > k           # row i has i+1 candidates
        if not rows.any():
            return None
        Xm = X.masked_fill(~vis, float("-inf"))
        scale = X.masked_select(vis.expand(X.shape)).abs().max().item()
        top = Xm.topk(k + 1, dim=-1).values      # (..., T, k+1)
        gap = (top[..., k - 1] - top[..., k])[..., rows]
    else:
        if k >= T:
            return None
        scale = X.abs().max().item()
        top = X.topk(k + 1, dim=-1).values
        gap = top[..., k - 1] - top[..., k]
    if scale == 0.0:
        return 0.0
    return gap.min().item() / scale


def minopt(*xs):
    xs = [x for x in xs if x is not None]
    return min(xs) if xs else None


def run_case(twin, a, name, sp, weights32, idx, targets, dtype, feed=None, forwards=STEPS + 1):
    """Runs one case in dtype.  Returns a dict of results (tensors in float64)."""
    model = build(twin, a, sp, weights32, dtype)
    blocks = list(model.blocks)
    for b in blocks:
        b.attn.mask_log = []
        if feed is not None and feed[b.attn.layer] is not None:
            b.attn.mask_feed = list(feed[b.attn.layer])
    opt = twin.make_adamw(model, lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WD)
    k = sp["k"]
    res = dict(losses=[], margin=None, guard=None)
    for f in range(forwards):
        opt.zero_grad(set_to_none=True)
        if sp["loss_kind"] == "lm":
            logits, loss = model(idx, targets, record=True)
        else:
            loss, per_layer, logits = twin.distill_loss(model, idx, sp["loss_kind"], k)
        recs = model.records()
        res["losses"].append(loss.item())
        # top-k boundaries of hard / oracle layers, block boundaries of block layers
        for l, b in enumerate(blocks):
            mode = b.attn.mode
            rl_mode = getattr(b.attn, "routelab_mode", mode)
            if rl_mode in ("expert_choice", "expert_choice_causal"):
                import routing_twin
                res["margin"] = minopt(res["margin"], routing_twin.token_gaps(
                    recs[l]["router"], k, rl_mode == "expert_choice_causal"))
            elif rl_mode in ("block", "block_oracle"):
                import routing_twin
                X = recs[l]["G"] if rl_mode == "block" else recs[l]["S"]
                res["margin"] = minopt(res["margin"], routing_twin.block_gaps(
                    X, b.attn.block_size, b.attn.k_blocks))
            elif mode in ("hard", "oracle"):
                X = recs[l]["G"] if mode == "hard" else recs[l]["S"]
                res["margin"] = minopt(res["margin"], row_gaps(X, k, sp["topk_scope"]))
            # guard: top-ks behind the diagnostics (forward 0) and the BCE targets
            if f == 0 or sp["loss_kind"] == "distill_bce":
                res["guard"] = minopt(res["guard"], row_gaps(recs[l]["S"], k, "causal"))
            if f == 0:
                res["guard"] = minopt(res["guard"], row_gaps(recs[l]["G"], k, "causal"))
        if f == 0:
            res["loss"] = loss.item()
            res["logits"] = logits.detach().double().clone()
            res["diagnostics"] = [twin.layer_diagnostics(r, k, b.attn.mode)
                                  for r, b in zip(recs, blocks)]
            if sp["loss_kind"] != "lm":
                res["loss_per_layer"] = [x.item() for x in per_layer]
                res["lm_loss"] = F.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                    ignore_index=twin.IGNORE_INDEX).item()
        if f == STEPS:                # forward 3: the loss after the last update
            res["loss_after"] = loss.item()
            break
        if f == forwards - 1:         # float32 check: forward 0 only
            break
        loss.backward()
        if f == 0:
            res["grads"] = {n: (None if p.grad is None else p.grad.detach().double().clone())
                            for n, p in model.named_parameters()}
            gn = twin.gate_grad_norms(model)
            for d, v in zip(res["diagnostics"], gn):
                d["gate_grad_norm"] = v
            res["trainable"] = model.trainable_names()
            res["updated"] = [n for n, p in model.named_parameters()
                              if p.requires_grad and p.grad is not None]
        opt.step()
    res["params_after"] = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    res["mask_log"] = [b.attn.mask_log for b in blocks]
    res["modes"] = [b.attn.mode for b in blocks]
    return res


def draw_data(a, data_seed):
    g = torch.Generator().manual_seed(data_seed)
    if getattr(a, "family", None) in ("llama", "qwen2", "qwen3"):
        # no position embedding: a token repeated in a row gives identical layer-0 gate
        # inputs h, hence exact ties in G (hard-mode top-k); draw T+1 distinct ids per row
        if a.vocab_size < a.seq_len + 1:
            sys.exit("gen_ref: --family %s needs vocab_size >= seq_len + 1" % a.family)
        seq = torch.stack([torch.randperm(a.vocab_size, generator=g)[:a.seq_len + 1]
                           for _ in range(a.batch)])
    else:
        seq = torch.randint(0, a.vocab_size, (a.batch, a.seq_len + 1), generator=g)
    idx, tgt = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    g2 = torch.Generator().manual_seed(data_seed + 1)
    drop = torch.rand(a.batch, a.seq_len, generator=g2) < a.mask_threshold
    drop[0, 0] = True
    drop[-1, -1] = True
    tgt_m = tgt.masked_fill(drop, -1)
    return idx, tgt, tgt_m


def diag_lists(diags, L):
    keys = ["topk_mass", "entropy_ratio", "gate_precision", "gate_recall", "gate_f1",
            "kept_fraction", "empty_rows", "gate_grad_norm"]
    out = {}
    for key in keys:
        vals = [diags[l][key] for l in range(L)]
        out[key] = [int(v) for v in vals] if key == "empty_rows" else [float(v) for v in vals]
    return out


def generate(twin, a, data_seed, verbose=True):
    """Runs every case; returns (results, data, weights32, param names) or raises Redraw."""
    torch.set_grad_enabled(True)
    specs = case_specs(a)
    base = new_model(twin, a, specs["dense"])                # float32 init with --seed
    if a.family is None:
        weights32 = {n: p.detach().clone() for n, p in base.named_parameters()}
    else:                   # HF-realistic init, rounded to the stored dtype (gates: float32)
        import hf_twin
        hcfg = hf_cfg(a)
        weights32 = dict(hf_twin.round_weights(hcfg, hf_twin.init_weights(hcfg), a.hf_dtype))
        assert [n for n, _ in hf_twin.param_table(hcfg)] == \
            [n for n, _ in base.named_parameters()], "param_table != the model's order"
    names = [n for n, _ in base.named_parameters()]
    idx, tgt, tgt_m = draw_data(a, data_seed)
    results = {}
    # the cases whose top-k choices can hit a near-tie first, so that a re-draw is cheap
    risky = ["oracle", "hard_learned", "hard_ste", "topk_all_hard", "mixed", "distill_bce"]
    for name in risky + [n for n in case_names(a) if n not in risky]:
        sp = specs[name]
        t0 = time.time()
        targets = tgt_m if sp["targets"] == "masked" else tgt
        r = run_case(twin, a, name, sp, weights32, idx, targets, torch.float64)
        worst = minopt(r["margin"], r["guard"])
        if worst is not None and worst < a.min_margin:
            return None, "case %s: top-k boundary margin %.3g < %.3g" % (name, worst, a.min_margin)
        if not a.no_fp32:
            feed = None
            if name in ("stochastic", "random_fixed"):
                feed = [[m.float() for m in log] if log else None for log in r["mask_log"]]
            r32 = run_case(twin, a, name, sp, weights32, idx, targets, torch.float32,
                           feed=feed, forwards=1)
            r["fp32_loss"] = r32["loss"]
            r["fp32_logits_abs"] = (r32["logits"] - r["logits"]).abs().max().item()
        r["spec"] = sp
        r["targets_kind"] = sp["targets"]
        results[name] = r
        if verbose:
            print("  %-18s loss %.9f  after %.9f  margin %s  (%.1fs)" % (
                name, r["loss"], r["loss_after"],
                "-" if r["margin"] is None else "%.2e" % r["margin"], time.time() - t0))
    return (results, (idx, tgt, tgt_m), weights32, names, specs), None


def write_set(twin, a, out, data_seed, payload):
    results, (idx, tgt, tgt_m), weights32, names, specs = payload
    os.makedirs(out, exist_ok=True)
    W = Writer(out)
    L = a.n_layer
    params = []
    for n in names:
        e = W.f32("weights/%s.f32" % n, weights32[n])
        params.append(dict(name=n, **e))
    e_in = W.i32("inputs.i32", idx)
    e_tg = W.i32("targets.i32", tgt)
    e_tm = W.i32("targets_masked.i32", tgt_m)
    cases = {}
    fp32_worst = dict(loss_abs=0.0, logits_abs=0.0)
    for name in case_names(a):
        r, sp = results[name], specs[name]
        base = "cases/%s/" % name
        c = dict(description=DESCRIPTIONS[name], modes=sp["modes"], gate_kinds=sp["gate_kinds"],
                 gate_grad=sp["gate_grad"], k=sp["k"], tau=a.tau, topk_scope=sp["topk_scope"],
                 loss_kind=sp["loss_kind"], trainable=r["trainable"], updated=r["updated"],
                 inputs=e_in, targets=e_tm if sp["targets"] == "masked" else e_tg)
        mask_files = []
        for l in range(L):
            log = r["mask_log"][l]
            mode = r["modes"][l]
            if mode == "stochastic":
                assert len(log) == STEPS + 1, (name, l, len(log))
                m = torch.stack([x.expand(a.batch, a.n_head, a.seq_len, a.seq_len)
                                 for x in log]).float()
                e = W.f32(base + "mask_layer%d.f32" % l, m)
                mask_files.append(dict(layer=l, layout="forward,batch,head,query,key", **e))
            elif mode == "random_fixed":
                assert len(log) == STEPS + 1
                m0 = log[0]
                assert all(torch.equal(m0, x) for x in log), "random_fixed mask changed"
                m0 = m0.reshape(a.n_head, a.seq_len, a.seq_len).float()
                e = W.f32(base + "mask_layer%d.f32" % l, m0)
                mask_files.append(dict(layer=l, layout="head,query,key", **e))
        c["mask_files"] = mask_files
        if sp.get("keys"):
            c["keys"] = sp["keys"]     # config keys the case sets beyond the shared format's
        c["loss"] = r["loss"]
        if sp["loss_kind"] != "lm":
            c["loss_per_layer"] = r["loss_per_layer"]
            c["lm_loss"] = r["lm_loss"]
        c["logits"] = W.f32(base + "logits.f32", r["logits"])
        grads = []
        for n in names:
            g = r["grads"][n]
            if g is None:
                grads.append(dict(name=n, grad_is_none=True, file=None,
                                  shape=list(weights32[n].shape), dtype="float32"))
            else:
                grads.append(dict(name=n, grad_is_none=False,
                                  **W.f32(base + "grads/%s.f32" % n, g)))
        c["grads"] = grads
        c["diagnostics"] = diag_lists(r["diagnostics"], L)
        aparams = []
        for n in names:
            if n in r["updated"]:
                e = W.f32(base + "params_after/%s.f32" % n, r["params_after"][n])
            else:
                after32 = r["params_after"][n].float()
                assert torch.equal(after32, weights32[n]), "%s/%s changed" % (name, n)
                e = W.f32("weights/%s.f32" % n, weights32[n])
            aparams.append(dict(name=n, **e))
        c["adamw"] = dict(steps=STEPS, losses=r["losses"][:STEPS], loss_after=r["loss_after"],
                          params=aparams, params_not_dumped=[])
        c["topk_boundary_margin_rel"] = r["margin"]
        if "fp32_loss" in r:
            la = abs(r["fp32_loss"] - r["loss"])
            c["fp32_vs_fp64"] = dict(loss_abs=la, logits_abs=r["fp32_logits_abs"],
                                     note="float32 twin, forward 0 only (gen_ref.py)")
            c["fp32_loss"] = r["fp32_loss"]
            fp32_worst["loss_abs"] = max(fp32_worst["loss_abs"], la)
            fp32_worst["logits_abs"] = max(fp32_worst["logits_abs"], r["fp32_logits_abs"])
        else:
            c["fp32_vs_fp64"] = None
        cases[name] = c

    if a.family is not None:
        return write_family_index(twin, a, out, data_seed, W, params, e_in, e_tg, cases,
                                  fp32_worst, weights32)
    cfg = twin.GPTConfig.paper() if a.style == "paper" else twin.GPTConfig.gpt2style()
    config = dict(n_layer=a.n_layer, n_head=a.n_head, d_model=a.d_model, d_ff=a.d_ff,
                  seq_len=a.seq_len, vocab_size=a.vocab_size, attn_bias=bool(cfg.attn_bias),
                  tie_embeddings=bool(cfg.tie_embeddings), gelu=cfg.gelu, d_g=a.d_g, k=a.k,
                  tau=a.tau, topk_scope="causal", batch=a.batch, ln_eps=cfg.ln_eps,
                  dropout=0.0, init_std=cfg.init_std, gate_init_std=cfg.gate_init_std,
                  seed=a.seed, data_seed=data_seed, stochastic_seed=a.stochastic_seed,
                  fixed_mask_seed=a.fixed_mask_seed, lm_head_bias=False, mlp_bias=True,
                  ignore_index=twin.IGNORE_INDEX)
    index = dict(
        format_version=1,
        name=a.name or os.path.basename(os.path.normpath(out)),
        description=("routelab reference cases produced by the PyTorch twin (pytorch/model.py) "
                     "with routelab/tests/gen_ref.py (style %s). Every case starts from the "
                     "initial weights in weights/. Values computed in float64 from those "
                     "float32 weights, stored as float32. See README.md." % a.style),
        torch_version=torch.__version__,
        config=config,
        adamw=ADAMW_SPEC,
        tolerance=TOLERANCE_SPEC,
        params=params,
        inputs=e_in,
        targets=e_tg,
        case_names=case_names(a),
        cases=cases,
        max_fp32_vs_fp64=None if a.no_fp32 else dict(
            fp32_worst, note="float32 twin, forward 0 only (gen_ref.py)"),
    )
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


def write_family_index(twin, a, out, data_seed, W, params, e_in, e_tg, cases, fp32_worst,
                       weights32):
    """index.json of a --family set, and its hf/ directory."""
    import hf_dir
    import hf_twin
    hcfg = hf_cfg(a)
    rc = hcfg.routelab_config()
    config = dict(family=rc["family"], n_layer=a.n_layer, n_head=a.n_head,
                  n_kv_head=rc["n_kv_head"], head_dim=rc["head_dim"], d_model=a.d_model,
                  d_ff=a.d_ff, seq_len=a.seq_len, vocab_size=a.vocab_size,
                  attn_bias=rc["attn_bias"], tie_embeddings=rc["tie_embeddings"],
                  gelu=rc["gelu"], d_g=a.d_g, k=a.k, tau=a.tau, topk_scope="causal",
                  batch=a.batch, ln_eps=a.ln_eps, dropout=0.0, init_std=a.init_std,
                  qk_init_std=a.qk_init_std, gate_init_std=hcfg.gate_init_std,
                  norm_noise=hcfg.norm_noise, bias_std=hcfg.bias_std, seed=a.seed,
                  data_seed=data_seed, stochastic_seed=a.stochastic_seed,
                  fixed_mask_seed=a.fixed_mask_seed, lm_head_bias=False,
                  mlp_bias=rc["mlp_bias"], ignore_index=twin.IGNORE_INDEX,
                  rope_theta=rc["rope_theta"], rope_scaling=rc["rope_scaling"],
                  rope_factor=rc["rope_factor"], rope_low_freq_factor=rc["rope_low_freq_factor"],
                  rope_high_freq_factor=rc["rope_high_freq_factor"],
                  rope_original_max_pos=rc["rope_original_max_pos"], hf_family=a.family)
    prefix = "transformer." if (a.family == "gpt2" and a.gpt2_prefix) else ""
    hf_w = hf_twin.to_hf(hcfg, weights32, prefix=prefix,
                         attn_bias_buffer=a.family == "gpt2" and a.gpt2_buffers)
    files = hf_dir.write_hf_dir(os.path.join(out, "hf"), hcfg, hf_w, a.hf_dtype, a.hf_shards,
                                a.rope_form)
    # the directory must read back as exactly weights/ (gates aside)
    back = hf_twin.from_hf(hcfg, hf_dir.read_weights(os.path.join(out, "hf")), gates=weights32)
    for n, t in back.items():
        assert torch.equal(t.float(), weights32[n]), "hf/ does not read back as weights/: " + n
    index = dict(
        format_version=1,
        name=a.name or os.path.basename(os.path.normpath(out)),
        description=("routelab reference cases for the HF family %s (routelab family %s), "
                     "produced by routelab/tests/gen_ref.py --family %s with %s. Every case "
                     "starts from the initial weights in weights/ (routelab parameter names; "
                     "hf/ holds the same weights, without the routelab-only gates, as a %s "
                     "Hugging Face directory). Values computed in float64 from those float32 "
                     "weights, stored as float32. See README.md."
                     % (a.family, rc["family"], a.family,
                        "the shared twin" if a.family == "gpt2" else "tests/hf_twin.py",
                        a.hf_dtype)),
        torch_version=torch.__version__,
        config=config,
        hf_dir="hf",
        hf_dtype=a.hf_dtype,
        hf_files=files,
        hf_rope_form=a.rope_form,
        adamw=ADAMW_SPEC,
        tolerance=TOLERANCE_SPEC,
        params=params,
        inputs=e_in,
        targets=e_tg,
        case_names=case_names(a),
        cases=cases,
        max_fp32_vs_fp64=None if a.no_fp32 else dict(
            fp32_worst, note="float32 twin, forward 0 only (gen_ref.py)"),
    )
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


def main(argv=None):
    a = parse_args(argv)
    twin = import_twin(a.twin)
    torch.set_num_threads(1)          # tiny tensors: threads only add overhead
    t0 = time.time()
    data_seed = a.data_seed
    for attempt in range(a.max_redraws + 1):
        print("gen_ref: %s, L %d d %d H %d F %d T %d V %d B %d k %d g %d, seed %d, "
              "data_seed %d" % ("style " + a.style if a.family is None else "family " + a.family,
                                a.n_layer, a.d_model, a.n_head, a.d_ff, a.seq_len,
                                a.vocab_size, a.batch, a.k, a.d_g, a.seed, data_seed))
        payload, why = generate(twin, a, data_seed)
        if payload is not None:
            break
        print("gen_ref: %s; re-drawing the data with data_seed %d" % (why, data_seed + 1))
        data_seed += 1
    else:
        sys.exit("gen_ref: no data draw without a near-tie top-k after %d tries" % a.max_redraws)
    write_set(twin, a, a.out, data_seed, payload)
    print("gen_ref: wrote %s (%.1fs)" % (os.path.join(a.out, "index.json"), time.time() - t0))


if __name__ == "__main__":
    main()
