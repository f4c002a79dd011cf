#!/usr/bin/python3
"""hf_eval.py: evaluation speed, load time and peak memory of a Hugging Face model in routelab,
against the PyTorch twin of the Hugging Face semantics (tests/hf_twin.py) on the same cores.

By default the model is Qwen3-0.6B-shaped with random BF16 weights (28 layers, hidden 1024,
16 heads, 8 K/V heads, head_dim 128, intermediate 3072, vocab 151,936, tied), written once into
--work by tests/hf_eval_case.py; --model=DIR takes any Llama/Qwen/GPT-2 directory instead.
Both sides score the same random token windows (B x T), routelab through `routelab eval`
(its eval_seconds: forward, loss and the diagnostics of the first batch), the twin in float32
under torch.no_grad(). Then two training rows, each a median step time of --steps steps:
gate distillation (KL, d_g 32, every layer's gates; routelab `distill`, the twin's
distill_loss + AdamW on the gates) and single-layer fine-tuning (block L = n_layer/2's q/k/v/o
and q/k norms with soft gates on every layer: routelab `train --init=DIR --train=attn:L`,
the twin with requires_grad on the same tensors). Peak RSS of each routelab process
(getrusage of the children) and of the twin's process. Prints one JSON line per measurement
and a summary with medians.

    /usr/bin/python3 bench/hf_eval.py [--threads 2] [--T 512] [--windows 4] [--reps 3]
"""
import argparse, json, os, resource, struct, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def write_shards(d, tokens, vocab):
    os.makedirs(d, exist_ok=True)
    version = 1 if vocab <= 65536 else 2
    for name in ("train.bin", "val.bin"):
        hdr = [20240520, version, len(tokens)] + [0] * 253
        fmt = "<%d%s" % (len(tokens), "H" if version == 1 else "I")
        with open(os.path.join(d, name), "wb") as f:
            f.write(struct.pack("<256i", *hdr) + struct.pack(fmt, *tokens))
    with open(os.path.join(d, "dataset.json"), "w") as f:
        json.dump({"tokenizer": "random", "vocab_size": vocab, "train_tokens": len(tokens),
                   "val_tokens": len(tokens), "sources": []}, f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench-hf"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--T", type=int, default=512)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--routelab", default=os.path.join(ROOT, "routelab"))
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    import hf_dir, hf_twin as ht

    mdir = a.model or os.path.join(a.work, "qwen3-0.6b-shaped", "model")
    if not a.model and not os.path.isfile(os.path.join(mdir, "config.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "hf_eval_case.py"), "--family", "qwen3",
                        "--n_layer", "28", "--hidden", "1024", "--n_head", "16", "--n_kv_head", "8",
                        "--head_dim", "128", "--intermediate", "3072", "--vocab", "151936",
                        "--T", str(a.T), "--dtype", "BF16", "--tie", "--model_only",
                        "--out", os.path.dirname(mdir)], check=True, stdout=subprocess.DEVNULL)
    hfc = json.load(open(os.path.join(mdir, "config.json")))
    g = torch.Generator().manual_seed(0)
    n_tok = a.windows * a.T + 1
    tokens = torch.randint(0, hfc["vocab_size"], (n_tok,), generator=g).tolist()
    ddir = os.path.join(a.work, "data-%d" % hfc["vocab_size"])
    write_shards(ddir, tokens, hfc["vocab_size"])

    # routelab: one process per repetition (load + evaluation)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    rl = []
    for r in range(a.reps):
        t0 = time.time()
        out = subprocess.run([a.routelab, "eval", "--ckpt=" + mdir, "--data=" + ddir, "--seq_len=%d" % a.T,
                              "--batch=%d" % a.batch, "--eval_batches=0", "--threads=%d" % a.threads,
                              "--json"], env=env, check=True, capture_output=True, text=True).stdout
        wall = time.time() - t0
        j = json.loads(out.strip().splitlines()[-1])
        rl.append(dict(wall=wall, eval=j["eval_seconds"], load=wall - j["eval_seconds"],
                       tok_s=a.windows * a.T / j["eval_seconds"], loss=j["val_loss"]))
        print(json.dumps(dict(side="routelab", rep=r, **rl[-1])))

    # routelab's training rows (before the twin: a child's peak RSS starts at its parent's)
    med = lambda v: sorted(v)[len(v) // 2]
    L = hfc.get("num_hidden_layers", hfc.get("n_layer")) // 2
    out = subprocess.run([a.routelab, "distill", "--from=" + mdir, "--data=" + ddir, "--seq_len=%d" % a.T,
                          "--batch=%d" % a.batch, "--steps=%d" % a.steps, "--loss=kl", "--d_g=32",
                          "--eval_batches=1", "--threads=%d" % a.threads, "--log_every=0",
                          "--out=" + os.path.join(a.work, "distill"), "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    rl_distill = json.loads(out.strip().splitlines()[-1])["step_seconds_median"]
    run = os.path.join(a.work, "single")
    subprocess.run([a.routelab, "train", "--init=" + mdir, "--data=" + ddir, "--seq_len=%d" % a.T,
                    "--batch=%d" % a.batch, "--steps=%d" % a.steps, "--train=attn:%d" % L,
                    "--attn=soft", "--d_g=32", "--lr=1e-4", "--weight_decay=0.01", "--warmup=0",
                    "--eval_every=0", "--eval_batches=1", "--log_every=1", "--ckpt_every=0",
                    "--threads=%d" % a.threads, "--out=" + run], env=env, check=True,
                   capture_output=True, text=True)
    steps = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"loss"' in l]
    rl_single = med([a.batch * a.T / st["tokens_per_s"] for st in steps])
    print(json.dumps(dict(side="routelab", distill_step_s=rl_distill, single_layer_step_s=rl_single)))
    rl_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    # the twin, float32 (one process: its peak RSS is the largest of its rows)
    t0 = time.time()
    c = ht.config_from_hf(hfc, seq_len=a.T, modes="dense", d_g=32, k=64)
    weights = ht.from_hf(c, hf_dir.read_weights(mdir))
    model = ht.HFTwin(c, weights).float().eval()
    twin_load = time.time() - t0
    x = torch.tensor(tokens[:-1]).view(a.windows, a.T)
    y = torch.tensor(tokens[1:]).view(a.windows, a.T)
    tw = []
    with torch.no_grad():
        for r in range(a.reps):
            t0 = time.time()
            nll = 0.0
            for w0 in range(0, a.windows, a.batch):
                _, loss = model(x[w0:w0 + a.batch], y[w0:w0 + a.batch])
                nll += float(loss) * x[w0:w0 + a.batch].numel()
            dt = time.time() - t0
            tw.append(dict(eval=dt, tok_s=a.windows * a.T / dt, loss=nll / x.numel()))
            print(json.dumps(dict(side="twin", rep=r, **tw[-1])))

    def twin_steps(params, step_loss):
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        times = []
        for s in range(a.steps):
            t0 = time.time()
            opt.zero_grad()
            loss = step_loss(x[s % a.windows:s % a.windows + a.batch], y[s % a.windows:s % a.windows + a.batch])
            loss.backward()
            opt.step()
            times.append(time.time() - t0)
        return med(times)

    med = lambda v: sorted(v)[len(v) // 2]
    model.set_trainable("gates")
    twin_distill = twin_steps([p for p in model.parameters() if p.requires_grad],
                              lambda xb, yb: ht.twin.distill_loss(model, xb, "distill_kl")[0])
    L = hfc.get("num_hidden_layers", hfc.get("n_layer")) // 2
    model = ht.HFTwin(ht.config_from_hf(hfc, seq_len=a.T, modes="soft", d_g=32), weights).float()
    names = [n for n, _ in model.named_parameters()
             if n.startswith("blocks.%d.attn." % L) and "gate" not in n] + \
            [n for n, _ in model.named_parameters() if n.startswith("blocks.%d.attn.gate" % L)]
    model.set_trainable(names)
    twin_single = twin_steps([p for p in model.parameters() if p.requires_grad],
                             lambda xb, yb: model(xb, yb)[1])
    twin_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(side="twin", distill_step_s=twin_distill, single_layer_step_s=twin_single,
                          trainable=len(names))))


    s = dict(model=mdir, threads=a.threads, T=a.T, windows=a.windows, batch=a.batch,
             routelab_tok_s=med([r["tok_s"] for r in rl]), twin_tok_s=med([r["tok_s"] for r in tw]),
             routelab_load_s=med([r["load"] for r in rl]), twin_load_s=twin_load,
             routelab_peak_rss_gib=rl_rss / 2**30, twin_peak_rss_gib=twin_rss / 2**30,
             routelab_loss=rl[0]["loss"], twin_loss=tw[0]["loss"],
             routelab_distill_step_s=rl_distill, twin_distill_step_s=twin_distill,
             routelab_single_layer_step_s=rl_single, twin_single_layer_step_s=twin_single)
    s["eval_speedup"] = s["routelab_tok_s"] / s["twin_tok_s"]
    s["distill_speedup"] = twin_distill / rl_distill
    s["single_layer_speedup"] = twin_single / rl_single
    print(json.dumps(s))


if __name__ == "__main__":
    main()
