#!/usr/bin/python3
"""hf_eval_case.py: an eval acceptance case for loading a Hugging Face model into routelab.

Writes
    OUT/model/          a real HF directory (config.json + model.safetensors or shards) with
                        random but realistic weights (hf_twin.init_weights), F32/BF16/F16
    OUT/data/           a routelab shard directory: train.bin, val.bin (llm.c format: 256
                        int32 header, [0] magic 20240520, [1] version 1 = uint16 ids or
                        2 = uint32 ids when vocab > 65536, [2] token count; then the ids)
                        and dataset.json {"tokenizer": "hf-test", "vocab_size", ...}
    OUT/expected.json   val_loss of routelab's eval protocol, computed by the twin
                        (tests/hf_twin.py) in float64 from the weights as stored (BF16/F16:
                        the rounded values), for `dense` and `oracle` with each --k
                        (topk_scope causal), plus the same in float32
The model is built from the files just written (hf_dir.read_weights + config_from_hf), so
the numbers are those of the directory a loader sees.

Eval protocol (routelab eval): windows = (n_val - 1) // T; window w has inputs
tokens[w*T : w*T+T] and targets tokens[w*T+1 : w*T+T+1], positions 0..T-1; val_loss =
sum of the NLL over all windows' positions / (windows * T).

Usage:
    /usr/bin/python3 tests/hf_eval_case.py --preset llama3_sharded --out /tmp/hf/llama3
    /usr/bin/python3 tests/hf_eval_case.py --all_presets /tmp/hf      # one dir per preset
    /usr/bin/python3 tests/hf_eval_case.py --preset qwen3_bf16 --out X --n_layer 3 --T 24
    /usr/bin/python3 tests/hf_eval_case.py --family llama --vocab 70000 --out X   # uint32 shards
    /usr/bin/python3 tests/hf_eval_case.py --preset gpt2_old --out X --model_only  # X/model only
Presets (any shape option below overrides the preset):
    llama3_sharded  Llama, rope_scaling llama3 (theta 5e5, factor 8, low 1, high 4, original
                    max pos 64: all three frequency bands occur with head_dim 16), GQA 4/2,
                    untied, F32 in 3 shards
    qwen3_bf16      Qwen3, BF16, tied, q/k norm, hidden 48 / 4 heads / head_dim 16, GQA 4/2
    qwen2_bias      Qwen2, q/k/v biases (o_proj none), GQA 4/2, untied, F32
    gpt2            GPT-2 (Conv1D, tied, gelu_new), modern names (no prefix, no buffers)
    gpt2_old        GPT-2 with the `transformer.` prefix and the h.{i}.attn.bias and
                    h.{i}.attn.masked_bias buffers of old checkpoints
    llama_vocab70k  Llama, vocab 70000 (uint32 shards, version 2), tied, BF16
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PRESETS = {
    "llama3_sharded": dict(family="llama", n_layer=2, hidden=64, n_head=4, n_kv_head=2,
                           intermediate=96, vocab=300, T=32, rope_theta=500000.0,
                           rope_scaling="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
                           rope_high_freq_factor=4.0, rope_original_max_pos=64,
                           max_position_embeddings=256, dtype="F32", shards=3, tie=False,
                           ln_eps=1e-5),
    "qwen3_bf16": dict(family="qwen3", n_layer=2, hidden=48, n_head=4, n_kv_head=2, head_dim=16,
                       intermediate=96, vocab=300, T=32, rope_theta=1000000.0, dtype="BF16",
                       shards=1, tie=True, ln_eps=1e-6),
    "qwen2_bias": dict(family="qwen2", n_layer=2, hidden=64, n_head=4, n_kv_head=2,
                       intermediate=96, vocab=300, T=32, rope_theta=1000000.0, dtype="F32",
                       shards=1, tie=False, ln_eps=1e-6),
    "gpt2": dict(family="gpt2", n_layer=2, hidden=64, n_head=4, intermediate=256, vocab=300,
                 T=32, dtype="F32", shards=1, ln_eps=1e-5),
    "gpt2_old": dict(family="gpt2", n_layer=2, hidden=64, n_head=4, intermediate=256, vocab=300,
                     T=32, dtype="F32", shards=1, ln_eps=1e-5, gpt2_prefix=True,
                     gpt2_buffers=True),
    "llama_vocab70k": dict(family="llama", n_layer=2, hidden=32, n_head=4, n_kv_head=2,
                           intermediate=64, vocab=70000, T=16, rope_theta=500000.0,
                           dtype="BF16", shards=1, tie=True, ln_eps=1e-5, val_windows=6),
}

DEFAULTS = dict(family="llama", n_layer=2, hidden=64, n_head=4, n_kv_head=None, head_dim=None,
                intermediate=None, vocab=300, T=32, rope_theta=10000.0, rope_scaling="none",
                rope_factor=8.0, rope_low_freq_factor=1.0, rope_high_freq_factor=4.0,
                rope_original_max_pos=8192, max_position_embeddings=2048, dtype="F32",
                shards=1, tie=False, attn_bias=False, mlp_bias=False, ln_eps=1e-6,
                gpt2_prefix=False, gpt2_buffers=False, rope_form="rope_scaling",
                val_windows=8, val_extra=5, train_tokens=None, seed=0, data_seed=None,
                init_std=0.02, qk_init_std=0.1, k=[4, 8])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--all_presets", metavar="DIR", help="write every preset into DIR/<preset>")
    p.add_argument("--out")
    p.add_argument("--twin", default=os.path.join(HERE, "..", "..", "shared", "ref", "pytorch"))
    p.add_argument("--no_fp32", action="store_true", help="skip the float32 numbers")
    p.add_argument("--model_only", action="store_true",
                   help="write only the HF directory OUT/model (no data, no expected.json)")
    # shape / content options: None = the preset's value (or the default)
    opt = p.add_argument_group("shape (override the preset)")
    opt.add_argument("--family", choices=["llama", "qwen2", "qwen3", "gpt2"])
    for name in ("n_layer", "hidden", "n_head", "n_kv_head", "head_dim", "intermediate",
                 "vocab", "T", "max_position_embeddings", "rope_original_max_pos", "shards",
                 "val_windows", "val_extra", "train_tokens", "seed", "data_seed"):
        opt.add_argument("--" + name, type=int)
    for name in ("rope_theta", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
                 "ln_eps", "init_std", "qk_init_std"):
        opt.add_argument("--" + name, type=float)
    opt.add_argument("--rope_scaling", choices=["none", "llama3"])
    opt.add_argument("--rope_form", choices=["rope_scaling", "rope_parameters"])
    opt.add_argument("--dtype", choices=["F32", "BF16", "F16"])
    opt.add_argument("--k", type=int, nargs="+", help="oracle k values (default 4 8)")
    for name in ("tie", "attn_bias", "mlp_bias", "gpt2_prefix", "gpt2_buffers"):
        opt.add_argument("--" + name, dest=name, action="store_true", default=None)
        opt.add_argument("--no_" + name, dest=name, action="store_false")
    a = p.parse_args(argv)
    if not a.all_presets and not a.out:
        p.error("give --out (or --all_presets DIR)")
    return a


def resolve(a, preset):
    o = dict(DEFAULTS)
    if preset:
        o.update(PRESETS[preset])
    for key in DEFAULTS:
        v = getattr(a, key, None)
        if v is not None:
            o[key] = v
    if o["data_seed"] is None:
        o["data_seed"] = o["seed"] + 1
    return o


def make_config(ht, o):
    kw = dict(family=o["family"], vocab_size=o["vocab"], seq_len=o["T"], n_layer=o["n_layer"],
              d_model=o["hidden"], n_head=o["n_head"], d_ff=o["intermediate"],
              ln_eps=o["ln_eps"], init_std=o["init_std"], qk_init_std=o["qk_init_std"],
              seed=o["seed"])
    if o["family"] != "gpt2":
        kw.update(n_kv_head=o["n_kv_head"], head_dim=o["head_dim"], rope_theta=o["rope_theta"],
                  rope_scaling=o["rope_scaling"], rope_factor=o["rope_factor"],
                  rope_low_freq_factor=o["rope_low_freq_factor"],
                  rope_high_freq_factor=o["rope_high_freq_factor"],
                  rope_original_max_pos=o["rope_original_max_pos"],
                  max_position_embeddings=o["max_position_embeddings"],
                  tie_embeddings=o["tie"], attn_bias=o["attn_bias"], mlp_bias=o["mlp_bias"])
    return ht.HFConfig(**kw)


def write_shard(path, tokens, vocab):
    """llm.c shard: version 1 (uint16) while every id fits, else version 2 (uint32)."""
    version = 1 if vocab <= 65536 else 2
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = 20240520, version, len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2" if version == 1 else "<u4").tobytes())
    return version


def eval_loss(torch, model, val, T, dtype, chunk):
    """routelab's eval: sum of NLL over windows * T positions, float64 accumulation."""
    W = (len(val) - 1) // T
    nll, correct = 0.0, 0
    model = model.to(dtype)
    with torch.no_grad():
        for w0 in range(0, W, chunk):
            ws = range(w0, min(W, w0 + chunk))
            x = torch.stack([torch.from_numpy(val[w * T:w * T + T].astype(np.int64)) for w in ws])
            y = torch.stack([torch.from_numpy(val[w * T + 1:w * T + T + 1].astype(np.int64)) for w in ws])
            logits, _ = model(x)
            lf = logits.reshape(-1, logits.size(-1))
            nll += torch.nn.functional.cross_entropy(lf, y.reshape(-1), reduction="sum").double().item()
            correct += int((lf.argmax(-1) == y.reshape(-1)).sum().item())
    return nll, correct, W


def oracle_margin(torch, ht, model, val, T, k, chunk):
    """Smallest relative gap between the k-th and (k+1)-th score over all oracle rows
    (gen_ref.row_gaps), from a float64 forward with records: how close a top-k is to a tie."""
    import gen_ref
    W = (len(val) - 1) // T
    worst = None
    with torch.no_grad():
        for w0 in range(0, W, chunk):
            ws = range(w0, min(W, w0 + chunk))
            x = torch.stack([torch.from_numpy(val[w * T:w * T + T].astype(np.int64)) for w in ws])
            model(x, record=True)
            for r in model.records():
                worst = gen_ref.minopt(worst, gen_ref.row_gaps(r["S"], k, "causal"))
    return worst


def write_case(out, o, preset, a, argv):
    import torch
    import hf_dir
    import hf_twin as ht
    torch.set_num_threads(1)
    cfg = make_config(ht, o)
    T, V = cfg.seq_len, cfg.vocab_size
    # --- model directory
    w = ht.init_weights(cfg)
    prefix = "transformer." if (cfg.family == "gpt2" and o["gpt2_prefix"]) else ""
    hf = ht.to_hf(cfg, w, prefix=prefix, attn_bias_buffer=cfg.family == "gpt2" and o["gpt2_buffers"])
    if cfg.family == "gpt2" and o["gpt2_buffers"]:       # old checkpoints: masked_bias scalar too
        withmb = []
        for n, t in hf:
            withmb.append((n, t))
            if n.endswith(".attn.bias"):
                withmb.append((n[:-len("bias")] + "masked_bias", torch.tensor(-1e4)))
        hf = withmb
    mdir = os.path.join(out, "model")
    files = hf_dir.write_hf_dir(mdir, cfg, hf, o["dtype"], o["shards"], o["rope_form"])
    if a.model_only:
        print("  wrote %s: %s" % (mdir, ", ".join(["config.json"] + files)))
        return None
    # --- data
    g = torch.Generator().manual_seed(o["data_seed"])
    n_val = o["val_windows"] * T + 1 + o["val_extra"]
    n_train = o["train_tokens"] or (4 * T + 1)
    val = torch.randint(0, V, (n_val,), generator=g).numpy()
    train = torch.randint(0, V, (n_train,), generator=g).numpy()
    ddir = os.path.join(out, "data")
    os.makedirs(ddir, exist_ok=True)
    version = write_shard(os.path.join(ddir, "val.bin"), val, V)
    write_shard(os.path.join(ddir, "train.bin"), train, V)
    with open(os.path.join(ddir, "dataset.json"), "w") as f:
        json.dump({"tokenizer": "hf-test", "vocab_size": V, "train_tokens": n_train,
                   "val_tokens": n_val, "sources": []}, f, indent=2)
        f.write("\n")
    # --- the twin, built from the files just written
    with open(os.path.join(mdir, "config.json")) as f:
        hfc = json.load(f)
    stored = hf_dir.read_weights(mdir)
    chunk = max(1, int(2e7 // (T * V)))                 # logits per chunk ~ 2e7 elements
    results = {}
    runs = [("dense", "dense", None)] + [("oracle_k%d" % k, "oracle", k) for k in o["k"]]
    for name, mode, k in runs:
        c = ht.config_from_hf(hfc, seq_len=T, modes=mode, k=k or 1, topk_scope="causal",
                              seed=o["seed"])
        rw = ht.from_hf(c, stored)                       # gates: unused by dense / oracle
        r = dict(mode=mode, k=k, topk_scope=None if k is None else "causal")
        nll, correct, W = eval_loss(torch, ht.HFTwin(c, rw), val, T, torch.float64, chunk)
        pos = W * T
        r.update(val_loss=nll / pos, nll_sum=nll, val_accuracy=correct / pos)
        if not a.no_fp32:
            nll32, _, _ = eval_loss(torch, ht.HFTwin(c, rw), val, T, torch.float32, chunk)
            r.update(val_loss_fp32=nll32 / pos, fp32_abs_diff=abs(nll32 / pos - nll / pos))
        if k is not None:
            r["topk_boundary_margin_rel"] = oracle_margin(torch, ht, ht.HFTwin(c, rw).double(),
                                                          val, T, k, chunk)
        results[name] = r
        print("  %-12s val_loss %.10f%s" % (name, r["val_loss"], "" if a.no_fp32 else
                                             "  (fp32 %.10f, diff %.2e)" % (r["val_loss_fp32"], r["fp32_abs_diff"])))
    expected = {
        "format": "routelab-hf-eval-case 1",
        "preset": preset,
        "family": cfg.family,
        "model_dir": "model",
        "data_dir": "data",
        "hf_dtype": o["dtype"],
        "hf_files": files,
        "rope_form": o["rope_form"],
        "gpt2_prefix": prefix,
        "gpt2_buffers": bool(cfg.family == "gpt2" and o["gpt2_buffers"]),
        "config": cfg.routelab_config(),
        "eval": {"seq_len": T, "val_tokens": int(n_val), "windows": (n_val - 1) // T,
                 "positions": ((n_val - 1) // T) * T, "shard_version": version,
                 "protocol": "windows = (n_val-1)//T; inputs tokens[w*T:w*T+T], targets "
                             "tokens[w*T+1:w*T+T+1]; val_loss = sum NLL / (windows*T)"},
        "results": results,
        "computed": "float64 twin (tests/hf_twin.py) from the stored weights (as rounded to "
                    "hf_dtype); *_fp32: the same in float32",
        "command": "tests/hf_eval_case.py " + " ".join(argv),
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    return expected


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    import gen_ref
    gen_ref.import_twin(a.twin)
    if a.all_presets:
        for preset in PRESETS:
            out = os.path.join(a.all_presets, preset)
            print("hf_eval_case: %s -> %s" % (preset, out))
            write_case(out, resolve(a, preset), preset, a, argv + ["(preset %s)" % preset])
        return
    o = resolve(a, a.preset)
    print("hf_eval_case: %s -> %s" % (a.preset or o["family"], a.out))
    write_case(a.out, o, a.preset, a, argv)


if __name__ == "__main__":
    main()
