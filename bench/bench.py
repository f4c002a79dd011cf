#!/usr/bin/env python3
"""make bench: routelab against its PyTorch twin (../shared/bench/pytorch_peer.py), same config,
same thread count, in turns A B A B after warm-up, the peer in its best setting
(OMP_WAIT_POLICY=PASSIVE, set by the peer itself). Prints tokens/s of each, the ratio, the
model FLOP rate as a share of the sgemm ceiling measured in the same run, peak memory, and
routelab's per-operation breakdown; writes bench/results.json.

    /usr/bin/python3 bench/bench.py [--quick] [--precisions fp32,bf16] [--repeats 2] [--steps 5]

Each row runs in turns: routelab in every precision asked for, then the peer (fp32, its best),
repeated; the ratio of each precision is against the peer's median of the same row.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "..", "shared", "bench", "pytorch_peer.py")

ROWS_FULL = ([("paper", m, 4) for m in ("dense", "soft", "hard", "oracle")] +
             [("paper", m, 16) for m in ("dense", "soft", "hard", "oracle")] +
             [("small", m, 8) for m in ("dense", "oracle", "soft", "soft_prob", "hard",
                                        "stochastic", "random_fixed", "window")])
ROWS_QUICK = [("paper", "dense", 4)]


def run_json(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# Structural modes against routelab's own dense step (the peer has no block mode): the small
# preset (T 256), blocks of 16 keys, 2 kept, a window of 16. routelab computes every score and
# masks, so a mode can only cost more than dense; a block-sparse kernel would skip the attention
# work of the keys it drops. Its ideal step ratio is 1 - a * (1 - kept/visible), with a the share
# of dense's step spent in attention (measured) and kept/visible the mean share of a query's
# visible keys the mode keeps (counted: kept <= min(visible, k_blocks * block + window)).
# Expert-choice heads pick EC_TOKENS = T/4 tokens per head: kept entries k(k+1)/2 of T(T+1)/2
# (whole sequence, exact), at most sum_i min(k, i+1) over the active queries (causal: counted
# as if every query were active, an upper bound, so its ideal is a lower bound).
SPARSE_KEYS = dict(block_size=16, k_blocks=2, block_window=16)
EC_TOKENS = 64
SPARSE_MODES = ("dense", "window", "block", "block_oracle", "expert_choice", "expert_choice_causal")


def kept_share(mode, T, k, bs, kb, win):
    kept = vis = 0
    for i in range(T):
        v = i + 1
        if mode in ("block", "block_oracle"):
            kept += min(v, min(kb, i // bs + 1) * bs + win)
        elif mode == "expert_choice":
            kept += v if i < EC_TOKENS else 0  # the m-th picked query keeps m keys: k(k+1)/2
        elif mode == "expert_choice_causal":
            kept += min(v, EC_TOKENS)
        elif mode == "window":
            kept += min(v, k)
        else:
            kept += v
        vis += v
    return kept / vis


def sparse_against_dense(rl, common, repeats):
    keys = ["--%s=%d" % kv for kv in SPARSE_KEYS.items()]
    runs = {m: [] for m in SPARSE_MODES}
    for _ in range(repeats):
        for m in SPARSE_MODES:
            ec = ["--k=%d" % EC_TOKENS] if m.startswith("expert_choice") else []
            runs[m].append(run_json([rl, "bench", "--preset=small", "--mode=" + m, "--precision=fp32"]
                                    + keys + ec + common))
    step = {m: statistics.median(x["step_s_median"] for x in runs[m]) for m in SPARSE_MODES}
    attn_op = next(n for n in runs["dense"][0]["ops_s_per_step"] if n.startswith("attention"))
    attn = {m: statistics.median(x["ops_s_per_step"][attn_op] for x in runs[m]) for m in SPARSE_MODES}
    a = attn["dense"] / step["dense"]
    d0 = runs["dense"][0]
    print(f"\nstructural modes against dense (routelab, small preset, T {d0['seq_len']}, fp32; blocks of "
          f"{SPARSE_KEYS['block_size']}, {SPARSE_KEYS['k_blocks']} kept, window {SPARSE_KEYS['block_window']}; "
          f"expert choice: {EC_TOKENS} tokens per head; "
          f"attention is {100 * a:.1f}% of dense's step)")
    print(f"{'mode':20s} {'step s':>8s} {'vs dense':>9s} {'attn s':>8s} {'kept':>6s} {'ideal':>7s}")
    out = []
    for m in SPARSE_MODES:
        share = kept_share(m, d0["seq_len"], d0["k"], SPARSE_KEYS["block_size"], SPARSE_KEYS["k_blocks"],
                           SPARSE_KEYS["block_window"])
        ideal = 1 - a * (1 - share)
        print(f"{m:20s} {step[m]:8.3f} {step[m] / step['dense']:9.3f} {attn[m]:8.3f} {100 * share:5.1f}% "
              f"{ideal:7.3f}")
        out.append(dict(config="small", mode=m, kind="structural_vs_dense", step_s=round(step[m], 4),
                        ratio_to_dense=round(step[m] / step["dense"], 3), attention_s=round(attn[m], 4),
                        kept_share=round(share, 3), ideal_ratio=round(ideal, 3), **SPARSE_KEYS))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one row: paper config, dense, B=4")
    ap.add_argument("--repeats", type=int, default=2, help="A B turns per row (medians are quoted)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default=None,
                    help="routelab precisions, comma-separated (default fp32,bf16; --quick: fp32)")
    args = ap.parse_args()
    precisions = (args.precisions or ("fp32" if args.quick else "fp32,bf16")).split(",")
    if not os.path.exists(PEER):
        sys.exit(f"bench: the PyTorch peer {PEER} is missing (it lives in ../shared/bench)")
    rl = os.path.join(ROOT, "routelab")
    common = ["--steps=%d" % args.steps, "--warmup=%d" % args.warmup, "--threads=%d" % args.threads]
    sgemm = [run_json([rl, "bench", "--sgemm", "--threads=%d" % args.threads])["sgemm_gflops"]]
    rows, breakdowns = [], []
    for config, mode, batch in (ROWS_QUICK if args.quick else ROWS_FULL):
        ours, peer = {p: [] for p in precisions}, []
        for _ in range(args.repeats):
            for prec in precisions:
                ours[prec].append(run_json([rl, "bench", "--preset=" + config, "--mode=" + mode,
                                            "--batch=%d" % batch, "--precision=" + prec] + common))
            peer.append(run_json(["/usr/bin/python3", PEER, "--config", config, "--mode", mode,
                                  "--batch", str(batch), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup), "--threads", str(args.threads)]))
        p_tok = statistics.median(p["tok_s"] for p in peer)
        for prec in precisions:
            o = ours[prec]
            r_tok = statistics.median(x["tok_s"] for x in o)
            gflops = statistics.median(x["gflops_model"] for x in o)
            row = dict(config=config, mode=mode, batch=batch, precision=prec,
                       routelab_tok_s=round(r_tok, 1), pytorch_tok_s=round(p_tok, 1),
                       ratio=round(r_tok / p_tok, 3),
                       routelab_peak_mib=round(max(x["peak_rss_mib"] for x in o), 1),
                       pytorch_peak_mib=round(max(p["peak_rss_mib"] for p in peer), 1),
                       routelab_gflops=round(gflops, 1), pytorch_version=peer[0].get("torch_version"),
                       threads=args.threads)
            rows.append(row)
            breakdowns.append((config, mode, batch, prec, o[-1]["ops_s_per_step"], o[-1]["step_s_median"]))
            print(f"{config:6s} {mode:13s} B={batch:<3d} {prec:4s} routelab {r_tok:8.0f} tok/s  pytorch "
                  f"{p_tok:8.0f} tok/s  ratio {r_tok / p_tok:5.2f}  {gflops:6.1f} GFLOP/s  "
                  f"peak MiB {row['routelab_peak_mib']:.0f} vs {row['pytorch_peak_mib']:.0f}", flush=True)
    sgemm.append(run_json([rl, "bench", "--sgemm", "--threads=%d" % args.threads])["sgemm_gflops"])
    ceiling = statistics.median(sgemm)
    print(f"\nsgemm ceiling (2048^3, {args.threads} threads, measured in this run): {ceiling:.1f} GFLOP/s")
    print(f"{'config':6s} {'mode':13s} {'B':>3s} {'prec':4s} {'routelab':>9s} {'pytorch':>9s} {'ratio':>6s} "
          f"{'% sgemm':>8s} {'MiB':>6s} {'peer MiB':>8s}")
    for r in rows:
        r["sgemm_gflops"] = ceiling
        r["percent_of_sgemm"] = round(100 * r["routelab_gflops"] / ceiling, 1)
        print(f"{r['config']:6s} {r['mode']:13s} {r['batch']:3d} {r['precision']:4s} {r['routelab_tok_s']:9.0f} "
              f"{r['pytorch_tok_s']:9.0f} {r['ratio']:6.2f} {r['percent_of_sgemm']:7.1f}% "
              f"{r['routelab_peak_mib']:6.0f} {r['pytorch_peak_mib']:8.0f}")
    shown = [b for b in breakdowns if b[1] == "dense"][:len(precisions)] + \
        [b for b in breakdowns if b[1] == "soft"][:1]
    for config, mode, batch, prec, ops, step in shown:
        print(f"\nroutelab step breakdown, {config} {mode} B={batch} {prec} (median step {step:.3f} s):")
        for name, s in sorted(ops.items(), key=lambda kv: -kv[1]):
            print(f"  {name:40s} {s:8.4f} s  {100 * s / step:5.1f}%")
    sparse = [] if args.quick else sparse_against_dense(rl, common, args.repeats)
    with open(os.path.join(ROOT, "bench", "results.json"), "w") as f:
        json.dump(rows + sparse, f, indent=1)
    print("\nwrote bench/results.json")


if __name__ == "__main__":
    main()
