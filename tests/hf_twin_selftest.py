#!/usr/bin/python3
"""hf_twin_selftest.py: checks of tests/hf_twin.py that need no `transformers` (< 30 s).

    /usr/bin/python3 tests/hf_twin_selftest.py [--twin DIR]

(a) gpt2 family (HF Conv1D layout, gelu_new, tied) == the shared twin's GPT with attention
    biases, tied head, tanh GELU: logits, loss and every gradient, in several routing modes;
(b) RoPE vs a complex-number rotation z_j = x_j + i x_{j+hd/2} times exp(i p inv_freq_j);
    RMSNorm vs the hand formula on python floats;
(c) a naive per-head loop model (query head h reads kv head h // (H / KV), complex RoPE,
    hand RMSNorm, explicit q_norm before the rotation) == HFTwin for llama (GQA, llama3
    rope, biases), qwen2 and qwen3 (head_dim != d / H);
(d) llama3 rope scaling vs a worked number following _compute_llama3_parameters;
(e) HF directory round trip: to_hf -> safetensors (F32, BF16 = torch's rounding, sharded)
    -> from_hf gives the same routelab weights; config.json -> config_from_hf -> same config;
(f) float32 vs float64 twin (what a float32 implementation can reach).
Prints the max abs differences; exits 1 if any check fails.
"""

import argparse
import math
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--twin", default=os.path.join(HERE, "..", "..", "shared", "ref", "pytorch"))
    a = p.parse_args()
    import gen_ref
    gen_ref.import_twin(a.twin)
    import torch
    import hf_dir
    import hf_twin as ht
    twin = ht.twin
    torch.set_num_threads(1)
    t0 = time.time()
    fails = []

    def check(label, diff, tol):
        ok = diff <= tol
        print("  %-62s max|diff| %.3e  (tol %.0e)  %s" % (label, diff, tol, "ok" if ok else "FAIL"))
        if not ok:
            fails.append(label)

    def maxdiff(a_, b_):
        return (a_.double() - b_.double()).abs().max().item()

    # ---------------------------------------------------------------- (a) gpt2 vs shared twin
    print("(a) gpt2 family vs the shared twin (attn_bias, tied, tanh GELU)")
    cfg = ht.HFConfig(family="gpt2", vocab_size=61, seq_len=12, n_layer=2, d_model=32, n_head=4,
                      d_ff=80, ln_eps=1e-5, d_g=8, k=4, seed=3, qk_init_std=0.1)
    w = ht.init_weights(cfg)
    idx = torch.randint(0, 61, (2, 12), generator=torch.Generator().manual_seed(5))
    tgt = torch.randint(0, 61, (2, 12), generator=torch.Generator().manual_seed(6))
    for mode, gg in (("dense", "none"), ("oracle", "none"), ("soft", "none"),
                     ("hard", "ste"), ("soft_prob", "none"), ("random_fixed", "none")):
        tc = twin.GPTConfig(vocab_size=61, seq_len=12, n_layer=2, n_head=4, d_model=32, d_ff=80,
                            attn_bias=True, tie_embeddings=True, gelu="tanh", ln_eps=1e-5,
                            d_g=8, k=4, modes=mode, gate_grad=gg)
        ref = twin.GPT(tc)
        with torch.no_grad():
            for n, prm in ref.named_parameters():
                prm.copy_(w[n])
        ref.double()
        cfg.modes, cfg.gate_grad = [mode] * 2, gg
        mine = ht.HFTwin(cfg, w).double()
        mine.set_modes(mode)
        l1, loss1 = ref(idx, tgt)
        l2, loss2 = mine(idx, tgt)
        loss1.backward()
        loss2.backward()
        g1 = {n: prm.grad for n, prm in ref.named_parameters()}
        mine_g = {}
        for n, prm in mine.named_parameters():
            mine_g[n] = prm.grad
        gd = 0.0
        for n, _ in ht.param_table(cfg):
            tgtn, tr = ht._module_name(cfg, n)
            gm = mine_g[tgtn]
            if g1[n] is None or gm is None:
                assert g1[n] is None and gm is None, n
                continue
            gd = max(gd, maxdiff(g1[n], gm.t() if tr else gm))
        check("gpt2 %-12s logits" % mode, maxdiff(l1, l2), 1e-12)
        check("gpt2 %-12s grads (all parameters)" % mode, gd, 1e-12)

    # ---------------------------------------------------------------- (b) rope, rmsnorm
    print("(b) RoPE vs complex rotation, RMSNorm vs hand formula")
    rc = ht.HFConfig(family="llama", d_model=64, n_head=4, rope_theta=10000.0)
    inv = ht.rope_inv_freq(rc)
    T, hd = 20, rc.head_dim
    x = torch.randn(1, 1, T, hd, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cos, sin = ht.rope_cos_sin(inv, T, torch.float64)
    mine = ht.apply_rope(x, cos, sin)[0, 0]
    z = torch.complex(x[0, 0, :, :hd // 2], x[0, 0, :, hd // 2:])
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv.double()[None]
    zr = z * torch.polar(torch.ones_like(ang), ang)
    check("rope (theta 1e4, hd 16, T 20) vs complex", maxdiff(mine, torch.cat([zr.real, zr.imag], -1)), 1e-13)
    cos32, sin32 = ht.rope_cos_sin(inv, T, torch.float32)
    check("rope cos: float32 angles (HF) vs float64 (twin fp64), info", maxdiff(cos32, cos), 1e-5)
    xr = torch.randn(3, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    wr = 1 + 0.1 * torch.randn(24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    hand = torch.tensor([[wr[j].item() * row[j] / math.sqrt(sum(v * v for v in row) / len(row) + 1e-6)
                          for j in range(24)] for row in xr.tolist()], dtype=torch.float64)
    check("rms_norm vs python-float formula (eps 1e-6)", maxdiff(ht.rms_norm(xr, wr, 1e-6), hand), 1e-14)
    x32 = xr.float()
    hf32 = wr.float() * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6))
    check("rms_norm float32 == LlamaRMSNorm float32 statement order", maxdiff(ht.rms_norm(x32, wr.float(), 1e-6), hf32), 0.0)

    # ---------------------------------------------------------------- (c) naive loop model
    print("(c) naive per-head loop model (explicit kv head h // rep) vs HFTwin")

    def hand_rms(v, wt, eps):
        return v / torch.sqrt((v * v).sum(-1, keepdim=True) / v.size(-1) + eps) * wt

    def crope(v, invf):                                   # (T, hd) complex rotation
        Tn, h2 = v.size(0), v.size(1) // 2
        zz = torch.complex(v[:, :h2], v[:, h2:])
        an = torch.arange(Tn, dtype=torch.float64)[:, None] * invf.double()[None]
        zz = zz * torch.polar(torch.ones_like(an), an)
        return torch.cat([zz.real, zz.imag], -1)

    def naive(c, wt, seq):
        wt = {n: t.double() for n, t in wt.items()}
        H, KV, hdn, Fd = c.n_head, c.n_kv_head, c.head_dim, c.d_ff
        invf = ht.rope_inv_freq(c)
        xx = wt["wte.weight"][seq]
        Tn = seq.numel()
        for l in range(c.n_layer):
            b = "blocks.%d." % l
            h = hand_rms(xx, wt[b + "ln1.weight"], c.ln_eps)
            Wq = wt[b + "attn.qkv.weight"]
            allp = h @ Wq.t() + (wt[b + "attn.qkv.bias"] if c.qkv_bias else 0)
            qa, ka, va = allp[:, :H * hdn], allp[:, H * hdn:(H + KV) * hdn], allp[:, (H + KV) * hdn:]
            outs = []
            for hq in range(H):
                j = hq // (H // KV)                      # the kv head serving query head hq
                q = qa[:, hq * hdn:(hq + 1) * hdn]
                k = ka[:, j * hdn:(j + 1) * hdn]
                v = va[:, j * hdn:(j + 1) * hdn]
                if c.qk_norm:
                    q = hand_rms(q, wt[b + "attn.q_norm.weight"], c.ln_eps)
                    k = hand_rms(k, wt[b + "attn.k_norm.weight"], c.ln_eps)
                q, k = crope(q, invf), crope(k, invf)
                Sx = q @ k.t() / math.sqrt(hdn)
                Sx = Sx.masked_fill(torch.ones(Tn, Tn).tril() == 0, float("-inf"))
                outs.append(torch.softmax(Sx, -1) @ v)
            y = torch.cat(outs, -1) @ wt[b + "attn.proj.weight"].t()
            xx = xx + y + (wt[b + "attn.proj.bias"] if c.o_bias else 0)
            h2 = hand_rms(xx, wt[b + "ln2.weight"], c.ln_eps)
            fc = h2 @ wt[b + "mlp.fc.weight"].t() + (wt[b + "mlp.fc.bias"] if c.mlp_bias else 0)
            g, u = fc[:, :Fd], fc[:, Fd:]
            xx = xx + (g * torch.sigmoid(g) * u) @ wt[b + "mlp.proj.weight"].t() + \
                (wt[b + "mlp.proj.bias"] if c.mlp_bias else 0)
        xx = hand_rms(xx, wt["ln_f.weight"], c.ln_eps)
        return xx @ (wt["wte.weight"] if c.tie_embeddings else wt["lm_head.weight"]).t()

    shapes = {
        "llama GQA 4/2, llama3 rope, attn+mlp bias, untied":
            dict(family="llama", d_model=48, n_head=4, n_kv_head=2, d_ff=72, rope_theta=500000.0,
                 rope_scaling="llama3", rope_original_max_pos=64, attn_bias=True, mlp_bias=True),
        "llama MHA (n_kv_head == n_head), tied":
            dict(family="llama", d_model=32, n_head=4, d_ff=48, tie_embeddings=True),
        "qwen2 GQA 6/2 (q/k/v bias, no o bias)":
            dict(family="qwen2", d_model=48, n_head=6, n_kv_head=2, d_ff=64, rope_theta=1e6),
        "qwen3 hd 16 != 48/4, GQA 4/2, q/k norm, tied, attn bias":
            dict(family="qwen3", d_model=48, n_head=4, n_kv_head=2, head_dim=16, d_ff=64,
                 tie_embeddings=True, attn_bias=True),
        "qwen3 MQA 4/1, hd 24":
            dict(family="qwen3", d_model=40, n_head=4, n_kv_head=1, head_dim=24, d_ff=56),
    }
    seq = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(9))
    for label, kw in shapes.items():
        c = ht.HFConfig(vocab_size=97, seq_len=16, n_layer=2, qk_init_std=0.15, seed=11, **kw)
        m = ht.HFTwin(c).double()
        with torch.no_grad():
            lg, _ = m(seq)
        d = max(maxdiff(lg[bi], naive(c, m.routelab_weights(), seq[bi])) for bi in range(2))
        check(label, d, 1e-12)
    # repeat_kv itself against the loop rule
    kv = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    rep = ht.repeat_kv(kv, 4)
    loop = torch.stack([kv[:, h // 4] for h in range(12)], 1)
    check("repeat_kv(x, 4)[:, h] == x[:, h // 4]", maxdiff(rep, loop), 0.0)

    # ---------------------------------------------------------------- (d) llama3 scaling
    print("(d) llama3 rope scaling: theta 5e5, head_dim 16, factor 8, low 1, high 4, orig 64")
    lc = ht.HFConfig(family="llama", d_model=64, n_head=4, rope_theta=500000.0,
                     rope_scaling="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
                     rope_high_freq_factor=4.0, rope_original_max_pos=64)
    got = ht.rope_inv_freq(lc)
    base = [500000.0 ** (-(2 * i) / 16) for i in range(8)]
    worked = []
    for f in base:
        wl = 2 * math.pi / f
        if wl < 64 / 4:                      # high frequency: kept
            worked.append(f)
        elif wl > 64 / 1:                    # low frequency: / factor
            worked.append(f / 8)
        else:                                # medium: smooth interpolation
            s = (64 / wl - 1) / (4 - 1)
            worked.append((1 - s) * f / 8 + s * f)
    i1 = base[1]
    s1 = (64 / (2 * math.pi / i1) - 1) / 3
    print("    i=1: inv_freq %.9g, wavelen %.6g in [16, 64] -> smooth %.9g -> %.9g (twin %.9g)"
          % (i1, 2 * math.pi / i1, s1, worked[1], got[1].item()))
    print("    i=0: %.9g kept (wavelen %.4g < 16); i=2: %.9g / 8 = %.9g (wavelen %.4g > 64)"
          % (base[0], 2 * math.pi / base[0], base[2], worked[2], 2 * math.pi / base[2]))
    rel = max(abs(g - wv) / wv for g, wv in zip(got.tolist(), worked))
    check("llama3 inv_freq (float32) vs worked float64 numbers, relative", rel, 2e-7)

    # ---------------------------------------------------------------- (e) HF directory
    print("(e) HF directory round trip")
    with tempfile.TemporaryDirectory() as tmp:
        for fam, dtype, shards, form, kw in (
                ("llama", "F32", 3, "rope_scaling", dict(n_kv_head=2, rope_scaling="llama3",
                                                         attn_bias=True, mlp_bias=True)),
                ("llama", "BF16", 1, "rope_parameters", dict(rope_scaling="llama3")),
                ("qwen3", "BF16", 2, "rope_scaling", dict(head_dim=16, n_kv_head=2, tie_embeddings=True)),
                ("qwen2", "F16", 1, "rope_scaling", dict(n_kv_head=2)),
                ("gpt2", "F32", 1, "rope_scaling", dict())):
            c = ht.HFConfig(family=fam, vocab_size=97, seq_len=16, n_layer=2, d_model=48,
                            n_head=4, d_ff=64, **kw)
            wt = ht.init_weights(c)
            dd = os.path.join(tmp, "%s_%s_%d" % (fam, dtype, shards))
            prefix = "transformer." if fam == "gpt2" else ""
            files = hf_dir.write_hf_dir(dd, c, ht.to_hf(c, wt, prefix=prefix, attn_bias_buffer=fam == "gpt2"),
                                        dtype, shards, form)
            back = ht.from_hf(c, hf_dir.read_weights(dd), gates=wt)
            want = ht.round_weights(c, wt, dtype)
            d = max(maxdiff(back[n], want[n]) for n in want)
            import json
            with open(os.path.join(dd, "config.json")) as f:
                c2 = ht.config_from_hf(json.load(f), d_g=c.d_g, seq_len=c.seq_len)
            same = c2.routelab_config() == c.routelab_config()
            check("%s %s %d file(s) %s: weights (config %s)" % (fam, dtype, len(files), form,
                                                              "same" if same else "DIFFERS"),
                  d if same else float("inf"), 0.0)
        bf = torch.randn(1000, generator=torch.Generator().manual_seed(4))
        hf_dir.write_safetensors(os.path.join(tmp, "x.safetensors"), [("x", bf)], "BF16")
        rd = hf_dir.read_safetensors(os.path.join(tmp, "x.safetensors"))["x"]
        check("BF16 bytes == torch .to(bfloat16) rounding", maxdiff(rd, bf.to(torch.bfloat16).float()), 0.0)

    # ---------------------------------------------------------------- (f) fp32 vs fp64
    print("(f) float32 vs float64 twin (information)")
    for fam, kw in (("llama", shapes["llama GQA 4/2, llama3 rope, attn+mlp bias, untied"]),
                    ("qwen3", shapes["qwen3 hd 16 != 48/4, GQA 4/2, q/k norm, tied, attn bias"])):
        c = ht.HFConfig(vocab_size=97, seq_len=16, n_layer=2, qk_init_std=0.15, seed=11, **kw)
        wt = ht.init_weights(c)
        m64, m32 = ht.HFTwin(c, wt).double(), ht.HFTwin(c, wt)
        with torch.no_grad():
            l64, s64 = m64(seq, seq)
            l32, s32 = m32(seq, seq)
        check("%s fp32 logits vs fp64" % fam, maxdiff(l32, l64), 1e-5)
        check("%s fp32 loss vs fp64" % fam, abs(s32.item() - s64.item()), 1e-5)

    # ---------------------------------------------------------------- (g) a refcheck set
    print("(g) gen_ref --family qwen3 (BF16, 2 shards): hf/ + weights/ gates reproduce the set")
    import contextlib
    import io
    import json
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set")
        with contextlib.redirect_stdout(io.StringIO()):
            gen_ref.main(["--family", "qwen3", "--out", out, "--n_layer", "2", "--d_model", "32",
                          "--n_head", "4", "--n_kv_head", "2", "--head_dim", "12", "--d_ff", "48",
                          "--seq_len", "12", "--vocab_size", "41", "--k", "3", "--d_g", "8",
                          "--hf_dtype", "BF16", "--hf_shards", "2", "--no_fp32"])
        with open(os.path.join(out, "index.json")) as f:
            index = json.load(f)
        with open(os.path.join(out, index["hf_dir"], "config.json")) as f:
            c = ht.config_from_hf(json.load(f), seq_len=index["config"]["seq_len"],
                                  d_g=index["config"]["d_g"])

        def load(e):
            arr = np.fromfile(os.path.join(out, e["file"]), dtype="<f4" if e["dtype"] == "float32" else "<i4")
            return torch.from_numpy(arr.reshape(e["shape"]).copy())

        gates = {e["name"]: load(e) for e in index["params"]}
        wt = ht.from_hf(c, hf_dir.read_weights(os.path.join(out, index["hf_dir"])), gates=gates)
        check("hf/ (+ gates of weights/) == weights/ (bf16-rounded)",
              max(maxdiff(wt[n], gates[n]) for n in gates), 0.0)
        m = ht.HFTwin(c, wt).double()
        with torch.no_grad():
            lg, loss = m(load(index["inputs"]).long(), load(index["targets"]).long())
        case = index["cases"]["dense"]
        check("dense loss from hf/ vs index.json", abs(loss.item() - case["loss"]), 1e-12)
        check("dense logits from hf/ vs logits.f32 (float32 storage)",
              maxdiff(lg.float(), load(case["logits"])), 1e-6)

    print("hf_twin_selftest: %d checks failed (%.1fs)" % (len(fails), time.time() - t0))
    if fails:
        print("FAILED: " + "; ".join(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
