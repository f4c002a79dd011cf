#!/usr/bin/python3
"""hf_twin.py: PyTorch twin of the Hugging Face Llama / Qwen2 / Qwen3 / GPT-2 families with
routelab's routing modes.

Written from HF's modeling code (transformers: models/llama/modeling_llama.py,
models/qwen2/modeling_qwen2.py, models/qwen3/modeling_qwen3.py, models/gpt2/modeling_gpt2.py,
modeling_rope_utils.py); the routing is the shared twin's (../shared/ref/pytorch/model.py),
imported, never copied: topk_keep, window_keep, STEGate, CausalSelfAttention._mask /
gate_scores, the GPT helpers (set_trainable, records, ...), distill_loss, layer_diagnostics.

Families (pre-norm decoder, positions 0..T-1 per sequence, logits = norm(x) @ head^T):
    llama  x = embed[idx]; block: h = RMSNorm1(x); x += o_proj(Attn(h)); x += MLP(RMSNorm2(x))
           Attn: q/k/v_proj (bias = attention_bias), RoPE (rope_theta, rope_scaling llama3),
           grouped K/V heads (query head h reads kv head h // (n_head / n_kv_head), repeat_kv),
           o_proj (bias = attention_bias); MLP = down(silu(gate(x)) * up(x)) (bias = mlp_bias)
    qwen2  llama with q/k/v biases always, o_proj without bias, MLP without bias
    qwen3  llama (attention_bias on q/k/v/o, MLP without bias) with q_norm / k_norm: RMSNorm
           over head_dim of each head's q and k, BEFORE the rotation; explicit head_dim
    gpt2   HF GPT-2: wte + wpe, LayerNorm (eps layer_norm_epsilon), Conv1D weights stored
           (in, out) (y = x W + b), gelu_new (tanh GELU), tied head
Attention scores per query head S = q k^T / sqrt(head_dim) (after q/k norm and rope); the
routing gate G = (h Wgq_h^T)(h Wgk_h^T)^T / sqrt(d_g) reads h = the attention sublayer's
normalised input (input_layernorm / ln_1), one gate per query head; every mode as the twin.

Parameters are named with routelab's names (the C parameter table; see param_table), so that
gen_ref.py can dump them as they are; to_hf / from_hf map to and from HF's tensor names.
The gpt2 family here keeps HF's Conv1D layout in its modules (attn.c_attn, attn.c_proj,
mlp.c_fc, mlp.c_proj); load_routelab transposes (routelab stores every weight (out, in)).

Precision (the model runs in the dtype it is cast to, float64 for references):
  * RMSNorm is computed in max(float32, input dtype) and cast back before the weight
    multiply: weight * (x * rsqrt(mean(x^2) + eps)).to(input dtype) -- LlamaRMSNorm.forward,
    which upcasts to float32 (in a float64 model HF would round to float32; we do not).
  * inv_freq is computed in float32 exactly as HF (_compute_default_rope_parameters,
    _compute_llama3_parameters: the wavelength comparisons are float32).  HF then forms the
    angles pos * inv_freq and cos/sin in float32 (LlamaRotaryEmbedding.forward forces
    float32); in float64 mode we form them in float64 from the float32 inv_freq (the exact
    value of HF's formula), in float32 mode in float32 as HF does.
  * softmax in the model dtype (HF eager_attention_forward uses float32 softmax; same
    for a float32 model).

Usage: import after the shared twin (gen_ref.import_twin(path)) or let this module import
it from $ROUTELAB_TWIN or ../shared/ref/pytorch.
"""

import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F


def _import_twin():
    if "model" in sys.modules and hasattr(sys.modules["model"], "CausalSelfAttention"):
        return sys.modules["model"]
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("ROUTELAB_TWIN",
                          os.path.join(here, "..", "..", "shared", "ref", "pytorch"))
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "model.py")):
        sys.exit("hf_twin: no model.py in %s (set ROUTELAB_TWIN)" % path)
    sys.path.insert(0, path)
    sys.dont_write_bytecode = True
    import model  # noqa: E402
    return model


twin = _import_twin()
NEG_INF = twin.NEG_INF
FAMILIES = ("llama", "qwen2", "qwen3", "gpt2")


@dataclass
class HFConfig:
    family: str = "llama"
    vocab_size: int = 97
    seq_len: int = 32                 # T: longest input; gpt2 n_positions; fixed-noise size
    n_layer: int = 2
    d_model: int = 64                 # hidden_size / n_embd
    n_head: int = 4
    n_kv_head: Optional[int] = None   # None -> n_head (gpt2: always n_head)
    head_dim: Optional[int] = None    # None -> d_model // n_head (gpt2: always)
    d_ff: Optional[int] = None        # intermediate_size; None -> 4 d (gpt2 n_inner null)
    rope_theta: float = 10000.0
    rope_scaling: str = "none"        # none | llama3
    rope_factor: float = 8.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_pos: int = 8192
    max_position_embeddings: int = 2048   # config.json only (RoPE needs no table)
    attn_bias: bool = False           # llama/qwen3: q,k,v,o biases; qwen2: ignored (q,k,v yes, o no)
    mlp_bias: bool = False            # llama only (qwen2/qwen3 MLPs never have biases)
    ln_eps: float = 1e-6              # rms_norm_eps / layer_norm_epsilon
    tie_embeddings: bool = False
    # routing, as twin.GPTConfig
    d_g: int = 16
    k: int = 8
    tau: float = 1.0
    topk_scope: str = "causal"
    modes: Union[str, Sequence[str]] = "dense"
    gate_kinds: Union[str, Sequence[str]] = "learned"
    gate_grad: str = "none"
    dropout: float = 0.0
    # initial weights (init_weights)
    init_std: float = 0.02
    qk_init_std: Optional[float] = None   # q and k projection rows (None -> init_std)
    gate_init_std: float = 0.02
    norm_noise: float = 0.1           # norm weights 1 + N(0, norm_noise): a wrong norm shows
    bias_std: float = 0.02            # biases N(0, bias_std) where present
    seed: int = 0
    stochastic_seed: int = 1000
    fixed_mask_seed: int = 2000

    def __post_init__(self):
        assert self.family in FAMILIES, self.family
        if self.family == "gpt2":
            assert self.n_kv_head in (None, self.n_head) and self.d_model % self.n_head == 0
            self.n_kv_head, self.head_dim = self.n_head, self.d_model // self.n_head
            self.attn_bias, self.mlp_bias, self.tie_embeddings = True, True, True
            self.rope_scaling = "none"
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            assert self.d_model % self.n_head == 0, "give head_dim"
            self.head_dim = self.d_model // self.n_head
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.family == "qwen2":
            self.attn_bias = True     # q/k/v biases (o_proj none): recorded as attn_bias true
        if self.family in ("qwen2", "qwen3"):
            self.mlp_bias = False
        if self.qk_init_std is None:
            self.qk_init_std = self.init_std
        assert self.n_head % self.n_kv_head == 0, "n_head must be a multiple of n_kv_head"
        assert self.head_dim % 2 == 0 or self.family == "gpt2", "RoPE needs an even head_dim"
        assert self.rope_scaling in ("none", "llama3")
        if isinstance(self.modes, str):
            self.modes = [self.modes] * self.n_layer
        if isinstance(self.gate_kinds, str):
            self.gate_kinds = [self.gate_kinds] * self.n_layer
        self.modes, self.gate_kinds = list(self.modes), list(self.gate_kinds)
        assert len(self.modes) == self.n_layer and len(self.gate_kinds) == self.n_layer
        assert all(m in twin.MODES for m in self.modes), self.modes
        assert self.gate_grad in twin.GATE_GRADS and self.topk_scope in twin.TOPK_SCOPES

    @property
    def gelu(self):
        return "tanh"                 # gpt2's gelu_new; unused by the SwiGLU families

    # which biases exist, per HF module
    @property
    def qkv_bias(self):
        return self.family in ("qwen2", "gpt2") or self.attn_bias

    @property
    def o_bias(self):
        return self.family == "gpt2" or (self.family in ("llama", "qwen3") and self.attn_bias)

    @property
    def qk_norm(self):
        return self.family == "qwen3"

    def routelab_config(self) -> dict:
        """routelab's config keys for this model (gpt2 -> routelab family gpt)."""
        fam = "gpt" if self.family == "gpt2" else self.family
        return dict(family=fam, n_layer=self.n_layer, n_head=self.n_head,
                    n_kv_head=self.n_kv_head, head_dim=self.head_dim, d_model=self.d_model,
                    d_ff=self.d_ff, seq_len=self.seq_len, vocab_size=self.vocab_size,
                    attn_bias=bool(self.attn_bias), mlp_bias=bool(self.mlp_bias),
                    tie_embeddings=bool(self.tie_embeddings),
                    gelu="tanh" if self.family == "gpt2" else "erf",
                    ln_eps=self.ln_eps, rope_theta=self.rope_theta,
                    rope_scaling=self.rope_scaling, rope_factor=self.rope_factor,
                    rope_low_freq_factor=self.rope_low_freq_factor,
                    rope_high_freq_factor=self.rope_high_freq_factor,
                    rope_original_max_pos=self.rope_original_max_pos)


# ----------------------------------------------------------------------------- pieces

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm.forward / Qwen3RMSNorm.forward: normalise in (at least) float32, cast back
    to the input dtype, then multiply by the weight."""
    dt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dt)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * y.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def rope_inv_freq(cfg: HFConfig) -> torch.Tensor:
    """float32 (head_dim/2,) inverse frequencies.  _compute_default_rope_parameters:
    1 / theta^(arange(0, dim, 2) / dim) in float32; rope_scaling llama3 then as
    _compute_llama3_parameters: wavelen = 2 pi / inv_freq;
        wavelen < original_max_pos / high_freq_factor : unchanged (high frequencies)
        wavelen > original_max_pos / low_freq_factor  : inv_freq / factor (low frequencies)
        otherwise (medium, both bounds inclusive):      (1 - s) inv_freq / factor + s inv_freq,
            s = (original_max_pos / wavelen - low_freq_factor) / (high - low)
    all in float32 tensors (python-float scalars)."""
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if cfg.rope_scaling == "none":
        return inv
    factor, lo, hi = cfg.rope_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    old = cfg.rope_original_max_pos
    low_wl, high_wl = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    llama = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * llama / factor + smooth * llama
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, llama)


def rope_cos_sin(inv_freq: torch.Tensor, T: int, dtype: torch.dtype):
    """(T, head_dim) cos, sin of emb = cat(freqs, freqs), freqs[p] = p * inv_freq
    (LlamaRotaryEmbedding.forward).  float32 math for float32/bf16 (as HF), float64 math
    from the float32 inv_freq for float64 (see the module docstring)."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    pos = torch.arange(T, dtype=work)
    freqs = pos[:, None] * inv_freq.to(work)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    """modeling_llama.rotate_half: (x1, x2) -> (-x2, x1), halves of the last dim."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    """modeling_llama.apply_rotary_pos_emb for one tensor (B, H, T, hd); cos/sin (T, hd)."""
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """modeling_llama.repeat_kv: (B, KV, T, hd) -> (B, KV*n_rep, T, hd), kv head j serving
    query heads j*n_rep .. j*n_rep+n_rep-1 (query head h reads kv head h // n_rep)."""
    B, KV, T, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None].expand(B, KV, n_rep, T, hd).reshape(B, KV * n_rep, T, hd)


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight (nx, nf) = (in, out), y = x W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(
            *x.shape[:-1], self.weight.size(1))


def gelu_new(x):
    """transformers.activations.NewGELUActivation (tanh approximation)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# ----------------------------------------------------------------------------- attention

class RoutedAttention(twin.CausalSelfAttention):
    """The twin's CausalSelfAttention with HF projections: same attributes (mode, gate_q,
    gate_k, fixed_noise, generator, mask_feed, mask_log, rec, ...) so that _mask,
    gate_scores, gate_params and every GPT helper of the twin apply unchanged."""

    def __init__(self, cfg: HFConfig, layer: int):
        nn.Module.__init__(self)
        d, H, KV, hd = cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.cfg, self.layer = cfg, layer
        self.n_head, self.n_kv_head, self.hd, self.d_g = H, KV, hd, cfg.d_g
        self.mode, self.gate_kind = cfg.modes[layer], cfg.gate_kinds[layer]
        if cfg.family == "gpt2":                      # GPT2Attention: c_attn, c_proj
            self.c_attn = Conv1D(3 * d, d)
            self.c_proj = Conv1D(d, d)
        else:                                         # q/k/v_proj rows concatenated (routelab)
            self.qkv = nn.Linear(d, (H + 2 * KV) * hd, bias=cfg.qkv_bias)
            if cfg.qk_norm:
                self.q_norm = RMSNorm(hd, cfg.ln_eps)
                self.k_norm = RMSNorm(hd, cfg.ln_eps)
            self.proj = nn.Linear(H * hd, d, bias=cfg.o_bias)
            self.inv_freq = rope_inv_freq(cfg)        # plain float32 attribute, not a buffer
        self.gate_q = nn.Linear(d, H * cfg.d_g, bias=False)
        self.gate_k = nn.Linear(d, H * cfg.d_g, bias=False)
        self.attn_drop = nn.Dropout(cfg.dropout)
        # random_fixed noise exactly as the twin: (n_head, T, T) from fixed_mask_seed + layer
        g = torch.Generator().manual_seed(cfg.fixed_mask_seed + layer)
        self.fixed_noise = torch.rand(H, cfg.seq_len, cfg.seq_len, generator=g)
        self.generator = None
        self.mask_feed = None
        self.mask_log = None
        self.keep_gate_graph = False
        self.rec = None

    def qkv_heads(self, h):
        """q (B,H,T,hd), k and v (B,H,T,hd) after q/k norm, rope and repeat_kv."""
        cfg = self.cfg
        B, T, d = h.shape
        H, KV, hd = self.n_head, self.n_kv_head, self.hd
        if cfg.family == "gpt2":                      # GPT2Attention.forward: split(embed_dim)
            q, k, v = self.c_attn(h).split(d, dim=2)
            return tuple(t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        q, k, v = self.qkv(h).split([H * hd, KV * hd, KV * hd], dim=2)
        q, k, v = q.view(B, T, H, hd), k.view(B, T, KV, hd), v.view(B, T, KV, hd)
        if cfg.qk_norm:                               # Qwen3Attention: norm before the rotation
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        cos, sin = rope_cos_sin(self.inv_freq, T, q.dtype)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, repeat_kv(k, H // KV), repeat_kv(v, H // KV)

    def route(self, S, h, B, T):
        """Attention weights W (B,H,T,T) of the layer's mode from scores S and the gate input
        h; the same statements as twin.CausalSelfAttention.forward (records included)."""
        cfg, mode = self.cfg, self.mode
        vis = twin.causal_visible(T, h.device)
        gate_in_graph = mode in ("soft", "soft_prob") or (mode == "hard" and cfg.gate_grad == "ste")
        G = None
        if gate_in_graph or self.keep_gate_graph:
            G = self.gate_scores(h)
        elif mode == "hard" or self._record:
            with torch.no_grad():
                G = self.gate_scores(h)
        keep = None
        if mode == "dense":
            W = F.softmax(S.masked_fill(~vis, NEG_INF), dim=-1)
        elif mode == "soft":
            W = F.softmax((S * torch.sigmoid(G / cfg.tau)).masked_fill(~vis, NEG_INF), dim=-1)
        elif mode == "soft_prob":
            W = F.softmax(S.masked_fill(~vis, NEG_INF), dim=-1) * torch.sigmoid(G / cfg.tau)
        else:
            keep = self._mask(S, G, B, T)
            W = F.softmax(S.masked_fill(~vis, NEG_INF).masked_fill(~keep, NEG_INF), dim=-1)
        W = torch.nan_to_num(W, nan=0.0)
        if mode == "hard" and cfg.gate_grad == "ste":
            W = twin.STEGate.apply(W, S.detach(), keep.expand(W.shape), vis.expand(W.shape),
                                   torch.sigmoid(G / cfg.tau))
        if self._record:
            self.rec = dict(S=S.detach(), G=None if G is None else G.detach(),
                            G_live=G if self.keep_gate_graph else None,
                            W=W.detach(), keep=None if keep is None else keep.detach())
        return W

    def forward(self, h, record=False):
        B, T, _ = h.shape
        q, k, v = self.qkv_heads(h)
        S = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd)
        self._record = record
        W = self.route(S, h, B, T)
        y = (self.attn_drop(W) @ v).transpose(1, 2).contiguous().view(B, T, self.n_head * self.hd)
        return self.c_proj(y) if self.cfg.family == "gpt2" else self.proj(y)


class SwiGLU(nn.Module):
    """LlamaMLP: down(silu(gate(x)) * up(x)); gate and up rows concatenated as routelab's
    mlp.fc (rows [0, F) = gate_proj, [F, 2F) = up_proj), down = mlp.proj."""

    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=cfg.mlp_bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.mlp_bias)

    def forward(self, x):
        g, u = self.fc(x).chunk(2, dim=-1)
        return self.proj(F.silu(g) * u)


class GPT2MLP(nn.Module):
    """GPT2MLP: c_proj(gelu_new(c_fc(x)))."""

    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.d_ff, cfg.d_model)
        self.c_proj = Conv1D(cfg.d_model, cfg.d_ff)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        gpt2 = cfg.family == "gpt2"
        norm = (lambda: nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)) if gpt2 else \
            (lambda: RMSNorm(cfg.d_model, cfg.ln_eps))
        self.ln1 = norm()
        self.attn = RoutedAttention(cfg, layer)
        self.ln2 = norm()
        self.mlp = GPT2MLP(cfg) if gpt2 else SwiGLU(cfg)

    def forward(self, x, record=False):
        x = x + self.attn(self.ln1(x), record=record)
        return x + self.mlp(self.ln2(x))


class HFTwin(twin.GPT):
    """The model (twin.GPT's helpers: set_modes, set_trainable, records, gate_parameters...)."""

    def __init__(self, cfg: HFConfig, weights=None):
        nn.Module.__init__(self)
        self.cfg = cfg
        d = cfg.d_model
        self.wte = nn.Embedding(cfg.vocab_size, d)
        if cfg.family == "gpt2":
            self.wpe = nn.Embedding(cfg.seq_len, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg, l) for l in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(d, eps=cfg.ln_eps) if cfg.family == "gpt2" else RMSNorm(d, cfg.ln_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(d, cfg.vocab_size, bias=False)
        self.load_routelab(init_weights(cfg) if weights is None else weights)
        self._apply_gate_kinds()
        self.set_generator(torch.Generator().manual_seed(cfg.stochastic_seed))

    @torch.no_grad()
    def reset_parameters(self):
        self.load_routelab(init_weights(self.cfg))

    @torch.no_grad()
    def load_routelab(self, weights):
        """Load a {routelab name: tensor} dict (routelab layouts; gpt2: transposed into the
        Conv1D modules)."""
        own = dict(self.named_parameters())
        done = set()
        for name, t in weights.items():
            tgt, tr = _module_name(self.cfg, name)
            p = own[tgt]
            p.copy_(t.t() if tr else t)
            done.add(tgt)
        missing = set(own) - done
        assert not missing, "not loaded: %s" % sorted(missing)

    def routelab_weights(self):
        """{routelab name: float32 tensor} in canonical order (the inverse of load_routelab)."""
        own = dict(self.named_parameters())
        out = OrderedDict()
        for name, _ in param_table(self.cfg):
            tgt, tr = _module_name(self.cfg, name)
            t = own[tgt].detach()
            out[name] = (t.t() if tr else t).contiguous()
        return out

    def forward(self, idx, targets=None, record=False):
        B, T = idx.shape
        assert T <= self.cfg.seq_len
        x = self.wte(idx)
        if self.cfg.family == "gpt2":
            x = x + self.wpe(torch.arange(T, device=idx.device))[None]
        x = self.drop(x)
        for b in self.blocks:
            x = b(x, record=record)
        x = self.ln_f(x)
        logits = x @ (self.wte.weight if self.lm_head is None else self.lm_head.weight).t()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=twin.IGNORE_INDEX)
        return logits, loss


# ----------------------------------------------------------------------------- parameters

def param_table(cfg: HFConfig):
    """[(routelab name, shape)] in routelab's canonical order (the C parameter table)."""
    V, d, H, KV, hd, Fd, g = (cfg.vocab_size, cfg.d_model, cfg.n_head, cfg.n_kv_head,
                              cfg.head_dim, cfg.d_ff, cfg.d_g)
    t = [("wte.weight", (V, d))]
    gpt2 = cfg.family == "gpt2"
    if gpt2:
        t.append(("wpe.weight", (cfg.seq_len, d)))
    for l in range(cfg.n_layer):
        p = "blocks.%d." % l
        t.append((p + "ln1.weight", (d,)))
        if gpt2:
            t.append((p + "ln1.bias", (d,)))
        t.append((p + "attn.qkv.weight", ((H + 2 * KV) * hd, d)))
        if cfg.qkv_bias:
            t.append((p + "attn.qkv.bias", ((H + 2 * KV) * hd,)))
        if cfg.qk_norm:
            t += [(p + "attn.q_norm.weight", (hd,)), (p + "attn.k_norm.weight", (hd,))]
        t.append((p + "attn.proj.weight", (d, H * hd)))
        if cfg.o_bias:
            t.append((p + "attn.proj.bias", (d,)))
        t += [(p + "attn.gate_q.weight", (H * g, d)), (p + "attn.gate_k.weight", (H * g, d))]
        t.append((p + "ln2.weight", (d,)))
        if gpt2:
            t.append((p + "ln2.bias", (d,)))
        t.append((p + "mlp.fc.weight", ((Fd if gpt2 else 2 * Fd), d)))
        if cfg.mlp_bias:
            t.append((p + "mlp.fc.bias", ((Fd if gpt2 else 2 * Fd),)))
        t.append((p + "mlp.proj.weight", (d, Fd)))
        if cfg.mlp_bias:
            t.append((p + "mlp.proj.bias", (d,)))
    t.append(("ln_f.weight", (d,)))
    if gpt2:
        t.append(("ln_f.bias", (d,)))
    if not cfg.tie_embeddings:
        t.append(("lm_head.weight", (V, d)))
    return t


_GPT2_MODULE = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj",
                "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}


def _module_name(cfg, name):
    """HFTwin parameter holding routelab parameter `name`, and whether it is transposed."""
    if cfg.family != "gpt2":
        return name, False
    for a, b in _GPT2_MODULE.items():
        if (".%s." % a) in name:
            return name.replace(a, b), name.endswith(".weight")
    return name, False


def init_weights(cfg: HFConfig):
    """Random but realistic float32 weights {routelab name: tensor}, one generator seeded
    with cfg.seed, drawn in canonical order: matrices and embeddings N(0, init_std) (the q
    and k rows of attn.qkv N(0, qk_init_std)), gates N(0, gate_init_std), norm weights
    1 + N(0, norm_noise), biases N(0, bias_std)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    out = OrderedDict()
    qk_rows = (cfg.n_head + cfg.n_kv_head) * cfg.head_dim
    for name, shape in param_table(cfg):
        z = torch.randn(shape, generator=gen)
        is_norm = any(s in name for s in ("ln1.", "ln2.", "ln_f.", "q_norm.", "k_norm."))
        if is_norm and name.endswith("weight"):
            t = 1.0 + cfg.norm_noise * z
        elif name.endswith("bias"):
            t = cfg.bias_std * z
        elif ".gate_q." in name or ".gate_k." in name:
            t = cfg.gate_init_std * z
        elif name.endswith("attn.qkv.weight"):
            t = cfg.init_std * z
            t[:qk_rows] = cfg.qk_init_std * z[:qk_rows]
        else:
            t = cfg.init_std * z
        out[name] = t.float()
    return out


def is_gate(name):
    return ".attn.gate_q." in name or ".attn.gate_k." in name


def to_hf(cfg: HFConfig, w, prefix: str = "", attn_bias_buffer: bool = False):
    """[(HF name, tensor)] of routelab weights w (gates left out: routelab-only), in HF's
    module order.  gpt2: prefix "" or "transformer."; attn_bias_buffer adds the
    h.{i}.attn.bias causal-mask buffer (1, 1, n_positions, n_positions) of old checkpoints."""
    H, KV, hd, Fd, L = cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.d_ff, cfg.n_layer
    out = []
    if cfg.family == "gpt2":
        P = prefix
        out += [(P + "wte.weight", w["wte.weight"]), (P + "wpe.weight", w["wpe.weight"])]
        n = cfg.seq_len
        for l in range(L):
            b, h = "blocks.%d." % l, P + "h.%d." % l
            out += [(h + "ln_1.weight", w[b + "ln1.weight"]), (h + "ln_1.bias", w[b + "ln1.bias"])]
            if attn_bias_buffer:
                out.append((h + "attn.bias", torch.ones(n, n).tril().view(1, 1, n, n)))
            out += [(h + "attn.c_attn.weight", w[b + "attn.qkv.weight"].t().contiguous()),
                    (h + "attn.c_attn.bias", w[b + "attn.qkv.bias"]),
                    (h + "attn.c_proj.weight", w[b + "attn.proj.weight"].t().contiguous()),
                    (h + "attn.c_proj.bias", w[b + "attn.proj.bias"]),
                    (h + "ln_2.weight", w[b + "ln2.weight"]), (h + "ln_2.bias", w[b + "ln2.bias"]),
                    (h + "mlp.c_fc.weight", w[b + "mlp.fc.weight"].t().contiguous()),
                    (h + "mlp.c_fc.bias", w[b + "mlp.fc.bias"]),
                    (h + "mlp.c_proj.weight", w[b + "mlp.proj.weight"].t().contiguous()),
                    (h + "mlp.c_proj.bias", w[b + "mlp.proj.bias"])]
        out += [(P + "ln_f.weight", w["ln_f.weight"]), (P + "ln_f.bias", w["ln_f.bias"])]
        return out
    out.append(("model.embed_tokens.weight", w["wte.weight"]))
    for l in range(L):
        b, m = "blocks.%d." % l, "model.layers.%d." % l
        out.append((m + "input_layernorm.weight", w[b + "ln1.weight"]))
        qw, kw, vw = w[b + "attn.qkv.weight"].split([H * hd, KV * hd, KV * hd], 0)
        qb = kb = vb = None
        if cfg.qkv_bias:
            qb, kb, vb = w[b + "attn.qkv.bias"].split([H * hd, KV * hd, KV * hd], 0)
        for nm, wt, bs in (("q", qw, qb), ("k", kw, kb), ("v", vw, vb)):
            out.append((m + "self_attn.%s_proj.weight" % nm, wt.contiguous()))
            if bs is not None:
                out.append((m + "self_attn.%s_proj.bias" % nm, bs.contiguous()))
        out.append((m + "self_attn.o_proj.weight", w[b + "attn.proj.weight"]))
        if cfg.o_bias:
            out.append((m + "self_attn.o_proj.bias", w[b + "attn.proj.bias"]))
        if cfg.qk_norm:
            out += [(m + "self_attn.q_norm.weight", w[b + "attn.q_norm.weight"]),
                    (m + "self_attn.k_norm.weight", w[b + "attn.k_norm.weight"])]
        gw, uw = w[b + "mlp.fc.weight"].split([Fd, Fd], 0)
        out += [(m + "mlp.gate_proj.weight", gw.contiguous()), (m + "mlp.up_proj.weight", uw.contiguous())]
        if cfg.mlp_bias:
            gb, ub = w[b + "mlp.fc.bias"].split([Fd, Fd], 0)
            out += [(m + "mlp.gate_proj.bias", gb.contiguous()), (m + "mlp.up_proj.bias", ub.contiguous())]
        out.append((m + "mlp.down_proj.weight", w[b + "mlp.proj.weight"]))
        if cfg.mlp_bias:
            out.append((m + "mlp.down_proj.bias", w[b + "mlp.proj.bias"]))
        out.append((m + "post_attention_layernorm.weight", w[b + "ln2.weight"]))
    out.append(("model.norm.weight", w["ln_f.weight"]))
    if not cfg.tie_embeddings:
        out.append(("lm_head.weight", w["lm_head.weight"]))
    return out


def from_hf(cfg: HFConfig, hf, gates=None):
    """routelab weights from an {HF name: tensor} dict (the inverse of to_hf).  gpt2: the
    `transformer.` prefix is stripped and attn.bias / attn.masked_bias buffers are skipped.
    Gates are taken from `gates` ({routelab name: tensor}) or drawn by init_weights."""
    hf = {(n[len("transformer."):] if n.startswith("transformer.") else n): t for n, t in hf.items()}
    hf = {n: t for n, t in hf.items() if not (n.endswith(".attn.bias") and cfg.family == "gpt2")
          and not n.endswith(".attn.masked_bias")}
    ref = init_weights(cfg) if gates is None else gates
    w = OrderedDict()
    table = param_table(cfg)
    # build by inverting to_hf on a name-tagged dummy: every routelab tensor's HF pieces
    used = set()
    if cfg.family == "gpt2":
        for name, _ in table:
            if is_gate(name):
                w[name] = ref[name]
                continue
            hn = name.replace("blocks.", "h.").replace("ln1", "ln_1").replace("ln2", "ln_2")
            tr = False
            for a, b in _GPT2_MODULE.items():
                if (".%s." % a) in hn:
                    hn, tr = hn.replace(a, b), hn.endswith(".weight")
            w[name] = hf[hn].t().contiguous() if tr else hf[hn]
            used.add(hn)
    else:
        for name, _ in table:
            if is_gate(name):
                w[name] = ref[name]
                continue
            parts = _hf_parts(cfg, name)
            w[name] = torch.cat([hf[p] for p in parts], 0) if len(parts) > 1 else hf[parts[0]]
            used.update(parts)
    extra = set(hf) - used
    assert not extra, "unused HF tensors: %s" % sorted(extra)
    return w


def _hf_parts(cfg, name):
    """HF tensor names whose row concatenation is routelab tensor `name` (llama families)."""
    if name == "wte.weight":
        return ["model.embed_tokens.weight"]
    if name == "ln_f.weight":
        return ["model.norm.weight"]
    if name == "lm_head.weight":
        return ["lm_head.weight"]
    l, rest = name[len("blocks."):].split(".", 1)
    m = "model.layers.%s." % l
    table = {"ln1.weight": ["input_layernorm.weight"],
             "ln2.weight": ["post_attention_layernorm.weight"],
             "attn.qkv.weight": ["self_attn.%s_proj.weight" % c for c in "qkv"],
             "attn.qkv.bias": ["self_attn.%s_proj.bias" % c for c in "qkv"],
             "attn.q_norm.weight": ["self_attn.q_norm.weight"],
             "attn.k_norm.weight": ["self_attn.k_norm.weight"],
             "attn.proj.weight": ["self_attn.o_proj.weight"],
             "attn.proj.bias": ["self_attn.o_proj.bias"],
             "mlp.fc.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"],
             "mlp.fc.bias": ["mlp.gate_proj.bias", "mlp.up_proj.bias"],
             "mlp.proj.weight": ["mlp.down_proj.weight"],
             "mlp.proj.bias": ["mlp.down_proj.bias"]}
    return [m + p for p in table[rest]]


def round_weights(cfg, w, dtype: str):
    """w with every tensor that the HF directory stores rounded to dtype (gates, which only
    routelab has, stay float32)."""
    import hf_dir
    if dtype == "F32":
        return OrderedDict(w)
    return OrderedDict((n, t if is_gate(n) else hf_dir.round_to(t, dtype)) for n, t in w.items())


def config_from_hf(hfc: dict, **routing) -> HFConfig:
    """HFConfig from a config.json dict (either rope form); routing: HFConfig fields to set
    (seq_len, d_g, k, modes, ...; they override the config's)."""
    mt = hfc["model_type"]
    if mt == "gpt2":
        kw = dict(family="gpt2", vocab_size=hfc["vocab_size"], seq_len=hfc["n_positions"],
                  n_layer=hfc["n_layer"], d_model=hfc["n_embd"], n_head=hfc["n_head"],
                  d_ff=hfc.get("n_inner") or 4 * hfc["n_embd"],
                  ln_eps=hfc.get("layer_norm_epsilon", 1e-5))
        kw.update(routing)
        return HFConfig(**kw)
    rp = hfc.get("rope_parameters") or {}
    rs = hfc.get("rope_scaling") or {}
    r = rp if rp else rs
    theta = rp.get("rope_theta", hfc.get("rope_theta", 10000.0))
    rtype = r.get("rope_type", r.get("type", "default")) if r else "default"
    assert rtype in ("default", "llama3"), rtype
    kw = dict(family=mt, vocab_size=hfc["vocab_size"], n_layer=hfc["num_hidden_layers"],
              d_model=hfc["hidden_size"], n_head=hfc["num_attention_heads"],
              n_kv_head=hfc.get("num_key_value_heads") or hfc["num_attention_heads"],
              head_dim=hfc.get("head_dim") or hfc["hidden_size"] // hfc["num_attention_heads"],
              d_ff=hfc["intermediate_size"], rope_theta=theta, ln_eps=hfc["rms_norm_eps"],
              tie_embeddings=hfc.get("tie_word_embeddings", False),
              attn_bias=hfc.get("attention_bias", False), mlp_bias=hfc.get("mlp_bias", False),
              max_position_embeddings=hfc.get("max_position_embeddings", 2048))
    if rtype == "llama3":
        kw.update(rope_scaling="llama3", rope_factor=r["factor"],
                  rope_low_freq_factor=r["low_freq_factor"],
                  rope_high_freq_factor=r["high_freq_factor"],
                  rope_original_max_pos=r.get("original_max_position_embeddings",
                                              hfc.get("max_position_embeddings")))
    kw.update(routing)
    return HFConfig(**kw)
