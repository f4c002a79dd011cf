"""routing_twin.py: the routing modes routelab has beyond the shared twin's eight, written as an
extension of ../shared/ref/pytorch/model.py (imported by the caller, never copied).

Block selection (NSA's selection branch, MoBA): keys in blocks of `block_size` positions; query
i scores each block by the max of X (the gate scores G for `block`, the attention scores S for
`block_oracle`) over the block's visible keys j <= i, keeps the top `k_blocks` blocks, plus the
`block_window` most recent keys, and attends over the kept keys in one causal softmax.

A block layer runs as the twin's own `hard` (block) or `oracle` (block_oracle) layer with only the
keep mask replaced: the softmax over kept keys, the straight-through gate (`gate_grad = ste`:
STEGate, the same formula as hard mode), the records and the diagnostics are the twin's.
"""
import math
import types

import torch

BLOCK_MODES = ("block", "block_oracle")
TWIN_MODE = {"block": "hard", "block_oracle": "oracle"}


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


def install(model, modes, block_size, k_blocks, window):
    """Turns the layers whose routelab mode is a block mode into block layers (the model was
    built with twin_modes(modes)). Each such attention gets routelab_mode and the block keys."""
    for l, b in enumerate(model.blocks):
        attn = b.attn
        attn.routelab_mode = modes[l]
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
