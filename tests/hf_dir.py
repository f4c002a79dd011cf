#!/usr/bin/python3
"""hf_dir.py: read and write Hugging Face model directories (config.json + safetensors).

A small safetensors writer/reader of our own (no `safetensors` package here) and the
config.json layouts of the four HF families routelab loads.  The safetensors format:

    u64 little-endian N, then N bytes of JSON header
        {name: {"dtype": "F32"|"BF16"|"F16", "shape": [...], "data_offsets": [begin, end]},
         "__metadata__": {"format": "pt"}}
    then the raw little-endian tensor data; offsets are relative to the end of the header.

The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
Sharded checkpoints: model-0000i-of-0000N.safetensors + model.safetensors.index.json
({"metadata": {"total_size": bytes of tensor data}, "weight_map": {name: file}}), the
layout PreTrainedModel.save_pretrained writes.
"""

import json
import os
import struct

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
TORCH_DTYPE_NAME = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
ELEM = {"F32": 4, "BF16": 2, "F16": 2}


def round_to(t: torch.Tensor, dtype: str) -> torch.Tensor:
    """float32 copy of t as stored in dtype (BF16: round-to-nearest-even, torch's .to())."""
    return t.detach().to(torch.float32).to(DTYPES[dtype]).to(torch.float32)


def _raw(t: torch.Tensor, dtype: str) -> bytes:
    x = t.detach().to(torch.float32).to(DTYPES[dtype]).contiguous()
    if dtype == "F32":
        return x.numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return x.numpy().astype("<f2").tobytes()
    return x.view(torch.int16).numpy().astype("<i2").tobytes()   # BF16: the top 16 bits


def write_safetensors(path: str, tensors, dtype: str, metadata=None):
    """tensors: list of (name, tensor); every tensor is stored in dtype."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        raw = _raw(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path: str):
    """{name: float32 tensor}, in file order (F32, F16, BF16 only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = bytearray(data[b:end])
        if e["dtype"] == "F32":
            t = torch.frombuffer(buf, dtype=torch.float32) if len(buf) else torch.zeros(0)
        elif e["dtype"] == "F16":
            t = torch.frombuffer(buf, dtype=torch.float16).float()
        elif e["dtype"] == "BF16":
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16).float()
        else:
            raise ValueError("%s: dtype %s not supported" % (name, e["dtype"]))
        out[name] = t.reshape(e["shape"]).clone()
    return out


def write_weights(dirpath: str, tensors, dtype: str, shards: int = 1):
    """model.safetensors, or `shards` files + model.safetensors.index.json.  Tensors are
    split into contiguous groups of about equal byte size, in the given order."""
    os.makedirs(dirpath, exist_ok=True)
    if shards <= 1:
        write_safetensors(os.path.join(dirpath, "model.safetensors"), tensors, dtype)
        return ["model.safetensors"]
    sizes = [t.numel() * ELEM[dtype] for _, t in tensors]
    total = sum(sizes)
    shards = min(shards, len(tensors))
    # tensor i goes to the shard its starting byte falls in (contiguous, about equal sizes)
    groups = [[] for _ in range(shards)]
    acc = 0
    for (name, t), s in zip(tensors, sizes):
        groups[min(shards - 1, acc * shards // total)].append((name, t))
        acc += s
    groups = [g for g in groups if g]
    while len(groups) < shards:                 # a huge tensor swallowed a share: split a group
        i = max(range(len(groups)), key=lambda j: len(groups[j]))
        g = groups.pop(i)
        groups[i:i] = [g[:len(g) // 2], g[len(g) // 2:]]
    n = len(groups)
    files, wmap = [], {}
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        write_safetensors(os.path.join(dirpath, fn), g, dtype)
        files.append(fn)
        for name, _ in g:
            wmap[name] = fn
    index = {"metadata": {"total_size": total}, "weight_map": wmap}
    with open(os.path.join(dirpath, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files


def read_weights(dirpath: str):
    """{name: float32 tensor} of a single-file or sharded HF directory."""
    idx = os.path.join(dirpath, "model.safetensors.index.json")
    if os.path.isfile(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(dirpath, fn)))
    return out


# ----------------------------------------------------------------------------- config.json

def hf_config(cfg, dtype: str = "F32", rope_form: str = "rope_scaling") -> dict:
    """config.json for an hf_twin.HFConfig, with the field names of the HF configuration_*.py
    files.  rope_form "rope_scaling": top-level rope_theta + rope_scaling {"rope_type": ...}
    (transformers <= 4.5x); "rope_parameters": the newer single dict
    {"rope_type", "rope_theta", ...} (RotaryEmbeddingConfigMixin.standardize_rope_params),
    with "dtype" beside the legacy "torch_dtype"."""
    tdt = TORCH_DTYPE_NAME[dtype]
    if cfg.family == "gpt2":                    # configuration_gpt2.GPT2Config
        return {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.seq_len, "n_ctx": cfg.seq_len,
            "n_embd": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": None if cfg.d_ff == 4 * cfg.d_model else cfg.d_ff,
            "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
            "attn_pdrop": 0.1, "layer_norm_epsilon": cfg.ln_eps, "initializer_range": 0.02,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False, "tie_word_embeddings": True,
            "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": tdt,
        }
    arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM"}[cfg.family]
    c = {"architectures": [arch], "model_type": cfg.family,
         "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
         "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layer,
         "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head}
    if cfg.family != "qwen2" or cfg.head_dim != cfg.d_model // cfg.n_head:
        c["head_dim"] = cfg.head_dim            # Qwen2Config has no head_dim field by default
    c.update({"hidden_act": "silu", "max_position_embeddings": cfg.max_position_embeddings,
              "rms_norm_eps": cfg.ln_eps, "initializer_range": 0.02, "use_cache": True,
              "tie_word_embeddings": bool(cfg.tie_embeddings), "attention_dropout": 0.0,
              "bos_token_id": 1, "eos_token_id": 2})
    if cfg.family == "llama":
        c.update({"attention_bias": bool(cfg.attn_bias), "mlp_bias": bool(cfg.mlp_bias),
                  "pretraining_tp": 1})
    elif cfg.family == "qwen3":
        c.update({"attention_bias": bool(cfg.attn_bias), "use_sliding_window": False,
                  "sliding_window": None, "max_window_layers": cfg.n_layer})
    else:
        c.update({"use_sliding_window": False, "sliding_window": None,
                  "max_window_layers": cfg.n_layer})
    scaling = None
    if cfg.rope_scaling == "llama3":
        scaling = {"rope_type": "llama3", "factor": cfg.rope_factor,
                   "low_freq_factor": cfg.rope_low_freq_factor,
                   "high_freq_factor": cfg.rope_high_freq_factor,
                   "original_max_position_embeddings": cfg.rope_original_max_pos}
    if rope_form == "rope_parameters":
        rp = {"rope_type": "default", "rope_theta": cfg.rope_theta}
        if scaling:
            rp = dict({"rope_theta": cfg.rope_theta}, **scaling)
        c["rope_parameters"] = rp
        c["dtype"] = tdt
    else:
        assert rope_form == "rope_scaling", rope_form
        c["rope_theta"] = cfg.rope_theta
        c["rope_scaling"] = scaling
    c["torch_dtype"] = tdt
    c["transformers_version"] = "4.51.3" if rope_form == "rope_scaling" else "4.57.0"
    return c


def write_hf_dir(dirpath: str, cfg, hf_tensors, dtype: str = "F32", shards: int = 1,
                 rope_form: str = "rope_scaling"):
    """DIR/config.json + safetensors; hf_tensors: list of (HF name, tensor)."""
    os.makedirs(dirpath, exist_ok=True)
    with open(os.path.join(dirpath, "config.json"), "w") as f:
        json.dump(hf_config(cfg, dtype, rope_form), f, indent=2)
        f.write("\n")
    return write_weights(dirpath, hf_tensors, dtype, shards)
