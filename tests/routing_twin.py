"""routing_twin.py: the routing modes routelab has beyond the shared twin's eight, written as an
extension of ../shared/ref/pytorch/model.py (imported by the caller, never copied).

Block selection (NSA's selection branch, MoBA): keys in blocks of `block_size` positions; query
i scores each block by the max of X (the gate scores G for `block`, the attention scores S for
`block_oracle`) over the block's visible keys j <= i, keeps the top `k_blocks` blocks, plus the
`block_window` most recent keys, and attends over the kept keys in one causal softmax.

A block layer runs as the twin's own `hard` (block) or `oracle` (block_oracle) layer with only the
keep mask replaced: the softmax over kept keys, the straight-through gate (`gate_grad = ste`:
STEGate, the same formula as hard mode), the records and the diagnostics are the twin's.

Expert-choice heads (MoSA, Piekos et al. 2025): head h routes tokens with the router logit
r_t = (h_t W_gk)[h d_g], the first column of the head's gate keys (a linear router; gq and the
other gate columns are unused). The head picks the k tokens with the largest r (ties: the lower
position), they attend among themselves causally by original position, and the head's output at
a picked token i is scaled by sigmoid(r_i / tau): W = softmax(S | keep) * sigmoid(r_i / tau), the
router's only gradient path. Unpicked tokens get no output from the head.
  expert_choice         picks over the whole sequence (not causal: the pick of i depends on later
                        tokens' routers);
  expert_choice_causal  query i picks the top k of r over 0..i, is active iff it is among them,
                        and keeps exactly those keys.
gate_grad = ste_dense (routelab's bounded straight-through estimator): the twin's STEGate with the
log-normaliser taken over every visible key instead of the kept ones, dL/dM_ij = P_ij (dW_ij -
sum_j' W_ij' dW_ij') with P the dense softmax (rows with no kept key: 0, as STEGate). A hard or
block layer runs the twin's own forward with STEGate swapped for STEDense during the call.

An expert-choice layer is built as the twin's soft_prob layer (the gate tensors and their kinds,
learned or frozen random) with its forward replaced; its record holds the bilinear gate scores G
(under no_grad, for the diagnostics, as in dense mode) and the keep mask.
"""
import math
import types

import torch
import torch.nn.functional as F

import sys

BLOCK_MODES = ("block", "block_oracle")
EC_MODES = ("expert_choice", "expert_choice_causal")
TWIN_MODE = {"block": "hard", "block_oracle": "oracle", "expert_choice": "soft_prob",
             "expert_choice_causal": "soft_prob"}


def twin_modes(modes):
    """The twin's mode per layer: a block mode runs as hard / oracle with its mask replaced."""
    return [TWIN_MODE.get(m, m) for m in modes]


def block_scores(X, block_size):
    """(..., T, nb) max of X over each block's visible keys (-inf for a block with none).
    NaN propagates (torch.amax), so a NaN score is never routed around."""
    T = X.size(-1)
    nb = math.ceil(T / block_size)
    vis = torch.ones(T, T, dtype=torch.bool, device=X.device).tril()
    Xm = X.detach().masked_fill(~vis, float("-inf"))
    pad = nb * block_size - T
    if pad:
        Xm = torch.nn.functional.pad(Xm, (0, pad), value=float("-inf"))
    return Xm.view(*Xm.shape[:-1], nb, block_size).amax(-1)


def block_keep(X, block_size, k_blocks, window):
    """Bool keep (..., T, T), & causal: the top-k_blocks blocks of each row plus the window."""
    T = X.size(-1)
    sc = block_scores(X, block_size)
    nb = sc.size(-1)
    idx = sc.topk(min(k_blocks, nb), dim=-1).indices
    chosen = torch.zeros(sc.shape, dtype=torch.bool, device=X.device).scatter_(-1, idx, True)
    keep = chosen.repeat_interleave(block_size, dim=-1)[..., :T]
    i = torch.arange(T, device=X.device).view(T, 1)
    j = torch.arange(T, device=X.device).view(1, T)
    vis = j <= i
    return (keep | (j >= i - window + 1)) & vis


def block_gaps(X, block_size, k_blocks):
    """Relative gap between the k_blocks-th and next block score of every row with more visible
    blocks than k_blocks (None if no row has), relative to the largest visible |X|."""
    T = X.size(-1)
    sc = block_scores(X.double(), block_size)
    nb = sc.size(-1)
    rows = torch.arange(T) // block_size + 1 > k_blocks
    if not rows.any() or k_blocks >= nb:
        return None
    vis = torch.ones(T, T, dtype=torch.bool).tril()
    scale = X.detach().double().masked_select(vis.expand(X.shape)).abs().max().item()
    top = sc.topk(k_blocks + 1, dim=-1).values
    gap = (top[..., k_blocks - 1] - top[..., k_blocks])[..., rows]
    return 0.0 if scale == 0.0 else gap.min().item() / scale


def token_keep(r, k, prefix):
    """Bool keep (..., T, T) of expert-choice heads from router logits r (..., T).
    rank_before[j', j]: r_j' ranks before r_j (larger, or equal at a lower position); the count of
    tokens j' <= i ranking before j decides whether j is among the top k of the prefix 0..i."""
    T = r.size(-1)
    pos = torch.arange(T, device=r.device)
    rj2, rj = r.unsqueeze(-1), r.unsqueeze(-2)                  # (..., T(j'), 1), (..., 1, T(j))
    before = (rj2 > rj) | ((rj2 == rj) & (pos.view(T, 1) < pos.view(1, T)))
    count = before.to(torch.int64).cumsum(dim=-2)               # (..., T(i), T(j)): j' <= i
    vis = pos.view(1, T) <= pos.view(T, 1)
    if prefix:
        picked = (count < k) & vis                              # j in the top k of 0..i
        active = picked.diagonal(dim1=-2, dim2=-1).unsqueeze(-1)  # query i picked by its prefix
        return picked & active
    chosen = count[..., T - 1, :] < k                           # (..., T) top k of the row
    return chosen.unsqueeze(-1) & chosen.unsqueeze(-2) & vis


def token_gaps(r, k, prefix):
    """Relative gap between the k-th and (k+1)-th router logit of every ranked set (the whole
    row, or each prefix 0..i with more than k tokens); None if none has, relative to max |r|."""
    r = r.detach().double()
    T = r.size(-1)
    scale = r.abs().max().item()
    ends = range(k, T) if prefix else ([T - 1] if T > k else [])
    gaps = []
    for i in ends:
        top = r[..., : i + 1].topk(k + 1, dim=-1).values
        gaps.append((top[..., k - 1] - top[..., k]).min().item())
    if not gaps:
        return None
    return 0.0 if scale == 0.0 else min(gaps) / scale


def router_logits(attn, h):
    """(B, H, T) r_t of every head: the first of its d_g gate-key columns."""
    B, T, _ = h.shape
    return attn.gate_k(h).view(B, T, attn.n_head, attn.d_g)[..., 0].transpose(1, 2)


def _ec_forward(self, h, record=False):
    twin = sys.modules[type(self).__module__]
    cfg = self.cfg
    B, T, d = h.shape
    H, hd = self.n_head, self.hd
    q, k, v = self.qkv(h).split(d, dim=2)
    q = q.view(B, T, H, hd).transpose(1, 2)
    k = k.view(B, T, H, hd).transpose(1, 2)
    v = v.view(B, T, H, hd).transpose(1, 2)
    S = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
    vis = twin.causal_visible(T, h.device)
    r = router_logits(self, h)
    keep = token_keep(r.detach(), cfg.k, self.routelab_mode == "expert_choice_causal")
    if self.mask_log is not None:
        self.mask_log.append(keep.detach().clone())
    W = F.softmax(S.masked_fill(~vis, twin.NEG_INF).masked_fill(~keep, twin.NEG_INF), dim=-1)
    W = torch.nan_to_num(W, nan=0.0) * torch.sigmoid(r / cfg.tau).unsqueeze(-1)
    if record:
        with torch.no_grad():
            G = self.gate_scores(h)
        self.rec = dict(S=S.detach(), G=G.detach(), G_live=None, W=W.detach(),
                        keep=keep.detach(), router=r.detach())
    y = (self.attn_drop(W) @ v).transpose(1, 2).contiguous().view(B, T, d)
    return self.proj(y)


def ste_dense_class(twin):
    class STEDense(twin.STEGate):
        """twin.STEGate with Z over every visible key: exp(S - log Z) is the dense weight P."""

        @staticmethod
        def backward(ctx, dW):
            W, S, keep, vis = ctx.saved_tensors
            rowdot = (dW * W).sum(-1, keepdim=True)
            logZ = S.masked_fill(~vis, twin.NEG_INF).logsumexp(-1, keepdim=True)
            nonempty = keep.any(-1, keepdim=True)
            logZ = torch.where(nonempty, logZ, torch.zeros_like(logZ))
            dM = (torch.exp(S - logZ) * (dW - rowdot)).masked_fill(~(vis & nonempty), 0.0)
            return dW, None, None, None, dM
    return STEDense


def _with_dense_ste(forward, twin, cls):
    def run(h, record=False):
        saved = twin.STEGate
        twin.STEGate = cls           # looked up by the twin's forward at call time
        try:
            return forward(h, record=record)
        finally:
            twin.STEGate = saved
    return run


def install(model, modes, block_size, k_blocks, window, ste_dense=False):
    """Turns the layers whose routelab mode is a block mode into block layers (the model was
    built with twin_modes(modes)). Each such attention gets routelab_mode and the block keys.
    ste_dense: the model was built with gate_grad "ste"; its hard and block layers use STEDense."""
    twin = sys.modules[type(model).__module__]
    dense_cls = ste_dense_class(twin) if ste_dense else None
    for l, b in enumerate(model.blocks):
        attn = b.attn
        if ste_dense and attn.mode == "hard":
            attn.forward = _with_dense_ste(attn.forward, twin, dense_cls)
        attn.routelab_mode = modes[l]
        if modes[l] in EC_MODES:
            assert attn.mode == TWIN_MODE[modes[l]], (l, attn.mode, modes[l])
            attn.forward = types.MethodType(_ec_forward, attn)
            continue
        if modes[l] not in BLOCK_MODES:
            continue
        assert attn.mode == TWIN_MODE[modes[l]], (l, attn.mode, modes[l])
        attn.block_size, attn.k_blocks, attn.block_window = block_size, k_blocks, window

        def _mask(self, S, G, B, T):
            X = G if self.routelab_mode == "block" else S
            keep = block_keep(X, self.block_size, self.k_blocks, self.block_window)
            if self.mask_log is not None:
                self.mask_log.append(keep.detach().clone())
            return keep

        attn._mask = types.MethodType(_mask, attn)
    return model
